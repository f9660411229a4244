"""Shared fixtures: fake installed distributions of plugins in a temporary folder."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from xrdframe.plugin.manager import ENTRY_POINT_GROUP, Registry, reset_registry

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
TOY_SOURCE = (TESTS / "toy_plugin" / "xrdframe_toy.py").read_text()


class FakeSite:
    """A folder holding fake distributions; put on sys.path by the fixture."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None,
            version: str = "1.0") -> None:
        """Write module files and ``DIST-VERSION.dist-info`` with ``[xrdframe]`` entry points."""
        for name, source in (modules or {}).items():
            (self.root / f"{name}.py").write_text(textwrap.dedent(source))
            self.modules.append(name)
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")

    def add_toy(self, dist: str = "xrdframe-toy", ep_name: str = "toy") -> None:
        self.add(dist, {ep_name: "xrdframe_toy"}, {"xrdframe_toy": TOY_SOURCE})

    def entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return [ep for d in importlib.metadata.distributions(path=[str(self.root)])
                for ep in d.entry_points if ep.group == ENTRY_POINT_GROUP]

    def registry(self, with_builtins: bool = True, disabled: tuple[str, ...] | None = None) -> Registry:
        eps = self.entry_points()
        if with_builtins:
            eps += [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
                    if ep.dist is not None and ep.dist.metadata["Name"] == "xrdframe"]
        return Registry(entry_points=eps, disabled=disabled)


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    site = FakeSite(root)
    yield site
    for name in site.modules:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    reset_registry()


@pytest.fixture
def toy_registry(fake_site: FakeSite) -> Registry:
    fake_site.add_toy()
    return fake_site.registry()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data absent ({SHARED_DATA}): real structures and patterns are not available")
    return SHARED_DATA
