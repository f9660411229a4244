"""Reading CIF files into Structures, and the ``cif_dir`` structure source with its spglib cross-check."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from xrdframe_structures.cif_dir import CifDir, spglib_space_group

import xrdframe
from xrdframe.diffraction import simulate_peaks
from xrdframe.errors import XrdframeError
from xrdframe.sources import SkippedStructure
from xrdframe.structure import Structure, StructureError, read_structure

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "structures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPGLIB_CIFS = SHARED_DATA / "structures" / "spglib"

# Atoms in the unit cell: Z formula units times atoms per formula unit.
CELL_CONTENTS = {
    "NaCl": (225, 8, {"Na": 4, "Cl": 4}),
    "Si": (227, 8, {"Si": 8}),
    "CsCl": (221, 2, {"Cs": 1, "Cl": 1}),
    "TiO2_rutile": (136, 6, {"Ti": 2, "O": 4}),
    "SiO2_quartz": (154, 9, {"Si": 3, "O": 6}),
    "Al2O3_corundum": (167, 30, {"Al": 12, "O": 18}),
    "ZnO_zincite": (186, 4, {"Zn": 2, "O": 2}),
}

CUBIC_CELL = "\n".join(f"_cell_length_{x} {{a}}" for x in "abc") + "\n" + "\n".join(
    f"_cell_angle_{x} 90" for x in ("alpha", "beta", "gamma"))


def cubic_cif(name: str, symbol: str, a: float, sites: str, number: int | None = None,
              columns: str = "_atom_site_occupancy\n_atom_site_B_iso_or_equiv") -> str:
    """A small CIF; ``sites`` holds one row per site: label, type, x, y, z and the extra ``columns``."""
    number_line = f"_symmetry_Int_Tables_number {number}\n" if number is not None else ""
    return (f"data_{name}\n_symmetry_space_group_name_H-M '{symbol}'\n{number_line}{CUBIC_CELL.format(a=a)}\n"
            f"loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
            f"_atom_site_fract_z\n{columns}\n{sites.strip()}\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def min_distance(s: Structure) -> float:
    """Shortest interatomic distance in the periodic structure (minimum image over neighbouring cells)."""
    orth = np.array(s.unit_cell.orth.mat)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    diff = s.fract[:, None, None, :] - s.fract[None, :, None, :] + shifts[None, None, :, :]
    dist = np.linalg.norm(diff @ orth.T, axis=-1)
    n = len(s.elements)
    dist[np.arange(n), np.arange(n), 13] = np.inf  # an atom and itself in the same cell
    return float(dist.min())


# --------------------------------------------------------------------------- read_structure


@pytest.mark.parametrize("stem", sorted(CELL_CONTENTS))
def test_example_cells_hold_every_atom(stem: str) -> None:
    number, count, per_element = CELL_CONTENTS[stem]
    s = read_structure(EXAMPLES / f"{stem}.cif")
    assert s.space_group == number
    assert len(s.elements) == count and s.fract.shape == (count, 3)
    assert {e: s.elements.count(e) for e in set(s.elements)} == per_element
    assert np.all((s.fract >= 0) & (s.fract < 1))
    assert min_distance(s) > 1.5  # no atom twice, no images left on top of each other
    assert s.name == stem and s.source == str(EXAMPLES / f"{stem}.cif")


def test_cell_and_volume() -> None:
    s = read_structure(EXAMPLES / "Al2O3_corundum.cif")
    assert s.cell == pytest.approx((4.7589, 4.7589, 12.991, 90, 90, 120))
    assert s.volume == pytest.approx(4.7589**2 * 12.991 * math.sin(math.radians(120)), rel=1e-9)


def test_occupancy_and_b_iso_are_kept() -> None:
    s = read_structure(EXAMPLES / "NaCl.cif")
    b = dict(zip(s.elements, s.b_iso, strict=True))
    assert b == pytest.approx({"Na": 1.6, "Cl": 1.2})
    assert np.all(s.b_iso[np.array(s.elements) == "Na"] == pytest.approx(1.6))
    assert np.all(s.occupancy == 1.0)
    rutile = read_structure(EXAMPLES / "TiO2_rutile.cif")
    assert sorted(set(zip(rutile.elements, rutile.b_iso.round(6).tolist(), strict=True))) == [("O", 0.6), ("Ti", 0.4)]


def test_u_iso_is_converted_to_b_and_partial_occupancy_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "u_iso.cif", cubic_cif(
        "u_iso", "P m -3 m", 4.0, "Sr1 Sr 0 0 0 1 0.01\nTi1 Ti 0.5 0.5 0.5 0.5 0.0075\nO1 O 0.5 0.5 0 1 0.02",
        columns="_atom_site_occupancy\n_atom_site_U_iso_or_equiv"))
    s = read_structure(path)
    assert len(s.elements) == 5
    by_element = {e: (o, b) for e, o, b in zip(s.elements, s.occupancy, s.b_iso, strict=True)}
    assert by_element["Sr"] == pytest.approx((1.0, 8 * math.pi**2 * 0.01))
    assert by_element["Ti"] == pytest.approx((0.5, 8 * math.pi**2 * 0.0075))
    assert by_element["O"] == pytest.approx((1.0, 8 * math.pi**2 * 0.02))


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "missing.cif"
    with pytest.raises(StructureError, match="missing.cif") as info:
        read_structure(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, XrdframeError) and isinstance(info.value, ValueError)


def test_duplicate_tag_is_read_with_the_tolerant_parser(tmp_path: Path) -> None:
    text = cubic_cif("dup", "P m -3 m", 4.123, "Cs1 Cs 0 0 0 1 1.5\nCl1 Cl 0.5 0.5 0.5 1 1.5", number=221)
    text = text.replace("_cell_length_b", "_cell_length_a 4.123\n_cell_length_b")  # _cell_length_a twice
    path = write(tmp_path / "dup.cif", text)
    s = read_structure(path)
    assert s.space_group == 221 and sorted(s.elements) == ["Cl", "Cs"]
    assert s.cell == pytest.approx((4.123, 4.123, 4.123, 90, 90, 90))
    assert s.b_iso == pytest.approx([1.5, 1.5])


@pytest.mark.parametrize(("content", "what"), [
    ("This is a lab notebook, not a CIF.\n{ x = 1 }\n", "not a readable CIF"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
    ("", "the file is empty"),
    ("data_nocell\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
     "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 Na 0 0 0\n", "unit cell"),
    (cubic_cif("noatoms", "P 1", 4.0, "").replace("loop_", "_dummy 1\n#loop_"), None),
    (cubic_cif("alien", "P 1", 4.0, "Q1 Qq 0 0 0 1 0"), "unknown element"),
])
def test_unusable_files_give_structure_error_with_the_path(tmp_path: Path, content: str | bytes,
                                                           what: str | None) -> None:
    path = tmp_path / "notes.cif"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(StructureError) as info:
        read_structure(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    if what is not None:
        assert what in message


# --------------------------------------------------------------------------- spglib


@pytest.mark.parametrize("stem", sorted(CELL_CONTENTS))
def test_spglib_agrees_with_the_example_files(stem: str) -> None:
    s = read_structure(EXAMPLES / f"{stem}.cif")
    assert spglib_space_group(s) == s.space_group == CELL_CONTENTS[stem][0]


def test_spglib_counts_partially_occupied_atoms_as_another_species() -> None:
    s = read_structure(EXAMPLES / "CsCl.cif")
    assert spglib_space_group(s) == 221
    # same element everywhere: CsCl positions with one species form a bcc lattice (Im-3m, 229)
    bcc = Structure(cell=s.cell, space_group=221, fract=s.fract, elements=["Cs", "Cs"], occupancy=[1, 1], b_iso=[0, 0])
    assert spglib_space_group(bcc) == 229
    half = Structure(cell=s.cell, space_group=221, fract=s.fract, elements=["Cs", "Cs"], occupancy=[1, 0.5],
                     b_iso=[0, 0])
    assert spglib_space_group(half) == 221


# Spglib test structures in which symmetry images of one site lie 0.007 to 0.012 Angstrom apart: merging at
# SPECIAL_POSITION_TOLERANCE (0.05 Angstrom) would contradict the file's _atom_site_symmetry_multiplicity, so
# read_structure expands those sites again with DECLARED_MULTIPLICITY_TOLERANCE and says so in the note.
DECLARED_MULTIPLICITY_KEPT = {"tetragonal__POSCAR-100-2.cif", "tetragonal__POSCAR-111.cif",
                              "tetragonal__POSCAR-125-2.cif"}


def spglib_index() -> list[dict[str, str]]:
    if not SPGLIB_CIFS.is_dir():
        pytest.skip(f"../shared/data absent: {SPGLIB_CIFS} not found (real structures are not available)")
    with open(SPGLIB_CIFS / "index.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def formula_count(path: Path) -> int:
    """Number of atoms in the cell from the file's own _chemical_formula_sum (pymatgen wrote them per cell)."""
    match = re.search(r"_chemical_formula_sum\s+(?:'([^']*)'|(\S+))", path.read_text())
    assert match, path
    formula = match.group(1) or match.group(2)
    return sum(int(n or 1) for n in re.findall(r"[A-Z][a-z]?(\d*)", formula))


def test_real_structures_space_group_and_spglib() -> None:
    """458 real (spglib test-suite) structures: the file's group is the index's, and spglib finds it again."""
    rows = spglib_index()
    disagreements, noted = [], set()
    for row in rows:
        path = SPGLIB_CIFS / row["path"]
        s = read_structure(path)
        assert s.space_group == int(row["space_group"]), row["path"]
        found = spglib_space_group(s)
        if found != s.space_group or len(s.elements) != formula_count(path):
            disagreements.append(row["path"])
        if "copies as declared" in s.note:
            noted.add(row["path"])
    assert len(rows) > 400
    assert disagreements == []
    assert noted == DECLARED_MULTIPLICITY_KEPT


def test_anisotropic_displacement_gives_u_equivalent(tmp_path: Path) -> None:
    text = cubic_cif("aniso", "P m -3 m", 4.0, "Cs1 Cs 0 0 0 1 0", number=221).replace(
        "_atom_site_B_iso_or_equiv", "_atom_site_dummy")
    text += ("loop_\n_atom_site_aniso_label\n_atom_site_aniso_U_11\n_atom_site_aniso_U_22\n_atom_site_aniso_U_33\n"
             "_atom_site_aniso_U_12\n_atom_site_aniso_U_13\n_atom_site_aniso_U_23\nCs1 0.02 0.02 0.02 0 0 0\n")
    s = read_structure(write(tmp_path / "aniso.cif", text))
    assert s.b_iso[0] == pytest.approx(8 * np.pi**2 * 0.02, rel=1e-5)


def test_split_sites_keep_both_halves(tmp_path: Path) -> None:
    # A split O site 0.3 Angstrom either side of the inversion centre at (1/2, 0, 1/2), each half occupied:
    # the cell holds Ba + 2 x 0.5 O (split) + 2 O = 3 O in all.
    text = cubic_cif("split", "P -1", 5.0, "Ba1 Ba 0 0 0 1 0\nO1 O 0.5 0.03 0.5 0.5 0\nO2 O 0.25 0.25 0.25 1 0",
                     number=2)
    s = read_structure(write(tmp_path / "split.cif", text))
    assert sum(o for e, o in zip(s.elements, s.occupancy, strict=True) if e == "O") == pytest.approx(3.0)


# --------------------------------------------------------------------------- the cif_dir source


def cif_dir(path: Path | str, **params) -> CifDir:
    source = xrdframe.create("structure_source", "cif_dir", path=str(path), **params)
    assert isinstance(source, CifDir)
    return source


def test_cif_dir_yields_structures_and_skipped_files_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "cifs"
    good = write(folder / "good.cif", (EXAMPLES / "NaCl.cif").read_text())
    bad = write(folder / "sub" / "bad.cif", "data_bad\n_cell_length_a 5\nloop_\n_atom_site_label\nX1\n")
    write(folder / "readme.txt", "not a CIF, not looked at")
    items = list(cif_dir(folder).structures(seed=0))
    assert len(items) == 2
    structures = [i for i in items if isinstance(i, Structure)]
    skipped = [i for i in items if isinstance(i, SkippedStructure)]
    assert len(structures) == 1 and len(skipped) == 1
    assert structures[0].source == str(good) and structures[0].space_group == 225 and structures[0].note == ""
    assert skipped[0].source == str(bad)
    assert skipped[0].reason and not skipped[0].reason.startswith(str(bad))
    with pytest.raises(StructureError, match="bad.cif"):
        list(cif_dir(folder, strict=True).structures(seed=0))


def test_cif_dir_skips_an_empty_file(tmp_path: Path) -> None:
    write(tmp_path / "a_empty.cif", "")
    write(tmp_path / "b_nacl.cif", (EXAMPLES / "NaCl.cif").read_text())
    skipped, nacl = cif_dir(tmp_path).structures(seed=0)
    assert isinstance(skipped, SkippedStructure) and isinstance(nacl, Structure)


def test_cif_dir_globs_limits_and_reports_empty_paths(tmp_path: Path) -> None:
    assert len(cif_dir(EXAMPLES).files()) == len(CELL_CONTENTS)
    assert [p.name for p in cif_dir(f"{EXAMPLES}/*Cl.cif").files()] == ["CsCl.cif", "NaCl.cif"]
    assert [p.name for p in cif_dir(EXAMPLES, limit=2).files()] == ["Al2O3_corundum.cif", "CsCl.cif"]
    assert [p.name for p in cif_dir(EXAMPLES / "Si.cif").files()] == ["Si.cif"]
    with pytest.raises(XrdframeError, match="no CIF files"):
        cif_dir(tmp_path).files()
    with pytest.raises(XrdframeError, match="neither a folder"):
        cif_dir(tmp_path / "absent").files()
    with pytest.raises(xrdframe.SpecError, match="on_disagreement"):
        cif_dir(tmp_path, on_disagreement="ignore")


# NaCl written in P m -3 m: Na on 1a + 3c, Cl on 1b + 3d. The atoms are the rock-salt structure (Fm-3m, 225),
# so spglib finds a supergroup of the stated 221.
NACL_AS_PM3M = cubic_cif("nacl_pm3m", "P m -3 m", 5.6402, """
Na1 Na 0 0 0 1 0
Na2 Na 0 0.5 0.5 1 0
Cl1 Cl 0.5 0.5 0.5 1 0
Cl2 Cl 0.5 0 0 1 0
""", number=221)


@pytest.fixture
def disagreeing_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "cifs"
    write(folder / "a_nacl.cif", (EXAMPLES / "NaCl.cif").read_text())
    write(folder / "b_pm3m.cif", NACL_AS_PM3M)
    return folder


def test_disagreement_case_is_what_it_claims(disagreeing_folder: Path) -> None:
    s = read_structure(disagreeing_folder / "b_pm3m.cif")
    assert s.space_group == 221 and len(s.elements) == 8
    assert spglib_space_group(s) == 225


def test_on_disagreement_keep_file(disagreeing_folder: Path) -> None:
    agree, disagree = cif_dir(disagreeing_folder).structures(seed=0)  # keep_file is the default
    assert agree.space_group == 225 and agree.note == ""
    assert isinstance(disagree, Structure) and disagree.space_group == 221
    assert "file says 221, spglib finds 225" in disagree.note and "kept the file's" in disagree.note


def test_on_disagreement_take_spglib(disagreeing_folder: Path) -> None:
    agree, disagree = cif_dir(disagreeing_folder, on_disagreement="take_spglib").structures(seed=0)
    assert agree.space_group == 225 and agree.note == ""
    assert isinstance(disagree, Structure) and disagree.space_group == 225
    assert "file says 221, spglib finds 225" in disagree.note and "took spglib's" in disagree.note
    # the same crystal, now with the right symmetry: NaCl's lines with NaCl's multiplicities
    peaks = simulate_peaks(disagree, 1.5406, (5, 60))
    assert [tuple(int(x) for x in h) for h in peaks.hkl] == [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2)]
    assert peaks.multiplicity.tolist() == [8, 6, 12, 24, 8]


def test_on_disagreement_drop(disagreeing_folder: Path) -> None:
    agree, dropped = cif_dir(disagreeing_folder, on_disagreement="drop").structures(seed=0)
    assert isinstance(agree, Structure) and agree.space_group == 225
    assert isinstance(dropped, SkippedStructure)
    assert dropped.source == str(disagreeing_folder / "b_pm3m.cif")
    assert "file says 221, spglib finds 225" in dropped.reason and "dropped" in dropped.reason


# The rock-salt primitive cell (a = 5.6402 / sqrt 2, alpha = 60 deg, one Na and one Cl) stated in P 1.
NACL_PRIMITIVE_P1 = """data_nacl_primitive
_symmetry_space_group_name_H-M 'P 1'
_symmetry_Int_Tables_number 1
_cell_length_a 3.98822
_cell_length_b 3.98822
_cell_length_c 3.98822
_cell_angle_alpha 60
_cell_angle_beta 60
_cell_angle_gamma 60
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""


def line_positions(structure: Structure) -> list[float]:
    peaks = simulate_peaks(structure, 1.5406, (5, 90))
    return sorted({round(float(t), 3) for t in peaks.two_theta})


def test_take_spglib_keeps_the_powder_pattern_of_a_primitive_cell(tmp_path: Path) -> None:
    write(tmp_path / "cifs" / "prim.cif", NACL_PRIMITIVE_P1)
    [kept] = cif_dir(tmp_path / "cifs").structures(seed=0)
    [taken] = cif_dir(tmp_path / "cifs", on_disagreement="take_spglib").structures(seed=0)
    assert kept.space_group == 1 and taken.space_group == 225
    assert "took spglib's" in taken.note
    assert taken.cell == pytest.approx((5.6402, 5.6402, 5.6402, 90, 90, 90), abs=2e-4)  # the conventional cell
    assert sorted(taken.elements) == ["Cl"] * 4 + ["Na"] * 4
    assert line_positions(kept) == line_positions(read_structure(EXAMPLES / "NaCl.cif"))  # P1 is always right
    assert line_positions(taken) == line_positions(kept)
