"""The ``evaluate`` task end to end through ``xrdframe run``: metrics.json, predictions CSVs, report, failures.

A scripted indexer (a test plugin installed as a fake distribution) answers from a table keyed by file name,
so that every metric can be computed by hand; ``ntreor`` and the learned indexers' shipped defaults run on a
couple of the real-format fixtures.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import REPO, FakeSite
from test_cli import cli

FIXTURES = REPO / "tests" / "fixtures" / "patterns"
CONTRACT_KEYS = {"n", "crystal_system_accuracy", "extinction_group_accuracy", "space_group_accuracy",
                 "lattice_rmse_length_mean", "lattice_rmse_angle_mean", "seconds_per_pattern"}
CONTRACT_COLUMNS = ["id", "crystal_system", "extinction_group", "space_group", "a", "b", "c", "alpha", "beta",
                    "gamma", "figure_of_merit"]
BAD_FILES = {"truncated.xrdml": "line 51", "text_intensity.csv": "line 41", "decreasing.xy": "line 33",
             "nan_intensity.xy": "line 52", "missing.xy": "file not found"}

SCRIPTED = '''
"""Test indexers: ``scripted`` answers from a table keyed by file name; ``always_cubic`` says cubic."""
import time
from pathlib import Path

import attrs

from xrdframe.component import Component, param
from xrdframe.indexing import Prediction
from xrdframe.plugin import hookimpl
from xrdframe.symmetry import symmetry_labels


@attrs.frozen
class ScriptedParams:
    answers: dict[str, int] = param(doc="file name -> predicted space group")
    cells: dict[str, list[float]] = param(factory=dict, doc="file name -> predicted cell")
    fail_on: list[str] = param(factory=list, doc="file names the indexer raises on")
    slow_on: list[str] = param(factory=list, doc="file names the indexer takes a minute for")


class Scripted:
    def __init__(self, params):
        self.params = params

    def predict(self, data):
        name = Path(data.source).name
        if name in self.params.fail_on:
            raise RuntimeError(f"scripted failure on {name}")
        if name in self.params.slow_on:
            time.sleep(60)
        if name not in self.params.answers:
            return Prediction.empty("not in the script")
        labels = symmetry_labels(self.params.answers[name])
        cell = self.params.cells.get(name)
        return Prediction(crystal_system=labels.crystal_system, extinction_group=labels.extinction_group,
                          space_group=self.params.answers[name], cell=tuple(cell) if cell else None,
                          figure_of_merit=42.0)


@attrs.frozen
class CubicParams:
    pass


class AlwaysCubic:
    def __init__(self, params):
        self.params = params

    def predict(self, data):
        return Prediction(crystal_system="cubic")


def unbuildable(params):
    raise ValueError("model file garbled")


@hookimpl
def xrdframe_indexers():
    return [Component("scripted", Scripted, ScriptedParams, "answers from a table"),
            Component("always_cubic", AlwaysCubic, CubicParams, "says cubic"),
            Component("unbuildable", unbuildable, CubicParams, "cannot be built")]
'''

# fixture file -> (predicted space group, predicted cell or None); CsCl.fxye raises, TiO2_rutile.raw unanswered
ANSWERS = {
    "NaCl.xrdml": (225, [5.6902, 5.6902, 5.6902, 90, 90, 90]),  # true 225, a 5.6402: all right, RMSE 0.05
    "Si.gsa": (216, [5.4309, 5.4309, 5.4309, 90, 90, 90]),  # true 227: system right, extinction group wrong
    "Al2O3_corundum.cif": (167, None),  # all right, no cell
    "ZnO_zincite.cif": (194, [3.2498, 3.2498, 5.5066, 90, 90, 120]),  # true 186: same extinction group; c + 0.3
    "SiO2_quartz.xye": (225, [5.0, 5.0, 5.0, 90, 90, 90]),  # true 154: wrong system, so no RMSE
    "NaCl_header.csv": (225, None),  # all right
}


@pytest.fixture
def scripted_site(fake_site: FakeSite) -> FakeSite:
    fake_site.add("xrdframe-scripted", {"scripted": "xrdframe_scripted"}, {"xrdframe_scripted": SCRIPTED})
    return fake_site


def _spec(tmp_path: Path, test_sets: dict, indexers: dict, task: str = "evaluate", **extra: object) -> Path:
    spec = {"xrdframe": 1, "task": task, "seed": 0, "output": str(tmp_path / "out"), **extra}
    if task == "evaluate":
        spec.update(test_sets=test_sets, indexers=indexers)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _scripted_indexer() -> dict:
    return {"name": "scripted", "params": {"answers": {k: v[0] for k, v in ANSWERS.items()},
                                           "cells": {k: v[1] for k, v in ANSWERS.items() if v[1]},
                                           "fail_on": ["CsCl.fxye"]}}


def _rows(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {Path(row["id"]).name: row for row in reader}  # small indexes list absolute paths
        return list(reader.fieldnames or []), rows


def _small_index(tmp_path: Path, names: list[str]) -> Path:
    """An index.csv in tmp_path listing some fixtures (absolute paths) with the labels of the fixtures' index."""
    with open(FIXTURES / "index.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["path"] in names]
    index = tmp_path / "small" / "index.csv"
    index.parent.mkdir()
    with open(index, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "path": str(FIXTURES / row["path"])})
    return index


def test_evaluate_metrics_files_and_report_by_hand(tmp_path: Path, scripted_site: FakeSite) -> None:
    spec = _spec(tmp_path, {"fixtures": {"name": "pattern_files", "params": {"index": str(FIXTURES / "index.csv")}}},
                 {"scripted": _scripted_indexer(), "cubic": {"name": "always_cubic", "params": {}}})
    result = cli(["run", str(spec)], cwd=tmp_path, site=scripted_site.root)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["fixtures"] and list(metrics["fixtures"]) == ["scripted", "cubic"]
    for entry in metrics["fixtures"].values():
        assert CONTRACT_KEYS <= set(entry)
        assert entry["n"] == 8 and entry["n_skipped_files"] == 5  # 13 index rows, 5 unreadable
        assert entry["seconds_per_pattern"] >= 0
    m = metrics["fixtures"]["scripted"]
    # by hand (see ANSWERS): systems right for NaCl x2, Si, corundum, zincite; failed CsCl and unanswered rutile
    # count as wrong
    assert m["crystal_system_accuracy"] == pytest.approx(5 / 8)
    assert m["extinction_group_accuracy"] == pytest.approx(4 / 8)  # Si's 216 is not 227's extinction group
    assert m["space_group_accuracy"] == pytest.approx(3 / 8)
    length_rmse = [0.05, 0.0, math.sqrt(0.3 ** 2 / 3)]  # NaCl.xrdml, Si, zincite (quartz: wrong system)
    assert m["n_lattice"] == 3
    assert m["lattice_rmse_length_mean"] == pytest.approx(sum(length_rmse) / 3, abs=1e-6)
    assert m["lattice_rmse_angle_mean"] == pytest.approx(0.0, abs=1e-6)
    assert m["lattice_rmse_length_share_below_0.1"] == pytest.approx(2 / 3)
    assert (m["n_failed"], m["n_no_answer"]) == (1, 1)
    assert m["space_group_outside_crystal_system"] == 0.0
    assert m["per_class_accuracy"]["crystal_system"]["cubic"] == {"n": 4, "correct": 3, "accuracy": 0.75}
    assert m["confusion_matrix"]["crystal_system"]["counts"][6] == [0, 0, 0, 0, 0, 0, 3, 1]  # cubic row + none
    c = metrics["fixtures"]["cubic"]
    assert c["crystal_system_accuracy"] == pytest.approx(4 / 8)  # the four cubic fixtures
    assert c["extinction_group_accuracy"] is None and c["space_group_accuracy"] is None  # never predicted
    assert c["lattice_rmse_length_mean"] is None and c["lattice_rmse_angle_mean"] is None

    # one predictions CSV per test set and indexer, contract columns first, true labels, every index row
    header, rows = _rows(out / "predictions" / "fixtures" / "scripted.csv")
    assert header[:len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert {"true_space_group", "true_a", "status", "reason"} <= set(header)
    assert len(rows) == 13
    assert rows["NaCl.xrdml"]["space_group"] == "225" and rows["NaCl.xrdml"]["crystal_system"] == "cubic"
    assert float(rows["NaCl.xrdml"]["a"]) == pytest.approx(5.6902)
    assert float(rows["NaCl.xrdml"]["lattice_rmse_length"]) == pytest.approx(0.05, abs=1e-6)
    assert rows["NaCl.xrdml"]["figure_of_merit"] == "42.0" or float(rows["NaCl.xrdml"]["figure_of_merit"]) == 42
    assert rows["Si.gsa"]["true_space_group"] == "227" and rows["Si.gsa"]["space_group"] == "216"
    assert rows["CsCl.fxye"]["status"] == "failed" and "scripted failure on CsCl.fxye" in rows["CsCl.fxye"]["reason"]
    assert rows["TiO2_rutile.raw"]["status"] == "no_answer" and rows["TiO2_rutile.raw"]["crystal_system"] == ""
    assert rows["Al2O3_corundum.cif"]["a"] == ""  # no cell predicted: empty
    for name, where in BAD_FILES.items():
        assert rows[name]["status"] == "skipped" and name in rows[name]["reason"] and where in rows[name]["reason"]
    _, cubic_rows = _rows(out / "predictions" / "fixtures" / "cubic.csv")
    assert cubic_rows["CsCl.fxye"]["crystal_system"] == "cubic" and cubic_rows["CsCl.fxye"]["space_group"] == ""

    # skipped files: listed with file and line in skipped.csv, the log and the report
    with open(out / "skipped.csv", newline="") as handle:
        skipped = {row["id"]: row["error"] for row in csv.DictReader(handle)}
    assert set(skipped) == set(BAD_FILES)
    for name, where in BAD_FILES.items():
        assert name in skipped[name] and where in skipped[name]
        assert f"skipped {name}" in result.stderr

    report = (out / "report.md").read_text()
    assert "| scripted | 62.5 | 50.0 | 37.5 |" in report
    assert "| cubic | 50.0 | – | – |" in report
    assert "scripted on `CsCl.fxye`: RuntimeError: scripted failure on CsCl.fxye" in report
    assert "`decreasing.xy`" in report and "line 33" in report
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == ["accuracy_by_crystal_system_fixtures.png", "confusion_fixtures.png", "patterns_fixtures.png"]
    for name in figures:
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{name})" in report


def test_broken_and_slow_indexers_are_recorded_and_the_others_run(tmp_path: Path, scripted_site: FakeSite) -> None:
    spec = _spec(tmp_path, {"two": {"name": "pattern_files", "params": {
        "index": str(_small_index(tmp_path, ["NaCl.xrdml", "Si.gsa"]))}}},
                 {"broken": {"name": "unbuildable", "params": {}},
                  "slow": {"name": "scripted", "params": {"answers": {"Si.gsa": 227}, "slow_on": ["NaCl.xrdml"]}},
                  "cubic": {"name": "always_cubic", "params": {}}}, timeout=1.0)
    result = cli(["run", str(spec)], cwd=tmp_path, site=scripted_site.root)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["two"]
    assert metrics["cubic"]["crystal_system_accuracy"] == 1.0
    assert metrics["slow"]["n_failed"] == 1 and metrics["slow"]["space_group_accuracy"] == 0.5
    _, slow = _rows(tmp_path / "out" / "predictions" / "two" / "slow.csv")
    assert slow["NaCl.xrdml"]["status"] == "failed" and slow["NaCl.xrdml"]["reason"] == "timed out after 1 s"
    assert 0.9 < float(slow["NaCl.xrdml"]["seconds"]) < 10
    assert slow["Si.gsa"]["status"] == "ok" and slow["Si.gsa"]["space_group"] == "227"
    assert metrics["broken"]["n_failed"] == 2 and metrics["broken"]["crystal_system_accuracy"] == 0.0
    _, rows = _rows(tmp_path / "out" / "predictions" / "two" / "broken.csv")
    assert {row["status"] for row in rows.values()} == {"failed"}
    assert all(row["reason"] == "indexer 'broken' (unbuildable) could not be built: ValueError: model file garbled"
               for row in rows.values())
    assert "indexer 'broken' (unbuildable) could not be built" in result.stderr


def test_evaluate_ntreor_on_real_format_fixtures(tmp_path: Path) -> None:
    index = _small_index(tmp_path, ["NaCl.xrdml", "Si.gsa", "missing.xy"])
    spec = _spec(tmp_path, {"cubic": {"name": "pattern_files", "params": {"index": str(index)}}},
                 {"ntreor": {"name": "ntreor", "params": {"time_budget": 1.0}}})
    result = cli(["run", str(spec)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["cubic"]["ntreor"]
    assert CONTRACT_KEYS <= set(m)
    assert (m["n"], m["n_skipped_files"], m["crystal_system_accuracy"]) == (2, 1, 1.0)
    assert m["lattice_rmse_length_mean"] < 0.01 and m["lattice_rmse_angle_mean"] < 0.01
    _, rows = _rows(tmp_path / "out" / "predictions" / "cubic" / "ntreor.csv")
    assert float(rows["NaCl.xrdml"]["a"]) == pytest.approx(5.6402, abs=0.01)
    assert float(rows["NaCl.xrdml"]["figure_of_merit"]) > 10  # M20
    assert rows["missing.xy"]["status"] == "skipped"
    assert "| ntreor | 100.0 |" in (tmp_path / "out" / "report.md").read_text()


def _default_loads(name: str) -> str | None:
    """Why the shipped default of a learned indexer cannot predict here, or None when it can."""
    import xrdframe
    from xrdframe.pattern import read_pattern

    try:
        indexer = xrdframe.create("indexer", name)
        prediction = indexer.predict(read_pattern(FIXTURES / "NaCl.xrdml"))
    except Exception as exc:  # noqa: BLE001 - reported as the skip reason
        return f"{type(exc).__name__}: {exc}"
    return None if prediction.crystal_system is not None else f"no answer: {prediction.reason}"


@pytest.mark.parametrize("name", ["hand", "cnn", "difcon"])
def test_evaluate_learned_defaults(tmp_path: Path, name: str) -> None:
    why = _default_loads(name)
    if why is not None:
        pytest.skip(f"the shipped default of {name!r} does not load: {why}")
    index = _small_index(tmp_path, ["NaCl.xrdml", "SiO2_quartz.xye", "decreasing.xy"])
    spec = _spec(tmp_path, {"two": {"name": "pattern_files", "params": {"index": str(index)}}},
                 {name: {"name": name, "params": {}}}, )
    result = cli(["run", str(spec)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["two"][name]
    assert CONTRACT_KEYS <= set(m) and (m["n"], m["n_skipped_files"], m["n_failed"]) == (2, 1, 0)
    _, rows = _rows(tmp_path / "out" / "predictions" / "two" / f"{name}.csv")
    assert {rows[k]["status"] for k in rows if "decreasing" not in k} == {"ok"}
    assert all(rows[k]["crystal_system"] for k in rows if "decreasing" not in k)
