"""The ``ntreor`` indexer: peak picking, trial-and-error search, reduction, extinction group.

For a measured profile the peaks are picked first (:func:`xrdframe.peak_picking.pick_peaks`); a peak list
is used as it is. The search (:mod:`xrdframe_ntreor.search`) returns cells as found, with their centring;
each is reduced to the conventional cell of its Bravais lattice (:func:`xrdframe.lattice.lattice_symmetry`),
equivalent solutions collapse into one, and the extinction group is ranked from the reflection classes
missing among the observed lines (:mod:`xrdframe_ntreor.extinction`). Candidates are ranked as NTREOR
ranks them: highest M20, then smallest volume.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import attrs
import gemmi
import numpy as np

from xrdframe.component import param
from xrdframe.indexing import CellCandidate, Prediction, lattice_centring
from xrdframe.lattice import LatticeMatch, cell_volume, lattice_symmetry, niggli_cell, two_theta_to_q
from xrdframe.pattern import ObservedPeaks, Pattern
from xrdframe.peak_picking import PeakPickingParams, pick_peaks
from xrdframe.symmetry import extinction_groups
from xrdframe.validators import optional_positive, positive
from xrdframe_ntreor.extinction import rank_extinction_groups
from xrdframe_ntreor.search import SearchParams, Solution, search
from xrdframe_ntreor.systems import SYSTEMS, MetricSystem

__all__ = ["Ntreor", "NtreorParams"]



def _non_negative_float(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")


def merge_lines(peaks: ObservedPeaks, width: float) -> ObservedPeaks:
    """Peaks sorted by 2theta, with lines closer than ``width`` degrees merged into one (intensity-weighted
    position, summed intensity): a diffractometer cannot resolve them, and the search needs distinct lines.
    Non-finite positions are dropped here and reported by the search's validation instead."""
    two_theta = np.asarray(peaks.two_theta, dtype=float)
    if two_theta.size == 0 or not np.all(np.isfinite(two_theta)):
        return peaks
    intensity = np.ones_like(two_theta) if peaks.intensity is None else np.asarray(peaks.intensity, dtype=float)
    order = np.argsort(two_theta, kind="stable")
    two_theta, intensity = two_theta[order], intensity[order]
    if np.all(np.diff(two_theta) > width) and np.array_equal(order, np.arange(len(order))):
        return peaks
    group = np.concatenate([[0], np.cumsum(np.diff(two_theta) > width)])
    weight = np.where(intensity > 0, intensity, 1e-12)
    total = np.bincount(group, weights=weight)
    merged = np.bincount(group, weights=weight * two_theta) / total
    sigma = None
    if peaks.sigma is not None:
        sigma = np.sqrt(np.bincount(group, weights=np.asarray(peaks.sigma, dtype=float)[order] ** 2)
                        / np.bincount(group))
    note = f"{len(two_theta) - len(merged)} coincident lines merged"
    return attrs.evolve(peaks, two_theta=merged,
                        intensity=None if peaks.intensity is None else np.bincount(group, weights=intensity),
                        sigma=sigma, note="; ".join(x for x in (peaks.note, note) if x))


def _non_negative_int(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")


@attrs.frozen
class NtreorParams:
    max_lines: int = param(25, doc="observed lines used by the search (the first ones); 20-30 is usual",
                           validator=positive)
    min_lines: int = param(6, doc="fewer usable lines than this: no search, an empty answer with the reason",
                           validator=positive)
    tolerance: float = param(0.03, unit="deg 2theta", validator=positive,
                             doc="indexing tolerance of a refined cell (every system again at x2, x3 if none fits)")
    max_volume: float | None = param(None, unit="Angstrom^3",
                                     doc="largest cell volume tried in any system (default: per system, "
                                         "30000 cubic down to 2500 triclinic)")
    max_unindexed: int = param(2, doc="unindexed lines (of max_lines) an acceptable solution may leave",
                               validator=_non_negative_int)
    m20_threshold: float = param(20.0, validator=positive,
                                 doc="a solution with M20 at least this stops the descent to lower symmetry")
    impurity_m20: float | None = param(
        100.0, validator=optional_positive,
        doc="a cubic, tetragonal or hexagonal cell with M20 at least this (nominal tolerance) may leave up to 20 % "
        "of the lines unindexed, as impurity lines; null: never (a phase-pure sample)")
    time_budget: float = param(60.0, unit="s", validator=positive,
                               doc="time allowed for the monoclinic and triclinic searches, per tolerance (at "
                               "the widest, the triclinic search gets at least a third of it even when the "
                               "monoclinic one used it up); counted as work in reference seconds, not timed, so "
                               "that answers do not depend on the machine or its load")
    zero_shift: bool = param(True, doc="refine a zero shift with the cell")
    max_candidates: int = param(10, doc="candidates returned, best first", validator=positive)
    extinction: bool = param(True, doc="rank extinction groups from the reflections missing among the lines")
    lattice_tolerance: float = param(0.5, unit="deg", validator=positive,
                                     doc="largest Le Page obliquity of a twofold axis when assigning the lattice "
                                         "(above the search's crystal system only for lines that needed a widened "
                                         "tolerance)")
    merge_width: float = param(0.005, unit="deg 2theta", validator=_non_negative_float,
                               doc="lines closer than this are one line (intensity-weighted position)")
    picking: PeakPickingParams = param(factory=PeakPickingParams,
                                       doc="peak picking for measured profiles (ignored for peak lists)")

    def search_params(self) -> SearchParams:
        """The search settings these parameters stand for."""
        defaults = SearchParams()
        max_volume = dict(defaults.max_volume)
        if self.max_volume is not None:
            max_volume = {k: min(v, self.max_volume) for k, v in max_volume.items()}
        return attrs.evolve(defaults, max_lines=self.max_lines, min_lines=self.min_lines, tolerance=self.tolerance,
                            screen_tolerance=2 * self.tolerance, max_volume=max_volume,
                            max_unindexed=self.max_unindexed, m20_threshold=self.m20_threshold,
                            impurity_m20=math.inf if self.impurity_m20 is None else self.impurity_m20,
                            time_budget=self.time_budget, zero_shift=self.zero_shift,
                            max_solutions=max(self.max_candidates, defaults.max_solutions))


def _conventional(solution: Solution, tolerance: float, nominal: float) -> LatticeMatch:
    """The most symmetric Bravais lattice compatible with the refined metric of a solution, with its conventional
    cell (``ideal_cell``) and the transformation from the found basis (conventional = found @ P); aP is always
    among the matches.

    A lattice of a higher crystal system than the search's is taken on the metric alone only when the solution's
    lines needed a widened tolerance (an indexed line further than ``nominal`` degrees 2theta from its
    reflection): such lines cannot show a split of a few tenths of a percent, and the higher symmetry explains
    them as well (Occam). A cell the search found at a widened tolerance whose lines all fit within the nominal
    one is not promoted so: ideal lines of monoclinic P 6.796 x 22.55 x 6.809 A, beta 119.3 deg (an orthorhombic
    C metric within 0.12 deg) fit the monoclinic cell within 0.03 deg, M20 40, while the orthorhombic C cell
    leaves 4 of 25 lines outside 0.03 deg. Lines
    precise enough for the nominal tolerance can: the search refitted the cell in the higher system its metric
    allows and kept it only when the lines agreed, so an orthorhombic a = 10.388, b = 10.419 A cell with split
    high-angle lines stays orthorhombic; so does a cell the search chose below its metric's system because its
    split lines showed it (``split_by_lines``). (The mean residual of the indexed lines did not tell noisy lines from
    precise ones well enough to be used instead: misfit lines of right cells raise it.)"""
    matches = lattice_symmetry(solution.cell, solution.centring, tolerance)
    if solution.max_error > 1.01 * nominal and not solution.split_by_lines:
        return matches[0]
    rank = SYSTEMS.index(MetricSystem.get(solution.crystal_system).name)
    return next((m for m in matches if SYSTEMS.index(MetricSystem.get(m.crystal_system).name) >= rank),
                matches[-1])


class Ntreor:
    """Classical indexing by trial and error (the ``ntreor`` indexer); see the module docstring."""

    def __init__(self, params: NtreorParams) -> None:
        self.params = params

    def peaks(self, data: Pattern | ObservedPeaks) -> ObservedPeaks:
        """The observed peaks of ``data``: picked from a profile, or the peak list itself."""
        peaks = data if isinstance(data, ObservedPeaks) else pick_peaks(data, self.params.picking)
        return merge_lines(peaks, self.params.merge_width)

    def predict(self, data: Pattern | ObservedPeaks) -> Prediction:
        start = time.perf_counter()
        try:
            peaks = self.peaks(data)
        except Exception as exc:  # noqa: BLE001 - an indexer answers with a reason, never raises for one pattern
            return Prediction.empty(f"peak picking failed: {exc}", time.perf_counter() - start)
        if peaks.wavelength is None:
            return Prediction.empty("no wavelength (not in the file, nor given)", time.perf_counter() - start)
        result = search(peaks.two_theta, peaks.wavelength, params=self.params.search_params())
        start_angle = float(data.two_theta[0]) if isinstance(data, Pattern) and len(data.two_theta) else None
        candidates = self.candidates(result.solutions, peaks, start_angle)
        seconds = time.perf_counter() - start
        if not candidates:
            return Prediction.empty(result.reason or "no cell indexes the lines", seconds)
        best = candidates[0]
        return Prediction(crystal_system=best.crystal_system, extinction_group=best.extinction_group,
                          space_group=most_symmetric(best.space_groups), cell=best.cell,
                          figure_of_merit=best.m20, candidates=candidates, reason=result.reason, seconds=seconds)

    def candidates(self, solutions: tuple[Solution, ...], peaks: ObservedPeaks,
                   data_start: float | None = None) -> tuple[CellCandidate, ...]:
        """Solutions in their conventional cells, equivalent ones collapsed, in the search's order (acceptable
        ones first, then M20 with unindexed lines penalised, then volume).

        ``data_start``: the first angle of the measured profile (degrees), below which no line can be missing.
        """
        p = self.params
        out: list[CellCandidate] = []
        seen: list[np.ndarray] = []
        two_theta = np.asarray(peaks.two_theta, dtype=float)
        for solution in solutions:
            try:
                match = _conventional(solution, p.lattice_tolerance, p.tolerance)
            except ValueError:  # not a cell (gemmi refuses the metric)
                continue
            lattice, cell, transformation = match.bravais_lattice, match.ideal_cell, match.transformation
            reduced = np.asarray(niggli_cell(cell, match.centring), dtype=float)
            if any(np.allclose(reduced, r, rtol=2e-3, atol=0.05) for r in seen):
                continue  # the same lattice as a better-ranked solution
            seen.append(reduced)
            lines = two_theta[:solution.lines_total] - solution.zero_shift
            # Miller indices in the conventional basis: (a', b', c') = (a, b, c) P gives h' = h P
            setting = np.asarray(transformation, dtype=float)
            fields: dict[str, Any] = {}
            if p.extinction:
                fields, extra = _extinction_fields(cell, lattice, lines, peaks, p, data_start)
                if extra is not None:  # the cell in the setting the extinction symbol is written for
                    cell, setting = fields.pop("cell"), setting @ extra
            hkl = np.rint(np.asarray(solution.hkl, dtype=float) @ setting).astype(int)
            system = fields.pop("crystal_system", match.crystal_system)
            out.append(CellCandidate(
                crystal_system=system, bravais_lattice=lattice, cell=cell,
                volume=cell_volume(cell), m20=solution.m20, f_n=solution.f_n, n_lines=solution.n_lines,
                lines_indexed=solution.lines_indexed, lines_total=solution.lines_total,
                zero_shift=solution.zero_shift, hkl=hkl, **fields))
        # in the search's order: acceptable solutions first, then M20 with unindexed lines penalised, then the
        # smallest volume
        return tuple(out[:p.max_candidates])


@functools.cache
def _point_group_order(space_group: int) -> int:
    return len(gemmi.find_spacegroup_by_number(space_group).operations().sym_ops)


def most_symmetric(space_groups: tuple[int, ...]) -> int | None:
    """The space group a powder pattern's absences cannot tell from the others of its extinction group that
    ``ntreor`` reports: the one of highest point-group order (the centrosymmetric, holohedral one, as most
    inorganic crystals are centrosymmetric), the highest number on a tie.

    >>> most_symmetric((196, 202, 209, 216, 225)), most_symmetric((186, 190, 194)), most_symmetric(())
    (225, 194, None)
    """
    if not space_groups:
        return None
    return max(space_groups, key=lambda n: (_point_group_order(n), n))


@functools.cache
def _prior(lattice: str) -> dict[int, float] | None:
    """On a hexagonal lattice a trigonal and a hexagonal group with the same absences give the same lines; the
    hexagonal one is preferred (slightly: 49 hexagonal against 36 trigonal P structures among the 458 shared
    real structures)."""
    if lattice != "hP":
        return None
    return {g.id: 1.0 if g.crystal_system == "hexagonal" else 0.9 for g in extinction_groups()
            if g.crystal_system in ("hexagonal", "trigonal")}


def _extinction_fields(cell: tuple[float, ...], lattice: str, lines: np.ndarray, peaks: ObservedPeaks,
                       params: NtreorParams, data_start: float | None) -> tuple[dict[str, Any], np.ndarray | None]:
    """Extinction-group fields of a candidate, and the change of basis to the symbol's setting (or None)."""
    wavelength = float(peaks.wavelength)  # type: ignore[arg-type]
    q_obs = two_theta_to_q(lines, wavelength)
    # a fixed tolerance in 2theta is dQ = 2 sin(2theta) d(2theta) / lambda^2 in Q (d(2theta) in radians)
    tolerance = 2.0 * np.sin(np.radians(lines)) * np.radians(params.tolerance) / wavelength ** 2
    start = data_start if data_start is not None else float(lines[0]) - params.tolerance
    q_min = float(two_theta_to_q(np.array([max(start, 0.0)]), wavelength)[0])
    ranked = rank_extinction_groups(cell, lattice, q_obs, tolerance, q_min=q_min, prior=_prior(lattice))
    if not ranked:
        return {}, None
    top = ranked[0]
    fields: dict[str, Any] = {"crystal_system": top.crystal_system, "extinction_group": top.extinction_group,
                              "extinction_symbol": top.symbol,
                              "space_groups": tuple(top.space_groups),
                              "extinction_likelihood": float(top.probability)}
    setting = np.asarray(top.setting, dtype=float)
    if np.allclose(setting, np.eye(3)):
        return fields, None
    # the symbol's setting is that of its lowest-numbered space group; when it centres another face (an oC
    # lattice in the A-centred cell of Aba2) the cell stays in the lattice's conventional setting, as the contract
    # has it, and the symbol's cell is reported beside it
    centring = gemmi.find_spacegroup_by_number(top.space_groups[0]).centring_type()
    if centring != lattice_centring(lattice):
        fields["symbol_cell"] = tuple(float(x) for x in top.setting_cell)
        fields["symbol_centring"] = centring
        return fields, None
    fields["cell"] = tuple(float(x) for x in top.setting_cell)
    return fields, setting
