"""Throughput of the Bragg-peak simulator (structures per second, one core).

Reproduce: python benchmarks/bench_simulate_peaks.py [--repeat 3]

Uses the 458 real structures of ../shared/data/structures/spglib when present,
otherwise the example structures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from xrdframe.diffraction import simulate_peaks
from xrdframe.structure import read_structure

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "structures" / "spglib"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--wavelength", type=float, default=1.5406)
    parser.add_argument("--two-theta-max", type=float, default=120.0)
    args = parser.parse_args()
    folder = SHARED if SHARED.is_dir() else REPO / "examples" / "structures"
    paths = sorted(folder.glob("*.cif"))
    t0 = time.perf_counter()
    structures = [read_structure(p) for p in paths]
    read_seconds = time.perf_counter() - t0
    per_structure: list[float] = []
    runs = []
    n_peaks = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        for s in structures:
            t = time.perf_counter()
            n_peaks += len(simulate_peaks(s, args.wavelength, (0.0, args.two_theta_max)))
            per_structure.append(time.perf_counter() - t)
        runs.append(time.perf_counter() - start)
    best = min(runs)
    atoms = np.array([len(s.elements) for s in structures])
    print(f"structures: {len(structures)} from {folder} (atoms per cell: median {int(np.median(atoms))}, "
          f"max {atoms.max()})")
    print(f"read_structure: {len(structures) / read_seconds:.0f} structures/s")
    print(f"simulate_peaks (2theta 0-{args.two_theta_max:g} deg, {args.wavelength} A): "
          f"{len(structures) / best:.0f} structures/s (best of {args.repeat}); "
          f"median {1e3 * statistics.median(per_structure):.2f} ms, "
          f"p99 {1e3 * float(np.percentile(per_structure, 99)):.2f} ms per structure; "
          f"{n_peaks / args.repeat / len(structures):.0f} peaks per structure")
    print(f"command: python benchmarks/bench_simulate_peaks.py --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
