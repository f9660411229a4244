"""Peak picking on the shared measured patterns: time, number of peaks and agreement with the known cells.

Reproduce: python benchmarks/bench_peak_picking.py [--sets gsas2_tutorials iucr_pdcif autoxrd_pvlab] [--first 20]

For every pattern of ``../shared/data/experimental/*/index.csv``: :func:`~xrdframe.pattern.read_pattern`, then
:func:`~xrdframe.peak_picking.pick_peaks` with default parameters (timed, reading excluded). Per set: seconds per
pattern (median, max), peaks per pattern (median, min, max), and, for patterns with a known cell, the fraction of
the first ``--first`` picked peaks within ``--tolerance`` degrees of an allowed reflection of the cell (systematic
absences of the labelled space group removed), after the best common zero shift in +-0.15 degrees (ties: the
smallest mean distance). Multi-phase patterns (n_phases > 1) are labelled by their main phase, so some of their
peaks belong to other phases. One pattern per line with ``--verbose``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from xrdframe.pattern import PatternError, read_pattern
from xrdframe.peak_picking import pick_peaks, reflection_two_theta

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "experimental"
CELL = ("a", "b", "c", "alpha", "beta", "gamma")


def match_fraction(two_theta: np.ndarray, reflections: np.ndarray, tolerance: float = 0.05,
                   max_zero: float = 0.15) -> tuple[float, float]:
    """Fraction of ``two_theta`` within ``tolerance`` of a reflection, after the best zero shift (degrees)."""
    if two_theta.size == 0 or reflections.size == 0:
        return 0.0, 0.0
    best = (-1, 0.0, 0.0)
    for zero in np.arange(-max_zero, max_zero + 1e-9, 0.0025):
        index = np.clip(np.searchsorted(reflections, two_theta + zero), 1, reflections.size - 1)
        distance = np.minimum(np.abs(reflections[index] - two_theta - zero),
                              np.abs(reflections[index - 1] - two_theta - zero))
        hit = distance <= tolerance
        score = (int(hit.sum()), -float(distance[hit].mean()) if hit.any() else 0.0)
        if score > best[:2]:
            best = (*score, float(zero))
    return best[0] / two_theta.size, best[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=None, help="set folders (default: all)")
    parser.add_argument("--first", type=int, default=20, help="peaks checked against the known cell")
    parser.add_argument("--tolerance", type=float, default=0.05, help="degrees")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"no shared data at {SHARED}; nothing to do")
        return 0
    sets = args.sets or sorted(p.name for p in SHARED.iterdir() if (p / "index.csv").is_file())
    print(f"command: python benchmarks/bench_peak_picking.py --sets {' '.join(sets)} --first {args.first} "
          f"--tolerance {args.tolerance}")
    header = (f"{'set':<16} {'n':>4} {'s/pattern med':>13} {'max':>6} {'peaks med':>9} {'min':>4} {'max':>5} "
              f"{'cells':>5} {'match first ' + str(args.first) + ' (mean)':>22} {'median':>7} {'1-phase mean':>12}")
    rows_out = []
    for name in sets:
        rows = list(csv.DictReader(open(SHARED / name / "index.csv", newline="")))
        seconds, counts, matches, single, failures = [], [], [], [], []
        for row in rows:
            path = SHARED / name / row["path"]
            try:
                pattern = read_pattern(path)
            except PatternError as exc:
                failures.append(str(exc))
                continue
            start = time.perf_counter()
            peaks = pick_peaks(pattern)
            seconds.append(time.perf_counter() - start)
            counts.append(len(peaks))
            line = f"  {row['path']:<60} {seconds[-1]:6.2f} s {len(peaks):5d} peaks"
            if all(row.get(k) for k in CELL) and row.get("space_group") and pattern.wavelength:
                cell = [float(row[k]) for k in CELL]
                reflections = reflection_two_theta(cell, peaks.wavelength, float(pattern.two_theta[-1]) + 1.0,
                                                   int(row["space_group"]))
                fraction, zero = match_fraction(peaks.two_theta[: args.first], reflections, args.tolerance)
                matches.append(fraction)
                if row.get("n_phases", "1") in ("", "1"):
                    single.append(fraction)
                line += f"  match {fraction:5.2f} (zero {zero:+.3f}, phases {row.get('n_phases', '?')})"
            if args.verbose:
                print(line, flush=True)
        rows_out.append(
            f"{name:<16} {len(seconds):>4} {statistics.median(seconds) if seconds else float('nan'):>13.3f} "
            f"{max(seconds, default=float('nan')):>6.2f} {statistics.median(counts) if counts else 0:>9.0f} "
            f"{min(counts, default=0):>4} {max(counts, default=0):>5} {len(matches):>5} "
            f"{statistics.mean(matches) if matches else float('nan'):>22.3f} "
            f"{statistics.median(matches) if matches else float('nan'):>7.3f} "
            f"{statistics.mean(single) if single else float('nan'):>12.3f}")
        for failure in failures:
            print(f"  unreadable: {failure}")
    print(header)
    print("\n".join(rows_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
