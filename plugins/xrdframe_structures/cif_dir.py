"""``cif_dir``: crystal structures from CIF files under a folder or matching a glob."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import numpy as np
import spglib
import spglib.error

from xrdframe.component import param
from xrdframe.errors import XrdframeError
from xrdframe.sources import SkippedStructure
from xrdframe.structure import Structure, StructureError, read_structure

__all__ = ["CifDir", "CifDirParams", "spglib_space_group"]


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


def spglib_space_group(structure: Structure, symprec: float = 1e-3) -> int | None:
    """The space-group number spglib finds for ``structure``, or None if it finds none.

    Atoms of one element with different occupancies count as different species.
    """
    lattice = np.array(structure.unit_cell.orth.mat).T  # rows are the lattice vectors a, b, c
    species = [f"{e}:{o:.4f}" for e, o in zip(structure.elements, structure.occupancy, strict=True)]
    _, numbers = np.unique(species, return_inverse=True)
    old = spglib.error.OLD_ERROR_HANDLING
    spglib.error.OLD_ERROR_HANDLING = False  # raise SpglibError instead of returning None with a warning
    try:
        dataset = spglib.get_symmetry_dataset((lattice, structure.fract, numbers + 1), symprec=symprec)
    except spglib.error.SpglibError:
        return None
    finally:
        spglib.error.OLD_ERROR_HANDLING = old
    return None if dataset is None else int(dataset.number)


class CifDir:
    """Yield every readable CIF under ``path``; skipped files carry their reason."""

    def __init__(self, params: CifDirParams) -> None:
        self.params = params

    def files(self) -> list[Path]:
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

    def structures(self, seed: int) -> Iterator[Structure | SkippedStructure]:
        for path in self.files():
            try:
                structure = read_structure(path)
            except StructureError as exc:
                if self.params.strict:
                    raise
                yield SkippedStructure(str(path), str(exc).removeprefix(f"{path}: "))
                continue
            found = spglib_space_group(structure, self.params.symprec)
            if found == structure.space_group:
                yield structure
                continue
            what = f"file says {structure.space_group}, spglib finds {found}"
            choice = self.params.on_disagreement
            if choice == "drop" or (choice == "take_spglib" and found is None):
                yield SkippedStructure(str(path), f"space group disagreement ({what}); dropped")
            elif choice == "take_spglib":
                yield attrs.evolve(structure, space_group=found, note=f"{what}; took spglib's")
            else:
                yield attrs.evolve(structure, note=f"{what}; kept the file's")
