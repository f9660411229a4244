"""What structure sources provide: the protocol between sources and tasks.

A structure source is *indexed*: it knows how many structures it holds and
returns structure ``i`` on demand, deterministically for a seed. That lets the
``simulate`` task split the work into shards of consecutive indices, hand
shards to worker processes or to other machines (``shard: i/n``), and redo
after a crash only the shards that did not finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import attrs

from xrdframe.structure import Structure

__all__ = ["LabelledPattern", "PatternSource", "SkippedStructure", "StructureSource", "iter_structures"]


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


# ----------------------------------------------------------------------------
# Pattern sources: measured or simulated patterns with their labels
# ----------------------------------------------------------------------------


@attrs.frozen
class LabelledPattern:
    """One pattern of a pattern source, with its reference labels where known.

    :ivar id: a stable identifier (a path relative to the set's index, or ``structure_id#view``).
    :ivar data: the profile (:class:`~xrdframe.pattern.Pattern`) or peak list
        (:class:`~xrdframe.pattern.ObservedPeaks`); ``None`` when it could not be read.
    :ivar space_group: reference space group number (1-230), ``None`` when unknown.
    :ivar cell: reference cell ``(a, b, c, alpha, beta, gamma)`` in Angstrom and degrees, ``None`` when unknown.
    :ivar error: why ``data`` is ``None`` (names the file and, where it applies, the line); ``None`` otherwise.
    :ivar extra: further columns of the set's index, kept for reports.
    """

    id: str
    data: Any = None
    space_group: int | None = None
    cell: tuple[float, float, float, float, float, float] | None = None
    error: str | None = None
    extra: dict[str, str] = attrs.field(factory=dict)


@runtime_checkable
class PatternSource(Protocol):
    """A ``pattern_source`` component: a finite, ordered set of labelled patterns.

    ``patterns(seed)`` yields the same items in the same order for the same seed
    (simulated sets draw their effects from it; measured sets ignore it). A file
    that cannot be read is yielded with ``data=None`` and ``error`` set, never raised,
    so that one bad file cannot abort an evaluation.
    """

    def count(self) -> int:
        """Number of patterns ``patterns`` yields (bad files included)."""
        ...

    def patterns(self, seed: int) -> Iterator[LabelledPattern]:
        """Every pattern, in a fixed order."""
        ...
