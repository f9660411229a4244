"""Benchmark of the ntreor indexer on ideal peak lists simulated from the shared real structures.

For each structure of ``../shared/data/structures/spglib/index.csv``: peaks from
``simulate_peaks(structure, 1.5406, (0, 120))``, lines of intensity >= 1 (strongest = 100), lines closer than
0.02 deg merged (intensity-weighted position, as a diffractometer cannot resolve them), the first 30 kept,
Gaussian position noise added (seeded per structure), optionally spurious lines at random positions with the
intensities of weak lines. The lines go through the whole ``ntreor`` indexer (search, reduction to the
conventional cell, extinction group; the crystal system of a hexagonal lattice, trigonal or hexagonal, comes
from the extinction group, hexagonal on a tie). ``--search-only``: the bare search, whose hexagonal metric with a
P lattice is always 'hexagonal'. Success = the right crystal system AND the same lattice: Niggli-reduced
primitive cells with lengths within 0.5% and volume within 1% ("lattice correct" is reported separately). The
reference is the structure file's cell and centring (the peaks come from it; index.csv lists another cell for a
few files, for example a doubled cell for triclinic__POSCAR-002).

Usage::

    python benchmarks/bench_ntreor.py [--limit N] [--systems cubic,monoclinic] [--workers 2]
    python benchmarks/bench_ntreor.py --noise 0.03 --impurities 2
    python benchmarks/bench_ntreor.py --per-system 20 --workers 1   # stratified sample, 122 structures
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:
    import xrdframe_ntreor  # noqa: F401
except ImportError:  # not installed (editable install predates the package): use the source tree
    sys.path.insert(0, str(ROOT / "plugins"))

from xrdframe_ntreor.indexer import Ntreor, NtreorParams  # noqa: E402
from xrdframe_ntreor.search import SearchParams, niggli_cell, search  # noqa: E402

from xrdframe import read_structure, simulate_peaks  # noqa: E402
from xrdframe.pattern import ObservedPeaks  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "structures" / "spglib"
WAVELENGTH = 1.5406
ORDER = ("cubic", "tetragonal", "hexagonal", "trigonal", "orthorhombic", "monoclinic", "triclinic")


def peak_list(path: Path, seed: int, noise: float, impurities: int, n_lines: int = 30,
              merge: float = 0.02) -> tuple[np.ndarray, str, tuple[float, ...]]:
    """Observed 2theta (degrees) of a structure, the centring letter of its setting and its cell."""
    structure = read_structure(path)
    peaks = simulate_peaks(structure, WAVELENGTH, (0, 120))
    keep = peaks.intensity >= 1.0
    tt, inten = peaks.two_theta[keep], peaks.intensity[keep]
    group = np.concatenate([[0], np.cumsum(np.diff(tt) >= merge)])
    weight = np.bincount(group, inten)
    tt = np.bincount(group, tt * inten) / weight
    inten = weight
    tt, inten = tt[:n_lines], inten[:n_lines]
    rng = np.random.default_rng(seed)
    tt = tt + rng.normal(0.0, noise, tt.size)
    if impurities and tt.size:
        tt = np.concatenate([tt, rng.uniform(tt.min(), tt.max(), impurities)])
    tt = np.unique(np.round(np.sort(tt), 5))
    return tt, structure.gemmi_space_group.centring_type(), tuple(structure.cell)


def run_one(job: tuple[int, dict[str, str], float, int, float, bool, float]) -> dict[str, object]:
    i, row, noise, impurities, budget, search_only, tolerance = job
    truth_system = row["crystal_system"]
    out: dict[str, object] = {"path": row["path"], "system": truth_system, "ok": False, "lattice": False,
                              "seconds": 0.0, "found": None, "reason": None}
    try:
        tt, centring, truth_cell = peak_list(DATA / row["path"], zlib.crc32(row["path"].encode()), noise, impurities)
    except Exception as exc:  # noqa: BLE001 - report the structure, carry on
        out["reason"] = f"simulation failed: {exc}"
        return out
    if search_only:
        result = search(tt, WAVELENGTH, params=SearchParams(time_budget=budget, tolerance=tolerance,
                                                            screen_tolerance=2 * tolerance))
        out["seconds"], out["reason"] = result.seconds, result.reason
        if not result.solutions:
            return out
        best = result.solutions[0]
        system, centring_found, m20 = best.crystal_system, best.centring, best.m20
        lines = f"{best.lines_indexed}/{best.lines_total}"
    else:
        indexer = Ntreor(NtreorParams(time_budget=budget, tolerance=tolerance))
        prediction = indexer.predict(ObservedPeaks(tt, None, WAVELENGTH))
        out["seconds"], out["reason"] = prediction.seconds, prediction.reason
        if not prediction.candidates:
            return out
        best = prediction.candidates[0]
        system, m20 = prediction.crystal_system, best.m20
        centring_found = best.centring  # of the cell as written (the lattice letter)
        lines = f"{best.lines_indexed}/{best.lines_total}"
    ref = niggli_cell(truth_cell, centring)
    got = niggli_cell(best.cell, centring_found)
    vol = lambda c: float(np.prod(c[:3]) * np.sqrt(max(  # noqa: E731
        1 - sum(np.cos(np.radians(c[3:])) ** 2) + 2 * np.prod(np.cos(np.radians(c[3:]))), 0.0)))
    lattice = bool(np.all(np.abs(np.sort(got[:3]) / np.sort(ref[:3]) - 1) <= 0.005)
                   and abs(vol(got) / vol(ref) - 1) <= 0.01)
    out["lattice"] = lattice
    out["ok"] = lattice and system == truth_system
    out["found"] = (f"{system} {centring_found} "
                    + " ".join(f"{x:.4f}" for x in best.cell) + f" M20={m20:.1f} "
                    + f"{lines}; truth {centring} "
                    + " ".join(f"{x:.4f}" for x in truth_cell))
    return out


class _Serial:
    """In-process stand-in for a one-worker pool."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def imap(func, jobs, chunksize=1):  # noqa: ANN001, ANN205, ARG004 - mirrors Pool.imap
        return map(func, jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N structures (per system with --systems)")
    parser.add_argument("--per-system", type=int, default=None,
                        help="stratified sample: N structures per crystal system, evenly spaced in index.csv order "
                             "(all of a system with fewer)")
    parser.add_argument("--start", type=int, default=0, help="skip the first N of the selection (resume a run)")
    parser.add_argument("--reverse", action="store_true",
                        help="run the selection last first (two processes can share a long run from both ends)")
    parser.add_argument("--systems", default=None, help="comma-separated crystal systems to run")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    parser.add_argument("--noise", type=float, default=0.01, help="Gaussian 2theta noise, degrees (default 0.01)")
    parser.add_argument("--impurities", type=int, default=0, help="spurious lines added (default 0)")
    parser.add_argument("--budget", type=float, default=60.0, help="time budget of monoclinic+triclinic, s")
    parser.add_argument("--tolerance", type=float, default=0.03,
                        help="indexing tolerance, deg 2theta (screening at twice it; default 0.03, the indexer's)")
    parser.add_argument("--progress", action="store_true", help="one line per pattern on stderr")
    parser.add_argument("--failures", action="store_true", help="list every failure")
    parser.add_argument("--search-only", action="store_true", help="the bare search, not the whole indexer")
    parser.add_argument("--only", default=None, help="comma-separated structure files (index.csv paths) to run")
    args = parser.parse_args(argv)
    with open(DATA / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if args.systems:
        wanted = set(args.systems.split(","))
        rows = [r for r in rows if r["crystal_system"] in wanted]
    if args.only:
        names = set(args.only.split(","))
        rows = [r for r in rows if r["path"] in names]
    if args.limit:
        per: dict[str, int] = {}
        chosen = []
        for r in rows:
            if per.get(r["crystal_system"], 0) < args.limit:
                per[r["crystal_system"]] = per.get(r["crystal_system"], 0) + 1
                chosen.append(r)
        rows = chosen
    if args.per_system:
        by_system: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_system.setdefault(r["crystal_system"], []).append(i)
        picked = set()
        for members in by_system.values():
            n = min(args.per_system, len(members))
            picked.update(members[int(j)] for j in np.floor(np.arange(n) * len(members) / n))
        rows = [r for i, r in enumerate(rows) if i in picked]
        # round robin over the systems: any prefix of the run (a run stopped early) is a stratified sample too
        seen: dict[str, int] = {}
        rank = []
        for r in rows:
            rank.append(seen.get(r["crystal_system"], 0))
            seen[r["crystal_system"]] = rank[-1] + 1
        rows = [rows[i] for i in np.argsort(rank, kind="stable")]
    if args.reverse:
        rows = rows[::-1]
    rows = rows[args.start:]
    jobs = [(i, r, args.noise, args.impurities, args.budget, args.search_only, args.tolerance)
            for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    results = []
    with multiprocessing.Pool(args.workers) if args.workers > 1 else _Serial() as pool:
        for r in pool.imap(run_one, jobs, chunksize=1):
            results.append(r)
            if args.progress:  # one line per pattern on stderr, to follow a long run
                print(f"{len(results)}/{len(jobs)} {'ok  ' if r['ok'] else 'FAIL'} "
                      f"lattice={'y' if r['lattice'] else 'n'} {r['system']:<12} {r['seconds']:6.1f}s {r['path']}"
                      + ("" if r["ok"] else f" | {r['found']} ({r['reason']})"), file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    print(f"ntreor {'search' if args.search_only else 'indexer'} benchmark: noise {args.noise} deg, "
          f"tolerance {args.tolerance} deg, "
          f"{args.impurities} impurity lines, "
          f"{len(results)} patterns, {wall:.0f} s wall")
    print(f"{'system':<13}{'n':>5}{'success %':>11}{'lattice %':>11}{'median s':>10}{'max s':>8}")
    for system in ORDER + ("all",):
        sel = [r for r in results if system == "all" or r["system"] == system]
        if not sel:
            continue
        sec = np.array([r["seconds"] for r in sel])
        print(f"{system:<13}{len(sel):>5}{100 * np.mean([r['ok'] for r in sel]):>11.1f}"
              f"{100 * np.mean([r['lattice'] for r in sel]):>11.1f}{np.median(sec):>10.2f}{sec.max():>8.2f}")
    if args.failures:
        for r in results:
            if not r["ok"]:
                print(f"FAIL {r['path']}: {r['found']} ({r['reason']}) {r['seconds']:.1f}s")
    print("reproduce: python benchmarks/bench_ntreor.py " + " ".join(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
