"""Structuring plain data into attrs parameter classes, collecting every problem.

The converter is strict: an integer field takes only integers (not ``"5"``,
``5.5`` or ``true``), a float field takes integers and floats, a string field
only strings. Unknown keys are errors. A field typed with a
:class:`~xrdframe.component.ComponentRef` subclass takes ``{name, params}``: the
name is looked up in the plugin registry and ``params`` is structured into that
component's own parameter class, recursively. attrs validators run after
structuring, each on its own field, so a bad value is reported at its path.
"""

from __future__ import annotations

import collections.abc
import contextvars
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from xrdframe.component import ComponentRef
from xrdframe.distribution import Distribution
from xrdframe.errors import Problem, did_you_mean

__all__ = ["kind_of", "structure", "unstructure", "converter", "using_registry", "describe_type", "resolved_fields"]

_registry_var: contextvars.ContextVar[Any] = contextvars.ContextVar("xrdframe_registry", default=None)


class using_registry:
    """Context manager: structure component references against ``registry``."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def __enter__(self) -> Any:
        self._token = _registry_var.set(self.registry)
        return self.registry

    def __exit__(self, *exc: object) -> None:
        _registry_var.reset(self._token)


def _registry() -> Any:
    reg = _registry_var.get()
    if reg is None:
        from xrdframe.plugin.manager import get_registry

        reg = get_registry()
    return reg


def resolved_fields(cls: type) -> tuple[attrs.Attribute, ...]:
    """The attrs fields of ``cls`` with string annotations resolved to types."""
    attrs.resolve_types(cls)
    return attrs.fields(cls)


def describe_type(tp: Any) -> str:
    """A short, readable name of a type annotation (``list[float]``, ``encoder``)."""
    if isinstance(tp, type) and issubclass(tp, ComponentRef):
        return f"{tp.kind} component"
    if tp is Distribution:
        return "distribution (a number, {uniform: [low, high]}, {log_uniform: ...}, {normal: ...}, {choice: [...]})"
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(describe_type(a) for a in typing.get_args(tp))
        name = getattr(origin, "__name__", str(origin))
        if name == "UnionType" or origin is typing.Union:
            return " | ".join(describe_type(a) for a in typing.get_args(tp))
        return f"{name}[{args}]"
    return getattr(tp, "__name__", str(tp))


_TYPE_WORDS = {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path", type(None): "null"}


def kind_of(value: Any) -> str:
    """A word for the type of a plain value: integer, number, string, mapping, ..."""
    return _kind_of(value)


def _kind_of(value: Any) -> str:
    return _TYPE_WORDS.get(type(value), type(value).__name__ if not isinstance(value, Mapping) else "mapping")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {_show(value)} ({_kind_of(value)})")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {_show(value)} ({_kind_of(value)})")
    return float(value)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {_show(value)} ({_kind_of(value)})")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_show(value)} ({_kind_of(value)})")
    return value


def _path(value: Any, _: type) -> Path:
    if not isinstance(value, str):
        raise TypeError(f"expected a path (string), got {_show(value)} ({_kind_of(value)})")
    return Path(value)


def _literal(value: Any, tp: Any) -> Any:
    choices = typing.get_args(tp)
    if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices if c == value):
        raise ValueError(f"expected one of {', '.join(repr(c) for c in choices)}, got {_show(value)}"
                         f"{did_you_mean(str(value), [str(c) for c in choices])}")
    return value


def _is_fixed_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and bool(args) and Ellipsis not in args


def _fixed_tuple(value: Any, tp: Any) -> tuple:
    args = typing.get_args(tp)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of {len(args)} ({', '.join(describe_type(a) for a in args)}), "
                        f"got {_show(value)} ({_kind_of(value)})")
    if len(value) != len(args):
        raise ValueError(f"expected a list of {len(args)} values, got {len(value)}: {_show(list(value))}")
    return tuple(converter.structure(v, a) for v, a in zip(value, args, strict=True))


def _component_ref(value: Any, cls: type[ComponentRef]) -> ComponentRef:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a {cls.kind} component {{name: NAME, params: {{...}}}}, "
                        f"got {_show(value)} ({_kind_of(value)})")
    errors: list[Exception] = []
    extra = set(value) - {"name", "params"}
    if extra:
        errors.append(ForbiddenExtraKeysError("", cls, extra))
    name = value.get("name")
    registered = None
    if "name" not in value:
        errors.append(_noted(KeyError("name"), "name"))
    elif not isinstance(name, str):
        errors.append(_noted(TypeError(f"expected a component name (string), got {_show(name)}"), "name"))
    else:
        try:
            registered = _registry().lookup(cls.kind, name)
        except LookupError as exc:
            errors.append(_noted(_UserMessage(str(exc)), "name"))
    params = None
    if registered is not None:
        raw = value.get("params")
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            errors.append(_noted(TypeError(f"expected a mapping of parameters, got {_show(raw)}"), "params"))
        else:
            try:
                params = converter.structure(raw, registered.component.params)
            except Exception as exc:  # noqa: BLE001 - collected and reported with its path
                errors.append(_noted(exc, "params"))
                found = list(_problems(exc, ()))
                for problem in _validate_partial(raw, registered.component.params, (), found):
                    errors.append(_noted(_Located(problem.path, problem.message), "params"))
    if errors:
        raise ClassValidationError(f"While structuring {cls.kind} component", errors, cls)
    assert registered is not None
    return cls(name=name, params=params, component=registered.component, provider=registered.plugin.name)


class _UserMessage(ValueError):
    """An error whose message is shown as it is."""


class _Located(ValueError):
    """A problem found below the point where it is raised, with its relative path."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def _noted(exc: Exception, name: str) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", []), AttributeValidationNote(f"@ {name}", name, Any)]
    return exc


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) in (list, collections.abc.Sequence)


def _list(value: Any, tp: Any) -> list:
    """A list field takes a list (never a string, whose characters would become items)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list, got {_show(value)} ({_kind_of(value)})")
    (item_type,) = typing.get_args(tp) or (Any,)
    out, errors = [], []
    for i, item in enumerate(value):
        try:
            out.append(converter.structure(item, item_type))
        except Exception as exc:  # noqa: BLE001 - collected with the index
            exc.__notes__ = [*getattr(exc, "__notes__", []), IterableValidationNote(f"@ index {i}", i, item_type)]
            errors.append(exc)
    if errors:
        raise IterableValidationError(f"While structuring {describe_type(tp)}", errors, tp)
    return out


def _distribution(value: Any, _: type) -> Distribution:
    return Distribution.parse(value)


def _unstructure_ref(ref: ComponentRef) -> dict[str, Any]:
    return {"name": ref.name, "params": converter.unstructure(ref.params)}


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(Path, _path)
    conv.register_unstructure_hook(Path, str)
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal)
    conv.register_structure_hook_func(_is_fixed_tuple, _fixed_tuple)
    conv.register_structure_hook_func(_is_list, _list)
    conv.register_structure_hook(Distribution, _distribution)
    conv.register_unstructure_hook(Distribution, Distribution.to_spec)
    is_ref = lambda t: isinstance(t, type) and issubclass(t, ComponentRef)  # noqa: E731
    conv.register_structure_hook_func(is_ref, _component_ref)
    conv.register_unstructure_hook_func(is_ref, _unstructure_ref)
    return conv


converter = _make_converter()


def unstructure(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for an attrs object, as a spec would hold it."""
    return converter.unstructure(obj)


def structure(data: Any, cls: type, path: tuple[str | int, ...] = ()) -> tuple[Any, list[Problem]]:
    """Structure ``data`` into ``cls``; return the object (or None) and every problem.

    Type problems and unknown names are found by cattrs with validators off; then
    each attrs validator runs on its own field so its message keeps its path.
    """
    if data is None and attrs.has(cls):
        data = {}
    if attrs.has(cls) and not isinstance(data, Mapping):
        return None, [Problem(path, f"expected a mapping, got {_show(data)} ({_kind_of(data)})")]
    try:
        with attrs.validators.disabled():
            obj = converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - every problem is reported
        problems = list(_problems(exc, path, cls))
        return None, problems + list(_validate_partial(data, cls, path, problems))
    problems = list(_validate(obj, path))
    return (obj if not problems else None), problems


def _validate_partial(data: Any, cls: type, path: tuple[str | int, ...],
                      found: list[Problem]) -> Iterator[Problem]:
    """Run the validators of the fields that structured cleanly when siblings did not."""
    if not (attrs.has(cls) and isinstance(data, Mapping)):
        return
    bad = [p.path for p in found]
    for field in resolved_fields(cls):
        here = path + (field.name,)
        if field.name not in data:
            continue
        if any(b[: len(here)] == here or here[: len(b)] == b for b in bad):
            if attrs.has(field.type) and isinstance(data[field.name], Mapping):
                yield from _validate_partial(data[field.name], field.type, here, found)
            continue
        try:
            with attrs.validators.disabled():
                value = converter.structure(data[field.name], field.type)
        except Exception:  # noqa: BLE001 - already reported above
            continue
        if field.validator is not None:
            try:
                field.validator(None, field, value)
            except Exception as exc:  # noqa: BLE001
                yield Problem(here, _validator_message(exc, field.name))
                continue
        yield from _validate(value, here)


def _problems(exc: BaseException, path: tuple[str | int, ...], cls: Any = None) -> Iterator[Problem]:
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        for sub in exc.exceptions:
            sub_path = path
            for note in getattr(sub, "__notes__", []):
                if isinstance(note, AttributeValidationNote):
                    sub_path = path + (note.name,)
                elif isinstance(note, IterableValidationNote):
                    sub_path = path + (note.index,)
            yield from _problems(sub, sub_path, getattr(exc, "cl", None))
    elif isinstance(exc, ForbiddenExtraKeysError):
        allowed = _allowed_keys(exc.cl)
        for key in sorted(exc.extra_fields, key=str):
            hint = did_you_mean(str(key), allowed)
            listing = f"; allowed keys: {', '.join(allowed)}" if allowed else "; no keys are allowed here"
            yield Problem(path + (key,), f"unknown key {key!r}{hint}{listing}")
    elif type(exc) is KeyError:
        yield Problem(path, "required key is missing")
    elif isinstance(exc, _Located):
        yield Problem(path + exc.path, str(exc))
    elif isinstance(exc, _UserMessage):
        yield Problem(path, str(exc))
    elif isinstance(exc, (TypeError, ValueError)):
        yield Problem(path, str(exc) or type(exc).__name__)
    else:
        yield Problem(path, f"{type(exc).__name__}: {exc}")


def _allowed_keys(cl: Any) -> list[str]:
    if isinstance(cl, type) and issubclass(cl, ComponentRef):
        return ["name", "params"]
    if isinstance(cl, type) and attrs.has(cl):
        return [f.name for f in attrs.fields(cl)]
    return []


def _validate(obj: Any, path: tuple[str | int, ...]) -> Iterator[Problem]:
    if isinstance(obj, ComponentRef):
        yield from _validate(obj.params, path + ("params",))
    elif attrs.has(type(obj)):
        for field in attrs.fields(type(obj)):
            value = getattr(obj, field.name)
            if field.validator is not None:
                try:
                    field.validator(obj, field, value)
                except Exception as exc:  # noqa: BLE001 - reported with its path
                    yield Problem(path + (field.name,), _validator_message(exc, field.name))
                    continue
            yield from _validate(value, path + (field.name,))
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from _validate(item, path + (i,))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _validate(item, path + (key,))


def _validator_message(exc: Exception, name: str) -> str:
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    prefix = f"'{name}' "
    return text[len(prefix):] if text.startswith(prefix) else text
