"""Metrics of an evaluation: pure functions of true and predicted labels (no I/O, no indexer).

The ``evaluate`` task turns every (pattern, indexer) pair into an :class:`Outcome` and
:func:`summarize` turns the outcomes of one test set and one indexer into the ``metrics.json`` entry
(CONTRACT.md section 6). Definitions (docs/evaluation.md):

* an accuracy is the share of the patterns *with that true label* whose prediction equals it; a pattern
  the indexer gave no answer for, or failed on, counts as wrong; unreadable files are not patterns
  (they are counted in ``n_skipped_files``);
* an accuracy is ``None`` when no pattern has the true label, and, for the extinction and space group,
  when the indexer gave that label for no pattern of the set (it does not predict it);
* lattice RMSE: over the patterns whose crystal system is predicted correctly and that have both a
  reference and a predicted cell, the RMSE of the lengths (Angstrom) and of the angles (degrees) after
  the predicted cell is expressed in the setting of the reference (:func:`cell_rmse`).

>>> accuracy(["cubic", "cubic", "monoclinic"], ["cubic", None, "monoclinic"])
0.6666666666666666
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "LABELS",
    "TOP_K",
    "Outcome",
    "accuracy",
    "cell_rmse",
    "confusion_matrix",
    "mean_or_none",
    "per_class_accuracy",
    "share_below",
    "share_outside_crystal_system",
    "summarize",
    "top_k_accuracy",
]

#: The three symmetry labels, coarse to fine.
LABELS = ("crystal_system", "extinction_group", "space_group")
#: The k of the top-k accuracies.
TOP_K = (1, 2, 3, 5)
#: Thresholds of the "share of lattice RMSE under" metrics (Angstrom, degrees).
RMSE_LENGTH_THRESHOLD = 0.1
RMSE_ANGLE_THRESHOLD = 0.1

Cell = tuple[float, float, float, float, float, float]


@attrs.frozen
class Outcome:
    """What happened to one pattern with one indexer.

    :ivar status: ``ok`` (an answer), ``no_answer`` (the indexer gave none, ``reason`` says why),
        ``failed`` (the indexer raised; ``reason`` holds the exception) or ``skipped`` (the file could not be
        read; not counted as a pattern).
    :ivar true: true labels by name (``crystal_system``, ``extinction_group``, ``space_group``), ``None`` when
        unknown.
    :ivar predicted: predicted labels by name, ``None`` where not predicted.
    :ivar ranked: per label, the indexer's ranked answers, best first (for top-k accuracy).
    :ivar centring: lattice centring letter of the predicted ``cell`` (P A B C I F R).
    :ivar rmse: ``(lengths, angles)`` lattice RMSE when it is defined for this pattern, else ``None``.
    """

    id: str
    status: str = "ok"
    true: Mapping[str, Any] = attrs.field(factory=dict)
    predicted: Mapping[str, Any] = attrs.field(factory=dict)
    ranked: Mapping[str, Sequence[Any]] = attrs.field(factory=dict)
    true_cell: Cell | None = None
    cell: Cell | None = None
    centring: str = "P"
    figure_of_merit: float | None = None
    rmse: tuple[float, float] | None = None
    seconds: float = 0.0
    reason: str | None = None


def accuracy(true: Sequence[Any], predicted: Sequence[Any]) -> float | None:
    """Share of the items with a true label (not ``None``) whose prediction equals it; ``None`` if there is none.

    >>> accuracy([1, 2, None, 4], [1, 3, 3, None])
    0.3333333333333333
    >>> accuracy([None], [1]) is None
    True
    """
    pairs = [(t, p) for t, p in zip(true, predicted, strict=True) if t is not None]
    if not pairs:
        return None
    return sum(1 for t, p in pairs if p is not None and p == t) / len(pairs)


def per_class_accuracy(true: Sequence[Any], predicted: Sequence[Any],
                       classes: Iterable[Hashable] | None = None) -> dict[Any, dict[str, Any]]:
    """Per true class: ``n`` items, ``correct`` and ``accuracy`` (``None`` for a class without items).

    >>> per_class_accuracy(["a", "a", "b"], ["a", "b", "b"])
    {'a': {'n': 2, 'correct': 1, 'accuracy': 0.5}, 'b': {'n': 1, 'correct': 1, 'accuracy': 1.0}}
    """
    order = list(classes) if classes is not None else sorted({t for t in true if t is not None}, key=_sort_key)
    out: dict[Any, dict[str, Any]] = {c: {"n": 0, "correct": 0, "accuracy": None} for c in order}
    for t, p in zip(true, predicted, strict=True):
        if t is None:
            continue
        entry = out.setdefault(t, {"n": 0, "correct": 0, "accuracy": None})
        entry["n"] += 1
        entry["correct"] += int(p is not None and p == t)
    for entry in out.values():
        entry["accuracy"] = entry["correct"] / entry["n"] if entry["n"] else None
    return out


def confusion_matrix(true: Sequence[Any], predicted: Sequence[Any],
                     labels: Sequence[Any]) -> list[list[int]]:
    """Counts: row = true label (in ``labels`` order), column = predicted label, with one last column for
    "no prediction" (``None`` or a label not in ``labels``). Items without a true label in ``labels`` are left out.

    >>> confusion_matrix(["a", "a", "b"], ["a", "b", None], ["a", "b"])
    [[1, 1, 0], [0, 0, 1]]
    """
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * (len(labels) + 1) for _ in labels]
    for t, p in zip(true, predicted, strict=True):
        if t not in index:
            continue
        matrix[index[t]][index.get(p, len(labels)) if p is not None else len(labels)] += 1
    return matrix


def top_k_accuracy(true: Sequence[Any], ranked: Sequence[Sequence[Any]],
                   ks: Sequence[int] = TOP_K) -> dict[int, float | None]:
    """Per k: share of the items with a true label found among the first k ranked answers.

    >>> top_k_accuracy([1, 2, 3], [[1, 2], [3, 2], []], ks=(1, 2))
    {1: 0.3333333333333333, 2: 0.6666666666666666}
    """
    rows = [(t, list(r)) for t, r in zip(true, ranked, strict=True) if t is not None]
    if not rows:
        return {k: None for k in ks}
    return {k: sum(1 for t, r in rows if t in r[:k]) / len(rows) for k in ks}


def share_outside_crystal_system(space_groups: Sequence[int | None],
                                 crystal_systems: Sequence[str | None]) -> float | None:
    """Of the items with a predicted space group, the share whose space group is not of the predicted crystal
    system (an inconsistent answer); ``None`` when no space group is predicted.

    >>> share_outside_crystal_system([225, 14, None], ["cubic", "orthorhombic", "cubic"])
    0.5
    """
    from xrdframe.symmetry import crystal_system

    pairs = [(g, s) for g, s in zip(space_groups, crystal_systems, strict=True) if g is not None]
    if not pairs:
        return None
    return sum(1 for g, s in pairs if crystal_system(int(g)) != s) / len(pairs)


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """Mean of the finite values, ``None`` when there is none.

    >>> mean_or_none([1.0, None, 2.0]), mean_or_none([])
    (1.5, None)
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(kept) / len(kept) if kept else None


def share_below(values: Iterable[float | None], threshold: float) -> float | None:
    """Share of the values (``None`` left out) strictly below ``threshold``; ``None`` when there is none.

    >>> share_below([0.05, 0.2, None, 0.01], 0.1)
    0.6666666666666666
    """
    kept = [float(v) for v in values if v is not None]
    return sum(1 for v in kept if v < threshold) / len(kept) if kept else None


def _is_rhombohedral_axes(cell: Sequence[float]) -> bool:
    a, b, c, alpha, beta, gamma = cell
    return (math.isclose(a, b, rel_tol=1e-3) and math.isclose(b, c, rel_tol=1e-3)
            and math.isclose(alpha, beta, abs_tol=0.01) and math.isclose(beta, gamma, abs_tol=0.01)
            and abs(alpha - 90.0) > 0.01)


def cell_rmse(predicted: Sequence[float], true: Sequence[float], predicted_centring: str = "P",
              true_centring: str = "P") -> tuple[float, float]:
    """Lattice RMSE ``(lengths in Angstrom, angles in degrees)`` of a predicted cell against a reference, after
    expressing the predicted lattice in the setting of the reference (:func:`xrdframe.lattice.lattice_rmse`).

    Centrings are lattice letters (P A B C I F R); an R reference given on rhombohedral axes (a = b = c,
    alpha = beta = gamma != 90) is taken as primitive.

    >>> [round(x, 4) for x in cell_rmse((5.0, 5.0, 5.0, 90, 90, 90), (5.1, 5.1, 5.1, 90, 90, 90), "F", "F")]
    [0.1, 0.0]
    """
    from xrdframe.lattice import lattice_rmse

    if true_centring == "R" and _is_rhombohedral_axes(true):
        true_centring = "P"
    if predicted_centring == "R" and _is_rhombohedral_axes(predicted):
        predicted_centring = "P"
    result = lattice_rmse(predicted, true, predicted_centring, true_centring)
    return float(result.lengths), float(result.angles)


def _sort_key(value: Any) -> tuple[int, Any]:
    from xrdframe.symmetry import CRYSTAL_SYSTEMS

    if isinstance(value, str) and value in CRYSTAL_SYSTEMS:
        return (0, CRYSTAL_SYSTEMS.index(value))
    return (1, value) if isinstance(value, (int, float)) else (2, str(value))


def _json_key(value: Any) -> str:
    return str(value)


def summarize(outcomes: Sequence[Outcome], n_skipped: int | None = None) -> dict[str, Any]:
    """The ``metrics.json`` entry of one test set and one indexer (see the module docstring).

    ``n_skipped`` overrides the count of ``skipped`` outcomes (files that could not be read).

    >>> o = [Outcome("1", true={"crystal_system": "cubic"}, predicted={"crystal_system": "cubic"}, seconds=2.0),
    ...      Outcome("2", status="failed", true={"crystal_system": "cubic"}, seconds=1.0)]
    >>> m = summarize(o)
    >>> m["n"], m["crystal_system_accuracy"], m["space_group_accuracy"], m["seconds_per_pattern"], m["n_failed"]
    (2, 0.5, None, 1.5, 1)
    """
    from xrdframe.symmetry import CRYSTAL_SYSTEMS

    used = [o for o in outcomes if o.status != "skipped"]
    skipped = sum(1 for o in outcomes if o.status == "skipped") if n_skipped is None else n_skipped
    out: dict[str, Any] = {"n": len(used)}
    truth = {label: [o.true.get(label) for o in used] for label in LABELS}
    guess = {label: [o.predicted.get(label) for o in used] for label in LABELS}
    for label in LABELS:
        predicts = label == "crystal_system" or any(g is not None for g in guess[label])
        out[f"{label}_accuracy"] = accuracy(truth[label], guess[label]) if predicts else None
    rmse = [o.rmse for o in used if o.rmse is not None]
    out["lattice_rmse_length_mean"] = mean_or_none(r[0] for r in rmse)
    out["lattice_rmse_angle_mean"] = mean_or_none(r[1] for r in rmse)
    out["seconds_per_pattern"] = mean_or_none(o.seconds for o in used)
    out["n_labelled"] = sum(1 for t in truth["crystal_system"] if t is not None)
    out["n_skipped_files"] = skipped
    out["n_failed"] = sum(1 for o in used if o.status == "failed")
    out["n_no_answer"] = sum(1 for o in used if o.status == "no_answer")
    out["n_lattice"] = len(rmse)
    out["lattice_rmse_length_share_below_0.1"] = share_below((r[0] for r in rmse), RMSE_LENGTH_THRESHOLD)
    out["lattice_rmse_angle_share_below_0.1"] = share_below((r[1] for r in rmse), RMSE_ANGLE_THRESHOLD)
    out["space_group_outside_crystal_system"] = share_outside_crystal_system(guess["space_group"],
                                                                             guess["crystal_system"])
    top: dict[str, Any] = {}
    for label in LABELS:
        if out[f"{label}_accuracy"] is None:
            top[label] = None
            continue
        ranked = [list(o.ranked.get(label) or ([] if o.predicted.get(label) is None else [o.predicted[label]]))
                  for o in used]
        top[label] = {str(k): v for k, v in top_k_accuracy(truth[label], ranked).items()}
    out["top_k_accuracy"] = top
    out["per_class_accuracy"] = {
        label: {_json_key(k): v for k, v in per_class_accuracy(
            truth[label], guess[label], CRYSTAL_SYSTEMS if label == "crystal_system" else None).items()}
        for label in ("crystal_system", "extinction_group")}
    out["confusion_matrix"] = {"crystal_system": {
        "true": list(CRYSTAL_SYSTEMS), "predicted": [*CRYSTAL_SYSTEMS, "none"],
        "counts": confusion_matrix(truth["crystal_system"], guess["crystal_system"], CRYSTAL_SYSTEMS)}}
    return out
