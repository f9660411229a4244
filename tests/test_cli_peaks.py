"""``xrdframe peaks``: a CIF's simulated powder peak list as CSV on stdout."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NACL = REPO / "examples" / "structures" / "NaCl.cif"
HEADER = ["two_theta", "d", "h", "k", "l", "multiplicity", "intensity"]


def peaks_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("XRDFRAME_DISABLE_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "xrdframe", "peaks", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def parse(stdout: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(stdout))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def by_hkl(rows: list[dict[str, str]]) -> dict[tuple[int, int, int], dict[str, str]]:
    return {(int(r["h"]), int(r["k"]), int(r["l"])): r for r in rows}


@pytest.fixture(scope="module")
def nacl_cu() -> tuple[list[str], list[dict[str, str]]]:
    result = peaks_cli(str(NACL))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return parse(result.stdout)


def test_csv_header_sorting_and_scale(nacl_cu) -> None:
    header, rows = nacl_cu
    assert header == HEADER
    assert len(rows) > 10
    two_theta = [float(r["two_theta"]) for r in rows]
    assert two_theta == sorted(two_theta)
    assert 0 < two_theta[0] and two_theta[-1] <= 120.0  # default range 0-120 deg
    intensities = [r["intensity"] for r in rows]
    assert max(float(i) for i in intensities) == 100.0
    assert "100.000" in intensities
    assert all(0 < float(i) <= 100.0 for i in intensities)


def test_rock_salt_lines_and_bragg_law(nacl_cu) -> None:
    _, rows = nacl_cu
    lines = by_hkl(rows)
    # F lattice: only unmixed hkl; first lines 111, 200, 220, 311, 222 with multiplicities 8, 6, 12, 24, 8
    assert [(int(r["h"]), int(r["k"]), int(r["l"])) for r in rows[:5]] == [(1, 1, 1), (2, 0, 0), (2, 2, 0),
                                                                           (3, 1, 1), (2, 2, 2)]
    assert [int(r["multiplicity"]) for r in rows[:5]] == [8, 6, 12, 24, 8]
    assert float(lines[(2, 0, 0)]["intensity"]) == 100.0  # the strongest NaCl line
    for hkl, r in lines.items():
        assert len({x % 2 for x in hkl}) == 1
        d = 5.6402 / math.sqrt(sum(x * x for x in hkl))  # cubic d-spacing of the CIF's cell
        assert float(r["d"]) == pytest.approx(d, abs=6e-6)
        assert float(r["two_theta"]) == pytest.approx(2 * math.degrees(math.asin(1.5406 / (2 * d))), abs=6e-5)
    assert float(lines[(2, 0, 0)]["two_theta"]) == pytest.approx(31.70, abs=0.005)


def test_wavelength_moves_lines_by_bragg_law(nacl_cu) -> None:
    _, cu_rows = nacl_cu
    result = peaks_cli(str(NACL), "--wavelength", "0.7093")
    assert result.returncode == 0, result.stderr
    header, mo_rows = parse(result.stdout)
    assert header == HEADER
    cu, mo = by_hkl(cu_rows), by_hkl(mo_rows)
    common = set(cu) & set(mo)
    assert len(common) == len(cu)  # at Mo, 0-120 deg reaches every line of Cu's 0-120 deg and more
    assert len(mo) > len(cu)
    for hkl in common:
        assert mo[hkl]["d"] == cu[hkl]["d"]
        assert mo[hkl]["multiplicity"] == cu[hkl]["multiplicity"]
        theta_cu = math.radians(float(cu[hkl]["two_theta"])) / 2
        expected = 2 * math.degrees(math.asin(0.7093 / 1.5406 * math.sin(theta_cu)))  # sin(theta) ~ lambda
        assert float(mo[hkl]["two_theta"]) == pytest.approx(expected, abs=2e-4)
    mo_tt = [float(r["two_theta"]) for r in mo_rows]
    assert mo_tt == sorted(mo_tt) and max(float(r["intensity"]) for r in mo_rows) == 100.0


def test_two_theta_range_options() -> None:
    result = peaks_cli(str(NACL), "--two-theta-min", "30", "--two-theta-max", "50")
    assert result.returncode == 0, result.stderr
    _, rows = parse(result.stdout)
    assert [(r["h"], r["k"], r["l"]) for r in rows] == [("2", "0", "0"), ("2", "2", "0")]
    assert rows[0]["intensity"] == "100.000"


def test_missing_file_exits_2_naming_it_without_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_structure.cif"
    result = peaks_cli(str(missing))
    assert result.returncode == 2
    assert "no_such_structure.cif" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unreadable_file_exits_2_without_traceback(tmp_path: Path) -> None:
    notes = tmp_path / "notes.cif"
    notes.write_text("This is a lab notebook, not a CIF.\n{ x = 1 }\n")
    result = peaks_cli(str(notes))
    assert result.returncode == 2
    assert str(notes) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--wavelength", "-1"], ["--wavelength", "abc"], ["--two-theta-max", "0"],
                                  ["--two-theta-min", "90", "--two-theta-max", "30"],
                                  ["--two-theta-max", "200"]])
def test_invalid_options_exit_2_without_traceback(args: list[str]) -> None:
    result = peaks_cli(str(NACL), *args)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr and result.stderr.strip()


def test_empty_file_exits_2_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    result = peaks_cli(str(empty))
    assert result.returncode == 2
    assert str(empty) in result.stderr and "the file is empty" in result.stderr and "Traceback" not in result.stderr
