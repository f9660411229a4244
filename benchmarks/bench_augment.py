"""Throughput of the full training augmentation chain (patterns per second), per operator, against a numpy baseline.

Reproduce: python benchmarks/bench_augment.py [--batch 256] [--batches 12] [--repeat 3] [--threads 1 2] [--workers 2]
                                              [--baseline-patterns 128] [--order shuffled] [--seed 0]

The chain is every operator of examples/augment_training.yaml (the training
regime, the operators' defaults), in its order, on the default 6000-bin grid
(0-120 deg, step 0.02) at Cu K-alpha1. Its input is a real simulated dataset:
the peak lists of the real structures of ../shared/data/structures/spglib (458
CIFs; examples/structures when absent), simulated with xrdframe.simulate_peaks
over 0-120 deg and cycled in a shuffled order to fill ``--batches`` batches of
``--batch`` patterns (``--order sorted``: the same patterns sorted by number of
peaks, as a length-bucketing loader would batch them, so a batch pads less).
Batches are collated (PeakBatch.from_peak_lists) before the clock starts.

For each torch thread count: the chain over all batches, best of ``--repeat``
passes; then every operator timed on its own as it runs in the chain (its share
of the summed time). ``--workers N``: one more configuration, N render threads
each with one torch thread, every batch rendered whole by one thread (what
``PatternLoader(workers=N)`` does; batch b always uses its own generator).
The baseline, benchmarks/baseline_augment_numpy.py, is a
straightforward per-pattern numpy version of the same chain (a loop over patterns,
a loop over peaks for the rendering), run on ``--baseline-patterns`` patterns spread
evenly over the batches. Goals (issue "Augmentation operators"): >= 2000 patterns/s and >= 30x
the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrdframe import simulate_peaks
from xrdframe.augmentation import AugmentationChain, PeakBatch, TwoThetaGrid
from xrdframe.loader import ordered_map
from xrdframe.plugin.manager import get_registry
from xrdframe.spec import load_spec_file, validate_spec
from xrdframe.spec.validation import unstructure
from xrdframe.structure import read_structure

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "structures" / "spglib"
SPEC = REPO / "examples" / "augment_training.yaml"
WAVELENGTH = 1.540593
GOAL_RATE, GOAL_RATIO = 2000.0, 30.0

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_augment_numpy import augment_batch  # noqa: E402


def load_chain() -> tuple[list[str], list[Any], dict[str, dict[str, Any]]]:
    """Names, operator objects and spec params (for the baseline) of the training spec's augmentations."""
    source = load_spec_file(SPEC)
    source.data["structure"] = str(REPO / source.data["structure"])  # validate from any working directory
    refs = validate_spec(source, registry=get_registry()).stages[0].task.params.augmentations
    return [r.name for r in refs], [r.build() for r in refs], {r.name: unstructure(r.params) for r in refs}


def simulate(folder: Path) -> tuple[list[Any], list[Any], float]:
    paths = sorted(folder.glob("*.cif"))
    start = time.perf_counter()
    peaks, cells = [], []
    for path in paths:
        structure = read_structure(path)
        peaks.append(simulate_peaks(structure, WAVELENGTH, (0.0, 120.0)))
        cells.append(structure.cell)
    return peaks, cells, time.perf_counter() - start


def run_ops(names: list[str], ops: list[Any], batch: PeakBatch, grid: TwoThetaGrid, generator: torch.Generator,
            times: dict[str, float] | None = None) -> torch.Tensor:
    """The chain, operator by operator (as AugmentationChain runs them), timing each when ``times`` is given."""
    x: Any = batch
    for name, op in zip(names, ops, strict=True):
        start = time.perf_counter()
        x = op(x, grid, generator) if op.stage == "render" else op(x, generator)
        if times is not None:
            times[name] += time.perf_counter() - start
    return x.intensity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=12, help="batches per timed pass")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per thread count (best kept)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, default=2, help="render threads of the extra configuration (0: none)")
    parser.add_argument("--baseline-patterns", type=int, default=128)
    parser.add_argument("--order", choices=("shuffled", "sorted"), default="shuffled")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    names, ops, params = load_chain()
    chain = AugmentationChain(ops, TwoThetaGrid(), WAVELENGTH)
    assert [*chain.peak_ops, chain.render, *chain.profile_ops] == ops, "the spec lists the operators by stage"
    grid = chain.grid
    folder = SHARED if SHARED.is_dir() else REPO / "examples" / "structures"
    peaks, cells, sim_seconds = simulate(folder)
    counts = np.array([len(p) for p in peaks])
    rng = np.random.default_rng(args.seed)
    total = args.batch * args.batches
    index = rng.permutation(len(peaks))[np.arange(total) % len(peaks)]  # cycled in a shuffled order
    if args.order == "sorted":  # as a length-bucketing loader would: lists of similar length in a batch
        index = index[np.argsort(counts[index], kind="stable")]
    start = time.perf_counter()
    batches = [PeakBatch.from_peak_lists([peaks[i] for i in chunk], cells=[cells[i] for i in chunk])
               for chunk in np.split(index, args.batches)]
    collate = (time.perf_counter() - start) / total
    fill = statistics.mean(float(b.mask.float().mean()) for b in batches)

    print(f"structures: {len(peaks)} from {folder}, simulated in {sim_seconds:.1f} s; peaks per pattern "
          f"(0-120 deg, {WAVELENGTH} A): median {int(np.median(counts))}, mean {counts.mean():.0f}, "
          f"max {counts.max()} (x2 after kalpha2)")
    print(f"batches: {args.batches} x {args.batch} patterns, {args.order} order; padded peak tensor filled "
          f"{100 * fill:.0f} % by real peaks; collating (not timed below) {1e6 * collate:.0f} us/pattern")
    print(f"chain ({len(ops)} operators, {SPEC.relative_to(REPO)}): {' -> '.join(names)}; "
          f"grid {grid.n_bins} bins; torch {torch.__version__}, {torch.get_num_threads()} threads by default, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    rates: dict[str, float] = {}
    shares: dict[str, dict[str, float]] = {}
    configs = [(f"torch threads = {t}", t, 0) for t in args.threads]
    if args.workers > 0:
        configs.append((f"{args.workers} render threads x 1 torch thread", 1, args.workers))
    for label, threads, workers in configs:
        torch.set_num_threads(threads)

        def render(b: int) -> torch.Tensor:
            return chain(batches[b], torch.Generator().manual_seed(args.seed * 1000 + b)).intensity

        for _ in ordered_map(render, range(min(2, len(batches))), workers):  # warm-up: scratch buffers, allocator
            pass
        passes = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for _ in ordered_map(render, range(len(batches)), workers):
                pass
            passes.append(time.perf_counter() - start)
        rates[label] = total / min(passes)
        print(f"\n{label}: {rates[label]:.0f} patterns/s (best of {args.repeat} passes; "
              f"passes {', '.join(f'{total / s:.0f}' for s in passes)}), "
              f"{1e3 * min(passes) / args.batches:.1f} ms per batch of {args.batch}")
        if workers:
            continue  # operator shares: as with one thread
        times: dict[str, float] = defaultdict(float)
        generator = torch.Generator().manual_seed(args.seed)
        for batch in batches:
            run_ops(names, ops, batch, grid, generator, times)
        summed = sum(times.values())
        shares[label] = {name: times[name] / summed for name in names}
        print(f"  {'operator':<24}{'share':>8}{'ms/batch':>10}")
        for name in sorted(names, key=lambda n: -times[n]):
            print(f"  {name:<24}{100 * shares[label][name]:>7.1f}%{1e3 * times[name] / args.batches:>10.1f}")

    n_base = min(args.baseline_patterns, total)
    flat = [(peaks[i], cells[i]) for i in index[np.linspace(0, total - 1, n_base).astype(int)]]  # all sizes
    start = time.perf_counter()
    augment_batch([p for p, _ in flat], [c for _, c in flat], params, np.random.default_rng(args.seed))
    base_rate = n_base / (time.perf_counter() - start)
    print(f"\nbaseline (benchmarks/baseline_augment_numpy.py, per-pattern numpy, per-peak rendering loop): "
          f"{base_rate:.1f} patterns/s on {n_base} patterns")
    for label, rate in rates.items():
        ok_rate, ok_ratio = rate >= GOAL_RATE, rate / base_rate >= GOAL_RATIO
        print(f"{label}: {rate:.0f} patterns/s = {rate / base_rate:.0f}x the baseline "
              f"(goals: >= {GOAL_RATE:.0f}/s {'met' if ok_rate else 'NOT met'}, "
              f">= {GOAL_RATIO:.0f}x {'met' if ok_ratio else 'NOT met'})")
    best = max(rates, key=rates.__getitem__)
    if rates[best] < GOAL_RATE and shares:
        top = sorted(shares[next(iter(shares))].items(), key=lambda kv: -kv[1])[:3]
        print("below the goal; largest shares: " + ", ".join(f"{n} {100 * s:.0f} %" for n, s in top))
    print("\ncommand: python benchmarks/bench_augment.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
