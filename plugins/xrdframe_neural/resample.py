"""Measured patterns onto a model's 2theta grid.

A network reads profiles on one grid (``start``, ``stop``, ``step``) at one wavelength. A pattern measured
at wavelength ``w`` is converted point by point through its d-spacings to the model wavelength ``W``
(``sin(theta') = sin(theta) * W / w``; points with ``sin(theta') > 1`` cannot be reached and are dropped),
then averaged over each model bin (the mean of the piecewise-linear profile over the bin, which handles both
finer and coarser measurements), with zeros outside the measured range (as the ``edge_crop`` augmentation
pads). The profile is then normalized as in training (divided by its maximum). A peak list
(:class:`~xrdframe.pattern.ObservedPeaks`) is drawn as Gaussians of ``peak_fwhm`` degrees at the converted
positions, with its intensities (all 100 when unknown).

>>> import numpy as np
>>> grid = TwoThetaGrid(10.0, 20.0, 0.5)
>>> tt = np.linspace(0, 40, 4001)
>>> y = resample_profile(tt, np.exp(-0.5 * ((tt - 15.1) / 0.2) ** 2), 1.5406, grid, 1.5406)
>>> int(np.argmax(y)), float(grid.centers()[int(np.argmax(y))])
(10, 15.25)
"""

from __future__ import annotations

import numpy as np

from xrdframe.augmentation import TwoThetaGrid

__all__ = ["convert_two_theta", "render_peaks", "resample_profile", "resample_profiles"]

_ROWS = 32


def convert_two_theta(two_theta: np.ndarray, wavelength: float, target: float) -> np.ndarray:
    """2theta (degrees) at ``wavelength`` -> 2theta at ``target`` for the same d; NaN where unreachable."""
    two_theta = np.asarray(two_theta, dtype=np.float64)
    if abs(wavelength - target) < 1e-12:
        return two_theta.copy()
    s = np.sin(np.deg2rad(two_theta / 2.0)) * (target / wavelength)
    out = np.full_like(s, np.nan)
    ok = np.abs(s) <= 1.0
    out[ok] = 2.0 * np.rad2deg(np.arcsin(s[ok]))
    return out


def resample_profile(two_theta: np.ndarray, intensity: np.ndarray, wavelength: float, grid: TwoThetaGrid,
                     target_wavelength: float) -> np.ndarray:
    """Bin means of a measured profile on ``grid`` at ``target_wavelength`` (float32, not normalized)."""
    x = convert_two_theta(two_theta, wavelength, target_wavelength)
    y = np.asarray(intensity, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return resample_profiles(x[ok], y[ok][None, :], grid)[0]


def resample_profiles(two_theta: np.ndarray, intensities: np.ndarray, grid: TwoThetaGrid) -> np.ndarray:
    """Bin means on ``grid`` of several profiles measured at the same finite 2theta points, already at the
    grid's wavelength: ``intensities`` (n, m) -> (n, n_bins) float32. Points need not be sorted."""
    x = np.asarray(two_theta, dtype=np.float64)
    y = np.atleast_2d(np.asarray(intensities))  # float32 or float64; integrated in float64, block by block
    out = np.zeros((y.shape[0], grid.n_bins), dtype=np.float32)
    if x.size < 2:
        return out
    if np.any(x[1:] < x[:-1]):  # measured scans are ascending: sort only when they are not
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[:, order]
    edges = grid.start + grid.step * np.arange(grid.n_bins + 1)
    # integral of the piecewise-linear profile F(t), evaluated once at every (clipped) bin edge; the bin mean
    # over the covered part is (F(hi) - F(lo)) / (hi - lo)
    t = np.clip(edges, x[0], x[-1])
    i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    dx = t - x[i]
    run = x[i + 1] - x[i]
    run = np.where(run > 0, run, 1.0)
    step = np.diff(x)
    width = np.diff(t)
    covered = width > 1e-12
    for lo in range(0, y.shape[0], _ROWS):  # blocks of rows that stay in cache (5x faster than all at once)
        block = y[lo:lo + _ROWS].astype(np.float64)
        cum = np.zeros((block.shape[0], x.size))
        np.cumsum(0.5 * (block[:, 1:] + block[:, :-1]) * step, axis=1, out=cum[:, 1:])
        left, right = block[:, i], block[:, i + 1]
        integral = cum[:, i] + left * dx + 0.5 * (right - left) / run * dx * dx
        out[lo:lo + _ROWS, covered] = np.diff(integral, axis=1)[:, covered] / width[covered]
    return out


def render_peaks(two_theta: np.ndarray, intensity: np.ndarray | None, wavelength: float, grid: TwoThetaGrid,
                 target_wavelength: float, fwhm: float = 0.1) -> np.ndarray:
    """A profile drawn from a peak list: Gaussians of ``fwhm`` degrees at the converted positions."""
    x = convert_two_theta(two_theta, wavelength, target_wavelength)
    h = np.full(x.shape, 100.0) if intensity is None else np.asarray(intensity, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(h)
    centers = grid.centers().numpy()
    sigma = fwhm / 2.354820045
    x, h = x[ok], h[ok]
    # every peak over the same number of bins (its [-5 sigma, +5 sigma) window), all peaks at once
    step = float(np.min(np.diff(centers))) if centers.size > 1 else 1.0
    start = np.searchsorted(centers, x - 5 * sigma)
    bins = np.minimum(start[:, None] + np.arange(int(np.ceil(10 * sigma / step)) + 2)[None, :], centers.size - 1)
    inside = (bins >= start[:, None]) & (centers[bins] < x[:, None] + 5 * sigma)
    values = h[:, None] * np.exp(-0.5 * ((centers[bins] - x[:, None]) / sigma) ** 2)
    out = np.bincount(bins[inside], weights=values[inside], minlength=grid.n_bins).astype(np.float64)
    return out.astype(np.float32)
