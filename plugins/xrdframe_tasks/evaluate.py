"""``evaluate``: every indexer on every test set, identical inputs, one report.

Each test set is read (measured) or rendered (simulated, seeded by the run's seed) once; every indexer then
gets its own copy of the very same patterns. Files that cannot be read are listed (``skipped.csv``, the log,
``report.md``) and left out; an indexer that raises on a pattern gets that pattern recorded as ``failed``
and goes on with the next; an indexer that cannot even be built has every pattern recorded as failed.

Outputs (``output``, each written atomically): ``metrics.json`` (``{test_set: {indexer: {...}}}``, keys in
:func:`xrdframe.metrics.summarize`), ``predictions/<test_set>/<indexer>.csv``, ``skipped.csv``,
``report.md`` and ``figures/*.png`` (:mod:`xrdframe.report`).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from xrdframe.component import IndexerRef, PatternSourceRef, param
from xrdframe.dataset import write_csv_atomic
from xrdframe.errors import XrdframeError
from xrdframe.files import write_json_atomic
from xrdframe.indexing import Prediction
from xrdframe.metrics import LABELS, Outcome, cell_rmse, summarize
from xrdframe.pattern import ObservedPeaks, Pattern
from xrdframe.run import RunContext
from xrdframe.sources import LabelledPattern
from xrdframe.validators import optional_positive, positive

__all__ = ["PREDICTION_COLUMNS", "TRUE_COLUMNS", "Evaluate", "EvaluateParams", "PatternTimeout", "file_label",
           "outcome_rows", "read_source", "run_indexer", "time_limit", "truth_of"]

#: Columns of a predictions CSV (CONTRACT.md section 6), then the true labels, then what happened.
PREDICTION_COLUMNS = ("id", "crystal_system", "extinction_group", "space_group", "a", "b", "c", "alpha", "beta",
                      "gamma", "figure_of_merit")
TRUE_COLUMNS = ("true_crystal_system", "true_extinction_group", "true_space_group", "true_a", "true_b", "true_c",
                "true_alpha", "true_beta", "true_gamma")
STATUS_COLUMNS = ("lattice_rmse_length", "lattice_rmse_angle", "status", "reason", "seconds")


def _not_empty(instance: object, attribute: attrs.Attribute, value: dict) -> None:
    if not value:
        raise ValueError("must name at least one entry")


class PatternTimeout(BaseException):
    """Raised inside an indexer when it exceeds the task's ``timeout`` (a BaseException, so that an indexer's
    own ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`PatternTimeout` in the block after ``seconds`` of wall time (SIGALRM: the main thread of a
    Unix process; elsewhere, or with ``None``, no limit)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def _alarm(signum: int, frame: Any) -> None:
        raise PatternTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


@attrs.frozen
class EvaluateParams:
    test_sets: dict[str, PatternSourceRef] = param(doc="label -> pattern source (measured or simulated)",
                                                   validator=_not_empty)
    indexers: dict[str, IndexerRef] = param(doc="label -> indexer", validator=_not_empty)
    batch_size: int = param(64, validator=positive,
                            doc="patterns per predict_batch call, for indexers that predict in batches")
    figures: bool = param(True, doc="draw the PNG figures of report.md (confusion matrices, accuracy by crystal "
                                    "system, patterns with the predicted cells' peak ticks)")
    examples: int = param(3, validator=positive, doc="patterns per test set drawn with the predicted peak ticks")
    timeout: float | None = param(None, unit="s", validator=optional_positive,
                                  doc="wall time one indexer may spend on one pattern; beyond it the pattern is "
                                      "recorded as failed ('timed out') and the next one starts (null: no limit)")


# ----------------------------------------------------------------------------------------------- shared parts


def file_label(label: str) -> str:
    """A label made safe as a file name.

    >>> file_label("lab data/2024")
    'lab_data_2024'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "unnamed"


def truth_of(item: LabelledPattern) -> dict[str, Any]:
    """True crystal system, extinction group and space group of a labelled pattern (``None`` where unknown); an
    index without space group may still give the ``crystal_system``."""
    from xrdframe.symmetry import CRYSTAL_SYSTEMS, symmetry_labels

    if item.space_group is not None:
        labels = symmetry_labels(int(item.space_group))
        return {"crystal_system": labels.crystal_system, "extinction_group": labels.extinction_group,
                "space_group": int(item.space_group)}
    system = (item.extra or {}).get("crystal_system", "").strip().lower() or None
    return {"crystal_system": system if system in CRYSTAL_SYSTEMS else None, "extinction_group": None,
            "space_group": None}


def read_source(label: str, ref: PatternSourceRef, context: RunContext) -> list[LabelledPattern]:
    """Every pattern of a source (seeded by the run's seed), read once; unreadable files logged."""
    source = ref.build()
    try:
        total = source.count()
    except XrdframeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a source's own bug: one clear message
        raise XrdframeError(f"test set {label!r} ({ref.name}): {type(exc).__name__}: {exc}") from exc
    items: list[LabelledPattern] = []
    try:
        for item in context.progress(source.patterns(context.seed), total=total, desc=f"reading {label}"):
            items.append(item)
    except XrdframeError as exc:
        raise XrdframeError(f"test set {label!r} ({ref.name}): {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise XrdframeError(f"test set {label!r} ({ref.name}): {type(exc).__name__}: {exc}") from exc
    for item in items:
        if item.data is None:
            context.log.warning("[%s] %s: skipped %s: %s", context.stage, label, item.id, item.error)
    return items


def _copy(data: Any) -> Any:
    """The indexer's own copy of a pattern (an indexer that changes its input cannot change another's)."""
    if isinstance(data, Pattern):
        return attrs.evolve(data, two_theta=data.two_theta.copy(), intensity=data.intensity.copy(),
                            metadata=dict(data.metadata))
    if isinstance(data, ObservedPeaks):
        return attrs.evolve(data, two_theta=data.two_theta.copy())
    return data


def _ranked(prediction: Prediction) -> dict[str, list[Any]]:
    """Ranked answers per label: the indexer's ``top_k``, else its distinct candidates' labels, else its answer."""
    out: dict[str, list[Any]] = {}
    for label in LABELS:
        answer = getattr(prediction, label)
        ranked: list[Any] = []
        if prediction.top_k.get(label):
            ranked = [value for value, _ in prediction.top_k[label]]
        elif label != "space_group" and prediction.candidates:
            for candidate in prediction.candidates:
                value = getattr(candidate, label)
                if value is not None and value not in ranked:
                    ranked.append(value)
        if answer is not None and (not ranked or ranked[0] != answer):
            ranked = [answer, *[v for v in ranked if v != answer]]
        out[label] = ranked
    return out


def _centring(prediction: Prediction) -> str:
    from xrdframe.symmetry import symmetry_labels

    if prediction.candidates and prediction.cell is not None and tuple(prediction.candidates[0].cell) == \
            tuple(prediction.cell):
        return prediction.candidates[0].centring
    if prediction.space_group is not None:
        return symmetry_labels(int(prediction.space_group)).centring
    return "P"


def outcome_of(item: LabelledPattern, prediction: Prediction | None, seconds: float,
               failure: str | None = None) -> Outcome:
    """The :class:`Outcome` of one pattern: a prediction, or a failure message."""
    from xrdframe.symmetry import symmetry_labels

    true = truth_of(item)
    if prediction is None:
        return Outcome(item.id, status="failed", true=true, true_cell=item.cell, seconds=seconds, reason=failure)
    predicted = {label: getattr(prediction, label) for label in LABELS}
    answered = any(v is not None for v in predicted.values()) or prediction.cell is not None
    rmse = None
    centring = _centring(prediction) if prediction.cell is not None else "P"
    if (answered and prediction.cell is not None and item.cell is not None and true["crystal_system"] is not None
            and predicted["crystal_system"] == true["crystal_system"]):
        true_centring = symmetry_labels(int(item.space_group)).centring if item.space_group is not None else "P"
        try:
            rmse = cell_rmse(prediction.cell, item.cell, centring, true_centring)
        except Exception:  # noqa: BLE001 - a degenerate cell: no RMSE for this pattern
            rmse = None
    return Outcome(item.id, status="ok" if answered else "no_answer", true=true, predicted=predicted,
                   ranked=_ranked(prediction), true_cell=item.cell, cell=prediction.cell,
                   centring=centring, figure_of_merit=prediction.figure_of_merit, rmse=rmse, seconds=seconds,
                   reason=prediction.reason)


def _predict_one(indexer: Any, item: LabelledPattern, timeout: float | None = None) -> Outcome:
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            prediction = indexer.predict(_copy(item.data))
        if not isinstance(prediction, Prediction):
            raise TypeError(f"predict returned {type(prediction).__name__}, expected a Prediction")
    except PatternTimeout as exc:
        return outcome_of(item, None, time.perf_counter() - start, str(exc))
    except Exception as exc:  # noqa: BLE001 - one pattern's failure never aborts the run
        return outcome_of(item, None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return outcome_of(item, prediction, time.perf_counter() - start)


def run_indexer(indexer: Any, items: Sequence[LabelledPattern], context: RunContext, desc: str,
                batch_size: int = 64, build_error: str | None = None, timeout: float | None = None) -> list[Outcome]:
    """Outcomes of one indexer on the readable patterns of ``items`` (``predict_batch`` when the indexer has it,
    one pattern at a time otherwise; a failing batch is redone one pattern at a time). ``timeout``: seconds per
    pattern (a batch gets the sum), beyond which the pattern is recorded as failed."""
    usable = [item for item in items if item.data is not None]
    if build_error is not None:
        return [outcome_of(item, None, 0.0, build_error) for item in usable]
    outcomes: list[Outcome] = []
    bar = context.progress_bar(len(usable), desc)
    batch = getattr(indexer, "predict_batch", None)
    for start in range(0, len(usable), batch_size if callable(batch) else 1):
        chunk = usable[start:start + (batch_size if callable(batch) else 1)]
        if callable(batch):
            t0 = time.perf_counter()
            try:
                with time_limit(None if timeout is None else timeout * len(chunk)):
                    predictions = list(batch([_copy(item.data) for item in chunk]))
                if len(predictions) != len(chunk) or not all(isinstance(p, Prediction) for p in predictions):
                    raise TypeError(f"predict_batch returned {len(predictions)} items for {len(chunk)} patterns, "
                                    "expected one Prediction each")
            except (Exception, PatternTimeout):  # noqa: BLE001 - find the pattern that fails, one at a time
                outcomes.extend(_predict_one(indexer, item, timeout) for item in chunk)
            else:
                each = (time.perf_counter() - t0) / len(chunk)
                outcomes.extend(outcome_of(item, p, each) for item, p in zip(chunk, predictions, strict=True))
        else:
            outcomes.append(_predict_one(indexer, chunk[0], timeout))
        bar.advance(len(chunk))
    bar.close()
    return outcomes


def _number(value: Any, digits: int = 8) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def outcome_rows(items: Sequence[LabelledPattern], outcomes: Sequence[Outcome],
                 with_truth: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a predictions CSV: one row per item, unreadable files included (status ``skipped``)."""
    queue = iter(outcomes)  # one outcome per readable item, in order
    header = [*PREDICTION_COLUMNS, *(TRUE_COLUMNS if with_truth else ()), *STATUS_COLUMNS]
    rows = []
    for item in items:
        if item.data is not None:
            outcome = next(queue)
        else:  # an unreadable file
            outcome = Outcome(item.id, status="skipped", true=truth_of(item), true_cell=item.cell, reason=item.error)
        cell = outcome.cell or (None,) * 6
        row = [outcome.id, _number(outcome.predicted.get("crystal_system")),
               _number(outcome.predicted.get("extinction_group")), _number(outcome.predicted.get("space_group")),
               *(_number(v) for v in cell), _number(outcome.figure_of_merit)]
        if with_truth:
            true_cell = outcome.true_cell or (None,) * 6
            row += [_number(outcome.true.get("crystal_system")), _number(outcome.true.get("extinction_group")),
                    _number(outcome.true.get("space_group")), *(_number(v) for v in true_cell)]
        rmse = outcome.rmse or (None, None)
        row += [_number(rmse[0], 10), _number(rmse[1], 10), outcome.status,
                (outcome.reason or "").replace("\n", " "),
                "" if outcome.status == "skipped" else _number(round(outcome.seconds, 6))]
        rows.append(row)
    return header, rows


# ------------------------------------------------------------------------------------------------------ task


class Evaluate:
    """Compare indexers on test sets (metrics.json, predictions CSVs, skipped.csv, report.md, figures)."""

    def __init__(self, params: EvaluateParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        from xrdframe.report import write_report

        p = self.params
        out = context.output
        sets = {label: read_source(label, ref, context) for label, ref in p.test_sets.items()}
        indexers: dict[str, tuple[Any, str | None]] = {}
        for label, ref in p.indexers.items():
            try:
                indexers[label] = (ref.build(), None)
            except Exception as exc:  # noqa: BLE001 - recorded: every pattern of this indexer fails
                message = f"indexer {label!r} ({ref.name}) could not be built: {type(exc).__name__}: {exc}"
                context.log.error("[%s] %s", context.stage, message)
                indexers[label] = (None, message)
        if all(error is not None for _, error in indexers.values()):
            raise XrdframeError("no indexer could be built: " + "; ".join(e for _, e in indexers.values() if e))
        metrics: dict[str, dict[str, Any]] = {}
        runs: dict[str, dict[str, list[Outcome]]] = {}
        skipped_rows = []
        for set_label, items in sets.items():
            skipped = [item for item in items if item.data is None]
            skipped_rows += [[set_label, item.id, item.error or ""] for item in skipped]
            metrics[set_label], runs[set_label] = {}, {}
            with_truth = any(item.space_group is not None or item.cell is not None or truth_of(item)[
                "crystal_system"] for item in items)
            for ix_label, (indexer, error) in indexers.items():
                outcomes = run_indexer(indexer, items, context, f"{set_label} x {ix_label}", p.batch_size, error,
                                       p.timeout)
                runs[set_label][ix_label] = outcomes
                entry = summarize(outcomes, n_skipped=len(skipped))
                if error is not None:
                    entry["error"] = error
                metrics[set_label][ix_label] = entry
                header, rows = outcome_rows(items, outcomes, with_truth)
                write_csv_atomic(out / "predictions" / file_label(set_label) / f"{file_label(ix_label)}.csv",
                                 header, rows)
                context.log.info("[%s] %s x %s: n=%d, crystal system %s, extinction group %s, space group %s",
                                 context.stage, set_label, ix_label, entry["n"],
                                 *(_percent(entry[f"{k}_accuracy"]) for k in LABELS))
        write_json_atomic(out / "metrics.json", metrics)
        write_csv_atomic(out / "skipped.csv", ["test_set", "id", "error"], skipped_rows)
        write_report(out, metrics, runs, sets, seed=context.seed, figures=p.figures, examples=p.examples,
                     indexer_names={k: ref.name for k, ref in p.indexers.items()},
                     set_names={k: ref.name for k, ref in p.test_sets.items()})
        context.log.info("[%s] report: %s", context.stage, out / "report.md")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
