"""docs/hooks.md and the hook specifications in xrdframe/plugin/spec.py agree.

Every hook of ``XrdframeSpec`` has a section ``## `HOOK` `` in docs/hooks.md
whose first python block is its exact signature; every such section names an
existing hook; every hook has a docstring stating what it returns and when it
is called; and there is exactly one hook per component kind.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from xrdframe.component import KINDS
from xrdframe.plugin.spec import XrdframeSpec, hookspec

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
SPEC_FILE = "xrdframe/plugin/spec.py"
PROJECT = hookspec.project_name  # "xrdframe"

# A hook section: a level-2 heading that is only a backticked identifier, e.g. "## `xrdframe_tasks`".
HOOK_HEADING = re.compile(r"^## `([A-Za-z_][A-Za-z0-9_]*)`\s*$")
ANY_H2 = re.compile(r"^## ")
FENCE_OPEN = re.compile(r"^```python\s*$")


def _spec_functions() -> dict[str, object]:
    """Hook specs as marked by ``HookspecMarker("xrdframe")``: attribute ``xrdframe_spec``."""
    return {
        name: fn
        for name, fn in vars(XrdframeSpec).items()
        if callable(fn) and getattr(fn, f"{PROJECT}_spec", None) is not None
    }


def _pluggy_hooks() -> set[str]:
    """Hook names as pluggy sees them after ``add_hookspecs(XrdframeSpec)``."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(XrdframeSpec)
    return {
        name
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }


HOOKS = _spec_functions()


class _AsWritten:
    """An annotation kept as source text (``from __future__ import annotations``), shown unquoted."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _as_written(annotation: object) -> object:
    return _AsWritten(annotation) if isinstance(annotation, str) else annotation


def expected_signature(name: str) -> str:
    """``def NAME(...) -> RETURN`` as in the source, without ``self``."""
    sig = inspect.signature(HOOKS[name])
    params = [p.replace(annotation=_as_written(p.annotation)) for p in sig.parameters.values()]
    if params and params[0].name == "self":
        params = params[1:]
    sig = sig.replace(parameters=params, return_annotation=_as_written(sig.return_annotation))
    return f"def {name}{sig}"


def _doc_sections() -> tuple[dict[str, list[str]], list[str]]:
    """Hook sections of docs/hooks.md (name -> lines) and the names of repeated sections."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    sections: dict[str, list[str]] = {}
    repeated: list[str] = []
    current: list[str] | None = None
    in_fence = False
    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and ANY_H2.match(line):
            match = HOOK_HEADING.match(line)
            if match:
                name = match.group(1)
                if name in sections:
                    repeated.append(name)
                current = sections.setdefault(name, [])
                continue
            current = None
        if current is not None:
            current.append(line)
    return sections, repeated


def _first_python_block(section: list[str]) -> list[str] | None:
    for i, line in enumerate(section):
        if FENCE_OPEN.match(line):
            block = []
            for inner in section[i + 1 :]:
                if inner.startswith("```"):
                    return block
                block.append(inner)
            return block
    return None


def _version_added(doc: str) -> str | None:
    match = re.search(r"\.\. versionadded::\s*(\S+)", doc)
    return match.group(1) if match else None


def test_page_exists() -> None:
    assert DOC.is_file(), f"{DOC} is missing: write the hook reference page (see tests/test_docs_hooks.py)"


def test_hooks_found_by_marker_match_pluggy() -> None:
    assert HOOKS, f"no hook specs found on XrdframeSpec in {SPEC_FILE} (methods decorated with @hookspec)"
    assert set(HOOKS) == _pluggy_hooks(), (
        f"the methods of XrdframeSpec marked with @hookspec ({sorted(HOOKS)}) differ from the hooks pluggy "
        f"registers from it ({sorted(_pluggy_hooks())})"
    )


def test_hooks_are_the_component_kinds() -> None:
    hooks, kinds = set(HOOKS), set(KINDS.values())
    assert hooks == kinds, (
        "each component kind has exactly one hook: "
        f"hooks without a kind in xrdframe.component.KINDS: {sorted(hooks - kinds) or 'none'}; "
        f"kinds whose hook is missing from XrdframeSpec in {SPEC_FILE}: {sorted(kinds - hooks) or 'none'}"
    )


def test_no_stale_sections() -> None:
    sections, _ = _doc_sections()
    stale = sorted(set(sections) - set(HOOKS))
    assert not stale, (
        f"{DOC.name} documents hooks that do not exist in XrdframeSpec: {stale}; remove or rename these "
        "sections (a '## `name`' heading is reserved for hooks; give general sections a plain heading)"
    )


def test_no_repeated_sections() -> None:
    _, repeated = _doc_sections()
    assert not repeated, (
        f"{DOC.name} has more than one '## `name`' section for: {sorted(set(repeated))}; merge them into one"
    )


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_documented_with_signature(name: str) -> None:
    sections, _ = _doc_sections()
    expected = expected_signature(name)
    assert name in sections, (
        f"hook {name} has no section in docs/hooks.md; add:\n\n## `{name}`\n\n```python\n{expected}\n```\n\n"
        "followed by its contract (what it returns, when it is called, the kind, the factory, versionadded)"
    )
    block = _first_python_block(sections[name])
    assert block, f"the section of {name} in docs/hooks.md has no ```python block; its first one must be:\n{expected}"
    code = [line for line in block if line.strip()]
    assert code and code[0].strip() == expected, (
        f"the signature of {name} in docs/hooks.md is out of date:\n"
        f"  docs:  {code[0].strip() if code else '(empty block)'}\n"
        f"  spec:  {expected}\n"
        f"update the first line of the section's python block to the spec's signature ({SPEC_FILE})"
    )


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_section_names_kind_and_version(name: str) -> None:
    sections, _ = _doc_sections()
    if name not in sections:
        pytest.skip("missing section reported by test_hook_documented_with_signature")
    text = "\n".join(sections[name])
    kind = next(k for k, hook in KINDS.items() if hook == name) if name in KINDS.values() else None
    if kind is not None:
        assert f"`{kind}`" in text, f"the section of {name} in docs/hooks.md must name its kind as `{kind}`"
    version = _version_added(inspect.getdoc(HOOKS[name]) or "")
    if version is not None:
        assert f"version {version}" in text, (
            f"the hook {name} was added in {version} (its '.. versionadded::'); its section in docs/hooks.md "
            f"must say 'Added in version {version}.'"
        )
    prose = [line for line in text.splitlines() if line.strip() and not line.startswith("```")]
    assert len(prose) > 1, f"the section of {name} in docs/hooks.md has no prose: describe the hook's contract"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_docstring(name: str) -> None:
    doc = inspect.getdoc(HOOKS[name]) or ""
    assert doc.strip(), f"hook {name} in {SPEC_FILE} has no docstring: document its contract"
    assert ":returns:" in doc, f"the docstring of hook {name} in {SPEC_FILE} must state what it returns (':returns:')"
    assert "Called" in doc, (
        f"the docstring of hook {name} in {SPEC_FILE} must say when it is called (a sentence starting 'Called')"
    )
