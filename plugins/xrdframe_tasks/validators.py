"""Parameter validators shared by the built-in tasks."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["positive", "two_theta_range", "fractions"]


def positive(instance: Any, attribute: attrs.Attribute, value: float | int) -> None:
    if not value > 0:
        raise ValueError(f"must be > 0, got {value}")


def two_theta_range(instance: Any, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    lo, hi = value
    if not 0.0 <= lo < hi <= 180.0:
        raise ValueError(f"must be [min, max] degrees with 0 <= min < max <= 180, got [{lo}, {hi}]")


def fractions(instance: Any, attribute: attrs.Attribute, value: dict[str, float]) -> None:
    if not value:
        raise ValueError("must name at least one split")
    if any(not 0.0 <= v <= 1.0 for v in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
        raise ValueError(f"must be fractions in [0, 1] summing to 1, got {value}")
