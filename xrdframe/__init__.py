"""xrdframe: crystal system, extinction group, space group and unit cell from powder patterns.

The core holds the plugin host (:mod:`xrdframe.plugin`), pipeline specs
(:mod:`xrdframe.spec`), the command line and the crystallography every method
shares; each method is a plugin.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xrdframe")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from xrdframe.api import create
from xrdframe.component import Component, ComponentRef, param
from xrdframe.diffraction import PeakList, simulate_peaks
from xrdframe.errors import SpecError, XrdframeError
from xrdframe.indexing import CellCandidate, Prediction
from xrdframe.pattern import ObservedPeaks, Pattern, read_pattern
from xrdframe.structure import Structure, read_structure
from xrdframe.symmetry import symmetry_labels

__all__ = [
    "__version__",
    "create",
    "read_pattern",
    "read_structure",
    "simulate_peaks",
    "symmetry_labels",
    "CellCandidate",
    "Component",
    "ComponentRef",
    "ObservedPeaks",
    "Pattern",
    "PeakList",
    "Prediction",
    "SpecError",
    "Structure",
    "XrdframeError",
    "param",
]
