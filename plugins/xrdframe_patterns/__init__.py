"""Pattern sources: ``pattern_files`` (measured sets), simulated ``equivariance`` / ``invariance`` test sets."""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_pattern_sources"]


@hookimpl
def xrdframe_pattern_sources() -> list[Component]:
    return []
