"""Crystal structures: reading CIF files into a form ready for diffraction.

A :class:`Structure` holds the unit cell, the space group and every atom of the
unit cell (the asymmetric unit expanded by the space-group operations), with
occupancies and isotropic displacement parameters B (Angstrom^2).
"""

from __future__ import annotations

import math
from pathlib import Path

import attrs
import gemmi
import numpy as np

from xrdframe.errors import XrdframeError

__all__ = ["Structure", "StructureError", "read_structure", "structure_from_gemmi"]


class StructureError(XrdframeError, ValueError):
    """A structure file cannot be read or makes no sense (the message names the file)."""


def _float_array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


@attrs.frozen(eq=False)
class Structure:
    """A crystal structure with every atom of its unit cell.

    :ivar cell: lattice parameters ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees.
    :ivar space_group: International Tables number, 1-230.
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
        """The space group in its standard setting, as gemmi knows it."""
        return gemmi.find_spacegroup_by_number(self.space_group)


def structure_from_gemmi(small: gemmi.SmallStructure, name: str = "", source: str | None = None) -> Structure:
    """Convert a :class:`gemmi.SmallStructure` (asymmetric unit + space group) to a Structure."""
    label = source or name or small.name
    sg = small.spacegroup
    if sg is None:
        raise StructureError(f"{label}: no space group (neither a symbol, a number nor symmetry operations)")
    cell = small.cell
    if not cell.is_crystal() or not all(math.isfinite(x) and x > 0 for x in (cell.a, cell.b, cell.c)):
        raise StructureError(f"{label}: missing or invalid unit cell ({cell.parameters})")
    small.setup_cell_images()
    sites = small.get_all_unit_cell_sites()
    if len(sites) == 0:
        raise StructureError(f"{label}: no atom sites")
    fract = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites]) % 1.0
    elements = [s.element.name for s in sites]
    unknown = sorted({e for e, s in zip(elements, sites, strict=True) if s.element.atomic_number == 0})
    if unknown:
        raise StructureError(f"{label}: unknown element type(s) {', '.join(unknown)} in _atom_site_type_symbol")
    occupancy = np.array([s.occ for s in sites])
    b_iso = np.array([8.0 * math.pi**2 * s.u_iso for s in sites])
    return Structure(cell=tuple(cell.parameters), space_group=sg.number, fract=fract, elements=elements,
                     occupancy=occupancy, b_iso=b_iso, name=name or small.name, source=source)


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
    try:
        small = gemmi.read_small_structure(str(path))
    except (RuntimeError, ValueError) as strict_error:
        try:
            doc = gemmi.cif.read_file(str(path), check_level=0)
            block = doc.sole_block() if len(doc) == 1 else next(b for b in doc if b.find_value("_cell_length_a"))
            small = gemmi.make_small_structure_from_block(block)
        except (RuntimeError, ValueError, StopIteration):
            raise StructureError(f"{path}: not a readable CIF: {strict_error}") from None
    return structure_from_gemmi(small, name=small.name or path.stem, source=str(path))
