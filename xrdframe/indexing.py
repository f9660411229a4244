"""What every indexer returns: a prediction for one pattern, with ranked cell candidates.

An *indexer* component (``ntreor``, ``hand``, ``cnn``, ``difcon`` or a plugin's) is any object with a
``predict(data)`` method taking a measured profile (:class:`~xrdframe.pattern.Pattern`) or a peak list
(:class:`~xrdframe.pattern.ObservedPeaks`) and returning a :class:`Prediction`. Indexers never raise on a
pattern they cannot handle: they return a prediction with no labels and a ``reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from xrdframe.pattern import ObservedPeaks, Pattern

__all__ = ["BRAVAIS_LATTICES", "BatchIndexer", "CellCandidate", "Indexer", "Prediction", "TrainableIndexer",
           "lattice_centring"]

#: The 14 Bravais lattices in Pearson notation (hR on hexagonal axes), in the classical search order's reverse.
BRAVAIS_LATTICES = ("aP", "mP", "mC", "oP", "oC", "oI", "oF", "tP", "tI", "hR", "hP", "cP", "cI", "cF")

Cell = tuple[float, float, float, float, float, float]


def lattice_centring(bravais_lattice: str) -> str:
    """The centring letter of a Bravais lattice's conventional cell (hR on hexagonal axes: R).

    >>> lattice_centring("oC"), lattice_centring("hR"), lattice_centring("hP")
    ('C', 'R', 'P')
    """
    if bravais_lattice not in BRAVAIS_LATTICES:
        raise ValueError(f"unknown Bravais lattice {bravais_lattice!r}, expected one of {', '.join(BRAVAIS_LATTICES)}")
    return bravais_lattice[1]


def _cell(value: object) -> Cell:
    a, b, c, alpha, beta, gamma = (float(x) for x in value)  # type: ignore[union-attr]
    return (a, b, c, alpha, beta, gamma)


@attrs.frozen
class CellCandidate:
    """One indexing solution: a cell in the conventional setting of its Bravais lattice, with its merits.

    :ivar crystal_system: one of :data:`xrdframe.symmetry.CRYSTAL_SYSTEMS` (``hR`` gives 'trigonal').
    :ivar bravais_lattice: one of :data:`BRAVAIS_LATTICES`.
    :ivar cell: ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees, conventional setting (hR on hexagonal axes).
    :ivar volume: cell volume, Angstrom^3.
    :ivar m20: de Wolff's figure of merit M20 (or M_N with N < 20 lines when fewer are observed).
    :ivar f_n: Smith-Snyder figure of merit F_N.
    :ivar n_lines: N used in M_N and F_N (20 when at least 20 lines are observed).
    :ivar lines_indexed: observed lines indexed within tolerance (of those searched).
    :ivar lines_total: observed lines searched.
    :ivar zero_shift: refined zero shift, degrees 2theta (observed = true + zero_shift).
    :ivar hkl: Miller indices (conventional cell) of each observed line, shape (lines_total, 3); rows of
        zeros for unindexed lines.
    :ivar extinction_group: id (0-100) of the most likely extinction group, if determined.
    :ivar extinction_symbol: its reflection conditions (for example ``'h0l: l=2n; 0k0: k=2n'``).
    :ivar space_groups: space groups of that extinction group, lowest number first.
    :ivar extinction_likelihood: relative likelihood of that extinction group among those tested (0-1).
    :ivar symbol_cell: the cell in the setting the extinction symbol and the first space group's symbol are
        written for, when that setting centres another face than ``cell`` does (the A-centred cell of Aba2 for
        an oC lattice); ``None`` when ``cell`` is already in it (axis orders and monoclinic cell choices that
        keep the centring are applied to ``cell`` itself).
    :ivar symbol_centring: the centring letter of ``symbol_cell`` (``None`` without one).
    """

    crystal_system: str
    bravais_lattice: str
    cell: Cell = attrs.field(converter=_cell)
    volume: float
    m20: float
    f_n: float
    n_lines: int
    lines_indexed: int
    lines_total: int
    zero_shift: float = 0.0
    hkl: np.ndarray = attrs.field(factory=lambda: np.zeros((0, 3), dtype=int), eq=False, repr=False)
    extinction_group: int | None = None
    extinction_symbol: str | None = None
    space_groups: tuple[int, ...] = ()
    extinction_likelihood: float | None = None
    symbol_cell: Cell | None = attrs.field(default=None, converter=attrs.converters.optional(_cell))
    symbol_centring: str | None = None

    @property
    def centring(self) -> str:
        """Lattice centring letter (P C I F R) of ``cell``: the lattice's own (C for oC, R for hR)."""
        return lattice_centring(self.bravais_lattice)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (the contract's ``candidates`` entries of ``xrdframe index --json``)."""
        a, b, c, alpha, beta, gamma = self.cell
        return {
            "crystal_system": self.crystal_system, "bravais_lattice": self.bravais_lattice,
            "a": a, "b": b, "c": c, "alpha": alpha, "beta": beta, "gamma": gamma, "volume": self.volume,
            "m20": self.m20, "f_n": self.f_n, "n_lines": self.n_lines, "lines_indexed": self.lines_indexed,
            "lines_total": self.lines_total, "zero_shift": self.zero_shift,
            "extinction_group": self.extinction_group, "extinction_symbol": self.extinction_symbol,
            "space_groups": list(self.space_groups), "extinction_likelihood": self.extinction_likelihood,
            "centring": self.centring, "symbol_cell": None if self.symbol_cell is None else list(self.symbol_cell),
            "symbol_centring": self.symbol_centring,
        }


@attrs.frozen
class Prediction:
    """An indexer's answer for one pattern; ``None`` where it does not predict a label.

    :ivar crystal_system: predicted crystal system.
    :ivar extinction_group: predicted extinction group id (0-100).
    :ivar space_group: predicted space group number (1-230).
    :ivar cell: predicted cell ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees.
    :ivar figure_of_merit: the indexer's own score of its answer (M20 for ``ntreor``).
    :ivar candidates: ranked cell candidates, best first (classical indexers).
    :ivar top_k: ranked ``(label, probability)`` pairs per label name (``'crystal_system'``,
        ``'extinction_group'``, ``'space_group'``) for probabilistic indexers.
    :ivar reason: why nothing (or less than asked) was predicted, for example ``'only 3 lines'``.
    :ivar seconds: wall time spent on this pattern.
    """

    crystal_system: str | None = None
    extinction_group: int | None = None
    space_group: int | None = None
    cell: Cell | None = attrs.field(default=None, converter=attrs.converters.optional(_cell))
    figure_of_merit: float | None = None
    candidates: tuple[CellCandidate, ...] = attrs.field(default=(), converter=tuple)
    top_k: dict[str, tuple[tuple[object, float], ...]] = attrs.field(factory=dict)
    reason: str | None = None
    seconds: float = 0.0

    @classmethod
    def empty(cls, reason: str, seconds: float = 0.0) -> Prediction:
        """No answer, and why."""
        return cls(reason=reason, seconds=seconds)


@runtime_checkable
class Indexer(Protocol):
    """What an ``indexer`` component's factory returns."""

    def predict(self, data: Pattern | ObservedPeaks) -> Prediction:
        """Predict symmetry (and, where the method can, the cell) of one pattern or peak list; never raises
        for a pattern the method cannot handle (returns :meth:`Prediction.empty` with the reason)."""
        ...


@runtime_checkable
class BatchIndexer(Protocol):
    """An indexer that can also predict many patterns at once (neural networks batch on the GPU/CPU).

    Callers (the ``evaluate`` and ``predict`` tasks) use ``predict_batch`` when an indexer has it,
    else call ``predict`` per pattern. The answers must equal ``predict`` one by one.
    """

    def predict_batch(self, data: Sequence[Pattern | ObservedPeaks]) -> list[Prediction]:
        """One :class:`Prediction` per input, in order; never raises for a pattern it cannot handle."""
        ...


@runtime_checkable
class TrainableIndexer(Protocol):
    """A learned indexer: the ``train`` task calls ``fit`` with the task's validated parameters.

    ``params`` is the :class:`xrdframe_tasks.train.TrainParams` of the spec (``data``, ``augmentations``,
    ``trainer``, ``indexer``); ``context`` the :class:`xrdframe.run.RunContext` (output directory, seed,
    progress). ``fit`` writes the trained model into ``context.output`` (safe formats only: safetensors,
    skops, JSON) together with the training spec and versions, and resumes from a checkpoint there.
    """

    def fit(self, params: Any, context: Any) -> None:
        """Train, writing checkpoints and the final model into ``context.output``."""
        ...
