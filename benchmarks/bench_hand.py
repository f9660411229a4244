"""Accuracy of the ``hand`` indexer: held-out random structures, the 458 shared real structures, the shared
measured patterns (per set), and the share of space-group answers outside the predicted crystal system.

Test sets (every one scored for crystal system, extinction group and space group):

* ``held_out_peaks``: the test split of a peak dataset (structures never trained on), each simulated peak
  list passed through the peak-stage operators of the TRAINING regime (``views`` independent draws);
* ``held_out_profiles``: the same structures rendered as profiles in the full training regime (task
  evaluate's ``equivariance`` set), peaks picked automatically (slow: ``--profiles`` of them);
* ``real_structures``: the 458 CIFs of ``../shared/data/structures/spglib``, peak lists simulated at
  1.5406 Angstrom, 0-120 deg, then as ``held_out_peaks``;
* ``measured/<set>``: every labelled pattern of ``../shared/data/experimental/<set>/index.csv``, peaks
  picked automatically (the indexer's default picking), no tuning per file.

Run from the repository root (one core, about 6 min with the defaults):

    nice -n 5 python benchmarks/bench_hand.py --model default --data runs/hand_default/peaks \\
        --json runs/hand_default/bench.json

``--size-cost`` instead measures what the shipped size limits cost: the default model's settings against
100 unlimited trees, fitted on the same augmented features (about 8 min).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LABEL_NAMES = ("crystal_system", "extinction_group", "space_group")
PAPER = {"held_out": (94.0, 91.0, 87.0), "measured": (55.5, 32.0, 39.5), "outside": 26.0}


def score(predictions: list[Any], space_groups: np.ndarray) -> dict[str, Any]:
    """Accuracies (%) of predictions against true space groups; an unanswered pattern counts as wrong."""
    from xrdframe.symmetry import crystal_system, extinction_group_of

    sg = np.asarray(space_groups, dtype=int)
    true_cs = np.array([crystal_system(int(s)) for s in sg])
    true_eg = np.array([extinction_group_of(int(s)) for s in sg])
    cs = np.array([p.crystal_system or "" for p in predictions])
    eg = np.array([-1 if p.extinction_group is None else p.extinction_group for p in predictions])
    ps = np.array([-1 if p.space_group is None else p.space_group for p in predictions])
    answered = ps > 0
    outside = np.array([a and crystal_system(int(s)) != c for a, s, c in zip(answered, ps, cs, strict=True)])
    n = len(sg)
    return {"n": int(n), "n_no_answer": int(n - answered.sum()),
            "crystal_system": 100.0 * float(np.mean(cs == true_cs)) if n else None,
            "extinction_group": 100.0 * float(np.mean(eg == true_eg)) if n else None,
            "space_group": 100.0 * float(np.mean(ps == sg)) if n else None,
            "sg_outside_cs": 100.0 * float(outside.sum() / max(1, answered.sum())) if n else None}


def peak_chain(kalpha2: bool = False) -> Any:
    """The peak-stage operators of the training regime (every built-in operator at its defaults), without
    ``kalpha2`` unless asked (the peak picker strips K-alpha2 from measured profiles, so hand is trained and
    tested on K-alpha1 lines; examples/hand_default.yaml)."""
    from xrdframe_hand.indexer import AUGMENT_WAVELENGTH
    from xrdframe_patterns.simulated import TRAINING_REGIME

    import xrdframe
    from xrdframe.augmentation import AugmentationChain

    ops = [xrdframe.create("augmentation", e["name"], **e["params"]) for e in TRAINING_REGIME
           if kalpha2 or e["name"] != "kalpha2"]
    return AugmentationChain([op for op in ops if getattr(op, "stage", None) == "peaks"],
                             wavelength=AUGMENT_WAVELENGTH)


def peak_features(peak_lists: list[Any], cells: np.ndarray, views: int, seed: int, definition: Any) -> np.ndarray:
    """(views x len(peak_lists), 11) features of the lists augmented in the training regime (view-major)."""
    import torch
    from xrdframe_hand.indexer import _dataset_cutoff, _truncate, augmented_features

    chain = peak_chain()
    generator = torch.Generator().manual_seed(seed)
    lists = [_truncate(p, _dataset_cutoff(p.wavelength)) for p in peak_lists]
    out = []
    for _ in range(views):
        for first in range(0, len(lists), 2048):
            out.append(augmented_features(lists[first:first + 2048], chain, generator, definition,
                                          cells[first:first + 2048]))
    return np.concatenate(out)


def held_out_lists(data: Path, split: str) -> tuple[list[Any], np.ndarray, np.ndarray]:
    from xrdframe.dataset import PeakDataset

    dataset = PeakDataset.open(data)
    idx = dataset.split_indices(split)
    return ([dataset.peaks(int(i)) for i in idx], np.asarray(dataset.labels("cell"))[idx],
            np.asarray(dataset.labels("space_group"))[idx])


def real_lists() -> tuple[list[Any], np.ndarray, np.ndarray, int]:
    import xrdframe

    folder = SHARED / "structures" / "spglib"
    lists, cells, sgs, failed = [], [], [], 0
    with open(folder / "index.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                structure = xrdframe.read_structure(folder / row["path"])
                peaks = xrdframe.simulate_peaks(structure, 1.5406, (0.0, 120.0))
            except Exception:  # noqa: BLE001 - counted and reported
                failed += 1
                continue
            if len(peaks) == 0:
                failed += 1
                continue
            lists.append(peaks)
            cells.append(structure.cell)
            sgs.append(int(row["space_group"]))
    return lists, np.asarray(cells, dtype=float), np.asarray(sgs), failed


def measured_sets() -> dict[str, tuple[list[Any], np.ndarray, int]]:
    import xrdframe

    out = {}
    for index in sorted((SHARED / "experimental").glob("*/index.csv")):
        source = xrdframe.create("pattern_source", "pattern_files", index=str(index))
        patterns, sgs, unreadable = [], [], 0
        for item in source.patterns(0):
            if item.space_group is None:
                continue
            if item.data is None:
                unreadable += 1
                continue
            patterns.append(item.data)
            sgs.append(item.space_group)
        out[index.parent.name] = (patterns, np.asarray(sgs), unreadable)
    return out


def profile_set(data: Path, limit: int, seed: int) -> tuple[list[Any], np.ndarray]:
    import xrdframe

    source = xrdframe.create("pattern_source", "equivariance", data=str(data), limit=limit)
    items = list(source.patterns(seed))
    return [i.data for i in items], np.asarray([i.space_group for i in items])


def size_cost(data: Path, views: int, seed: int, shipped: dict[str, Any], n_unlimited: int = 100) -> dict[str, Any]:
    """Accuracy and file size of the shipped size limits against unlimited trees, on the same features.

    Features: the train split with ``views`` augmented draws, the test split with one (peak-stage training
    regime). The shipped configuration (``shipped``: the default model's estimator settings) is fitted as a
    forest; the unlimited forest (no depth or leaf limit, ``n_unlimited`` trees) is grown one tree at a time
    and its probabilities averaged (extra trees without bootstrap are independent trees), so that only one
    tree of 230-class distributions is in memory at once; its size is estimated from three trees.
    """
    import io
    import zipfile

    import skops.io
    from sklearn.ensemble import ExtraTreesClassifier
    from xrdframe_hand.features import FeatureDefinition
    from xrdframe_hand.indexer import _drop_internal_values

    from xrdframe.dataset import PeakDataset

    dataset = PeakDataset.open(data)
    definition = FeatureDefinition()
    cells = np.asarray(dataset.labels("cell"))
    xs, ys = {}, {}
    for split, v in (("train", views), ("test", 1)):
        idx = dataset.split_indices(split)
        xs[split] = peak_features([dataset.peaks(int(i)) for i in idx], cells[idx], v, seed, definition)
        ys[split] = np.tile(idx, v)

    def nbytes(forest: Any) -> int:
        _drop_internal_values(forest)
        buffer = io.BytesIO(skops.io.dumps(forest, compression=zipfile.ZIP_DEFLATED, compresslevel=9))
        return len(buffer.getvalue())

    settings = {k: shipped[k] for k in ("n_estimators", "max_depth", "max_leaf_nodes", "min_samples_leaf",
                                        "max_features")}
    out: dict[str, Any] = {"train_vectors": len(xs["train"]), "test_vectors": len(xs["test"]),
                           "shipped_settings": settings}
    for label in ("crystal_system", "extinction_group", "space_group"):
        y = np.asarray(dataset.labels(label))
        xt, yt, xv, yv = xs["train"].astype(np.float32), y[ys["train"]], xs["test"].astype(np.float32), y[ys["test"]]
        small = ExtraTreesClassifier(n_jobs=1, random_state=seed, **settings).fit(xt, yt)
        classes = np.unique(yt)
        proba = np.zeros((len(xv), len(classes)))
        big_bytes = 0
        for k in range(n_unlimited):
            one = ExtraTreesClassifier(n_estimators=1, max_features=settings["max_features"], n_jobs=1,
                                       random_state=1000 + k).fit(xt, yt)
            proba += one.predict_proba(xv)
            if k < 3:
                big_bytes += nbytes(one)
        out[label] = {"shipped_accuracy": 100.0 * float(np.mean(small.predict(xv) == yv)),
                      "shipped_bytes": nbytes(small),
                      "unlimited_accuracy": 100.0 * float(np.mean(classes[proba.argmax(1)] == yv)),
                      "unlimited_bytes_estimate": int(big_bytes / 3 * n_unlimited)}
    return out


def row(name: str, r: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"
    return (f"| {name} | {r['n']} | {f(r['crystal_system'])} | {f(r['extinction_group'])} | "
            f"{f(r['space_group'])} | {f(r['sg_outside_cs'])} | {r['n_no_answer']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None,
                        help="NAME=CHECKPOINT or 'default' (the shipped model); repeatable")
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "hand_default" / "peaks",
                        help="the peak dataset whose test split is held out")
    parser.add_argument("--split", default="test")
    parser.add_argument("--views", type=int, default=2, help="augmented draws per held-out / real structure")
    parser.add_argument("--profiles", type=int, default=200,
                        help="held-out structures rendered as profiles (peak picking; 0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--size-cost", action="store_true",
                        help="instead: accuracy of the first model's size limits against 100 unlimited trees, "
                             "fitted on the same augmented features of --data (--size-views per structure)")
    parser.add_argument("--size-views", type=int, default=8)
    args = parser.parse_args(argv)

    import xrdframe

    models = {}
    for entry in args.model or ["default"]:
        name, _, path = entry.partition("=")
        models[name] = xrdframe.create("indexer", "hand", **({"checkpoint": path} if path else {}))
    started = time.perf_counter()
    if args.size_cost:
        first = next(iter(models.values()))
        cost = size_cost(args.data, args.size_views, args.seed, first.model.meta["estimator"])
        print(f"command: python {Path(__file__).relative_to(ROOT)} {' '.join(argv or sys.argv[1:])}")
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {time.perf_counter() - started:.0f} s; "
              f"{cost['train_vectors']} training vectors, {cost['test_vectors']} held-out; shipped settings "
              f"{cost['shipped_settings']}")
        print("| label | shipped % | MB | unlimited (100 trees) % | MB (estimate) |\n|---|---|---|---|---|")
        for label in LABEL_NAMES:
            c = cost[label]
            print(f"| {label} | {c['shipped_accuracy']:.1f} | {c['shipped_bytes'] / 1e6:.1f} | "
                  f"{c['unlimited_accuracy']:.1f} | {c['unlimited_bytes_estimate'] / 1e6:.0f} |")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(cost, indent=1))
        return 0
    results: dict[str, dict[str, Any]] = {name: {} for name in models}
    info: dict[str, Any] = {}

    test_sets: dict[str, tuple[str, Any, np.ndarray]] = {}  # name -> (kind, inputs, space groups)
    if (args.data / "dataset.json").is_file():
        lists, cells, sgs = held_out_lists(args.data, args.split)
        test_sets["held_out_peaks"] = ("peaks", (lists, cells), np.tile(sgs, args.views))
        info["held_out_structures"] = len(lists)
        if args.profiles:
            patterns, psg = profile_set(args.data, args.profiles, args.seed)
            test_sets["held_out_profiles"] = ("patterns", patterns, psg)
    else:
        print(f"skipped held-out sets: {args.data} is not a peak dataset", file=sys.stderr)
    if (SHARED / "structures" / "spglib" / "index.csv").is_file():
        lists, cells, sgs, failed = real_lists()
        test_sets["real_structures"] = ("peaks", (lists, cells), np.tile(sgs, args.views))
        info["real_structures"] = len(lists)
        info["real_structures_failed"] = failed
        for set_name, (patterns, sgs, unreadable) in measured_sets().items():
            test_sets[f"measured/{set_name}"] = ("patterns", patterns, sgs)
            info[f"measured/{set_name}_unreadable"] = unreadable
    else:
        print(f"skipped real structures and measured patterns: {SHARED} is absent", file=sys.stderr)

    for set_name, (kind, inputs, sgs) in test_sets.items():
        for name, indexer in models.items():
            t0 = time.perf_counter()
            if kind == "peaks":
                x = peak_features(inputs[0], inputs[1], args.views, args.seed, indexer.model.definition)
                predictions = indexer.predict_features(x)
            else:
                predictions = indexer.predict_batch(inputs)
            results[name][set_name] = dict(score(predictions, sgs), seconds=round(time.perf_counter() - t0, 1))
    # all measured sets pooled
    for name in models:
        measured = [k for k in results[name] if k.startswith("measured/")]
        if measured:
            total = sum(results[name][k]["n"] for k in measured)
            pooled = {"n": total, "n_no_answer": sum(results[name][k]["n_no_answer"] for k in measured)}
            for key in ("crystal_system", "extinction_group", "space_group"):
                pooled[key] = sum(results[name][k][key] * results[name][k]["n"] for k in measured) / total
            answered = {k: results[name][k]["n"] - results[name][k]["n_no_answer"] for k in measured}
            pooled["sg_outside_cs"] = sum(results[name][k]["sg_outside_cs"] * answered[k] for k in measured) / \
                max(1, sum(answered.values()))
            results[name]["measured/all"] = pooled

    command = "python " + " ".join([str(Path(__file__).relative_to(ROOT))] + (argv if argv is not None
                                                                                else sys.argv[1:]))
    print(f"# hand benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"command: {command}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}; "
          f"{time.perf_counter() - started:.0f} s")
    print(f"info: {json.dumps(info)}")
    for name, indexer in models.items():
        meta = indexer.model.meta
        print(f"\n## model {name}: {indexer.model.path} ({meta.get('bytes', 0) / 1e6:.1f} MB; "
              f"{meta.get('estimator')})")
        print("| test set | n | crystal system % | extinction group % | space group % | SG outside predicted CS % "
              "| no answer |")
        print("|---|---|---|---|---|---|---|")
        for set_name, r in results[name].items():
            print(row(set_name, r))
    print(f"\npaper (HAND): held-out {PAPER['held_out']}, measured {PAPER['measured']}, "
          f"SG outside CS {PAPER['outside']} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "info": info, "results": results,
                                         "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
