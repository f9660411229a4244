"""Built-in augmentation operators: from Bragg peaks to realistic full profiles.

Peak-stage operators live in :mod:`xrdframe_augment.peak_operators`, the
renderer and the profile-stage operators in :mod:`xrdframe_augment.profile_operators`.
"""

from __future__ import annotations

from xrdframe.component import Component
from xrdframe.plugin import hookimpl
from xrdframe_augment import peak_operators, profile_operators

__all__ = ["xrdframe_augmentations"]


@hookimpl
def xrdframe_augmentations() -> list[Component]:
    return [*peak_operators.COMPONENTS, *profile_operators.COMPONENTS]
