"""``train``: fit an indexer on a peak dataset, with augmentations."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from xrdframe.component import AugmentationRef, IndexerRef, param
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext
from xrdframe.validators import positive

__all__ = ["Train", "TrainParams", "TrainData", "TrainerParams"]


@attrs.frozen
class TrainData:
    path: Path = param(doc="a peak dataset directory (the output of task 'simulate')")
    train_split: str = param("train", doc="split used for fitting")
    val_split: str = param("val", doc="split used for validation, early stopping and calibration")


@attrs.frozen
class TrainerParams:
    epochs: int = param(10, doc="passes over the training split", validator=positive)
    batch_size: int = param(64, doc="patterns per optimisation step", validator=positive)
    learning_rate: float = param(1e-3, doc="optimiser step size", validator=positive)
    device: Literal["auto", "cpu", "cuda"] = param("auto", doc="'auto' uses a GPU where one exists")
    checkpoint_every: int = param(1, doc="write a resumable checkpoint every this many epochs",
                                  validator=positive)


@attrs.frozen
class TrainParams:
    data: TrainData = param(doc="the peak dataset and its splits")
    indexer: IndexerRef = param(doc="what is trained, with its own encoder / loss / heads in its params")
    augmentations: list[AugmentationRef] = param(factory=list, doc="operators applied in order")
    trainer: TrainerParams = param(factory=TrainerParams, doc="optimisation settings")


class Train:
    """Train an indexer: the indexer's ``fit`` does the work, the task wires it up."""

    def __init__(self, params: TrainParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        indexer = self.params.indexer.build()
        fit = getattr(indexer, "fit", None)
        if fit is None:
            raise XrdframeError(f"indexer {self.params.indexer.name!r} cannot be trained (it has no fit method)")
        fit(self.params, context)
