"""Augmentation operators (being written)."""

from __future__ import annotations

from xrdframe.component import Component

COMPONENTS: list[Component] = []
