"""Pattern sources: ``pattern_files`` (index.csv / glob), the format fixtures, simulated ``equivariance`` and
``invariance`` test sets."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import xrdframe
from xrdframe.errors import SpecError, XrdframeError
from xrdframe.pattern import ObservedPeaks, Pattern, PatternError, is_peak_list, read_pattern
from xrdframe.sources import LabelledPattern, PatternSource

FIXTURES = REPO / "tests" / "fixtures" / "patterns"


def source(**params: object) -> PatternSource:
    made = xrdframe.create("pattern_source", "pattern_files", **params)
    assert isinstance(made, PatternSource)
    return made


@pytest.fixture(scope="module")
def fixture_items() -> dict[str, LabelledPattern]:
    items = list(source(index=str(FIXTURES / "index.csv")).patterns(0))
    return {item.id: item for item in items}


# ---------------------------------------------------------------------------------- readers on the fixtures

# file -> (points, first 2theta, last 2theta, wavelength, K-alpha2 from the file or None, format)
FORMATS = {
    "NaCl.xrdml": (2001, 20.0, 100.0, 1.540598, 1.544426, "xrdml"),
    "Si.gsa": (4000, 15.0, 94.98, 1.540593, 1.544427, "gsas-std"),
    "CsCl.fxye": (1851, 8.0, 45.0, 0.7093, 0.71359, "gsas-fxye"),
    "TiO2_rutile.raw": (3000, 20.0, 94.975, 1.5406, None, "gsas-esd"),
    "Al2O3_corundum.cif": (4501, 20.0, 110.0, 1.788965, 1.79285, "pdcif"),
    "ZnO_zincite.cif": (3001, 5.0, 35.0, 0.7, None, "pdcif"),
    "SiO2_quartz.xye": (3751, 15.0, 90.0, 1.540593, 1.544427, "xy"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_fixture(name: str) -> None:
    points, first, last, wavelength, kalpha2, fmt = FORMATS[name]
    pattern = read_pattern(FIXTURES / name)
    assert len(pattern) == points and pattern.metadata["format"] == fmt
    assert pattern.two_theta[0] == pytest.approx(first) and pattern.two_theta[-1] == pytest.approx(last)
    assert pattern.wavelength == pytest.approx(wavelength) and pattern.metadata["wavelength_source"] == "file"
    assert pattern.metadata.get("kalpha2") == (None if kalpha2 is None else pytest.approx(kalpha2))
    assert np.all(np.diff(pattern.two_theta) > 0) and np.all(np.isfinite(pattern.intensity))
    # the strongest line of each fixture sits where its structure's strongest reflection is
    peaks = xrdframe.simulate_peaks(REPO / "examples" / "structures" / _structure(name), wavelength,
                                    (first, last))
    strongest = peaks.two_theta[np.argsort(peaks.intensity)[-3:]]  # overlapping lines may add up differently
    assert np.min(np.abs(pattern.two_theta[np.argmax(pattern.intensity)] - strongest)) < 0.1


def _structure(name: str) -> str:
    return {"NaCl": "NaCl", "Si": "Si", "CsCl": "CsCl", "TiO2_rutile": "TiO2_rutile",
            "Al2O3_corundum": "Al2O3_corundum", "ZnO_zincite": "ZnO_zincite",
            "SiO2_quartz": "SiO2_quartz"}[Path(name).stem] + ".cif"


def test_xrdml_fixture_ratio_and_xye_sigma() -> None:
    assert read_pattern(FIXTURES / "NaCl.xrdml").metadata["kalpha_ratio"] == 0.5
    assert read_pattern(FIXTURES / "Si.gsa").metadata["kalpha_ratio"] == 0.5
    assert read_pattern(FIXTURES / "CsCl.fxye").metadata["kalpha_ratio"] == 0.5
    assert read_pattern(FIXTURES / "Al2O3_corundum.cif").metadata["kalpha_ratio"] == 0.5
    sigma = read_pattern(FIXTURES / "SiO2_quartz.xye").metadata["sigma"]
    assert sigma.shape == (3751,) and np.all(sigma > 0)


def test_csv_with_two_theta_header_is_a_profile_not_a_peak_list(tmp_path: Path) -> None:
    rows = [f"{10 + 0.02 * i:.2f},{100 + i % 7}" for i in range(400)]
    profile = tmp_path / "p.csv"
    profile.write_text("two_theta,intensity\n" + "\n".join(rows) + "\n")
    assert not is_peak_list(profile)
    peaks = tmp_path / "peaks.csv"
    peaks.write_text("two_theta,intensity\n20.1,100\n28.4,40\n33.0,12\n")
    assert is_peak_list(peaks)
    assert not is_peak_list(FIXTURES / "NaCl_header.csv")


# ------------------------------------------------------------------------------------ pattern_files (index)


def test_index_reads_labels_wavelengths_and_keeps_extra_columns(fixture_items: dict[str, LabelledPattern]) -> None:
    rows = {r["path"]: r for r in csv.DictReader(open(FIXTURES / "index.csv"))}
    assert list(fixture_items) == list(rows)  # every row, in order, bad ones included
    good = [k for k, item in fixture_items.items() if item.data is not None]
    assert sorted(good) == sorted([*FORMATS, "NaCl_header.csv"])
    for key in good:
        item, row = fixture_items[key], rows[key]
        assert isinstance(item.data, Pattern)
        assert item.space_group == int(row["space_group"])
        assert item.cell == pytest.approx(tuple(float(row[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")))
        assert item.extra["name"] == row["name"] and item.error is None
    csv_item = fixture_items["NaCl_header.csv"]  # no wavelength in the file: the index row's
    assert csv_item.data.wavelength == 1.5406 and csv_item.data.metadata["wavelength_source"] == "index"


# bad input -> what the message must name (the file, the line and the fault)
BAD = {
    "truncated.xrdml": ("truncated.xrdml, line 51", "truncated"),
    "text_intensity.csv": ("text_intensity.csv, line 41", "'overflow' in the intensity column"),
    "decreasing.xy": ("decreasing.xy, line 33", "expected strictly increasing 2theta"),
    "nan_intensity.xy": ("nan_intensity.xy, line 52", "intensity is nan"),
    "missing.xy": ("missing.xy", "file not found"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_yielded_with_a_clear_error(fixture_items: dict[str, LabelledPattern], name: str) -> None:
    item = fixture_items[name]
    assert item.data is None
    where, what = BAD[name]
    assert where in item.error and what in item.error
    line = next(i for i, r in enumerate(csv.DictReader(open(FIXTURES / "index.csv")), start=2) if r["path"] == name)
    assert f"index.csv, line {line}" in item.error  # and the index row that lists it
    assert item.space_group == 225  # the labels are kept for the report


def _index(folder: Path, rows: list[str], header: str = "path,wavelength,space_group,a,b,c,alpha,beta,gamma") -> Path:
    path = folder / "index.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _xy(folder: Path, name: str, wavelength: float | None = None) -> Path:
    lines = ([f"# wavelength: {wavelength}"] if wavelength else []) + [f"{10 + 0.05 * i:.2f} {100 + (i % 9) * 30}"
                                                                       for i in range(300)]
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_wavelength_file_then_index_then_spec_else_error(tmp_path: Path) -> None:
    _xy(tmp_path, "file.xy", 0.7093)
    _xy(tmp_path, "index.xy")
    _xy(tmp_path, "spec.xy")
    _xy(tmp_path, "sub/none.xy")
    index = _index(tmp_path, ["file.xy,1.5406,225,,,,,,", "index.xy,1.5406,,,,,,,", "spec.xy,,14,,,,,,",
                              "sub/none.xy,,,,,,,,"])
    items = {i.id: i for i in source(index=str(index)).patterns(0)}
    assert items["file.xy"].data.wavelength == 0.7093  # the file wins
    assert "wavelength_note" in items["file.xy"].extra
    assert items["index.xy"].data.wavelength == 1.5406
    assert items["spec.xy"].data is None and "no wavelength" in items["spec.xy"].error
    assert "index.csv, line 4" in items["spec.xy"].error and "spec.xy" in items["spec.xy"].error
    items = {i.id: i for i in source(index=str(index), wavelength=1.0).patterns(0)}
    assert items["spec.xy"].data.wavelength == 1.0 and items["sub/none.xy"].data.wavelength == 1.0
    assert items["spec.xy"].data.metadata["wavelength_source"] == "spec"
    assert items["file.xy"].data.wavelength == 0.7093 and items["index.xy"].data.wavelength == 1.5406


@pytest.mark.parametrize("row, words", [
    ("a.xy,1.5406,231,,,,,,", "space_group '231' is not an integer from 1 to 230"),
    ("a.xy,1.5406,P21/c,,,,,,", "space_group 'P21/c'"),
    ("a.xy,1.5406,14,5.0,6.0,,90,100,90", "must be six positive numbers"),
    ("a.xy,fast,14,,,,,,", "wavelength 'fast' is not a positive number"),
    (",1.5406,14,,,,,,", "empty 'path'"),
])
def test_bad_index_rows_name_the_index_line(tmp_path: Path, row: str, words: str) -> None:
    _xy(tmp_path, "a.xy")
    index = _index(tmp_path, ["a.xy,1.5406,225,,,,,,", row])
    items = list(source(index=str(index)).patterns(0))
    assert items[0].data is not None
    assert items[1].data is None and words in items[1].error and "index.csv, line 3" in items[1].error


def test_cell_lengths_only_get_the_angles_their_system_fixes(tmp_path: Path) -> None:
    for name in ("t.xy", "h.xy", "r.xy", "m.xy"):
        _xy(tmp_path, name)
    index = _index(tmp_path, ["t.xy,1.5406,127,12.646,12.646,3.9551,,,", "h.xy,1.5406,186,3.25,3.25,5.21,,,",
                              "r.xy,1.5406,167,5.0,5.0,5.0,,,", "m.xy,1.5406,14,5.0,6.0,7.0,,,"])
    items = {i.id: i for i in source(index=str(index)).patterns(0)}
    assert items["t.xy"].cell == (12.646, 12.646, 3.9551, 90.0, 90.0, 90.0)  # tetragonal
    assert items["h.xy"].cell == (3.25, 3.25, 5.21, 90.0, 90.0, 120.0)  # hexagonal axes
    for name in ("r.xy", "m.xy"):  # rhombohedral axes or monoclinic: the angles are not implied
        assert items[name].data is None and "must be six positive numbers" in items[name].error


def test_bruker_binary_raw_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "scan.raw"
    path.write_bytes(b"RAW4.00" + bytes(200))
    with pytest.raises(PatternError, match=r"scan\.raw.*Bruker DIFFRAC \.raw.*export the scan as \.xy or \.xrdml"):
        read_pattern(path)


def test_unusable_index_files_raise(tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="index file not found"):
        list(source(index=str(tmp_path / "nope.csv")).patterns(0))
    index = _index(tmp_path, ["a.xy,1.5"], header="file,wavelength")
    with pytest.raises(PatternError, match="no 'path' column"):
        source(index=str(index)).count()


def test_index_may_list_peak_lists_and_quoted_multiline_fields(tmp_path: Path) -> None:
    (tmp_path / "peaks.csv").write_text("two_theta,intensity\n31.7,100\n45.5,60\n56.5,20\n")
    _xy(tmp_path, "a.xy")
    index = _index(tmp_path, ['peaks.csv,1.5406,225,,,,,,,"two\nlines"', "a.xy,1.5406,14,,,,,,,x"],
                   header="path,wavelength,space_group,a,b,c,alpha,beta,gamma,note")
    items = list(source(index=str(index)).patterns(0))
    assert isinstance(items[0].data, ObservedPeaks) and items[0].data.wavelength == 1.5406
    assert items[0].extra["note"] == "two\nlines" and items[1].space_group == 14


def test_exactly_one_of_index_and_glob() -> None:
    with pytest.raises(SpecError, match="exactly one of 'index'"):
        source()
    with pytest.raises(SpecError, match="exactly one of 'index'"):
        source(index="a.csv", glob="*.xy")


# ------------------------------------------------------------------------------------- pattern_files (glob)


def test_glob_and_folder_without_labels(tmp_path: Path) -> None:
    for name in ("NaCl.xrdml", "Si.gsa", "Si.instprm", "decreasing.xy"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    _xy(tmp_path, "sub/deep.xy", 1.0)
    folder_items = list(source(glob=str(tmp_path)).patterns(0))
    assert [i.id for i in folder_items] == ["NaCl.xrdml", "Si.gsa", "decreasing.xy"]  # .instprm is not a pattern
    assert all(i.space_group is None and i.cell is None for i in folder_items)
    assert folder_items[2].data is None and "decreasing.xy, line 33" in folder_items[2].error
    items = list(source(glob=str(tmp_path / "**" / "*.xy")).patterns(0))
    assert [i.id for i in items] == ["decreasing.xy", "sub/deep.xy"]
    with pytest.raises(PatternError, match="no pattern file matches"):
        list(source(glob=str(tmp_path / "*.nothing")).patterns(0))


# ----------------------------------------------------------------------------------------- simulated sets


@pytest.fixture(scope="module")
def peak_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xrdframe.plugin.manager import Registry
    from xrdframe.run import run_pipeline
    from xrdframe.spec import load_spec_text, validate_spec

    out = tmp_path_factory.mktemp("peaks")
    text = (f"xrdframe: 1\ntask: simulate\nseed: 0\noutput: '{out}'\n"
            f"structures: {{name: cif_dir, params: {{path: '{REPO / 'examples' / 'structures'}'}}}}\n"
            "splits: {train: 0.5, test: 0.5}\n")
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(text), registry=registry), registry, quiet=True)
    return out


def test_simulated_sets_are_seeded_labelled_profiles(peak_dataset: Path) -> None:
    from xrdframe.dataset import PeakDataset

    dataset = PeakDataset.open(peak_dataset)
    ids = [row["id"] for row in dataset.structures()]
    for kind, split in (("equivariance", "test"), ("invariance", "train")):
        made = xrdframe.create("pattern_source", kind, data=str(peak_dataset), views=2)
        expected = [ids[i] for i in dataset.split_indices(split)]
        items = list(made.patterns(3))
        assert made.count() == len(items) == 2 * len(expected)
        assert [i.extra["structure"] for i in items] == expected * 2
        assert [i.id for i in items[:len(expected)]] == [f"{s}#0" for s in expected]
        again = list(made.patterns(3))
        other = list(made.patterns(4))
        for a, b, c in zip(items, again, other, strict=True):
            assert isinstance(a.data, Pattern) and a.data.wavelength == 1.540593 and len(a.data) == 6000
            np.testing.assert_array_equal(a.data.intensity, b.data.intensity)  # same seed: bit for bit
            assert not np.array_equal(a.data.intensity, c.data.intensity)
            assert a.space_group == int(dataset.labels("space_group")[ids.index(a.extra["structure"])])
            assert a.cell == pytest.approx(tuple(dataset.labels("cell")[ids.index(a.extra["structure"])]))
        views = {(i.extra["structure"], i.extra["view"]): i for i in items}
        s = expected[0]
        assert not np.array_equal(views[(s, "0")].data.intensity, views[(s, "1")].data.intensity)
        assert items[0].data.metadata["kalpha2_present"] is True


def test_simulated_limit_split_and_regime(peak_dataset: Path) -> None:
    made = xrdframe.create("pattern_source", "invariance", data=str(peak_dataset), limit=2, split="test",
                           augmentations=[{"name": "pseudo_voigt"}], two_theta=[10.0, 90.0], step=0.05,
                           wavelength=0.7093)
    items = list(made.patterns(0))
    assert len(items) == made.count() == 2 and {i.extra["split"] for i in items} == {"test"}
    assert len(items[0].data) == 1600 and items[0].data.wavelength == 0.7093
    assert items[0].data.metadata["kalpha2_present"] is False
    assert np.all(items[0].data.intensity >= 0)  # no noise operator: a clean profile


def test_simulated_errors(peak_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(XrdframeError, match="no split 'val'"):
        list(xrdframe.create("pattern_source", "equivariance", data=str(peak_dataset), split="val").patterns(0))
    with pytest.raises(XrdframeError, match="not a peak dataset"):
        xrdframe.create("pattern_source", "equivariance", data=str(tmp_path)).count()


def test_default_regimes_match_the_augmentation_examples() -> None:
    from xrdframe_patterns.simulated import INVARIANCE_REGIME, TRAINING_REGIME

    from xrdframe.api import resolve
    from xrdframe.spec import load_spec_file, validate_spec

    for regime, spec in ((TRAINING_REGIME, "augment_training.yaml"), (INVARIANCE_REGIME, "augment_invariance.yaml")):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(REPO)
            (stage,) = validate_spec(load_spec_file(REPO / "examples" / spec)).stages
        from_spec = [(ref.name, ref.params) for ref in stage.task.params.augmentations]
        built_in = [(e["name"], resolve("augmentation", e["name"], **e["params"]).params) for e in regime]
        assert built_in == from_spec, spec
