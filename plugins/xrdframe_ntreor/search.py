"""Trial-and-error indexing in index space (the TREOR family, Werner, Eriksson & Westdahl (1985),
J. Appl. Cryst. 18, 367; N-TREOR09, Altomare et al. (2009), J. Appl. Cryst. 42, 768).

On Q = 1/d^2 of the first ``max_lines`` observed lines, for each crystal system in the classical order (cubic,
tetragonal, hexagonal/trigonal, orthorhombic, monoclinic, triclinic):

1. *trial cells*: small sets of basis lines get every trial hkl of their role (per-system index limits) and the
   small linear system terms(hkl) x = Q is solved for the free Q coefficients x, in batches (one precomputed
   inverse per hkl assignment, one matrix product per batch of line sets); non-physical metrics and cells above
   ``max_volume`` are dropped. Basis schemes: cubic one line; tetragonal and hexagonal any two of the first six
   lines, or an hk0 line and a later hkl line; orthorhombic three axial lines (n00, 0n0, 00n) or any three of
   the first six; monoclinic three axial lines and an h0l line (or 0k0 replaced by an hkl line), or any four of
   the first six lines with low hkl (a C-centred cell whose first lines are 020, 200, -111, 111); triclinic three
   axial lines among the first six and three lines 110, 101, 01+-1 among the first fifteen;
2. *screening*: each trial cell's Q table (a fixed hkl table per system) is compared with the first
   ``n_screen`` observed lines, all trial cells at once; those indexing nearly all of them are kept, the most
   compact first;
3. *refinement* (:mod:`.refine`): index all lines, least squares with a zero shift, re-index, halve axes while
   every line stays indexed, detect the lattice centring, flag dominant zones, score with M20 and F_N; a cell
   leaving lines unindexed is tried doubled along its axes; an orthorhombic, monoclinic or triclinic cell whose
   lattice has higher metric symmetry (Le Page, :func:`xrdframe.lattice.lattice_symmetry`) is refined again in
   that system, and a cubic, tetragonal or hexagonal one in the next lower system from slightly distorted
   starts (pseudo-symmetry), each kept only when the lines agree (M20);
4. the groups (cubic), (tetragonal, hexagonal), (orthorhombic), (monoclinic), (triclinic) are searched in turn,
   each with the tolerances widened by ``widen`` until it gives an acceptable solution (M20 >= ``m20_threshold``
   / sqrt(widening), at most ``max_unindexed`` unindexed lines, no dominant zone); a solution with a zero shift
   over half the tolerance is searched once more from the corrected lines (as is the best partial one of a
   failed high-symmetry group); the descent stops at the first group with an acceptable solution.

Equivalent solutions (same Niggli-reduced primitive cell) collapse into the best-ranked one; acceptable
solutions rank before the others, and within each part by M20 / (1 + unindexed lines) (GSAS-II counts those
among the first 20), then smallest volume.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import time
from collections.abc import Sequence

import attrs
import numpy as np

from xrdframe.lattice import (
    LatticeMatch,
    cell_from_q_coefficients,
    lattice_symmetry,
    q_coefficients,
    q_to_two_theta,
    two_theta_to_q,
)
from xrdframe.lattice import niggli_cell as lattice_niggli_cell

from .merit import f_n, m20
from .refine import (
    Indexing,
    chance_coincidence,
    detect_centring,
    halve_axes,
    halving_options,
    index_lines,
    is_zone,
    lower_symmetry_p_value,
    q_gradient,
    refine_indexing,
    reflections,
)
from .systems import SYSTEMS, MetricSystem

__all__ = ["SearchParams", "Solution", "SearchResult", "search", "validate_lines", "niggli_cell"]

Cell = tuple[float, float, float, float, float, float]

#: Lattice centrings whose reflections the screening counts besides the primitive ones, per system (in the
#: system's setting; a tetragonal C or monoclinic B cell is a smaller primitive one, which is tried itself).
#: A trial cell is judged by its lattice, not by the cell as found: as a primitive cell, the conventional cell
#: of a C-centred monoclinic lattice has twice the calculated lines, and noisy lines with impurities put it
#: behind false primitive cells.
SCREEN_CENTRINGS = {"cubic": ("I", "F"), "tetragonal": ("I",), "hexagonal": ("R",),
                    "orthorhombic": ("C", "A", "B", "I", "F"), "monoclinic": ("C", "A", "I")}


#: Share of ``SearchParams.time_budget`` the triclinic search gets from its own start at the widest tolerance,
#: when the monoclinic search before it left less.
TRICLINIC_SHARE = 1.0 / 3.0

#: Cost of the search's work in reference seconds (the budget counts work, not wall time, so that an answer does
#: not depend on the machine or its load): one refinement of a trial cell (:func:`_evaluate`, with what it calls),
#: and one (trial cell, calculated reflection, observed line) comparison when screening. Fitted (least squares of
#: the relative error) to the wall time of 154 single-process searches on the 2-core development machine (every
#: sixth shared structure, ideal and noisy lines, budget 10): wall time / work has median 1.0, 10th and 90th
#: percentiles 0.83 and 1.57 (costs not counted: zero-shift retries, reduction, the extinction group).
SECONDS_PER_REFINEMENT = 0.0057
SECONDS_PER_COMPARISON = 5.5e-10


@attrs.define
class _Work:
    """Work done by one search so far: refinements and screening comparisons."""

    refinements: int = 0
    comparisons: int = 0

    @property
    def seconds(self) -> float:
        """The work in reference seconds."""
        return self.refinements * SECONDS_PER_REFINEMENT + self.comparisons * SECONDS_PER_COMPARISON


_WORK: contextvars.ContextVar[_Work] = contextvars.ContextVar("ntreor_work")


def _work_done() -> float:
    """Reference seconds of work of the current search (0 outside :func:`search`)."""
    work = _WORK.get(None)
    return 0.0 if work is None else work.seconds


def _count_work(refinements: int = 0, comparisons: int = 0) -> None:
    work = _WORK.get(None)
    if work is not None:
        work.refinements += refinements
        work.comparisons += comparisons


def _systems(value: Sequence[str]) -> tuple[str, ...]:
    names = tuple("hexagonal" if s == "trigonal" else s for s in value)
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown crystal system(s) {unknown}; expected some of {SYSTEMS}")
    return tuple(s for s in SYSTEMS if s in names)


@attrs.frozen
class SearchParams:
    """Settings of :func:`search`.

    :ivar max_lines: observed lines used (the first ones), 20-30 is usual.
    :ivar min_lines: fewer valid lines than this: no search.
    :ivar tolerance: indexing tolerance of a refined cell, degrees 2theta.
    :ivar screen_tolerance: tolerance when screening unrefined trial cells, degrees 2theta.
    :ivar widen: factors applied to both tolerances in successive attempts, per crystal-system group, when
        nothing acceptable is found (the M20 threshold is divided by the square root of the factor).
    :ivar max_volume: largest cell volume tried per crystal system, Angstrom^3 (of the cell as searched, before
        centring is detected: an F cell is four primitive cells).
    :ivar min_volume: smallest cell volume tried, Angstrom^3.
    :ivar max_unindexed: unindexed lines (of ``max_lines``; proportionally fewer for fewer lines) an acceptable
        solution may leave.
    :ivar m20_threshold: an acceptable solution with M20 at least this stops the descent to lower symmetry.
    :ivar impurity_m20: a cubic, tetragonal or hexagonal solution (one or two cell parameters) at the nominal
        tolerance with M20 at least this is acceptable with up to ``max_impurity_share`` of the lines unindexed,
        as lines of an impurity phase: measured LuOF's right tetragonal cell (20 of 25 lines at M20 162)
        otherwise ranks below a false orthorhombic one indexing 23 of 25 at M20 34.
    :ivar max_impurity_share: see ``impurity_m20``.
    :ivar max_chance_growth: an acceptable cell is replaced by a doubled one indexing its unindexed lines only
        when the probability that those lines coincide with the doubled cell's reflections by chance is below
        this (impurity lines are otherwise indexed by a false supercell at half the M20).
    :ivar max_smaller_volume: a cell of a lower system, checked after a marginal solution (M20 under twice the
        threshold), needs twice its M20 to rank first, or only a higher M20 when its primitive cell has at most
        this fraction of the volume of every such solution's and it indexes as many lines: a cell that small
        indexing the same lines is no accident (half-volume orthorhombic cells index all 25 lines of two
        hexagonal structures at 1.1 and 1.5 times the M20 of their right, marginal cells).
    :ivar min_lower_gain: an acceptable cubic, tetragonal or hexagonal cell is replaced by a slightly distorted
        cell of the next lower system (tetragonal, orthorhombic, orthohexagonal) only when that indexes as many
        lines with at least this many times its M20: de Wolff's figure counts the split reflections against
        it, so only a splitting the lines really show pays (an orthorhombic 4.50 x 4.52 x 11.0 A cell). The
        converse, a promotion must not lose that factor, applies at the nominal tolerance only: at widened
        tolerances the higher system that indexes as many lines is taken.
    :ivar occam_gain: a cubic cell derived from the best tetragonal, hexagonal or trigonal solution (an edge
        times 1, sqrt2, 1 / sqrt2 or 2) that indexes as many lines, at the solution's tolerance or a wider one,
        takes its place unless the solution has this many times its M20 there (:func:`_occam_cubic`): one
        parameter more fitted to about 20 lines lowers their mean error by about this factor at the 1 % level
        (an F test of one parameter on 20 lines: residual sums in the ratio 1.46, mean errors 1.21).
    :ivar distortion_significance: at the nominal tolerance a lower-symmetry solution whose lattice has higher
        metric symmetry is also promoted when the higher system is acceptable and its extra parameters do not
        improve the fit of the same indexed lines at this significance level (Hamilton's test): measured lines
        leave a line of the higher cell just outside the tolerance that a fitted distortion reaches. The level
        is far below the usual 0.01 because positions picked from measured profiles carry systematic errors
        (asymmetry, overlaps, K-alpha2) that the test's model of independent errors ignores: PbSO4's 25 lines
        give 3e-4 for a spurious monoclinic beta = 90.05 deg, real distortions of 0.1-1 % in lines with 0.01 deg
        noise below 1e-9.
    :ivar time_budget: reference seconds of work (counted, not timed: :data:`SECONDS_PER_REFINEMENT`,
        :data:`SECONDS_PER_COMPARISON`) allowed for the monoclinic and triclinic searches together, per tolerance
        (and for the monoclinic search that checks a marginal or widened orthorhombic solution); at the widest
        tolerance the triclinic search gets at least :data:`TRICLINIC_SHARE` of it even when the monoclinic
        search used it up.
    :ivar systems: crystal systems to try ('trigonal' means 'hexagonal': one metric).
    :ivar basis_lines: lines from which basis sets are drawn (the first ones).
    :ivar n_screen: first lines every trial cell is screened against.
    :ivar n_refine: trial cells refined per basis scheme.
    :ivar n_refine_settled: trial cells refined per basis scheme of a system searched after another system of
        its group (hexagonal after tetragonal) gave an acceptable solution indexing every line: a right cell
        comes among the first few trials of its scheme (the first in 22 of 28 sampled tetragonal, hexagonal and
        trigonal structures, the eighth at worst), and the many trial cells of a wrong system are all refined in vain.
    :ivar lower_screen_ratio: the tetragonal and hexagonal systems also refine only ``n_refine_settled`` trial
        cells per scheme when the best trial cell of the first orthorhombic scheme screens this many times better
        than theirs (an orthorhombic metric contains both, so it screens no better on their lattices).
    :ivar screen_impurity_rate: at widened tolerances (nothing acceptable at the nominal one: noisy lines) the
        screened trial cells are refined alternately in the order of their screening keys (calculated lines times
        3 per unindexed line) and in that of :func:`_screen_score`, which assumes this share of the lines belongs
        to no cell (impurity lines). At the nominal tolerance only the keys order them: the likelihood order alone
        (with 0.1) put sub-cells that leave a line or two unindexed before the right cells of ideal lines (5 of the
        458 shared structures went wrong, 1 right).
    :ivar index_limit: largest |h|, |k|, |l| of trial basis reflections of the TREOR-style basis sets (cubic to
        orthorhombic; the axial schemes use n00, 0n0, 00n with n <= 3 (orthorhombic) or 2 (monoclinic), the
        monoclinic beta line h0l with |h|, l <= 2 and the triclinic angle lines 110, 101, 01+-1).
    :ivar screen_index_limit: largest |h|, |k|, |l| of the screening Q tables, per system.
    :ivar zero_shift: refine a zero shift (degrees) with the cell.
    :ivar zero_retry: the group is searched again from lines corrected by the zero shift of its best solution when
        that differs from the zero the search started from by more than this many tolerances. The retry often
        helps by chance (new trial cells) rather than by the correction: 0.03 deg noise leaves a refined zero of
        0.03 deg with no zero error, and an orthorhombic 3.83 x 7.29 x 25.26 A cell was found only in the retry
        (lost at 1.0, which saved a quarter of the time of an ideal 13.0 x 10.5 x 12.2 A cell whose zero comes out
        at 0.022 deg: profiled).
    :ivar max_obliquity: lattice two-fold axes within this angle (degrees) promote an orthorhombic, monoclinic
        or triclinic solution to the higher crystal system, when refined there it indexes as many lines.
    :ivar noise_obliquity: a solution at the nominal tolerance whose lattice two-fold axes are within this angle
        (degrees) of a higher crystal system's, beyond ``max_obliquity``, is refined in that system at the widened
        tolerances, and replaced by it when it indexes as many lines there, is acceptable and has an M20 not
        ``min_lower_gain`` times lower (noisy lines, whose errors a distortion absorbs).
    :ivar max_solutions: candidates returned.
    """

    max_lines: int = 25
    min_lines: int = 6
    tolerance: float = 0.03
    screen_tolerance: float = 0.06
    widen: tuple[float, ...] = (1.0, 2.0, 3.0)
    max_volume: dict[str, float] = attrs.field(factory=lambda: {
        "cubic": 30000.0, "tetragonal": 8000.0, "hexagonal": 8000.0, "orthorhombic": 6000.0, "monoclinic": 4000.0,
        "triclinic": 2500.0})
    min_volume: float = 10.0
    max_unindexed: int = 2
    m20_threshold: float = 20.0
    impurity_m20: float = 100.0
    max_impurity_share: float = 0.2
    max_chance_growth: float = 0.05
    max_smaller_volume: float = 0.26
    min_lower_gain: float = 1.5
    occam_gain: float = 1.2
    distortion_significance: float = 1e-6
    time_budget: float = 60.0
    systems: tuple[str, ...] = attrs.field(default=SYSTEMS, converter=_systems)
    basis_lines: int = 7
    n_screen: int = 12
    n_refine: int = 30
    n_refine_settled: int = 8
    screen_impurity_rate: float = 0.02
    lower_screen_ratio: float = 2.0
    index_limit: dict[str, int] = attrs.field(factory=lambda: {
        "cubic": 8, "tetragonal": 3, "hexagonal": 4, "orthorhombic": 2})
    screen_index_limit: dict[str, int] = attrs.field(factory=lambda: {
        "cubic": 10, "tetragonal": 8, "hexagonal": 8, "orthorhombic": 6, "monoclinic": 5, "triclinic": 4})
    zero_shift: bool = True
    zero_retry: float = 0.5
    max_obliquity: float = 0.1
    noise_obliquity: float = 0.3
    max_solutions: int = 10


@attrs.frozen(eq=False)
class Solution:
    """One indexing solution, in the cell as found (a colleague's module reduces it to the conventional cell).

    :ivar crystal_system: metric symmetry searched: cubic, tetragonal, hexagonal (P lattice), trigonal
        (R centring found), orthorhombic, monoclinic or triclinic.
    :ivar centring: lattice centring detected from the indexed reflections: P, I, F, C, A, B or R (obverse).
    :ivar q_coefficients: (A, B, C, D, E, F) of Q(hkl), Angstrom^-2.
    :ivar cell: (a, b, c, alpha, beta, gamma), Angstrom and degrees.
    :ivar volume: Angstrom^3.
    :ivar zero_shift: degrees 2theta (observed = true + zero_shift).
    :ivar hkl: Miller indices per observed line, shape (lines_total, 3); zeros for unindexed lines.
    :ivar lines_indexed: lines indexed within tolerance.
    :ivar lines_total: lines searched.
    :ivar m20: de Wolff's M_N over the first n_lines indexed lines.
    :ivar f_n: Smith-Snyder F_N over the same lines.
    :ivar n_lines: N of M_N and F_N (20, or fewer when fewer lines are indexed).
    :ivar zone: the indexed reflections lie in one reciprocal plane (dominant zone: third axis undetermined).
    :ivar rank_score: M20 / (1 + unindexed lines), the ranking key (a tenth of it for a dominant zone).
    :ivar tolerance: indexing tolerance used, degrees 2theta (``SearchParams.tolerance`` times the widening).
    :ivar split_by_lines: the crystal system was chosen below the metric's by the lines themselves (a
        distorted cell that indexes them with ``min_lower_gain`` times the M20): not to be promoted on the
        metric alone.
    :ivar max_error: largest |2theta_obs - zero_shift - 2theta_calc| of an indexed line, degrees: the tolerance
        the lines needed (a cell found at a widened tolerance may fit them within the nominal one).
    """

    crystal_system: str
    centring: str
    q_coefficients: tuple[float, ...]
    cell: Cell
    volume: float
    zero_shift: float
    hkl: np.ndarray = attrs.field(repr=False)
    lines_indexed: int
    lines_total: int
    m20: float
    f_n: float
    n_lines: int
    zone: bool = False
    rank_score: float = 0.0
    tolerance: float = 0.0
    split_by_lines: bool = False
    max_error: float = 0.0


@attrs.frozen(eq=False)
class SearchResult:
    """What :func:`search` returns: ranked solutions (best first), why there are none, and the time taken.

    :ivar solutions: best first.
    :ivar reason: why the list is empty (or a remark), else None.
    :ivar seconds: wall time.
    :ivar work: reference seconds of work (:data:`SECONDS_PER_REFINEMENT`, :data:`SECONDS_PER_COMPARISON`), what
        ``SearchParams.time_budget`` bounds; the same on every machine.
    """

    solutions: tuple[Solution, ...] = attrs.field(converter=tuple)
    reason: str | None
    seconds: float
    work: float = 0.0


def validate_lines(two_theta: object, wavelength: object, min_lines: int = 6) -> str | None:
    """Why the lines cannot be searched (None when they can)."""
    try:
        wl = float(wavelength)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"wavelength {wavelength!r} is not a number"
    if not (math.isfinite(wl) and wl > 0):
        return f"wavelength must be a positive number of Angstrom, got {wavelength!r}"
    try:
        tt = np.asarray(two_theta, dtype=float).ravel()
    except (TypeError, ValueError):
        return "2theta values are not numbers"
    if tt.size < min_lines:
        return f"only {tt.size} lines; at least {min_lines} are needed"
    if not np.all(np.isfinite(tt)):
        return "2theta contains NaN or infinite values"
    if np.any(tt <= 0) or np.any(tt >= 180):
        return "2theta values must lie strictly between 0 and 180 degrees"
    if np.any(np.diff(tt) <= 0):
        return "2theta values must be strictly increasing"
    return None


def niggli_cell(cell: Sequence[float], centring: str = "P") -> np.ndarray:
    """Niggli-reduced primitive cell (a, b, c, alpha, beta, gamma) of a (possibly centred) cell, as an array
    (:func:`xrdframe.lattice.niggli_cell`)."""
    return np.asarray(lattice_niggli_cell(cell, centring), dtype=float)


# ----------------------------------------------------------------------------------------------------- trials

def _axis(n_values: Sequence[int], axis: int) -> np.ndarray:
    out = np.zeros((len(n_values), 3), dtype=np.int64)
    out[:, axis] = n_values
    return out


@attrs.frozen
class _Scheme:
    """Basis roles: role r takes a line from ``pools[r]`` (line indices) and an hkl from ``roles[r]``;
    ``same`` lists role pairs (r, s) that are interchangeable (the line of r must precede that of s)."""

    name: str
    roles: tuple[np.ndarray, ...]
    pools: tuple[int, ...]
    same: tuple[tuple[int, int], ...] = ()
    symmetric: bool = False


def _schemes(system: MetricSystem, params: SearchParams, n_lines: int) -> list[_Scheme]:
    """The basis schemes of a system, their line pools within the ``n_lines`` observed."""
    return [attrs.evolve(s, pools=tuple(min(n, n_lines) for n in s.pools))
            for s in _system_schemes(system, params, n_lines)]


def _system_schemes(system: MetricSystem, params: SearchParams, n_lines: int) -> list[_Scheme]:
    k = min(params.basis_lines, n_lines)
    limit = params.index_limit.get(system.name, 2)
    if system.name == "cubic":
        table, _ = system.index_table(limit)
        return [_Scheme("treor", (table,), (3,), symmetric=True)]
    if system.name in ("tetragonal", "hexagonal"):
        table, _ = system.index_table(limit)
        treor = _Scheme("treor", (table,) * 2, (min(6, k),) * 2, symmetric=True)
        hk0 = table[(table[:, 2] == 0) & (np.abs(table).max(axis=1) <= 4)]
        full, _ = system.index_table(4)
        hkl = full[(full[:, 2] > 0) & (np.abs(full[:, :2]).max(axis=1) <= 2)]
        # a from an hk0 line among the first, c from any later line with l > 0 (long a, short c)
        return [treor, _Scheme("hk0+hkl", (hk0, hkl), (min(6, k), min(n_lines, 15)))]
    if system.name == "orthorhombic":
        n = [1, 2, 3]
        axes = _Scheme("axes", (_axis(n, 0), _axis(n, 1), _axis(n, 2)), (k + 1,) * 3, ((0, 1), (1, 2)))
        table, _ = system.index_table(limit)
        return [axes, _Scheme("treor", (table,) * 3, (min(6, k),) * 3, symmetric=True)]
    if system.name == "monoclinic":
        n = [1, 2]
        h0l = np.array([[h, 0, el] for h in (-2, -1, 1, 2) for el in (1, 2)])
        hkl_b = np.array([[h, 1, el] for h in (-1, 0, 1) for el in (0, 1) if (h, el) != (-1, 0)])
        far, near = min(n_lines, 15), min(n_lines, 10)
        axes = _Scheme("axes", (_axis(n, 0), _axis(n, 1), _axis(n, 2), h0l), (k, far, k, far), ((0, 2),))
        wide = _Scheme("wide axes", (_axis(n, 0), _axis(n, 1), _axis(n, 2), h0l), (near, far, near, far), ((0, 2),))
        mixed = _Scheme("axes+hkl", (_axis(n, 0), hkl_b, _axis(n, 2), h0l), (k, far, k, far), ((0, 2),))
        # any four of the first lines with low hkl: a C-centred cell has neither 100 nor 010 and may have no 00l
        # line among the first ten (020, 200, -111, 111 first); k up to 3 for a b/3 pseudo-translation (130, -131,
        # 131 first, the first 0k0 line 060)
        low = np.array([[1, 0, 0], [2, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0], [0, 2, 0], [1, 1, 0], [0, 1, 1],
                        [1, 0, 1], [1, 0, -1], [1, 1, 1], [1, 1, -1], [2, 0, 1], [2, 0, -1], [1, 3, 0], [1, 3, 1],
                        [1, 3, -1]])
        treor = _Scheme("treor", (low,) * 4, (min(6, k),) * 4, symmetric=True)
        return [axes, mixed, wide, treor]
    far = min(n_lines, 15)
    one = _axis([1], 0), _axis([1], 1), _axis([1], 2)
    d, e = np.array([[1, 1, 0]]), np.array([[1, 0, 1]])
    f = np.array([[0, 1, 1], [0, 1, -1]])
    return [_Scheme("axes", (*one, d, e, f), (6, 6, 6, far, far, far), ((0, 1), (1, 2)))]


def _line_tuples(scheme: _Scheme, p: int) -> np.ndarray:
    if scheme.symmetric:
        return np.array(list(itertools.combinations(range(scheme.pools[0]), p)), dtype=np.int64).reshape(-1, p)
    grids = np.meshgrid(*[np.arange(n) for n in scheme.pools], indexing="ij")
    tuples = np.stack([g.ravel() for g in grids], axis=1)
    distinct = np.ones(len(tuples), dtype=bool)
    for r, s in itertools.combinations(range(p), 2):
        distinct &= tuples[:, r] != tuples[:, s]
    for r, s in scheme.same:
        distinct &= tuples[:, r] < tuples[:, s]
    return tuples[distinct]


def _assignments(system: MetricSystem, scheme: _Scheme) -> np.ndarray:
    """Inverses of the design matrices of every hkl assignment of the roles, shape (a, p, p)."""
    grids = np.meshgrid(*[np.arange(len(r)) for r in scheme.roles], indexing="ij")
    choice = np.stack([g.ravel() for g in grids], axis=1)  # (a, p)
    design = np.stack([system.terms(role[choice[:, r]]) for r, role in enumerate(scheme.roles)], axis=1)  # (a,p,p)
    det = np.linalg.det(design)
    scale = np.abs(design).max(axis=(1, 2)) ** system.n_params
    design = design[np.abs(det) > 1e-6 * scale]
    return np.linalg.inv(design)


def _physical(coeffs: np.ndarray, params: SearchParams, system: str) -> np.ndarray:
    A, B, C, D, E, F = coeffs.T
    det = A * B * C + D * E * F / 4.0 - A * F * F / 4.0 - B * E * E / 4.0 - C * D * D / 4.0
    ok = (A > 0) & (B > 0) & (C > 0) & (A * B - D * D / 4.0 > 0) & (det > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        volume = 1.0 / np.sqrt(np.where(ok, det, np.nan))
    return ok & (volume <= params.max_volume.get(system, 4000.0)) & (volume >= params.min_volume)


def _count_indexed(x: np.ndarray, table: np.ndarray, q_obs: np.ndarray, tol: np.ndarray) -> tuple[np.ndarray,
                                                                                                   np.ndarray]:
    """For trial cells ``x`` (n, p): lines of ``q_obs`` within ``tol`` of a calculated Q of the hkl ``table`` rows
    (m, p), and the number of calculated Q up to the last line; both shape (n,)."""
    n, m = x.shape[0], table.shape[0]
    _count_work(comparisons=n * m * q_obs.size)
    q_top = float(q_obs[-1] + tol[-1])
    counts = np.zeros(n, dtype=np.int64)
    n_calc = np.zeros(n, dtype=np.int64)
    chunk = max(1, 400_000 // max(m, 1))
    for start in range(0, n, chunk):
        qc = x[start:start + chunk] @ table.T  # (c, m)
        c = qc.shape[0]
        n_calc[start:start + c] = np.count_nonzero(qc <= q_top, axis=1)
        qc = np.sort(np.clip(qc, -1.0, 2.0 * q_top + 1.0), axis=1)
        span = 4.0 * q_top + 4.0
        offset = (np.arange(c) * span)[:, None]
        flat = (qc + offset).ravel()
        target = q_obs[None, :] + offset  # (c, L)
        i = np.searchsorted(flat, target.ravel()).reshape(c, -1)
        row0 = (np.arange(c) * m)[:, None]
        lo = np.clip(i - 1, row0, row0 + m - 1)
        hi = np.clip(i, row0, row0 + m - 1)
        dist = np.minimum(np.abs(flat[lo] - target), np.abs(flat[hi] - target))
        counts[start:start + c] = np.count_nonzero(dist <= tol[None, :], axis=1)
    return counts, n_calc


def _nearest(x: np.ndarray, table: np.ndarray, q_obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For trial cells ``x`` (n, p): the row of the hkl ``table`` (m, p) whose calculated Q is nearest each line of
    ``q_obs``, and the distance; both shape (n, lines)."""
    n, m = x.shape[0], table.shape[0]
    _count_work(comparisons=n * m * q_obs.size)
    idx = np.zeros((n, q_obs.size), dtype=np.int64)
    dist = np.zeros((n, q_obs.size))
    q_top = float(q_obs[-1])
    chunk = max(1, 400_000 // max(m, 1))
    for start in range(0, n, chunk):
        qc = x[start:start + chunk] @ table.T  # (c, m)
        c = qc.shape[0]
        order = np.argsort(qc, axis=1)
        qs = np.clip(np.take_along_axis(qc, order, axis=1), -1.0, 2.0 * q_top + 1.0)
        offset = (np.arange(c) * (4.0 * q_top + 4.0))[:, None]
        flat = (qs + offset).ravel()
        target = q_obs[None, :] + offset
        i = np.searchsorted(flat, target.ravel()).reshape(c, -1)
        row0 = (np.arange(c) * m)[:, None]
        lo = np.clip(i - 1, row0, row0 + m - 1)
        hi = np.clip(i, row0, row0 + m - 1)
        d_lo, d_hi = np.abs(flat[lo] - target), np.abs(flat[hi] - target)
        pick = np.where(d_lo <= d_hi, lo, hi)
        idx[start:start + c] = order.ravel()[pick]
        dist[start:start + c] = np.minimum(d_lo, d_hi)
    return idx, dist


def _refine_trials(x: np.ndarray, table: np.ndarray, q_obs: np.ndarray, tol: np.ndarray,
                   n_first: int) -> np.ndarray:
    """Least-squares refinement of trial cells ``x`` (n, p), all at once, as TREOR refines a trial cell before
    judging it: lines within ``tol`` of a calculated Q of ``table`` get that reflection, the metric is refitted
    (residuals weighted as 2theta, ``tol`` being proportional to dQ/d2theta), first on the first ``n_first``
    lines, then on every line. A trial cell from noisy low-angle basis lines is off by an error that grows with
    Q; refitting on the lines it already indexes removes most of it. Directions the matched lines do not
    determine stay as they were (a small ridge towards the start)."""
    p = x.shape[1]
    for lines in (n_first, q_obs.size):
        idx, dist = _nearest(x, table, q_obs[:lines])
        weight = np.where(dist <= tol[:lines], 1.0 / tol[:lines], 0.0)  # (n, L)
        design = table[idx] * weight[..., None]  # (n, L, p)
        normal = np.einsum("nlp,nlq->npq", design, design)
        rhs = np.einsum("nlp,nl->np", design, q_obs[:lines] * weight)
        ridge = 1e-8 * np.maximum(np.trace(normal, axis1=1, axis2=2), 1e-300) / p
        normal = normal + ridge[:, None, None] * np.eye(p)
        rhs = rhs + ridge[:, None] * x
        refined = np.linalg.solve(normal, rhs[..., None])[..., 0]
        enough = np.count_nonzero(weight, axis=1) >= p + 1
        x = np.where(enough[:, None] & np.all(np.isfinite(refined), axis=1)[:, None], refined, x)
    return x


def _screen(system: MetricSystem, scheme: _Scheme, q_obs: np.ndarray, tol_screen: np.ndarray, params: SearchParams,
            deadline: float, likelihood: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Trial parameters (k, p) of ``scheme`` that index nearly all of the first ``n_screen`` lines, best first,
    and their screening keys (k,): calculated lines up to the last observed one, times 3 per line left unindexed
    (lower is better), the best over the primitive lattice and each of :data:`SCREEN_CENTRINGS` (equal keys: the
    primitive one first). The keys order the trial cells, or with ``likelihood`` the keys and
    :func:`_screen_score` (also the best over the centrings) alternately; the keys also compare systems (their
    minimum)."""
    p = system.n_params
    tuples = _line_tuples(scheme, p)
    inverses = _assignments(system, scheme)
    if tuples.size == 0 or inverses.size == 0:
        return np.zeros((0, p)), np.zeros(0)
    n_s = min(params.n_screen, q_obs.size)
    allowed_miss = min(params.max_unindexed, 2) if n_s >= 8 else 0
    limit = params.screen_index_limit.get(system.name, 4)
    table, table_all = system.index_table(limit)[1], system.index_table(limit + 2)[1]
    centred_tables = [table_all] + [system.index_table(limit + 2, c)[1] for c in SCREEN_CENTRINGS.get(system.name, ())]
    kept_x, kept_key, kept_primitive, kept_score = [], [], [], []
    per_batch = max(1, 300_000 // max(len(inverses), 1))
    for start in range(0, len(tuples), per_batch):
        if _work_done() > deadline:
            break
        q_basis = q_obs[tuples[start:start + per_batch]]  # (t, p)
        x = np.einsum("aij,tj->tai", inverses, q_basis).reshape(-1, p)
        x = x[_physical(system.coefficients(x), params, system.name)]
        if x.size == 0:
            continue
        key = np.round(x / (q_obs[0] * 2e-4)).astype(np.int64)
        _, first = np.unique(key, axis=0, return_index=True)
        x = x[first]
        counts, _ = _count_indexed(x, table, q_obs[:n_s], tol_screen[:n_s])
        x = x[counts >= n_s - allowed_miss]
        if x.size == 0:
            continue
        x = _refine_trials(x, table_all, q_obs, tol_screen, n_s)
        x = x[_physical(system.coefficients(x), params, system.name)]
        if x.size == 0:
            continue
        # second stage: every line, against the reflections of each lattice centring (the best one counts)
        keys, scores = [], []
        for centred_table in centred_tables:  # the primitive table first
            counts, n_calc = _count_indexed(x, centred_table, q_obs, tol_screen)
            keys.append(n_calc * 3.0 ** (q_obs.size - counts))
            if likelihood:
                scores.append(_screen_score(counts, n_calc, q_obs, tol_screen, params.screen_impurity_rate))
        kept_x.append(x)
        kept_key.append(np.min(keys, axis=0))
        kept_primitive.append(keys[0])
        if likelihood:
            kept_score.append(np.max(scores, axis=0))
    if not kept_x:
        return np.zeros((0, p)), np.zeros(0)
    x = np.concatenate(kept_x)
    key = np.concatenate(kept_key)
    # equal keys: the cell as found that is primitive first (a tetragonal I 8.34 x 9.62 A trial cell has as few
    # calculated lines as the right P 5.89 x 8.35 A one at a widened tolerance, and there are dozens of them)
    order = np.lexsort((np.concatenate(kept_primitive), key))
    if likelihood:  # both orders, alternately
        by_score = np.argsort(-np.concatenate(kept_score), kind="stable")
        both = np.stack([order, by_score], axis=1).ravel()
        _, first = np.unique(both, return_index=True)
        order = both[np.sort(first)]
    return x[order], key[order]


def _screen_score(counts: np.ndarray, n_calc: np.ndarray, q_obs: np.ndarray, tol_screen: np.ndarray,
                  impurity_rate: float) -> np.ndarray:
    """Log-likelihood ratio of trial cells that index ``counts`` of the lines with ``n_calc`` calculated lines,
    against lines at random positions: an indexed line gains ln((1 - eta) / f), an unindexed one costs ln(1 / eta),
    with eta the share of lines of no cell (impurities) and f the share of the Q range the calculated lines cover
    within the screening tolerance (n_calc times the mean tolerance window over the range up to the last line).

    A cell that leaves two impurity lines unindexed with few calculated lines ranks above a large false cell that
    indexes every line at the wide screening tolerance: 0.03 deg noise and 2 impurity lines, monoclinic 6.97 x 9.67
    x 10.94 A, 23 of 25 lines with 34 calculated lines, against 25 of 25 with 64 (0.15 deg screening)."""
    window = 2.0 * float(np.mean(tol_screen)) / float(q_obs[-1] + tol_screen[-1])
    cover = np.clip(n_calc * window, 1e-9, 1.0 - 1e-9)
    unindexed = q_obs.size - counts
    return counts * np.log((1.0 - impurity_rate) / cover) + unindexed * np.log(impurity_rate)


# ------------------------------------------------------------------------------------------------- evaluation

def _evaluate(system: MetricSystem, x: np.ndarray, two_theta: np.ndarray, wavelength: float, tol_deg: float,
              screen_deg: float, params: SearchParams, zero_start: float) -> Solution | None:
    """Refine one trial cell on all lines and score it."""
    _count_work(refinements=1)
    refined = refine_indexing(system, two_theta, wavelength, system.coefficients(x)[0],
                              (screen_deg, 0.5 * (screen_deg + tol_deg), tol_deg), zero_shift=params.zero_shift,
                              zero_start=zero_start, min_indexed=system.n_params + 2)
    if refined is None or not _physical(refined[0][None, :], params, system.name)[0]:
        return None
    coeffs, zero, indexing = refined
    grad = q_gradient(two_theta, wavelength)
    q_obs = two_theta_to_q(two_theta - zero, wavelength)
    # at widened tolerances (noisy lines) a doubled edge may have indexed one impurity line by chance
    coeffs = halve_axes(system, q_obs, coeffs, grad * tol_deg, may_lose=int(tol_deg > 1.01 * params.tolerance))
    centred = detect_centring(system, two_theta, wavelength, coeffs, tol_deg, zero_shift=params.zero_shift,
                              zero_start=zero_start)
    if centred is None:
        return None
    centring, coeffs, zero, indexing = centred
    q_obs = two_theta_to_q(two_theta - zero, wavelength)
    return _solution(system, coeffs, centring, indexing, two_theta, wavelength, q_obs, zero, tol_deg)


def _solution(system: MetricSystem, coeffs: np.ndarray, centring: str, indexing: Indexing, two_theta: np.ndarray,
              wavelength: float, q_obs: np.ndarray, zero: float, tolerance: float) -> Solution | None:
    hkl = indexing.hkl
    try:
        cell = cell_from_q_coefficients(coeffs)
    except ValueError:
        return None
    volume = float(1.0 / np.sqrt(np.linalg.det(np.array([[coeffs[0], coeffs[3] / 2, coeffs[4] / 2],
                                                         [coeffs[3] / 2, coeffs[1], coeffs[5] / 2],
                                                         [coeffs[4] / 2, coeffs[5] / 2, coeffs[2]]]))))
    indexed = indexing.indexed
    n_total = q_obs.size
    n = int(min(20, indexing.count))
    score_m20 = m20(q_obs, indexing.q_possible, q_calc=np.where(indexed, indexing.q_calc, 0.0), n=n, indexed=indexed)
    tt_obs = two_theta - zero
    tt_possible = q_to_two_theta(indexing.q_possible, wavelength)
    tt_calc = q_to_two_theta(np.where(indexed, indexing.q_calc, q_obs), wavelength)
    max_error = float(np.max(np.abs(tt_obs - tt_calc), initial=0.0))  # 0 for unindexed lines (tt_calc = tt_obs)
    score_fn = f_n(tt_obs, tt_possible, two_theta_calc=tt_calc, n=n, indexed=indexed)
    unindexed = int(np.count_nonzero(~indexed))
    zone = is_zone(hkl[indexed])
    crystal_system = "trigonal" if (system.name == "hexagonal" and centring == "R") else system.name
    rank = score_m20 / (1.0 + unindexed) * (0.1 if zone else 1.0)
    return Solution(crystal_system=crystal_system, centring=centring, q_coefficients=tuple(float(c) for c in coeffs),
                    cell=cell, volume=volume, zero_shift=float(zero), hkl=hkl.astype(np.int64),
                    lines_indexed=int(indexing.count), lines_total=int(n_total), m20=float(score_m20),
                    f_n=float(score_fn), n_lines=n, zone=bool(zone), rank_score=float(rank),
                    tolerance=float(tolerance), max_error=max_error)


def _grow(system: MetricSystem, s: Solution, two_theta: np.ndarray, wavelength: float, tol_deg: float,
          params: SearchParams, zero_start: float) -> Solution:
    """Axis-doubling test, the converse of halving: a sub-cell that leaves lines unindexed (weak superstructure
    lines) is replaced by the doubled cell that indexes most lines, if any indexes more.

    Not tried for a cell with M20 under half the threshold (at its tolerance's widening): a doubled cell has
    about twice the calculated lines: over 153 of the ideal patterns (every third) the cells grown from those
    reached M20 17.7 at most and none was acceptable (6,200 of 8,600 growth tests, 13 % of the search time)."""
    widened = max(s.tolerance / params.tolerance, 1.0)
    if s.lines_indexed < 0.6 * s.lines_total or s.m20 < 0.5 * params.m20_threshold / math.sqrt(widened):
        return s
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    options = list(halving_options(system))
    options += [tuple(sorted(set(a) | set(b))) for a, b in itertools.combinations(options, 2)]
    options += [(0, 1, 2)] if len(options) > 3 else []
    best = s
    coeffs = np.array(s.q_coefficients)
    for axes in dict.fromkeys(options):
        factor = np.array([(0.5 if i in axes else 1.0) * (0.5 if j in axes else 1.0) for i, j in pairs])
        trial = coeffs * factor
        if not _physical(trial[None, :], params, system.name)[0]:
            continue
        grown = _evaluate(system, system.parameters(trial), two_theta, wavelength, tol_deg, tol_deg, params,
                          zero_start)
        if grown is not None and grown.lines_indexed > best.lines_indexed:
            best = grown
    if best is s or not _acceptable(s, params):
        return best
    # the cell was acceptable: its few unindexed lines may be impurities, which a cell of twice the volume
    # indexes by chance about as often as not; keep the larger cell only when it is acceptable itself (its M20
    # is not halved below the threshold by the reflections it predicts and nobody observed) and chance is an
    # unlikely explanation of the lines it adds
    if not _acceptable(best, params):
        return s
    return best if _chance_coincidence(s, best, two_theta, wavelength) < params.max_chance_growth else s


def _chance_coincidence(s: Solution, grown: Solution, two_theta: np.ndarray, wavelength: float) -> float:
    """Probability that the lines ``grown`` indexes and ``s`` does not fall within tolerance of one of the grown
    cell's reflections by chance: the product over those lines of 1 - exp(-lambda), with lambda the expected
    number of reflections within the tolerance window from the reflection density of the grown cell near the
    line (over a window ten tolerances wide)."""
    new = (np.abs(grown.hkl).sum(axis=1) > 0) & (np.abs(s.hkl).sum(axis=1) == 0)
    if not np.any(new):
        return 1.0
    q_obs = two_theta_to_q(two_theta - grown.zero_shift, wavelength)
    tol_q = q_gradient(two_theta, wavelength) * grown.tolerance
    _, q_calc = reflections(np.array(grown.q_coefficients), float(q_obs.max() + 10 * tol_q.max()), grown.centring)
    return chance_coincidence(q_calc, q_obs[new], tol_q[new])


#: Cells of lower symmetry with one axis halved: a cubic cell's c (tetragonal), a tetragonal cell's a
#: (orthorhombic).
_HALVED_LOWER = {"cubic": "tetragonal", "tetragonal": "orthorhombic"}


def _halve_lower(s: Solution, two_theta: np.ndarray, wavelength: float, tol_deg: float, screen_deg: float,
                 params: SearchParams, zero_start: float) -> Solution:
    """The cell of lower symmetry with one axis halved, when the cell is acceptable and the halved one indexes as
    many lines (de Wolff: the smallest cell that indexes every line). A tetragonal 11.77 x 11.77 x 8.22 A cell
    whose lines all have h even is the orthorhombic 5.88 x 11.77 x 8.22 A one: the twofold volume predicts
    reflections nobody observed."""
    if s.crystal_system not in _HALVED_LOWER or not _acceptable(s, params) or s.lines_total < 12:
        # a lower-symmetry cell from a doubtful one would stop the descent before its own system; and a few
        # lines (silicon's 6) do not justify the extra parameter
        return s
    lower = MetricSystem.get(_HALVED_LOWER[s.crystal_system])
    a, _, c = s.q_coefficients[:3]  # A = 1/a^2 (x 4 when a is halved), C = 1/c^2
    x = np.array([a, 4.0 * c]) if lower.name == "tetragonal" else np.array([4.0 * a, a, c])
    if not _physical(lower.coefficients(x), params, lower.name)[0]:
        return s
    halved = _evaluate(lower, x[None, :], two_theta, wavelength, tol_deg, screen_deg, params, zero_start)
    if halved is None or halved.lines_indexed < s.lines_indexed or halved.volume > 0.75 * s.volume:
        return s
    # it must also predict clearly fewer lines (a fifth fewer, resolvable ones): the c-halved tetragonal cell of
    # a cubic I cell (a/sqrt2, a/2) indexes the same lines with as many calculated ones, and the cubic cell
    # explains them with one parameter; a cubic P 16.26 A cell whose all-odd reflections are weak among the
    # first lines has a c-halved cell predicting 47 lines against 55 (not enough absences to drop the cubic
    # symmetry), the orthorhombic 5.88 x 11.77 A cell 56 against the tetragonal 11.77 A cell's 74
    q_max = float(two_theta_to_q(np.array([two_theta[s.lines_total - 1] - s.zero_shift]), wavelength)[0])
    n_halved = _n_resolved(halved, q_max, wavelength, tol_deg)
    return halved if n_halved <= 0.8 * _n_resolved(s, q_max, wavelength, tol_deg) else s


def _n_resolved(s: Solution, q_max: float, wavelength: float, tol_deg: float) -> int:
    """Calculated lines of a solution's cell (its centring) up to ``q_max`` that the data can tell apart:
    reflections closer than the tolerance count once."""
    _, q = reflections(np.array(s.q_coefficients), q_max * (1 + 1e-6), s.centring)
    if q.size == 0:
        return 0
    q = np.sort(q)
    tol_q = q_gradient(q_to_two_theta(q, wavelength), wavelength) * tol_deg
    return int(1 + np.count_nonzero(np.diff(q) > tol_q[1:]))


def _promote(s: Solution, two_theta: np.ndarray, wavelength: float, tol_deg: float, screen_deg: float,
             params: SearchParams) -> Solution:
    """The solution refined in a higher crystal system when its lattice has that metric symmetry (Le Page,
    within ``max_obliquity``; the most symmetric first) and the higher system indexes as many lines, with an
    M20 not ``min_lower_gain`` times lower; refined from the solution's own zero shift. A solution at the nominal
    tolerance is also refined in a higher system within ``noise_obliquity`` at the widened tolerances (a partial
    one only in a cubic, tetragonal or hexagonal system)."""
    for system, x, match in _higher_metrics(s, params.max_obliquity):
        promoted = _evaluate(system, x, two_theta, wavelength, tol_deg, screen_deg, params, s.zero_shift)
        if promoted is None:
            continue
        # as many lines, and - when the lines are precise enough to show a split (nominal tolerance) - not a much
        # worse fit (the converse of _check_lower); at widened tolerances the extra parameter fits noise, and the
        # higher symmetry that indexes the same lines stands (Occam)
        widened = s.tolerance > 1.01 * params.tolerance
        if promoted.lines_indexed >= s.lines_indexed and (widened or promoted.m20 * params.min_lower_gain >= s.m20):
            return promoted
        # else the lines decide: measured lines (PbSO4's 25, a monoclinic fit with beta = 90.04 deg) leave one line
        # just outside the tolerance of the orthorhombic cell that the extra parameter reaches; the distortion is
        # kept only when it improves the fit of the same indexed lines significantly
        if (not widened and _acceptable(promoted, params)
                and not _distortion_significant(s, system, match.transformation, two_theta, wavelength, params)):
            return promoted
    if s.tolerance > 1.01 * params.tolerance or s.split_by_lines:
        return s
    acceptable = _acceptable(s, params)
    # noisy lines: a distortion absorbs position errors that the nominal tolerance does not cover, at obliquities
    # beyond max_obliquity (cubic P 5.624 A, 0.03 deg of noise and two impurity lines: an orthorhombic C 7.947 x
    # 7.963 x 5.621 A cell indexes 19 of 21 lines at 0.03 deg with M20 42, refined as a tetragonal 5.624 x 5.629 A
    # cell the same lines at 0.09 deg with M20 29; the search ends on such a near-cubic tetragonal cell, which the
    # indexer's lattice tolerance reports as cubic). The higher system refined at the widened tolerances takes its
    # place when it indexes as many lines, is acceptable there and its M20 is not min_lower_gain times lower
    for system, x, _ in _higher_metrics(s, params.noise_obliquity):
        if not acceptable and system.name not in _FEW_PARAMETERS:
            # from a partial solution only a cell of one or two parameters: an orthorhombic one refined at the
            # widened tolerances would pass before the other systems are searched at the nominal one (a monoclinic
            # I 25.45 x 6.885 x 11.75 A cell of ideal lines, 22 of 25 at M20 20, gave an orthorhombic C cell at
            # 0.06 deg that ended the search; the right monoclinic cell indexes all 25 lines at 0.03 deg, M20 40)
            continue
        for factor in params.widen[1:]:
            promoted = _evaluate(system, x, two_theta, wavelength, tol_deg * factor, screen_deg * factor, params,
                                 s.zero_shift)
            if (promoted is not None and promoted.lines_indexed >= s.lines_indexed and _acceptable(promoted, params)
                    and promoted.m20 * params.min_lower_gain >= s.m20):
                return promoted
    return s


def _higher_metrics(s: Solution, obliquity: float) -> list[tuple[MetricSystem, np.ndarray, LatticeMatch]]:
    """The crystal systems above the solution's whose metric its lattice has within ``obliquity`` (degrees; Le
    Page, the most symmetric first), each with the free parameters of its ideal cell and the lattice match."""
    try:
        matches = lattice_symmetry(s.cell, s.centring, obliquity)
    except Exception:  # noqa: BLE001 - gemmi refuses degenerate cells
        return []
    rank = SYSTEMS.index(MetricSystem.get(s.crystal_system).name)
    out = []
    for match in matches:
        system = MetricSystem.get(match.crystal_system)
        if SYSTEMS.index(system.name) < rank:
            out.append((system, system.parameters(q_coefficients(match.ideal_cell)), match))
    return out


def _distortion_significant(s: Solution, higher: MetricSystem, transformation: np.ndarray, two_theta: np.ndarray,
                            wavelength: float, params: SearchParams) -> bool:
    """Whether the lines indexed by ``s`` show its lower symmetry against ``higher`` (the conventional cell is
    ``s.cell`` @ ``transformation``): Hamilton's test at ``params.distortion_significance``
    (:func:`.refine.lower_symmetry_p_value`)."""
    hkl_higher = np.asarray(s.hkl, dtype=float) @ np.asarray(transformation, dtype=float)
    if not np.allclose(hkl_higher, np.rint(hkl_higher), atol=1e-6):
        return True  # not a lattice row of the higher cell: no nested model to compare
    indexed = np.any(s.hkl != 0, axis=1)
    p_value = lower_symmetry_p_value(MetricSystem.get(s.crystal_system), higher, two_theta, wavelength, s.hkl,
                                     np.rint(hkl_higher).astype(np.int64), indexed, s.zero_shift)
    return p_value < params.distortion_significance


#: Relative changes of one cell edge tried when a cell is refined in the next lower system.
_DISTORTIONS = (0.0005, 0.0015, 0.004, -0.0005, -0.0015, -0.004)


def _lower_starts(s: Solution) -> tuple[MetricSystem, list[tuple[float, ...]]] | None:
    """The next lower system of a cubic, tetragonal or hexagonal P solution and its start cells, one edge
    slightly stretched or shrunk (a tetragonal cell's b only stretched: a and b are equivalent)."""
    a, _, c = s.cell[:3]
    if s.crystal_system == "cubic":
        return MetricSystem.get("tetragonal"), [(a, a, a * (1 + d), 90.0, 90.0, 90.0) for d in _DISTORTIONS]
    if s.crystal_system == "tetragonal":
        return MetricSystem.get("orthorhombic"), [(a, a * (1 + d), c, 90.0, 90.0, 90.0)
                                                  for d in _DISTORTIONS if d > 0]
    if s.crystal_system == "hexagonal" and s.centring == "P":  # the orthohexagonal C cell (a, a sqrt3, c)
        return MetricSystem.get("orthorhombic"), [(a, a * math.sqrt(3.0) * (1 + d), c, 90.0, 90.0, 90.0)
                                                  for d in _DISTORTIONS]
    return None


def _check_lower(s: Solution, two_theta: np.ndarray, wavelength: float, params: SearchParams) -> Solution | None:
    """The cell refined in the next lower system from slightly distorted starts, when it indexes as many lines
    with ``min_lower_gain`` times the M20 (a pseudo-tetragonal orthorhombic cell whose a and b differ by 0.07 %
    splits the high-angle lines by more than the tolerance); None when the higher symmetry stands."""
    lower = _lower_starts(s)
    if lower is None or lower[0].name not in params.systems or s.lines_total < 12:
        return None  # a few lines (silicon's 9) do not justify the extra parameter
    system, starts = lower
    best = None
    for cell in starts:
        x = system.parameters(q_coefficients(cell))
        t = _evaluate(system, x, two_theta, wavelength, s.tolerance, s.tolerance, params, s.zero_shift)
        if (t is not None and _acceptable(t, params) and t.lines_indexed >= s.lines_indexed
                and abs(_primitive_volume(t) / _primitive_volume(s) - 1.0) < 0.02  # the same lattice, distorted
                and t.m20 >= params.min_lower_gain * s.m20 and (best is None or t.m20 > best.m20)):
            best = t
    return None if best is None else attrs.evolve(best, split_by_lines=True)


#: Lattice points per cell of each centring (R: on hexagonal axes).
_LATTICE_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}


def _primitive_volume(s: Solution) -> float:
    """Volume of the primitive cell of a solution's lattice, Angstrom^3."""
    return s.volume / _LATTICE_POINTS[s.centring]


def _allowed_unindexed(s: Solution, params: SearchParams) -> int:
    """Unindexed lines an acceptable solution may leave: ``max_unindexed`` for ``max_lines`` lines, proportionally
    fewer for fewer lines, rounded (24 lines still allow 2)."""
    return math.floor(params.max_unindexed * s.lines_total / params.max_lines + 0.5)


def _acceptable(s: Solution, params: SearchParams) -> bool:
    """No dominant zone, few unindexed lines, and M20 over the threshold (divided by the square root of the
    tolerance widening: noisier lines give lower M20); or, for a cubic, tetragonal or hexagonal cell at the
    nominal tolerance, M20 of at least ``impurity_m20`` with at most ``max_impurity_share`` of the lines
    unindexed."""
    widened = max(s.tolerance / params.tolerance, 1.0)
    # noisier lines give lower M20; but a cubic cell has so few parameters that a large false one indexes
    # everything at wide tolerances: it keeps the full threshold
    threshold = params.m20_threshold / (1.0 if s.crystal_system == "cubic" else math.sqrt(widened))
    unindexed = s.lines_total - s.lines_indexed
    if s.zone:
        return False
    if unindexed <= _allowed_unindexed(s, params) and s.m20 >= threshold:
        return True
    # impurity lines: a cell of one or two parameters fitting the others this well at the nominal tolerance is
    # no accident; the extra parameters of lower symmetries absorb noise instead (noisy tetragonal 3.02 x 5.31 A
    # lines index 20 of 24 as an orthorhombic 3.020 x 3.019 x 5.31 A cell at M20 115)
    return (s.tolerance <= 1.01 * params.tolerance and s.m20 >= params.impurity_m20
            and s.crystal_system in _FEW_PARAMETERS and unindexed <= params.max_impurity_share * s.lines_total)


#: Crystal systems whose metric has one or two parameters.
_FEW_PARAMETERS = ("cubic", "tetragonal", "hexagonal", "trigonal")


def _dominating_cubic(s: Solution, accepted: list[Solution], params: SearchParams) -> bool:
    """Whether ``s`` is a cubic cell at a widened tolerance held back only by the full threshold that cubic cells
    keep there (:func:`_acceptable`), which beats an acceptable solution of more parameters at its own tolerance or
    a wider one: at least as many lines indexed with a higher M20. The threshold guards against large false cubic
    cells that index nearly every line at wide tolerances; one that fits better than an accepted cell of lower
    symmetry is no such accident, and the lower cell's extra parameters explain nothing more (cubic F 21.81 A,
    noisy lines: 24 of 25 at 0.09 deg with M20 13.1, against a monoclinic P cell's 23 at M20 12.1)."""
    widened = s.tolerance / params.tolerance
    if s.crystal_system != "cubic" or s.zone or widened <= 1.01:
        return False
    if (s.lines_total - s.lines_indexed > _allowed_unindexed(s, params)
            or s.m20 < params.m20_threshold / math.sqrt(widened)):
        return False
    return any(a.crystal_system != "cubic" and a.tolerance >= s.tolerance / 1.01 and s.lines_indexed >= a.lines_indexed
               and s.m20 > a.m20 for a in accepted)


def _passing(solutions: list[Solution], params: SearchParams) -> list[bool]:
    """Which solutions pass: acceptable ones (:func:`_acceptable`) and cubic ones dominating an acceptable one
    (:func:`_dominating_cubic`)."""
    ok = [_acceptable(s, params) for s in solutions]
    accepted = [s for s, a in zip(solutions, ok, strict=True) if a]
    return [a or (bool(accepted) and _dominating_cubic(s, accepted, params)) for s, a in zip(solutions, ok,
                                                                                                strict=True)]


def _collapse(solutions: list[Solution], params: SearchParams) -> list[Solution]:
    """Passing solutions first (:func:`_passing`), each part best-ranked first; drop solutions whose
    Niggli-reduced primitive cell equals a better one's. (A right cell leaving two impurity lines unindexed ranks
    below a doubled cell that indexes them at half its M20, but only the first is acceptable.)"""
    passing = {id(s): ok for s, ok in zip(solutions, _passing(solutions, params), strict=True)}
    return _distinct(sorted(solutions, key=lambda s: (not passing[id(s)], -s.rank_score, s.volume)))


def _distinct(ordered: list[Solution]) -> list[Solution]:
    """The solutions in their order, without those whose Niggli-reduced primitive cell equals an earlier one's."""
    kept: list[Solution] = []
    reduced_kept = np.zeros((0, 6))
    for s in ordered:
        try:
            reduced = niggli_cell(s.cell, s.centring)
        except Exception:  # noqa: BLE001 - gemmi refuses degenerate cells
            continue
        same = (np.all(np.abs(reduced_kept[:, :3] / reduced[:3] - 1.0) <= 2e-3, axis=1)
                & np.all(np.abs(reduced_kept[:, 3:] - reduced[3:]) <= 0.3, axis=1))
        if np.any(same):
            continue
        kept.append(s)
        reduced_kept = np.concatenate([reduced_kept, reduced[None, :]])
    return kept


def search(two_theta: Sequence[float] | np.ndarray, wavelength: float, *,
           params: SearchParams | None = None) -> SearchResult:
    """Index observed peak positions (degrees 2theta at ``wavelength`` Angstrom); never raises for bad input.

    The time budget counts the search's work (:class:`SearchResult` ``work``), not wall time: the same lines
    give the same answer on any machine and under any load.

    :returns: ranked solutions with the reason when there are none, the wall seconds and the work spent.
    """
    work = _Work()
    token = _WORK.set(work)
    try:
        result = _search(two_theta, wavelength, params or SearchParams())
    finally:
        _WORK.reset(token)
    return attrs.evolve(result, work=work.seconds)


def _search(two_theta: Sequence[float] | np.ndarray, wavelength: float, params: SearchParams) -> SearchResult:
    start = time.perf_counter()
    reason = validate_lines(two_theta, wavelength, params.min_lines)
    if reason is not None:
        return SearchResult((), reason, time.perf_counter() - start)
    two_theta = np.asarray(two_theta, dtype=float).ravel()[:params.max_lines]
    wavelength = float(wavelength)
    if two_theta[-1] / 2.0 > 90 or np.any(np.isnan(two_theta_to_q(two_theta, wavelength))):
        return SearchResult((), "2theta beyond the wavelength's range", time.perf_counter() - start)
    found: list[Solution] = []
    zero_start, zero_retried = 0.0, False
    # N-TREOR09 order: every system at the nominal tolerances first, descending in symmetry until an
    # acceptable solution is found; only when none is, all systems again with widened tolerances (widening
    # inside each system first lets large false high-symmetry cells pass at wide tolerances)
    for factor in params.widen:
        low_start: float | None = None
        for group in _GROUPS:
            names = [name for name in group if name in params.systems]
            if not names:
                continue
            if group[0] in ("monoclinic", "triclinic") and low_start is None:
                low_start = _work_done()
            deadline = math.inf if low_start is None else low_start + params.time_budget
            if group[0] == "triclinic" and factor == params.widen[-1]:
                # at the widest tolerance, the last resort, the triclinic group gets a share of the budget of its
                # own even when the monoclinic group used it up (noisy triclinic 002: the triclinic search alone
                # finds the right cell in 5 s, at 0.09 deg, but after monoclinic searches that ended on the budget
                # it had no time left); at narrower tolerances a false triclinic cell found so passes before the
                # right cell of a higher system at a wider one (noisy orthorhombic 035, tetragonal 112, monoclinic
                # 015)
                deadline = max(deadline, _work_done() + TRICLINIC_SHARE * params.time_budget)
            if _work_done() > deadline:
                break
            group_found = _search_group(names, two_theta, wavelength, params, factor, zero_start, deadline)
            found.extend(group_found)
            accepted = [s for s in group_found if _acceptable(s, params)]
            check_factor, checked_next = factor, False
            if accepted:
                # partial cells of higher M20 than every acceptable one are widened too: with noisy lines a right
                # cell (9.2 x 5.2 A, 18 of 25 lines at M20 62) can leave more lines just outside the tolerance than
                # a false supercell that passes at M20 22; widened, it indexes 23 of 25 at M20 45
                best_m20 = max(a.m20 for a in accepted)
                stronger = [s for s in group_found if s.m20 > best_m20 and not _acceptable(s, params)]
                widened = _widen_partials(stronger, two_theta, wavelength, params, factor, deadline)
                found.extend(widened)
                accepted += [s for s in widened if _acceptable(s, params)]
            else:
                widened = _widen_partials(group_found, two_theta, wavelength, params, factor, deadline)
                found.extend(widened)
                accepted = [s for s in widened if _acceptable(s, params)]
                if accepted:
                    # a widened partial cell passes at a lower threshold than the nominal search would have set;
                    # the group is searched in full at that widening too, so that the other cells found there (a
                    # right 10.5 A hexagonal cell at M20 30 beside its sqrt3 supercell at M20 13.6, widened from a
                    # partial one) compete on the same terms
                    check_factor = min(a.tolerance for a in accepted) / params.tolerance
                    wide = _search_group(names, two_theta, wavelength, params, check_factor, zero_start, deadline)
                    found.extend(wide)
                    accepted += [s for s in wide if _acceptable(s, params)]
                    if group[0] == "monoclinic" and "orthorhombic" in params.systems:
                        # ... and so does the orthorhombic group, whose metric the monoclinic one contains: the
                        # classical descent at that widening (orthorhombic C 3.62 x 19.40 x 4.13 A, noisy lines
                        # with two impurity lines: a monoclinic partial cell of 17 lines at M20 81 passes widened
                        # to 0.09 deg with 23 lines at M20 26; the right cell indexes 23 there at M20 47.5, and
                        # the orthorhombic search at the nominal tolerance had not refined it)
                        higher = _search_group(["orthorhombic"], two_theta, wavelength, params, check_factor,
                                               zero_start, math.inf)
                        found.extend(higher)
                        accepted += [s for s in higher if _acceptable(s, params)]
                    if group[0] == "monoclinic" and "triclinic" in params.systems:
                        # nor the triclinic one at the current tolerance, within the time budget: a cell there
                        # (promoted to its metric's system) indexing more lines than every widened solution with
                        # a higher M20 ranks above them (ideal lines of monoclinic P 6.796 x 22.55 x 6.809 A, beta
                        # 119.3 deg: a partial A-centred cell of half the volume passes widened to 0.06 deg with 24
                        # of 25 lines at M20 26.8; the triclinic search gives the right cell, 25 lines at 0.03 deg
                        # with M20 39.3)
                        plain, most = max(a.m20 for a in accepted), max(a.lines_indexed for a in accepted)
                        lower = _search_group(["triclinic"], two_theta, wavelength, params, factor, zero_start,
                                              deadline)
                        lower = [s for s in lower if _acceptable(s, params) and s.lines_indexed > most
                                 and s.m20 > plain]
                        found.extend(lower)
                        accepted += lower
                    # a group passing only at a widened tolerance does not end the descent alone; a monoclinic
                    # cell at the nominal tolerance may leave a line or two unindexed that the widened orthorhombic
                    # one indexes (pseudo-hexagonal monoclinic 5.01 x 8.21 x 5.04 A, beta 119.6 deg: 24 of 25
                    # lines at M20 76 against an orthorhombic B cell's 25 at 0.09 deg with M20 28)
                    min_lines = 0 if group[0] == "orthorhombic" else max(a.lines_indexed for a in accepted)
                    better = _check_next(group, accepted, min_lines, two_theta, wavelength, params, factor,
                                         zero_start)
                    found.extend(better)
                    accepted += better
                    checked_next = True
            retry = None
            if accepted:
                retry = max(accepted, key=lambda s: s.rank_score)
            elif low_start is None:
                partial = [s for s in group_found if not s.zone and s.lines_indexed >= 0.6 * s.lines_total]
                retry = max(partial, key=lambda s: (s.lines_indexed, s.rank_score)) if partial else None
            if (retry is not None and not zero_retried
                    and abs(retry.zero_shift - zero_start) > params.zero_retry * params.tolerance * factor):
                # trial cells came from lines off by a zero error: once more from corrected lines
                group_found = _search_group(names, two_theta, wavelength, params, factor, retry.zero_shift,
                                            deadline)
                found.extend(group_found)
                retried = [s for s in group_found if _acceptable(s, params)]
                accepted += retried
                if accepted and not retried:
                    zero_retried = True
                elif retried:  # the zero shift stands: later searches start from it
                    zero_retried, zero_start = True, retry.zero_shift
                    higher = _search_higher(group, two_theta, wavelength, params, factor, zero_start)
                    if higher:  # the higher symmetry the zero error hid comes first, as in the classical descent
                        lower = {id(g) for g in group_found}
                        found = [s for s in found if id(s) not in lower] + higher
                        accepted = higher
                # else: the zero shift of a wrong partial cell; the next groups start from the lines as they are
            if (accepted and group[0] in ("cubic", "tetragonal", "orthorhombic")
                    and max(a.m20 for a in accepted) < 2 * params.m20_threshold):
                # a marginal solution (M20 under twice the threshold) does not end the descent alone (a false cubic
                # I 23.5 A cell indexed the first 25 lines of a trigonal 7.25 x 6.78 A structure with M20 31, the
                # hexagonal cell has M20 146; false tetragonal and hexagonal cells index the first 25 lines of
                # orthorhombic structures with M20 20-30, a false orthorhombic 9.54 x 11.75 x 8.73 A cell those of a
                # monoclinic 4.88 x 9.54 x 7.01 A one with M20 40 against 81)
                found.extend(_check_next(group, accepted, 0, two_theta, wavelength, params, check_factor,
                                         zero_start))
            elif accepted and not checked_next and group[0] != "orthorhombic":
                # nor does one whose best solution leaves lines unindexed (a cubic, tetragonal or hexagonal one: the
                # monoclinic metric's extra parameters index impurity lines of an orthorhombic cell by chance)
                top = max(accepted, key=lambda a: a.rank_score)
                if all(MetricSystem.get(a.crystal_system).name not in names for a in accepted):
                    # nor one whose only acceptable solutions are halved cells of the next group's system, which that
                    # group's own search may improve on (a cubic 13.98 A cell with c halved, tetragonal 13.98 x 6.99 A
                    # at M20 67.5, for the tetragonal I 9.885 x 3.127 A cell at M20 125)
                    found.extend(_check_next(group, accepted, top.lines_indexed, two_theta, wavelength, params,
                                             factor, zero_start))
                elif top.lines_indexed < top.lines_total:
                    better = _check_next(group, accepted, top.lines_indexed + 1, two_theta, wavelength, params,
                                         factor, zero_start)
                    found.extend(better)
                    accepted += better
            if accepted:
                # the classical descent at every widening a solution passed at: the groups before this one had been
                # searched at the current tolerance only (noisy cubic I 10.25 A lines: a tetragonal I 14.50 x 4.38 A
                # cell widened from a partial one passes at 0.09 deg, and a trigonal R cell of the cubic lattice, 23
                # of 25 lines at M20 32.3, came first; the cubic search at 0.09 deg gives the right cell, 23 lines
                # at M20 41.2, which ranks above it)
                for wider in sorted({a.tolerance / params.tolerance for a in accepted
                                     if a.tolerance > 1.01 * params.tolerance * factor}):
                    higher = _search_higher(group, two_theta, wavelength, params, wider, zero_start, every=True)
                    found.extend(higher)
                    accepted += [s for s in higher if _acceptable(s, params)]
                # pseudo-symmetry: the best acceptable cells of each system may be distorted lower ones (a
                # tetragonal 4.52 x 11.01 A cell leaving one split line unindexed ranks below a false sqrt2 cell)
                for name in names:
                    mine = {tuple(np.round(a.cell, 3)): a for a in sorted(found, key=lambda a: a.rank_score)
                            if MetricSystem.get(a.crystal_system).name == name and _acceptable(a, params)}
                    for a in sorted(mine.values(), key=lambda a: -a.rank_score)[:3]:
                        lower = _check_lower(a, two_theta, wavelength, params)
                        if lower is not None:
                            found.append(lower)
                break
        if any(_acceptable(s, params) for s in found):
            break
    solutions = _collapse(found, params)
    solutions = _distinct(_occam_cubic(_collapse(found, params), two_theta, wavelength, params, zero_start))
    solutions = solutions[:params.max_solutions]
    reason = None
    if not solutions:
        reason = "no trial cell indexes the lines within tolerance"
    elif not _passing(solutions, params)[0]:
        reason = (f"best solution is doubtful: M20 {solutions[0].m20:.1f}, "
                  f"{solutions[0].lines_total - solutions[0].lines_indexed} unindexed lines")
    return SearchResult(tuple(solutions), reason, time.perf_counter() - start)


def _occam_cubic(solutions: list[Solution], two_theta: np.ndarray, wavelength: float, params: SearchParams,
                 zero_start: float) -> list[Solution]:
    """The ranked solutions with a cubic cell first when the best one is a tetragonal, hexagonal or trigonal cell
    that explains the lines no better than a cubic cell derived from it.

    Noisy lines (0.03 deg) of a cubic structure leave its cell only about two thirds of the lines within the
    nominal tolerance, while a cell of one parameter more absorbs the errors in its split reflections and passes
    first: the same lattice slightly distorted (a tetragonal I 5.247 x 7.428 A cell of a cubic F 7.423 A
    structure, 17 of 19 lines at 0.03 deg, M20 88) or a smaller cell of another lattice with the same line
    positions (geometric ambiguities: tetragonal P a / sqrt2 x a / 2 has exactly the positions of cubic I a,
    and a / sqrt2 x a those of cubic P a). The cubic cells tried have an edge of a or c of the best cell times 1,
    sqrt2, 1 / sqrt2 or 2 (every such relation), refined with their centring at the best cell's tolerance and the
    wider ones, from the best cell's zero shift and from the search's (``zero_start``: refinements from
    different zero shifts end in different minima). One wins when it is acceptable, indexes as many lines as the
    best cell at its own tolerance and at the cubic cell's, has at least 1 / ``occam_gain`` of the best cell's
    M20 at the cubic cell's tolerance (F 7.423 A: 17 of 19 lines at 0.06 deg with M20 81.5 against 87.8), and the
    best cell does not predict a fifth fewer resolved lines (then it is the cubic cell halved, as
    :func:`_halve_lower` wants: a cubic I 13.98 A cell indexes the 25 lines of a tetragonal I 9.885 x 3.127 A
    structure at M20 59, its halved tetragonal cell at 67.5). Ideal lines of tetragonal P
    7.345 x 10.40 A, c / a = sqrt2 + 0.12 %, fit the tetragonal cell with M20 141 and the cubic P 10.39 A cell
    with 105 at 0.06 deg: a gain of 1.35, which the extra parameter earns."""
    if not solutions or "cubic" not in params.systems or not _passing(solutions[:1], params)[0]:
        return solutions
    top = solutions[0]
    if top.crystal_system not in ("tetragonal", "hexagonal", "trigonal") or top.lines_total < 12:
        return solutions
    system, cubic = MetricSystem.get(top.crystal_system), MetricSystem.get("cubic")
    edges = sorted({round(length * ratio, 4) for length in (top.cell[0], top.cell[2])
                    for ratio in (1.0, math.sqrt(2.0), math.sqrt(0.5), 2.0)})
    first = max(top.tolerance / params.tolerance, 1.0)
    q_max = float(two_theta_to_q(np.array([two_theta[top.lines_total - 1] - top.zero_shift]), wavelength)[0])
    best: Solution | None = None
    for factor in (f for f in params.widen if f >= first / 1.01):
        tol_deg = params.tolerance * factor
        n_top = _n_resolved(top, q_max, wavelength, tol_deg)
        same = top if factor <= first * 1.01 else _rescored(system, top, two_theta, wavelength, tol_deg)
        for edge, zero in itertools.product(edges, dict.fromkeys((top.zero_shift, zero_start))):
            if not _physical(cubic.coefficients(np.array([[edge ** -2.0]])), params, "cubic")[0]:
                continue
            c = _evaluate(cubic, np.array([[edge ** -2.0]]), two_theta, wavelength, tol_deg, tol_deg, params, zero)
            if (c is not None and _acceptable(c, params) and c.lines_indexed >= top.lines_indexed
                    and (same is None or (c.lines_indexed >= same.lines_indexed
                                          and c.m20 * params.occam_gain >= same.m20))
                    and 0.8 * _n_resolved(c, q_max, wavelength, tol_deg) < n_top
                    and (best is None or c.m20 > best.m20)):
                best = c
        if best is not None:
            break
    if best is None:
        return solutions
    return [best] + solutions


def _rescored(system: MetricSystem, s: Solution, two_theta: np.ndarray, wavelength: float,
              tol_deg: float) -> Solution | None:
    """The solution's cell, zero shift and centring as they are (not refined again) indexing the lines at
    ``tol_deg`` and scored there: refined again at a wide tolerance, a tetragonal 5.815 x 5.801 A cell of ideal
    lines assigned split lines to the wrong reflections (M20 58 against 95)."""
    q_obs = two_theta_to_q(two_theta - s.zero_shift, wavelength)
    indexing = index_lines(q_obs, np.array(s.q_coefficients), q_gradient(two_theta, wavelength) * tol_deg,
                           s.centring)
    if indexing.count == 0:
        return None
    return _solution(system, np.array(s.q_coefficients), s.centring, indexing, two_theta, wavelength, q_obs,
                     s.zero_shift, tol_deg)


def _search_higher(group: tuple[str, ...], two_theta: np.ndarray, wavelength: float, params: SearchParams,
                   factor: float, zero_start: float, every: bool = False) -> list[Solution]:
    """Acceptable solutions of the groups before ``group`` (cubic to orthorhombic) searched again, with the
    tolerances widened by ``factor``, from lines corrected by the zero shift ``zero_start``: of the first group
    that has any, or with ``every`` of each group (the order is the ranking's then).

    Used when a zero shift found in ``group`` stands (LaB6 with a 0.1 deg zero error: the cubic search found
    nothing, the tetragonal one a C-centred 4.155 A cell only after the zero correction; the cubic P 4.155 A cell
    is then found too), and, with ``every``, when a solution of ``group`` passed at a wider tolerance than the
    groups before it were searched at."""
    out: list[Solution] = []
    for higher in _GROUPS[:_GROUPS.index(group)]:
        names = [name for name in higher if name in params.systems]
        if names and higher[0] not in ("monoclinic", "triclinic"):
            found = _search_group(names, two_theta, wavelength, params, factor, zero_start, math.inf)
            out += [s for s in found if _acceptable(s, params)]
            if out and not every:
                break
    return out


def _check_next(group: tuple[str, ...], accepted: list[Solution], min_lines: int, two_theta: np.ndarray,
                wavelength: float, params: SearchParams, factor: float, zero_start: float) -> list[Solution]:
    """Acceptable solutions of the next group (tetragonal/hexagonal after cubic, orthorhombic after them,
    monoclinic within the time budget after orthorhombic; none after monoclinic) searched with the tolerances
    widened by ``factor`` that index at least ``min_lines``
    lines with a higher M20 than every ``accepted`` one (twice as high when that is marginal, under twice the
    threshold, unless the cell is ``params.max_smaller_volume`` times their volume or smaller and indexes as many
    lines): they are kept beside them (and rank above them). After a marginal cubic solution the orthorhombic
    group is checked too, against it and the tetragonal and hexagonal solutions kept.

    Used when the group's acceptable solutions are not conclusive: when they are marginal, when they pass only
    at a widened tolerance (a
    tetragonal 5.815 x 5.801 A cell indexes all 25 lines at 0.03 deg with M20 95, the cubic 5.814 A cell leaves
    10 of them split beyond 0.03 deg and passes at 0.09 deg with 23 lines at M20 64), and when the best of them
    leaves lines unindexed (a cubic 10.39 A cell indexes 24 of the 25 lines of a tetragonal 7.346 x 10.398 A
    structure with M20 99, the tetragonal cell all of them with M20 141). The M20 must be higher, not only the
    ranking score (M20 / (1 + unindexed lines)): a half-volume tetragonal cell a / sqrt2, a indexes the one
    line of a cubic P 7.266 A structure that merges two reflections (M20 101 against 136)."""
    following = _GROUPS.index(group) + 1
    if following >= len(_GROUPS) or _GROUPS[following][0] == "triclinic":
        return []
    names = [name for name in _GROUPS[following] if name in params.systems]
    if not names:
        return []
    best = plain = max(a.m20 for a in accepted)
    if best < 2 * params.m20_threshold:  # a marginal solution yields only to twice its M20
        best *= 2.0
    # ... unless the lower cell is a quarter of the volume or less and indexes as many lines (de Wolff: the smallest
    # cell that indexes every line): then a higher M20 suffices (an orthorhombic 5.456 x 4.814 x 11.79 A cell
    # indexes the 25 lines at M20 50, a false hexagonal cell of 4.7 times its volume 24 of them at M20 29.6)
    small = params.max_smaller_volume * min(_primitive_volume(a) for a in accepted)
    most = max(a.lines_indexed for a in accepted)
    # the monoclinic search is bounded by the time budget, as it is in the descent
    deadline = _work_done() + params.time_budget if names[0] == "monoclinic" else math.inf
    lower = _search_group(names, two_theta, wavelength, params, factor, zero_start, deadline)
    out = [s for s in lower if _acceptable(s, params) and s.lines_indexed >= min_lines
           and (s.m20 > best or (s.m20 > plain and s.lines_indexed >= most and _primitive_volume(s) <= small))]
    if _GROUPS[following][0] == "tetragonal" and max(s.m20 for s in out or accepted) < 2 * params.m20_threshold:
        # a marginal cubic cell, or the marginal tetragonal or hexagonal cell that beat it, is checked by the
        # orthorhombic search too (orthorhombic 7.915 x 11.22 x 3.96 A: a false cubic 11.21 A cell at 0.06 deg
        # indexes the 25 lines at M20 27.4, a tetragonal 7.92 x 11.23 A cell of half its volume at M20 38.9, the
        # right cell of a quarter of it at M20 54)
        out += _check_next(_GROUPS[following], accepted + out, min_lines, two_theta, wavelength, params, factor,
                           zero_start)
    return out


def _widen_partials(group_found: list[Solution], two_theta: np.ndarray, wavelength: float, params: SearchParams,
                    factor: float, deadline: float, n_best: int = 3) -> list[Solution]:
    """The few best partial solutions of a group re-evaluated at the wider tolerances of ``params.widen``.

    Noisier lines than the tolerance assumes leave a right cell with a high M20 but a few lines just outside the
    tolerance; widening only those cells (not the whole search, which lets large false cells pass) finds it
    before the descent to lower symmetry. A partial solution qualifies with M20 at least the threshold, no
    dominant zone and at least 70 % of the lines indexed, or down to 45 % of them with the threshold raised by
    0.7 / fraction (0.03 deg noise leaves a right cubic cell 12 of 25 lines within 0.03 deg, at M20 130, and
    a right hexagonal 9.7 x 19.3 A cell 13 of 25, at M20 28.6);
    a cubic one needs twice the threshold: a large false
    cubic cell (one parameter) indexes nearly every line at a wider tolerance with M20 just over the threshold
    (a hexagonal 9.2 x 5.2 A cell gave a cubic I 19.6 A partial solution with M20 29.5, widened to 24 of 25
    lines with M20 20.6), while right cubic cells of noisy lines have partial M20 of 50 to 100."""
    def qualifies(s: Solution) -> bool:
        fraction = s.lines_indexed / s.lines_total
        threshold = params.m20_threshold * (2.0 if s.crystal_system == "cubic" else 1.0)
        # fewer lines indexed need a higher M20 (scaled by 0.7 / fraction), down to 45 % of the lines
        return not s.zone and fraction >= 0.45 and s.m20 >= threshold * max(1.0, 0.7 / fraction)

    partial = [s for s in group_found if qualifies(s)]
    partial = sorted(partial, key=lambda s: -s.m20)[:n_best]
    out: list[Solution] = []
    for wider in (f for f in params.widen if f > factor):
        # each widening starts from the cell refined at the previous one (a cell refined on half the lines is
        # off enough to misassign dense high-angle lines at once); the cell is refined already, so it is
        # indexed at the refinement tolerance, not the wider screening tolerance of raw trial cells
        tol_deg = params.tolerance * wider
        for i, s in enumerate(partial):
            if _work_done() > deadline:
                return out
            system = MetricSystem.get(s.crystal_system)
            x = system.parameters(np.array(s.q_coefficients))
            w = _evaluate(system, x, two_theta, wavelength, tol_deg, tol_deg, params, s.zero_shift)
            if w is not None:
                out.append(w)
                if w.lines_indexed >= s.lines_indexed:
                    partial[i] = w
        if any(_acceptable(w, params) for w in out):
            break
    return out


def _search_group(names: list[str], two_theta: np.ndarray, wavelength: float, params: SearchParams, factor: float,
                  zero_start: float, deadline: float) -> list[Solution]:
    """Solutions of the systems ``names`` with tolerances widened by ``factor``."""
    tol_deg, screen_deg = params.tolerance * factor, params.screen_tolerance * factor
    q_obs = two_theta_to_q(two_theta - zero_start, wavelength)
    tol_screen = q_gradient(two_theta, wavelength) * screen_deg
    systems = [MetricSystem.get(name) for name in names]
    first: dict[str, np.ndarray] = {}
    if len(systems) > 1:
        # the system whose best trial cell screens best is searched first (tetragonal or hexagonal): once it
        # gives an acceptable solution indexing every line, the other is searched with fewer trials
        best_key: dict[str, float] = {}
        for system in systems:
            trials, keys = _screen(system, _schemes(system, params, two_theta.size)[0], q_obs, tol_screen, params,
                                   deadline, likelihood=factor > 1.0)
            first[system.name] = trials
            best_key[system.name] = float(keys.min()) if keys.size else math.inf
        systems.sort(key=lambda system: best_key[system.name])
    lower_fits = len(systems) > 1 and _lower_screens_better(min(best_key.values()), q_obs, tol_screen, params,
                                                            deadline)
    found: list[Solution] = []
    for system in systems:
        settled = lower_fits or any(_acceptable(s, params) and s.lines_indexed == s.lines_total for s in found)
        found.extend(_search_system(system, two_theta, wavelength, q_obs, tol_screen, params, tol_deg, screen_deg,
                                    zero_start, deadline, settled, first.get(system.name), likelihood=factor > 1.0))
    return found


def _lower_screens_better(best_key: float, q_obs: np.ndarray, tol_screen: np.ndarray, params: SearchParams,
                          deadline: float) -> bool:
    """Whether the best trial cell of the first orthorhombic basis scheme screens ``params.lower_screen_ratio``
    times better than ``best_key``, the best of the tetragonal and hexagonal ones (screening keys: calculated
    lines, times 3 per line left unindexed). An orthorhombic metric contains both, so on a tetragonal or
    hexagonal lattice it screens no better (it splits their lines: 1.2 to 600 times worse over the 41 tetragonal,
    hexagonal and trigonal structures of every sixth shared structure); 8 of the 20 orthorhombic structures of
    that sample screened 2.3-33 times better."""
    if "orthorhombic" not in params.systems or not math.isfinite(best_key):
        return False
    system = MetricSystem.get("orthorhombic")
    _, keys = _screen(system, _schemes(system, params, q_obs.size)[0], q_obs, tol_screen, params, deadline)
    return bool(keys.size) and params.lower_screen_ratio * float(keys.min()) < best_key


#: Systems searched together before deciding whether to descend further.
_GROUPS = (("cubic",), ("tetragonal", "hexagonal"), ("orthorhombic",), ("monoclinic",), ("triclinic",))


def _search_system(system: MetricSystem, two_theta: np.ndarray, wavelength: float, q_obs: np.ndarray,
                   tol_screen: np.ndarray, params: SearchParams, tol_deg: float, screen_deg: float,
                   zero_start: float, deadline: float, settled: bool = False,
                   first_trials: np.ndarray | None = None, likelihood: bool = False) -> list[Solution]:
    """Solutions of one system, scheme after scheme, until one is acceptable and indexes every line.

    :param settled: another system of the group already gave such a solution: fewer trials per scheme.
    :param first_trials: the first scheme's screened trial cells, when already screened.
    :param likelihood: order trial cells by their keys and :func:`_screen_score` alternately (at widened
        tolerances).
    """
    found: list[Solution] = []
    n_refine = params.n_refine_settled if settled else params.n_refine
    for i, scheme in enumerate(_schemes(system, params, two_theta.size)):
        if _work_done() > deadline:
            break
        if i == 0 and first_trials is not None:
            trials = first_trials
        else:
            trials, _ = _screen(system, scheme, q_obs, tol_screen, params, deadline, likelihood)
        seen = np.zeros((0, system.n_params))
        extra = n_refine
        for x in trials:
            if len(seen) >= n_refine or extra <= 0 or _work_done() > deadline:
                break
            if np.any(np.all(np.abs(seen - x) <= 1e-3 * np.abs(x), axis=1)):
                continue
            seen = np.concatenate([seen, x[None, :]])
            s = _evaluate(system, x[None, :], two_theta, wavelength, tol_deg, screen_deg, params, zero_start)
            if s is not None and 0 < s.lines_total - s.lines_indexed:
                grown = _grow(system, s, two_theta, wavelength, tol_deg, params, zero_start)
                if grown is not s and not _acceptable(s, params):
                    # the cell as found stays a partial solution beside its doubled one: noisy lines leave a right
                    # cell with lines just outside the tolerance (4.60 x 8.93 A, 15 of 25 lines at M20 70), which
                    # a doubled cell indexes by its denser reflections (17 of 25 at M20 13); widening decides
                    found.append(s)
                s = grown
            if s is not None and system.name in _HALVED_LOWER:
                s = _halve_lower(s, two_theta, wavelength, tol_deg, screen_deg, params, zero_start)
            if s is not None and s.crystal_system in ("orthorhombic", "monoclinic", "triclinic"):
                # also a tetragonal cell's halved orthorhombic one (7.66 A tP, all lines h + k even: 5.415 A tP)
                s = _promote(s, two_theta, wavelength, tol_deg, screen_deg, params)
            extra -= 1
            if s is not None:
                found.append(s)
                if _acceptable(s, params):  # a few more for the ranking, then stop
                    extra = min(extra, 5)
        if any(_acceptable(s, params) and s.lines_indexed == s.lines_total for s in found):
            break
    return found
