"""Measured data: a powder profile (:class:`Pattern`) and a list of observed peaks (:class:`ObservedPeaks`)."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

__all__ = ["Pattern", "ObservedPeaks"]


def _array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=float)


def _optional_array(value: object) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=float)


@attrs.frozen(eq=False)
class Pattern:
    """A powder diffraction profile on a 2theta grid.

    :ivar two_theta: scattering angles, degrees, strictly increasing.
    :ivar intensity: counts (or arbitrary units) at each angle.
    :ivar wavelength: the (K-alpha1) wavelength, Angstrom; ``None`` when neither the file nor the caller gives it.
    :ivar source: where the pattern came from (a path), if anywhere.
    :ivar metadata: anything else the reader found (for example ``{'kalpha2': 1.54443, 'kalpha_ratio': 0.5}``).
    """

    two_theta: np.ndarray = attrs.field(converter=_array)
    intensity: np.ndarray = attrs.field(converter=_array)
    wavelength: float | None = None
    source: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class ObservedPeaks:
    """Observed peak positions (picked from a profile, or read from a peak-list file), sorted by two_theta.

    :ivar two_theta: peak positions (K-alpha1), degrees.
    :ivar intensity: integrated intensities (arbitrary units), or ``None`` when unknown.
    :ivar wavelength: Angstrom; ``None`` when unknown.
    :ivar sigma: standard uncertainty of each position, degrees, or ``None`` when unknown.
    :ivar source: where the peaks came from (a path), if anywhere.
    :ivar note: what the picker did that a user should know (for example K-alpha2 stripped).
    """

    two_theta: np.ndarray = attrs.field(converter=_array)
    intensity: np.ndarray | None = attrs.field(default=None, converter=_optional_array)
    wavelength: float | None = None
    sigma: np.ndarray | None = attrs.field(default=None, converter=_optional_array)
    source: str | None = None
    note: str = ""

    def __len__(self) -> int:
        return int(self.two_theta.shape[0])
