"""The ``simulate`` task: a peak dataset from CIF files, splits, skipped files, resuming."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import xrdframe_tasks.simulate as simulate_module
from conftest import REPO

from xrdframe.dataset import PeakDataset
from xrdframe.diffraction import simulate_peaks
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_spec_text, validate_spec

EXAMPLES = REPO / "examples" / "structures"


def simulate(out: Path, structures: Path, shard_size: int = 2000, seed: int = 0) -> None:
    text = (f"xrdframe: 1\ntask: simulate\nseed: {seed}\noutput: {out}\n"
            f"structures: {{name: cif_dir, params: {{path: {structures}}}}}\n"
            f"two_theta: [5, 100]\nshard_size: {shard_size}\n")
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(text), registry=registry), registry, quiet=True)


def test_dataset_holds_the_peaks_of_every_structure(tmp_path: Path) -> None:
    folder = tmp_path / "cifs"
    shutil.copytree(EXAMPLES, folder)
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 5\n")
    simulate(tmp_path / "ds", folder, shard_size=3)
    ds = PeakDataset.open(tmp_path / "ds")
    rows = ds.structures()
    assert len(rows) == 7 and ds.meta["n_structures"] == 7 and len(ds.meta["shards"]) == 3
    with open(tmp_path / "ds" / "skipped.csv") as fh:
        skipped = list(csv.DictReader(fh))
    assert [Path(s["source"]).name for s in skipped] == ["broken.cif"]
    assert "no space group" in skipped[0]["reason"] or "no atom sites" in skipped[0]["reason"]
    for row, peaks in zip(rows, ds.peak_lists(), strict=True):
        expected = simulate_peaks(row["source"], 1.5406, (5, 100))
        np.testing.assert_allclose(peaks.two_theta, expected.two_theta)
        np.testing.assert_array_equal(peaks.hkl, expected.hkl)
        np.testing.assert_allclose(peaks.intensity, expected.intensity, rtol=1e-5)
        assert int(row["n_peaks"]) == len(expected)
    assert {r["split"] for r in rows} <= {"train", "val", "test"}
    assert sum(ds.meta["splits"].values()) == 7


def test_splits_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    simulate(tmp_path / "a", EXAMPLES, seed=1)
    simulate(tmp_path / "b", EXAMPLES, seed=1)
    split = lambda d: [r["split"] for r in PeakDataset.open(d).structures()]  # noqa: E731
    assert split(tmp_path / "a") == split(tmp_path / "b")


def test_interrupted_run_resumes_from_finished_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def interrupted(structure, *args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(structure.name)
        return simulate_peaks(structure, *args, **kwargs)

    monkeypatch.setattr(simulate_module, "simulate_peaks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "ds", EXAMPLES, shard_size=2)
    assert sorted(p.name for p in (tmp_path / "ds" / "shards").iterdir()) == ["00000.npz", "00001.npz"]
    assert not (tmp_path / "ds" / "dataset.json").exists()
    calls.clear()
    monkeypatch.setattr(simulate_module, "simulate_peaks", lambda s, *a, **k: calls.append(s.name) or
                        simulate_peaks(s, *a, **k))
    simulate(tmp_path / "ds", EXAMPLES, shard_size=2)
    assert len(calls) == 3  # the four structures of the two finished shards are not simulated again
    simulate(tmp_path / "fresh", EXAMPLES, shard_size=2)
    resumed, fresh = PeakDataset.open(tmp_path / "ds"), PeakDataset.open(tmp_path / "fresh")
    assert resumed.structures() == [dict(r, source=r["source"]) for r in fresh.structures()]
    for a, b in zip(resumed.peak_lists(), fresh.peak_lists(), strict=True):
        np.testing.assert_array_equal(a.two_theta, b.two_theta)
