"""``predict``: one indexer on a set of patterns -> ``predictions.csv``.

Columns (CONTRACT.md section 6): ``id, crystal_system, extinction_group, space_group, a, b, c, alpha, beta,
gamma, figure_of_merit`` (empty where not predicted), then the true labels when the inputs have any
(``true_*``), then ``lattice_rmse_length, lattice_rmse_angle, status, reason, seconds``. A file that cannot be
read is a row with status ``skipped`` and the reason (also in ``skipped.csv`` and the log); an indexer that
raises on a pattern gives a row with status ``failed``. Neither stops the run.
"""

from __future__ import annotations

import attrs

from xrdframe.component import IndexerRef, PatternSourceRef, param
from xrdframe.dataset import write_csv_atomic
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext
from xrdframe.validators import optional_positive, positive

__all__ = ["Predict", "PredictParams"]


@attrs.frozen
class PredictParams:
    inputs: PatternSourceRef = param(doc="the patterns to index (a pattern_source)")
    indexer: IndexerRef = param(doc="the indexer that predicts")
    batch_size: int = param(64, validator=positive,
                            doc="patterns per predict_batch call, for indexers that predict in batches")
    timeout: float | None = param(None, unit="s", validator=optional_positive,
                                  doc="wall time the indexer may spend on one pattern; beyond it the pattern is "
                                      "recorded as failed ('timed out') (null: no limit)")


class Predict:
    """Run one indexer on every input pattern and write ``predictions.csv``."""

    def __init__(self, params: PredictParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        from xrdframe_tasks.evaluate import outcome_rows, read_source, run_indexer, truth_of

        p = self.params
        items = read_source("inputs", p.inputs, context)
        try:
            indexer = p.indexer.build()
        except XrdframeError:
            raise
        except Exception as exc:  # noqa: BLE001 - one clear message
            raise XrdframeError(f"indexer {p.indexer.name!r} could not be built: {type(exc).__name__}: {exc}") \
                from exc
        outcomes = run_indexer(indexer, items, context, f"predicting with {p.indexer.name}", p.batch_size,
                               timeout=p.timeout)
        with_truth = any(item.space_group is not None or item.cell is not None or truth_of(item)["crystal_system"]
                         for item in items)
        header, rows = outcome_rows(items, outcomes, with_truth)
        write_csv_atomic(context.output / "predictions.csv", header, rows)
        skipped = [[item.id, item.error or ""] for item in items if item.data is None]
        write_csv_atomic(context.output / "skipped.csv", ["id", "error"], skipped)
        counts = {status: sum(1 for o in outcomes if o.status == status) for status in ("ok", "no_answer", "failed")}
        context.log.info("[%s] %d patterns: %d answered, %d without answer, %d failed; %d files skipped -> %s",
                         context.stage, len(outcomes), counts["ok"], counts["no_answer"], counts["failed"],
                         len(skipped), context.output / "predictions.csv")
