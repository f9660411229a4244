"""Component descriptors: what a plugin provides, and references to components in specs.

A *component* is one named, configurable piece of a pipeline: an augmentation
operator, an encoder, an indexer, a task, ... Plugins describe their components
with :class:`Component` descriptors returned from the ``xrdframe_*`` hooks (see
:mod:`xrdframe.plugin.spec`). A spec refers to a component as
``{name: NAME, params: {...}}``; once validated that mapping becomes a
:class:`ComponentRef` holding the component and its structured parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

__all__ = [
    "KINDS",
    "Component",
    "ComponentRef",
    "AugmentationRef",
    "EncoderRef",
    "RepresentationLossRef",
    "IndexerRef",
    "StructureSourceRef",
    "PatternSourceRef",
    "TaskRef",
    "NoParams",
    "param",
    "ref_class_for_kind",
]

#: Every component kind, mapped to the hook that declares components of that kind.
KINDS: Mapping[str, str] = {
    "augmentation": "xrdframe_augmentations",
    "encoder": "xrdframe_encoders",
    "representation_loss": "xrdframe_representation_losses",
    "indexer": "xrdframe_indexers",
    "structure_source": "xrdframe_structure_sources",
    "pattern_source": "xrdframe_pattern_sources",
    "task": "xrdframe_tasks",
}


@attrs.frozen
class NoParams:
    """Parameter class of a component that takes no parameters."""


def param(default: Any = attrs.NOTHING, *, doc: str, unit: str | None = None,
          validator: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """Declare one component parameter as an attrs field with documentation.

    ``doc`` is shown by ``xrdframe describe``; ``unit`` (for example ``"deg"`` or
    ``"Angstrom"``) is appended to it.
    """
    metadata = {"doc": doc, "unit": unit}
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, metadata=metadata)
    return attrs.field(default=default, validator=validator, metadata=metadata)


@attrs.frozen
class Component:
    """Descriptor of one component provided by a plugin.

    :param name: the name specs use (``{name: NAME}``); lower case, ``[a-z0-9_]``.
    :param factory: called as ``factory(params)`` with an instance of ``params``;
        returns the component object (an operator, a module, a task, ...).
    :param params: an attrs class of the component's parameters, with types,
        defaults and validators; :class:`NoParams` when there are none.
    :param summary: one line shown by ``xrdframe describe`` and ``xrdframe plugins --json``.
    :param requires: optional requirements in words (for example ``("torch",)``),
        shown by ``describe``.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[a-z][a-z0-9_]*$"))
    factory: Callable[[Any], Any] = attrs.field(validator=attrs.validators.is_callable())
    params: type = attrs.field(default=NoParams)
    summary: str = ""
    requires: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @params.validator
    def _check_params(self, attribute: attrs.Attribute, value: type) -> None:
        if not (isinstance(value, type) and attrs.has(value)):
            raise TypeError(f"Component {self.name!r}: params must be an attrs class, got {value!r}")


@attrs.frozen
class ComponentRef:
    """A validated reference to a component: its descriptor and structured params.

    Subclasses fix :attr:`kind`; use them as field types in parameter classes,
    for example ``encoder: EncoderRef`` in an indexer's params, so that a spec's
    ``{name, params}`` mapping is resolved and validated recursively.
    """

    kind: ClassVar[str] = ""
    name: str
    params: Any
    component: Component = attrs.field(eq=False, repr=False)
    provider: str = attrs.field(default="", eq=False, repr=False)

    def build(self) -> Any:
        """Create the component object: ``component.factory(params)``."""
        return self.component.factory(self.params)

    def to_spec(self) -> dict[str, Any]:
        """The ``{name, params}`` mapping a spec would contain (defaults filled)."""
        from xrdframe.spec.validation import unstructure

        return {"name": self.name, "params": unstructure(self.params)}


def _ref(kind: str, doc: str) -> type[ComponentRef]:
    cls = type(
        "".join(part.capitalize() for part in kind.split("_")) + "Ref",
        (ComponentRef,),
        {"kind": kind, "__doc__": doc, "__module__": __name__},
    )
    return cls


AugmentationRef = _ref("augmentation", "Reference to an ``augmentation`` component.")
EncoderRef = _ref("encoder", "Reference to an ``encoder`` component.")
RepresentationLossRef = _ref("representation_loss", "Reference to a ``representation_loss`` component.")
IndexerRef = _ref("indexer", "Reference to an ``indexer`` component.")
StructureSourceRef = _ref("structure_source", "Reference to a ``structure_source`` component.")
PatternSourceRef = _ref("pattern_source", "Reference to a ``pattern_source`` component.")
TaskRef = _ref("task", "Reference to a ``task`` component.")

_REF_BY_KIND = {cls.kind: cls for cls in (AugmentationRef, EncoderRef, RepresentationLossRef, IndexerRef,
                                           StructureSourceRef, PatternSourceRef, TaskRef)}


def ref_class_for_kind(kind: str) -> type[ComponentRef]:
    """The :class:`ComponentRef` subclass for ``kind``."""
    return _REF_BY_KIND[kind]
