"""Reading YAML specs safely, keeping the line of every key for error messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import yaml

from xrdframe.errors import Problem, SpecError

__all__ = ["SpecLoader", "SpecSource", "load_spec_file", "load_spec_text", "parse_scalar"]

Path_ = tuple[str | int, ...]


@attrs.define
class SpecSource:
    """A parsed spec: plain data plus where each key came from."""

    data: Any
    locations: dict[Path_, str] = attrs.field(factory=dict)
    name: str | None = None
    problems: list[Problem] = attrs.field(factory=list)  # found before validation (e.g. by --set)

    def locate(self, path: Path_) -> str | None:
        """The location of ``path`` or of its nearest parent that has one."""
        for n in range(len(path), -1, -1):
            loc = self.locations.get(tuple(path[:n]))
            if loc is not None:
                return loc
        return None


def load_spec_file(path: str | Path) -> SpecSource:
    """Read a YAML spec from ``path`` with ``yaml.SafeLoader``.

    :raises SpecError: the file is missing, unreadable or not valid YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem((), f"spec file not found: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem((), f"cannot read spec file {path}: {exc}")]) from None
    return load_spec_text(text, name=str(path))


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats such as ``1e-3`` as numbers.

    YAML 1.1 (PyYAML's default) requires a dot in a float (``1.0e-3``) and
    reads ``1e-3`` as a string, a classic trap in scientific specs.
    """


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_scalar(text: str) -> Any:
    """Read one ``--set`` value like a YAML scalar (or flow collection) of a spec."""
    return yaml.load(text, Loader=SpecLoader)


def load_spec_text(text: str, name: str | None = None) -> SpecSource:
    """Parse YAML ``text``; duplicate keys are reported, not silently merged."""
    label = name or "<spec>"
    try:
        loader = SpecLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}, line {mark.line + 1}" if mark is not None else label
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem((), f"not valid YAML: {problem}", where)], source=label) from None
    source = SpecSource(data=data, name=label)
    problems: list[Problem] = []
    if node is not None:
        _walk(node, (), source.locations, label, problems)
    if problems:
        raise SpecError(problems, source=label)
    return source


def _walk(node: yaml.Node, path: Path_, out: dict[Path_, str], label: str, problems: list[Problem]) -> None:
    out.setdefault(path, f"{label}, line {node.start_mark.line + 1}")
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            child = path + (key,)
            if key in seen:
                problems.append(Problem(child, "duplicate key", f"{label}, line {key_node.start_mark.line + 1}"))
            seen.add(key)
            out[child] = f"{label}, line {key_node.start_mark.line + 1}"
            _walk(value_node, child, out, label, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), out, label, problems)
