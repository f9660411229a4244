"""Peak picking: observed peak positions, with standard uncertainties and integrated intensities, from a measured
powder profile.

:func:`pick_peaks` runs, on a uniform 2theta grid (non-uniform data are interpolated onto one):

1. **Noise model**: ``sd(I) = sqrt(a + b I)``, fitted to robust (MAD) scatter of the scaled second difference
   ``(2 I_i - I_{i-1} - I_{i+1}) / sqrt(6)`` (the high-pass residual, unit variance for white noise) in groups of
   equal intensity level; ``a`` is white (detector) noise, ``b ~ 1`` means Poisson counts.
2. **Peak width**: the FWHM, in points, from ``scipy.signal.peak_widths`` of the strongest maxima (median).
3. **Background**: SNIP (Ryan, Clayton, Griffin, Sie & Cousens (1988), Nucl. Instrum. Methods B 34, 396;
   Morhac & Matousek (2008), Appl. Spectrosc. 62, 91) on log-log-square-root (LLS) transformed intensities,
   with a clipping window matched to the peak width; or asymmetric least squares (Eilers & Boelens 2005).
4. **Smoothing**: Savitzky-Golay (order 2) with a window of about one FWHM, only to find candidates.
5. **Candidates**: ``scipy.signal.find_peaks`` on the smoothed net profile with prominence >= ``prominence`` x
   the noise sd at the background level and a minimum separation.
6. **K-alpha2** (laboratory patterns: Cu K-alpha1 as 1.5406/1.54056/1.5405, the other common anodes' K-alpha1,
   or a weighted K-alpha mean such as 1.5418): the strongest resolved peaks are fitted once as single lines and
   once as K-alpha1 + ``ratio`` x K-alpha2 doublets (Bragg-law companion position, same width); when doublets fit
   better (or nothing can tell), candidates sitting at the companion position of a stronger candidate are dropped
   and every peak is fitted as a doublet, so the reported positions are K-alpha1 (for a K-alpha mean wavelength
   the result's wavelength becomes K-alpha1).
7. **Refinement**: peaks are grouped into clusters of overlapping profiles (chains longer than 8 peaks are cut
   into pieces) and each cluster is fitted jointly (pseudo-Voigt peaks of free position, FWHM and area, one
   mixing parameter eta, a linear local background) by weighted least squares: a Levenberg-Marquardt fit with
   analytic Jacobian and bounds by projection, run on all clusters of similar size at once (batched numpy
   arrays, a few batches per pattern). Standard uncertainties come from ``s^2 (J^T J)^-1``; peaks whose area is
   not significant are rejected.

Nothing loops over data points: the Python loops are over SNIP iterations, LM iterations and a few batches of
clusters.

>>> import numpy as np
>>> x = np.arange(10.0, 60.0, 0.02)
>>> y = 50 + 1000 * np.exp(-4 * np.log(2) * ((x - 30.0) / 0.1) ** 2)
>>> peaks = pick_peaks(Pattern(x, y, wavelength=0.7093))
>>> len(peaks), round(float(peaks.two_theta[0]), 4)
(1, 30.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import attrs
import numpy as np
from scipy import linalg, optimize, signal

from xrdframe.component import param
from xrdframe.errors import XrdframeError
from xrdframe.pattern import ObservedPeaks, Pattern

__all__ = [
    "CU_KALPHA1",
    "CU_KALPHA2",
    "PeakPickingParams",
    "pick_peaks",
    "reflection_two_theta",
    "snip_background",
]

#: Cu K-alpha1 and K-alpha2 wavelengths, Angstrom (International Tables vol. C, Table 4.2.2.1; Holzer et al. 1997).
CU_KALPHA1 = 1.540593
CU_KALPHA2 = 1.54443
#: Wavelengths that mark a laboratory Cu pattern for ``kalpha2='auto'``, Angstrom (matched within 0.001).
_CU_LAB = (1.5406, 1.54056, 1.5405)
#: K-alpha1 and K-alpha2 of laboratory anodes, Angstrom (International Tables vol. C, Table 4.2.2.1); for
#: ``kalpha2='auto'`` a wavelength within 0.0003 of K-alpha1 or of the weighted mean (2 K-alpha1 + K-alpha2) / 3.
_ANODES = {"Cu": (CU_KALPHA1, CU_KALPHA2), "Co": (1.788965, 1.792850), "Mo": (0.709300, 0.713590),
           "Fe": (1.936042, 1.939980), "Cr": (2.289700, 2.293606), "Ag": (0.559407, 0.563798)}
_LN2 = math.log(2.0)
_G_NORM = 2.0 * math.sqrt(_LN2 / math.pi)
_L_NORM = 2.0 / math.pi
#: Most peaks fitted jointly; longer chains of overlapping peaks are fitted in consecutive pieces.
_MAX_CLUSTER = 8


def _positive_or_none(instance: object, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _range(instance: object, attribute: attrs.Attribute, value: tuple[float, float] | None) -> None:
    if value is not None and not (len(value) == 2 and 0 <= value[0] < value[1] <= 180):
        raise ValueError(f"{attribute.name} must be [low, high] with 0 <= low < high <= 180 degrees, got {value!r}")


def _kalpha2_mode(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value not in ("auto", True, False):
        raise ValueError(f"kalpha2 must be 'auto', true or false, got {value!r}")


@attrs.frozen
class PeakPickingParams:
    """Parameters of :func:`pick_peaks`; the defaults suit laboratory and synchrotron patterns alike.

    Widths are in units of the FWHM where that keeps them meaningful from 0.001-degree synchrotron steps to
    0.04-degree laboratory steps.
    """

    background: Literal["snip", "als", "none"] = param(
        "snip", validator=attrs.validators.in_(("snip", "als", "none")),
        doc="background: 'snip' (SNIP on log-log-sqrt transformed intensities, Ryan et al. 1988), 'als' "
            "(asymmetric least squares, Eilers & Boelens 2005) or 'none'")
    snip_width: float = param(2.0, validator=_non_negative, unit="FWHM",
                              doc="half width of the largest SNIP clipping window (of the broader peaks)")
    als_smoothness: float = param(10.0, validator=_non_negative, unit="FWHM",
                                  doc="ALS smoothness as the background's length scale: lambda = (scale x FWHM in "
                                      "points)^4")
    als_asymmetry: float = param(0.01, validator=_non_negative, doc="ALS weight of points above the background")
    fwhm: float | None = param(None, validator=_positive_or_none, unit="deg",
                               doc="peak FWHM; null: estimated from the strongest peaks")
    smoothing_width: float = param(1.0, validator=_non_negative, unit="FWHM",
                                   doc="Savitzky-Golay window (order 2) for finding candidates; 0: no smoothing")
    prominence: float = param(4.0, validator=_non_negative, unit="noise sd",
                              doc="smallest prominence of a candidate, in noise standard deviations at the "
                                  "background level (noise: robust MAD of the second difference, sd^2 = a + b I)")
    min_separation: float | None = param(None, validator=_positive_or_none, unit="deg",
                                         doc="smallest distance between candidates; null: half the FWHM estimate")
    min_significance: float = param(5.0, validator=_non_negative,
                                    doc="smallest fitted area / its standard uncertainty of a reported peak")
    min_relative_intensity: float = param(0.005, validator=_non_negative,
                                          doc="smallest fitted peak height relative to the highest peak (0: no cut)")
    kalpha2: Literal["auto", True, False] = param(
        "auto", validator=_kalpha2_mode,
        doc="K-alpha1 + K-alpha2 doublets: 'auto' = on for a lab Cu wavelength (within 0.001 A of 1.5406, 1.54056 "
            "or 1.5405) or when the file gives a K-alpha2 line, unless the file says K-alpha1 only or the "
            "strongest resolved peaks fit better as single lines; true/false force it. Positions reported are "
            "K-alpha1")
    kalpha2_wavelength: float = param(CU_KALPHA2, validator=_positive_or_none, unit="Angstrom",
                                      doc="K-alpha2 wavelength when the pattern's metadata gives none")
    kalpha2_ratio: float = param(0.5, validator=_non_negative,
                                 doc="K-alpha2 / K-alpha1 intensity ratio when the pattern's metadata gives none")
    refine: bool = param(True, doc="fit each cluster of peaks (positions with standard uncertainties, integrated "
                                   "intensities); false: positions of the smoothed maxima and no significance "
                                   "test (raise prominence to about 6 to keep noise out)")
    max_peaks: int | None = param(None, validator=attrs.validators.optional(attrs.validators.ge(1)),
                                  doc="keep at most this many peaks, the strongest by integrated intensity, sorted "
                                      "by 2theta; null: all")
    two_theta_range: tuple[float, float] | None = param(None, validator=_range, unit="deg",
                                                        doc="only pick peaks in [low, high]; null: everywhere")


# ------------------------------------------------------------------------------------------------- pieces


def _noise_model(y: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of ``var(I) = a + b I``, from the MAD of the scaled second difference in 8 intensity groups."""
    if y.size < 12:
        return 0.0, 0.0
    d2 = (2.0 * y[1:-1] - y[:-2] - y[2:]) / math.sqrt(6.0)
    level = (y[:-2] + y[1:-1] + y[2:]) / 3.0
    order = np.argsort(level, kind="stable")
    keep = order[: max(8, int(0.9 * order.size))]  # leave out the peak tops, where curvature is signal
    groups = np.array_split(keep, 8)
    levels = np.array([level[g].mean() for g in groups])
    spread = np.array([1.4826 * np.median(np.abs(d2[g] - np.median(d2[g]))) for g in groups])
    var = spread**2
    if np.ptp(levels) <= 1e-12 * max(1.0, float(np.abs(levels).max())):
        return float(np.median(var)), 0.0
    design = np.stack([np.ones_like(levels), levels - levels.min()], axis=1)
    (a0, b), _ = optimize.nnls(design, var)
    a = max(0.0, a0 - b * levels.min())  # var = a0 + b (I - I_min) = (a0 - b I_min) + b I
    if a == 0.0 and b * levels.min() <= 0:
        a = float(np.min(var[var > 0])) if np.any(var > 0) else 0.0
    return float(a), float(b)


def _noise_sd(y: np.ndarray, model: tuple[float, float], floor: float) -> np.ndarray:
    a, b = model
    return np.sqrt(np.maximum(a + b * np.maximum(y, 0.0), floor**2))


def _odd(n: float, low: int = 3) -> int:
    k = max(low, int(round(n)))
    return k if k % 2 else k + 1


def _fwhm_points(y: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
    """Median and 90th percentile FWHM (points) of the 20 most prominent maxima of a lightly smoothed profile."""
    smooth = signal.savgol_filter(y, 5, 2) if y.size >= 5 else y
    peaks, props = signal.find_peaks(smooth, prominence=(8.0 * sd, None))
    if peaks.size == 0:
        return 5.0, 5.0
    strongest = peaks[np.argsort(props["prominences"])[::-1][:20]]
    widths = signal.peak_widths(smooth, strongest, rel_height=0.5)[0]
    widths = widths[np.isfinite(widths) & (widths > 0)]
    if widths.size == 0:
        return 5.0, 5.0
    cap = max(3.0, y.size / 20.0)
    return float(np.clip(np.median(widths), 1.5, cap)), float(np.clip(np.percentile(widths, 90), 1.5, cap))


def snip_background(intensity: np.ndarray, iterations: int) -> np.ndarray:
    """SNIP background (Ryan et al. 1988) of a profile on a uniform grid, on LLS-transformed intensities.

    ``v = log(log(sqrt(I + 1) + 1) + 1)``; for window half widths ``m = 1 .. iterations`` (points),
    ``v_i <- min(v_i, (v_{i-m} + v_{i+m}) / 2)``; then transformed back. One vectorized step per window.

    >>> y = np.full(101, 10.0); y[50] = 1000.0
    >>> float(snip_background(y, 5)[50]) < 11.0
    True
    """
    y = np.asarray(intensity, dtype=float)
    iterations = int(max(1, min(iterations, (y.size - 1) // 2)))
    offset = min(0.0, float(y.min()))
    v = np.log(np.log(np.sqrt(y - offset + 1.0) + 1.0) + 1.0)
    padded = np.pad(v, iterations, mode="edge")
    n = padded.size
    for m in range(1, iterations + 1):
        middle = padded[m:n - m]
        np.minimum(middle, 0.5 * (padded[: n - 2 * m] + padded[2 * m:]), out=middle)
    v = padded[iterations:n - iterations]
    return (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0 + offset


def _als_background(y: np.ndarray, smoothness: float, asymmetry: float, iterations: int = 12) -> np.ndarray:
    """Asymmetric least squares (Eilers & Boelens 2005): ``min sum w (y - z)^2 + lambda sum (D2 z)^2``,
    ``w = p`` above ``z`` and ``1 - p`` below; pentadiagonal solves (``scipy.linalg.solveh_banded``)."""
    n = y.size
    if n < 5:
        return np.full_like(y, float(np.min(y)))
    # D2^T D2 in upper banded form
    main = np.full(n, 6.0)
    main[[0, -1]] = 1.0
    main[[1, -2]] = 5.0
    first = np.full(n, -4.0)
    first[[1, -1]] = -2.0
    second = np.ones(n)
    bands = np.zeros((3, n))
    bands[0, 2:] = smoothness * second[2:]
    bands[1, 1:] = smoothness * first[1:]
    w = np.ones(n)
    z = y.copy()
    for _ in range(iterations):
        ab = bands.copy()
        ab[2] = smoothness * main + w
        z = linalg.solveh_banded(ab, w * y, check_finite=False)
        w_new = np.where(y > z, asymmetry, 1.0 - asymmetry)
        if np.array_equal(w_new, w):
            break
        w = w_new
    return z


def _lab_anode(wavelength: float | None) -> tuple[str, float, float, bool] | None:
    """The laboratory anode a wavelength stands for: name, K-alpha1, K-alpha2 and whether it is the weighted
    K-alpha mean (then the reported positions are K-alpha1 and the wavelength becomes K-alpha1)."""
    if wavelength is None:
        return None
    if any(abs(wavelength - c) <= 0.001 for c in _CU_LAB):
        return "Cu", CU_KALPHA1, CU_KALPHA2, False
    for name, (k1, k2) in _ANODES.items():
        if abs(wavelength - k1) <= 0.0003:
            return name, k1, k2, False
        if abs(wavelength - (2.0 * k1 + k2) / 3.0) <= 0.0003:
            return name, k1, k2, True
    return None


def _kalpha2_setting(pattern: Pattern, p: PeakPickingParams) -> tuple[bool, float, float, float, str]:
    """Whether to fit K-alpha doublets, with the K-alpha1 and K-alpha2 wavelengths, the ratio and the reason."""
    lam = pattern.wavelength
    meta = pattern.metadata or {}
    lam1 = lam or 0.0
    lam2 = float(meta.get("kalpha2") or 0.0)
    ratio = float(meta.get("kalpha_ratio") or p.kalpha2_ratio)
    anode = _lab_anode(lam)
    is_cu = anode is not None and anode[0] == "Cu" and not anode[3]
    if lam2 <= 0 or lam is None or not 0 < lam2 - lam < 0.05 * lam:
        lam2 = 0.0
        if is_cu:
            lam2 = p.kalpha2_wavelength
        elif anode is not None:
            lam1, lam2 = (anode[1] if anode[3] else lam1), anode[2]
    mode = "auto" if isinstance(p.kalpha2, str) else bool(p.kalpha2)
    if mode is False:
        return False, lam1, lam2, ratio, "K-alpha2 handling off"
    if mode is True:
        if lam is None:
            raise XrdframeError("pick_peaks: kalpha2=True needs the pattern's wavelength (K-alpha1), which is unknown; "
                                "give it to read_pattern(path, wavelength=...)")
        if lam2 <= 0:
            raise XrdframeError(f"pick_peaks: kalpha2=True but the wavelength {lam} Angstrom is not a laboratory "
                                "K-alpha line and the pattern's metadata gives no K-alpha2 wavelength")
        return True, lam1, lam2, ratio, "forced"
    if meta.get("kalpha2_present") is False:
        return False, lam1, lam2, ratio, "the file says K-alpha1 only"
    if lam2 > 0 and (anode is not None or meta.get("kalpha2_present")):
        if anode is None:
            return True, lam1, lam2, ratio, "the file gives K-alpha2"
        what = "K-alpha mean" if anode[3] else "K-alpha1"
        return True, lam1, lam2, ratio, f"lab {anode[0]} {what} wavelength"
    return False, lam1, lam2, ratio, "not a lab K-alpha wavelength"


def _companion(two_theta: np.ndarray, ratio_of_wavelengths: float) -> np.ndarray:
    """K-alpha2 position of K-alpha1 peaks at ``two_theta`` (degrees): ``asin(lambda2/lambda1 sin theta)``."""
    s = np.clip(np.sin(np.radians(two_theta) / 2.0) * ratio_of_wavelengths, -1.0, 1.0)
    return 2.0 * np.degrees(np.arcsin(s))


# ------------------------------------------------------------------------------------------------ profile fit


def _pv_and_derivatives(x: np.ndarray, pos: np.ndarray, fwhm: np.ndarray, eta: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit-area pseudo-Voigt ``eta L + (1 - eta) G`` (x: (m, 1), pos/fwhm: (n,)) and its derivatives by position,
    FWHM and eta; each (m, n)."""
    u = (x - pos) / fwhm
    u2 = u * u
    lor_core = 1.0 / (1.0 + 4.0 * u2)
    lor = (_L_NORM / fwhm) * lor_core
    gau = (_G_NORM / fwhm) * np.exp(-4.0 * _LN2 * u2)
    d_lor_du = lor * (-8.0 * u) * lor_core
    d_gau_du = gau * (-8.0 * _LN2 * u)
    pv = eta * lor + (1.0 - eta) * gau
    d_du = eta * d_lor_du + (1.0 - eta) * d_gau_du
    return pv, -d_du / fwhm, -pv / fwhm - d_du * u / fwhm, lor - gau


def _batch_profile(x: np.ndarray, pos: np.ndarray, fwhm: np.ndarray, eta: np.ndarray,
                   doublet: tuple[float, float] | None) -> tuple[np.ndarray, ...]:
    """Peak shapes of a batch of clusters and their derivatives: x (C, M), pos/fwhm (C, P), eta (C,);
    returns pv, d/dpos, d/dfwhm, d/deta, each (C, M, P), K-alpha2 companions included."""
    xs, e = x[:, :, None], eta[:, None, None]
    pv, dp, dh, de = _pv_and_derivatives(xs, pos[:, None, :], fwhm[:, None, :], e)
    if doublet is not None:
        k, ratio = doublet
        pos2 = _companion(pos, k)
        dpos2 = k * np.cos(np.radians(pos) / 2.0) / np.maximum(np.cos(np.radians(pos2) / 2.0), 1e-9)
        pv2, dp2, dh2, de2 = _pv_and_derivatives(xs, pos2[:, None, :], fwhm[:, None, :], e)
        pv, dp, dh, de = pv + ratio * pv2, dp + ratio * dp2 * dpos2[:, None, :], dh + ratio * dh2, de + ratio * de2
    return pv, dp, dh, de


def _fit_batch(x: np.ndarray, z: np.ndarray, w: np.ndarray, pos0: np.ndarray, fwhm0: np.ndarray,
               area0: np.ndarray, active: np.ndarray, step: float, doublet: tuple[float, float] | None,
               iterations: int = 60) -> tuple[np.ndarray, ...]:
    """Levenberg-Marquardt (Marquardt 1963) fit of a batch of C clusters at once, every array padded: x, z, w
    (C, M) with weight w = 1/sd (0 on padding); pos0, fwhm0, area0, active (C, P). Model of a cluster:
    ``sum_p area_p pV(x; pos_p, fwhm_p, eta) + c0 + c1 (x - xc)``, bounds by projection.

    Returns pos, sd(pos), area, sd(area), fwhm (C, P) and the chi-square of each cluster (C,)."""
    n_clusters, n_peaks = pos0.shape
    n_par = 3 * n_peaks + 3
    xc = (x * (w > 0)).sum(axis=1) / np.maximum((w > 0).sum(axis=1), 1)
    dx = x - xc[:, None]
    reach = np.maximum(0.6 * fwhm0, 1.5 * step)
    big = np.full((n_clusters, 1), np.inf)
    low = np.concatenate([pos0 - reach, np.zeros_like(area0), np.maximum(0.3 * fwhm0, step), np.zeros((n_clusters, 1)),
                          -big, -big], axis=1)
    high = np.concatenate([pos0 + reach, np.full_like(area0, np.inf), 3.0 * fwhm0 + step, np.ones((n_clusters, 1)),
                           big, big], axis=1)
    theta = np.concatenate([pos0, np.maximum(area0, 0.0), fwhm0, np.full((n_clusters, 1), 0.5),
                            np.zeros((n_clusters, 2))], axis=1)
    theta = np.clip(theta, low, high)
    mask = np.concatenate([active, active, active, np.ones((n_clusters, 3), dtype=bool)], axis=1)
    P = n_peaks

    def residual_and_jacobian(th: np.ndarray, idx: np.ndarray, with_jacobian: bool
                              ) -> tuple[np.ndarray, np.ndarray | None]:
        on = active[idx]
        pos, area, fwhm = th[:, :P], th[:, P:2 * P] * on, th[:, 2 * P:3 * P]
        eta, c0, c1 = th[:, 3 * P], th[:, 3 * P + 1], th[:, 3 * P + 2]
        pv, dp, dh, de = _batch_profile(x[idx], pos, fwhm, eta, doublet)
        model = np.matmul(pv, area[:, :, None])[:, :, 0] + c0[:, None] + c1[:, None] * dx[idx]
        r = (model - z[idx]) * w[idx]
        if not with_jacobian:
            return r, None
        jac = np.empty((idx.size, x.shape[1], n_par))
        jac[:, :, :P] = dp * area[:, None, :]
        jac[:, :, P:2 * P] = pv * on[:, None, :]
        jac[:, :, 2 * P:3 * P] = dh * area[:, None, :]
        jac[:, :, 3 * P] = np.matmul(de, area[:, :, None])[:, :, 0]
        jac[:, :, 3 * P + 1] = 1.0
        jac[:, :, 3 * P + 2] = dx[idx]
        return r, jac * w[idx][:, :, None]

    eye = np.eye(n_par)[None]
    padding = (~mask)[:, :, None] * eye  # keeps the normal matrix of padded parameters invertible
    lam = np.full(n_clusters, 1e-3)
    everything = np.arange(n_clusters)
    r, _ = residual_and_jacobian(theta, everything, False)
    cost = (r * r).sum(axis=1)
    todo = everything
    for _ in range(iterations):
        if todo.size == 0:
            break
        r, jac = residual_and_jacobian(theta[todo], todo, True)
        normal = np.matmul(jac.transpose(0, 2, 1), jac)
        grad = np.matmul(jac.transpose(0, 2, 1), r[:, :, None])
        diag = np.einsum("cii->ci", normal)
        damped = normal + lam[todo, None, None] * (diag[:, :, None] * eye + 1e-12 * eye) + padding[todo]
        try:
            delta = -np.linalg.solve(damped, grad)[:, :, 0]
        except np.linalg.LinAlgError:
            delta = -np.matmul(np.linalg.pinv(damped), grad)[:, :, 0]
        trial = np.clip(theta[todo] + delta, low[todo], high[todo])
        r_trial, _ = residual_and_jacobian(trial, todo, False)
        cost_trial = (r_trial * r_trial).sum(axis=1)
        better = cost_trial < cost[todo]
        gain = (cost[todo] - cost_trial) / np.maximum(cost[todo], 1e-300)
        theta[todo[better]] = trial[better]
        cost[todo[better]] = cost_trial[better]
        lam[todo] = np.where(better, np.maximum(lam[todo] / 3.0, 1e-9), lam[todo] * 4.0)
        finished = (better & (gain < 1e-6)) | (lam[todo] >= 1e10)
        todo = todo[~finished]
    r, jac = residual_and_jacobian(theta, everything, True)
    normal = np.matmul(jac.transpose(0, 2, 1), jac) + padding
    dof = np.maximum((w > 0).sum(axis=1) - mask.sum(axis=1), 1)
    s2 = (r * r).sum(axis=1) / dof
    var = np.einsum("cii->ci", np.linalg.pinv(normal)) * s2[:, None]
    sd = np.sqrt(np.maximum(var, 0.0))
    return theta[:, :P], sd[:, :P], theta[:, P:2 * P], sd[:, P:2 * P], theta[:, 2 * P:3 * P], (r * r).sum(axis=1)


# ------------------------------------------------------------------------------------------------ public


def _empty(pattern: Pattern, note: str) -> ObservedPeaks:
    return ObservedPeaks(np.zeros(0), np.zeros(0), pattern.wavelength, np.zeros(0), pattern.source, note)


def pick_peaks(pattern: Pattern, params: PeakPickingParams | None = None) -> ObservedPeaks:
    """Peak positions (K-alpha1, degrees), their standard uncertainties and integrated intensities from a profile.

    See the module docstring for the method. Never raises on odd data (too few points, a flat profile, NaNs):
    it returns an empty result whose ``note`` says why. ``note`` always says what was done (background,
    noise model, candidates and rejections, K-alpha2 handling).

    :raises XrdframeError: only for ``kalpha2=True`` without a usable wavelength.
    """
    p = params or PeakPickingParams()
    x = np.asarray(pattern.two_theta, dtype=float)
    y = np.asarray(pattern.intensity, dtype=float)
    notes: list[str] = []
    if x.shape != y.shape or x.ndim != 1:
        return _empty(pattern, f"no peaks: two_theta {x.shape} and intensity {y.shape} do not match")
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        notes.append(f"{int((~finite).sum())} non-finite points ignored")
        x, y = x[finite], y[finite]
    if x.size > 1 and np.any(np.diff(x) <= 0):
        x, index = np.unique(x, return_index=True)
        y = y[index]
        notes.append("points sorted by 2theta")
    if p.two_theta_range is not None:
        inside = (x >= p.two_theta_range[0]) & (x <= p.two_theta_range[1])
        x, y = x[inside], y[inside]
    if x.size < 12:
        return _empty(pattern, "; ".join([*notes, f"no peaks: only {x.size} points (at least 12 needed)"]))
    # noise from the measured points; detection on a uniform grid, the fit on the measured points
    scale = float(np.max(np.abs(y)))
    floor = max(1e-6 * scale, 1e-300)
    model = _noise_model(y)
    x_measured, y_measured = x, y
    steps = np.diff(x)
    step = float(np.median(steps))
    resampled = bool(np.max(np.abs(steps - step)) > 0.02 * step)
    if resampled:
        grid = np.arange(x[0], x[-1] + 0.5 * step, step)
        y = np.interp(grid, x, y)
        x = grid
        notes.append(f"resampled to a uniform {step:.4g} deg step for detection")
    sd = _noise_sd(y, model, floor)
    a, b = model
    kind = "Poisson-like" if 0.3 < b < 3.0 and a < 4.0 * b * max(float(np.median(y)), 1.0) else "fitted"
    notes.append(f"noise sd = sqrt({a:.3g} + {b:.3g} I) ({kind})")
    if p.fwhm is not None:
        w_med = w_wide = max(1.5, p.fwhm / step)
    else:
        w_med, w_wide = _fwhm_points(y, sd)
    fwhm_deg = w_med * step
    notes.append(f"FWHM {'given' if p.fwhm is not None else 'estimate'} {fwhm_deg:.3g} deg ({w_med:.1f} points)")
    # background
    if p.background == "snip":
        iterations = int(math.ceil(p.snip_width * w_wide))
        background = snip_background(y, iterations)
        notes.append(f"background: SNIP on LLS, {iterations} iterations")
    elif p.background == "als":
        background = _als_background(y, (p.als_smoothness * w_med) ** 4, p.als_asymmetry)
        notes.append("background: asymmetric least squares")
    else:
        background = np.zeros_like(y)
        notes.append("background: none")
    net = y - background
    sd_background = _noise_sd(background, model, floor)
    if p.smoothing_width > 0 and y.size > 5:
        window = min(_odd(p.smoothing_width * w_med, 5), y.size - (1 - y.size % 2))
        smooth = signal.savgol_filter(net, window, 2) if window > 2 else net
        notes.append(f"Savitzky-Golay smoothing over {window} points")
    else:
        smooth = net
    separation = p.min_separation / step if p.min_separation is not None else 0.5 * w_med
    candidates, props = signal.find_peaks(smooth, prominence=(p.prominence * sd_background, None),
                                          distance=max(1.0, separation))
    n_candidates = candidates.size
    notes.append(f"{n_candidates} candidates (prominence >= {p.prominence:g} sd)")
    if n_candidates == 0:
        return _empty(pattern, "; ".join([*notes, "no peaks found"]))
    doublet_on, lam1, lam2, ratio, reason = _kalpha2_setting(pattern, p)
    k = lam2 / lam1 if doublet_on else 1.0
    heights = smooth[candidates]
    if doublet_on and isinstance(p.kalpha2, str) and ratio > 0:
        widths = signal.peak_widths(smooth, candidates, rel_height=0.5)[0] * step
        evidence = _doublet_evidence(x, net, 1.0 / _noise_sd(y, model, floor), x[candidates], heights,
                                     np.clip(np.nan_to_num(widths, nan=fwhm_deg), 0.5 * fwhm_deg, 3.0 * fwhm_deg),
                                     step, (k, ratio))
        if evidence is not None:
            chi2_single, chi2_doublet, tested = evidence
            if chi2_single < chi2_doublet:
                doublet_on = False
                reason = (f"{reason}, but the {tested} strongest resolved peaks fit better as single "
                          f"K-alpha1 lines (chi2 {chi2_single:.4g} vs {chi2_doublet:.4g} as doublets)")
            else:
                reason += f"; the {tested} strongest resolved peaks fit better as doublets"
    if doublet_on:
        # drop candidates at the K-alpha2 companion position of a stronger candidate
        pos = x[candidates]
        companion = _companion(pos, k)
        nearest = np.clip(np.searchsorted(pos, companion), 1, pos.size - 1)
        nearest = np.where(np.abs(pos[nearest - 1] - companion) < np.abs(pos[nearest] - companion),
                           nearest - 1, nearest)
        tolerance = np.maximum(0.5 * fwhm_deg, 1.5 * step)
        is_companion = np.zeros(pos.size, dtype=bool)
        hit = (np.abs(pos[nearest] - companion) < tolerance) & (nearest != np.arange(pos.size)) \
            & (heights[nearest] < (ratio + 0.35) * heights)
        is_companion[nearest[hit]] = True
        candidates, heights = candidates[~is_companion], heights[~is_companion]
        notes.append(f"K-alpha2 ({reason}): {int(is_companion.sum())} K-alpha2 candidates dropped, "
                     f"peaks fitted as K-alpha1 + {ratio:g} x K-alpha2 ({lam2:.5f} A) doublets; positions are "
                     "K-alpha1")
    else:
        notes.append(f"no K-alpha2 handling ({reason})")
    widths = signal.peak_widths(smooth, candidates, rel_height=0.5)[0]
    widths = np.where(np.isfinite(widths) & (widths > 0), widths, w_med)
    fwhm0 = np.clip(widths, 0.5 * w_med, 3.0 * w_wide) * step
    pos0 = x[candidates].astype(float)
    if doublet_on:  # the maximum of an unresolved doublet sits between K-alpha1 and K-alpha2
        split = _companion(pos0, k) - pos0
        pos0 = pos0 - np.where(split < fwhm0, ratio / (1.0 + ratio) * split, 0.0)
    area0 = np.maximum(heights, 0.0) * fwhm0 * 1.2 / (1.0 + (ratio if doublet_on else 0.0))
    if not p.refine:
        pos, pos_sd, area = pos0, np.full(pos0.size, step / 2.0), area0
        height = heights
        n_rejected = 0
        notes.append("positions of the smoothed maxima (no profile fit)")
    else:
        net_measured = y_measured - (np.interp(x_measured, x, background) if resampled else background)
        pos, pos_sd, area, area_sd, fwhm = _fit_all(x_measured, net_measured, _noise_sd(y_measured, model, floor),
                                                    pos0, fwhm0, area0, step, (k, ratio) if doublet_on else None)
        height = area * _G_NORM / fwhm
        good = np.isfinite(pos) & np.isfinite(pos_sd) & (area > 0) & (area > p.min_significance * area_sd)
        good &= (pos >= x[0]) & (pos <= x[-1]) & (pos_sd < fwhm)
        n_rejected = int((~good).sum())
        pos, pos_sd, area, height, fwhm = pos[good], pos_sd[good], area[good], height[good], fwhm[good]
        # peaks that converged onto one another: keep the larger
        order = np.argsort(pos, kind="stable")
        pos, pos_sd, area, height, fwhm = pos[order], pos_sd[order], area[order], height[order], fwhm[order]
        close = np.flatnonzero(np.diff(pos) < 0.25 * np.minimum(fwhm[:-1], fwhm[1:]))
        drop = np.where(area[close] < area[close + 1], close, close + 1)
        keep = np.ones(pos.size, dtype=bool)
        keep[drop] = False
        n_merged = int((~keep).sum())
        pos, pos_sd, area, height = pos[keep], pos_sd[keep], area[keep], height[keep]
        notes.append(f"profile fit: {n_rejected} rejected (area < {p.min_significance:g} sd), {n_merged} merged")
    if p.min_relative_intensity > 0 and height.size:
        keep = height >= p.min_relative_intensity * float(height.max())
        notes.append(f"{int((~keep).sum())} below {p.min_relative_intensity:g} of the highest peak dropped")
        pos, pos_sd, area = pos[keep], pos_sd[keep], area[keep]
    if p.max_peaks is not None and pos.size > p.max_peaks:
        strongest = np.sort(np.argsort(area, kind="stable")[::-1][: p.max_peaks])
        notes.append(f"kept the {p.max_peaks} strongest of {pos.size}")
        pos, pos_sd, area = pos[strongest], pos_sd[strongest], area[strongest]
    order = np.argsort(pos, kind="stable")
    notes.insert(0, f"{pos.size} peaks" if pos.size else "no peaks found")
    wavelength = pattern.wavelength
    if doublet_on and pattern.wavelength is not None and abs(lam1 - pattern.wavelength) > 1e-9:
        wavelength = lam1
        notes.append(f"wavelength {pattern.wavelength:g} A (K-alpha mean) replaced by K-alpha1 {lam1:g} A, the "
                     "wavelength of the reported positions")
    return ObservedPeaks(pos[order], area[order], wavelength, pos_sd[order], pattern.source, "; ".join(notes))


def _doublet_evidence(x: np.ndarray, net: np.ndarray, weight: np.ndarray, positions: np.ndarray,
                      heights: np.ndarray, fwhm: np.ndarray, step: float, doublet: tuple[float, float],
                      n_test: int = 12) -> tuple[float, float, int] | None:
    """Chi-square of the strongest peaks whose K-alpha2 companion is resolved (split >= FWHM / 2), each fitted as one
    line and as a K-alpha1 + K-alpha2 doublet (same number of parameters); ``None`` when no peak can tell."""
    split = _companion(positions, doublet[0]) - positions
    usable = np.flatnonzero((split >= 0.5 * fwhm) & (positions - 2.5 * fwhm > x[0])
                            & (positions + split + 2.5 * fwhm < x[-1]))
    if usable.size == 0:
        return None
    chosen = usable[np.argsort(heights[usable])[::-1][:n_test]]
    pos0, fwhm0, split = positions[chosen], fwhm[chosen], split[chosen]
    lo = np.searchsorted(x, pos0 - 2.5 * fwhm0)
    hi = np.searchsorted(x, pos0 + split + 2.5 * fwhm0, side="right")
    width = int((hi - lo).max())
    rows = lo[:, None] + np.arange(width)[None, :]
    inside = rows < hi[:, None]
    rows = np.minimum(rows, x.size - 1)
    w = np.where(inside, weight[rows], 0.0)
    area0 = np.maximum(heights[chosen], 0.0)[:, None] * fwhm0[:, None]
    active = np.ones((chosen.size, 1), dtype=bool)
    single = _fit_batch(x[rows], net[rows], w, pos0[:, None], fwhm0[:, None], area0, active, step, None)[5]
    double = _fit_batch(x[rows], net[rows], w, pos0[:, None], fwhm0[:, None], area0 / (1 + doublet[1]), active, step,
                        doublet)[5]
    return float(single.sum()), float(double.sum()), int(chosen.size)


def _fit_all(x: np.ndarray, net: np.ndarray, sd: np.ndarray, pos0: np.ndarray, fwhm0: np.ndarray,
             area0: np.ndarray, step: float, doublet: tuple[float, float] | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit every cluster of overlapping peaks (batched by cluster size, :func:`_fit_batch`); returns positions,
    their sd, areas, their sd and FWHMs, in the order of ``pos0``."""
    low = pos0 - 2.5 * fwhm0
    high = pos0 + 2.5 * fwhm0
    if doublet is not None:
        high = high + np.maximum(_companion(pos0, doublet[0]) - pos0, 0.0)
    n = pos0.size
    new_cluster = np.concatenate([[True], low[1:] > np.maximum.accumulate(high)[:-1]])
    cluster = np.cumsum(new_cluster) - 1
    # long chains of overlapping peaks are fitted in consecutive pieces of at most _MAX_CLUSTER peaks
    first = np.flatnonzero(new_cluster)
    rank = np.arange(n) - first[cluster]
    piece_start = new_cluster | (rank % _MAX_CLUSTER == 0)
    piece = np.cumsum(piece_start) - 1
    starts = np.flatnonzero(piece_start)
    counts = np.diff(np.append(starts, n))
    rank = np.arange(n) - starts[piece]
    lo = np.searchsorted(x, np.minimum.reduceat(low, starts))
    hi = np.searchsorted(x, np.maximum.reduceat(high, starts), side="right")
    out = [pos0.copy(), np.full(n, np.inf), area0.copy(), np.full(n, np.inf), fwhm0.copy()]
    weight = 1.0 / sd
    span = hi - lo
    size_class = np.searchsorted(np.array([1, 2, 4, _MAX_CLUSTER]), counts)  # 1, 2, 3-4, 5+ peaks
    width_class = np.floor(np.log(np.maximum(span, 1)) / np.log(1.5)).astype(int)  # windows within a factor 1.5
    usable = span >= 3 * counts + 4
    batches = sorted(set(zip(size_class[usable].tolist(), width_class[usable].tolist(), strict=True)))
    for size_index, width_index in batches:
        chosen = np.flatnonzero(usable & (size_class == size_index) & (width_class == width_index))
        max_peaks = int(counts[chosen].max())
        width = int(span[chosen].max())
        rows = lo[chosen][:, None] + np.arange(width)[None, :]
        inside = rows < hi[chosen][:, None]
        rows = np.minimum(rows, x.size - 1)
        idx = np.flatnonzero(np.isin(piece, chosen))
        slot = np.searchsorted(chosen, piece[idx])
        shape = (chosen.size, max_peaks)
        pos_b = np.repeat(x[lo[chosen]][:, None], max_peaks, axis=1)
        fwhm_b, area_b = np.full(shape, 3.0 * step), np.zeros(shape)
        active = np.zeros(shape, dtype=bool)
        pos_b[slot, rank[idx]], fwhm_b[slot, rank[idx]], area_b[slot, rank[idx]] = pos0[idx], fwhm0[idx], area0[idx]
        active[slot, rank[idx]] = True
        fit = _fit_batch(x[rows], net[rows], np.where(inside, weight[rows], 0.0), pos_b, fwhm_b, area_b, active,
                         step, doublet)
        for target, values in zip(out, fit[:5], strict=True):
            target[idx] = values[slot, rank[idx]]
    return out[0], out[1], out[2], out[3], out[4]


def reflection_two_theta(cell: Sequence[float], wavelength: float, two_theta_max: float,
                         space_group: int | None = None) -> np.ndarray:
    """Sorted, distinct 2theta (degrees) of the reflections of a cell ``(a, b, c, alpha, beta, gamma)`` (Angstrom,
    degrees) up to ``two_theta_max``; without systematic absences of ``space_group`` (gemmi) when given.

    For checking picked peaks against a known cell.

    >>> [round(float(t), 3) for t in reflection_two_theta((5.43, 5.43, 5.43, 90, 90, 90), 1.5406, 50, 227)]
    [28.447, 47.312]
    """
    a, b, c, alpha, beta, gamma = (float(v) for v in cell)
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    metric = np.array([[a * a, a * b * cg, a * c * cb],
                       [a * b * cg, b * b, b * c * ca],
                       [a * c * cb, b * c * ca, c * c]])
    reciprocal = np.linalg.inv(metric)
    q_max = (2.0 * math.sin(math.radians(min(two_theta_max, 179.9)) / 2.0) / wavelength) ** 2
    limits = [int(math.floor(math.sqrt(q_max * metric[i, i]))) + 1 for i in range(3)]  # |h| <= d_max(a)/d_min
    axes = [np.arange(-m, m + 1) for m in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    q = np.einsum("ni,ij,nj->n", hkl, reciprocal, hkl)
    keep = (q > 0) & (q <= q_max)
    hkl, q = hkl[keep], q[keep]
    if space_group is not None:
        import gemmi

        ops = gemmi.find_spacegroup_by_number(int(space_group)).operations()
        allowed = np.fromiter((not ops.is_systematically_absent(list(map(int, h))) for h in hkl), dtype=bool,
                              count=len(hkl))
        q = q[allowed]
    two_theta = 2.0 * np.degrees(np.arcsin(np.sqrt(q) * wavelength / 2.0))
    return np.unique(np.round(two_theta, 6))
