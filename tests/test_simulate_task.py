"""The ``simulate`` and ``merge`` tasks: peak datasets, splits, workers, parts, resuming after a kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from xrdframe.dataset import SHARD_ARRAYS, PeakDataset
from xrdframe.diffraction import simulate_peaks
from xrdframe.errors import XrdframeError
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_spec_text, validate_spec
from xrdframe.symmetry import CRYSTAL_SYSTEMS, symmetry_labels

EXAMPLES = REPO / "examples" / "structures"


def spec(out: Path, structures: Path, **keys: object) -> str:
    extra = "".join(f"{k}: {v}\n" for k, v in keys.items())
    return (f"xrdframe: 1\ntask: simulate\nseed: 0\noutput: {out}\n"
            f"structures: {{name: cif_dir, params: {{path: '{structures}'}}}}\ntwo_theta: [5, 100]\n{extra}")


def run_text(text: str) -> None:
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(text), registry=registry), registry, quiet=True)


def simulate(out: Path, structures: Path, **keys: object) -> PeakDataset:
    run_text(spec(out, structures, **keys))
    return PeakDataset.open(out)


def assert_same_dataset(a: PeakDataset, b: PeakDataset) -> None:
    assert len(a) == len(b)
    assert a.structures() == b.structures()
    for name in ("space_group", "crystal_system", "extinction_group", "split", "cell"):
        np.testing.assert_array_equal(a.labels(name), b.labels(name))
    for i in range(len(a)):
        pa, pb = a.peaks(i), b.peaks(i)
        np.testing.assert_array_equal(pa.two_theta, pb.two_theta)
        np.testing.assert_array_equal(pa.intensity, pb.intensity)


def test_dataset_holds_peaks_labels_and_skipped_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifs"
    shutil.copytree(EXAMPLES, folder)
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 5\n")
    ds = simulate(tmp_path / "ds", folder, shard_size=3)
    assert len(ds) == 7 and ds.meta["n_skipped"] == 1 and len(ds.meta["shards"]) == 3
    assert [Path(r["source"]).name for r in ds.skipped()] == ["broken.cif"]
    assert "broken.cif" in (tmp_path / "ds" / "skipped.csv").read_text()
    rows = ds.structures()
    assert [r["id"] for r in rows] == sorted(p.name for p in EXAMPLES.glob("*.cif"))
    for i, row in enumerate(rows):
        expected = simulate_peaks(row["source"], 1.5406, (5, 100))
        peaks = ds.peaks(i)
        np.testing.assert_allclose(peaks.two_theta, expected.two_theta)
        np.testing.assert_array_equal(peaks.hkl, expected.hkl)
        np.testing.assert_allclose(peaks.intensity, expected.intensity, rtol=1e-6)
        sg = int(ds.labels("space_group")[i])
        labels = symmetry_labels(sg)
        assert CRYSTAL_SYSTEMS[ds.labels("crystal_system")[i]] == labels.crystal_system
        assert ds.labels("extinction_group")[i] == labels.extinction_group
    assert ds.split_names == ["train", "val", "test"]
    assert sorted(np.concatenate([ds.split_indices(s) for s in ds.split_names]).tolist()) == list(range(7))
    for name, dtype in SHARD_ARRAYS.items():
        assert np.load(tmp_path / "ds" / "shards" / "00000" / f"{name}.npy", allow_pickle=False).dtype == dtype


def test_splits_follow_structure_ids_not_order_or_sharding(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", EXAMPLES, shard_size=2)
    b = simulate(tmp_path / "b", EXAMPLES, shard_size=100)
    np.testing.assert_array_equal(a.labels("split"), b.labels("split"))
    c = simulate(tmp_path / "c", EXAMPLES, split_seed=1)
    assert len(c) == 7


def test_two_workers_write_the_same_dataset_as_one(tmp_path: Path) -> None:
    one = simulate(tmp_path / "one", EXAMPLES, shard_size=2)
    two = simulate(tmp_path / "two", EXAMPLES, shard_size=2, workers=2)
    assert_same_dataset(one, two)


def test_parts_on_several_machines_merge_into_the_whole(tmp_path: Path) -> None:
    whole = simulate(tmp_path / "whole", EXAMPLES, shard_size=2)
    for i in range(3):
        simulate(tmp_path / f"part{i}", EXAMPLES, shard_size=2, shard=f"'{i}/3'")
    assert [s["index"] for s in PeakDataset.open(tmp_path / "part1").meta["shards"]] == [1]
    merge = f"xrdframe: 1\ntask: merge\noutput: {tmp_path / 'merged'}\ninputs: [{{parts}}]\n"
    with pytest.raises(XrdframeError, match=r"shards 2 of 4 are in none of the inputs"):
        run_text(merge.format(parts=f"{tmp_path / 'part0'}, {tmp_path / 'part1'}"))
    run_text(merge.format(parts=", ".join(str(tmp_path / f"part{i}") for i in range(3))))
    merged = PeakDataset.open(tmp_path / "merged")
    assert merged.verify() == []
    assert_same_dataset(whole, merged)
    simulate(tmp_path / "other", EXAMPLES, shard_size=2, shard="'0/3'", wavelength=0.7093)
    with pytest.raises(XrdframeError, match=r"another configuration .*differs in: wavelength, config"):
        run_text(merge.format(parts=f"{tmp_path / 'other'}, {tmp_path / 'part1'}, {tmp_path / 'part2'}"))


def test_corrupted_shard_is_recomputed_alone(tmp_path: Path) -> None:
    ds = simulate(tmp_path / "ds", EXAMPLES, shard_size=2)
    shard_dirs = sorted((tmp_path / "ds" / "shards").iterdir())
    stamps = {p.name: (p / "shard.json").stat().st_mtime_ns for p in shard_dirs}
    intensity = shard_dirs[1] / "intensity.npy"
    raw = bytearray(intensity.read_bytes())
    raw[-1] ^= 0xFF
    intensity.write_bytes(bytes(raw))
    assert ds.verify() == ["00001"]
    again = simulate(tmp_path / "ds", EXAMPLES, shard_size=2)
    changed = [p.name for p in shard_dirs if (p / "shard.json").stat().st_mtime_ns != stamps[p.name]]
    assert changed == ["00001"] and again.verify() == []


def test_bad_input_never_writes_an_empty_dataset(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XrdframeError, match="no CIF files found"):
        simulate(tmp_path / "out1", empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.cif").write_text("not a cif at all {")
    (bad / "b.cif").write_text("data_b\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n")
    with pytest.raises(XrdframeError, match=r"no usable structure among 2 \(2 skipped"):
        simulate(tmp_path / "out2", bad)
    assert not (tmp_path / "out2" / "dataset.json").exists()


def test_killed_run_resumes_without_redoing_finished_shards(tmp_path: Path, shared_data: Path) -> None:
    structures = shared_data / "structures" / "spglib"
    text = spec(tmp_path / "ds", structures, shard_size=10)
    (tmp_path / "sim.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "XRDFRAME_DISABLE_PLUGINS"}
    command = [sys.executable, "-m", "xrdframe", "-q", "run", str(tmp_path / "sim.yaml")]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    shards = tmp_path / "ds" / "shards"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if shards.is_dir() and len([p for p in shards.iterdir() if not p.name.startswith(".")]) >= 3:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the run finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "ds" / "dataset.json").exists()
    finished = {p.name: (p / "shard.json").stat().st_mtime_ns for p in shards.iterdir()
                if not p.name.startswith(".") and (p / "shard.json").exists()}
    assert 3 <= len(finished) < 46
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name, stamp in finished.items():
        assert (shards / name / "shard.json").stat().st_mtime_ns == stamp, f"shard {name} was redone"
    resumed = PeakDataset.open(tmp_path / "ds")
    assert resumed.verify() == [] and len(resumed.meta["shards"]) == 46
    fresh = simulate(tmp_path / "fresh", structures, shard_size=10, workers=2)
    assert_same_dataset(resumed, fresh)


def test_open_shards_stay_within_the_open_file_budget(tmp_path: Path) -> None:
    ds = simulate(tmp_path / "ds", EXAMPLES, shard_size=1)
    ds._max_open = 3
    expected = [simulate_peaks(r["source"], 1.5406, (5, 100)).two_theta for r in ds.structures()]
    for _ in range(2):
        for i in range(len(ds)):
            np.testing.assert_allclose(ds.peaks(i).two_theta, expected[i])
            assert len(ds._shards) <= 3
    assert list(ds._shards) == [4, 5, 6]  # the least recently used shards were closed
