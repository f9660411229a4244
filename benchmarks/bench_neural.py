"""The neural indexers (``cnn`` static / aug, ``difcon``): training rate, inference rate, accuracy.

Reproduce (from the repository root, after the trainings of examples/cnn_default.yaml and
examples/difcon_default.yaml, which also write the peak dataset runs/neural_defaults/peaks):

    python benchmarks/bench_neural.py [--models cnn_static=runs/cnn_static/train cnn=default difcon=default]
                                      [--data runs/neural_defaults/peaks] [--limit 1000] [--threads 1]
                                      [--sections train inference batching accuracy] [--train-structures 1500]
                                      [--precision float32 bfloat16] [--markdown FILE]

Sections:

* ``train``: a peak dataset of ``--train-structures`` random structures is simulated into a temporary
  folder, then the ``train`` stage of examples/cnn_default.yaml and examples/difcon_default.yaml (the
  shipped defaults' architecture, augmentation chain and batch size, torch threads ``--threads``) runs for
  one epoch on it; ``log.csv`` gives the training rate (structures per second; DIFCON renders and reads two
  views of each) and the share of the epoch spent waiting for the loader (rendering the augmented profiles).
* ``inference``: ``predict_arrays`` (the network and the calibrated heads in the indexer's batches, profiles
  already on the model's grid) and ``predict_batch`` (the whole path from ``Pattern`` objects on a 0.02 deg grid:
  resampling onto the model's grid, then the network), patterns per second (the fastest of three passes) at
  ``--threads`` torch threads, at
  each ``--precision``; for bfloat16 also the share of patterns whose three labels are those of float32 and
  the largest change of a crystal-system probability.
* ``batching``: the same two rates for batches of 256 on all torch threads (the earlier default), of 64 on
  all threads, and of 64 on ``--threads`` worker threads of one core each (the default), measured in turn
  ``--rounds`` times; median, slowest and fastest pass.
* ``accuracy``: crystal system / extinction group / space group accuracy of every model on
  ``equivariance`` (held-out ``test`` structures of ``--data``, training regime), ``invariance`` (``train``
  structures, the invariance-test regime of examples/augment_invariance.yaml), the 458 shared real
  structures (../shared/data/structures, simulated, training regime) and the shared measured patterns
  (../shared/data/experimental/<set>/index.csv, one row per set). A pattern the indexer cannot read
  counts as wrong. Simulated sets are drawn with ``--seed``: the same command gives the same figures.

``default`` as a model path means the model shipped in the package (no ``checkpoint``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import xrdframe
from xrdframe.symmetry import symmetry_labels

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
EXPERIMENTAL_SETS = ("iucr_pdcif", "gsas2_tutorials", "autoxrd_pvlab")
#: The paper's accuracies (%, crystal system / extinction group / space group), section 4.3-4.5.
PAPER = {
    "cnn_static": {"equivariance": (89, 82, 79), "invariance": (40, 33, 24), "measured": (22, 15, 13)},
    "cnn": {"equivariance": (90, 83, 81), "invariance": (45, 35, 28), "measured": (23, 16, 13)},
    "difcon": {"equivariance": (88, 80, 78), "invariance": (79, 71, 66), "measured": (74, 48, 41)},
}


def run_spec(spec: dict[str, Any]) -> None:
    """Run one spec dictionary (as ``xrdframe run`` would)."""
    from xrdframe.plugin.manager import Registry
    from xrdframe.run import run_pipeline
    from xrdframe.spec import load_spec_text, validate_spec

    registry = Registry()
    run_pipeline(validate_spec(load_spec_text(yaml.safe_dump(spec)), registry=registry), registry, quiet=True)


# ---------------------------------------------------------------------------------------------------------
# training rate
# ---------------------------------------------------------------------------------------------------------


def bench_train(n_structures: int, threads: int, seed: int) -> list[dict[str, Any]]:
    """One epoch of each default's training stage on a fresh small dataset; rates from its log.csv."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        peaks = Path(tmp) / "peaks"
        run_spec({"xrdframe": 1, "task": "simulate", "seed": seed, "output": str(peaks), "wavelength": 1.5406,
                  "two_theta": [0.0, 120.0],
                  "structures": {"name": "random_structures", "params": {"count": n_structures}},
                  "splits": {"train": 0.9, "val": 0.1}})
        for name in ("cnn", "difcon"):
            example = yaml.safe_load((REPO / "examples" / f"{name}_default.yaml").read_text())
            stage = dict(example["stages"]["train"])
            stage["indexer"]["params"]["threads"] = threads
            stage["indexer"]["params"]["calibrate"] = False
            stage["trainer"] = dict(stage["trainer"], epochs=1, device="cpu")
            out = Path(tmp) / name
            run_spec({"xrdframe": 1, "seed": seed, "output": str(out), **stage,
                      "data": {"path": str(peaks), "train_split": "train", "val_split": "val"}})
            with open(out / "log.csv", newline="") as f:
                log = list(csv.DictReader(f))[-1]
            rows.append({"model": name, "samples_per_s": float(log["samples_per_s"]),
                         "data_share": float(log["data_share"]), "seconds": float(log["seconds"]),
                         "batch_size": int(stage["trainer"]["batch_size"])})
    return rows


def logged_training(path: Path) -> dict[str, Any] | None:
    """Mean rate and data share of a finished or running training's log.csv (None if absent)."""
    log = path / "log.csv"
    if not log.is_file():
        return None
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    return {"epochs": len(rows), "samples_per_s": float(np.mean([float(r["samples_per_s"]) for r in rows])),
            "data_share": float(np.mean([float(r["data_share"]) for r in rows])),
            "hours": sum(float(r["seconds"]) for r in rows) / 3600}


# ---------------------------------------------------------------------------------------------------------
# inference rate
# ---------------------------------------------------------------------------------------------------------


def indexer_of(kind: str, path: str, precision: str = "float32", **params: Any) -> Any:
    """The ``cnn`` / ``difcon`` indexer of a checkpoint (``default``: the shipped model), with more ``params``."""
    name = "cnn" if kind.startswith("cnn") else kind
    if path != "default":
        params["checkpoint"] = path
    return xrdframe.create("indexer", name, precision=precision, **params)


def inference_inputs(indexer: Any, n: int, seed: int) -> tuple[np.ndarray, list[Any]]:
    """``n`` profiles on the model's grid (30 Gaussian peaks on a small background each) and the same profiles
    as ``Pattern`` objects on a 0.02 deg grid from 0 to 120 deg (at most 1,024)."""
    from xrdframe_neural.model import grid_of

    _, meta = indexer.load()
    grid = grid_of(meta)
    centers = grid.centers().numpy()
    rng = np.random.default_rng(seed)
    pos = rng.uniform(grid.start, grid.stop, (n, 30))
    height = rng.uniform(0.05, 1.0, (n, 30))
    profiles = np.full((n, centers.size), 0.02)
    for j in range(30):  # 30 vectorized passes over (n, bins)
        profiles += height[:, j:j + 1] * np.exp(-0.5 * ((centers[None, :] - pos[:, j:j + 1]) / 0.05) ** 2)
    fine = np.arange(0.0, 120.0, 0.02)
    patterns = [xrdframe.Pattern(fine, np.interp(fine, centers, p), float(meta["wavelength"]))
                for p in profiles[: min(n, 1024)]]
    return profiles, patterns


def bench_inference(indexer: Any, n: int, threads: int, seed: int,
                    reference: Any = None, repeats: int = 3) -> dict[str, float]:
    """Patterns per second of predict_arrays (profiles on the model's grid) and predict_batch (Patterns); with a
    ``reference`` indexer (the same model at float32), the share of patterns whose three top-1 labels agree with
    it and the largest difference of a crystal-system probability."""
    torch.set_num_threads(threads)
    profiles, patterns = inference_inputs(indexer, n, seed)
    indexer.predict_arrays(profiles[:256])  # warm-up
    best = np.inf
    for _ in range(repeats):  # the fastest of a few passes: this machine's speed varies by 10-25 % over minutes
        t0 = time.perf_counter()
        out = indexer.predict_arrays(profiles)
        best = min(best, time.perf_counter() - t0)
    arrays = n / best
    agreement = {}
    if reference is not None:
        ref = reference.predict_arrays(profiles)
        same = np.all([out[k] == ref[k] for k in ("cs", "eg", "sg")], axis=0)
        agreement = {"labels_agree": float(same.mean()),
                     "max_dp": float(np.abs(out["crystal_system"] - ref["crystal_system"]).max())}
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        indexer.predict_batch(patterns)
        best = min(best, time.perf_counter() - t0)
    batch = len(patterns) / best
    return {"predict_arrays": arrays, "predict_batch": batch, **agreement}


def bench_batching(label: str, path: str, threads: int, seed: int, rounds: int) -> list[dict[str, Any]]:
    """Patterns per second of batch-size / worker-thread settings, measured in turn ``rounds`` times (this
    machine's speed drifts by 10-30 % within minutes: interleaving compares them under the same drift);
    median, slowest and fastest pass of each, from profiles and from ``Pattern`` objects (1,024 of each)."""
    torch.set_num_threads(threads)
    settings = {"256 / 1 (earlier default)": (256, 1), "64 / 1": (64, 1), f"64 / {threads} (default)": (64, 0)}
    indexers = {key: indexer_of(label, path, predict_batch_size=size, predict_workers=workers)
                for key, (size, workers) in settings.items()}
    profiles, patterns = inference_inputs(next(iter(indexers.values())), 1024, seed)
    rates: dict[tuple[str, str], list[float]] = {(key, what): [] for key in settings for what in ("arrays", "patterns")}
    for indexer in indexers.values():  # warm-up
        indexer.predict_batch(patterns[:300])
    for _ in range(rounds):
        for key, indexer in indexers.items():
            for what, run, data in (("arrays", indexer.predict_arrays, profiles),
                                    ("patterns", indexer.predict_batch, patterns)):
                t0 = time.perf_counter()
                run(data)
                rates[(key, what)].append(1024 / (time.perf_counter() - t0))
    return [{"model": label, "setting": key,
             **{what: (np.median(rates[(key, what)]), min(rates[(key, what)]), max(rates[(key, what)]))
                for what in ("arrays", "patterns")}} for key in settings]


# ---------------------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------------------


def simulated_set(kind: str, data: Path, limit: int | None, seed: int) -> list[Any]:
    params: dict[str, Any] = {"data": str(data)}
    if limit:
        params["limit"] = limit
    return list(xrdframe.create("pattern_source", kind, **params).patterns(seed))


def real_structures_set(tmp: Path, seed: int) -> list[Any]:
    """The 458 shared structures: peaks simulated into ``tmp``, rendered in the training regime."""
    peaks = tmp / "real_peaks"
    run_spec({"xrdframe": 1, "task": "simulate", "seed": seed, "output": str(peaks), "wavelength": 1.5406,
              "two_theta": [0.0, 120.0],
              "structures": {"name": "cif_dir", "params": {"path": str(SHARED / "structures")}},
              "splits": {"test": 1.0}})
    return simulated_set("equivariance", peaks, None, seed)


def measured_set(name: str) -> list[Any]:
    index = SHARED / "experimental" / name / "index.csv"
    return list(xrdframe.create("pattern_source", "pattern_files", index=str(index)).patterns(0))


def accuracy(indexer: Any, items: list[Any]) -> dict[str, float]:
    """Crystal-system / extinction-group / space-group accuracy (%) over the items with a space group."""
    items = [it for it in items if it.space_group is not None]
    readable = [it for it in items if it.data is not None]
    predictions = dict(zip((it.id for it in readable), indexer.predict_batch([it.data for it in readable]),
                           strict=True))
    hits = np.zeros(3)
    for it in items:
        p = predictions.get(it.id)
        if p is None:
            continue
        truth = symmetry_labels(int(it.space_group))
        hits += [p.crystal_system == truth.crystal_system, p.extinction_group == truth.extinction_group,
                 p.space_group == truth.space_group]
    n = max(len(items), 1)
    return {"n": len(items), "cs": 100 * hits[0] / n, "eg": 100 * hits[1] / n, "sg": 100 * hits[2] / n}


# ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn_static=runs/cnn_static/train", "cnn=default",
                                                        "difcon=default"],
                        help="LABEL=PATH (a model.safetensors, a train run's folder or 'default'); the label "
                             "starts with cnn or difcon")
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "neural_defaults" / "peaks",
                        help="the training peak dataset (its test split is the equivariance set)")
    parser.add_argument("--limit", type=int, default=1000, help="structures per simulated test set")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-structures", type=int, default=1500)
    parser.add_argument("--inference-patterns", type=int, default=4096)
    parser.add_argument("--sections", nargs="+", default=["train", "inference", "accuracy"],
                        choices=["train", "inference", "batching", "accuracy"])
    parser.add_argument("--rounds", type=int, default=8, help="passes of each setting in the batching section")
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=["float32", "bfloat16"],
                        help="the indexers' precision; inference is measured at each, accuracy at the first")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_neural.py " + " ".join(sys.argv[1:] if argv is None else argv)
    now = datetime.datetime.now(datetime.UTC)
    md = [f"Command: `{command}`  ",
          f"Date: {now:%Y-%m-%d %H:%M} UTC; {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}", ""]

    def emit(line: str = "") -> None:
        print(line, flush=True)
        md.append(line)

    models: dict[str, Any] = {}
    for entry in args.models:
        label, _, path = entry.partition("=")
        if path != "default" and not Path(path).exists():
            print(f"skipping {label}: {path} not found", file=sys.stderr)
            continue
        models[label] = (path, indexer_of(label, path, args.precision[0]))

    if "train" in args.sections:
        emit("### Training rate (CPU)")
        emit()
        emit("| model | structures/s | data share | epoch of | source |")
        emit("|---|---|---|---|---|")
        for row in bench_train(args.train_structures, args.threads, args.seed):
            emit(f"| {row['model']} | {row['samples_per_s']:.1f} | {100 * row['data_share']:.0f} % | "
                 f"{row['seconds']:.0f} s | 1 epoch, {args.train_structures} structures, batch "
                 f"{row['batch_size']}, {args.threads} thread(s) |")
        for label, (path, _) in models.items():
            # the run that trained it (a shipped default: the example spec's output, when it is here)
            run = (REPO / "runs" / f"{label}_default" / "train" if path == "default"
                   else Path(path) if Path(path).is_dir() else Path(path).parent)
            log = logged_training(run)
            if log:
                emit(f"| {label} (its training) | {log['samples_per_s']:.1f} | {100 * log['data_share']:.0f} % | "
                     f"{log['hours']:.2f} h | {run.relative_to(REPO) if run.is_relative_to(REPO) else run}"
                     f"/log.csv, {log['epochs']} epochs, concurrent jobs |")
        emit()

    if "inference" in args.sections:
        emit("### Inference rate (CPU)")
        emit()
        emit("| model | precision | predict_arrays patterns/s | predict_batch (Pattern objects) patterns/s "
             "| labels as float32 | max change of a probability |")
        emit("|---|---|---|---|---|---|")
        for label, (path, _) in models.items():
            reference = indexer_of(label, path, "float32")
            for precision in args.precision:
                indexer = indexer_of(label, path, precision)
                r = bench_inference(indexer, args.inference_patterns, args.threads, args.seed,
                                    None if precision == "float32" else reference)
                agree = f"{100 * r['labels_agree']:.1f} %" if "labels_agree" in r else "-"
                dp = f"{r['max_dp']:.4f}" if "max_dp" in r else "-"
                emit(f"| {label} | {precision} | {r['predict_arrays']:.0f} | {r['predict_batch']:.0f} | {agree} "
                     f"| {dp} |")
        emit()

    if "batching" in args.sections:
        emit("### Inference batching (CPU)")
        emit()
        emit("| model | batch size / worker threads | predict_arrays patterns/s: median (min-max) "
             "| predict_batch (Pattern objects): median (min-max) |")
        emit("|---|---|---|---|")
        for label, (path, _) in models.items():
            for row in bench_batching(label, path, args.threads, args.seed, args.rounds):
                emit(f"| {label} | {row['setting']} | {row['arrays'][0]:.0f} ({row['arrays'][1]:.0f}-"
                     f"{row['arrays'][2]:.0f}) | {row['patterns'][0]:.0f} ({row['patterns'][1]:.0f}-"
                     f"{row['patterns'][2]:.0f}) |")
        emit()

    if "accuracy" in args.sections:
        sets: dict[str, list[Any]] = {}
        t0 = time.perf_counter()
        sets["equivariance (held-out random structures)"] = simulated_set("equivariance", args.data, args.limit,
                                                                          args.seed)
        sets["invariance (invariance-test regime)"] = simulated_set("invariance", args.data, args.limit, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            if (SHARED / "structures").is_dir():
                sets["458 real structures (training regime)"] = real_structures_set(Path(tmp), args.seed)
        for name in EXPERIMENTAL_SETS:
            if (SHARED / "experimental" / name / "index.csv").is_file():
                sets[f"measured: {name}"] = measured_set(name)
        print(f"test sets ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        emit("### Accuracy, % (crystal system / extinction group / space group)")
        emit()
        emit("| test set | n | " + " | ".join(models) + " |")
        emit("|---|---|" + "---|" * len(models))
        pooled = {label: np.zeros(3) for label in models}
        n_measured = 0
        for set_name, items in sets.items():
            cells = []
            n = 0
            for label, (_, indexer) in models.items():
                a = accuracy(indexer, items)
                n = a["n"]
                cells.append(f"{a['cs']:.0f} / {a['eg']:.0f} / {a['sg']:.0f}")
                if set_name.startswith("measured"):
                    pooled[label] += np.array([a["cs"], a["eg"], a["sg"]]) * a["n"] / 100
            if set_name.startswith("measured"):
                n_measured += n
            emit(f"| {set_name} | {n} | " + " | ".join(cells) + " |")
        if n_measured:
            emit(f"| measured, all sets pooled | {n_measured} | " + " | ".join(
                "{:.0f} / {:.0f} / {:.0f}".format(*(100 * pooled[label] / n_measured)) for label in models) + " |")
        emit()
        emit("The paper's figures (ICSD structures, ~1 M training patterns on a GPU; measured: its 82 patterns):")
        emit()
        emit("| test set | CNN static | CNN aug | DIFCON |")
        emit("|---|---|---|---|")
        for key in ("equivariance", "invariance", "measured"):
            emit(f"| {key} | " + " | ".join("{} / {} / {}".format(*PAPER[m][key])
                                            for m in ("cnn_static", "cnn", "difcon")) + " |")
        emit()
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
