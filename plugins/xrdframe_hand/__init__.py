"""The ``hand`` indexer: randomized decision trees on handcrafted peak features (after Suzuki et al.).

Modules: :mod:`.features` (the eleven features: the first ten peak positions and the number of peaks below
90 degrees, at Cu K-alpha 1.5418 Angstrom), :mod:`.model` (safe saving and loading: skops and JSON) and
:mod:`.indexer` (the component: training through task ``train``, prediction, the shipped default model in
``default/``). Documentation: ``docs/hand.md``.
"""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_indexers"]


@hookimpl
def xrdframe_indexers() -> list[Component]:
    from xrdframe_hand.indexer import Hand, HandParams

    return [Component("hand", Hand, HandParams,
                      "randomized trees (extra trees or random forest) on the first ten peak positions and the "
                      "peak count below 90 deg at Cu K-alpha: crystal system, extinction group and space group",
                      requires=("scikit-learn", "skops"))]
