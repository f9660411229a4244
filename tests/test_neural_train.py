"""Neural indexers, trained: specs for cnn (static, online) and difcon (both losses), resuming after a kill,
two-process data parallelism, prediction from the trained files and the shipped defaults."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from xrdframe_neural import trainer as trainer_module
from xrdframe_neural.indexer import DEFAULT_DIR

import xrdframe
from xrdframe.plugin.manager import Registry
from xrdframe.run import RunContext, run_pipeline
from xrdframe.spec import load_spec_text, validate_spec
from xrdframe.symmetry import CRYSTAL_SYSTEMS

TINY = {"name": "resnet1d", "params": {"widths": [4, 8], "depth": 1, "stem_width": 4, "kernel": 3}}
AUGMENT = [{"name": "zero_shift"}, {"name": "intensity_noise"}, {"name": "pseudo_voigt"},
           {"name": "background_noise"}]


def run(spec: dict[str, Any]) -> None:
    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(yaml.safe_dump(spec)), registry=registry), registry, quiet=True)


@pytest.fixture(scope="module")
def peaks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("neural") / "peaks"
    run({"xrdframe": 1, "task": "simulate", "seed": 0, "output": str(out), "two_theta": [0.0, 70.0],
         "structures": {"name": "random_structures", "params": {"count": 40, "max_atoms_asymmetric": 3}},
         "splits": {"train": 0.7, "val": 0.3}})
    return out


def train_spec(out: Path, peaks: Path, name: str, epochs: int = 1, batch_size: int = 8,
               **params: Any) -> dict[str, Any]:
    indexer = {"encoder": TINY, "two_theta": [5.0, 65.0], "step": 0.1, "threads": 1, "workers": 0,
               "patience": 0, **params}
    if name == "difcon":
        indexer.setdefault("projector", [16, 16])
    return {"xrdframe": 1, "task": "train", "seed": 3, "output": str(out), "data": {"path": str(peaks)},
            "augmentations": AUGMENT, "indexer": {"name": name, "params": indexer},
            "trainer": {"epochs": epochs, "batch_size": batch_size, "learning_rate": 0.003, "device": "cpu"}}


def a_pattern() -> xrdframe.Pattern:
    x = np.arange(4.0, 70.0, 0.02)
    y = 5.0 + sum(h * np.exp(-0.5 * ((x - c) / 0.06) ** 2) for c, h in ((21.0, 100), (30.1, 60), (44.3, 35)))
    return xrdframe.Pattern(x, y, 1.5406)


@pytest.mark.parametrize("name, params", [
    ("cnn", {"augment_mode": "static"}),
    ("cnn", {"augment_mode": "online"}),
    ("difcon", {"representation_loss": {"name": "barlow_twins"}}),
    ("difcon", {"representation_loss": {"name": "nt_xent", "params": {"temperature": 0.2}},
                "representation_weight": 1.0, "heads_on": "embedding"}),
])
def test_train_through_a_spec_then_predict(tmp_path: Path, peaks: Path, name: str, params: dict) -> None:
    out = tmp_path / "run"
    run(train_spec(out, peaks, name, **params))
    for f in ("model.safetensors", "model.json", "log.csv", "training.png", "checkpoint/last.safetensors",
              "checkpoint/last.json"):
        assert (out / f).is_file(), f
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,lr,train_loss") and len(log) == 2
    for checkpoint in (out / "model.safetensors", out):  # the file, or the run's directory
        indexer = xrdframe.create("indexer", name, checkpoint=str(checkpoint))
        prediction = indexer.predict(a_pattern())
        assert prediction.crystal_system in CRYSTAL_SYSTEMS and prediction.reason is None
        assert len(prediction.top_k["space_group"]) == 5


def test_tensorboard_scalars_match_the_csv_log(tmp_path: Path, peaks: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'xrdframe[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    run(train_spec(out, peaks, "cnn", epochs=2, augment_mode="static"))
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train_loss", "val_loss", "val_cs_acc", "lr", "data_share"} <= set(events.Tags()["scalars"])
    for key in ("train_loss", "val_loss", "val_cs_acc"):
        scalars = events.Scalars(key)
        assert [e.step for e in scalars] == [1, 2]
        np.testing.assert_allclose([e.value for e in scalars], [float(r[key]) for r in rows], rtol=1e-5)


def final_tensors(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("name, params", [("cnn", {"augment_mode": "online", "workers": 1}),
                                          ("difcon", {"representation_loss": {"name": "nt_xent"}})])
def test_a_killed_run_resumes_to_the_same_weights(tmp_path: Path, peaks: Path, monkeypatch: pytest.MonkeyPatch,
                                                  name: str, params: dict) -> None:
    run(train_spec(tmp_path / "straight", peaks, name, epochs=2, **params))
    save = trainer_module._save_checkpoint

    def save_then_die(*args: Any, **kwargs: Any) -> None:
        save(*args, **kwargs)
        raise KeyboardInterrupt("killed after the first checkpoint")

    spec = train_spec(tmp_path / "killed", peaks, name, epochs=2, **params)
    monkeypatch.setattr(trainer_module, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(spec)
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    assert '"epoch": 1' in (tmp_path / "killed" / "checkpoint" / "last.json").read_text()
    monkeypatch.setattr(trainer_module, "_save_checkpoint", save)
    run(spec)  # the same spec again: resumes after epoch 1
    straight, resumed = final_tensors(tmp_path / "straight"), final_tensors(tmp_path / "killed")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    a = (tmp_path / "straight" / "log.csv").read_text().splitlines()
    b = (tmp_path / "killed" / "log.csv").read_text().splitlines()
    assert [r.split(",")[:4] for r in a] == [r.split(",")[:4] for r in b]


def test_another_configuration_in_the_output_trains_from_scratch(tmp_path: Path, peaks: Path) -> None:
    run(train_spec(tmp_path / "a", peaks, "cnn", augment_mode="static"))
    run(train_spec(tmp_path / "b", peaks, "cnn", augment_mode="static", weight_decay=0.0))
    run(train_spec(tmp_path / "a", peaks, "cnn", augment_mode="static", weight_decay=0.0))
    a, b = final_tensors(tmp_path / "a"), final_tensors(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- two processes, gloo ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_here(spec: dict[str, Any], output: Path) -> Any:
    registry = Registry()
    pipeline = validate_spec(load_spec_text(yaml.safe_dump(spec)), registry=registry)
    params = pipeline.stages[0].task.params
    context = RunContext(output=output, seed=pipeline.stages[0].seed, stage="train", quiet=True)
    return trainer_module.fit(params.indexer.name, params.indexer.params, params, context)


def _ddp_worker(rank: int, world: int, port: int, spec: dict[str, Any], output: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    try:
        model = _train_here(spec, Path(output))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{output}/rank{rank}.safetensors")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_processes_agree_with_one(tmp_path: Path, peaks: Path) -> None:
    spec = train_spec(tmp_path / "ddp", peaks, "cnn", epochs=2, batch_size=8, augment_mode="static",
                      calibrate=False)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), spec, str(tmp_path / "ddp")), nprocs=2)
    rank0 = load_file(str(tmp_path / "ddp" / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "ddp" / "rank1.safetensors"))
    single = _train_here(train_spec(tmp_path / "one", peaks, "cnn", epochs=2, batch_size=8, augment_mode="static",
                                    calibrate=False), tmp_path / "one").state_dict()
    written = final_tensors(tmp_path / "ddp")
    for key, value in single.items():
        assert torch.equal(rank0[key], rank1[key]), key  # DDP keeps the ranks identical
        assert torch.equal(rank0[key], written[key]), key
        torch.testing.assert_close(rank0[key], value, atol=1e-5, rtol=1e-4, msg=key)


# ---- the shipped defaults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn", "difcon"])
def test_shipped_defaults_load_and_predict(name: str) -> None:
    if not (DEFAULT_DIR / name / "model.safetensors").is_file():
        pytest.fail(f"no shipped default model in {DEFAULT_DIR / name}")
    indexer = xrdframe.create("indexer", name)
    predictions = indexer.predict_batch([a_pattern(), a_pattern()])
    assert predictions[0].crystal_system in CRYSTAL_SYSTEMS
    assert predictions[0].top_k == predictions[1].top_k
    _, meta = indexer.load()
    example = yaml.safe_load((Path(__file__).parents[1] / "examples" / f"{name}_default.yaml").read_text())
    trained_by = example["stages"]["train"]["indexer"]
    encoder = meta["spec"]["indexer"]["params"]["encoder"]  # every parameter, the defaults filled in
    assert meta["model"] == name and encoder["name"] == trained_by["params"]["encoder"]["name"]
    assert {k: encoder["params"][k] for k in trained_by["params"]["encoder"]["params"]} == \
        trained_by["params"]["encoder"]["params"]
    assert meta["training"]["n_train"] >= 10_000  # the example's 16,000 structures, 80 % of them
    # calibrated, and better than always answering the most common system of the validation split
    assert meta["temperature"] != [1.0] * len(meta["temperature"])
    assert meta["training"]["validation"]["cs_acc"] > 0.35
