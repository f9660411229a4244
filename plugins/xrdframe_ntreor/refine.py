"""One trial cell against the observed lines: index, refine with a zero shift, detect centring, halve axes.

Everything here works on a single cell given by its six Q coefficients (A, B, C, D, E, F), Angstrom^-2
(:mod:`xrdframe.lattice`), and observed lines as Q = 1/d^2 (Angstrom^-2) or 2theta (degrees).

>>> coeffs = np.array([1, 1, 1, 0, 0, 0]) / 5.0**2                  # cubic P, a = 5 A
>>> hkl, q = reflections(coeffs, 3.0 / 25.0)
>>> len(hkl), hkl[[0, 3, 9]].tolist(), np.unique((q * 25).round(6)).tolist()   # one of each Friedel pair
(13, [[0, 0, 1], [0, 1, -1], [1, -1, -1]], [1.0, 2.0, 3.0])
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import attrs
import numpy as np
from scipy import stats

from xrdframe.lattice import centring_mask, q_to_two_theta, two_theta_to_q

from .systems import MetricSystem, hkl_half_space, terms6

__all__ = ["CENTRINGS", "centring_mask", "reflections", "q_gradient", "Indexing", "index_lines", "refine_cell",
           "refine_indexing", "detect_centring", "halving_options", "halve_axes",
           "is_zone", "fits_zero_shift", "residual_sum", "lower_symmetry_p_value"]

#: Lattice centrings tested per crystal system (the most restrictive allowed one is reported). Some describe a
#: smaller primitive cell (tetragonal C, monoclinic B, any centred triclinic cell): the Niggli reduction of the
#: centred cell then gives the true lattice of a supercell found by the search.
CENTRINGS = {"cubic": ("F", "I"), "tetragonal": ("I", "C", "F"), "hexagonal": ("R",),
             "orthorhombic": ("F", "I", "C", "A", "B"), "monoclinic": ("C", "A", "I", "B", "F"),
             "triclinic": ("F", "I", "C", "A", "B")}

#: Largest Miller index enumerated along any axis.
MAX_INDEX = 60


def reflections(coeffs: np.ndarray, q_max: float, centring: str = "P") -> tuple[np.ndarray, np.ndarray]:
    """Every reflection (one of each Friedel pair) with Q <= ``q_max`` of the cell, sorted by Q and, among equal
    Q, by the sum of squared indices: ``(hkl (m, 3) int, q (m,))``."""
    coeffs = np.asarray(coeffs, dtype=float)
    A, B, C, D, E, F = coeffs
    g_star = np.array([[A, D / 2, E / 2], [D / 2, B, F / 2], [E / 2, F / 2, C]])
    try:
        g = np.linalg.inv(g_star)
    except np.linalg.LinAlgError:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0)
    # |h| = |r . a| <= |r| |a|
    limits = tuple(min(MAX_INDEX, int(math.floor(math.sqrt(max(q_max * g[i, i], 0.0)) + 1e-9))) for i in range(3))
    hkl, terms = _half_space(limits, centring)  # type: ignore[arg-type]
    q = terms @ coeffs
    keep = np.flatnonzero((q <= q_max) & (q > 0))
    order = keep[_order_by_q(q[keep])]
    return hkl[order], q[order]


def _order_by_q(q: np.ndarray) -> np.ndarray:
    """The permutation sorting ``q`` (Angstrom^-2) rounded to 1e-12, ties in their given order: the order of a
    stable argsort of ``np.round(q, 12)``. It sorts one int64 key per reflection (rounded Q in the high bits,
    the position in the low bits, all distinct), which numpy's vectorized sort does faster than the stable
    argsort of floats from about 250 reflections: 1.4x for 900, 1.5x for 1,400, 3.5x for 5,200 (measured; this
    runs for every indexing of a trial cell)."""
    position_bits = max(int(q.size).bit_length(), 1)
    scaled = np.rint(q * 1e12)
    if q.size == 0 or float(scaled.max()) >= 2.0 ** (62 - position_bits):  # Q > ~2 A^-2 with large boxes
        return np.argsort(np.round(q, 12), kind="stable")
    key = (scaled.astype(np.int64) << position_bits) | np.arange(q.size, dtype=np.int64)
    return np.sort(key) & ((1 << position_bits) - 1)


@lru_cache(maxsize=256)
def _half_space(limits: tuple[int, int, int], centring: str) -> tuple[np.ndarray, np.ndarray]:
    """hkl (one of each Friedel pair) within ``limits`` allowed by ``centring``, ordered by the sum of squared
    indices (stable), and their Q terms (read-only)."""
    hkl = hkl_half_space(*limits)
    if centring != "P":
        hkl = hkl[centring_mask(hkl, centring)]
    hkl = hkl[np.argsort((hkl**2).sum(axis=1), kind="stable")]
    terms = terms6(hkl)
    hkl.setflags(write=False)
    terms.setflags(write=False)
    return hkl, terms


def q_gradient(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
    """dQ/d(2theta) in Angstrom^-2 per degree: 2 sin(2theta) / lambda^2 * pi/180."""
    return 2.0 * np.sin(np.radians(np.asarray(two_theta, dtype=float))) / wavelength**2 * (np.pi / 180.0)


@attrs.frozen(eq=False)
class Indexing:
    """Observed lines matched to a cell's reflections.

    :ivar hkl: Miller indices per observed line, shape (n, 3); zeros where unindexed.
    :ivar q_calc: calculated Q of the matched reflection (Angstrom^-2), NaN where unindexed.
    :ivar indexed: which lines are within tolerance.
    :ivar q_possible: every calculated Q up to the last observed line plus tolerance (Angstrom^-2).
    """

    hkl: np.ndarray
    q_calc: np.ndarray
    indexed: np.ndarray
    q_possible: np.ndarray

    @property
    def count(self) -> int:
        """Number of indexed lines."""
        return int(np.count_nonzero(self.indexed))


def index_lines(q_obs: np.ndarray, coeffs: np.ndarray, tolerance_q: np.ndarray, centring: str = "P") -> Indexing:
    """Match each observed Q (Angstrom^-2) to the nearest calculated reflection of the cell; a line is indexed when
    within ``tolerance_q`` (Angstrom^-2, scalar or per line)."""
    q_obs = np.asarray(q_obs, dtype=float)
    tolerance_q = np.broadcast_to(np.asarray(tolerance_q, dtype=float), q_obs.shape)
    hkl_all, q_all = reflections(coeffs, float(q_obs.max() + tolerance_q.max()), centring)
    n = q_obs.size
    if q_all.size == 0:
        return Indexing(np.zeros((n, 3), dtype=np.int64), np.full(n, np.nan), np.zeros(n, dtype=bool), q_all)
    i = np.searchsorted(q_all, q_obs)
    lo = np.clip(i - 1, 0, q_all.size - 1)
    hi = np.clip(i, 0, q_all.size - 1)
    pick = np.where(np.abs(q_all[lo] - q_obs) <= np.abs(q_all[hi] - q_obs), lo, hi)
    # among coincident reflections take the first (lowest indices)
    first_of_value = np.searchsorted(np.round(q_all, 12), np.round(q_all[pick], 12))
    pick = np.where(np.abs(q_all[first_of_value] - q_all[pick]) <= 1e-12, first_of_value, pick)
    q_calc = q_all[pick]
    indexed = np.abs(q_calc - q_obs) <= tolerance_q
    hkl = np.where(indexed[:, None], hkl_all[pick], 0)
    return Indexing(hkl, np.where(indexed, q_calc, np.nan), indexed, q_all)


def fits_zero_shift(system: MetricSystem, n_lines: int) -> bool:
    """Whether :func:`refine_cell` refines a zero shift from ``n_lines`` indexed lines (three more than the
    cell's free parameters)."""
    return n_lines >= system.n_params + 3


def refine_cell(system: MetricSystem, two_theta: np.ndarray, wavelength: float, hkl: np.ndarray,
                indexed: np.ndarray, *, zero_shift: bool = True, max_zero: float = 0.3,
                zero_start: float = 0.0) -> tuple[np.ndarray, float]:
    """Least-squares free parameters of ``system`` and zero shift (degrees, observed = true + shift) from the
    indexed lines: Q(2theta_obs - z) = terms(hkl) . x, linearised in z and iterated (residuals weighted as 2theta).

    :returns: ``(x (p,), zero_shift)``; the zero shift is 0 when not refined or when fewer than p + 3 lines.
    """
    two_theta = np.asarray(two_theta, dtype=float)[indexed]
    rows = system.terms(np.asarray(hkl)[indexed])
    z = float(zero_start)
    fit_zero = zero_shift and fits_zero_shift(system, rows.shape[0])
    x = np.zeros(system.n_params)
    for _ in range(3 if fit_zero else 1):
        q = two_theta_to_q(two_theta - z, wavelength)
        grad = q_gradient(two_theta - z, wavelength)
        weight = 1.0 / grad
        design = rows * weight[:, None]
        if fit_zero:
            design = np.concatenate([design, np.ones((rows.shape[0], 1))], axis=1)  # d(2theta) = dz
        solution, *_ = np.linalg.lstsq(design, q * weight, rcond=None)
        x = solution[:system.n_params]
        if not fit_zero:
            break
        z += float(solution[-1])
        if abs(z) > max_zero:
            z = float(np.clip(z, -max_zero, max_zero))
    return x, z if fit_zero else float(zero_start)


def residual_sum(system: MetricSystem, two_theta: np.ndarray, wavelength: float, hkl: np.ndarray,
                 indexed: np.ndarray, zero_start: float = 0.0) -> tuple[float, int]:
    """Sum of squared 2theta residuals (degrees^2) of the lines ``indexed`` by ``hkl`` after the least-squares fit
    of :func:`refine_cell` (zero shift refined), and the number of parameters fitted."""
    two_theta = np.asarray(two_theta, dtype=float)
    x, zero = refine_cell(system, two_theta, wavelength, hkl, indexed, zero_start=zero_start)
    q_calc = system.terms(np.asarray(hkl)[indexed]) @ x
    residual = two_theta[indexed] - (q_to_two_theta(q_calc, wavelength) + zero)
    fitted = system.n_params + int(fits_zero_shift(system, int(np.count_nonzero(indexed))))
    return float(np.sum(residual**2)), fitted


def lower_symmetry_p_value(lower: MetricSystem, higher: MetricSystem, two_theta: np.ndarray, wavelength: float,
                           hkl_lower: np.ndarray, hkl_higher: np.ndarray, indexed: np.ndarray,
                           zero_start: float = 0.0) -> float:
    """Probability that the lower system's extra parameters improve the fit of the same indexed lines this much
    by chance: Hamilton's R-factor ratio test (Hamilton (1965), Acta Cryst. 18, 502) as the F test of nested
    least-squares models, F = ((S_higher - S_lower) / (p_lower - p_higher)) / (S_lower / (n - p_lower)) with S
    the sums of squared 2theta residuals (:func:`residual_sum`) and p the parameters fitted. A small value means
    the distortion from the higher symmetry is significant; 1 when there are too few lines to tell.

    ``hkl_higher`` are the same reflections' indices in the higher system's conventional cell.

    >>> from xrdframe.lattice import q_coefficients, q_to_two_theta
    >>> hkl = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1], [2, 0, 0],
    ...                 [0, 2, 0], [0, 0, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 2, 1], [1, 0, 2], [0, 1, 2]])
    >>> noise = np.random.default_rng(0).normal(0.0, 0.01, len(hkl))
    >>> def lines(cell):
    ...     return q_to_two_theta(terms6(hkl) @ np.array(q_coefficients(cell)), 1.5406) + noise
    >>> ortho, tetra, alle = MetricSystem.get("orthorhombic"), MetricSystem.get("tetragonal"), np.ones(16, bool)
    >>> lower_symmetry_p_value(ortho, tetra, lines((5.0, 5.0, 7.0, 90, 90, 90)), 1.5406, hkl, hkl, alle) > 0.01
    True
    >>> lower_symmetry_p_value(ortho, tetra, lines((5.0, 5.01, 7.0, 90, 90, 90)), 1.5406, hkl, hkl, alle) < 1e-6
    True
    """
    n = int(np.count_nonzero(indexed))
    s_lower, p_lower = residual_sum(lower, two_theta, wavelength, hkl_lower, indexed, zero_start)
    s_higher, p_higher = residual_sum(higher, two_theta, wavelength, hkl_higher, indexed, zero_start)
    dof = n - p_lower
    if dof <= 0 or p_lower <= p_higher or not (np.isfinite(s_lower) and np.isfinite(s_higher)):
        return 1.0
    if s_lower <= 0.0:
        return 0.0 if s_higher > 0.0 else 1.0
    f = (max(s_higher - s_lower, 0.0) / (p_lower - p_higher)) / (s_lower / dof)
    return float(stats.f.sf(f, p_lower - p_higher, dof))


def refine_indexing(system: MetricSystem, two_theta: np.ndarray, wavelength: float, coeffs: np.ndarray,
                    tolerances: tuple[float, ...], *, centring: str = "P", zero_shift: bool = True,
                    zero_start: float = 0.0, min_indexed: int = 0) -> tuple[np.ndarray, float, Indexing] | None:
    """Alternate indexing (tolerance ``tolerances[i]``, degrees 2theta, one entry per round) and least-squares
    refinement (:func:`refine_cell`); then index once more with the last tolerance.

    :returns: ``(coefficients, zero_shift, indexing)``, or None when fewer than ``min_indexed`` lines index or
        the metric stops being positive definite.
    """
    grad = q_gradient(two_theta, wavelength)
    coeffs = np.asarray(coeffs, dtype=float)
    zero = float(zero_start)
    for tol in (*tolerances, tolerances[-1]):
        q_obs = two_theta_to_q(two_theta - zero, wavelength)
        indexing = index_lines(q_obs, coeffs, grad * tol, centring)
        if indexing.count < system.n_params + 1:
            return None
        x, zero = refine_cell(system, two_theta, wavelength, indexing.hkl, indexing.indexed, zero_shift=zero_shift,
                              zero_start=zero_start)
        coeffs = system.coefficients(x)[0]
        if np.any(coeffs[:3] <= 0):
            return None
    q_obs = two_theta_to_q(two_theta - zero, wavelength)
    indexing = index_lines(q_obs, coeffs, grad * tolerances[-1], centring)
    if indexing.count < min_indexed:
        return None
    return coeffs, zero, indexing


def _near_swaps(system: MetricSystem, coeffs: np.ndarray, closeness: float = 0.01) -> list[np.ndarray]:
    """The cell and, for orthorhombic and monoclinic cells, copies with two nearly equal axes exchanged (their
    near-coincident reflections are easily confused by a refinement started from a rough cell)."""
    starts = [coeffs]
    if system.name in ("orthorhombic", "monoclinic"):
        pairs = ((0, 1), (1, 2)) if system.name == "monoclinic" else ((0, 1), (0, 2), (1, 2))
        for i, j in pairs:
            if abs(coeffs[i] / coeffs[j] - 1.0) < closeness:
                swapped = coeffs.copy()
                swapped[i], swapped[j] = coeffs[j], coeffs[i]
                starts.append(swapped)
                mean = 0.5 * (coeffs[i] + coeffs[j])
                for sign in (1.0, -1.0):  # halfway, split the other way round by a quarter of the difference
                    split = coeffs.copy()
                    split[i], split[j] = mean + sign * 0.25 * (coeffs[i] - coeffs[j]), mean - sign * 0.25 * (
                        coeffs[i] - coeffs[j])
                    starts.append(split)
    return starts


#: Lines the refined primitive cell may index fewer with a centring's reflections only for the centring to be tried.
_CENTRING_SLACK = 2


def detect_centring(system: MetricSystem, two_theta: np.ndarray, wavelength: float, coeffs: np.ndarray,
                    tolerance: float, *, zero_shift: bool = True, zero_start: float = 0.0
                    ) -> tuple[str, np.ndarray, float, Indexing] | None:
    """The most restrictive lattice centring of ``system`` (fewest possible lines) whose reflections, after
    re-indexing and refinement, index as many lines as the primitive lattice does (tolerance in degrees 2theta).
    Refinements also start from the cell with nearly equal axes exchanged.

    :returns: ``(centring, coefficients, zero_shift, indexing)`` (``'P'`` when no centring holds).
    """
    def refined(letter: str, start: np.ndarray, min_indexed: int) -> tuple[np.ndarray, float, Indexing] | None:
        return refine_indexing(system, two_theta, wavelength, start, (tolerance, tolerance), centring=letter,
                               zero_shift=zero_shift, zero_start=zero_start, min_indexed=min_indexed)

    starts = _near_swaps(system, np.asarray(coeffs, dtype=float))
    primitive = [r for r in (refined("P", start, 0) for start in starts) if r is not None]
    if not primitive:
        return None
    best = max(primitive, key=lambda r: r[2].count)
    letter = "P"
    q_best = two_theta_to_q(np.asarray(two_theta, dtype=float) - best[1], wavelength)
    tolerance_q = q_gradient(two_theta, wavelength) * tolerance
    for trial_letter in CENTRINGS[system.name]:
        if index_lines(q_best, best[0], tolerance_q, trial_letter).count < best[2].count - _CENTRING_SLACK:
            # the refined primitive cell, its reflections restricted to the centred lattice's, misses too many of
            # the lines it indexes for the centring to hold; skipping it saves the refinements from every start
            # (three rounds of indexing and least squares each), most of the time of a lattice without centring
            continue
        for start in starts:
            trial = refined(trial_letter, start, best[2].count)
            if trial is not None and trial[2].count >= best[2].count and (
                    trial[2].q_possible.size < best[2].q_possible.size):
                letter, best = trial_letter, trial
    return (letter, *best)


def halving_options(system: MetricSystem) -> tuple[tuple[int, ...], ...]:
    """Groups of cell edges (0 = a, 1 = b, 2 = c) halved or doubled together in ``system``."""
    return {"cubic": ((0, 1, 2),), "tetragonal": ((0, 1), (2,)), "hexagonal": ((0, 1), (2,))}.get(
        system.name, ((0,), (1,), (2,)))


def halve_axes(system: MetricSystem, q_obs: np.ndarray, coeffs: np.ndarray, tolerance_q: np.ndarray,
               may_lose: int = 0, chance: float = 0.05, divisors: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """Halve cell edges (a, b, c, or their symmetry-tied groups), or divide them by the other ``divisors``, as
    long as every line indexed by the cell stays indexed; returns the Q coefficients of the smallest such cell
    (the input when no division holds). Thirds undo a basis line taken as 003 that is 001 (an orthorhombic
    11.51 x 4.369 x 10.69 A cell for the 3.563 A third of its c).

    ``may_lose``: lines the halved cell may leave unindexed when the larger cell's indexing of them is plausibly
    chance, the probability that each falls within tolerance of one of its reflections by chance (the product,
    from the local density of distinct reflections) being at least ``chance``. At widened tolerances a cell with
    doubled edges indexes an impurity line among its dense reflections about as often as not.
    """
    coeffs = np.asarray(coeffs, dtype=float)
    tolerance_q = np.broadcast_to(np.asarray(tolerance_q, dtype=float), np.shape(q_obs))
    indexing = index_lines(q_obs, coeffs, tolerance_q)
    count = indexing.count
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))  # A B C D E F as products of axes
    changed = count > 0
    for _ in range(8):  # at most 3^8 along an axis
        if not changed:
            break
        changed = False
        for axes, divisor in itertools.product(halving_options(system), divisors):
            factor = np.array([(divisor if i in axes else 1.0) * (divisor if j in axes else 1.0) for i, j in pairs])
            trial = coeffs * factor
            halved = index_lines(q_obs, trial, tolerance_q)
            lost = indexing.indexed & ~halved.indexed
            if halved.count >= count or (
                    0 < np.count_nonzero(lost) <= may_lose and halved.count >= count - may_lose
                    and chance_coincidence(indexing.q_possible, q_obs[lost], tolerance_q[lost]) >= chance):
                coeffs, changed, indexing, count = trial, True, halved, halved.count
    return coeffs


def chance_coincidence(q_calc: np.ndarray, q_lines: np.ndarray, tolerance_q: np.ndarray) -> float:
    """Probability that every line of ``q_lines`` falls within its tolerance of one of the calculated ``q_calc``
    (Angstrom^-2) by chance: the product over the lines of 1 - exp(-lambda), lambda the expected number of distinct
    calculated Q within the tolerance window from their density over a window ten tolerances wide."""
    q_calc = np.unique(np.round(np.asarray(q_calc, dtype=float), 10))
    q_lines = np.atleast_1d(np.asarray(q_lines, dtype=float))
    tol = np.broadcast_to(np.asarray(tolerance_q, dtype=float), q_lines.shape)
    near = np.abs(q_calc[None, :] - q_lines[:, None]) <= 5.0 * tol[:, None]
    expected = near.sum(axis=1) / 5.0
    return float(np.prod(1.0 - np.exp(-expected)))


def is_zone(hkl: np.ndarray) -> bool:
    """Whether the indexed reflections (rows of zeros ignored) all lie in one plane of reciprocal space
    (a dominant zone: the cell's third dimension is then undetermined)."""
    hkl = np.asarray(hkl, dtype=float)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    return hkl.shape[0] < 3 or np.linalg.matrix_rank(hkl) < 3
