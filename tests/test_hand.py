"""The ``hand`` indexer: features by their definition, wavelength conversion, padding, deterministic training,
safe saving and loading, train -> evaluate -> predict through specs and through ``xrdframe.create``."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from xrdframe_hand.features import CU_WAVELENGTH, PAD, FeatureDefinition, features, peak_list_features
from xrdframe_hand.indexer import default_model_path
from xrdframe_hand.model import LABELS, TRUSTED_TYPES, HandModel, load_model, save_model

import xrdframe
from xrdframe.errors import XrdframeError
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_spec_text, validate_spec
from xrdframe.symmetry import CRYSTAL_SYSTEMS, crystal_system

MO = 0.7093
#: d-spacings (Angstrom) of a made-up pattern, deliberately unsorted: 12 of them are below 90 deg at Cu
#: (d >= 1.0902 A), 1.0 A is beyond 90 deg at Cu and 0.5 A cannot be reached at Cu at all.
D = np.array([3.0, 5.0, 2.2, 4.0, 1.2, 2.8, 3.5, 1.0, 2.5, 1.8, 0.5, 2.0, 1.6, 1.5])
EXACT = FeatureDefinition(intensity_threshold=0.0, merge_width=0.0)
PEAK_AUGMENT = [{"name": "zero_shift"}, {"name": "peak_position_noise"}, {"name": "peak_crop"},
                {"name": "impurity_peaks"}]


def two_theta_of(d: np.ndarray, wavelength: float) -> np.ndarray:
    """Bragg's law, degrees; NaN where the reflection cannot be reached."""
    s = wavelength / (2.0 * d)
    return np.array([2.0 * math.degrees(math.asin(v)) if v <= 1.0 else math.nan for v in s])


def run(spec: dict[str, Any]) -> None:
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(yaml.safe_dump(spec)), registry=registry), registry, quiet=True)


def train_spec(out: Path, peaks: Path, seed: int = 3, **params: Any) -> dict[str, Any]:
    indexer = {"n_estimators": 12, "views": 2, **params}
    return {"xrdframe": 1, "task": "train", "seed": seed, "output": str(out), "data": {"path": str(peaks)},
            "augmentations": PEAK_AUGMENT, "indexer": {"name": "hand", "params": indexer}}


@pytest.fixture(scope="module")
def peaks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hand") / "peaks"
    run({"xrdframe": 1, "task": "simulate", "seed": 0, "output": str(out), "two_theta": [0.0, 100.0],
         "structures": {"name": "random_structures", "params": {"count": 240, "max_atoms_asymmetric": 3}},
         "splits": {"train": 0.7, "val": 0.15, "test": 0.15}})
    return out


@pytest.fixture(scope="module")
def trained(peaks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hand") / "model"
    run(train_spec(out, peaks))
    return out


def probe_features(n: int = 200, seed: int = 0) -> np.ndarray:
    """Feature vectors of random sorted peak lists (for comparing models)."""
    rng = np.random.default_rng(seed)
    tt = np.sort(rng.uniform(5.0, 95.0, size=(n, 25)), axis=1)
    return features(tt, rng.uniform(1.0, 100.0, size=tt.shape), CU_WAVELENGTH, EXACT)


def probabilities(model: HandModel, x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: model.estimators[name].predict_proba(x.astype(np.float32)) for name in LABELS}


# ---------------------------------------------------------------- features


def test_features_follow_the_definition() -> None:
    expected_tt = np.sort(two_theta_of(D[D >= 1.2], CU_WAVELENGTH))  # the 12 peaks in (0, 90] deg at Cu
    assert len(expected_tt) == 12 and expected_tt[-1] < 90.0 < two_theta_of(np.array([1.0]), CU_WAVELENGTH)[0]
    x = peak_list_features(two_theta_of(D[D >= 1.0], CU_WAVELENGTH), None, CU_WAVELENGTH, EXACT)
    assert x.shape == (11,)
    np.testing.assert_allclose(x[:10], expected_tt[:10], rtol=0, atol=1e-12)
    assert x[10] == 12.0


def test_merging_and_intensity_threshold() -> None:
    definition = FeatureDefinition(intensity_threshold=0.05, merge_width=0.05)
    tt = [20.0, 20.03, 25.0, 40.0, 40.04, 40.08, 60.0]
    intensity = [30.0, 10.0, 100.0, 1.0, 1.0, 1.0, 4.0]
    x = peak_list_features(tt, intensity, CU_WAVELENGTH, definition)
    # 20.0 + 20.03 merge (weighted 20.0075, 40 units); the chain 40.0-40.08 merges into one line of 3 units,
    # below 5 % of the strongest (100) like the 60 deg line: both dropped
    np.testing.assert_allclose(x[:2], [20.0075, 25.0], atol=1e-12)
    assert (x[2:10] == PAD).all() and x[10] == 2.0
    # without intensities no threshold applies and merging uses plain means
    y = peak_list_features(tt, None, CU_WAVELENGTH, definition)
    np.testing.assert_allclose(y[:4], [20.015, 25.0, 40.04, 60.0], atol=1e-12)
    assert y[10] == 4.0


def test_molybdenum_pattern_gives_the_cu_features() -> None:
    cu = peak_list_features(two_theta_of(D, CU_WAVELENGTH)[np.isfinite(two_theta_of(D, CU_WAVELENGTH))],
                            None, CU_WAVELENGTH, EXACT)
    mo_tt = two_theta_of(D, MO)  # every line is reachable at Mo; 1.0 A is beyond 90 deg at Cu, 0.5 A unreachable
    assert np.isfinite(mo_tt).all() and np.isnan(two_theta_of(np.array([0.5]), CU_WAVELENGTH)).all()
    intensity = np.linspace(10.0, 100.0, len(D))
    mo = peak_list_features(mo_tt, intensity, MO, FeatureDefinition(intensity_threshold=0.0, merge_width=0.05))
    np.testing.assert_allclose(mo, cu, rtol=0, atol=1e-9)
    assert mo[10] == 12.0
    # the indexer does the same conversion from a peak list's own wavelength
    indexer = xrdframe.create("indexer", "hand")
    a = indexer.features(xrdframe.ObservedPeaks(mo_tt, None, MO))
    b = indexer.features(xrdframe.ObservedPeaks(two_theta_of(D[D >= 1.0], CU_WAVELENGTH), None, CU_WAVELENGTH))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_fewer_than_ten_peaks_are_padded() -> None:
    x = peak_list_features([31.0, 12.5, 48.0], [5.0, 100.0, 20.0], CU_WAVELENGTH)
    assert x[:3].tolist() == [12.5, 31.0, 48.0] and (x[3:10] == PAD).all() and x[10] == 3.0
    assert PAD == 90.0
    empty = peak_list_features([], None, CU_WAVELENGTH)
    assert (empty[:10] == PAD).all() and empty[10] == 0.0
    # a batch of padded rows: masked and non-finite slots are no peaks
    batch = features(np.array([[10.0, 20.0, np.nan], [15.0, 0.0, 30.0]]), None, CU_WAVELENGTH, EXACT,
                     mask=np.array([[True, True, True], [True, True, False]]))
    assert batch[:, 10].tolist() == [2.0, 1.0] and batch[1, 0] == 15.0 and batch[1, 1] == PAD


def test_few_or_no_peaks_through_the_indexer() -> None:
    indexer = xrdframe.create("indexer", "hand")
    three = indexer.predict(xrdframe.ObservedPeaks([12.5, 31.0, 48.0], [100.0, 5.0, 20.0], CU_WAVELENGTH))
    assert three.reason is None and three.crystal_system in CRYSTAL_SYSTEMS
    assert 1 <= three.space_group <= 230 and 0 <= three.extinction_group <= 100
    none = indexer.predict(xrdframe.ObservedPeaks([95.0, 110.0], None, CU_WAVELENGTH))
    assert none.crystal_system is None and "0 peak(s)" in none.reason
    unknown = indexer.predict(xrdframe.ObservedPeaks([12.5, 31.0], None, None))
    assert unknown.crystal_system is None and "wavelength" in unknown.reason


# ---------------------------------------------------------------- training, saving, loading


def test_training_writes_a_described_model(trained: Path, peaks: Path) -> None:
    meta = json.loads((trained / "model.json").read_text())
    assert meta["format"] == "xrdframe-hand/1" and meta["features"]["pad"] == PAD
    assert meta["features"]["names"][-1] == "n_peaks" and meta["features"]["wavelength"] == CU_WAVELENGTH
    assert meta["training"]["spec"]["indexer"]["params"]["n_estimators"] == 12
    assert meta["training"]["peak_operators"] == [a["name"] for a in PEAK_AUGMENT]
    assert meta["training"]["n_vectors"] == 2 * meta["training"]["n_structures"]
    assert {"xrdframe", "sklearn", "numpy", "skops"} <= set(meta["versions"])
    assert set(meta["validation"]["augmented"]) == {f"{name}_accuracy" for name in LABELS}
    with zipfile.ZipFile(trained / "model.skops") as archive:  # skops, not a pickle
        assert "schema.json" in archive.namelist()
    model = load_model(trained)
    assert [len(model.estimators[n].estimators_) for n in LABELS] == [12, 12, 12]
    assert set(model.estimators["crystal_system"].classes_) <= set(range(7))


def test_training_is_deterministic_for_a_seed(trained: Path, peaks: Path, tmp_path: Path) -> None:
    run(train_spec(tmp_path / "again", peaks))
    run(train_spec(tmp_path / "other", peaks, seed=4))
    x = probe_features()
    first, again, other = (probabilities(load_model(p), x) for p in (trained, tmp_path / "again", tmp_path / "other"))
    for name in LABELS:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(first[n].shape != other[n].shape or not np.array_equal(first[n], other[n]) for n in LABELS)


def test_save_and_load_preserve_predictions_exactly(trained: Path, tmp_path: Path) -> None:
    model = load_model(trained)
    save_model(model, tmp_path / "copy")
    copy = load_model(tmp_path / "copy" / "model.skops")
    x = probe_features(seed=1)
    for name in LABELS:
        np.testing.assert_array_equal(probabilities(model, x)[name], probabilities(copy, x)[name])
    # the folder, model.skops and model.json are the same checkpoint, through xrdframe.create
    data = [xrdframe.ObservedPeaks(row[:int(row[10])][:10], None, CU_WAVELENGTH) for row in x[:20]]
    answers = [xrdframe.create("indexer", "hand", checkpoint=str(c)).predict_batch(data)
               for c in (trained, trained / "model.skops", tmp_path / "copy" / "model.json")]
    for a, b in zip(answers[0], answers[1], strict=True):
        assert (a.crystal_system, a.extinction_group, a.space_group, a.top_k) == \
            (b.crystal_system, b.extinction_group, b.space_group, b.top_k)
    for a, b in zip(answers[0], answers[2], strict=True):
        assert a.top_k == b.top_k


def test_predict_batch_equals_predict(trained: Path) -> None:
    indexer = xrdframe.create("indexer", "hand", checkpoint=str(trained))
    x = probe_features(n=15, seed=2)
    data = [xrdframe.ObservedPeaks(row[:int(row[10])][:10], None, CU_WAVELENGTH) for row in x]
    data.append(xrdframe.ObservedPeaks([], None, CU_WAVELENGTH))
    batch = indexer.predict_batch(data)
    for item, b in zip(data, batch, strict=True):
        one = indexer.predict(item)
        assert (one.crystal_system, one.extinction_group, one.space_group, one.top_k, one.reason) == \
            (b.crystal_system, b.extinction_group, b.space_group, b.top_k, b.reason)


def test_restricted_space_group_lies_in_the_predicted_system(trained: Path) -> None:
    free = xrdframe.create("indexer", "hand", checkpoint=str(trained))
    restricted = xrdframe.create("indexer", "hand", checkpoint=str(trained), restrict_space_group=True)
    x = probe_features(n=100, seed=3)
    data = [xrdframe.ObservedPeaks(row[:int(row[10])][:10], None, CU_WAVELENGTH) for row in x]
    a, b = free.predict_batch(data), restricted.predict_batch(data)
    outside = [crystal_system(p.space_group) != p.crystal_system for p in a]
    assert any(outside)  # the independent models disagree somewhere on random inputs
    # wherever the space-group model gives any vote to a group of the predicted system, the restricted answer
    # lies in that system (with no such vote it is left unrestricted: documented)
    voted = [any(prob > 0 and crystal_system(sg) == p.crystal_system for sg, prob in p.top_k["space_group"])
             for p in a]
    assert sum(voted) > 50
    assert all(crystal_system(q.space_group) == q.crystal_system for q, v in zip(b, voted, strict=True) if v)
    assert sum(crystal_system(q.space_group) == q.crystal_system for q in b) > sum(not o for o in outside)
    assert [p.crystal_system for p in a] == [p.crystal_system for p in b]


def test_a_bad_checkpoint_names_the_file(trained: Path, tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(trained, bad)
    (bad / "model.skops").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(XrdframeError, match=r"bad/model\.skops: corrupt or replaced"):
        xrdframe.create("indexer", "hand", checkpoint=str(bad))
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"format": "something-else"}))
    (tmp_path / "model.skops").write_bytes(b"x")
    with pytest.raises(XrdframeError, match=r"foreign\.json: not a hand model \(format 'something-else'"):
        load_model(foreign)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.skops").write_bytes(b"x")
    (tmp_path / "broken" / "model.json").write_text("{not json")
    with pytest.raises(XrdframeError, match=r"broken/model\.json: not a hand model description"):
        load_model(tmp_path / "broken")
    with pytest.raises(XrdframeError, match=r"missing/model\.skops: hand checkpoint not found"):
        xrdframe.create("indexer", "hand", checkpoint=str(tmp_path / "missing" / "model.skops"))


def test_a_model_file_holding_other_types_is_refused(trained: Path, tmp_path: Path) -> None:
    import os

    import skops.io
    from sklearn.linear_model import LogisticRegression

    model = load_model(trained)
    # a reference to a function (os.system here) is what a malicious file would hold: refused before loading
    save_model(HandModel(dict(model.estimators, space_group=os.system), model.definition, dict(model.meta)),
               tmp_path / "rogue")
    untrusted = skops.io.get_untrusted_types(file=tmp_path / "rogue" / "model.skops")
    assert f"{os.system.__module__}.system" in untrusted and not set(untrusted) <= set(TRUSTED_TYPES)
    with pytest.raises(XrdframeError, match=r"rogue/model\.skops: refuses to load types .*\.system"):
        load_model(tmp_path / "rogue")
    # a type skops itself trusts but that is no forest: loaded safely, then refused
    other = LogisticRegression().fit(np.eye(3), [0, 1, 2])
    save_model(HandModel(dict(model.estimators, space_group=other), model.definition, dict(model.meta)),
               tmp_path / "other")
    with pytest.raises(XrdframeError, match=r"other/model\.skops: not a hand model \(the space_group model is a "
                                            r"LogisticRegression"):
        load_model(tmp_path / "other")


@pytest.mark.filterwarnings("ignore:The number of unique classes is greater than 50%")
def test_random_forest_and_hyperparameters(peaks: Path, tmp_path: Path) -> None:
    run(train_spec(tmp_path / "rf", peaks, model="random_forest", n_estimators=3, max_depth=4, views=1))
    model = load_model(tmp_path / "rf")
    from sklearn.ensemble import RandomForestClassifier

    assert all(isinstance(model.estimators[n], RandomForestClassifier) for n in LABELS)
    assert max(t.get_depth() for t in model.estimators["space_group"].estimators_) <= 4
    assert model.meta["estimator"]["model"] == "random_forest" and model.meta["estimator"]["max_depth"] == 4


# ---------------------------------------------------------------- specs and the shipped default


def test_train_evaluate_predict_through_xrdframe_run(peaks: Path, tmp_path: Path) -> None:
    profile = tmp_path / "patterns" / "one.xy"
    profile.parent.mkdir()
    x = np.arange(5.0, 80.0, 0.02)
    y = 10.0 + sum(h * np.exp(-0.5 * ((x - c) / 0.05) ** 2) for c, h in ((18.2, 100), (25.9, 60), (31.7, 45),
                                                                          (36.8, 30), (45.3, 25)))
    np.savetxt(profile, np.column_stack([x, y]), header="2theta intensity")
    (profile.parent / "index.csv").write_text("path,wavelength,space_group\none.xy,1.5406,221\n")
    spec = {"xrdframe": 1, "seed": 0, "output": str(tmp_path / "run"), "stages": {
        "train": {**train_spec(tmp_path / "run" / "train", peaks), "output": str(tmp_path / "run" / "train")},
        "evaluate": {"task": "evaluate", "output": str(tmp_path / "run" / "evaluate"), "figures": False,
                     "test_sets": {"held_out": {"name": "equivariance", "params": {"data": str(peaks), "limit": 4,
                                                                                  "two_theta": [0.0, 100.0]}},
                                   "file": {"name": "pattern_files",
                                            "params": {"index": str(profile.parent / "index.csv")}}},
                     "indexers": {"hand": {"name": "hand", "params": {"checkpoint": "${stages.train.output}"}}}},
        "predict": {"task": "predict", "output": str(tmp_path / "run" / "predict"),
                    "inputs": {"name": "pattern_files", "params": {"index": str(profile.parent / "index.csv")}},
                    "indexer": {"name": "hand", "params": {"checkpoint": "${stages.train.output}/model.skops"}}},
    }}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "xrdframe", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "train" / "model.skops").is_file()
    metrics = json.loads((tmp_path / "run" / "evaluate" / "metrics.json").read_text())
    held = metrics["held_out"]["hand"]
    assert held["n"] == 4 and 0.0 <= held["space_group_accuracy"] <= 1.0
    assert metrics["file"]["hand"]["n"] == 1
    rows = (tmp_path / "run" / "predict" / "predictions.csv").read_text().splitlines()
    header, row = rows[0].split(","), dict(zip(rows[0].split(","), rows[1].split(","), strict=False))
    assert header[:4] == ["id", "crystal_system", "extinction_group", "space_group"] and len(rows) == 2
    assert row["crystal_system"] in CRYSTAL_SYSTEMS and 1 <= int(row["space_group"]) <= 230
    # the same file through xrdframe.create gives the same answer
    indexer = xrdframe.create("indexer", "hand", checkpoint=str(tmp_path / "run" / "train"))
    answer = indexer.predict(xrdframe.read_pattern(profile, wavelength=1.5406))
    assert (answer.crystal_system, answer.space_group) == (row["crystal_system"], int(row["space_group"]))


def test_the_shipped_default_is_used_without_a_checkpoint() -> None:
    path = default_model_path()
    assert path.is_file() and path.with_name("model.skops").stat().st_size < 10e6
    meta = json.loads(path.read_text())
    assert meta["training"]["spec"]["indexer"]["name"] == "hand"
    indexer = xrdframe.create("indexer", "hand")
    assert indexer.model.path == path.with_name("model.skops")
    # NaCl (Fm-3m, a = 5.64 A): seven fcc lines at Cu
    d = 5.64 / np.sqrt([3, 4, 8, 11, 12, 16, 19, 20, 24, 27])
    prediction = indexer.predict(xrdframe.ObservedPeaks(two_theta_of(d, CU_WAVELENGTH), None, CU_WAVELENGTH))
    assert prediction.reason is None and prediction.crystal_system in CRYSTAL_SYSTEMS
    assert len(prediction.top_k["space_group"]) == 5
    probs = [p for _, p in prediction.top_k["crystal_system"]]
    assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-9
