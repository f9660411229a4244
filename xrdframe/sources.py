"""What structure and pattern sources yield: the protocol between sources and tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import attrs

from xrdframe.structure import Structure

__all__ = ["SkippedStructure", "StructureSource"]


@attrs.frozen
class SkippedStructure:
    """A structure a source could not use, and why (reported in the run's output)."""

    source: str
    reason: str


@runtime_checkable
class StructureSource(Protocol):
    """A ``structure_source`` component: yields structures, or the reasons it skipped some.

    ``notes`` collects remarks for the run's report (for example symmetry
    disagreements and the choice made).
    """

    def structures(self, seed: int) -> Iterator[Structure | SkippedStructure]:
        """Yield every structure, deterministically for ``seed``."""
        ...
