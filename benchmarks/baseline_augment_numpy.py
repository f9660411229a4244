"""A straightforward per-pattern numpy implementation of the training augmentation chain (benchmark baseline).

What a first implementation typically looks like: a Python loop over the
patterns of a batch, numpy vectorized within a pattern for the peak operators,
and a Python loop over the peaks for the profile rendering (each peak evaluated
on its own window and added into the profile). It does the same work as the
torch chain of ``examples/augment_training.yaml`` (same operators, same order,
same parameter laws, same physics), but it is not bit-identical and shares no
code with ``plugins/xrdframe_augment``:

preferred_orientation (March-Dollase), kalpha2 (Bragg's law for Cu K-alpha2),
crystallite_size (Scherrer), sample_displacement (-2 s cos(theta) / R),
zero_shift, peak_position_noise, peak_crop, intensity_noise, impurity_peaks,
pseudo_voigt (Caglioti FWHM, Latin-hypercube U, V, W, eta, asymmetry over the
batch, Thompson-Cox-Hastings combination with the size broadening, erf
asymmetry, window of 8 FWHM capped at max_window, normalised to the integrated
intensity), background_noise (Chebyshev background, low-angle decay, amorphous
hump, white + counting noise) and edge_crop.

Used by benchmarks/bench_augment.py; ``augment_batch(peak_lists, cells, params, rng)``
returns a (B, n_bins) float32 array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import erf, erfinv

__all__ = ["ORDER", "augment_batch", "draw"]

#: The operators in the order the chain runs them (stage peaks, render, profile).
ORDER = ("preferred_orientation", "kalpha2", "crystallite_size", "sample_displacement", "zero_shift",
         "peak_position_noise", "peak_crop", "intensity_noise", "impurity_peaks", "pseudo_voigt",
         "background_noise", "edge_crop")

CU_KALPHA1, CU_KALPHA2 = 1.540593, 1.544427
TCH_FWHM = (1.0, 2.69269, 2.42843, 4.47163, 0.07842, 1.0)
TCH_ETA = (1.36603, -0.47719, 0.11116)
LN2 = math.log(2.0)


def draw(law: Any, rng: np.random.Generator, u: float | None = None) -> float:
    """One draw of a law written as in a spec (a number, {uniform: [a, b]}, {log_uniform: ...}, ...)."""
    if isinstance(law, (int, float)):
        return float(law)
    (kind, args), = law.items()
    if u is None:
        u = rng.random()
    if kind == "uniform":
        return args[0] + (args[1] - args[0]) * u
    if kind == "log_uniform":
        return math.exp(math.log(args[0]) + (math.log(args[1]) - math.log(args[0])) * u)
    if kind == "normal":
        return args[0] + args[1] * math.sqrt(2.0) * float(erfinv(2.0 * min(max(u, 1e-12), 1 - 1e-12) - 1.0))
    if kind == "choice":
        return float(args[min(int(u * len(args)), len(args) - 1)])
    raise ValueError(f"unknown law {law!r}")


def _reciprocal_metric(cell: Sequence[float]) -> np.ndarray:
    a, b, c, al, be, ga = cell
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    metric = np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca],
                       [a * c * cb, b * c * ca, c * c]])
    return np.linalg.inv(metric)


def _tch_fwhm(g: np.ndarray, lo: np.ndarray) -> np.ndarray:
    total = sum(TCH_FWHM[k] * g ** (5 - k) * lo ** k for k in range(6))
    return np.maximum(total, 0.0) ** 0.2


def _eta_of_q(q: np.ndarray | float) -> np.ndarray | float:
    return q * (TCH_ETA[0] + q * (TCH_ETA[1] + q * TCH_ETA[2]))


def _tch_split(eta: float) -> tuple[float, float]:
    """Gaussian and Lorentzian FWHM fractions of a pseudo-Voigt of mixing eta (Newton, as the torch operator)."""
    q = eta
    for _ in range(6):
        slope = TCH_ETA[0] + q * (2.0 * TCH_ETA[1] + 3.0 * TCH_ETA[2] * q)
        q = min(max(q - (_eta_of_q(q) - eta) / slope, 0.0), 1.0)
    t = 1.0
    for _ in range(16):
        value = float(_tch_fwhm(np.float64(t), np.float64(q))) ** 5 - 1.0
        slope = sum(TCH_FWHM[k] * (5 - k) * t ** (4 - k) * q ** k for k in range(5))
        t = min(max(t - value / max(slope, 1e-12), 0.0), 1.0)
    return t, q


def _peaks(tt: np.ndarray, inten: np.ndarray, hkl: np.ndarray, cell: Sequence[float], wavelength: float,
           p: Mapping[str, Mapping[str, Any]], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The peak operators on one pattern: (two_theta, intensity, broadening)."""
    tt, inten, hkl = tt.astype(np.float64), inten.astype(np.float64), hkl.astype(np.float64)
    broad = np.zeros_like(tt)
    # preferred_orientation
    q = p["preferred_orientation"]
    r = draw(q["r"], rng)
    directions = np.asarray(q.get("directions") or [(0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1)], float)
    direction = directions[rng.integers(len(directions))]
    g = _reciprocal_metric(cell)
    hp, hh, pp = hkl @ g @ direction, np.einsum("pi,ij,pj->p", hkl, g, hkl), direction @ g @ direction
    real = hh > 0
    cos_a = np.clip(hp / np.sqrt(np.where(real, hh, 1.0) * pp), -1.0, 1.0)
    inten = inten * np.where(real, (r * r * cos_a ** 2 + (1.0 - cos_a ** 2) / r) ** -1.5, 1.0)
    # kalpha2
    ratio = draw(p["kalpha2"]["ratio"], rng)
    sin2 = np.sin(np.radians(tt / 2.0)) * (CU_KALPHA2 / CU_KALPHA1)
    ok = sin2 < 1.0
    tt = np.concatenate([tt, 2.0 * np.degrees(np.arcsin(sin2[ok]))])
    inten = np.concatenate([inten, ratio * inten[ok]])
    broad = np.concatenate([broad, broad[ok]])
    # crystallite_size
    q = p["crystallite_size"]
    size = draw(q["size"], rng)
    broad = broad + np.degrees(q.get("k", 0.9) * wavelength / (size * np.maximum(np.cos(np.radians(tt / 2.0)), 1e-6)))
    # sample_displacement
    q = p["sample_displacement"]
    s = draw(q["displacement"], rng)
    tt = tt + np.degrees(-2.0 * s * np.cos(np.radians(tt / 2.0)) / q.get("radius", 240.0))
    # zero_shift
    tt = tt + draw(p["zero_shift"]["shift"], rng)
    # peak_position_noise
    tt = tt + draw(p["peak_position_noise"]["sigma"], rng) * rng.standard_normal(tt.shape)
    keep = (tt > 0) & (tt < 180)
    # peak_crop
    low, high = draw(p["peak_crop"]["low"], rng), draw(p["peak_crop"]["high"], rng)
    keep &= (tt >= low) & (tt <= high)
    tt, inten, broad = tt[keep], inten[keep], broad[keep]
    # intensity_noise
    inten = np.maximum(inten * (1.0 + draw(p["intensity_noise"]["sigma"], rng) * rng.standard_normal(tt.shape)), 0.0)
    # impurity_peaks
    q = p["impurity_peaks"]
    count = int(round(draw(q["count"], rng)))
    if count > 0 and tt.size:
        visible = (inten > 0) & (inten >= q.get("detection_limit", 0.01) * inten.max())
        if visible.any():
            weakest = inten[visible].min()
            frac = q.get("min_fraction", 0.25)
            tt = np.concatenate([tt, rng.uniform(tt.min(), tt.max(), count)])
            inten = np.concatenate([inten, weakest * (frac + (1.0 - frac) * rng.random(count))])
            broad = np.concatenate([broad, np.zeros(count)])
    return tt, inten, broad


def _render(tt: np.ndarray, inten: np.ndarray, broad: np.ndarray, centres: np.ndarray, step: float,
            shape: Mapping[str, float], q: Mapping[str, Any]) -> np.ndarray:
    """pseudo_voigt on one pattern: one peak at a time."""
    n_bins = centres.size
    out = np.zeros(n_bins)
    tan = np.tan(np.radians(np.minimum(tt, 179.0) / 2.0))
    min_fwhm = q.get("min_fwhm", 0.02)
    fwhm = np.sqrt(np.maximum(shape["U"] * tan * tan + shape["V"] * tan + shape["W"], min_fwhm ** 2))
    g_frac, l_frac = _tch_split(shape["eta"])  # the size broadening added as a Lorentzian width (TCH)
    gauss, lorentz = g_frac * fwhm, l_frac * fwhm + np.maximum(broad, 0.0)
    fwhm = _tch_fwhm(gauss, lorentz)
    eta = _eta_of_q(np.clip(lorentz / np.maximum(fwhm, 1e-30), 0.0, 1.0))
    asym = -shape["asymmetry"] * np.cos(np.radians(tt))
    window, cap = q.get("window", 8.0), max(1, math.ceil(q.get("max_window", 1.0) / step))
    start = centres[0] - step / 2.0
    for k in range(tt.size):  # the naive part: a loop over the peaks
        if inten[k] == 0:
            continue
        h = fwhm[k]
        centre = int(math.floor((tt[k] - start) / step))
        half = min(max(math.ceil(h * window / step), 1), cap)
        lo, hi = centre - half, centre + half + 1
        if hi <= 0 or lo >= n_bins:
            continue
        x = start + step * (np.arange(lo, hi) + 0.5) - tt[k]
        u = 2.0 * x / h
        profile = eta[k] * (2.0 / (math.pi * h)) / (1.0 + u * u) + \
            (1.0 - eta[k]) * (2.0 / h) * math.sqrt(LN2 / math.pi) * np.exp(-LN2 * u * u)
        profile *= 1.0 + asym[k] * erf(u)
        profile *= inten[k] / profile.sum()
        a, b = max(lo, 0), min(hi, n_bins)
        out[a:b] += profile[a - lo:b - lo]
    return out


def _background(profile: np.ndarray, centres: np.ndarray, grid: tuple[float, float, float],
                q: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    top = max(float(profile.max()), 0.0)
    noise, counting = draw(q["noise"], rng), draw(q["counting_noise"], rng)
    height, decay, width = draw(q["background"], rng), draw(q["decay"], rng), draw(q["decay_width"], rng)
    x = np.clip(2.0 * (centres - grid[0]) / (grid[1] - grid[0]) - 1.0, -1.0, 1.0)
    poly = np.polynomial.chebyshev.chebval(x, rng.uniform(-1.0, 1.0, q.get("background_order", 4) + 1))
    span = max(poly.max() - poly.min(), 1e-12)
    out = profile + (poly - poly.min()) * (height * top / span) + decay * top * np.exp(-centres / width)
    if rng.random() < q.get("amorphous_probability", 0.2):
        pos, fwhm, amp = (draw(q[k], rng) for k in ("amorphous_position", "amorphous_fwhm", "amorphous_amplitude"))
        out += amp * top * np.exp(-4.0 * LN2 * ((centres - pos) / fwhm) ** 2)
    sd = np.sqrt((noise * top) ** 2 + counting * counting * top * np.maximum(out, 0.0))
    return np.maximum(out + sd * rng.standard_normal(out.shape), 0.0)


def augment_batch(peak_lists: Sequence[Any], cells: Sequence[Sequence[float]], params: Mapping[str, Mapping[str, Any]],
                  rng: np.random.Generator, grid: tuple[float, float, float] = (0.0, 120.0, 0.02)) -> np.ndarray:
    """(B, n_bins) profiles of the peak lists, every operator of ``params`` (name -> spec params) applied."""
    start, stop, step = grid
    n_bins = int(round((stop - start) / step))
    centres = start + step * (np.arange(n_bins) + 0.5)
    n = len(peak_lists)
    pv = params["pseudo_voigt"]
    names = ("U", "V", "W", "eta", "asymmetry")
    lhs = (np.stack([rng.permutation(n) for _ in names], axis=1) + rng.random((n, len(names)))) / n  # Latin hypercube
    out = np.zeros((n, n_bins), dtype=np.float32)
    for i, (peaks, cell) in enumerate(zip(peak_lists, cells, strict=True)):  # one pattern at a time
        tt, inten, broad = _peaks(peaks.two_theta, peaks.intensity, peaks.hkl, cell, peaks.wavelength, params, rng)
        shape = {name: draw(pv[name], rng, lhs[i, j]) for j, name in enumerate(names)}
        profile = _render(tt, inten, broad, centres, step, shape, pv)
        profile = _background(profile, centres, grid, params["background_noise"], rng)
        low, high = draw(params["edge_crop"]["low"], rng), draw(params["edge_crop"]["high"], rng)
        profile[(centres < low) | (centres >= high)] = 0.0
        out[i] = profile
    return out
