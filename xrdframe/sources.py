"""What structure sources provide: the protocol between sources and tasks.

A structure source is *indexed*: it knows how many structures it holds and
returns structure ``i`` on demand, deterministically for a seed. That lets the
``simulate`` task split the work into shards of consecutive indices, hand
shards to worker processes or to other machines (``shard: i/n``), and redo
after a crash only the shards that did not finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import attrs

from xrdframe.structure import Structure

__all__ = ["SkippedStructure", "StructureSource", "iter_structures"]


@attrs.frozen
class SkippedStructure:
    """A structure a source could not use, and why (reported in the run's output)."""

    source: str
    reason: str


@runtime_checkable
class StructureSource(Protocol):
    """A ``structure_source`` component.

    Implementations must be picklable (hold only their params), so that worker
    processes can rebuild structures by index.
    """

    def count(self) -> int:
        """Number of structures (indices ``0 .. count() - 1``)."""
        ...

    def structure(self, index: int, seed: int) -> Structure | SkippedStructure:
        """Structure ``index``, the same for the same ``seed``; a SkippedStructure says why not."""
        ...

    def structure_id(self, index: int, seed: int) -> str:
        """A stable identifier of structure ``index`` (a relative path, a name), used for splits."""
        ...


def iter_structures(source: StructureSource, seed: int) -> Iterator[Structure | SkippedStructure]:
    """Every structure of ``source`` in index order."""
    for index in range(source.count()):
        yield source.structure(index, seed)
