"""Crystal structures: reading CIF files into a form ready for diffraction.

A :class:`Structure` holds the unit cell, the space group and every atom of the
unit cell (the asymmetric unit expanded by the space-group operations), with
occupancies and isotropic displacement parameters B (Angstrom^2).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import attrs
import gemmi
import numpy as np

from xrdframe.errors import XrdframeError

__all__ = [
    "DECLARED_MULTIPLICITY_TOLERANCE",
    "SPECIAL_POSITION_TOLERANCE",
    "Structure",
    "StructureError",
    "expand_sites",
    "read_structure",
    "space_group_setting",
    "structure_from_gemmi",
]


class StructureError(XrdframeError, ValueError):
    """A structure file cannot be read or makes no sense (the message names the file)."""


def _float_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


@attrs.frozen(eq=False)
class Structure:
    """A crystal structure with every atom of its unit cell.

    :ivar cell: lattice parameters ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees.
    :ivar space_group: International Tables number, 1-230.
    :ivar setting: Hall symbol of the setting the cell and coordinates are given in
        (for example ``-P 2yn`` for P 1 21/n 1); empty for the standard setting.
    :ivar fract: fractional coordinates of all atoms in the cell, shape (n, 3).
    :ivar elements: element symbol of each atom, length n.
    :ivar occupancy: site occupancy of each atom, shape (n,).
    :ivar b_iso: isotropic displacement parameter B = 8 pi^2 U of each atom, Angstrom^2.
    :ivar name: a label (the CIF block name or file stem).
    :ivar source: where the structure came from (a path), if anywhere.
    :ivar note: a remark for reports (for example a symmetry disagreement and the choice made).
    """

    cell: tuple[float, float, float, float, float, float]
    space_group: int
    fract: np.ndarray = attrs.field(converter=_float_array)
    elements: tuple[str, ...] = attrs.field(converter=tuple)
    occupancy: np.ndarray = attrs.field(converter=_float_array)
    b_iso: np.ndarray = attrs.field(converter=_float_array)
    name: str = ""
    source: str | None = None
    note: str = ""
    setting: str = ""

    def __attrs_post_init__(self) -> None:
        n = len(self.elements)
        if self.fract.shape != (n, 3) or self.occupancy.shape != (n,) or self.b_iso.shape != (n,):
            raise ValueError(f"structure {self.name!r}: per-atom arrays disagree in length ({n} elements)")
        if not 1 <= self.space_group <= 230:
            raise ValueError(f"structure {self.name!r}: space group {self.space_group} is not in 1-230")

    @property
    def unit_cell(self) -> gemmi.UnitCell:
        """The cell as a :class:`gemmi.UnitCell`."""
        return gemmi.UnitCell(*self.cell)

    @property
    def volume(self) -> float:
        """Unit-cell volume, Angstrom^3."""
        return float(self.unit_cell.volume)

    @property
    def gemmi_space_group(self) -> gemmi.SpaceGroup:
        """The space group in the setting of this structure's cell, as gemmi knows it."""
        return space_group_setting(self.space_group, self.setting)


@lru_cache(maxsize=1024)
def space_group_setting(number: int, setting: str = "") -> gemmi.SpaceGroup:
    """gemmi's table entry for space group ``number`` in ``setting`` (a Hall symbol; '' = standard)."""
    if not setting:
        return gemmi.find_spacegroup_by_number(number)
    sg = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(setting))
    if sg is None or sg.number != number:
        raise ValueError(f"Hall symbol {setting!r} is not a setting of space group {number} in gemmi's tables")
    return sg


#: Symmetry copies of one site closer than this (Angstrom) are one atom on a special position.
SPECIAL_POSITION_TOLERANCE = 0.05


def expand_sites(fract: np.ndarray, space_group: gemmi.SpaceGroup, cell: gemmi.UnitCell,
                 tolerance: float = SPECIAL_POSITION_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Every atom of the unit cell from asymmetric-unit sites (fractional, shape (n, 3)).

    Each site is moved by every operation of the space group (centring
    included). Copies closer than ``tolerance`` Angstrom to an earlier copy are
    the same atom on a special position and are merged at their mean position;
    copies further apart are kept, so split (disordered) sites keep all their
    partial atoms. Returns the coordinates in [0, 1) and, for each atom, the
    index of the site it comes from.

    >>> sg = gemmi.find_spacegroup_by_number(225)
    >>> cell = gemmi.UnitCell(5.64, 5.64, 5.64, 90, 90, 90)
    >>> xyz, site = expand_sites(np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), sg, cell)
    >>> len(xyz), site.tolist()
    (8, [0, 0, 0, 0, 1, 1, 1, 1])
    """
    ops = list(space_group.operations())
    rot = np.array([op.rot for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (k, 3, 3)
    tran = np.array([op.tran for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (k, 3)
    metric = np.array(cell.metric_tensor().as_mat33().tolist())
    images = np.einsum("kij,nj->nki", rot, np.asarray(fract, dtype=np.float64)) + tran[None]  # (n, k, 3)
    images %= 1.0
    out_xyz, out_site = [], []
    for site, copies in enumerate(images):  # one small (k x k) problem per asymmetric-unit site
        diff = copies[:, None, :] - copies[None, :, :]
        diff -= np.round(diff)
        close = np.einsum("abi,ij,abj->ab", diff, metric, diff) < tolerance**2
        leader = close.argmax(axis=1)  # the first copy each copy coincides with (itself if none earlier)
        leaders, group = np.unique(leader, return_inverse=True)
        offset = diff[np.arange(len(copies)), leader]  # each copy relative to its leader, nearest image
        mean_offset = np.zeros((len(leaders), 3))
        np.add.at(mean_offset, group, offset)
        mean_offset /= np.bincount(group)[:, None]
        out_xyz.append((copies[leaders] + mean_offset) % 1.0)
        out_site.append(np.full(len(leaders), site))
    return np.concatenate(out_xyz).reshape(-1, 3), np.concatenate(out_site).astype(np.int64)


def _u_equivalent(site: gemmi.SmallStructure.Site, cell: gemmi.UnitCell) -> float:
    """U_iso of a site, or U_eq = 1/3 sum_ij U^ij a*_i a*_j (a_i . a_j) when only U^ij are given
    (Fischer & Tillmanns (1988), Acta Cryst. C44, 775)."""
    if site.u_iso > 0 or not site.aniso.nonzero():
        return float(site.u_iso)
    u = np.array(site.aniso.as_mat33().tolist())
    rc = cell.reciprocal()
    n = np.array([rc.a, rc.b, rc.c])
    metric = np.array(cell.metric_tensor().as_mat33().tolist())
    return float(np.einsum("ij,i,j,ij->", u, n, n, metric) / 3.0)


#: Tolerance (Angstrom) used instead when merging at SPECIAL_POSITION_TOLERANCE contradicts a site's
#: declared ``_atom_site_symmetry_multiplicity``.
DECLARED_MULTIPLICITY_TOLERANCE = 1e-3


def structure_from_gemmi(small: gemmi.SmallStructure, name: str = "", source: str | None = None,
                         multiplicities: dict[str, int] | None = None) -> Structure:
    """Convert a :class:`gemmi.SmallStructure` (asymmetric unit + space group) to a Structure.

    ``multiplicities``: the file's ``_atom_site_symmetry_multiplicity`` by site label. Where
    merging close symmetry copies gives another count, the site is expanded again with
    :data:`DECLARED_MULTIPLICITY_TOLERANCE`; a count that still disagrees is kept and noted.
    """
    label = source or name or small.name
    sg = small.spacegroup
    if sg is None:
        raise StructureError(f"{label}: no space group (neither a symbol, a number nor symmetry operations)")
    cell = small.cell
    if not cell.is_crystal() or not all(math.isfinite(x) and x > 0 for x in (cell.a, cell.b, cell.c)):
        raise StructureError(f"{label}: missing or invalid unit cell ({cell.parameters})")
    sites = list(small.sites)
    if len(sites) == 0:
        raise StructureError(f"{label}: no atom sites")
    unknown = sorted({s.type_symbol or s.label for s in sites if s.element.atomic_number == 0})
    if unknown:
        raise StructureError(f"{label}: unknown element type(s) {', '.join(unknown)} in _atom_site_type_symbol")
    if not cell.volume > 0:
        raise StructureError(f"{label}: the unit cell has no volume ({cell.parameters})")
    xyz = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites])
    fract, index = expand_sites(xyz, sg, cell)
    notes = []
    if multiplicities:
        counts = np.bincount(index, minlength=len(sites))
        for i, site in enumerate(sites):
            declared = multiplicities.get(site.label)
            if declared is None or declared == counts[i]:
                continue
            again, _ = expand_sites(xyz[i:i + 1], sg, cell, DECLARED_MULTIPLICITY_TOLERANCE)
            if len(again) == declared:
                fract = np.concatenate([fract[index != i], again])
                index = np.concatenate([index[index != i], np.full(len(again), i)])
                notes.append(f"site {site.label}: {declared} copies as declared (some closer than "
                             f"{SPECIAL_POSITION_TOLERANCE} A)")
            else:
                notes.append(f"site {site.label}: {counts[i]} atoms in the cell, file declares {declared}")
    elements = [sites[i].element.name for i in index]
    occupancy = np.array([sites[i].occ for i in index], dtype=np.float64)
    b_iso = np.array([8.0 * math.pi**2 * _u_equivalent(sites[i], cell) for i in index], dtype=np.float64)
    standard = gemmi.find_spacegroup_by_number(sg.number)
    setting = "" if sg.hall == standard.hall else sg.hall
    return Structure(cell=tuple(cell.parameters), space_group=sg.number, setting=setting, fract=fract,
                     elements=elements, occupancy=occupancy, b_iso=b_iso, name=name or small.name, source=source,
                     note="; ".join(notes))


def read_structure(path: str | Path) -> Structure:
    """Read a crystal structure from a CIF file.

    The space group comes from the file (symbol, number or symmetry operations).
    Files with common defects (duplicate tags) are read with gemmi's tolerant
    parser as a fallback.

    :raises StructureError: the file is missing or not a usable structure; the
        message names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise StructureError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise StructureError(f"{path}: not a readable CIF: the file is empty")
    try:
        doc = gemmi.cif.read_file(str(path))
    except Exception as strict_error:  # noqa: BLE001 - gemmi raises RuntimeError, ValueError, IndexError, ...
        try:  # tolerant reading, e.g. of duplicate tags
            doc = gemmi.cif.read_file(str(path), check_level=0)
        except Exception:  # noqa: BLE001
            raise StructureError(f"{path}: not a readable CIF: {strict_error or type(strict_error).__name__}") from None
    try:
        block = doc.sole_block() if len(doc) == 1 else next(b for b in doc if b.find_value("_cell_length_a"))
        small = gemmi.make_small_structure_from_block(block)
    except Exception as exc:  # noqa: BLE001
        raise StructureError(f"{path}: not a readable CIF: {exc or type(exc).__name__}") from None
    labels = list(block.find_values("_atom_site_label"))
    declared = list(block.find_values("_atom_site_symmetry_multiplicity"))
    multiplicities = {}
    if declared and len(declared) == len(labels):
        for label, value in zip(labels, declared, strict=True):
            if value.isdigit():
                multiplicities[gemmi.cif.as_string(label)] = int(value)
    return structure_from_gemmi(small, name=small.name or path.stem, source=str(path), multiplicities=multiplicities)
