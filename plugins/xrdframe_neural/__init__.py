"""Neural indexers: the ``resnet1d`` encoder, ``barlow_twins`` / ``nt_xent`` losses, ``cnn`` and ``difcon``."""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_indexers"]


@hookimpl
def xrdframe_indexers() -> list[Component]:
    return []
