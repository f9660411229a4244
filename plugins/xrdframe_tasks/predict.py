"""``predict``: one indexer on a set of patterns -> predictions.csv."""

from __future__ import annotations

import attrs

from xrdframe.component import IndexerRef, PatternSourceRef, param
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext

__all__ = ["Predict", "PredictParams"]


@attrs.frozen
class PredictParams:
    inputs: PatternSourceRef = param(doc="the patterns to index (a pattern_source)")
    indexer: IndexerRef = param(doc="the indexer that predicts")


class Predict:
    """Run one indexer on every input pattern and write ``predictions.csv``."""

    def __init__(self, params: PredictParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        raise XrdframeError("task 'predict' cannot run yet: predictions.csv writing is not implemented in "
                            "this version (validation of predict specs works)")
