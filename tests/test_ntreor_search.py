"""The ntreor trial-and-error search: known cells index to themselves, sub-/super-cells, zero shift, bad input."""

from __future__ import annotations

import inspect
import math
import sys
import zlib
from pathlib import Path

import attrs
import gemmi
import numpy as np
import pytest

try:
    import xrdframe_ntreor  # noqa: F401
except ImportError:  # the editable install predates the plugin package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from xrdframe_ntreor.refine import halve_axes, q_gradient  # noqa: E402
from xrdframe_ntreor.search import SearchParams, SearchResult, Solution, niggli_cell, search  # noqa: E402
from xrdframe_ntreor.systems import SYSTEMS, MetricSystem  # noqa: E402

from xrdframe import read_structure, simulate_peaks  # noqa: E402
from xrdframe.lattice import q_coefficients, two_theta_to_q  # noqa: E402
from xrdframe.structure import Structure, expand_sites  # noqa: E402

CU = 1.5406


def _structure(cell: tuple[float, ...], number: int, sites: list[list[float]], elements: list[str]) -> Structure:
    sg = gemmi.find_spacegroup_by_number(number)
    fract, site = expand_sites(np.array(sites, dtype=float), sg, gemmi.UnitCell(*cell))
    return Structure(cell=cell, space_group=number, fract=fract, elements=[elements[i] for i in site],
                     occupancy=np.ones(len(site)), b_iso=np.full(len(site), 0.5))


NACL = _structure((5.6402, 5.6402, 5.6402, 90, 90, 90), 225, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Na", "Cl"])
SI = _structure((5.4309, 5.4309, 5.4309, 90, 90, 90), 227, [[0, 0, 0]], ["Si"])
CORUNDUM = _structure((4.7589, 4.7589, 12.991, 90, 90, 120), 167, [[0, 0, 0.35216], [0.30624, 0, 0.25]],
                      ["Al", "O"])


def _peaks(structure: Structure, noise: float = 0.0, seed: int = 0, n_lines: int = 30,
           impurities: int = 0) -> np.ndarray:
    """First ``n_lines`` lines of intensity >= 1 (strongest 100), lines within 0.02 deg merged, seeded noise, then
    ``impurities`` lines at uniform random positions between the first and the last line (the same draws as
    benchmarks/bench_ntreor.py)."""
    peaks = simulate_peaks(structure, CU, (0, 120))
    keep = peaks.intensity >= 1.0
    tt, weight = peaks.two_theta[keep], peaks.intensity[keep]
    group = np.concatenate([[0], np.cumsum(np.diff(tt) >= 0.02)])
    tt = np.bincount(group, tt * weight) / np.bincount(group, weight)
    tt = tt[:n_lines]
    rng = np.random.default_rng(seed)
    tt = tt + rng.normal(0.0, noise, tt.size)
    if impurities:
        tt = np.concatenate([tt, rng.uniform(tt.min(), tt.max(), impurities)])
    return np.sort(tt)


def _same_lattice(cell: tuple[float, ...], centring: str, expected: tuple[float, ...], expected_centring: str) -> bool:
    got, ref = niggli_cell(cell, centring), niggli_cell(expected, expected_centring)
    return bool(np.allclose(got[:3], ref[:3], rtol=5e-3) and np.allclose(got[3:], ref[3:], atol=0.5))


@pytest.mark.parametrize(("structure", "system", "centring"), [
    (NACL, "cubic", "F"), (SI, "cubic", "F"), (CORUNDUM, "trigonal", "R")], ids=["NaCl", "Si", "corundum"])
def test_known_cells_index_to_themselves(structure: Structure, system: str, centring: str) -> None:
    result = search(_peaks(structure, noise=0.01, seed=1), CU)
    assert result.reason is None, result.reason
    best = result.solutions[0]
    assert (best.crystal_system, best.centring) == (system, centring)
    assert np.allclose(best.cell, structure.cell, rtol=5e-4, atol=0.02)
    assert best.lines_indexed == best.lines_total
    assert best.m20 > 20 and best.f_n > 20 and best.n_lines == min(20, best.lines_total)
    assert best.hkl.shape == (best.lines_total, 3) and np.all(np.any(best.hkl != 0, axis=1))
    assert abs(best.zero_shift) < 0.01


def test_exact_nacl_lines_give_exact_cell_and_hkl() -> None:
    result = search(_peaks(NACL), CU)
    best = result.solutions[0]
    assert best.cell[0] == pytest.approx(5.6402, abs=1e-4)
    assert best.volume == pytest.approx(5.6402**3, rel=1e-4)
    assert [tuple(sorted(np.abs(h))) for h in best.hkl[:3]] == [(1, 1, 1), (0, 0, 2), (0, 2, 2)]
    assert isinstance(result, SearchResult) and result.seconds >= 0


@pytest.mark.parametrize(("name", "system"), [("monoclinic__POSCAR-003.cif", "monoclinic"),
                                              ("triclinic__POSCAR-002.cif", "triclinic")])
def test_shared_structures_index_to_themselves(shared_data: Path, name: str, system: str) -> None:
    path = shared_data / "structures" / "spglib" / name
    if not path.is_file():
        pytest.skip(f"{path} absent")
    structure = read_structure(path)
    result = search(_peaks(structure, noise=0.01, seed=2), CU,
                    params=SearchParams(systems=(system,), time_budget=40.0))
    assert result.solutions, result.reason
    best = result.solutions[0]
    assert best.crystal_system == system
    assert _same_lattice(best.cell, best.centring, structure.cell, structure.gemmi_space_group.centring_type())


def test_a_c_centred_monoclinic_cell_without_low_axial_lines_is_found(shared_data: Path) -> None:
    """Shared structure monoclinic 015-3 (C2/c, 9.413 x 11.522 x 5.050 A, beta 91.05 deg): its first lines are
    020, 200, -111 and 111, but no 00l line comes before the eleventh, so the axial basis schemes miss the cell
    (searched alone they ended on a false monoclinic P cell, the whole descent on a false triclinic one); the
    'treor' scheme (any four of the first six lines with low hkl) finds it."""
    structure = read_structure(shared_data / "structures" / "spglib" / "monoclinic__POSCAR-015-3.cif")
    result = search(_peaks(structure, noise=0.01, seed=2), CU,
                    params=SearchParams(systems=("monoclinic",), time_budget=40.0))
    best = result.solutions[0]
    assert best.crystal_system == "monoclinic" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "C")


def test_a_marginal_orthorhombic_cell_yields_to_a_monoclinic_one_of_twice_its_m20(shared_data: Path) -> None:
    """Shared structure monoclinic 011-2 (P2_1/m, 4.880 x 9.539 x 7.013 A, beta 92.65 deg): a false orthorhombic
    9.54 x 11.75 x 8.73 A cell indexes all 25 lines at M20 39.8, under twice the threshold; such a marginal
    solution does not end the descent alone, and the monoclinic cell (M20 81) comes first."""
    structure = read_structure(shared_data / "structures" / "spglib" / "monoclinic__POSCAR-011-2.cif")
    lines = _peaks(structure, noise=0.01, seed=2)
    best = search(lines, CU, params=SearchParams(time_budget=40.0)).solutions[0]
    assert best.crystal_system == "monoclinic" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")
    orthorhombic = search(lines, CU, params=SearchParams(systems=SYSTEMS[:4])).solutions[0]
    assert orthorhombic.crystal_system == "orthorhombic" and orthorhombic.m20 < 2 * SearchParams().m20_threshold
    assert best.m20 > 2 * orthorhombic.m20


def _benchmark_search(shared_data: Path, name: str, noisy: bool = False,
                      params: SearchParams | None = None) -> tuple[Structure, np.ndarray, Solution]:
    """A shared structure, the lines benchmarks/bench_ntreor.py gives it (the same draws; the benchmark also rounds
    them to 1e-5 deg): ideal (0.01 deg of noise) or ``noisy`` (0.03 deg and two impurity lines), and the best
    solution of the search with ``params``."""
    structure = read_structure(shared_data / "structures" / "spglib" / name)
    noise, impurities = (0.03, 2) if noisy else (0.01, 0)
    lines = _peaks(structure, noise=noise, seed=zlib.crc32(name.encode()), impurities=impurities)
    return structure, lines, search(lines, CU, params=params).solutions[0]


def test_a_much_smaller_orthorhombic_cell_beats_marginal_tetragonal_and_hexagonal_ones(shared_data: Path) -> None:
    """Shared structure orthorhombic 033-2 (P, 5.456 x 4.814 x 11.787 A): false tetragonal and hexagonal cells
    of 4.7 to 14 times its volume index the 25 lines at M20 under twice the threshold. The orthorhombic cell has
    a higher M20, but not twice theirs; being a quarter of their volume or less and indexing as many lines, it
    ranks first."""
    structure, lines, best = _benchmark_search(shared_data, "orthorhombic__POSCAR-033-2.cif")
    assert best.crystal_system == "orthorhombic" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")
    from xrdframe_ntreor.search import _acceptable, _primitive_volume

    params = SearchParams()
    higher = [s for s in search(lines, CU, params=SearchParams(systems=SYSTEMS[:3])).solutions
              if _acceptable(s, params)]
    assert {s.crystal_system for s in higher} >= {"tetragonal", "hexagonal"}
    top_m20 = max(s.m20 for s in higher)
    assert top_m20 < 2 * params.m20_threshold and top_m20 < best.m20 < 2 * top_m20
    assert all(_primitive_volume(best) <= params.max_smaller_volume * _primitive_volume(s) for s in higher)


def test_a_marginal_cubic_cell_is_checked_by_the_orthorhombic_search(shared_data: Path) -> None:
    """Shared structure orthorhombic 055-2 (P, 7.915 x 11.22 x 3.96 A): a false cubic P 11.21 A cell indexes its
    25 lines at a widened tolerance with M20 27.4, and a false tetragonal cell of half that volume does not
    reach twice its M20. The orthorhombic search, which used to follow only an accepted tetragonal or hexagonal
    cell, now also checks a marginal cubic one, and the right cell (a quarter of the cubic volume) comes first."""
    structure, lines, best = _benchmark_search(shared_data, "orthorhombic__POSCAR-055-2.cif")
    assert best.crystal_system == "orthorhombic" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")
    cubic = search(lines, CU, params=SearchParams(systems=SYSTEMS[:3])).solutions[0]
    assert cubic.crystal_system in ("cubic", "tetragonal") and cubic.m20 < 2 * SearchParams().m20_threshold


def test_a_halved_cubic_cell_does_not_spare_the_tetragonal_search(shared_data: Path) -> None:
    """Shared structure tetragonal 087-2 (I 9.885 x 3.127 A): a cubic 13.98 A cell with its c halved, a
    tetragonal 13.98 x 6.99 A cell, indexes the 25 lines at M20 67.5 and used to end the descent after the cubic
    group, so that the tetragonal search never ran. It runs now, and finds the right cell (M20 125)."""
    structure, lines, best = _benchmark_search(shared_data, "tetragonal__POSCAR-087-2.cif")
    assert best.crystal_system == "tetragonal" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "I")
    halved = search(lines, CU, params=SearchParams(systems=("cubic",))).solutions[0]  # the cubic group alone
    assert halved.crystal_system == "tetragonal" and halved.lines_indexed == halved.lines_total
    assert not _same_lattice(halved.cell, halved.centring, structure.cell, "I") and best.m20 > 1.5 * halved.m20


def test_noisy_monoclinic_lines_with_impurities_refine_the_right_trial_cell(shared_data: Path) -> None:
    """Shared structure monoclinic 006 (P 6.971 x 9.670 x 10.943 A, beta 91.82 deg) with the noisy benchmark's
    lines (0.03 deg of noise, two impurity lines). The right trial cell indexes 23 of the 25 lines at the
    screening tolerance with 34 calculated lines; false cells index all 25 with 64 and more. Ordered by
    calculated lines times 3 per unindexed line, the right one came about 1,800th and was never refined; by the
    likelihood of indexing that many lines by chance it comes among the first."""
    structure, _, best = _benchmark_search(shared_data, "monoclinic__POSCAR-006.cif", noisy=True,
                                           params=SearchParams(systems=("monoclinic",)))
    assert best.crystal_system == "monoclinic" and best.lines_indexed >= best.lines_total - 2
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_noisy_c_centred_monoclinic_lines_with_impurities_give_the_right_lattice(shared_data: Path) -> None:
    """Shared structure monoclinic 009 (C 16.278 x 5.632 x 11.662 A, beta 126.49 deg) with the noisy benchmark's
    lines. Screened as a primitive cell, the right trial cell has 76 calculated lines against 70 for a false cell
    that indexes every line at the wide screening tolerance, and came after 45 others (160 in the first scheme);
    screened as the C lattice it is (38 calculated lines), it comes second."""
    structure, _, best = _benchmark_search(shared_data, "monoclinic__POSCAR-009.cif", noisy=True,
                                           params=SearchParams(systems=("monoclinic",)))
    assert best.crystal_system == "monoclinic" and best.lines_indexed >= best.lines_total - 2
    assert _same_lattice(best.cell, best.centring, structure.cell, "C")


def test_equal_screening_keys_put_the_primitive_trial_cell_first(shared_data: Path) -> None:
    """Shared structure tetragonal 127 (P 5.894 x 8.348 A, pseudo-cubic) with the ideal benchmark's lines, which
    index only at 0.09 deg: dozens of tetragonal I 8.34 x 9.62 A trial cells screen with as few calculated lines
    (83) as the right cell; taken first, they pushed it beyond the trial cells refined, and an orthorhombic cell
    with a halved axis won."""
    structure, _, best = _benchmark_search(shared_data, "tetragonal__POSCAR-127.cif")
    assert best.crystal_system == "tetragonal"
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_a_monoclinic_cell_passing_widened_yields_to_the_orthorhombic_search_there(shared_data: Path) -> None:
    """Shared structure orthorhombic 035 (C 3.62 x 19.40 x 4.13 A) with the noisy benchmark's lines. Nothing passes
    at the nominal tolerance; a monoclinic partial cell (17 lines at M20 81) passes widened to 0.09 deg with 23
    lines at M20 26. The orthorhombic group is searched at that widening too, as the classical descent would,
    and its right cell indexes 23 lines there at M20 47.5."""
    structure, _, best = _benchmark_search(shared_data, "orthorhombic__POSCAR-035.cif", noisy=True,
                                           params=SearchParams(time_budget=10.0))
    assert best.crystal_system == "orthorhombic"
    assert _same_lattice(best.cell, best.centring, structure.cell, "C")


def test_a_monoclinic_group_passing_widened_does_not_spare_the_triclinic_search(shared_data: Path) -> None:
    """Shared structure monoclinic 007 (P 6.796 x 22.55 x 6.809 A, beta 119.3 deg) with the ideal benchmark's
    lines. The monoclinic search at 0.03 deg finds no acceptable cell, only a partial A-centred cell of half the
    volume, which passes widened to 0.06 deg with 24 of 25 lines at M20 26.8. The triclinic search at 0.03 deg,
    which that used to spare, gives the right cell (promoted to monoclinic): 25 lines, M20 39.3."""
    structure, _, best = _benchmark_search(shared_data, "monoclinic__POSCAR-007.cif")
    assert best.crystal_system == "monoclinic" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_a_distortion_that_absorbs_noise_yields_to_the_cubic_cell(shared_data: Path) -> None:
    """Shared structure cubic 205 (P 5.624 A) with the noisy benchmark's lines (0.03 deg of noise, two impurity
    lines). Orthorhombic C 7.947 x 7.963 x 5.621 A cells (beyond max_obliquity from the tetragonal and cubic
    metrics) index 19 of the 21 lines at the nominal 0.03 deg with M20 42. The search refines the higher symmetry
    at the widened tolerances in their place (a tetragonal 5.624 x 5.629 A cell: the same lines at 0.09 deg, M20
    29) and ends on a near-cubic tetragonal cell, which the indexer reports as the cubic cell within its lattice
    tolerance (as the benchmark counts it)."""
    from xrdframe_ntreor.indexer import Ntreor, NtreorParams

    from xrdframe.pattern import ObservedPeaks

    name = "cubic__POSCAR-205.cif"
    structure = read_structure(shared_data / "structures" / "spglib" / name)
    lines = _peaks(structure, noise=0.03, seed=zlib.crc32(name.encode()), impurities=2)
    prediction = Ntreor(NtreorParams()).predict(ObservedPeaks(lines, None, CU))
    assert prediction.crystal_system == "cubic"
    assert _same_lattice(prediction.candidates[0].cell, "P", structure.cell, "P")


def test_the_screening_score_is_the_log_likelihood_ratio_against_chance() -> None:
    """Two trial cells on 25 lines with a constant Q window: 23 indexed with 34 calculated lines against 25 with
    64 (which cover 89 % of the range, so that each indexed line gains almost nothing)."""
    from xrdframe_ntreor.search import _screen_score

    q_obs = np.linspace(0.004, 0.1, 25)
    tol = np.full(25, 0.0007)
    score = _screen_score(np.array([23, 25]), np.array([34, 64]), q_obs, tol, impurity_rate=0.1)
    cover = np.array([34, 64]) * 2 * 0.0007 / 0.1007
    expected = np.array([23 * np.log(0.9 / cover[0]) + 2 * np.log(0.1), 25 * np.log(0.9 / cover[1])])
    np.testing.assert_allclose(score, expected)
    assert score[0] > score[1]
    # with no impurities assumed possible, leaving lines unindexed is ruled out
    assert np.all(np.diff(_screen_score(np.array([23, 24, 25]), np.array([10, 10, 10]), q_obs, tol, 1e-12)) > 20)


def test_screening_counts_the_calculated_lines_of_the_lattice_not_of_the_cell_as_found() -> None:
    """Exact lines of a C-centred monoclinic lattice (9.0 x 6.0 x 7.5 A, beta 105 deg): the trial cell equal to
    the conventional cell is screened with the lines a C lattice has (h + k even), half of those a primitive cell
    of that size would have, and no monoclinic trial cell screens better."""
    import math

    from xrdframe_ntreor.refine import reflections
    from xrdframe_ntreor.search import _schemes, _screen

    cell = (9.0, 6.0, 7.5, 90.0, 105.0, 90.0)
    coeffs = q_coefficients(cell)
    _, q_all = reflections(coeffs, 0.2, "C")
    q_obs = np.unique(np.round(q_all, 10))[:25]
    two_theta = 2.0 * np.degrees(np.arcsin(CU * np.sqrt(q_obs) / 2.0))
    params = SearchParams()
    mono = MetricSystem.get("monoclinic")
    tol = q_gradient(two_theta, CU) * params.screen_tolerance
    scheme = [s for s in _schemes(mono, params, 25) if s.name == "treor"][0]
    trials, keys = _screen(mono, scheme, q_obs, tol, params, math.inf)
    x_true = mono.parameters(coeffs)[0]
    right = np.flatnonzero(np.all(np.abs(trials - x_true) <= 1e-4 * np.abs(x_true).max(), axis=1))
    assert right.size, "the right trial cell is screened"
    table = mono.index_table(params.screen_index_limit["monoclinic"] + 2)
    q_table = table[1] @ x_true
    q_top = q_obs[-1] + tol[-1]
    centred = (table[0][:, 0] + table[0][:, 1]) % 2 == 0
    n_c, n_p = np.count_nonzero(centred & (q_table <= q_top)), np.count_nonzero(q_table <= q_top)
    assert keys[right[0]] == n_c < 0.6 * n_p  # every line indexed: the key is the calculated-line count
    assert keys.min() == keys[right[0]]


def test_doubled_cubic_cell_is_halved() -> None:
    tt = _peaks(NACL)
    q = two_theta_to_q(tt, CU)
    cubic = MetricSystem.get("cubic")
    doubled = q_coefficients((2 * 5.6402,) * 3 + (90, 90, 90))  # a supercell that also indexes every line
    halved = halve_axes(cubic, q, doubled, q_gradient(tt, CU) * 0.01)
    assert np.allclose(halved, q_coefficients((5.6402,) * 3 + (90, 90, 90)), rtol=1e-9)
    quadrupled = q_coefficients((4 * 5.6402,) * 3 + (90, 90, 90))
    assert np.allclose(halve_axes(cubic, q, quadrupled, q_gradient(tt, CU) * 0.01), halved, rtol=1e-9)


def test_zero_shift_is_recovered() -> None:
    tt = _peaks(CORUNDUM, noise=0.005, seed=3) + 0.05
    best = search(tt, CU).solutions[0]
    assert best.zero_shift == pytest.approx(0.05, abs=0.01)
    assert np.allclose(best.cell, CORUNDUM.cell, rtol=5e-4)


@pytest.mark.parametrize(("two_theta", "wavelength", "expected"), [
    ([20.0, 30.0, 40.0], CU, "only 3 lines"),
    ([20.0, 25.0, np.nan, 35.0, 40.0, 45.0, 50.0], CU, "NaN"),
    ([-20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0], CU, "between 0 and 180"),
    ([20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 190.0], CU, "between 0 and 180"),
    ([25.0, 20.0, 30.0, 35.0, 40.0, 45.0, 50.0], CU, "increasing"),
    ([20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0], -1.0, "wavelength"),
    ("garbage", CU, "numbers"),
])
def test_garbage_gives_empty_result_with_reason(two_theta: object, wavelength: float, expected: str) -> None:
    result = search(two_theta, wavelength)  # type: ignore[arg-type]
    assert result.solutions == ()
    assert result.reason is not None and expected in result.reason


def test_random_lines_index_nothing_convincing() -> None:
    tt = np.sort(np.random.default_rng(4).uniform(10, 60, 25))
    result = search(tt, CU, params=SearchParams(systems=("cubic", "tetragonal"), widen=(1.0,)))
    assert not result.solutions or result.reason is not None


def test_nearest_matches_brute_force() -> None:
    from xrdframe_ntreor.search import _nearest

    ortho = MetricSystem.get("orthorhombic")
    table = ortho.index_table(4)[1]
    rng = np.random.default_rng(5)
    x = rng.uniform(0.01, 0.05, (7, 3))
    q_obs = np.sort(rng.uniform(0.01, 0.4, 15))
    idx, dist = _nearest(x, table, q_obs)
    brute = np.abs((x @ table.T)[:, None, :] - q_obs[None, :, None])  # (n, lines, m)
    assert np.allclose(dist, brute.min(axis=2))
    assert np.allclose(np.take_along_axis(brute, idx[..., None], axis=2)[..., 0], dist)


def test_trial_cells_are_refined_on_the_lines_they_index() -> None:
    """A trial cell off by an error growing with Q (as from noisy low-angle basis lines) is refitted to the
    lines it indexes; a trial that indexes too few lines stays as it was."""
    from xrdframe_ntreor.search import _refine_trials

    ortho = MetricSystem.get("orthorhombic")
    cell = (5.1, 6.3, 7.7, 90.0, 90.0, 90.0)
    x_true = ortho.parameters(q_coefficients(cell))[0]
    hkl, terms = ortho.index_table(3)
    q_all = np.unique(terms @ x_true)
    tt = np.sort(np.degrees(2 * np.arcsin(CU * np.sqrt(q_all) / 2)))[:25]
    q_obs = two_theta_to_q(tt, CU)
    tol = q_gradient(tt, CU) * 0.06
    off = x_true * np.array([1.002, 0.998, 1.0015])  # about 0.1 deg off at the last lines
    far = x_true * 1.3  # indexes almost nothing
    refined = _refine_trials(np.stack([off, far]), ortho.index_table(5)[1], q_obs, tol, 12)
    assert np.allclose(refined[0], x_true, rtol=1e-6)
    assert np.all(np.abs(refined[1] / x_true - 1) > 0.1)


# Noisy lines (0.03 deg Gaussian noise on the first lines, two spurious lines) made by the recipe of
# benchmarks/bench_ntreor.py (--noise 0.03 --impurities 2) from two of the shared real structures, written out
# so that the test needs no shared data. The cells are those of the structure files.
NOISY_CUBIC_198 = (  # P2_13, a = 7.840 A; 40.175 and 71.376 are the spurious lines
    15.971, 19.555, 22.668, 25.423, 27.844, 32.225, 36.189, 38.026, 39.795, 40.175, 41.559, 43.101, 46.256,
    49.281, 50.673, 52.141, 53.517, 54.887, 57.598, 60.106, 61.377, 63.850, 67.560, 71.085, 71.376)
NOISY_TETRAGONAL_081 = (  # P-4, a = 10.1815, c = 5.2950 A
    18.866, 20.836, 27.679, 29.955, 32.516, 33.882, 36.164, 36.381, 36.703, 37.474, 38.296, 39.357, 40.305,
    41.281, 42.305, 44.253, 47.013, 47.797, 48.686, 54.787, 56.979, 57.783, 60.069, 63.785, 64.710)


@pytest.mark.parametrize("lines, system, cell", [
    (NOISY_CUBIC_198, "cubic", (7.840, 7.840, 7.840)),
    (NOISY_TETRAGONAL_081, "tetragonal", (10.1815, 10.1815, 5.2950)),
])
def test_noisy_lines_with_impurities_give_the_right_cell(lines: tuple[float, ...], system: str,
                                                         cell: tuple[float, ...]) -> None:
    """The right cell leaves a third of the lines outside the nominal 0.03 deg (cubic: 12 of 25 indexed, M20
    130) and the two spurious lines unindexed at wider tolerances; it is found by widening it as a partial
    solution, and ranks above the doubled cells that index the spurious lines too at half its M20."""
    result = search(np.array(lines), 1.5406, params=SearchParams(systems=(system,)))
    best = result.solutions[0]
    assert result.reason is None
    assert best.crystal_system == system
    np.testing.assert_allclose(best.cell[:3], cell, rtol=2e-3)
    assert best.lines_indexed >= 23 and best.m20 >= 14


def _first_lines(cell: tuple[float, ...], centring: str, n: int = 25, q_max: float = 0.35) -> np.ndarray:
    """2theta (Cu K-alpha1) of the first ``n`` distinct lines (Q <= ``q_max``) of every reflection the centring
    allows."""
    from xrdframe_ntreor.refine import reflections

    from xrdframe.lattice import q_to_two_theta

    _, q = reflections(np.array(q_coefficients(cell)), q_max, centring)
    two_theta = np.unique(np.round(q_to_two_theta(q, CU), 4))
    keep = np.concatenate([[True], np.diff(two_theta) > 0.02])  # lines closer than 0.02 deg are one
    return two_theta[keep][:n]


#: Reflection conditions of the lattice centrings, written out (International Tables A, table 2.2.13.1).
_CONDITIONS = {"P": lambda h, k, l: np.ones_like(h, dtype=bool), "C": lambda h, k, l: (h + k) % 2 == 0,  # noqa: E741
               "A": lambda h, k, l: (k + l) % 2 == 0, "I": lambda h, k, l: (h + k + l) % 2 == 0,  # noqa: E741
               "F": lambda h, k, l: ((h + k) % 2 == 0) & ((h + l) % 2 == 0)}  # noqa: E741


@pytest.mark.parametrize(("system", "cell", "centring"), [
    ("cubic", (5.4309, 5.4309, 5.4309, 90, 90, 90), "F"), ("cubic", (8.0, 8.0, 8.0, 90, 90, 90), "I"),
    ("cubic", (4.1569, 4.1569, 4.1569, 90, 90, 90), "P"), ("tetragonal", (5.1, 5.1, 9.3, 90, 90, 90), "I"),
    ("orthorhombic", (5.2, 7.9, 11.3, 90, 90, 90), "C"), ("orthorhombic", (5.2, 7.9, 11.3, 90, 90, 90), "I"),
    ("orthorhombic", (5.2, 7.9, 11.3, 90, 90, 90), "F"), ("orthorhombic", (5.2, 7.9, 11.3, 90, 90, 90), "P"),
    ("monoclinic", (9.41, 11.52, 5.05, 90, 117.3, 90), "C"), ("monoclinic", (9.41, 11.52, 5.05, 90, 117.3, 90), "P")])
def test_the_centring_of_the_lines_is_detected(system: str, cell: tuple[float, ...], centring: str) -> None:
    """Lines of every reflection a centring allows (the conditions written out above, hkl enumerated here), 0.01
    deg of noise and a 0.02 deg zero error: detect_centring started from the conventional cell finds that
    centring, and the primitive lattice's when there is none, with every line indexed."""
    from xrdframe_ntreor.refine import detect_centring

    from xrdframe.lattice import q_to_two_theta

    a, b, c = cell[:3]
    cos = np.cos(np.radians(cell[3:]))
    metric = np.array([[a * a, a * b * cos[2], a * c * cos[1]], [a * b * cos[2], b * b, b * c * cos[0]],
                       [a * c * cos[1], b * c * cos[0], c * c]])
    reciprocal = np.linalg.inv(metric)  # Q(hkl) = h G* h^T = 1/d^2
    expected = np.array([reciprocal[0, 0], reciprocal[1, 1], reciprocal[2, 2], 2 * reciprocal[0, 1],
                         2 * reciprocal[0, 2], 2 * reciprocal[1, 2]])
    r = np.arange(-12, 13)  # |h| <= a / d_min = 11.3 A x 1 A^-1
    h, k, l = (a.ravel() for a in np.meshgrid(r, r, r, indexing="ij"))  # noqa: E741
    keep = (np.abs(h) + np.abs(k) + np.abs(l) > 0) & _CONDITIONS[centring](h, k, l)
    hkl = np.stack([h[keep], k[keep], l[keep]], axis=1)
    q = np.unique(np.round(np.einsum("ni,ij,nj->n", hkl, reciprocal, hkl), 10))
    two_theta = q_to_two_theta(q[q <= 1.0], CU)
    two_theta = two_theta[np.concatenate([[True], np.diff(two_theta) > 0.05])][:20]  # resolved lines
    two_theta = two_theta + np.random.default_rng(1).normal(0.0, 0.01, two_theta.size) + 0.02
    found = detect_centring(MetricSystem.get(system), two_theta, CU, expected, 0.03)
    assert found is not None
    letter, coeffs, zero, indexing = found
    assert letter == centring and indexing.count == two_theta.size
    assert abs(zero - 0.02) < 0.01
    np.testing.assert_allclose(coeffs, expected, rtol=2e-3, atol=1e-6)


def test_a_tetragonal_cell_with_one_axis_halved_is_the_orthorhombic_cell() -> None:
    """An orthorhombic P cell with b = 2a is indexed by the tetragonal cell a' = b (all lines have h even),
    which predicts reflections the smaller cell cannot have: the orthorhombic cell is reported."""
    lines = _first_lines((5.884, 11.768, 8.220, 90, 90, 90), "P")
    result = search(lines, CU, params=SearchParams(systems=("tetragonal", "orthorhombic")))
    best = result.solutions[0]
    assert best.crystal_system == "orthorhombic"
    np.testing.assert_allclose(sorted(best.cell[:3]), [5.884, 8.220, 11.768], rtol=2e-3)


def test_a_cubic_i_cell_is_not_halved_into_a_tetragonal_one() -> None:
    """The c-halved tetragonal cell (a / sqrt 2, a / 2) of a cubic I cell indexes the same lines with as many
    calculated ones: the cubic cell, with one parameter, stands."""
    lines = _first_lines((11.03, 11.03, 11.03, 90, 90, 90), "I")
    best = search(lines, CU, params=SearchParams(systems=("cubic", "tetragonal"))).solutions[0]
    assert best.crystal_system == "cubic" and best.centring == "I"
    assert best.cell[0] == pytest.approx(11.03, rel=1e-3)


# More noisy lines by the same recipe (spurious lines named), each a failure of an earlier search.
NOISY_HEXAGONAL_190 = (  # P-62c, a = 4.5961, c = 8.930 A; 53.289 and 86.254 are spurious
    19.865, 22.259, 24.439, 30.051, 37.691, 39.200, 40.334, 44.264, 46.704, 50.137, 53.289, 56.471, 57.519,
    62.572, 65.443, 67.131, 70.866, 70.986, 74.606, 76.164, 80.509, 84.059, 84.204, 84.987, 86.254)
NOISY_HEXAGONAL_173 = (  # P6_3, a = 9.225, c = 5.224 A; 15.679 and 22.598 are spurious
    11.083, 15.679, 20.321, 22.237, 22.598, 25.712, 29.616, 33.609, 34.323, 34.336, 36.162, 37.863, 39.025,
    39.588, 40.654, 41.289, 42.830, 44.371, 45.355, 45.882, 48.734, 48.744, 49.706, 52.440, 52.854)
NOISY_ORTHORHOMBIC_058 = (  # Pnnm, a = 3.8913, b = 4.0215, c = 2.5725 A; 40.729 and 71.787 are spurious
    32.011, 40.729, 41.689, 45.046, 46.667, 48.055, 51.094, 52.207, 63.284, 64.232, 66.874, 71.787, 73.596,
    77.641, 80.753, 83.319, 87.631, 89.929, 90.606, 91.727, 95.106, 95.891, 98.780, 104.571, 108.894)


@pytest.mark.parametrize("lines, system, cell", [
    # the right cell (15 of 25 lines at 0.03 deg, M20 70) was replaced by its doubled cell; it now stays a partial
    # solution beside it, and widened it beats the sqrt3 supercell (7.96 A, M20 18)
    (NOISY_HEXAGONAL_190, "hexagonal", (4.5961, 4.5961, 8.930)),
    # a false 15.98 x 7.97 A cell passes at M20 22 while the right one indexes 18 of 25 at M20 62: partial cells
    # of higher M20 than every acceptable one are widened too
    (NOISY_HEXAGONAL_173, "hexagonal", (9.225, 9.225, 5.224)),
    # at widened tolerances the (2a, 2c) cell indexed one spurious line among its dense reflections: halving may
    # lose a line whose indexing is plausibly chance
    (NOISY_ORTHORHOMBIC_058, "orthorhombic", (3.8913, 4.0215, 2.5725)),
])
def test_noisy_lines_do_not_give_super_cells(lines: tuple[float, ...], system: str, cell: tuple[float, ...]) -> None:
    best = search(np.array(lines), 1.5406, params=SearchParams(systems=(system,))).solutions[0]
    assert best.crystal_system == system
    np.testing.assert_allclose(sorted(best.cell[:3]), sorted(cell), rtol=3e-3)


def test_a_pseudo_tetragonal_orthorhombic_cell_is_orthorhombic() -> None:
    """a = 4.50, b = 4.52 A (0.4 %): the tetragonal cell leaves a split line unindexed and ranks below a false
    sqrt2 cell at a wide tolerance; refined from slightly distorted starts in the orthorhombic system it indexes
    every line with M20 114 against 42, and is reported."""
    lines = _first_lines((4.50, 4.52, 11.0, 90, 90, 90), "P")
    lines = lines + np.random.default_rng(0).normal(0.0, 0.01, lines.size)
    best = search(lines, CU, params=SearchParams(systems=("tetragonal", "orthorhombic"))).solutions[0]
    assert best.crystal_system == "orthorhombic" and best.lines_indexed == best.lines_total
    np.testing.assert_allclose(sorted(best.cell[:3]), [4.50, 4.52, 11.0], rtol=1e-3)


@pytest.mark.parametrize(("lines_total", "unindexed", "acceptable"), [(25, 2, True), (25, 3, False), (24, 2, True),
                                                                      (12, 1, True), (12, 2, False), (6, 1, False)])
def test_unindexed_lines_allowed_scale_with_the_lines_searched(lines_total: int, unindexed: int,
                                                               acceptable: bool) -> None:
    """max_unindexed (2) is for max_lines (25) lines, proportionally fewer for fewer lines, rounded: 24 lines
    still allow 2 (two impurity lines among 24 are as likely as among 25), 12 allow 1, 6 none."""
    from xrdframe_ntreor.search import Solution, _acceptable

    s = Solution(crystal_system="tetragonal", centring="P", q_coefficients=(0.1, 0.1, 0.05, 0, 0, 0),
                 cell=(3.16, 3.16, 4.47, 90.0, 90.0, 90.0), volume=44.7, zero_shift=0.0,
                 hkl=np.zeros((lines_total, 3), dtype=np.int64), lines_indexed=lines_total - unindexed,
                 lines_total=lines_total, m20=50.0, f_n=50.0, n_lines=min(20, lines_total), zone=False,
                 rank_score=50.0 / (1 + unindexed), tolerance=0.03)
    assert _acceptable(s, SearchParams()) is acceptable


@pytest.mark.parametrize(("system", "m20", "unindexed", "tolerance", "acceptable"), [
    ("tetragonal", 100.0, 5, 0.03, True), ("cubic", 300.0, 4, 0.03, True), ("tetragonal", 99.0, 3, 0.03, False),
    ("tetragonal", 150.0, 6, 0.03, False), ("tetragonal", 150.0, 4, 0.06, False),
    ("orthorhombic", 150.0, 4, 0.03, False)])
def test_a_cell_of_very_high_m20_may_leave_impurity_lines_unindexed(system: str, m20: float, unindexed: int,
                                                                   tolerance: float, acceptable: bool) -> None:
    """For a cubic, tetragonal or hexagonal cell at the nominal tolerance M20 >= impurity_m20 (100) allows up to
    max_impurity_share (20 %) of the lines unindexed: 5 of 25, not 6; never at a widened tolerance, where the
    ordinary two apply, nor for a lower system, whose extra parameters absorb noise."""
    from xrdframe_ntreor.search import Solution, _acceptable

    s = Solution(crystal_system=system, centring="P", q_coefficients=(0.1, 0.1, 0.05, 0, 0, 0),
                 cell=(3.16, 3.16, 4.47, 90.0, 90.0, 90.0), volume=44.7, zero_shift=0.0,
                 hkl=np.zeros((25, 3), dtype=np.int64), lines_indexed=25 - unindexed, lines_total=25, m20=m20,
                 f_n=m20, n_lines=20, zone=False, rank_score=m20 / (1 + unindexed), tolerance=tolerance)
    assert _acceptable(s, SearchParams()) is acceptable


@pytest.mark.parametrize(("cubic_m20", "cubic_indexed", "mono_m20", "mono_tolerance", "cubic_first"), [
    (13.1, 24, 12.1, 0.09, True), (12.0, 24, 12.1, 0.09, False), (13.1, 22, 12.1, 0.09, False),
    (12.5, 23, 12.1, 0.09, True), (16.0, 24, 15.0, 0.06, False)])
def test_a_cubic_cell_beating_an_accepted_lower_one_at_a_widened_tolerance_comes_first(
        cubic_m20: float, cubic_indexed: int, mono_m20: float, mono_tolerance: float, cubic_first: bool) -> None:
    """At a widened tolerance a cubic cell keeps the full M20 threshold (20), so noisy lines of cubic F 21.81 A
    (24 of 25 at 0.09 deg, M20 13.1) leave it below a monoclinic cell accepted at the widened threshold (20 /
    sqrt 3 = 11.5; 23 of 25, M20 12.1). A cubic cell over the widened threshold that indexes at least as many
    lines with a higher M20 at the accepted cell's tolerance (or a narrower one) comes first; one with a lower
    M20, fewer lines, or only at a wider tolerance than the accepted cell's does not."""
    from xrdframe_ntreor.search import _acceptable, _collapse

    params = SearchParams()

    def solution(system: str, cell: tuple[float, ...], m20: float, indexed: int, tolerance: float) -> Solution:
        return Solution(crystal_system=system, centring="F" if system == "cubic" else "P",
                        q_coefficients=tuple(q_coefficients(cell)), cell=cell, volume=100.0, zero_shift=0.0,
                        hkl=np.zeros((25, 3), dtype=np.int64), lines_indexed=indexed, lines_total=25, m20=m20,
                        f_n=m20, n_lines=20, zone=False, rank_score=m20 / (26 - indexed), tolerance=tolerance)

    cubic = solution("cubic", (21.79, 21.79, 21.79, 90.0, 90.0, 90.0), cubic_m20, cubic_indexed, 0.09)
    mono = solution("monoclinic", (7.805, 6.573, 12.76, 90.0, 135.66, 90.0), mono_m20, 23, mono_tolerance)
    assert not _acceptable(cubic, params) and _acceptable(mono, params)
    ordered = _collapse([mono, cubic], params)
    assert (ordered[0] is cubic) is cubic_first
    assert _collapse([cubic, mono], params)[0] is ordered[0]


def test_the_triclinic_search_keeps_a_share_of_the_budget_the_monoclinic_one_used_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A monoclinic group that works past the time budget (here a stand-in that counts refinements through it and
    finds nothing) still leaves the triclinic group TRICLINIC_SHARE of the budget from its own start at the
    widest tolerance, the last resort; at the narrower ones the triclinic search is skipped, as before (noisy
    triclinic 002 ended as a doubtful monoclinic cell although the triclinic search alone finds its cell in 5 s).
    The budget counts work, not wall time."""
    import xrdframe_ntreor.search as search_module

    budget = 0.2
    calls: list[tuple[str, float, float]] = []

    def stand_in(names: list[str], *args: object) -> list[Solution]:
        deadline = float(args[-1])  # type: ignore[arg-type]
        calls.append((names[0], deadline, search_module._work_done()))
        if names[0] == "monoclinic":
            search_module._count_work(refinements=math.ceil(1.2 * budget / search_module.SECONDS_PER_REFINEMENT))
        return []

    monkeypatch.setattr(search_module, "_search_group", stand_in)
    lines = _first_lines((5.0, 6.0, 7.0, 80.0, 85.0, 95.0), "P", n=20)
    result = search(lines, CU, params=SearchParams(time_budget=budget))
    triclinic = [(deadline, at) for name, deadline, at in calls if name == "triclinic"]
    assert sum(name == "monoclinic" for name, _, _ in calls) == len(SearchParams().widen)
    assert len(triclinic) == 1
    assert triclinic[0][0] - triclinic[0][1] == pytest.approx(search_module.TRICLINIC_SHARE * budget)
    assert result.work >= len(SearchParams().widen) * 1.2 * budget


def test_the_budget_counts_work_so_a_slower_machine_gives_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monoclinic search of a monoclinic cell's lines, with a budget of twice the work it needs: with every
    screening batch made 0.5 s slower (a loaded or slower machine) the search runs past the budget in wall time, and
    still does the same work and gives the same solutions (a wall-clock budget cut it short)."""
    import time

    import xrdframe_ntreor.search as search_module

    lines = _first_lines((5.0, 6.0, 7.0, 90.0, 100.0, 90.0), "P", n=20)
    needed = search(lines, CU, params=SearchParams(systems=("monoclinic",))).work
    params = SearchParams(systems=("monoclinic",), time_budget=2 * needed)
    fast = search(lines, CU, params=params)
    count_indexed = search_module._count_indexed

    def slow(*args: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        time.sleep(0.5)
        return count_indexed(*args)

    monkeypatch.setattr(search_module, "_count_indexed", slow)
    slowed = search(lines, CU, params=params)
    assert slowed.seconds > params.time_budget > fast.work
    assert fast.work == slowed.work == needed and fast.solutions[0].crystal_system == "monoclinic"
    assert [(s.crystal_system, s.cell, s.m20) for s in fast.solutions] == [
        (s.crystal_system, s.cell, s.m20) for s in slowed.solutions]


def test_impurity_lines_do_not_push_a_right_cell_below_a_false_one() -> None:
    """The first 22 lines of a tetragonal 3.846 x 5.308 A cell (measured LuOF's) with three lines of another
    phase among them, none in the first 12 screened: the tetragonal cell indexes 22 of 25 at an M20 in the
    thousands (exact lines) and is the answer. Without the impurity allowance it is not acceptable, and a
    supercell that indexes impurity lines too wins (an orthorhombic 5.44 x 10.88 x 10.62 A one)."""
    cell = (3.8461, 3.8461, 5.3079, 90, 90, 90)
    own = _first_lines(cell, "P", n=22, q_max=1.0)
    impurities = np.array([54.71, 60.93, 66.82])  # over 0.5 deg from every line of the cell
    assert own.size == 22 and np.min(np.abs(own[:, None] - impurities[None, :])) > 0.5
    lines = np.sort(np.concatenate([own, impurities]))
    assert np.all(np.isin(lines[:12], own))
    params = SearchParams(systems=("tetragonal",))
    result = search(lines, CU, params=params)
    best = result.solutions[0]
    assert result.reason is None and best.crystal_system == "tetragonal"
    np.testing.assert_allclose(best.cell[:3], cell[:3], rtol=1e-3)
    assert best.lines_indexed == 22 and best.m20 >= 100
    strict = search(lines, CU, params=attrs.evolve(params, impurity_m20=np.inf)).solutions[0]
    assert strict.lines_indexed > 22 and not np.allclose(sorted(strict.cell[:3]), sorted(cell[:3]), rtol=1e-3)


@pytest.mark.parametrize(("true_cell", "start", "expected"), [
    # a tetragonal cell found as orthorhombic (the halved cell of a sqrt2 supercell): 0.06 % apart, promoted
    ((5.415, 5.415, 10.197), (5.4178, 5.4147, 10.1985), "tetragonal"),
    # a real orthorhombic cell 0.11 % from tetragonal (obliquity 0.06 deg, within max_obliquity): its split
    # high-angle lines keep it orthorhombic
    ((5.400, 5.406, 10.197), (5.400, 5.406, 10.197), "orthorhombic"),
])
def test_an_orthorhombic_cell_is_promoted_only_when_the_lines_agree(true_cell: tuple[float, ...],
                                                                     start: tuple[float, ...],
                                                                     expected: str) -> None:
    from xrdframe_ntreor.search import MetricSystem, _evaluate, _promote

    lines = _first_lines(true_cell + (90, 90, 90), "P", n=25)
    params = SearchParams()
    ortho = MetricSystem.get("orthorhombic")
    found = _evaluate(ortho, ortho.parameters(q_coefficients(start + (90, 90, 90))), lines, CU, 0.03, 0.06, params,
                      0.0)
    assert found is not None and found.crystal_system == "orthorhombic"
    promoted = _promote(found, lines, CU, 0.03, 0.06, params)
    assert promoted.crystal_system == expected
    np.testing.assert_allclose(sorted(promoted.cell[:3]), sorted(true_cell), rtol=1e-3)


def test_six_lines_are_searched_in_every_system() -> None:
    """The fewest lines the search takes: every basis scheme draws its lines from those six (the orthorhombic
    axes scheme asks for seven when more are observed). Six lines of Rb2S phase II (Pnma, 8.167 x 5.101 x
    9.957 A; Cu K-alpha1) index in full, and the cell found gives back every line within the tolerance."""
    cell = (8.167, 5.101, 9.957, 90.0, 90.0, 90.0)
    two_theta = _first_lines(cell, "P", n=6)
    params = SearchParams(systems=("orthorhombic", "monoclinic", "triclinic"), time_budget=5.0)
    result = search(two_theta, CU, params=params)
    assert result.solutions, result.reason
    best = result.solutions[0]
    assert best.lines_indexed == best.lines_total == 6


def test_a_near_cubic_tetragonal_cell_is_not_replaced_by_a_widened_cubic_one() -> None:
    """a = 5.8151, c = 5.8014 A (0.24 %): the cubic cell leaves the split lines beyond 0.03 deg and passes only at
    a widened tolerance, where it would end the descent; the tetragonal cell indexes every line at the nominal
    tolerance with a higher M20 and is reported."""
    cell = (5.8151, 5.8151, 5.8014, 90.0, 90.0, 90.0)
    two_theta = _first_lines(cell, "P")
    two_theta = np.sort(two_theta + np.random.default_rng(5).normal(0.0, 0.01, two_theta.size))
    best = search(two_theta, CU).solutions[0]
    assert best.crystal_system == "tetragonal" and best.tolerance == pytest.approx(0.03)
    assert _same_lattice(best.cell, best.centring, cell, "P")


def test_a_cubic_cell_leaving_lines_unindexed_yields_to_a_complete_tetragonal_one(shared_data: Path) -> None:
    """Shared tetragonal structure 094-3 (P4_2 2_1 2, 7.345 x 10.400 A, c within 0.1 % of a sqrt2): the cubic
    10.39 A cell is acceptable but leaves a line unindexed; the tetragonal group, searched because of that,
    indexes every line with a higher M20, and its cell comes first."""
    path = shared_data / "structures" / "spglib" / "tetragonal__POSCAR-094-3.cif"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    structure = read_structure(path)
    best = search(_peaks(structure, noise=0.01, seed=2), CU).solutions[0]
    assert best.crystal_system == "tetragonal" and best.lines_indexed == best.lines_total
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_a_tripled_axis_is_divided_by_three() -> None:
    """Orthorhombic 3.563 x 11.51 x 4.369 A: a trial cell whose basis line was taken as 003 instead of 001 (c
    tripled) indexes every line; the axis test divides c by three back to the true cell."""
    cell = (3.563, 11.51, 4.369, 90.0, 90.0, 90.0)
    two_theta = _first_lines(cell, "P")
    q = two_theta_to_q(two_theta, CU)
    orthorhombic = MetricSystem.get("orthorhombic")
    tripled = np.array(q_coefficients((3.563, 11.51, 3 * 4.369, 90.0, 90.0, 90.0)))
    reduced = halve_axes(orthorhombic, q, tripled, q_gradient(two_theta, CU) * 0.01)
    np.testing.assert_allclose(reduced, q_coefficients(cell), rtol=1e-9)
    assert np.allclose(halve_axes(orthorhombic, q, tripled, q_gradient(two_theta, CU) * 0.01, divisors=(2,)),
                       tripled, rtol=1e-9)


RUTILE = _structure((4.5937, 4.5937, 2.9587, 90, 90, 90), 136, [[0, 0, 0], [0.3048, 0.3048, 0]], ["Ti", "O"])
ZINCITE = _structure((3.2496, 3.2496, 5.2065, 90, 90, 120), 186, [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.3819]],
                     ["Zn", "O"])


def _record_settled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Record (system, settled) for every ``_search_system`` call of the search, in order."""
    from xrdframe_ntreor import search as search_module

    order: list[tuple[str, bool]] = []
    original = search_module._search_system

    def recording(system: MetricSystem, *args: object, **kwargs: object) -> list[object]:
        bound = inspect.signature(original).bind(system, *args, **kwargs)
        order.append((system.name, bool(bound.arguments.get("settled", False))))
        return original(system, *args, **kwargs)

    monkeypatch.setattr(search_module, "_search_system", recording)
    return order


@pytest.mark.parametrize(("structure", "first"), [(RUTILE, "tetragonal"), (ZINCITE, "hexagonal")],
                         ids=["rutile", "zincite"])
def test_the_better_screening_system_of_a_group_is_searched_first_and_fewer_trials_do_not_change_the_answer(
        structure: Structure, first: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tetragonal and hexagonal are one group: the system whose best trial cell screens better goes first, the
    other refines ``n_refine_settled`` trial cells per scheme once the first indexes every line; the answer is
    the one of a search refining ``n_refine`` trial cells in both."""
    order = _record_settled(monkeypatch)
    lines = _peaks(structure, noise=0.01, seed=2)
    quick = search(lines, CU)
    group = [entry for entry in order if entry[0] in ("tetragonal", "hexagonal")]
    assert group[0] == (first, False) and group[1][1]  # the second one is searched as settled
    full = search(lines, CU, params=SearchParams(n_refine_settled=30))
    best, reference = quick.solutions[0], full.solutions[0]
    assert best.crystal_system == reference.crystal_system == first
    assert np.allclose(best.cell, reference.cell, rtol=1e-6)
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_tetragonal_and_hexagonal_refine_fewer_trials_when_orthorhombic_screens_far_better(
        shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Orthorhombic Pmm2 2.919 x 5.618 x 3.066 A (shared structure): the first orthorhombic scheme's best trial
    cell screens more than twice better than every tetragonal and hexagonal one, so both refine only
    ``n_refine_settled`` trial cells per scheme; the answer is the one of a search without the rule."""
    structure = read_structure(shared_data / "structures" / "spglib" / "orthorhombic__POSCAR-025.cif")
    order = _record_settled(monkeypatch)
    lines = _peaks(structure, noise=0.01, seed=2)
    quick = search(lines, CU)
    group = [entry for entry in order if entry[0] in ("tetragonal", "hexagonal")]
    assert {name for name, _ in group} == {"tetragonal", "hexagonal"} and all(settled for _, settled in group)
    order.clear()
    full = search(lines, CU, params=SearchParams(lower_screen_ratio=float("inf")))
    group = [entry for entry in order if entry[0] in ("tetragonal", "hexagonal")]
    assert not group[0][1]  # without the rule the first system of the group refines n_refine trial cells
    best, reference = quick.solutions[0], full.solutions[0]
    assert best.crystal_system == reference.crystal_system == "orthorhombic"
    assert np.allclose(best.cell, reference.cell, rtol=1e-6)
    assert _same_lattice(best.cell, best.centring, structure.cell, "P")


def test_reflections_are_ordered_as_by_a_stable_sort_of_rounded_q() -> None:
    """The int64-key sort of :func:`reflections` gives the permutation of a stable argsort of Q rounded to 1e-12
    (ties, including the exact ones of a tetragonal cell, in the box order)."""
    from xrdframe_ntreor.refine import _order_by_q, reflections

    rng = np.random.default_rng(0)
    for q in (np.round(rng.random(5000) * 1.2, 4), rng.random(7) * 3e5, np.zeros(0)):
        np.testing.assert_array_equal(_order_by_q(q), np.argsort(np.round(q, 12), kind="stable"))
    hkl, q = reflections(np.array([1 / 4.0**2, 1 / 4.0**2, 1 / 6.0**2, 0, 0, 0]), 0.2)
    assert np.all(np.diff(q) >= 0)
    assert hkl[:3].tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]  # 1/36 then the 010/100 tie in box order


def test_a_tetragonal_cell_with_c_near_a_sqrt2_is_not_taken_for_cubic(shared_data: Path) -> None:
    """Shared structure tetragonal 094-3 (P 7.345 x 10.40 A): c / a is sqrt2 + 0.12 %, so the cubic P 10.39 A
    cell nearly has the positions of its lines (a geometric ambiguity). Its ideal lines fit the tetragonal cell
    at M20 141 and the cubic cell at 0.06 deg at 105: the extra parameter earns a gain of 1.35, more than the
    ``occam_gain`` of 1.2, and the cell stays tetragonal (with a gain of 1.5 required it does not)."""
    structure, lines, best = _benchmark_search(shared_data, "tetragonal__POSCAR-094-3.cif")
    assert best.crystal_system == "tetragonal" and _same_lattice(best.cell, best.centring, structure.cell, "P")
    lenient = search(lines, CU, params=SearchParams(occam_gain=1.5)).solutions[0]
    assert lenient.crystal_system == "cubic" and lenient.lines_indexed == best.lines_indexed


@pytest.mark.parametrize(("name", "centring"), [("cubic__POSCAR-209.cif", "F"), ("cubic__POSCAR-198-2.cif", "P"),
                                                ("cubic__POSCAR-197.cif", "I"), ("cubic__POSCAR-197-2.cif", "I")])
def test_noisy_lines_of_a_cubic_structure_are_not_taken_for_a_tetragonal_cell(shared_data: Path, name: str,
                                                                             centring: str) -> None:
    """Noisy benchmark lines (0.03 deg, two impurity lines) of cubic structures: at the nominal tolerance (209,
    F 7.423 A: a tetragonal I 5.247 x 7.428 A cell, 17 of 19 lines at M20 88) or widened from a partial cell
    (197, I 10.15 A: a tetragonal P a / sqrt2 x a / 2 cell at 0.09 deg, 23 of 25 lines at M20 36.6) a cell of
    one parameter more passes first; 197-2 (I 10.25 A) needs the cubic group searched at the 0.09 deg a widened
    tetragonal cell passed at, where the cubic cell (M20 41.2) outranks a trigonal R cell of its lattice (32.3).
    The cubic cell indexes as many lines at that tolerance or a wider one with an M20 within ``occam_gain`` (209:
    81.5 at 0.06 deg against the tetragonal cell's 87.8 there), and comes first."""
    structure, _, best = _benchmark_search(shared_data, name, noisy=True)
    assert best.crystal_system == "cubic" and _same_lattice(best.cell, best.centring, structure.cell, centring)
