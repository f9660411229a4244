"""The HAND features: the first ten peak positions and the number of peaks below 90 degrees, at Cu K-alpha.

After Suzuki et al. (2020), *Sci. Rep.* 10, 21790, as used by the HAND baseline of "Learning
Self-Supervised Representations of Powder-Diffraction Patterns" (*Crystals* 15 (2025) 393). One pattern
gives a vector of :data:`N_FEATURES` = 11 numbers:

* ``two_theta_1`` ... ``two_theta_10``: the positions (degrees 2theta) of the first ten peaks, lowest
  angle first, at Cu K-alpha :data:`CU_WAVELENGTH` = 1.5418 Angstrom. Peaks measured (or simulated) at
  another wavelength are moved there through their d-spacings, ``sin(theta_Cu) = sin(theta) * 1.5418 /
  wavelength``; peaks unreachable at Cu or beyond :data:`TWO_THETA_MAX` = 90 degrees are dropped.
  A pattern with fewer than ten such peaks gets the padding value :data:`PAD` = 90.0 in the missing
  slots (the end of the window: "no further peak below 90 degrees"), never an error;
* ``n_peaks``: the number of peaks between 0 and 90 degrees (after the same steps).

Before the positions are taken, two steps make a simulated list look like a picked one (both stored
with a trained model and applied the same way in training and prediction):

1. lines closer than ``merge_width`` degrees (at Cu) are one line: a diffractometer does not resolve
   them (intensity-weighted position, summed intensity; chains of close lines merge into one);
2. when intensities are known, lines weaker than ``intensity_threshold`` times the strongest line
   (between 0 and 90 degrees) are dropped: below the noise of a measured pattern, they are not picked.

>>> import numpy as np
>>> definition = FeatureDefinition(intensity_threshold=0.01, merge_width=0.0)
>>> x = features([[20.0, 30.0, 95.0]], [[100.0, 0.5, 50.0]], wavelength=1.5418, definition=definition)
>>> x[0].tolist()  # 30 deg is below 1 % of the strongest, 95 deg beyond the window
[20.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

__all__ = [
    "CU_WAVELENGTH",
    "FEATURE_NAMES",
    "N_FEATURES",
    "N_POSITIONS",
    "PAD",
    "TWO_THETA_MAX",
    "FeatureDefinition",
    "features",
    "peak_list_features",
    "to_cu",
]

#: The wavelength of the features: Cu K-alpha (weighted mean of K-alpha1 and K-alpha2), Angstrom.
CU_WAVELENGTH = 1.5418
#: Upper end of the feature window, degrees 2theta at :data:`CU_WAVELENGTH`.
TWO_THETA_MAX = 90.0
#: Number of peak positions in a feature vector.
N_POSITIONS = 10
#: Value of the position slots a pattern with fewer than ten peaks leaves empty, degrees.
PAD = 90.0
#: Length of a feature vector.
N_FEATURES = N_POSITIONS + 1
#: Names of the features, in order.
FEATURE_NAMES = tuple(f"two_theta_{i + 1}" for i in range(N_POSITIONS)) + ("n_peaks",)


@attrs.frozen
class FeatureDefinition:
    """The settable part of the features (the rest is fixed by the constants above).

    :ivar intensity_threshold: lines weaker than this fraction of the strongest line (0-90 degrees at Cu)
        are dropped; 0 keeps every line. Not applied to peak lists without intensities.
    :ivar merge_width: lines closer than this (degrees 2theta at Cu) are merged into one.
    """

    intensity_threshold: float = 0.01
    merge_width: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        """The full definition, as stored beside a trained model."""
        return {"names": list(FEATURE_NAMES), "wavelength": CU_WAVELENGTH, "two_theta_max": TWO_THETA_MAX,
                "n_positions": N_POSITIONS, "pad": PAD, "intensity_threshold": self.intensity_threshold,
                "merge_width": self.merge_width,
                "text": "positions (deg 2theta at Cu K-alpha 1.5418 A, converted through d-spacings) of the first "
                        "ten peaks in (0, 90] deg, lowest first, padded with 90.0; then the number of peaks in "
                        "(0, 90] deg; lines closer than merge_width merged (intensity-weighted position, summed "
                        "intensity) and lines below intensity_threshold x the strongest dropped first"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureDefinition:
        fixed = {"wavelength": CU_WAVELENGTH, "two_theta_max": TWO_THETA_MAX, "n_positions": N_POSITIONS, "pad": PAD}
        for key, value in fixed.items():
            if data.get(key) != value:
                raise ValueError(f"feature definition has {key}={data.get(key)!r}, this version computes {value!r}")
        return cls(intensity_threshold=float(data["intensity_threshold"]), merge_width=float(data["merge_width"]))


def to_cu(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
    """Positions (degrees) at ``wavelength`` moved to :data:`CU_WAVELENGTH` through their d-spacings; NaN where
    a peak cannot be reached at Cu.

    >>> round(float(to_cu(np.array([20.0]), 0.7093)[0]), 4)  # a Mo K-alpha1 line at 20 deg
    44.3526
    """
    two_theta = np.asarray(two_theta, dtype=np.float64)
    if wavelength == CU_WAVELENGTH:
        return two_theta.copy()
    sin_theta = np.sin(np.deg2rad(two_theta / 2.0)) * (CU_WAVELENGTH / wavelength)
    with np.errstate(invalid="ignore"):
        return np.where(sin_theta <= 1.0, 2.0 * np.rad2deg(np.arcsin(np.minimum(sin_theta, 1.0))), np.nan)


def _as_2d(value: Any, dtype: Any) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    return array[None, :] if array.ndim == 1 else array


def features(two_theta: Any, intensity: Any | None, wavelength: float,
             definition: FeatureDefinition | None = None, mask: Any | None = None) -> np.ndarray:
    """Feature vectors of B peak lists given as padded (B, P) arrays (or one list as a 1-d array).

    :param two_theta: peak positions, degrees 2theta at ``wavelength``, in any order.
    :param intensity: integrated intensities of the same shape, or None (no intensity threshold).
    :param wavelength: Angstrom.
    :param definition: merge width and intensity threshold (defaults: :class:`FeatureDefinition`).
    :param mask: True where a peak exists (padding False); None: every finite position > 0 is a peak.
    :returns: (B, 11) float64: ten positions at Cu (padded with :data:`PAD`), then the peak count.

    Vectorized over patterns and peaks: sort, merge by a cumulative sum of gaps, threshold, compact.
    """
    d = definition or FeatureDefinition()
    tt = _as_2d(two_theta, np.float64)
    n, width = tt.shape
    valid = np.isfinite(tt) & (tt > 0)
    if mask is not None:
        valid &= _as_2d(mask, bool)
    weight = np.ones_like(tt) if intensity is None else np.nan_to_num(_as_2d(intensity, np.float64), nan=0.0)
    cu = to_cu(np.where(valid, tt, 0.0), wavelength)
    valid &= np.isfinite(cu) & (cu > 0) & (cu <= TWO_THETA_MAX)
    out = np.full((n, N_FEATURES), PAD, dtype=np.float64)
    out[:, -1] = 0.0
    if n == 0 or width == 0:
        return out
    cu = np.where(valid, cu, np.inf)
    order = np.argsort(cu, axis=1, kind="stable")
    cu = np.take_along_axis(cu, order, axis=1)
    weight = np.take_along_axis(np.where(valid, np.maximum(weight, 0.0), 0.0), order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    # merge: a new line starts where the gap to the previous one exceeds merge_width
    with np.errstate(invalid="ignore"):  # inf - inf between padding slots
        gap = np.diff(cu, axis=1, prepend=-np.inf)
    starts = valid & (gap > d.merge_width)
    group = np.cumsum(starts, axis=1) - 1  # line index within its row (valid peaks only)
    flat = (np.arange(n)[:, None] * width + group)[valid]
    total = np.bincount(flat, weights=weight[valid], minlength=n * width).reshape(n, width)
    count = np.bincount(flat, minlength=n * width).reshape(n, width)
    # position: intensity-weighted mean; plain mean where the intensities of a line sum to zero
    w_eff = np.where(total[flat // width, flat % width] > 0, weight[valid], 1.0)
    pos_sum = np.bincount(flat, weights=w_eff * cu[valid], minlength=n * width).reshape(n, width)
    w_sum = np.bincount(flat, weights=w_eff, minlength=n * width).reshape(n, width)
    exists = count > 0
    position = np.where(exists, pos_sum / np.where(w_sum > 0, w_sum, 1.0), np.inf)
    keep = exists
    if intensity is not None and d.intensity_threshold > 0:
        strongest = np.where(exists, total, 0.0).max(axis=1, keepdims=True)
        keep = exists & (total >= d.intensity_threshold * strongest) & (total > 0)
    n_lines = keep.sum(axis=1)
    # lines are in increasing order already; move the kept ones to the front
    front = np.argsort(~keep, axis=1, kind="stable")[:, :N_POSITIONS]
    first = np.take_along_axis(position, front, axis=1)
    kept = np.take_along_axis(keep, front, axis=1)
    out[:, :first.shape[1]] = np.where(kept, first, PAD)
    out[:, -1] = n_lines
    return out


def peak_list_features(two_theta: Sequence[float] | np.ndarray, intensity: Sequence[float] | np.ndarray | None,
                       wavelength: float, definition: FeatureDefinition | None = None) -> np.ndarray:
    """The (11,) feature vector of one peak list.

    >>> peak_list_features([10.0, 20.0], None, 1.5418, FeatureDefinition())[[0, 1, 2, 10]].tolist()
    [10.0, 20.0, 90.0, 2.0]
    """
    tt = np.asarray(two_theta, dtype=np.float64).reshape(1, -1)
    inten = None if intensity is None else np.asarray(intensity, dtype=np.float64).reshape(1, -1)
    return features(tt, inten, wavelength, definition)[0]
