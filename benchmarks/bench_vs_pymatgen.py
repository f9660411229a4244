"""Speed and agreement of ``simulate_peaks`` against pymatgen's ``XRDCalculator``, structure by structure.

Reproduce: python benchmarks/bench_vs_pymatgen.py [--limit N] [--skip-larger-than ATOMS] [--csv FILE]

Uses the 458 real structures of ../shared/data/structures/spglib (listed in its
index.csv) when present, otherwise the example structures (with a note). Every
structure is read beforehand, by ``read_structure`` for xrdframe and by
``pymatgen.core.Structure.from_file`` for pymatgen, so reading is not timed.

(a) Speed: ``XRDCalculator(wavelength=1.5406).get_pattern(s, two_theta_range=(0, 120))``
    against ``simulate_peaks(s, 1.5406, (0, 120))`` (IT92 form factors, the default),
    one after the other for each structure, in one process, after one warm-up call
    of each. Reported: the median of the per-structure time ratios, median / p90 /
    max times of both, the totals.

(b) Agreement with the same form factors: ours with pymatgen's fit
    ``f = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2)`` passed as ``form_factor=``,
    against pymatgen's patterns of (a). Our lines are merged as pymatgen merges
    them (2theta rounded to multiples of 1e-5 deg, intensities summed, the
    position of the line of smallest 2theta kept) and rescaled to 100; lines are
    matched by that key. Reported per structure: max |delta 2theta| over matched
    lines, max |delta I| (0-100 scale) over all lines (a line missing from one
    list counts with I = 0 there), the number of unmatched lines.

(c) The same with our default IT92 form factors: raw (the files' placeholder
    species H, He, Li, Be, B, C) and relabelled (placeholders replaced in both
    codes by elements whose IT92 and pymatgen fits agree within 0.3 %, as in
    tests/test_diffraction.py; pymatgen's H is the free atom, IT92's the bonded
    one, 32 % apart at s = 0.46). pymatgen computes the relabelled patterns again
    (not timed).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import attrs
import gemmi
import numpy as np

from xrdframe.diffraction import PeakList, simulate_peaks
from xrdframe.structure import read_structure

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "structures" / "spglib"
WAVELENGTH = 1.5406
RANGE = (0.0, 120.0)
TWO_THETA_TOL = 1e-5  # pymatgen's AbstractDiffractionPatternCalculator.TWO_THETA_TOL (line merging), deg
TARGET_DI = 0.1  # acceptance: |delta I| <= 0.1 on the 0-100 scale with the same form factors
PLACEHOLDERS = {"H": "O", "He": "Ne", "Li": "S", "Be": "Br", "B": "Se", "C": "I"}  # as tests/test_diffraction.py


def structure_paths() -> tuple[list[Path], str]:
    index = SHARED / "index.csv"
    if index.is_file():
        with open(index, newline="", encoding="utf-8") as fh:
            return [SHARED / row["path"] for row in csv.DictReader(fh)], str(SHARED)
    folder = REPO / "examples" / "structures"
    print(f"note: {index} not found; using the example structures of {folder} instead of the 458 spglib ones")
    return sorted(folder.glob("*.cif")), str(folder)


def pymatgen_form_factor_function(xrd_module):
    """pymatgen's form-factor fit as a function (element, stol2) -> f, for simulate_peaks(form_factor=)."""
    params = json.loads(Path(xrd_module.__file__).with_name("atomic_scattering_params.json").read_text())

    def form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
        c = np.array(params[element])
        s2 = np.asarray(stol2, dtype=np.float64)
        z = gemmi.Element(element).atomic_number
        return z - 41.78214 * s2 * np.sum(c[:, 0] * np.exp(-c[:, 1] * s2[..., None]), axis=-1)

    return form_factor


def merged_as_pymatgen(peaks: PeakList) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, positions, intensities 0-100) of our lines merged by pymatgen's rule: round(2theta / 1e-5)."""
    keys = np.round(peaks.two_theta / TWO_THETA_TOL).astype(np.int64)
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    position = np.full(len(unique), np.inf)
    np.minimum.at(position, inverse, peaks.two_theta)  # pymatgen keeps the first (smallest g) line of a bin
    intensity = np.bincount(inverse, weights=peaks.intensity, minlength=len(unique))
    if len(intensity):
        intensity = 100.0 * intensity / intensity.max()
    return unique, position, intensity


@attrs.frozen
class Agreement:
    max_dtt: float  # deg, over matched lines
    max_di: float  # 0-100 scale, over all lines
    where: float  # 2theta of the line with the largest |delta I|
    ours_i: float
    pmg_i: float
    unmatched: int  # lines in one list only
    unmatched_max_i: float
    n_lines: int  # pymatgen's


def compare(peaks: PeakList, pattern) -> Agreement:
    okeys, opos, oint = merged_as_pymatgen(peaks)
    px, py = np.asarray(pattern.x, dtype=float), np.asarray(pattern.y, dtype=float)
    pkeys = np.round(px / TWO_THETA_TOL).astype(np.int64)
    ours = dict(zip(okeys.tolist(), range(len(okeys)), strict=True))
    used = set()
    rows = []  # (position, ours intensity, pymatgen intensity, delta 2theta or nan)
    for j, key in enumerate(pkeys.tolist()):
        i = ours.get(key)
        if i is None:  # a line on the other side of a bin edge (rounding), if any
            i = next((ours[k] for k in (key - 1, key + 1) if k in ours and ours[k] not in used
                      and abs(opos[ours[k]] - px[j]) < TWO_THETA_TOL), None)
        if i is None or i in used:
            rows.append((px[j], 0.0, py[j], np.nan))
        else:
            used.add(i)
            rows.append((px[j], oint[i], py[j], abs(opos[i] - px[j])))
    rows += [(opos[i], oint[i], 0.0, np.nan) for i in range(len(okeys)) if i not in used]
    table = np.array(rows, dtype=float).reshape(-1, 4)
    di = np.abs(table[:, 1] - table[:, 2])
    worst = int(np.argmax(di))
    lonely = np.isnan(table[:, 3])
    return Agreement(max_dtt=float(np.nanmax(table[:, 3])) if (~lonely).any() else float("nan"),
                     max_di=float(di[worst]), where=float(table[worst, 0]), ours_i=float(table[worst, 1]),
                     pmg_i=float(table[worst, 2]), unmatched=int(lonely.sum()),
                     unmatched_max_i=float(np.max(table[lonely, 1:3], initial=0.0)), n_lines=len(px))


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summary(values, unit: str = "", fmt: str = ".3g") -> str:
    return (f"median {statistics.median(values):{fmt}}{unit}, p90 {percentile(values, 90):{fmt}}{unit}, "
            f"max {max(values):{fmt}}{unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N structures of the index only")
    parser.add_argument("--skip-larger-than", type=int, default=None, metavar="ATOMS",
                        help="leave out structures with more atoms in the cell (pymatgen is slow on big cells)")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-structure figures to this CSV file")
    parser.add_argument("--worst", type=int, default=5, help="list this many worst structures per comparison")
    args = parser.parse_args()
    started = time.perf_counter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pymatgen.analysis.diffraction.xrd as pmg_xrd
        from pymatgen.core import Structure as PmgStructure
    pmg_ff = pymatgen_form_factor_function(pmg_xrd)
    calculator = pmg_xrd.XRDCalculator(wavelength=WAVELENGTH)

    paths, folder = structure_paths()
    if args.limit is not None:
        paths = paths[: args.limit]
    t0 = time.perf_counter()
    ours_s, pmg_s, names, skipped = [], [], [], []
    for path in paths:
        s = read_structure(path)
        if args.skip_larger_than is not None and len(s.elements) > args.skip_larger_than:
            skipped.append(path.stem)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pmg_s.append(PmgStructure.from_file(str(path)))
        ours_s.append(s)
        names.append(path.stem)
    read_seconds = time.perf_counter() - t0
    atoms = np.array([len(s.elements) for s in ours_s])
    same_atoms = sum(len(p) == len(s.elements) for p, s in zip(pmg_s, ours_s, strict=True))
    with_b = sum(bool(np.any(s.b_iso != 0)) for s in ours_s)
    print(f"structures: {len(ours_s)} from {folder} (atoms per cell: median {int(np.median(atoms))}, "
          f"max {atoms.max()}; both readers give the same atom count for {same_atoms}; read in {read_seconds:.1f} s)"
          + (f"; left out (> {args.skip_larger_than} atoms): {len(skipped)}" if skipped else ""))

    # ---------------------------------------------------------------- (a) speed
    def pmg_pattern(structure):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calculator.get_pattern(structure, two_theta_range=RANGE)

    pmg_pattern(pmg_s[0])  # warm-up (imports, caches)
    simulate_peaks(ours_s[0], WAVELENGTH, RANGE)
    t_pmg, t_ours, patterns, ours_it92 = [], [], [], []
    for s, p in zip(ours_s, pmg_s, strict=True):
        t = time.perf_counter()
        patterns.append(pmg_pattern(p))
        t_pmg.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours_it92.append(simulate_peaks(s, WAVELENGTH, RANGE))
        t_ours.append(time.perf_counter() - t)
    ratio = [a / b for a, b in zip(t_pmg, t_ours, strict=True)]
    print(f"\n(a) speed, 2theta {RANGE[0]:g}-{RANGE[1]:g} deg at {WAVELENGTH} A, one structure after the other:")
    print(f"  pymatgen XRDCalculator.get_pattern: {summary([1e3 * t for t in t_pmg], ' ms')}; "
          f"total {sum(t_pmg):.1f} s")
    print(f"  xrdframe simulate_peaks:            {summary([1e3 * t for t in t_ours], ' ms')}; "
          f"total {sum(t_ours):.2f} s")
    print(f"  time ratio pymatgen / xrdframe per structure: median {statistics.median(ratio):.1f}x "
          f"(p10 {percentile(ratio, 10):.1f}x, min {min(ratio):.1f}x, max {max(ratio):.1f}x); "
          f"ratio of the totals {sum(t_pmg) / sum(t_ours):.1f}x (goal: median >= 30x)")
    lines = [len(a.x) for a in patterns]
    print(f"  lines per structure: pymatgen {statistics.median(lines):.0f} (median, merged), "
          f"xrdframe {statistics.median([len(p) for p in ours_it92]):.0f} (median, one per orbit)")

    # ---------------------------------------------------------------- (b) same form factors
    same = []
    for s, pattern in zip(ours_s, patterns, strict=True):
        if with_b:
            s = attrs.evolve(s, b_iso=np.zeros_like(s.b_iso))  # pymatgen ignores the files' B here
        same.append(compare(simulate_peaks(s, WAVELENGTH, RANGE, form_factor=pmg_ff), pattern))
    # ---------------------------------------------------------------- (c) IT92, raw and relabelled
    raw = [compare(peaks, pattern) for peaks, pattern in zip(ours_it92, patterns, strict=True)]
    relabelled = []
    for s, p in zip(ours_s, pmg_s, strict=True):
        p = p.copy()
        p.replace_species({k: v for k, v in PLACEHOLDERS.items() if k in p.symbol_set})
        s = attrs.evolve(s, elements=[PLACEHOLDERS.get(e, e) for e in s.elements])
        relabelled.append(compare(simulate_peaks(s, WAVELENGTH, RANGE), pmg_pattern(p)))

    def report(title: str, results: list[Agreement], target: bool = False) -> None:
        dtt = [r.max_dtt for r in results if np.isfinite(r.max_dtt)]
        di = [r.max_di for r in results]
        print(f"\n{title}")
        print(f"  max |delta 2theta| over matched lines: {max(dtt):.2g} deg (all {len(results)} structures); "
              f"unmatched lines: {sum(r.unmatched for r in results)} in "
              f"{sum(r.unmatched > 0 for r in results)} structures, strongest "
              f"{max(r.unmatched_max_i for r in results):.2g}")
        print(f"  max |delta I| per structure (0-100 scale): {summary(di, fmt='.3g')}"
              + (f"; within {TARGET_DI}: {sum(d <= TARGET_DI for d in di)} of {len(di)}" if target else ""))
        order = np.argsort(di)[::-1][: args.worst]
        for k in order:
            r = results[k]
            print(f"    {names[k]:32s} {atoms[k]:5d} atoms  |dI| {r.max_di:.4g} at {r.where:.4f} deg "
                  f"(ours {r.ours_i:.4f}, pymatgen {r.pmg_i:.4f}); unmatched {r.unmatched}")

    report("(b) same form factors (pymatgen's fit passed as form_factor=):", same, target=True)
    report("(c) IT92 (our default) against pymatgen, raw placeholder species:", raw)
    report(f"(c) IT92 against pymatgen, placeholders relabelled in both ({PLACEHOLDERS}):", relabelled)

    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["name", "atoms", "pymatgen_atoms", "t_pymatgen_s", "t_xrdframe_s", "ratio",
                             "same_ff_max_dtt", "same_ff_max_di", "same_ff_where", "same_ff_unmatched",
                             "it92_raw_max_di", "it92_relabelled_max_di"])
            for k, name in enumerate(names):
                writer.writerow([name, atoms[k], len(pmg_s[k]), f"{t_pmg[k]:.6f}", f"{t_ours[k]:.6f}",
                                 f"{ratio[k]:.2f}", f"{same[k].max_dtt:.3g}", f"{same[k].max_di:.6g}",
                                 f"{same[k].where:.5f}", same[k].unmatched, f"{raw[k].max_di:.6g}",
                                 f"{relabelled[k].max_di:.6g}"])
        print(f"\nper-structure figures: {args.csv}")
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")
    print("command: python benchmarks/bench_vs_pymatgen.py " + shlex.join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
