"""The plugin registry: discovery through entry points, attribution, conflicts, isolation."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, FakeSite

from xrdframe.component import KINDS
from xrdframe.plugin.manager import Registry

HOOK = "from xrdframe.plugin import hookimpl\n@hookimpl\ndef xrdframe_augmentations():\n"
BUILTIN_KINDS = {"tasks": {"task": ["simulate", "merge", "train", "evaluate", "predict", "preview"]},
                 "structures": {"structure_source": ["cif_dir", "random_structures"]}}

GOOD = """
from xrdframe.component import Component
from xrdframe.plugin import hookimpl

@hookimpl
def xrdframe_augmentations():
    return [Component("{name}", lambda p: "{name}", summary="noise")]
"""


def test_builtins_register_through_entry_points_of_the_xrdframe_distribution() -> None:
    registry = Registry(disabled=())
    for ep_name, kinds in BUILTIN_KINDS.items():
        info = registry.plugins[ep_name]
        assert info.status == "ok", info.error
        assert info.distribution == "xrdframe"
        assert info.version and info.version[0].isdigit()
        for kind, names in kinds.items():
            assert sorted(info.components[kind]) == sorted(names)
            assert set(names) <= set(registry.names(kind))


def test_fake_distribution_is_discovered_and_attributed(fake_site: FakeSite) -> None:
    fake_site.add("xrdframe-extra", {"extra": "extra_mod"}, {"extra_mod": GOOD.format(name="extra_noise")},
                  version="2.5")
    registry = fake_site.registry()
    info = registry.plugins["extra"]
    assert (info.status, info.distribution, info.version) == ("ok", "xrdframe-extra", "2.5")
    assert info.components == {"augmentation": ["extra_noise"]}
    found = registry.lookup("augmentation", "extra_noise")
    assert found.plugin.name == "extra" and found.component.factory(None) == "extra_noise"


def test_duplicate_name_is_rejected_naming_both_providers(fake_site: FakeSite) -> None:
    fake_site.add("dist-a", {"plug_a": "mod_a"}, {"mod_a": GOOD.format(name="same")}, version="1.0")
    fake_site.add("dist-b", {"plug_b": "mod_b"}, {"mod_b": GOOD.format(name="same")}, version="3.1")
    registry = fake_site.registry()
    assert "same" not in registry.names("augmentation")
    with pytest.raises(LookupError) as err:
        registry.lookup("augmentation", "same")
    message = str(err.value)
    assert "plugin 'plug_a' (distribution dist-a 1.0)" in message
    assert "plugin 'plug_b' (distribution dist-b 3.1)" in message
    assert [p.name for p in registry.conflicts()["augmentation"]["same"]] == ["plug_a", "plug_b"]
    # disabling one provider makes the name usable again
    registry = fake_site.registry(disabled=("plug_b",))
    assert registry.lookup("augmentation", "same").plugin.name == "plug_a"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise ImportError('missing dependency torchvision')",
         "failed to import 'bad_mod': ImportError: missing dependency torchvision"),
        ("import this_module_does_not_exist_xyz", "ModuleNotFoundError: No module named"),
        (HOOK + "    raise ValueError('boom')\n", "hook xrdframe_augmentations raised ValueError: boom"),
        (HOOK + "    return ['not a component']\n",
         "returned 'not a component', expected Component descriptors"),
        ("from xrdframe.plugin import hookimpl\n@hookimpl\ndef xrdframe_augmentationz():\n    return []\n",
         "unknown hook 'xrdframe_augmentationz' (did you mean 'xrdframe_augmentations'?)"),
        ("from xrdframe.plugin import hookimpl\n@hookimpl\ndef xrdframe_encoders(registry):\n    return []\n",
         "invalid hook implementation"),
    ],
    ids=["import-error", "missing-module", "hook-raises", "bad-return", "misspelled-hook", "bad-arguments"],
)
def test_broken_plugin_is_isolated(fake_site: FakeSite, source: str, expected: str) -> None:
    fake_site.add("xrdframe-bad", {"bad": "bad_mod"}, {"bad_mod": source})
    fake_site.add("xrdframe-good", {"good": "good_mod"}, {"good_mod": GOOD.format(name="good_noise")})
    registry = fake_site.registry()
    bad = registry.plugins["bad"]
    assert bad.status == "broken"
    assert expected in bad.error
    assert bad.components == {}
    assert registry.plugins["good"].status == "ok"
    assert registry.lookup("augmentation", "good_noise").plugin.name == "good"
    assert registry.plugins["tasks"].status == "ok"


def test_disable_switch_skips_plugins_by_entry_point_name(fake_site: FakeSite, monkeypatch) -> None:
    fake_site.add("xrdframe-bad", {"bad": "bad_mod"}, {"bad_mod": "raise RuntimeError('never imported')"})
    fake_site.add_toy()
    monkeypatch.setenv("XRDFRAME_DISABLE_PLUGINS", " bad , toy")
    registry = fake_site.registry()
    assert registry.plugins["bad"].status == "disabled" and registry.plugins["bad"].error is None
    assert registry.plugins["toy"].status == "disabled"
    assert "toy_count" not in registry.names("task")
    assert "bad_mod" not in sys.modules


def test_unknown_name_lists_installed_and_suggests(toy_registry: Registry) -> None:
    with pytest.raises(LookupError, match=r"unknown task 'toy_cont' \(did you mean 'toy_count'\?\); "
                                          r"installed: evaluate, merge, predict, preview, simulate, toy_count, train"):
        toy_registry.lookup("task", "toy_cont")
    with pytest.raises(LookupError, match=r"unknown component kind 'indexers' \(did you mean 'indexer'\?\)"):
        toy_registry.lookup("indexers", "x")


def _cli(args: list[str], site: Path | None = None, env_extra: dict[str, str] | None = None):
    env = dict(os.environ)
    env.pop("XRDFRAME_DISABLE_PLUGINS", None)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "xrdframe", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_cli_plugins_json_shows_broken_plugin_and_the_rest_working(fake_site: FakeSite) -> None:
    fake_site.add("xrdframe-bad", {"bad": "bad_mod"}, {"bad_mod": "raise ImportError('no torch here')"})
    fake_site.add_toy()
    result = _cli(["plugins", "--json"], fake_site.root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["bad"]["status"] == "broken" and "no torch here" in plugins["bad"]["error"]
    assert plugins["bad"]["distribution"] == "xrdframe-bad" and plugins["bad"]["version"] == "1.0"
    assert plugins["toy"]["status"] == "ok"
    assert plugins["toy"]["components"]["indexer"] == ["toy_indexer"]
    assert plugins["tasks"]["distribution"] == "xrdframe"
    assert set(data["kinds"]) == set(KINDS)
    assert "toy_count" in data["components"]["task"]
    text = _cli(["plugins"], fake_site.root)
    assert text.returncode == 0
    assert "bad  [broken]  xrdframe-bad 1.0" in text.stdout and "no torch here" in text.stdout
    # the other plugins keep working: a spec using them validates
    spec = fake_site.root.parent / "ok.yaml"
    spec.write_text("xrdframe: 1\ntask: toy_count\noutput: out\nvalue: 3\n")
    assert _cli(["check", str(spec)], fake_site.root).returncode == 0


def test_kinds_have_one_hook_each() -> None:
    assert set(KINDS) == {"augmentation", "encoder", "representation_loss", "indexer", "structure_source",
                          "pattern_source", "task"}
    assert len(set(KINDS.values())) == len(KINDS)


def test_core_imports_no_builtin_plugin_module() -> None:
    plugin_packages = {p.name for p in (REPO / "plugins").iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert plugin_packages, "no plugin packages found under plugins/"
    offenders = []
    for path in (REPO / "xrdframe").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = ast.unparse(node.func)
                if func.endswith(("import_module", "__import__")):
                    names = [str(node.args[0].value)]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names
                          if n.split(".")[0] in plugin_packages]
    assert not offenders, "the core names built-in plugin modules:\n" + "\n".join(offenders)


def test_a_plugin_providing_one_name_twice_is_broken(fake_site: FakeSite) -> None:
    twice = GOOD.replace('return [Component("{name}", lambda p: "{name}", summary="noise")]',
                         'return [Component("dup", lambda p: 1), Component("dup", lambda p: 2)]')
    fake_site.add("xrdframe-twice", {"twice": "twice_mod"}, {"twice_mod": twice})
    registry = fake_site.registry()
    assert registry.plugins["twice"].status == "broken"
    assert registry.plugins["twice"].error == "provides augmentation 'dup' more than once"
    assert "dup" not in registry.all_names("augmentation")


def test_three_providers_are_all_named(fake_site: FakeSite) -> None:
    for letter in "abc":
        fake_site.add(f"dist-{letter}", {f"plug_{letter}": f"mod_{letter}"},
                      {f"mod_{letter}": GOOD.format(name="same")})
    with pytest.raises(LookupError, match=r"is provided by 3 plugins, plugin 'plug_a' .*, plugin 'plug_b' .* and "
                                          r"plugin 'plug_c'"):
        fake_site.registry().lookup("augmentation", "same")
