"""The command line: exit codes, messages without tracebacks, run/check/describe/--version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, FakeSite

import xrdframe


def cli(args: list[str], cwd: Path | None = None, site: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("XRDFRAME_DISABLE_PLUGINS", None)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "xrdframe", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_version() -> None:
    result = cli(["--version"])
    assert result.returncode == 0 and result.stdout.strip() == f"xrdframe {xrdframe.__version__}"


def test_check_reports_every_problem_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("xrdframe: 1\ntask: simulate\nseed: abc\noutput: out\n"
                    "structures: {name: cif_dri, params: {path: x}}\n")
    result = cli(["check", str(spec)])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{spec}: invalid spec, 2 problems:" in result.stderr
    assert f"$.seed ({spec}, line 3): expected an integer, got 'abc' (string)" in result.stderr
    assert "unknown structure_source 'cif_dri' (did you mean 'cif_dir'?)" in result.stderr
    assert cli(["run", str(spec)]).returncode == 2
    assert not (tmp_path / "out").exists()


def test_check_and_run_a_valid_spec(tmp_path: Path) -> None:
    spec = tmp_path / "ok.yaml"
    spec.write_text(f"xrdframe: 1\ntask: simulate\noutput: out\nstructures: {{name: cif_dir, params: "
                    f"{{path: {REPO / 'examples' / 'structures'}}}}}\n")
    checked = cli(["check", str(spec)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "valid" in checked.stdout
    result = cli(["run", str(spec), "--set", "two_theta=[10, 90]"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert meta["two_theta"] == [10.0, 90.0] and meta["n_structures"] == 7
    assert (tmp_path / "out" / "spec.resolved.yaml").exists() and (tmp_path / "out" / "versions.json").exists()


def test_missing_spec_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    result = cli(["check", str(tmp_path / "missing.yaml")])
    assert result.returncode == 2 and "spec file not found" in result.stderr and "Traceback" not in result.stderr
    assert cli(["frobnicate"]).returncode == 2
    assert cli([]).returncode == 2


def test_runtime_failure_is_one_clear_message_and_exit_1(tmp_path: Path, fake_site: FakeSite) -> None:
    fake_site.add_toy()
    spec = tmp_path / "fail.yaml"
    spec.write_text("xrdframe: 1\ntask: toy_count\noutput: out\nvalue: 1\nfail: true\n")
    result = cli(["run", str(spec)], cwd=tmp_path, site=fake_site.root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "xrdframe: error: stage 'toy_count' (task 'toy_count') failed: toy failure as requested")
    assert "Traceback" not in result.stderr
    spec.write_text("xrdframe: 1\ntask: toy_count\noutput: out\nvalue: 1\ncrash: true\n")
    result = cli(["run", str(spec)], cwd=tmp_path, site=fake_site.root)
    assert result.returncode == 1
    assert "xrdframe: error: RuntimeError: toy crash (run with -v for the traceback)" in result.stderr
    assert "Traceback" not in result.stderr
    verbose = cli(["-v", "run", str(spec)], cwd=tmp_path, site=fake_site.root)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_quiet_run_prints_nothing_on_success(tmp_path: Path, fake_site: FakeSite) -> None:
    fake_site.add_toy()
    spec = tmp_path / "ok.yaml"
    spec.write_text("xrdframe: 1\ntask: toy_count\noutput: out\nvalue: 1\n")
    result = cli(["-q", "run", str(spec)], cwd=tmp_path, site=fake_site.root)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_describe_shows_parameters_types_defaults_and_docs(fake_site: FakeSite) -> None:
    fake_site.add_toy()
    result = cli(["describe", "augmentation", "toy_shift", "--json"], site=fake_site.root)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["plugin"] == "toy" and info["distribution"] == "xrdframe-toy"
    assert info["params"] == [
        {"name": "mode", "type": "'uniform' | 'fixed'", "required": False, "default": "uniform", "unit": None,
         "doc": "how the shift is drawn"},
        {"name": "amount", "type": "number", "required": False, "default": 0.1, "unit": "deg", "doc": "shift"},
    ]
    text = cli(["describe", "task", "simulate"])
    assert text.returncode == 0
    assert "structures: structure_source component, required" in text.stdout
    assert "wavelength: number, default 1.5406 [Angstrom]" in text.stdout
    bad = cli(["describe", "task", "simulat"])
    assert bad.returncode == 2 and "did you mean 'simulate'?" in bad.stderr
    bad_kind = cli(["describe", "indexers", "x"])
    assert bad_kind.returncode == 2 and "did you mean 'indexer'?" in bad_kind.stderr
