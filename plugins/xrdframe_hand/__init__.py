"""The ``hand`` indexer: randomized decision trees on handcrafted peak features (after Suzuki et al.)."""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_indexers"]


@hookimpl
def xrdframe_indexers() -> list[Component]:
    return []
