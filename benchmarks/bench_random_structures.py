"""Throughput of the ``random_structures`` source (structures per second, one core).

Reproduce: python benchmarks/bench_random_structures.py [--count 2000] [--seed 0]

Draws ``--count`` structures over all 230 space groups (equal weights, default
parameters) and reports the rate overall and per crystal system, the time per
structure (median and p99, each including its redrawn attempts and the spglib
check), the redraw rate and the share of structures with a special position.
The one-off derivation of the special positions of every group is timed apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
from xrdframe_structures.random_structures import (
    RandomStructures,
    RandomStructuresParams,
    crystal_system,
    special_positions,
)

SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--space-groups", type=int, nargs="*", default=None,
                        help="draw from these groups only (default: all 230)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    for n in range(1, 231):
        special_positions(n)
    derive = time.perf_counter() - t0
    total_special = sum(len(special_positions(n)) for n in range(1, 231))

    source = RandomStructures(RandomStructuresParams(count=args.count, space_groups=args.space_groups))
    per_structure: list[float] = []
    by_system: dict[str, list[float]] = defaultdict(list)
    atoms: list[int] = []
    start = time.perf_counter()
    last = start
    for s in source.structures(args.seed):
        now = time.perf_counter()
        per_structure.append(now - last)
        by_system[crystal_system(s.space_group)].append(now - last)
        atoms.append(len(s.elements))
        last = now
    elapsed = time.perf_counter() - start
    stats = source.stats

    print(f"special positions of all 230 groups derived in {derive:.2f} s (once per process): "
          f"{total_special} special + 230 general = {total_special + 230} Wyckoff positions")
    print(f"structures: {len(per_structure)} (atoms per cell: median {int(np.median(atoms))}, max {max(atoms)})")
    print(f"overall: {len(per_structure) / elapsed:.0f} structures/s; "
          f"median {1e3 * statistics.median(per_structure):.2f} ms, "
          f"p99 {1e3 * float(np.percentile(per_structure, 99)):.2f} ms per structure")
    for system in SYSTEMS:
        times = by_system.get(system)
        if times:
            p99 = 1e3 * float(np.percentile(times, 99))
            print(f"  {system:12s} {len(times):5d} structures  {len(times) / sum(times):6.0f} structures/s  "
                  f"median {1e3 * statistics.median(times):6.2f} ms  p99 {p99:6.2f} ms")
    n = stats.structures
    print(f"attempts per structure: {stats.attempts / n:.2f} "
          f"(placement gave up: {stats.placement_failures}, extra lattice translation: {stats.extra_translation}, "
          f"spglib found another group: {stats.spglib_mismatch})")
    print(f"redraw rate (symmetry not the requested one): {stats.redraws / n:.3f} per structure, "
          f"{stats.redraws / stats.attempts:.3f} of attempts; space-group redraws: {stats.group_redraws}")
    print(f"share with at least one special-position site: {stats.with_special / n:.2f}")
    groups = "" if args.space_groups is None else " --space-groups " + " ".join(map(str, args.space_groups))
    print(f"command: python benchmarks/bench_random_structures.py --count {args.count} --seed {args.seed}{groups}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
