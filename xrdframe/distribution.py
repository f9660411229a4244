"""Random parameters of augmentation operators: the law each one is drawn from, per pattern.

In a spec, a random parameter is written as

* a number: a fixed value (``zero_shift: {params: {shift: 0.05}}``);
* ``{uniform: [low, high]}``: uniform on [low, high];
* ``{log_uniform: [low, high]}``: uniform in log on [low, high] (both > 0);
* ``{normal: [mean, sd]}``: Gaussian;
* ``{choice: [a, b, ...]}``: one of the values, equally likely.

Draws are made with a :class:`torch.Generator`, one per pattern of a batch, so
a seed gives the same batch bit for bit. ``u`` lets a caller pass its own
uniform [0, 1) draws (Latin-hypercube sampling of jointly drawn parameters).

>>> import torch
>>> law = Distribution.parse({"uniform": [1.0, 3.0]})
>>> values = law.sample(1000, torch.Generator().manual_seed(0))
>>> bool(values.min() >= 1.0 and values.max() <= 3.0), law.support()
(True, (1.0, 3.0))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch

__all__ = ["KINDS", "Distribution", "latin_hypercube"]

#: Distribution kinds a spec may name.
KINDS = ("fixed", "uniform", "log_uniform", "normal", "choice")


@attrs.frozen
class Distribution:
    """The law of one random parameter."""

    kind: str
    values: tuple[float, ...]

    @classmethod
    def fixed(cls, value: float) -> Distribution:
        return cls("fixed", (float(value),))

    @classmethod
    def uniform(cls, low: float, high: float) -> Distribution:
        return cls.parse({"uniform": [low, high]})

    @classmethod
    def parse(cls, value: Any) -> Distribution:
        """A Distribution from spec data; raises ValueError/TypeError with a message for the user."""
        if isinstance(value, Distribution):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls("fixed", (float(value),))
        if not isinstance(value, Mapping) or len(value) != 1:
            raise TypeError("expected a number or one of {uniform: [low, high]}, {log_uniform: [low, high]}, "
                            f"{{normal: [mean, sd]}}, {{choice: [values]}}; got {value!r}")
        (kind, args), = value.items()
        if kind not in KINDS[1:]:
            raise ValueError(f"unknown distribution {kind!r}; expected one of: {', '.join(KINDS[1:])} "
                             "(or a number for a fixed value)")
        if not isinstance(args, (list, tuple)) or not args or not all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args):
            raise TypeError(f"{kind}: expected a list of numbers, got {args!r}")
        args = tuple(float(a) for a in args)
        if kind in ("uniform", "log_uniform", "normal") and len(args) != 2:
            raise ValueError(f"{kind}: expected 2 numbers, got {len(args)}")
        if kind in ("uniform", "log_uniform") and args[0] > args[1]:
            raise ValueError(f"{kind}: low must be <= high, got [{args[0]}, {args[1]}]")
        if kind == "log_uniform" and args[0] <= 0:
            raise ValueError(f"log_uniform: bounds must be > 0, got [{args[0]}, {args[1]}]")
        if kind == "normal" and args[1] < 0:
            raise ValueError(f"normal: sd must be >= 0, got {args[1]}")
        return cls(kind, args)

    def to_spec(self) -> float | dict[str, list[float]]:
        """The spec form of this law (inverse of :meth:`parse`)."""
        return self.values[0] if self.kind == "fixed" else {self.kind: list(self.values)}

    def support(self) -> tuple[float, float]:
        """Smallest interval holding every possible value (normal: mean +- 4 sd)."""
        if self.kind == "normal":
            mean, sd = self.values
            return (mean - 4.0 * sd, mean + 4.0 * sd)
        return (min(self.values), max(self.values))

    def sample(self, n: int, generator: torch.Generator, u: torch.Tensor | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` draws as a float32 tensor; ``u``: optional uniform [0, 1) draws to transform."""
        import torch  # imported here: validating a spec must not pay for importing torch
        if u is None and self.kind != "normal":
            u = torch.rand(n, generator=generator, dtype=torch.float64)
        if self.kind == "fixed":
            out = torch.full((n,), self.values[0], dtype=torch.float64)
        elif self.kind == "uniform":
            low, high = self.values
            out = low + (high - low) * u
        elif self.kind == "log_uniform":
            low, high = (math.log(v) for v in self.values)
            out = torch.exp(low + (high - low) * u)
        elif self.kind == "normal":
            mean, sd = self.values
            if u is None:
                out = mean + sd * torch.randn(n, generator=generator, dtype=torch.float64)
            else:
                out = mean + sd * math.sqrt(2.0) * torch.special.erfinv(2.0 * u.clamp(1e-12, 1 - 1e-12) - 1.0)
        else:  # choice
            index = torch.clamp((u * len(self.values)).long(), max=len(self.values) - 1)
            out = torch.tensor(self.values, dtype=torch.float64)[index]
        return out.to(device=device, dtype=torch.float32)


def latin_hypercube(n: int, dims: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, dims)`` uniform [0, 1) draws, stratified: each column has one draw in each of n equal strata.

    >>> import torch
    >>> u = latin_hypercube(8, 2, torch.Generator().manual_seed(1))
    >>> sorted((u[:, 0] * 8).long().tolist())
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    import torch
    jitter = torch.rand(n, dims, generator=generator, dtype=torch.float64)
    strata = torch.stack([torch.randperm(n, generator=generator) for _ in range(dims)], dim=1).to(torch.float64)
    return (strata + jitter) / n
