"""Representation losses on the embeddings of two augmented views of the same structures.

* ``barlow_twins`` (Zbontar et al. 2021): each embedding dimension is standardized over the batch, the
  cross-correlation matrix ``C = z_a^T z_b / N`` of the two views is driven to the identity:
  ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``.
* ``nt_xent`` (SimCLR, Chen et al. 2020): the 2N embeddings are L2-normalized; for each of them the other view
  of its structure is the positive and the remaining 2N - 2 embeddings are the negatives:
  ``-log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t))``, averaged over the 2N anchors.

Both are callables ``loss(z_a, z_b) -> scalar`` on (N, D) tensors.

>>> import torch
>>> z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
>>> bt = BarlowTwins(BarlowTwinsParams())
>>> bool(bt(z, z) < bt(z, torch.randn(16, 8)))
True
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from xrdframe.component import param
from xrdframe.validators import non_negative, positive

__all__ = ["BarlowTwins", "BarlowTwinsParams", "NtXent", "NtXentParams"]


@attrs.frozen
class BarlowTwinsParams:
    off_diagonal_weight: float = param(0.005, doc="lambda: weight of the off-diagonal (redundancy) terms",
                                       validator=non_negative)
    scale: float = param(1.0, doc="factor applied to the whole loss", validator=positive)
    eps: float = param(1e-5, doc="added to the variance when standardizing", validator=positive)


class BarlowTwins:
    """Barlow Twins' redundancy-reduction loss."""

    def __init__(self, params: BarlowTwinsParams | None = None) -> None:
        self.params = params or BarlowTwinsParams()

    def cross_correlation(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """(D, D) cross-correlation of the batch-standardized embeddings."""
        eps = self.params.eps
        n = z_a.shape[0]
        a = (z_a - z_a.mean(0)) / torch.sqrt(z_a.var(0, unbiased=False) + eps)
        b = (z_b - z_b.mean(0)) / torch.sqrt(z_b.var(0, unbiased=False) + eps)
        return a.T @ b / n

    def __call__(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        c = self.cross_correlation(z_a.float(), z_b.float())
        diag = torch.diagonal(c)
        on = (1.0 - diag).pow(2).sum()
        off = c.pow(2).sum() - diag.pow(2).sum()
        return self.params.scale * (on + self.params.off_diagonal_weight * off)


@attrs.frozen
class NtXentParams:
    temperature: float = param(0.1, doc="softmax temperature t of the cosine similarities", validator=positive)


class NtXent:
    """SimCLR's normalized temperature-scaled cross-entropy (2N - 2 negatives per positive pair)."""

    def __init__(self, params: NtXentParams | None = None) -> None:
        self.params = params or NtXentParams()

    def __call__(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        n = z_a.shape[0]
        z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
        logits = z @ z.T / self.params.temperature
        logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, target)
