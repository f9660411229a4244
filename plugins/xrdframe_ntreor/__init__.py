"""The ``ntreor`` indexer: trial-and-error indexing of powder peak positions in the manner of (N-)TREOR.

Modules: :mod:`.merit` (M20, F_N), :mod:`.systems` (free Q coefficients per crystal system), :mod:`.refine`
(indexing, least squares with a zero shift, centring, axis halving, zones), :mod:`.search` (the search itself:
:func:`xrdframe_ntreor.search.search`), :mod:`.extinction` (extinction groups from the missing reflection
classes) and :mod:`.indexer` (the component: peak picking, search, reduction to the conventional cell, ranking).
"""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_indexers"]


@hookimpl
def xrdframe_indexers() -> list[Component]:
    from xrdframe_ntreor.indexer import Ntreor, NtreorParams

    return [Component("ntreor", Ntreor, NtreorParams,
                      "classical trial-and-error indexing (N-TREOR) of picked peaks, ranked by M20, with the "
                      "extinction group from the missing reflection classes")]
