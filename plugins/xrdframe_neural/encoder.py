"""The ``resnet1d`` encoder: a 1D ResNet over a powder profile, pooled to one feature vector.

A stem convolution (stride 2) and max pooling, then one stage per entry of ``widths``: ``depth`` residual
blocks (two convolutions of ``kernel`` taps, each followed by a normalization and a ReLU, with a skip
connection, He et al. 2016), the first block of every stage after the first halving the length (stride 2,
1x1 projection on the skip path). Pooling gives ``out_features`` numbers: global average (``avg``), average
and max (``avgmax``), or the average over each of ``segments`` equal 2theta ranges, concatenated
(``segments``): global pooling forgets *where* along 2theta a feature was seen, the segment means keep it to
1/``segments`` of the range, which the crystal system (ratios of peak positions) needs.

Normalization is per pattern by default (``group``: GroupNorm), so a pattern's features never depend on
the other patterns of its batch: training and inference behave alike, and a data-parallel run over several
processes computes the same thing as one process with the same global batch.

>>> import torch
>>> encoder = ResNet1d(ResNet1dParams(widths=[8, 16], depth=1, pooling="avg"))
>>> encoder(torch.zeros(3, 200)).shape, encoder.out_features
(torch.Size([3, 16]), 16)
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import nn

from xrdframe.component import param
from xrdframe.validators import positive

__all__ = ["ResNet1d", "ResNet1dParams"]


def positive_widths(instance: object, attribute: attrs.Attribute, value: list[int]) -> None:
    if not value or any(int(w) < 1 for w in value):
        raise ValueError(f"must be a non-empty list of positive channel counts, got {value}")


def _odd(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 1 or value % 2 == 0:
        raise ValueError(f"must be an odd number >= 1, got {value}")


@attrs.frozen
class ResNet1dParams:
    widths: list[int] = param(factory=lambda: [32, 64, 128, 256], doc="channels of each stage (one stage per "
                              "entry; every stage after the first halves the length)", validator=positive_widths)
    depth: int = param(2, doc="residual blocks per stage", validator=positive)
    kernel: int = param(7, doc="taps of the convolutions in the residual blocks (odd)", validator=_odd)
    stem_width: int = param(32, doc="channels of the stem convolution", validator=positive)
    stem_kernel: int = param(15, doc="taps of the stem convolution (stride 2, odd)", validator=_odd)
    stem_pool: bool = param(True, doc="max pooling (stride 2) after the stem")
    norm: Literal["group", "batch", "none"] = param(
        "group", doc="normalization after each convolution: 'group' (per pattern, GroupNorm), 'batch' "
                     "(BatchNorm; depends on the batch) or 'none'")
    pooling: Literal["avg", "avgmax", "segments"] = param(
        "segments", doc="pooling to the feature vector: global average; average and max concatenated (doubles "
                   "out_features); or the mean over each of 'segments' equal 2theta ranges, concatenated (keeps "
                   "positions; out_features = last width x segments)")
    segments: int = param(16, doc="2theta ranges of pooling 'segments'", validator=positive)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: str) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=pad, bias=norm == "none")
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=pad, bias=norm == "none")
        self.norm2 = _norm(norm, cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=norm == "none"), _norm(norm, cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.skip(x))


class ResNet1d(nn.Module):
    """A 1D ResNet: ``forward(profiles (B, L) or (B, 1, L)) -> features (B, out_features)``."""

    def __init__(self, params: ResNet1dParams | None = None) -> None:
        super().__init__()
        p = params or ResNet1dParams()
        self.params = p
        layers: list[nn.Module] = [nn.Conv1d(1, p.stem_width, p.stem_kernel, stride=2, padding=p.stem_kernel // 2,
                                             bias=p.norm == "none"), _norm(p.norm, p.stem_width), nn.ReLU(inplace=True)]
        if p.stem_pool:
            layers.append(nn.MaxPool1d(3, stride=2, padding=1))
        cin = p.stem_width
        for s, width in enumerate(p.widths):
            for b in range(p.depth):
                layers.append(_Block(cin, int(width), p.kernel, 2 if (b == 0 and s > 0) else 1, p.norm))
                cin = int(width)
        self.body = nn.Sequential(*layers)
        self.out_features = cin * {"avg": 1, "avgmax": 2, "segments": int(p.segments)}[p.pooling]
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for block in self.modules():  # zero-init the last norm of each block: every block starts as identity
            if isinstance(block, _Block) and isinstance(block.norm2, (nn.GroupNorm, nn.BatchNorm1d)):
                nn.init.zeros_(block.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        h = self.body(x)
        if self.params.pooling == "segments":
            return nn.functional.adaptive_avg_pool1d(h, int(self.params.segments)).flatten(1)
        if self.params.pooling == "avgmax":
            return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        return h.mean(dim=-1)
