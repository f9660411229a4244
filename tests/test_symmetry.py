"""Symmetry labels: crystal systems, the 101 extinction groups, their symbols and `xrdframe symmetry`.

Reference reflection conditions: International Tables for Crystallography vol. A, the space-group tables
(conditions implied by a more general class left out, as the symbols here do).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
import subprocess
import sys
import time

import gemmi
import numpy as np
import pytest

import xrdframe
from xrdframe import symmetry
from xrdframe.symmetry import (
    CRYSTAL_SYSTEMS,
    all_symmetry_labels,
    crystal_system,
    extinction_groups,
    space_groups_by_crystal_system,
    symmetry_labels,
)

N = 8  # half-width of the hkl box of the independent checks here
_R = np.arange(-N, N + 1)
HKL = np.stack(np.meshgrid(_R, _R, _R, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int32)


@functools.cache
def absent(number: int) -> np.ndarray:
    return np.asarray(gemmi.find_spacegroup_by_number(number).operations().systematic_absences(HKL), dtype=bool)


def same_up_to_axis_permutation(a: int, b: int) -> bool:
    side = 2 * N + 1
    cube_a, cube_b = absent(a).reshape((side,) * 3), absent(b).reshape((side,) * 3)
    return any(np.array_equal(cube_a.transpose(p), cube_b) for p in itertools.permutations(range(3)))


def group(number: int) -> int:
    return symmetry_labels(number).extinction_group


# --- counts and ids ---------------------------------------------------------------------------------------------

def test_exactly_101_extinction_groups_with_ids_0_to_100() -> None:
    groups = extinction_groups()
    assert len(groups) == 101
    assert [g.id for g in groups] == list(range(101))
    assert sorted(n for g in groups for n in g.space_groups) == list(range(1, 231))
    # ordered by (crystal system, smallest member)
    keys = [(CRYSTAL_SYSTEMS.index(g.crystal_system), g.space_groups[0]) for g in groups]
    assert keys == sorted(keys)
    per_system = {s: sum(g.crystal_system == s for g in groups) for s in CRYSTAL_SYSTEMS}
    assert per_system == {"triclinic": 1, "monoclinic": 6, "orthorhombic": 33, "tetragonal": 31, "trigonal": 6,
                          "hexagonal": 7, "cubic": 17}


def test_pinned_ids() -> None:
    """Ids are part of the contract (labels in datasets, metrics): these must never change."""
    groups = extinction_groups()
    assert groups[0].space_groups == (1, 2)
    assert groups[6].space_groups == (14,)
    assert groups[21].space_groups == (33, 62)
    assert groups[40].space_groups == (75, 81, 83, 89, 99, 111, 115, 123)
    assert groups[76].space_groups == (161, 167)
    assert groups[83].space_groups == (186, 190, 194)
    assert groups[85].space_groups == (196, 202, 209, 216, 225)
    assert groups[100].space_groups == (230,)
    assert (group(62), group(194), group(225), group(230)) == (21, 83, 85, 100)


def test_230_labels_and_crystal_system_sizes() -> None:
    labels = all_symmetry_labels()
    assert [lab.space_group for lab in labels] == list(range(1, 231))
    sizes = {k: len(v) for k, v in space_groups_by_crystal_system().items()}
    assert list(sizes) == list(CRYSTAL_SYSTEMS)
    assert list(sizes.values()) == [2, 13, 59, 68, 25, 27, 36]
    for system, numbers in space_groups_by_crystal_system().items():
        assert all(crystal_system(n) == system for n in numbers)
        assert {lab.crystal_system for lab in labels if lab.space_group in numbers} == {system}


def test_crystal_system_agrees_with_gemmi() -> None:
    for n in range(1, 231):  # gemmi also says 'trigonal' for 143-167, rhombohedral groups included
        assert crystal_system(n) == gemmi.find_spacegroup_by_number(n).crystal_system_str(), n


def test_gemmi_gives_the_contract_settings() -> None:
    for n in range(3, 16):  # monoclinic: unique axis b, cell choice 1 where there are cell choices
        assert gemmi.find_spacegroup_by_number(n).qualifier in ("b", "b1"), n
    for n in (146, 148, 155, 160, 161, 166, 167):  # rhombohedral groups on hexagonal (obverse) axes
        sg = gemmi.find_spacegroup_by_number(n)
        assert sg.ext == "H" and sg.centring_type() == "R"
        assert symmetry_labels(n).symbol.startswith("R")
    # obverse: R centring (2/3, 1/3, 1/3) gives -h+k+l=3n (101 present, -101 absent; reverse is the other way)
    ops = gemmi.find_spacegroup_by_number(146).operations()
    assert not ops.is_systematically_absent([1, 0, 1]) and ops.is_systematically_absent([-1, 0, 1])


def test_labels_fields() -> None:
    lab = symmetry_labels(14)
    assert (lab.space_group, lab.symbol, lab.crystal_system, lab.laue_class, lab.centring) == (
        14, "P21/c", "monoclinic", "2/m", "P")
    assert symmetry_labels(167).centring == "R" and symmetry_labels(225).centring == "F"
    assert xrdframe.symmetry_labels is symmetry_labels
    assert symmetry_labels(np.int64(62)) == symmetry_labels(62)


@pytest.mark.parametrize("bad", [0, 231, -5, 62.0, "62", None, True])
def test_bad_space_group_numbers(bad: object) -> None:
    with pytest.raises(ValueError, match="1 to 230"):
        symmetry_labels(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 to 230"):
        crystal_system(bad)  # type: ignore[arg-type]


def test_computing_everything_is_fast() -> None:
    for fn in (symmetry._extinction_groups, symmetry._all_labels, symmetry._absences, symmetry._geometry):
        fn.cache_clear()
    start = time.perf_counter()
    assert len(all_symmetry_labels()) == 230
    assert time.perf_counter() - start < 5.0  # about 0.7 s on one core


# --- the grouping rule ------------------------------------------------------------------------------------------

def test_groups_follow_the_contract_rule() -> None:
    """Same group <=> same crystal system and same absences (orthorhombic: up to an axis permutation)."""
    for a, b in itertools.combinations(range(1, 231), 2):
        if crystal_system(a) != crystal_system(b):
            assert group(a) != group(b)
            continue
        if crystal_system(a) == "orthorhombic":
            same = same_up_to_axis_permutation(a, b)
        else:
            same = np.array_equal(absent(a), absent(b))
        assert (group(a) == group(b)) == same, (a, b)


def test_box_size_does_not_change_the_groups() -> None:
    reference = symmetry._extinction_groups()
    assert symmetry._partition(6) == symmetry._partition(8) == symmetry._partition(16) == \
        tuple(g.space_groups for g in reference)
    assert symmetry._extinction_groups(9) == reference  # symbols too


def test_shared_and_distinct_groups() -> None:
    assert group(62) == group(33)  # Pnma, Pna21
    assert group(24) == group(23)  # I212121, I222: the 21 axes add nothing to I centring
    assert group(194) == group(190) == group(186)  # P63/mmc, P-62c, P63mc
    assert np.array_equal(absent(194), absent(190))
    assert group(225) != group(227)  # Fm-3m, Fd-3m
    assert group(14) != group(13) and group(15) != group(12)
    # no absences at all, yet seven crystal systems: seven groups
    no_absences = (1, 10, 47, 123, 164, 191, 221)
    assert all(not absent(n).any() for n in no_absences)
    assert len({group(n) for n in no_absences}) == 7
    assert group(146) == group(166) and group(143) != group(146)  # R3, R-3m; P3
    assert group(144) == group(145)  # P31, P32: 000l: l=3n
    assert group(169) == group(170) and group(169) != group(171) != group(173)  # 61; 62; 63


def test_orthorhombic_settings_of_one_condition_set_share_a_group() -> None:
    # Pmc21 (c glide normal to b), Pma2 (a glide normal to b) and Pmma: one set under a <-> c
    assert not np.array_equal(absent(26), absent(28))
    assert same_up_to_axis_permutation(26, 28)
    assert group(26) == group(28) == group(51)
    # C222 (C centring) and Amm2 (A centring): one group, like Cmmm
    assert not np.array_equal(absent(21), absent(38)) and same_up_to_axis_permutation(21, 38)
    assert group(21) == group(38) == group(65) == group(35)
    # Cmc21, Ama2 (a permuted setting of the same conditions) and Cmcm
    assert np.array_equal(absent(36), absent(63)) and same_up_to_axis_permutation(36, 40)
    assert group(36) == group(40) == group(63)
    # but Pmc21 and Pmn21 differ (h0l: l=2n vs h0l: h+l=2n)
    assert group(26) != group(31)


# --- symbols ----------------------------------------------------------------------------------------------------

# International Tables vol. A reflection conditions, those implied by a more general class left out.
IT_CONDITIONS = {
    2: "none",
    14: "h0l: l=2n; 0k0: k=2n",  # P21/c
    15: "hkl: h+k=2n; h0l: h, l=2n",  # C2/c
    19: "h00: h=2n; 0k0: k=2n; 00l: l=2n",  # P212121
    33: "0kl: k+l=2n; h0l: h=2n",  # Pna21
    62: "0kl: k+l=2n; h0l: h=2n",  # Pnma: the group's symbol, in the setting of Pna21
    61: "0kl: k=2n; h0l: l=2n; hk0: h=2n",  # Pbca
    70: "hkl: h+k, h+l, k+l=2n; 0kl: k+l=4n and k, l=2n; h0l: h+l=4n and h, l=2n; hk0: h+k=4n and h, k=2n",
    88: "hkl: h+k+l=2n; hk0: h, k=2n; 00l: l=4n",  # I41/a
    136: "0kl: k+l=2n",  # P42/mnm (00l: l=2n and h00: h=2n follow)
    141: "hkl: h+k+l=2n; hk0: h, k=2n; hhl: 2h+l=4n",  # I41/amd
    167: "hkil: -h+k+l=3n; h-h0l: h+l=3n and l=2n",  # R-3c, hexagonal axes
    169: "000l: l=6n",  # P61
    171: "000l: l=3n",  # P62
    186: "hh-2hl: l=2n",  # P63mc
    185: "h-h0l: l=2n",  # P63cm
    205: "0kl: k=2n",  # Pa-3
    225: "hkl: h+k, h+l, k+l=2n",  # Fm-3m
    227: "hkl: h+k, h+l, k+l=2n; 0kl: k+l=4n and k, l=2n",  # Fd-3m
    228: "hkl: h+k, h+l, k+l=2n; 0kl: k+l=4n and k, l=2n; hhl: h, l=2n",  # Fd-3c
    230: "hkl: h+k+l=2n; 0kl: k, l=2n; hhl: 2h+l=4n",  # Ia-3d (h00: h=4n follows from hhl)
}


@pytest.mark.parametrize("number", sorted(IT_CONDITIONS))
def test_symbols_match_international_tables(number: int) -> None:
    assert symmetry_labels(number).extinction_symbol == IT_CONDITIONS[number]


def test_symbols_unique_within_each_crystal_system() -> None:
    groups = extinction_groups()
    for system in CRYSTAL_SYSTEMS:
        symbols = [g.symbol for g in groups if g.crystal_system == system]
        assert len(symbols) == len(set(symbols)), system
    assert all(lab.extinction_symbol == extinction_groups()[lab.extinction_group].symbol
               for lab in all_symmetry_labels())


# An independent reading of a symbol: which hkl does each class name mean, then apply the conditions to the
# class and to its images under the point group of the group's first member (plus Friedel's law).
CLASS_MEMBERS = {  # name -> which of (h, k, l) must vanish or be equal: 'h' means h = 0, 'h=k', 'h=-k'
    "hkl": (), "hkil": (), "0kl": ("h",), "h0l": ("k",), "hk0": ("l",), "hki0": ("l",),
    "h00": ("k", "l"), "0k0": ("h", "l"), "00l": ("h", "k"), "000l": ("h", "k"),
    "hhl": ("h=k",), "hh-2hl": ("h=k",), "h-h0l": ("h=-k",),
    "hh0": ("h=k", "l"), "hh-2h0": ("h=k", "l"), "h-h00": ("h=-k", "l"),
}
TERM = re.compile(r"([+-]?)(\d*)([hkl])")


def members(name: str, hkl: np.ndarray) -> np.ndarray:
    index = dict(h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2])
    ok = np.ones(len(hkl), dtype=bool)
    for rule in CLASS_MEMBERS[name]:
        if rule == "h=k":
            ok &= index["h"] == index["k"]
        elif rule == "h=-k":
            ok &= index["h"] == -index["k"]
        else:
            ok &= index[rule] == 0
    return ok


def conditions_hold(text: str, hkl: np.ndarray) -> np.ndarray:
    """'k+l=4n and k, l=2n' evaluated on an (n, 3) array of hkl."""
    index = dict(h=hkl[:, 0], k=hkl[:, 1], l=hkl[:, 2])
    ok = np.ones(len(hkl), dtype=bool)
    for part in text.split(" and "):
        forms, modulus = re.fullmatch(r"(.+)=(\d+)n", part).groups()
        for form in forms.split(", "):
            assert TERM.sub("", form) == "", form
            value = sum((-1 if s == "-" else 1) * int(c or 1) * index[x] for s, c, x in TERM.findall(form))
            ok &= value % int(modulus) == 0
    return ok


def absences_from_symbol(symbol: str, number: int) -> np.ndarray:
    ops = gemmi.find_spacegroup_by_number(number).operations()
    rotations = {tuple(map(tuple, np.array(op.rot) // gemmi.Op.DEN)) for op in ops.sym_ops}
    rotations |= {tuple(tuple(-x for x in row) for row in rot) for rot in rotations}
    out = np.zeros(len(HKL), dtype=bool)
    if symbol == "none":
        return out
    for item in symbol.split("; "):
        name, text = item.split(": ")
        for rot in rotations:
            image = HKL @ np.array(rot)
            out |= members(name, image) & ~conditions_hold(text, image)
    return out


def test_every_symbol_means_exactly_its_absences() -> None:
    for g in extinction_groups():
        first = g.space_groups[0]
        from_symbol = absences_from_symbol(g.symbol, first)
        for n in g.space_groups:
            if g.crystal_system == "orthorhombic" and n != first:
                continue  # other settings: covered by the permutation test
            assert np.array_equal(from_symbol, absent(n)), (g.id, n, g.symbol)


# --- command line -----------------------------------------------------------------------------------------------

def test_symmetry_command() -> None:
    result = subprocess.run([sys.executable, "-m", "xrdframe", "symmetry"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "space_group,symbol,crystal_system,extinction_group,extinction_symbol"
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 230
    assert [int(r["space_group"]) for r in rows] == list(range(1, 231))
    assert sorted({int(r["extinction_group"]) for r in rows}) == list(range(101))
    pnma = rows[61]
    assert (pnma["symbol"], pnma["crystal_system"], pnma["extinction_group"]) == ("Pnma", "orthorhombic", "21")
    assert rows[224]["extinction_symbol"] == "hkl: h+k, h+l, k+l=2n"
