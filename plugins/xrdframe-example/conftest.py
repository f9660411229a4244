"""Collect this folder's tests only under its own configuration.

From the xrdframe repository root, a bare ``pytest`` (testpaths ``tests``, ``xrdframe``,
``plugins``) reaches this folder too, in an environment where the plugin is usually not
installed: there the folder is left out, like tox's ``test`` environment does with
``--ignore``. ``pytest plugins/xrdframe-example/tests`` (what ``tox -e example`` runs) takes
this folder's ``pyproject.toml`` as its configuration, and every test runs: the discovery
test fails, never skips, when the plugin is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if config.rootpath.resolve() != HERE else None
