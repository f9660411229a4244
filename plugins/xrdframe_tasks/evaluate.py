"""``evaluate``: every indexer on every test set, identical inputs, one report."""

from __future__ import annotations

import attrs

from xrdframe.component import IndexerRef, PatternSourceRef, param
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext

__all__ = ["Evaluate", "EvaluateParams"]


def _not_empty(instance: object, attribute: attrs.Attribute, value: dict) -> None:
    if not value:
        raise ValueError("must name at least one entry")


@attrs.frozen
class EvaluateParams:
    test_sets: dict[str, PatternSourceRef] = param(doc="label -> pattern source (measured or simulated)",
                                                   validator=_not_empty)
    indexers: dict[str, IndexerRef] = param(doc="label -> indexer", validator=_not_empty)


class Evaluate:
    """Compare indexers on test sets (metrics.json, predictions CSVs, report.md)."""

    def __init__(self, params: EvaluateParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        raise XrdframeError("task 'evaluate' cannot run yet: the evaluation metrics and reports are not "
                            "implemented in this version (validation of evaluate specs works)")
