"""The ``random_structures`` structure source: labels, determinism, parameters, geometry."""

from __future__ import annotations

import itertools
import pickle
import re

import gemmi
import numpy as np
import pytest
import spglib
import spglib.error
from xrdframe_structures.cif_dir import spglib_space_group
from xrdframe_structures.random_structures import (
    RandomStructures,
    RandomStructuresParams,
    crystal_system,
    special_positions,
)

import xrdframe
from xrdframe.errors import SpecError, XrdframeError
from xrdframe.sources import StructureSource
from xrdframe.structure import Structure

_IMAGES = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


def _draw(seed: int = 0, **params: object) -> list[Structure]:
    return list(RandomStructures(RandomStructuresParams(**params)).structures(seed))


def _spglib_dataset(s: Structure, symprec: float) -> spglib.SpglibDataset:
    lattice = np.array(s.unit_cell.orth.mat).T
    _, numbers = np.unique(s.elements, return_inverse=True)
    old = spglib.error.OLD_ERROR_HANDLING
    spglib.error.OLD_ERROR_HANDLING = False  # raise instead of warning; what cif_dir does
    try:
        return spglib.get_symmetry_dataset((lattice, s.fract, numbers), symprec=symprec)
    finally:
        spglib.error.OLD_ERROR_HANDLING = old


def _shortest_distance(s: Structure) -> float:
    """Brute force: every pair of atoms, 27 lattice images around the nearest one in fractional terms."""
    orth = np.array(s.unit_cell.orth.mat)
    best = np.inf
    for x in s.fract:
        d = s.fract - x
        d -= np.rint(d)
        cart = (d[:, None, :] + _IMAGES[None]).reshape(-1, 3) @ orth.T
        r = np.linalg.norm(cart, axis=1)
        best = min(best, float(r[r > 1e-9].min()))
    return best


def _sites(s: Structure) -> tuple[int, int]:
    special, total = re.fullmatch(r"special positions: (\d+) of (\d+) sites", s.note).groups()
    return int(special), int(total)


def test_special_positions_are_the_wyckoff_positions() -> None:
    # the International Tables list 1731 Wyckoff positions, 230 of them general
    assert sum(len(special_positions(n)) for n in range(1, 231)) == 1731 - 230
    assert [t.multiplicity for t in special_positions(225)] == [4, 4, 8, 24, 24, 32, 48, 48, 48, 96, 96]
    assert [t.multiplicity for t in special_positions(221)] == [1, 1, 3, 3, 6, 6, 8, 12, 12, 12, 24, 24, 24]
    assert [t.dim for t in special_positions(2)] == [0] * 8  # P-1: the eight inversion centres
    assert special_positions(19) == ()  # P2_12_12_1 has none
    for n in (2, 62, 148, 194, 227):
        order = len(list(gemmi.find_spacegroup_by_number(n).operations()))
        assert all(t.multiplicity * t.site_order == order for t in special_positions(n))


def test_every_space_group_is_labelled_as_spglib_finds_it() -> None:
    for n in range(1, 231):
        (s,) = _draw(seed=n, count=1, space_groups=[n])
        assert s.space_group == n and s.name == f"random-{n}-0-sg{n}"
        assert spglib_space_group(s, 1e-3) == n, s.name
        dataset = _spglib_dataset(s, 1e-5)
        assert dataset.number == n, s.name
        # the cell is the conventional cell of the group, not a supercell of it
        assert len(dataset.std_types) == len(s.elements), s.name
        a, b, c, alpha, beta, gamma = s.cell
        system = crystal_system(n)
        if system in ("tetragonal", "trigonal", "hexagonal", "cubic"):
            assert a == pytest.approx(b)
        if system in ("trigonal", "hexagonal"):
            assert (alpha, beta, gamma) == (90, 90, 120)
        if system == "monoclinic":
            assert alpha == gamma == 90 and beta != 90


def test_labels_hold_at_looser_tolerance() -> None:
    for s in _draw(seed=11, count=60):
        assert spglib_space_group(s, 1e-2) == s.space_group, s.name


def test_deterministic_for_a_seed() -> None:
    first = _draw(seed=5, count=6)
    again = _draw(seed=5, count=6)
    other = _draw(seed=6, count=6)
    fewer = _draw(seed=5, count=3)
    for a, b in zip(first, again, strict=True):
        assert a.name == b.name and a.cell == b.cell and a.elements == b.elements and a.note == b.note
        np.testing.assert_array_equal(a.fract, b.fract)
        np.testing.assert_array_equal(a.b_iso, b.b_iso)
    assert [s.cell for s in first] != [s.cell for s in other]
    # structure i has its own generator: it does not depend on count or on the attempts of the others
    assert [s.cell for s in fewer] == [s.cell for s in first[:3]]


def test_space_groups_and_weights_are_respected() -> None:
    assert {s.space_group for s in _draw(count=20, space_groups=[14, 62], weights=[1.0, 0.0])} == {14}
    drawn = [s.space_group for s in _draw(count=40, space_groups=[14, 62], weights=[1.0, 3.0])]
    assert set(drawn) == {14, 62} and drawn.count(62) > drawn.count(14)


def test_minimum_distance_is_respected() -> None:
    structures = _draw(seed=3, count=40) + _draw(seed=4, count=10, space_groups=[1, 2, 10, 47, 191, 221, 229])
    for s in structures:
        assert _shortest_distance(s) >= 1.5 - 1e-9, s.name
    for s in _draw(seed=8, count=15, min_distance=2.0, volume_per_atom=[18.0, 25.0]):
        assert _shortest_distance(s) >= 2.0 - 1e-9, s.name


def test_volume_per_atom_cell_cap_elements_and_b() -> None:
    for s in _draw(seed=2, count=30):
        assert 10.0 - 1e-9 <= s.volume / len(s.elements) <= 25.0 + 1e-9
        assert len(s.elements) <= 200
        assert np.all((s.b_iso >= 0.3) & (s.b_iso <= 1.5)) and np.all(s.occupancy == 1.0)
        assert np.all((s.fract >= 0) & (s.fract < 1)) and s.source is None
    for s in _draw(seed=2, count=15, volume_per_atom=[30.0, 32.0], max_atoms_cell=24, elements=["Na", "Cl"]):
        assert 30.0 - 1e-9 <= s.volume / len(s.elements) <= 32.0 + 1e-9
        assert len(s.elements) <= 24 and set(s.elements) <= {"Na", "Cl"}
        assert spglib_space_group(s) == s.space_group


def test_special_positions_occur() -> None:
    structures = _draw(seed=0, count=300)
    with_special = 0
    for s in structures:
        special, total = _sites(s)
        assert 1 <= total <= 6 and special <= total
        symbols = _spglib_dataset(s, 1e-5).site_symmetry_symbols
        on_special = any(sym.replace(".", "") != "1" for sym in symbols)
        assert on_special == (special > 0), s.name  # the note agrees with spglib's site symmetries
        with_special += on_special
    share = with_special / len(structures)
    assert 0.1 < share < 0.95, share
    groups = [2, 14, 62, 139]  # at most 32 operations: six general sites always fit in 200 atoms
    assert not any(_sites(s)[0] for s in _draw(count=20, space_groups=groups, special_position_probability=0.0))
    assert all(_sites(s)[0] == _sites(s)[1]
               for s in _draw(count=20, space_groups=groups, special_position_probability=1.0, max_atoms_asymmetric=3))


def test_indexed_source_protocol_and_pickling() -> None:
    source = RandomStructures(RandomStructuresParams(count=4, space_groups=[62, 166, 227]))
    assert isinstance(source, StructureSource) and source.count() == 4
    listed = list(source.structures(seed=9))
    clone = pickle.loads(pickle.dumps(source))  # what a worker process receives
    for i in (3, 0):
        s = clone.structure(i, seed=9)
        assert s.name == listed[i].name and s.cell == listed[i].cell
        np.testing.assert_array_equal(s.fract, listed[i].fract)
    assert source.structure_id(2, seed=9) == "random-9-2"
    assert source.stats.structures == 4 and source.stats.attempts >= 4


def test_created_through_the_registry() -> None:
    source = xrdframe.create("structure_source", "random_structures", count=5, space_groups=[225])
    structures = list(source.structures(seed=0))
    assert len(structures) == 5
    assert all(isinstance(s, Structure) and s.space_group == 225 for s in structures)


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"space_groups": [14, 62], "weights": [1.0]}, "weights", "1 entry but space_groups has 2"),
    ({"space_groups": [231]}, "space_groups", "231"),
    ({"space_groups": [1, 2], "weights": [0.0, 0.0]}, "weights", "all zero"),
    ({"weights": [1.0, -1.0]}, "weights", ">= 0"),
    ({"count": 0}, "count", "> 0"),
    ({"volume_per_atom": [25.0, 10.0]}, "volume_per_atom", "low <= high"),
    ({"special_position_probability": 1.5}, "special_position_probability", "[0, 1]"),
    ({"elements": ["O", "Xx"]}, "elements", "'Xx'"),
])
def test_invalid_params_name_the_parameter(params: dict, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        xrdframe.create("structure_source", "random_structures", **params)
    assert f"$.params.{field}" in str(info.value) and words in str(info.value)


def test_impossible_settings_are_clear_errors() -> None:
    with pytest.raises(XrdframeError, match="max_atoms_cell=2 is below the smallest multiplicity"):
        _draw(count=1, space_groups=[225], max_atoms_cell=2)
    with pytest.raises(XrdframeError, match=r"could not keep atoms min_distance=3.0 A apart"):
        _draw(count=1, space_groups=[221], min_distance=3.0, volume_per_atom=[10.0, 10.0], max_attempts=2)
