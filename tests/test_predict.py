"""The ``predict`` task through ``xrdframe run``: predictions.csv with the contract's columns, bad files listed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from conftest import FakeSite
from test_cli import cli
from test_evaluate import ANSWERS, BAD_FILES, CONTRACT_COLUMNS, FIXTURES, SCRIPTED

STATUS_COLUMNS = ["lattice_rmse_length", "lattice_rmse_angle", "status", "reason", "seconds"]


@pytest.fixture
def scripted_site(fake_site: FakeSite) -> FakeSite:
    fake_site.add("xrdframe-scripted", {"scripted": "xrdframe_scripted"}, {"xrdframe_scripted": SCRIPTED})
    return fake_site


def _run(tmp_path: Path, site: FakeSite, inputs: dict) -> tuple[list[str], dict[str, dict[str, str]], str]:
    spec = {"xrdframe": 1, "task": "predict", "seed": 0, "output": str(tmp_path / "out"), "inputs": inputs,
            "indexer": {"name": "scripted", "params": {"answers": {k: v[0] for k, v in ANSWERS.items()},
                                                       "cells": {k: v[1] for k, v in ANSWERS.items() if v[1]},
                                                       "fail_on": ["CsCl.fxye"]}}}
    path = tmp_path / "predict.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = cli(["run", str(path)], cwd=tmp_path, site=site.root)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "out" / "predictions.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {row["id"]: row for row in reader}
        return list(reader.fieldnames or []), rows, result.stderr


def test_predict_a_folder_without_labels(tmp_path: Path, scripted_site: FakeSite) -> None:
    header, rows, log = _run(tmp_path, scripted_site, {"name": "pattern_files", "params": {
        "glob": str(FIXTURES), "wavelength": 1.5406}})
    assert header == [*CONTRACT_COLUMNS, *STATUS_COLUMNS]  # no true labels without an index
    missing = set(BAD_FILES) - {"missing.xy"}  # a folder lists only what exists
    assert set(rows) == set(ANSWERS) | {"CsCl.fxye", "TiO2_rutile.raw"} | missing
    nacl = rows["NaCl.xrdml"]
    assert (nacl["crystal_system"], nacl["extinction_group"], nacl["space_group"]) == ("cubic", "85", "225")
    assert [float(nacl[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")] == ANSWERS["NaCl.xrdml"][1]
    assert float(nacl["figure_of_merit"]) == 42.0 and nacl["status"] == "ok"
    assert rows["NaCl_header.csv"]["status"] == "ok"  # wavelength from the spec
    corundum = rows["Al2O3_corundum.cif"]
    assert corundum["space_group"] == "167" and corundum["a"] == "" and corundum["gamma"] == ""
    assert rows["CsCl.fxye"]["status"] == "failed" and "scripted failure" in rows["CsCl.fxye"]["reason"]
    assert rows["TiO2_rutile.raw"]["status"] == "no_answer" and rows["TiO2_rutile.raw"]["space_group"] == ""
    for name in missing:
        assert rows[name]["status"] == "skipped" and BAD_FILES[name] in rows[name]["reason"]
        assert f"skipped {name}" in log
    with open(tmp_path / "out" / "skipped.csv", newline="") as handle:
        assert {row["id"] for row in csv.DictReader(handle)} == missing


def test_predict_a_labelled_set_adds_the_true_labels(tmp_path: Path, scripted_site: FakeSite) -> None:
    header, rows, _ = _run(tmp_path, scripted_site, {"name": "pattern_files", "params": {
        "index": str(FIXTURES / "index.csv")}})
    assert header[:len(CONTRACT_COLUMNS)] == CONTRACT_COLUMNS
    assert header[len(CONTRACT_COLUMNS):len(CONTRACT_COLUMNS) + 3] == ["true_crystal_system",
                                                                        "true_extinction_group", "true_space_group"]
    assert len(rows) == 13
    assert rows["Si.gsa"]["space_group"] == "216" and rows["Si.gsa"]["true_space_group"] == "227"
    assert rows["missing.xy"]["status"] == "skipped" and "file not found" in rows["missing.xy"]["reason"]
