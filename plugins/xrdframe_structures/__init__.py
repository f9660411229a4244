"""Built-in structure sources: ``cif_dir`` (CIF files under a folder or glob)."""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl
from xrdframe_structures.cif_dir import CifDir, CifDirParams
from xrdframe_structures.random_structures import RandomStructures, RandomStructuresParams

__all__ = ["xrdframe_structure_sources"]


@hookimpl
def xrdframe_structure_sources() -> list[Component]:
    return [
        Component(
            name="cif_dir",
            factory=CifDir,
            params=CifDirParams,
            summary="every CIF under a folder or glob; space group from the file, cross-checked with spglib",
        ),
        Component("random_structures", RandomStructures, RandomStructuresParams,
                  "random crystals for chosen space groups, labels verified with spglib"),
    ]
