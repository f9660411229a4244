"""attrs validators for component parameters, with messages meant for spec authors.

Each raises ``ValueError`` with a message that completes the parameter's path,
e.g. ``$.params.sigma: must be >= 0 for every draw, but {uniform: [-1, 1]} reaches -1``.

>>> import attrs
>>> from xrdframe import param
>>> @attrs.frozen
... class P:
...     width: float = param(1.0, doc="a width", validator=positive)
>>> P(width=-1.0)
Traceback (most recent call last):
...
ValueError: must be > 0, got -1.0
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from xrdframe.distribution import Distribution

__all__ = [
    "fractions",
    "law_at_least",
    "law_non_negative",
    "law_positive",
    "law_text",
    "non_negative",
    "optional_positive",
    "positive",
    "probability",
    "two_theta_range",
]


def positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """The value is > 0."""
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")


def non_negative(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """The value is >= 0."""
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")


def optional_positive(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    """The value is null or a finite number > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be null or > 0, got {value}")


def probability(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """The value is a probability in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be a probability in [0, 1], got {value}")


def two_theta_range(instance: Any, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    """``[min, max]`` degrees with ``0 <= min < max <= 180``."""
    lo, hi = value
    if not 0.0 <= lo < hi <= 180.0:
        raise ValueError(f"must be [min, max] degrees with 0 <= min < max <= 180, got [{lo}, {hi}]")


def fractions(instance: Any, attribute: attrs.Attribute, value: dict[str, float]) -> None:
    """Named fractions in [0, 1] summing to 1."""
    if not value:
        raise ValueError("must name at least one split")
    if any(not 0.0 <= v <= 1.0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
        raise ValueError(f"must be fractions in [0, 1] summing to 1, got {value}")


def law_text(law: Distribution) -> str:
    """A Distribution as a spec writes it: ``{uniform: [0, 0.1]}`` or ``0.5``."""
    spec = law.to_spec()
    if isinstance(spec, dict):
        ((kind, values),) = spec.items()
        return f"{{{kind}: [{', '.join(f'{v:g}' for v in values)}]}}"
    return f"{spec:g}"


def law_at_least(bound: float, strict: bool = False) -> Any:
    """A validator: every draw of the Distribution is >= ``bound`` (> with ``strict``)."""

    def check(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
        low = value.support()[0]
        if low < bound or (strict and low == bound):
            relation = ">" if strict else ">="
            raise ValueError(f"must be {relation} {bound:g} for every draw, but {law_text(value)} reaches {low:g}")

    return check


#: Every draw >= 0.
law_non_negative = law_at_least(0.0)
#: Every draw > 0.
law_positive = law_at_least(0.0, strict=True)
