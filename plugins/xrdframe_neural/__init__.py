"""Neural indexers: the ``resnet1d`` encoder, ``barlow_twins`` / ``nt_xent`` losses, ``cnn`` and ``difcon``.

Modules: :mod:`.encoder` (the 1D ResNet), :mod:`.losses` (representation losses), :mod:`.model` (heads,
checkpoint files), :mod:`.resample` (measured patterns onto a model's grid), :mod:`.trainer` (the training
loop: schedule, checkpoints and resuming, DDP) and :mod:`.indexer` (the components). See docs/neural.md.
"""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl

__all__ = ["xrdframe_encoders", "xrdframe_indexers", "xrdframe_representation_losses"]


@hookimpl
def xrdframe_encoders() -> list[Component]:
    from xrdframe_neural.encoder import ResNet1d, ResNet1dParams

    return [Component("resnet1d", ResNet1d, ResNet1dParams,
                      "1D ResNet over a powder profile (residual blocks, global pooling) -> a feature vector",
                      requires=("torch",))]


@hookimpl
def xrdframe_representation_losses() -> list[Component]:
    from xrdframe_neural.losses import BarlowTwins, BarlowTwinsParams, NtXent, NtXentParams

    return [Component("barlow_twins", BarlowTwins, BarlowTwinsParams,
                      "Barlow Twins: cross-correlation of batch-standardized embeddings driven to the identity",
                      requires=("torch",)),
            Component("nt_xent", NtXent, NtXentParams,
                      "SimCLR's NT-Xent: normalized temperature-scaled cross-entropy, 2N-2 negatives per pair",
                      requires=("torch",))]


@hookimpl
def xrdframe_indexers() -> list[Component]:
    from xrdframe_neural.indexer import Cnn, CnnParams, Difcon, DifconParams

    return [Component("cnn", Cnn, CnnParams,
                      "1D ResNet with crystal-system, extinction-group and space-group heads (CNN static / aug)",
                      requires=("torch",)),
            Component("difcon", Difcon, DifconParams,
                      "DIFCON: the CNN trained jointly with a contrastive representation head on two views",
                      requires=("torch",))]
