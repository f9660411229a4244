"""A small plugin used by the tests: a task, an indexer with a nested encoder, an augmentation.

It is installed into a temporary folder as a fake distribution (``*.dist-info``
with ``entry_points.txt``) by the ``fake_site`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import attrs

from xrdframe.component import Component, EncoderRef, param
from xrdframe.errors import XrdframeError
from xrdframe.plugin import hookimpl


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")


@attrs.frozen
class ToyEncoderParams:
    width: int = param(8, doc="feature width", validator=_positive)


@attrs.frozen
class ToyIndexerParams:
    encoder: EncoderRef = param(doc="the encoder")
    checkpoint: str | None = param(None, doc="a checkpoint path")


@attrs.frozen
class ToyShiftParams:
    mode: Literal["uniform", "fixed"] = param("uniform", doc="how the shift is drawn")
    amount: float = param(0.1, doc="shift", unit="deg")


@attrs.frozen
class ToyCountParams:
    value: int = param(doc="number written to count.json")
    source: str | None = param(None, doc="an earlier output folder whose count.json is added")
    fail: bool = param(False, doc="fail with a runtime error")
    crash: bool = param(False, doc="raise an unexpected exception")


class ToyCount:
    """Write ``count.json`` = value (+ the value found in ``source``); append to ``runs.log``."""

    def __init__(self, params: ToyCountParams) -> None:
        self.params = params

    def run(self, context) -> None:
        if self.params.fail:
            raise XrdframeError("toy failure as requested")
        if self.params.crash:
            raise RuntimeError("toy crash")
        total = self.params.value
        if self.params.source is not None:
            total += json.loads((Path(self.params.source) / "count.json").read_text())["value"]
        (context.output / "count.json").write_text(json.dumps({"value": total, "seed": context.seed}))
        with open(context.output.parent / "runs.log", "a") as log:
            log.write(context.stage + "\n")


@hookimpl
def xrdframe_tasks():
    return [Component("toy_count", ToyCount, ToyCountParams, "write a number")]


@hookimpl
def xrdframe_encoders():
    return [Component("toy_encoder", lambda p: ("encoder", p.width), ToyEncoderParams, "a toy encoder")]


@hookimpl
def xrdframe_indexers():
    return [Component("toy_indexer", lambda p: ("indexer", p.encoder.build(), p.checkpoint), ToyIndexerParams,
                      "a toy indexer")]


@hookimpl
def xrdframe_augmentations():
    return [Component("toy_shift", lambda p: ("shift", p.mode, p.amount), ToyShiftParams, "a toy shift")]
