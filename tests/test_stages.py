"""Pipelines of stages: order, references, skipping unchanged stages, resuming after a failure."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from xrdframe.errors import XrdframeError
from xrdframe.plugin.manager import Registry
from xrdframe.run import STAGE_MARKER, run_pipeline
from xrdframe.spec import apply_overrides, load_spec_text, validate_spec

SPEC = """
xrdframe: 1
output: {out}
seed: 3
stages:
  first: {{task: toy_count, value: 1}}
  second: {{task: toy_count, value: 10, source: "${{stages.first.output}}"}}
  third: {{task: toy_count, value: 100, source: "${{stages.second.output}}"}}
"""


def run(tmp_path: Path, registry: Registry, *overrides: str, force: bool = False) -> list[str]:
    source = load_spec_text(textwrap.dedent(SPEC.format(out=tmp_path / "out")), name="p.yaml")
    apply_overrides(source, overrides)
    return run_pipeline(validate_spec(source, registry=registry), registry, quiet=True, force=force)


def count(tmp_path: Path, stage: str) -> int:
    return json.loads((tmp_path / "out" / stage / "count.json").read_text())["value"]


def test_stages_run_in_order_and_pass_outputs(tmp_path: Path, toy_registry: Registry) -> None:
    assert run(tmp_path, toy_registry) == ["first", "second", "third"]
    assert [count(tmp_path, s) for s in ("first", "second", "third")] == [1, 11, 111]
    out = tmp_path / "out"
    assert (out / "runs.log").read_text().split() == ["first", "second", "third"]
    resolved = yaml.safe_load((out / "second" / "spec.resolved.yaml").read_text())
    assert resolved == {"xrdframe": 1, "task": "toy_count", "seed": 3, "output": str(out / "second"),
                        "value": 10, "source": str(out / "first"), "fail": False, "crash": False}
    versions = json.loads((out / "second" / "versions.json").read_text())
    assert versions["plugins"]["toy"] == {"distribution": "xrdframe-toy", "version": "1.0", "status": "ok"}
    assert versions["xrdframe"]
    marker = json.loads((out / "first" / STAGE_MARKER).read_text())
    assert len(marker["fingerprint"]) == 64
    top = yaml.safe_load((out / "spec.resolved.yaml").read_text())
    assert list(top["stages"]) == ["first", "second", "third"]


def test_unchanged_stages_are_skipped(tmp_path: Path, toy_registry: Registry) -> None:
    run(tmp_path, toy_registry)
    assert run(tmp_path, toy_registry) == []
    assert (tmp_path / "out" / "runs.log").read_text().split() == ["first", "second", "third"]
    assert run(tmp_path, toy_registry, force=True) == ["first", "second", "third"]


def test_changed_parameter_reruns_that_stage_and_what_depends_on_it(tmp_path: Path, toy_registry: Registry) -> None:
    run(tmp_path, toy_registry)
    assert run(tmp_path, toy_registry, "stages.second.value=20") == ["second", "third"]
    assert [count(tmp_path, s) for s in ("first", "second", "third")] == [1, 21, 121]
    # a changed seed is a changed configuration too
    assert run(tmp_path, toy_registry, "stages.second.value=20", "seed=5") == ["first", "second", "third"]


def test_changed_input_file_reruns_the_stage(tmp_path: Path, toy_registry: Registry) -> None:
    run(tmp_path, toy_registry)
    # the third stage reads the second's output folder: touching a file there counts as a changed input
    (tmp_path / "out" / "second" / "extra.txt").write_text("new input")
    assert run(tmp_path, toy_registry) == ["third"]


def test_rerun_after_a_failure_resumes_where_it_stopped(tmp_path: Path, toy_registry: Registry) -> None:
    with pytest.raises(XrdframeError, match=r"stage 'second' \(task 'toy_count'\) failed: toy failure as requested"):
        run(tmp_path, toy_registry, "stages.second.fail=true")
    assert not (tmp_path / "out" / "second" / STAGE_MARKER).exists()
    assert run(tmp_path, toy_registry) == ["second", "third"]
    assert (tmp_path / "out" / "runs.log").read_text().split() == ["first", "second", "third"]


def test_single_task_spec_always_runs(tmp_path: Path, toy_registry: Registry) -> None:
    text = f"xrdframe: 1\ntask: toy_count\noutput: {tmp_path / 'single'}\nvalue: 4\n"
    for _ in range(2):
        pipeline = validate_spec(load_spec_text(text), registry=toy_registry)
        assert run_pipeline(pipeline, toy_registry, quiet=True) == ["toy_count"]
    assert json.loads((tmp_path / "single" / "count.json").read_text()) == {"value": 4, "seed": 0}


def test_fingerprint_ignores_plugins_the_stage_does_not_use(tmp_path: Path, fake_site) -> None:
    fake_site.add_toy()
    run(tmp_path, fake_site.registry())
    fake_site.add("xrdframe-unrelated", {"unrelated": "unrelated_mod"},
                  {"unrelated_mod": "from xrdframe.plugin import hookimpl\n"}, version="9.9")
    assert run(tmp_path, fake_site.registry()) == []
    assert run(tmp_path, fake_site.registry(disabled=("unrelated",))) == []
