"""``cif_dir``: crystal structures from CIF files under a folder or matching a glob."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import spglib
import spglib.error

from xrdframe.component import param
from xrdframe.errors import XrdframeError
from xrdframe.sources import SkippedStructure, iter_structures
from xrdframe.structure import Structure, StructureError, read_structure

__all__ = ["CifDir", "CifDirParams", "spglib_space_group", "spglib_standardize"]


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")


@attrs.frozen
class CifDirParams:
    path: str = param(doc="a folder (searched recursively for *.cif) or a glob such as 'data/**/*.cif'")
    on_disagreement: Literal["keep_file", "take_spglib", "drop"] = param(
        "keep_file", doc="when spglib finds another space group than the file states: keep the file's, "
                         "take spglib's, or drop the structure (each case is reported)")
    symprec: float = param(1e-3, doc="spglib's distance tolerance", unit="Angstrom", validator=_positive)
    strict: bool = param(False, doc="fail the run on the first unreadable file instead of skipping it")
    limit: int | None = param(None, doc="read at most this many files (in sorted order)")


def _spglib_cell(structure: Structure) -> tuple[tuple, np.ndarray]:
    """spglib's (lattice, positions, numbers); atoms differing in element, occupancy or B are distinct species."""
    lattice = np.array(structure.unit_cell.orth.mat).T  # rows are the lattice vectors a, b, c
    species = np.rec.fromarrays([np.asarray(structure.elements), np.round(structure.occupancy, 4),
                                 np.round(structure.b_iso, 3)])
    keys, numbers = np.unique(species, return_inverse=True)
    return (lattice, structure.fract, numbers + 1), keys


def _call_spglib(function: Any, *args: Any, **kwargs: Any) -> Any:
    old = spglib.error.OLD_ERROR_HANDLING
    spglib.error.OLD_ERROR_HANDLING = False  # raise SpglibError instead of returning None with a warning
    try:
        return function(*args, **kwargs)
    except spglib.error.SpglibError:
        return None
    finally:
        spglib.error.OLD_ERROR_HANDLING = old


def spglib_space_group(structure: Structure, symprec: float = 1e-3) -> int | None:
    """The space-group number spglib finds for ``structure``, or None if it finds none.

    Atoms differing in element, occupancy or displacement parameter count as different species.
    """
    cell, _ = _spglib_cell(structure)
    dataset = _call_spglib(spglib.get_symmetry_dataset, cell, symprec=symprec)
    return None if dataset is None else int(dataset.number)


def spglib_standardize(structure: Structure, symprec: float = 1e-3) -> Structure | None:
    """``structure`` in the standard conventional setting of the group spglib finds (None if none).

    spglib's default settings are gemmi's standard settings for all 230 groups
    (monoclinic unique axis b, cell choice 1; origin choice 1; rhombohedral groups
    on hexagonal axes), so the result's ``setting`` is the standard one.
    """
    cell, keys = _spglib_cell(structure)
    dataset = _call_spglib(spglib.get_symmetry_dataset, cell, symprec=symprec)
    standard = _call_spglib(spglib.standardize_cell, cell, to_primitive=False, no_idealize=False, symprec=symprec)
    if dataset is None or standard is None:
        return None
    lattice, positions, numbers = standard
    lengths = np.linalg.norm(lattice, axis=1)
    a, b, c = lattice

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.degrees(np.arccos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1))))

    species = keys[np.asarray(numbers) - 1]
    return attrs.evolve(structure, cell=(*map(float, lengths), angle(b, c), angle(a, c), angle(a, b)),
                        space_group=int(dataset.number), setting="", fract=np.asarray(positions) % 1.0,
                        elements=tuple(str(e) for e in species["f0"]), occupancy=species["f1"].astype(float),
                        b_iso=species["f2"].astype(float))


class CifDir:
    """Every readable CIF under ``path``, in sorted order; unreadable ones are skipped with their reason."""

    def __init__(self, params: CifDirParams) -> None:
        self.params = params
        self._files: list[Path] | None = None

    def __getstate__(self) -> dict:
        return {"params": self.params, "_files": self._files}

    def files(self) -> list[Path]:
        """The CIF files, sorted; listed once."""
        if self._files is None:
            self._files = self._list_files()
        return self._files

    def _list_files(self) -> list[Path]:
        pattern = self.params.path
        root = Path(pattern)
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".cif" and p.is_file())
        elif any(ch in pattern for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
        elif root.is_file():
            found = [root]
        else:
            raise XrdframeError(f"cif_dir: {pattern!r} is neither a folder, a file nor a glob that matches")
        if not found:
            raise XrdframeError(f"cif_dir: no CIF files found under {pattern!r}")
        return found[: self.params.limit] if self.params.limit is not None else found

    def count(self) -> int:
        return len(self.files())

    def structure_id(self, index: int, seed: int) -> str:
        path = self.files()[index]
        root = Path(self.params.path)
        return str(path.relative_to(root)) if root.is_dir() else str(path)

    def structure(self, index: int, seed: int) -> Structure | SkippedStructure:
        path = self.files()[index]
        try:
            structure = read_structure(path)
        except StructureError as exc:
            if self.params.strict:
                raise
            return SkippedStructure(str(path), str(exc).removeprefix(f"{path}: "))
        found = spglib_space_group(structure, self.params.symprec)
        if found == structure.space_group:
            return structure
        what = f"file says {structure.space_group}, spglib finds {found}"
        choice = self.params.on_disagreement
        if choice == "drop" or (choice == "take_spglib" and found is None):
            return SkippedStructure(str(path), f"space group disagreement ({what}); dropped")
        if choice == "take_spglib":
            standard = spglib_standardize(structure, self.params.symprec)
            if standard is None:
                return SkippedStructure(str(path), f"space group disagreement ({what}); spglib could not "
                                                   "standardize the cell; dropped")
            return attrs.evolve(standard, note=f"{what}; took spglib's (cell standardized)")
        return attrs.evolve(structure, note=f"{what}; kept the file's")

    def structures(self, seed: int = 0) -> Iterator[Structure | SkippedStructure]:
        """Every structure in index order."""
        return iter_structures(self, seed)
