"""Pattern sources: ``pattern_files`` (measured sets), simulated ``equivariance`` / ``invariance`` test sets."""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_pattern_sources"]


@hookimpl
def xrdframe_pattern_sources() -> list[Component]:
    from xrdframe_patterns.files import PatternFiles, PatternFilesParams
    from xrdframe_patterns.simulated import Equivariance, Invariance, SimulatedParams

    return [
        Component("pattern_files", PatternFiles, PatternFilesParams,
                  "measured patterns: an index.csv with labels (CONTRACT.md section 6), or a glob/folder without"),
        Component("equivariance", Equivariance, SimulatedParams,
                  "simulated test set: held-out structures (split 'test') in the training augmentation regime"),
        Component("invariance", Invariance, SimulatedParams,
                  "simulated test set: training structures (split 'train') in the invariance-test regime"),
    ]
