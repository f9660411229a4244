"""Built-in tasks: ``simulate``, ``merge``, ``train``, ``evaluate`` and ``predict``.

The core knows no task: these register through the ``xrdframe`` entry point
``tasks`` like any third-party task would.
"""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl
from xrdframe_tasks.evaluate import Evaluate, EvaluateParams
from xrdframe_tasks.merge import Merge, MergeParams
from xrdframe_tasks.predict import Predict, PredictParams
from xrdframe_tasks.preview import Preview, PreviewParams
from xrdframe_tasks.simulate import Simulate, SimulateParams
from xrdframe_tasks.train import Train, TrainParams

__all__ = ["xrdframe_tasks"]


@hookimpl
def xrdframe_tasks() -> list[Component]:
    return [
        Component("simulate", Simulate, SimulateParams,
                  "structures -> a peak dataset (Bragg peaks with intensities) with train/val/test splits"),
        Component("train", Train, TrainParams, "train an indexer on a peak dataset with augmentations"),
        Component("evaluate", Evaluate, EvaluateParams,
                  "compare indexers on test sets: metrics.json, predictions, report.md"),
        Component("predict", Predict, PredictParams, "run one indexer on patterns: predictions.csv"),
        Component("merge", Merge, MergeParams, "join the partial peak datasets of a run spread over machines"),
        Component("preview", Preview, PreviewParams,
                  "one structure through the augmentation operators one at a time, as a figure"),
    ]
