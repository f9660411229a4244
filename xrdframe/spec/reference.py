"""The spec reference: every component's parameters, generated from its parameter class.

``docs/reference.md`` is this module's output for the components xrdframe itself ships
(``xrdframe reference > docs/reference.md``); a test regenerates it and compares, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import attrs

from xrdframe.component import KINDS, ComponentRef
from xrdframe.distribution import Distribution

__all__ = ["parameter_rows", "reference_markdown"]


def parameter_rows(params_class: type, prefix: str = "") -> list[dict[str, Any]]:
    """One row per parameter of ``params_class``; fields of nested parameter classes follow with dotted names.

    Each row has ``name``, ``type``, ``required``, ``default`` (as a spec would write it; ``None`` for a
    nested parameter class), ``unit`` and ``doc``.

    >>> import attrs
    >>> from xrdframe.component import param
    >>> @attrs.frozen
    ... class P:
    ...     step: float = param(0.02, doc="bin width", unit="deg")
    >>> parameter_rows(P)[0]["name"], parameter_rows(P)[0]["default"], parameter_rows(P)[0]["unit"]
    ('step', 0.02, 'deg')
    """
    from xrdframe.spec.validation import describe_type, resolved_fields, unstructure

    rows: list[dict[str, Any]] = []
    for field in resolved_fields(params_class):
        if field.default is attrs.NOTHING:
            default: Any = None
            required = True
        else:
            required = False
            default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
        nested = (isinstance(field.type, type) and attrs.has(field.type)
                  and not issubclass(field.type, (ComponentRef, Distribution)))
        rows.append({"name": prefix + field.name, "type": describe_type(field.type), "required": required,
                     "default": None if nested else unstructure(default), "unit": field.metadata.get("unit"),
                     "doc": field.metadata.get("doc", ""), "nested": nested})
        if nested:
            rows.extend(parameter_rows(field.type, f"{prefix}{field.name}."))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown(registry: Any, distribution: str | None = "xrdframe") -> str:
    """Markdown reference of every component of ``registry`` (only those of ``distribution`` unless None)."""
    out = ["# Spec reference", "",
           "Generated from the components' parameter classes by `xrdframe reference` "
           "(do not edit by hand: `xrdframe reference > docs/reference.md`). "
           "Every parameter below is written in a spec as `{name: NAME, params: {PARAMETER: VALUE}}`; "
           "dotted names are keys of nested mappings. `xrdframe describe KIND NAME` prints the same for one "
           "component, including those of third-party plugins.", ""]
    for kind in KINDS:
        entries = []
        for name in registry.names(kind):
            registered = registry.lookup(kind, name)
            if distribution is not None and registered.plugin.distribution != distribution:
                continue
            entries.append(registered)
        if not entries:
            continue
        out += [f"## {kind}", ""]
        for registered in entries:
            comp = registered.component
            out += [f"### `{comp.name}`", "", comp.summary.strip() or "(no summary)", ""]
            doc = inspect.cleandoc(comp.factory.__doc__ or "").split("\n\n")[0].strip()
            if doc and doc != comp.summary.strip():
                out += [doc, ""]
            if comp.requires:
                out += [f"Requires: {', '.join(comp.requires)}.", ""]
            rows = parameter_rows(comp.params)
            if not rows:
                out += ["No parameters.", ""]
                continue
            out += ["| parameter | type | default | unit | meaning |", "|---|---|---|---|---|"]
            for row in rows:
                if row["required"]:
                    default = "required"
                elif row["nested"]:
                    default = "(fields below)"
                else:
                    default = "`" + json.dumps(row["default"], default=str) + "`"
                out.append(f"| `{row['name']}` | {_cell(row['type'])} | {_cell(default)} | {row['unit'] or ''} "
                           f"| {_cell(row['doc'])} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
