"""Throughput of the ``simulate`` task (structures per second) with 1 and 2 worker processes.

Reproduce: python benchmarks/bench_simulate_task.py [--source spglib|random] [--count 2000]

``spglib``: the 458 real structures of ../shared/data/structures/spglib (CIF
reading, spglib check and peak simulation); ``random``: ``random_structures``
(generation, spglib verification and peak simulation).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from xrdframe.dataset import PeakDataset
from xrdframe.plugin.manager import Registry
from xrdframe.run import run_pipeline
from xrdframe.spec import load_spec_text, validate_spec

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "structures" / "spglib"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["spglib", "random"], default="spglib")
    parser.add_argument("--count", type=int, default=2000, help="random structures (with --source random)")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.source == "spglib":
        if not SHARED.is_dir():
            print(f"{SHARED} not found: ../shared/data is needed for --source spglib", file=sys.stderr)
            return 2
        source = f"{{name: cif_dir, params: {{path: '{SHARED}'}}}}"
    else:
        source = f"{{name: random_structures, params: {{count: {args.count}}}}}"
    registry = Registry()
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            text = (f"xrdframe: 1\ntask: simulate\nseed: 0\noutput: {tmp}/ds\nstructures: {source}\n"
                    f"shard_size: {args.shard_size}\nworkers: {workers}\n")
            pipeline = validate_spec(load_spec_text(text), registry=registry)
            start = time.perf_counter()
            run_pipeline(pipeline, registry, quiet=True)
            seconds = time.perf_counter() - start
            ds = PeakDataset.open(Path(tmp) / "ds")
            total = ds.meta["source_count"]
            print(f"simulate {args.source}: {total} structures ({len(ds)} kept, {ds.meta['n_skipped']} skipped), "
                  f"workers={workers}: {seconds:.1f} s, {total / seconds:.0f} structures/s")
    workers = " ".join(map(str, args.workers))
    extra = f" --count {args.count}" if args.source == "random" else ""
    print(f"command: python benchmarks/bench_simulate_task.py --source {args.source}{extra} "
          f"--shard-size {args.shard_size} --workers {workers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
