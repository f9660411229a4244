"""Building components from Python exactly as a spec would."""

from __future__ import annotations

from typing import Any

from xrdframe.component import KINDS, ref_class_for_kind
from xrdframe.errors import Problem, SpecError, did_you_mean
from xrdframe.spec.validation import structure, using_registry

__all__ = ["create", "resolve"]


def resolve(kind: str, name: str, registry: Any = None, **params: Any) -> Any:
    """Validate ``params`` for component ``name`` of ``kind``; return its ComponentRef.

    :raises SpecError: unknown kind or name, or invalid parameters (all listed).
    """
    if registry is None:
        from xrdframe.plugin.manager import get_registry

        registry = get_registry()
    label = f"create({kind!r}, {name!r})"
    if kind not in KINDS:
        raise SpecError([Problem((), f"unknown component kind {kind!r}{did_you_mean(kind, KINDS)}; "
                                     f"kinds: {', '.join(KINDS)}")], source=label)
    with using_registry(registry):
        ref, problems = structure({"name": name, "params": params}, ref_class_for_kind(kind))
    if problems:
        raise SpecError(problems, source=label)
    return ref


def create(kind: str, name: str, **params: Any) -> Any:
    """Create component ``name`` of ``kind`` with ``params``, as a spec would build it.

    Parameters are validated like a spec's ``params`` (types, unknown keys,
    nested components given as ``{"name": ..., "params": {...}}``).

    :raises SpecError: with every problem found.
    """
    return resolve(kind, name, **params).build()
