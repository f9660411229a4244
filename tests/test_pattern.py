"""Readers of measured patterns and peak lists: formats, wavelength rules and clear errors on bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from xrdframe.errors import XrdframeError
from xrdframe.pattern import ObservedPeaks, Pattern, PatternError, is_peak_list, read_pattern, read_peak_list

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "experimental"


def _rows(n: int = 20, start: float = 10.0, step: float = 0.02, sep: str = " ") -> list[str]:
    return [f"{start + step * i:.4f}{sep}{100 + 10 * i}" for i in range(n)]


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------- two-column text


def test_xy_with_comments_and_wavelength(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.xy", ["# sample", "! instrument", "; wavelength: 1.5406", *_rows()])
    pattern = read_pattern(path)
    assert isinstance(pattern, Pattern)
    assert pattern.wavelength == 1.5406
    assert pattern.metadata["wavelength_source"] == "file"
    assert pattern.two_theta.size == 20 and pattern.two_theta[0] == 10.0 and pattern.intensity[-1] == 290.0
    assert pattern.source == str(path)


@pytest.mark.parametrize("comment, expected", [("# lambda=0.7093", 0.7093), ("# Wavelength 0.413259 A", 0.413259),
                                               ("# wavelength (A): 1.78892", 1.78892), ("# no wavelength", None)])
def test_wavelength_comment_forms(tmp_path: Path, comment: str, expected: float | None) -> None:
    assert read_pattern(_write(tmp_path, "a.xy", [comment, *_rows()])).wavelength == expected


@pytest.mark.parametrize("name, sep", [("a.csv", ","), ("a.txt", "\t"), ("a.dat", ";"), ("a.csv", ", ")])
def test_separators_and_header_row(tmp_path: Path, name: str, sep: str) -> None:
    path = _write(tmp_path, name, [f"angle{sep}counts", *_rows(sep=sep)])
    pattern = read_pattern(path, wavelength=1.0)
    assert pattern.two_theta.size == 20 and pattern.intensity[1] == 110.0
    assert pattern.metadata["header"].startswith("angle")


def test_decimal_comma_with_semicolons(tmp_path: Path) -> None:
    lines = [f"{10 + 0.02 * i:.2f};{100 + i}".replace(".", ",") for i in range(15)]
    pattern = read_pattern(_write(tmp_path, "a.csv", lines))
    assert pattern.two_theta[1] == pytest.approx(10.02)


def test_xye_keeps_sigma(tmp_path: Path) -> None:
    lines = [f"{10 + 0.02 * i:.2f} {100 + i} {10 + 0.1 * i:.1f}" for i in range(15)]
    pattern = read_pattern(_write(tmp_path, "a.xye", lines))
    assert pattern.metadata["sigma"][1] == pytest.approx(10.1)


def test_wavelength_precedence_argument_file_index(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.xy", _rows())
    assert read_pattern(path).wavelength is None  # never a silent Cu default
    with open(tmp_path / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "wavelength", "space_group"])
        writer.writerow(["a.xy", "0.7093", "225"])
    pattern = read_pattern(path)
    assert pattern.wavelength == 0.7093 and pattern.metadata["wavelength_source"] == "index.csv"
    assert read_pattern(path, wavelength=1.2).wavelength == 1.2
    commented = _write(tmp_path, "a.xy", ["# wavelength: 1.5406", *_rows()])
    assert read_pattern(commented).wavelength == 1.5406  # the file beats the index


@pytest.mark.parametrize("lines, line, words", [
    (["# c", *_rows(12), "10.5 abc", *_rows(3, start=11)], 14, "'abc' in the intensity column"),
    (["# c", *_rows(12), "x 100", *_rows(3, start=11)], 14, "'x' in the 2theta column"),
    (["# c", *_rows(12), "10.6 nan"], 14, "intensity is nan"),
    (["# c", *_rows(12), "10.6 inf"], 14, "intensity is inf"),
    ([*_rows(12), "10.1 5"], 13, "decreases"),
    ([*_rows(12), "10.22 5"], 13, "is repeated"),
    (["-1 5", *_rows(12)], 1, "0 <= 2theta < 180"),
    ([*_rows(12), "180 5"], 13, "0 <= 2theta < 180"),
    ([*_rows(12), "10.9"], 13, "expected two columns"),
])
def test_bad_text_files_name_the_line(tmp_path: Path, lines: list[str], line: int, words: str) -> None:
    path = _write(tmp_path, "bad.xy", lines)
    with pytest.raises(PatternError) as info:
        read_pattern(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and words in message
    assert info.value.line == line
    assert isinstance(info.value, XrdframeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("content, words", [("", "empty"), ("# only a comment\n", "no numeric data"),
                                            ("\n".join(_rows(5)), "at least 10"),
                                            (b"RAW1.01\x00\x00\x01", "binary")])
def test_empty_short_and_binary_files(tmp_path: Path, content: str | bytes, words: str) -> None:
    path = tmp_path / "a.xy"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PatternError, match=words):
        read_pattern(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="file not found"):
        read_pattern(tmp_path / "nope.xy")
    with pytest.raises(PatternError, match="folder"):
        read_pattern(tmp_path)


def test_truncated_text_never_a_traceback(tmp_path: Path) -> None:
    text = "\n".join(_rows(40))
    for cut in range(5, len(text), 37):
        path = tmp_path / "t.xy"
        path.write_text(text[:cut])
        try:
            read_pattern(path)
        except PatternError:
            pass


# ---------------------------------------------------------------------------------------------- peak lists


def test_peak_list_sorted_with_wavelength(tmp_path: Path) -> None:
    path = _write(tmp_path, "peaks.csv", ["# wavelength: 1.5406", "two_theta,intensity,sigma", "40.0,50,0.01",
                                          "20.0,100,0.02", "30.0,10,0.005"])
    assert is_peak_list(path)
    peaks = read_peak_list(path)
    assert isinstance(peaks, ObservedPeaks) and len(peaks) == 3
    np.testing.assert_allclose(peaks.two_theta, [20, 30, 40])
    np.testing.assert_allclose(peaks.intensity, [100, 10, 50])
    np.testing.assert_allclose(peaks.sigma, [0.02, 0.005, 0.01])
    assert peaks.wavelength == 1.5406


def test_peak_list_positions_only_and_argument_wavelength(tmp_path: Path) -> None:
    peaks = read_peak_list(_write(tmp_path, "p.csv", ["two_theta", "21.5", "12.25"]), wavelength=0.7093)
    np.testing.assert_allclose(peaks.two_theta, [12.25, 21.5])
    assert peaks.intensity is None and peaks.sigma is None and peaks.wavelength == 0.7093


@pytest.mark.parametrize("lines, words", [(["angle,intensity", "20,1"], "starting 'two_theta'"),
                                          (["two_theta,intensity", "20,1", "21,abc"], "line 3"),
                                          (["two_theta,intensity", "-2,1"], "0 < two_theta < 180"),
                                          (["two_theta,intensity"], "no peaks")])
def test_bad_peak_lists(tmp_path: Path, lines: list[str], words: str) -> None:
    with pytest.raises(PatternError, match=words):
        read_peak_list(_write(tmp_path, "p.csv", lines))


def test_is_peak_list(tmp_path: Path) -> None:
    assert not is_peak_list(_write(tmp_path, "a.xy", _rows()))
    assert not is_peak_list(tmp_path / "missing.csv")
    assert is_peak_list(_write(tmp_path, "b.csv", ["# c", "two_theta,intensity", "20,1"]))


# --------------------------------------------------------------------------------------------------- XRDML

XRDML = """<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5" status="Completed">
  <sample type="To be analyzed"><id>s1</id></sample>
  <xrdMeasurement measurementType="Scan" status="Completed" sampleMode="Reflection">
    <usedWavelength intended="{intended}">
      <kAlpha1 unit="Angstrom">1.5405980</kAlpha1>
      <kAlpha2 unit="Angstrom">1.5444260</kAlpha2>
      <kBeta unit="Angstrom">1.3922500</kBeta>
      <ratioKAlpha2KAlpha1>0.5000</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          {positions}
        </positions>
        <positions axis="Omega" unit="deg"><startPosition>5.0</startPosition><endPosition>40.0</endPosition></positions>
        <commonCountingTime unit="seconds">1.0</commonCountingTime>
        <intensities unit="counts">{counts}</intensities>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""


def _xrdml(intended: str = "K-Alpha", positions: str | None = None) -> str:
    counts = " ".join(str(100 + i) for i in range(11))
    positions = positions or "<startPosition>10.00</startPosition><endPosition>80.00</endPosition>"
    return XRDML.format(intended=intended, positions=positions, counts=counts)


def test_xrdml_start_end(tmp_path: Path) -> None:
    path = tmp_path / "a.xrdml"
    path.write_text(_xrdml())
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta, np.linspace(10, 80, 11))
    assert pattern.intensity[0] == 100 and pattern.wavelength == pytest.approx(1.540598)
    assert pattern.metadata["kalpha2"] == pytest.approx(1.544426)
    assert pattern.metadata["kalpha_ratio"] == 0.5 and pattern.metadata["kalpha2_present"] is True


def test_xrdml_list_positions_and_kalpha1_only(tmp_path: Path) -> None:
    listed = "<listPositions>" + " ".join(f"{10 + 2 * i}" for i in range(11)) + "</listPositions>"
    path = tmp_path / "a.xrdml"
    path.write_text(_xrdml("K-Alpha 1", listed))
    pattern = read_pattern(path, wavelength=1.5406)
    assert pattern.two_theta[-1] == 30 and pattern.wavelength == 1.5406
    assert pattern.metadata["kalpha2_present"] is False


def test_truncated_xrdml(tmp_path: Path) -> None:
    text = _xrdml()
    path = tmp_path / "cut.xrdml"
    for cut in (len(text) // 3, text.index("<intensities") + 30, len(text) - 40):
        path.write_text(text[:cut])
        with pytest.raises(PatternError, match="truncated") as info:
            read_pattern(path)
        assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------------- GSAS


def _std_bank(values: list[int]) -> list[str]:
    items = [f"{'':2}{v:6d}" for v in values]
    return ["".join(items[i:i + 10]) for i in range(0, len(items), 10)]


def test_gsas_const_std_with_instprm(tmp_path: Path) -> None:
    values = [100 + i for i in range(25)]
    lines = ["PbSO4 test data", "Instrument parameter file:inst.instprm",
             f"BANK 1 {len(values)} 3 CONST 1000.00 2.00 0 0 STD", *_std_bank(values)]
    path = _write(tmp_path, "a.gsa", lines)
    _write(tmp_path, "inst.instprm", ["#GSAS-II instrument parameter file", "Type:PXC", "Lam1:1.540500",
                                      "Lam2:1.544300", "I(L2)/I(L1):0.5", "Zero:0.0"])
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.two_theta[:3], [10.0, 10.02, 10.04])
    np.testing.assert_allclose(pattern.intensity, values)
    assert pattern.wavelength == 1.5405 and pattern.metadata["kalpha2"] == 1.5443
    assert pattern.metadata["kalpha_ratio"] == 0.5


def test_gsas_const_esd_with_prm(tmp_path: Path) -> None:
    values = [(200.0 + i, 14.0) for i in range(12)]
    items = [f"{v:8.1f}{e:8.2f}" for v, e in values]
    lines = ["title", "BANK 1 12 3 CONS 500.0 1.0 0 0 ESD", *("".join(items[i:i + 5]) for i in range(0, 12, 5))]
    path = _write(tmp_path, "a.gsas", lines)
    _write(tmp_path, "a.prm", ["INS   BANK      1", "INS  1 ICONS  0.709300  0.713590  0.0  0  0.0  0  0.5"])
    pattern = read_pattern(path)
    assert pattern.wavelength == 0.7093 and pattern.metadata["kalpha2"] == 0.71359
    np.testing.assert_allclose(pattern.two_theta[:2], [5.0, 5.01])
    np.testing.assert_allclose(pattern.metadata["sigma"], 14.0)


def test_gsas_fxye(tmp_path: Path) -> None:
    rows = [f"{1000 + 2 * i:.2f} {100 + i:.1f} {10.0:.2f}" for i in range(15)]
    path = _write(tmp_path, "a.fxye", ["title", "BANK 1 15 15 CONST 1000.0 2.0 0 0 FXYE", *rows])
    pattern = read_pattern(path, wavelength=1.5406)
    np.testing.assert_allclose(pattern.two_theta[:2], [10.0, 10.02])
    assert pattern.wavelength == 1.5406 and pattern.metadata["sigma"][0] == 10.0


@pytest.mark.parametrize("lines, words", [(["title", "no bank here"], "no BANK line"),
                                          (["t", "BANK 1 100 10 CONST 1000 2 0 0 STD", *_std_bank([1] * 20)],
                                           "truncated"),
                                          (["t", "BANK 1 10 1 TIME_MAP 1 0 0 0 FXYE"], "not supported")])
def test_bad_gsas(tmp_path: Path, lines: list[str], words: str) -> None:
    with pytest.raises(PatternError, match=words):
        read_pattern(_write(tmp_path, "a.gsa", lines))


# ----------------------------------------------------------------------------------------------- powder CIF


def test_powder_cif_loop(tmp_path: Path) -> None:
    rows = [f"{10 + 0.02 * i:.2f} {100 + i}({10})" for i in range(15)]
    lines = ["data_global", "_diffrn_radiation_wavelength 1.54056", "data_pattern", "loop_",
             "_pd_meas_2theta_scan", "_pd_meas_counts_total", *rows]
    pattern = read_pattern(_write(tmp_path, "a.cif", lines))
    assert pattern.wavelength == 1.54056 and pattern.two_theta.size == 15
    assert pattern.intensity[1] == 101 and pattern.metadata["block"] == "pattern"


def test_powder_cif_range_and_doublet(tmp_path: Path) -> None:
    lines = ["data_p", "loop_", "_diffrn_radiation_wavelength_id", "_diffrn_radiation_wavelength",
             "_diffrn_radiation_wavelength_wt", "1 1.540593 1.0", "2 1.544427 0.5",
             "_pd_meas_2theta_range_min 5.0", "_pd_meas_2theta_range_max 5.22", "_pd_meas_2theta_range_inc 0.02",
             "loop_", "_pd_proc_intensity_total", *[str(50 + i) for i in range(12)]]
    pattern = read_pattern(_write(tmp_path, "a.cif", lines))
    np.testing.assert_allclose(pattern.two_theta[[0, -1]], [5.0, 5.22])
    assert pattern.wavelength == 1.540593 and pattern.metadata["kalpha2"] == 1.544427
    assert pattern.metadata["kalpha_ratio"] == 0.5


@pytest.mark.parametrize("lines, words", [(["data_x", "_cell_length_a 5.0"], "no powder profile"),
                                          (["data_x", "loop_", "_pd_meas_2theta_scan", "_pd_meas_counts_total",
                                            *[f"{10 + i} {'?' if i == 3 else 5}" for i in range(12)]], "value 4"),
                                          (["data_x", "loop_", "_pd_meas_2theta_scan", "_pd_meas_counts_total",
                                            "1 2 3"], "not a readable CIF")])
def test_bad_powder_cif(tmp_path: Path, lines: list[str], words: str) -> None:
    with pytest.raises(PatternError, match=words):
        read_pattern(_write(tmp_path, "a.cif", lines))


# ------------------------------------------------------------------------------------------ shared real data


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent (a fresh clone): no measured patterns")
@pytest.mark.parametrize("name", ["gsas2_tutorials/g2_11bmb_8716_sucrose.xy", "iucr_pdcif/hw5019Isup2__I.xy",
                                  "autoxrd_pvlab/pvlab_000.xy"])
def test_shared_patterns(name: str) -> None:
    path = SHARED / name
    pattern = read_pattern(path)
    row = next(r for r in csv.DictReader(open(path.parent / "index.csv")) if r["path"] == path.name)
    assert pattern.wavelength == pytest.approx(float(row["wavelength"]))
    assert pattern.two_theta.size >= 100 and np.all(np.diff(pattern.two_theta) > 0)
