"""The generated spec reference: docs/reference.md is exactly what the code says."""

from __future__ import annotations

from pathlib import Path

import attrs

from xrdframe.cli import main
from xrdframe.component import param
from xrdframe.plugin.manager import get_registry
from xrdframe.spec.reference import parameter_rows, reference_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


def test_docs_reference_is_generated_from_the_code() -> None:
    expected = reference_markdown(get_registry())
    assert DOCS.read_text(encoding="utf-8") == expected, (
        "docs/reference.md is stale: regenerate it with `xrdframe reference > docs/reference.md`")


def test_reference_lists_every_builtin_component_with_its_parameters() -> None:
    registry = get_registry()
    text = reference_markdown(registry)
    for kind in ("task", "augmentation", "indexer", "structure_source"):
        for name in registry.names(kind):
            if registry.lookup(kind, name).plugin.distribution == "xrdframe":
                assert f"### `{name}`" in text
    assert "| `wavelength` | number | `1.5406` | Angstrom |" in text  # task simulate


@attrs.frozen
class Inner:
    width: float = param(0.1, doc="peak width", unit="deg")


@attrs.frozen
class Outer:
    count: int = param(doc="how many")
    inner: Inner = param(factory=Inner, doc="inner settings")


def test_nested_parameter_classes_are_flattened_with_dotted_names() -> None:
    rows = parameter_rows(Outer)
    assert [(r["name"], r["required"], r["default"], r["unit"]) for r in rows] == [
        ("count", True, None, None), ("inner", False, None, None), ("inner.width", False, 0.1, "deg")]


def test_cli_reference_prints_markdown(capsys) -> None:
    assert main(["reference"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Spec reference")
    assert "## indexer" in out
