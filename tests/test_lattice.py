"""Cell reduction and Bravais lattices (xrdframe.lattice) against independent references.

References: Křivý & Gruber (1976), Acta Cryst. A32, 297 (their worked example); the primitive cells of the cubic F
and I lattices (International Tables vol. A (2016), Table 1.5.1.1); corundum on hexagonal and rhombohedral axes
(a_r = sqrt(3a^2 + c^2)/3, sin(alpha/2) = 3a / (2 sqrt(3a^2 + c^2))); pymatgen's Niggli reduction.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import gemmi
import numpy as np
import pytest

from xrdframe.indexing import BRAVAIS_LATTICES
from xrdframe.lattice import (
    bravais_lattice_of,
    cell_volume,
    centring_matrix,
    conventional_cell,
    lattice_rmse,
    lattice_symmetry,
    match_setting,
    niggli_cell,
    niggli_reduction,
    same_lattice,
    transform_cell,
)

NACL = (5.6402, 5.6402, 5.6402, 90.0, 90.0, 90.0)
CORUNDUM = (4.7589, 4.7589, 12.991, 90.0, 90.0, 120.0)
SPGLIB_INDEX = Path("/work/shared/data/structures/spglib/index.csv")


def _corundum_rhombohedral() -> tuple[float, ...]:
    a, c = CORUNDUM[0], CORUNDUM[2]
    a_r = math.sqrt(3 * a * a + c * c) / 3
    alpha = 2 * math.degrees(math.asin(3 * a / (2 * math.sqrt(3 * a * a + c * c))))
    return (a_r, a_r, a_r, alpha, alpha, alpha)


def _g6(cell: tuple[float, ...]) -> np.ndarray:
    a, b, c, al, be, ga = cell
    cos = np.cos(np.radians([al, be, ga]))
    return np.array([a * a, b * b, c * c, 2 * b * c * cos[0], 2 * a * c * cos[1], 2 * a * b * cos[2]])


def _cell_from_g6(g6: tuple[float, ...]) -> tuple[float, ...]:
    A, B, C, xi, eta, zeta = g6
    a, b, c = math.sqrt(A), math.sqrt(B), math.sqrt(C)
    return (a, b, c, math.degrees(math.acos(xi / (2 * b * c))), math.degrees(math.acos(eta / (2 * a * c))),
            math.degrees(math.acos(zeta / (2 * a * b))))


def test_face_centred_cubic_reduces_to_60_degree_rhombohedron() -> None:
    cell = niggli_cell(NACL, "F")
    np.testing.assert_allclose(cell, (5.6402 / math.sqrt(2),) * 3 + (60.0,) * 3, atol=1e-6)
    np.testing.assert_allclose(cell[0], 3.988, atol=5e-4)


def test_body_centred_cubic_reduces_to_109_47_degree_rhombohedron() -> None:
    a = 3.3
    cell = niggli_cell((a, a, a, 90, 90, 90), "I")
    alpha = math.degrees(math.acos(-1 / 3))  # 109.4712...
    np.testing.assert_allclose(cell, (a * math.sqrt(3) / 2,) * 3 + (alpha,) * 3, atol=1e-6)


def test_krivy_gruber_example() -> None:
    """Křivý & Gruber (1976): G6 (9, 27, 4, -5, -4, -22) reduces to (4, 9, 9, 9, 3, 4)."""
    reduced = niggli_cell(_cell_from_g6((9, 27, 4, -5, -4, -22)))
    np.testing.assert_allclose(_g6(reduced), (4, 9, 9, 9, 3, 4), atol=1e-6)


def test_transformation_is_consistent_and_volume_preserving() -> None:
    for centring, points in (("P", 1), ("C", 2), ("I", 2), ("F", 4)):
        cell = (6.1, 7.3, 8.2, 90, 90, 90)
        red = niggli_reduction(cell, centring)
        np.testing.assert_allclose(transform_cell(cell, red.transformation), red.cell, atol=1e-9)
        assert math.isclose(np.linalg.det(red.transformation), 1 / points, rel_tol=1e-9)
        assert math.isclose(cell_volume(red.cell), cell_volume(cell) / points, rel_tol=1e-9)
        angles = np.array(red.cell[3:])  # Niggli forms: all angles acute (type I) or all non-acute (type II)
        assert np.all(angles < 90) or np.all(angles > 90 - 1e-9)
    np.testing.assert_allclose(np.linalg.det(centring_matrix("R")), 1 / 3)


def test_niggli_matches_pymatgen_on_random_cells() -> None:
    pytest.importorskip("pymatgen")
    from pymatgen.core import Lattice

    rng = np.random.default_rng(7)
    tested = 0
    while tested < 60:
        a, b, c = rng.uniform(3.0, 15.0, 3)
        angles = rng.uniform(60.0, 120.0, 3)
        cell = (a, b, c, *angles)
        try:
            mine = niggli_cell(cell)
        except ValueError:  # the three angles do not close a cell
            continue
        ref = Lattice.from_parameters(*cell).get_niggli_reduced_lattice().parameters
        tested += 1
        # lengths and volume always; angles too unless pymatgen leaves a mixed-sign (not normalised) form, which
        # it does within its tolerance for angles close to 90 degrees
        np.testing.assert_allclose(mine[:3], ref[:3], rtol=1e-6)
        assert math.isclose(cell_volume(mine), cell_volume(ref), rel_tol=1e-6)
        signs = {np.sign(round(90 - x, 6)) for x in ref[3:]}
        if signs in ({1.0}, {-1.0}, {-1.0, 0.0}, {0.0}):
            np.testing.assert_allclose(mine[3:], ref[3:], atol=1e-4)
        assert gemmi.GruberVector(gemmi.UnitCell(*mine), "P").is_niggli(1e-6)
        assert _meets_main_conditions(mine)


def _meets_main_conditions(cell: tuple[float, ...], eps: float = 1e-6) -> bool:
    """International Tables vol. A (2016), 3.1.3.2: the main conditions of a Niggli-reduced (positive or negative)
    reduced form, A <= B <= C, |xi| <= B, |eta| <= A, |zeta| <= A, all of xi, eta, zeta positive or none."""
    a2, b2, c2, xi, eta, zeta = _g6(cell)
    scale = eps * c2
    ordered = a2 <= b2 + scale and b2 <= c2 + scale
    bounded = abs(xi) <= b2 + scale and abs(eta) <= a2 + scale and abs(zeta) <= a2 + scale
    signs = all(x > 0 for x in (xi, eta, zeta)) or all(x <= scale for x in (xi, eta, zeta))
    return ordered and bounded and signs and xi + eta + zeta + a2 + b2 >= -scale


def test_bravais_lattice_of_counts_space_groups_per_lattice() -> None:
    counts: dict[str, int] = {}
    for n in range(1, 231):
        counts[bravais_lattice_of(n)] = counts.get(bravais_lattice_of(n), 0) + 1
    # International Tables vol. A: space groups per Bravais lattice (trigonal P groups with hP)
    assert counts == {"aP": 2, "mP": 8, "mC": 5, "oP": 30, "oC": 15, "oI": 9, "oF": 5, "tP": 49, "tI": 19,
                      "hR": 7, "hP": 45, "cP": 15, "cI": 10, "cF": 11}
    assert set(counts) == set(BRAVAIS_LATTICES)
    assert bravais_lattice_of(38) == "oC"  # Amm2


def test_cubic_f_given_as_primitive_rhombohedron_is_cf() -> None:
    prim = (5.6402 / math.sqrt(2),) * 3 + (60.0,) * 3
    matches = lattice_symmetry(prim)
    assert matches[0].bravais_lattice == "cF"
    np.testing.assert_allclose(matches[0].cell, NACL, atol=1e-6)
    assert [m.bravais_lattice for m in matches] == ["cF", "tI", "hR", "oF", "oI", "mC", "aP"]
    for m in matches:  # every conventional cell is the input lattice under the reported change of basis
        np.testing.assert_allclose(transform_cell(prim, m.transformation), m.cell, atol=1e-6)
        assert math.isclose(abs(np.linalg.det(m.transformation)) * cell_volume(prim), cell_volume(m.cell),
                            rel_tol=1e-9)


def test_body_centred_cubic_from_its_primitive_cell() -> None:
    prim = niggli_cell((4.0, 4.0, 4.0, 90, 90, 90), "I")
    best = lattice_symmetry(prim)[0]
    assert best.bravais_lattice == "cI" and best.centring == "I"
    np.testing.assert_allclose(best.cell, (4.0, 4.0, 4.0, 90, 90, 90), atol=1e-6)


def test_corundum_hexagonal_and_rhombohedral() -> None:
    rhombohedral = _corundum_rhombohedral()
    assert math.isclose(rhombohedral[0], 5.128, abs_tol=1e-3) and math.isclose(rhombohedral[3], 55.28, abs_tol=0.01)
    best = lattice_symmetry(rhombohedral)[0]
    assert best.bravais_lattice == "hR" and best.crystal_system == "trigonal"
    np.testing.assert_allclose(best.cell, CORUNDUM, atol=1e-5)
    # obverse: the centring translations of the hexagonal cell are (2/3, 1/3, 1/3) and (1/3, 2/3, 2/3)
    assert np.allclose(np.sort(np.linalg.inv(best.transformation) % 1.0, axis=None)[-3:], [2 / 3] * 3)
    # and back: the R-centred hexagonal cell reduces to the rhombohedral cell
    np.testing.assert_allclose(niggli_cell(CORUNDUM, "R"), niggli_cell(rhombohedral), atol=1e-6)
    assert same_lattice(CORUNDUM, "R", rhombohedral, "P")
    np.testing.assert_allclose(conventional_cell(rhombohedral, "hR"), CORUNDUM, atol=1e-5)


@pytest.mark.parametrize(("cell", "lattice"), [
    ((4.0, 4.0, 7.0, 90, 90, 90), "tP"),
    ((4.0, 4.0, 7.0, 90, 90, 120), "hP"),
    ((5.0, 6.0, 7.0, 90, 90, 90), "oP"),
    ((5.0, 6.0, 7.0, 90, 104.0, 90), "mP"),
    ((5.0, 6.0, 7.0, 81, 104.0, 95), "aP"),
])
def test_primitive_lattices_recognised_from_their_niggli_cell(cell: tuple[float, ...], lattice: str) -> None:
    best = lattice_symmetry(niggli_cell(cell))[0]
    assert best.bravais_lattice == lattice
    assert same_lattice(best.cell, cell)


@pytest.mark.parametrize(("cell", "centring", "lattice"), [
    ((5.0, 6.0, 9.0, 90, 90, 90), "C", "oC"),
    ((5.0, 6.0, 9.0, 90, 90, 90), "A", "oC"),
    ((5.0, 6.0, 9.0, 90, 90, 90), "I", "oI"),
    ((5.0, 6.0, 9.0, 90, 90, 90), "F", "oF"),
    ((5.0, 5.0, 9.0, 90, 90, 90), "I", "tI"),
])
def test_centred_lattices_recognised_from_their_niggli_cell(cell: tuple[float, ...], centring: str,
                                                           lattice: str) -> None:
    best = lattice_symmetry(niggli_cell(cell, centring))[0]
    assert best.bravais_lattice == lattice
    assert same_lattice(best.cell, best.centring, cell, centring)
    if lattice == "oC":  # C setting, a < b; the centred face of the A cell becomes (a, b)
        assert best.cell[0] < best.cell[1]
        np.testing.assert_allclose(sorted(best.cell[:3]), sorted(cell[:3]), atol=1e-6)


def test_tolerance_decides_pseudo_symmetry() -> None:
    cell = (5.0, 5.005, 8.0, 90, 90, 90)  # a and b 0.1 % apart: obliquity about 0.057 degrees
    strict = lattice_symmetry(cell, tolerance_degrees=0.01)
    loose = lattice_symmetry(cell, tolerance_degrees=0.1)
    assert strict[0].bravais_lattice == "oP"
    assert loose[0].bravais_lattice == "tP" and 0.04 < loose[0].obliquity < 0.08
    np.testing.assert_allclose(loose[0].ideal_cell[:2], (5.0025, 5.0025), atol=1e-3)
    with pytest.raises(ValueError, match="not compatible"):
        conventional_cell(cell, "cP")


def test_monoclinic_c_from_spglib_round_trips() -> None:
    if not SPGLIB_INDEX.exists():
        pytest.skip(f"shared structures not available ({SPGLIB_INDEX} missing)")
    rows = {r["path"]: r for r in csv.DictReader(SPGLIB_INDEX.open())}
    tested = 0
    for name in ("monoclinic__POSCAR-005.cif", "monoclinic__POSCAR-012-3.cif", "monoclinic__POSCAR-015-2.cif"):
        if name not in rows:
            continue
        row = rows[name]
        cell = tuple(float(row[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma"))
        assert bravais_lattice_of(int(row["space_group"])) == "mC"
        prim = niggli_cell(cell, "C")
        best = lattice_symmetry(prim)[0]
        assert best.bravais_lattice == "mC"
        np.testing.assert_allclose(best.cell, cell, rtol=1e-3)
        tested += 1
    if not tested:
        pytest.skip("none of the monoclinic C structures is in the shared index")


def test_same_lattice_thresholds_and_call_forms() -> None:
    assert same_lattice(NACL, "F", niggli_cell(NACL, "F"), "P")
    assert same_lattice(NACL, niggli_cell(NACL, "F"), centring1="F")
    assert not same_lattice(NACL, "F", NACL, "P")
    stretched = (5.0 * 1.004, 6.0, 7.0, 90, 90, 90)
    assert same_lattice((5.0, 6.0, 7.0, 90, 90, 90), stretched)
    assert not same_lattice((5.0, 6.0, 7.0, 90, 90, 90), (5.0 * 1.006, 6.0, 7.0, 90, 90, 90))
    assert not same_lattice((5.0, 6.0, 7.0, 90, 90, 90), stretched, 0.001, 0.01)  # positional tolerances


def test_lattice_rmse_matches_settings() -> None:
    true = (5.0, 6.0, 7.0, 90, 104.0, 90)
    # the same lattice with a and c exchanged (b reversed) and a slightly different c
    pred = (7.02, 6.0, 5.0, 90, 104.0, 90)
    np.testing.assert_allclose(match_setting(pred, true), (5.0, 6.0, 7.02, 90, 104.0, 90), atol=1e-6)
    rmse = lattice_rmse(pred, true)
    assert math.isclose(rmse.lengths, 0.02 / math.sqrt(3), rel_tol=1e-6) and rmse.angles < 1e-6
    # a cubic F cell predicted as its primitive rhombohedron compares in the F setting
    rmse = lattice_rmse(niggli_cell(NACL, "F"), NACL, "P", "F")
    assert rmse.lengths < 1e-6 and rmse.angles < 1e-6
