"""Speed and agreement of ``simulate_peaks`` against pymatgen's ``XRDCalculator``, structure by structure.

Reproduce: python benchmarks/bench_vs_pymatgen.py [--limit N] [--skip-larger-than ATOMS] [--repeat R]
                                                  [--threads T] [--csv FILE]

Uses the 458 real structures of ../shared/data/structures/spglib (listed in its
index.csv) when present, otherwise the example structures (with a note). Every
structure is read beforehand, by ``read_structure`` for xrdframe and by
``pymatgen.core.Structure.from_file`` for pymatgen, so reading is not timed.

(a) Speed: ``XRDCalculator(wavelength=1.5406).get_pattern(s, two_theta_range=(0, 120))``
    against ``simulate_peaks(s, 1.5406, (0, 120))`` (IT92 form factors, the default),
    in one process: each pass runs pymatgen over all structures, then xrdframe
    (each code as it is used, one structure after the other), with the garbage
    collector off during each timed call (as timeit does; neither pays for the
    other's garbage) and after a warm-up call; with ``--repeat R`` the best of R
    passes per structure. Alternating structure by structure instead measures
    xrdframe with CPU caches cold from pymatgen's much larger call. BLAS is
    limited to ``--threads`` threads (default 1, one core) through threadpoolctl.
    Reported: the median of the per-structure time ratios, median / p90 / max
    times of both, the totals.

(b) Agreement with the same form factors: ours with pymatgen's fit
    ``f = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2)`` passed as ``form_factor=``,
    against pymatgen's patterns of (a). Our lines are merged as pymatgen merges
    them (2theta rounded to multiples of 1e-5 deg, intensities summed, the
    position of the line of smallest 2theta kept) and rescaled to 100; lines are
    matched by that key. Reported per structure: max |delta 2theta| over matched
    lines, max |delta I| (0-100 scale) over all lines (a line missing from one
    list counts with I = 0 there), the number of unmatched lines. Three checks
    explain the differences: where a position differs, whether pymatgen's is that
    of a reflection it lists in the same 1e-5 deg bin but which has no intensity
    (absent or extinct; pymatgen keeps the position of the first reflection of a
    bin, intensity or not); where the atom counts differ, the structure is read
    again with copies merged only within 0.001 Angstrom (as pymatgen's 1e-4
    fractional site tolerance does) instead of read_structure's 0.05 Angstrom;
    where |delta I| > 0.002 otherwise, it is read again with coordinates within
    a relative 1e-4 of 1/3 and 2/3 set to them, as pymatgen's CifParser does.

(c) The same with our default IT92 form factors: raw (the files' placeholder
    species H, He, Li, Be, B, C) and relabelled (placeholders replaced in both
    codes by the heavier elements tests/test_diffraction.py uses, whose IT92 and
    pymatgen factors agree within a percent; pymatgen's H is the free atom,
    IT92's the bonded one). pymatgen computes the relabelled patterns again (not
    timed). The relative difference of the two form-factor tables over the range
    is printed for every element involved.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import math
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import attrs
import gemmi
import numpy as np

from xrdframe.diffraction import (
    PeakList,
    bragg_two_theta,
    it92_form_factor,
    mott_bethe_form_factor,
    reflection_orbits,
    simulate_peaks,
)
from xrdframe.structure import Structure, expand_sites, read_structure
from xrdframe.symmetry import crystal_system

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "structures" / "spglib"
WAVELENGTH = 1.5406
RANGE = (0.0, 120.0)
TWO_THETA_TOL = 1e-5  # pymatgen's AbstractDiffractionPatternCalculator.TWO_THETA_TOL (line merging), deg
TARGET_DI = 0.1  # acceptance: |delta I| <= 0.1 on the 0-100 scale with the same form factors
SAME_POSITION = 1e-9  # deg: positions closer than this are the same (they differ by ~1e-13)
PYMATGEN_LIKE_MERGE = 0.001  # Angstrom: merge only copies this close (pymatgen: 1e-4 fractional per axis)
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
    return mott_bethe_form_factor(params)


def read_like_pymatgen(path: Path, tolerance: float = PYMATGEN_LIKE_MERGE, snap: bool = True) -> Structure:
    """read_structure, but as pymatgen's CifParser reads: copies merged only when closer than ``tolerance``
    Angstrom, and (``snap``) asymmetric-unit coordinates within a relative 1e-4 of 1/3 or 2/3 set to them."""
    s = read_structure(path)
    small = gemmi.read_small_structure(str(path))
    sites = list(small.sites)
    fract = np.array([[a.fract.x, a.fract.y, a.fract.z] for a in sites])
    if snap:
        for ideal in (1 / 3, 2 / 3):  # pymatgen: math.isclose(frac / ideal, 1, abs_tol=1e-4)
            fract[np.abs(fract / ideal - 1.0) <= 1e-4] = ideal
    fract, index = expand_sites(fract, small.spacegroup, small.cell, tolerance=tolerance)
    return attrs.evolve(s, fract=fract, elements=[sites[i].element.name for i in index],
                        occupancy=[sites[i].occ for i in index],
                        b_iso=[8.0 * math.pi**2 * sites[i].u_iso for i in index])


def merged_as_pymatgen(peaks: PeakList) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, positions, intensities 0-100) of our lines merged by pymatgen's rule: round(2theta / 1e-5)."""
    keys = np.round(peaks.two_theta / TWO_THETA_TOL).astype(np.int64)
    unique, inverse = np.unique(keys, return_inverse=True)
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
    moved: int  # matched lines whose positions differ by more than SAME_POSITION
    moved_explained: int  # ... where pymatgen's position is that of a listed reflection without intensity


def silent_reflection_at(structure: Structure, peaks: PeakList, families: list[dict], position: float) -> bool:
    """Whether pymatgen's line position is that of one of its listed reflections which we have no line for."""
    ours = {tuple(int(x) for x in h) for h in peaks.hkl}
    for family in families:
        h = family["hkl"]
        hkl = np.array([[h[0], h[1], h[-1]]])  # (h, k, i, l) on hexagonal axes
        d = structure.unit_cell.calculate_d(list(hkl[0]))
        if abs(float(bragg_two_theta(np.array([d]), peaks.wavelength)[0]) - position) < SAME_POSITION:
            representative = tuple(int(x) for x in reflection_orbits(hkl, structure.space_group,
                                                                     structure.setting)[0][0])
            if representative not in ours:
                return True
    return False


def compare(peaks: PeakList, pattern, structure: Structure) -> Agreement:
    okeys, opos, oint = merged_as_pymatgen(peaks)
    px, py = np.asarray(pattern.x, dtype=float), np.asarray(pattern.y, dtype=float)
    pkeys = np.round(px / TWO_THETA_TOL).astype(np.int64)
    ours = dict(zip(okeys.tolist(), range(len(okeys)), strict=True))
    used: set[int] = set()
    rows = []  # (position, ours intensity, pymatgen intensity, |delta 2theta| or nan)
    moved = explained = 0
    for j, key in enumerate(pkeys.tolist()):
        i = ours.get(key)
        if i is None:  # a line on the other side of a bin edge (rounding), if any
            i = next((ours[k] for k in (key - 1, key + 1) if k in ours and ours[k] not in used
                      and abs(opos[ours[k]] - px[j]) < TWO_THETA_TOL), None)
        if i is None or i in used:
            rows.append((px[j], 0.0, py[j], np.nan))
            continue
        used.add(i)
        rows.append((px[j], oint[i], py[j], abs(opos[i] - px[j])))
        if abs(opos[i] - px[j]) > SAME_POSITION:
            moved += 1
            explained += silent_reflection_at(structure, peaks, pattern.hkls[j], px[j])
    rows += [(opos[i], oint[i], 0.0, np.nan) for i in range(len(okeys)) if i not in used]
    table = np.array(rows, dtype=float).reshape(-1, 4)
    di = np.abs(table[:, 1] - table[:, 2])
    worst = int(np.argmax(di))
    lonely = np.isnan(table[:, 3])
    return Agreement(max_dtt=float(np.nanmax(table[:, 3])) if (~lonely).any() else float("nan"),
                     max_di=float(di[worst]), where=float(table[worst, 0]), ours_i=float(table[worst, 1]),
                     pmg_i=float(table[worst, 2]), unmatched=int(lonely.sum()),
                     unmatched_max_i=float(np.max(table[lonely, 1:3], initial=0.0)), n_lines=len(px),
                     moved=moved, moved_explained=explained)


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summary(values, unit: str = "", fmt: str = ".3g") -> str:
    return (f"median {statistics.median(values):{fmt}}{unit}, p90 {percentile(values, 90):{fmt}}{unit}, "
            f"max {max(values):{fmt}}{unit}")


def blas_threads(n: int):
    """Limit BLAS (numpy's matrix products, used by both codes) to n threads, if threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: threadpoolctl is not installed; BLAS uses its default number of threads")
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def timed(function, item) -> tuple[object, float]:
    """function(item) and its duration, with the garbage collector off during the call (as timeit does)."""
    gc.disable()
    try:
        t = time.perf_counter()
        result = function(item)
        return result, time.perf_counter() - t
    finally:
        gc.enable()


def time_both(first, second, items_first, items_second, repeat: int) -> tuple[list, list, list, list]:
    """Results and best-of-``repeat`` times of first(a) and second(b) for every structure.

    Each pass runs each code over all structures in turn (as each is used: one structure after the other,
    CPU caches warm with its own code and data); the garbage collector is off during each call, so neither
    pays for the other's garbage.
    """
    n = len(items_first)
    out_a, out_b, t_a, t_b = [None] * n, [None] * n, [math.inf] * n, [math.inf] * n
    for _ in range(repeat):
        for function, items, out, best in ((first, items_first, out_a, t_a), (second, items_second, out_b, t_b)):
            function(items[0])  # warm-up (imports, caches)
            for k in range(n):
                out[k], seconds = timed(function, items[k])
                best[k] = min(best[k], seconds)
    return out_a, out_b, t_a, t_b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N structures of the index only")
    parser.add_argument("--skip-larger-than", type=int, default=None, metavar="ATOMS",
                        help="leave out structures with more atoms in the cell (pymatgen is slow on big cells)")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes per code (best per structure)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both codes")
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
    ours_s, pmg_s, names, left_out = [], [], [], []
    for path in paths:
        s = read_structure(path)
        if args.skip_larger_than is not None and len(s.elements) > args.skip_larger_than:
            left_out.append(path.stem)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pmg_s.append(PmgStructure.from_file(str(path)))
        ours_s.append(s)
        names.append(path.stem)
    read_seconds = time.perf_counter() - t0
    atoms = np.array([len(s.elements) for s in ours_s])
    pmg_atoms = np.array([len(p) for p in pmg_s])
    with_b = sum(bool(np.any(s.b_iso != 0)) for s in ours_s)
    print(f"structures: {len(ours_s)} from {folder} (atoms per cell: median {int(np.median(atoms))}, "
          f"max {atoms.max()}; read in {read_seconds:.1f} s, not timed below)"
          + (f"; left out (> {args.skip_larger_than} atoms): {len(left_out)}" if left_out else ""))
    print(f"atom counts: read_structure and pymatgen agree for {int((atoms == pmg_atoms).sum())} of {len(atoms)}; "
          f"structures with displacement parameters: {with_b}")

    # ---------------------------------------------------------------- (a) speed
    def pmg_pattern(structure):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calculator.get_pattern(structure, two_theta_range=RANGE)

    with blas_threads(args.threads):
        patterns, ours_it92, t_pmg, t_ours = time_both(
            pmg_pattern, lambda s: simulate_peaks(s, WAVELENGTH, RANGE), pmg_s, ours_s, args.repeat)
    ratio = [a / b for a, b in zip(t_pmg, t_ours, strict=True)]
    print(f"\n(a) speed, 2theta {RANGE[0]:g}-{RANGE[1]:g} deg at {WAVELENGTH} A, BLAS threads {args.threads}, "
          f"best of {args.repeat} pass(es) per structure:")
    print(f"  pymatgen XRDCalculator.get_pattern: {summary([1e3 * t for t in t_pmg], ' ms')}; "
          f"total {sum(t_pmg):.1f} s")
    print(f"  xrdframe simulate_peaks:            {summary([1e3 * t for t in t_ours], ' ms')}; "
          f"total {sum(t_ours):.2f} s")
    print(f"  time ratio pymatgen / xrdframe per structure: median {statistics.median(ratio):.1f}x "
          f"(p10 {percentile(ratio, 10):.1f}x, min {min(ratio):.1f}x, max {max(ratio):.1f}x); "
          f"ratio of the totals {sum(t_pmg) / sum(t_ours):.1f}x (goal: median >= 30x)")
    small, ratios = atoms <= np.median(atoms), np.array(ratio)
    print(f"  median ratio for cells of <= {int(np.median(atoms))} atoms: {np.median(ratios[small]):.1f}x, "
          f"larger cells: {np.median(ratios[~small]):.1f}x")
    systems = np.array([crystal_system(s.space_group) for s in ours_s])
    print("  median ratio by crystal system: " + ", ".join(
        f"{name} {np.median(ratios[systems == name]):.1f}x ({int((systems == name).sum())})"
        for name in dict.fromkeys(crystal_system(n) for n in range(1, 231)) if (systems == name).any()))
    print(f"  lines per structure (median): pymatgen {statistics.median([len(a.x) for a in patterns]):.0f} "
          f"(merged, families listed), xrdframe {statistics.median([len(p) for p in ours_it92]):.0f} (one per orbit)")

    # ---------------------------------------------------------------- (b) same form factors
    def zero_b(s: Structure) -> Structure:
        return attrs.evolve(s, b_iso=np.zeros_like(s.b_iso)) if with_b else s  # pymatgen ignores the files' B

    same = [compare(simulate_peaks(zero_b(s), WAVELENGTH, RANGE, form_factor=pmg_ff), pattern, s)
            for s, pattern in zip(ours_s, patterns, strict=True)]
    # ---------------------------------------------------------------- (c) IT92, raw and relabelled
    raw = [compare(simulate_peaks(zero_b(s), WAVELENGTH, RANGE) if with_b else peaks, pattern, s)
           for peaks, pattern, s in zip(ours_it92, patterns, ours_s, strict=True)]
    relabelled = []
    for s, p in zip(ours_s, pmg_s, strict=True):
        p = p.copy()
        p.replace_species({k: v for k, v in PLACEHOLDERS.items() if k in p.symbol_set})
        s = attrs.evolve(zero_b(s), elements=[PLACEHOLDERS.get(e, e) for e in s.elements])
        relabelled.append(compare(simulate_peaks(s, WAVELENGTH, RANGE), pmg_pattern(p), s))

    def report(title: str, results: list[Agreement], target: bool = False) -> None:
        dtt = [r.max_dtt for r in results if np.isfinite(r.max_dtt)]
        di = [r.max_di for r in results]
        moved = sum(r.moved for r in results)
        print(f"\n{title}")
        print(f"  max |delta 2theta| over matched lines: {max(dtt):.2g} deg (all {len(results)} structures); "
              f"lines further apart than {SAME_POSITION:g} deg: {moved} in {sum(r.moved > 0 for r in results)} "
              f"structures, of which {sum(r.moved_explained for r in results)} at the position of a reflection "
              f"pymatgen lists without intensity")
        print(f"  unmatched lines: {sum(r.unmatched for r in results)} in {sum(r.unmatched > 0 for r in results)} "
              f"structures, strongest {max(r.unmatched_max_i for r in results):.2g}")
        print(f"  max |delta I| per structure (0-100 scale): {summary(di, fmt='.3g')}"
              + (f"; within {TARGET_DI}: {sum(d <= TARGET_DI for d in di)} of {len(di)}" if target else ""))
        same_atoms = atoms == pmg_atoms
        if not same_atoms.all():
            kept = [d for d, ok in zip(di, same_atoms, strict=True) if ok]
            print(f"  ... over the {len(kept)} structures with equal atom counts: {summary(kept, fmt='.3g')}")
        for k in np.argsort(di)[::-1][: args.worst]:
            r = results[k]
            print(f"    {names[k]:30s} {atoms[k]:4d} atoms (pymatgen {pmg_atoms[k]:4d})  |dI| {r.max_di:.4g} at "
                  f"{r.where:.4f} deg (ours {r.ours_i:.4f}, pymatgen {r.pmg_i:.4f}); unmatched {r.unmatched}")

    report("(b) same form factors (pymatgen's fit passed as form_factor=):", same, target=True)
    for k in np.flatnonzero(atoms != pmg_atoms):
        pmg = pmg_s[k]
        dist = pmg.distance_matrix + np.eye(len(pmg)) * 1e9
        close = np.triu(dist < 0.05)
        again = read_like_pymatgen(Path(ours_s[k].source), snap=False)
        redo = compare(simulate_peaks(zero_b(again), WAVELENGTH, RANGE, form_factor=pmg_ff), patterns[k], again)
        print(f"  {names[k]}: pymatgen keeps {int(close.sum())} pair(s) of atoms {dist[close].min():.4f}-"
              f"{dist[close].max():.4f} A apart that read_structure merges (tolerance 0.05 A) into one atom each; "
              f"read with merging within {PYMATGEN_LIKE_MERGE} A: {len(again.elements)} atoms, "
              f"|dI| {redo.max_di:.2g}")
    rest = [k for k in range(len(same)) if atoms[k] == pmg_atoms[k] and same[k].max_di > 0.002]
    if rest:
        redo = [compare(simulate_peaks(zero_b(s), WAVELENGTH, RANGE, form_factor=pmg_ff), patterns[k], s)
                for k in rest for s in [read_like_pymatgen(Path(ours_s[k].source))]]
        worst = max(same[k].max_di for k in rest)
        print(f"  {len(rest)} structure(s) with equal atom counts and |dI| > 0.002 (max {worst:.3g}): "
              "read with pymatgen's snapping of coordinates within 1e-4 of 1/3 and 2/3, max |dI| "
              f"{max(r.max_di for r in redo):.2g}")
    lonely = [same[k].unmatched_max_i for k in range(len(same)) if atoms[k] == pmg_atoms[k]]
    print(f"  strongest unmatched line over the structures with equal atom counts: {max(lonely):.2g} (pymatgen drops "
          "lines <= 0.001, simulate_peaks those < 0.0001 before merging)")
    report("(c) IT92 (our default) against pymatgen, raw placeholder species:", raw)
    report(f"(c) IT92 against pymatgen, placeholders relabelled in both ({PLACEHOLDERS}):", relabelled)

    s_max = math.sin(math.radians(RANGE[1] / 2)) / WAVELENGTH
    s2 = np.linspace(0.0, s_max, 200) ** 2
    print(f"\nform factors, pymatgen's fit against IT92 for s = sin(theta)/lambda <= {s_max:.3f} A^-1 "
          "(max |relative difference|; at the largest s: pymatgen / IT92):")
    for placeholder, substitute in PLACEHOLDERS.items():
        text = []
        for element in (placeholder, substitute):
            f_pmg, f_it92 = pmg_ff(element, s2), it92_form_factor(element, s2)
            text.append(f"{element} {100 * np.max(np.abs(f_pmg - f_it92) / f_it92):.2f} % "
                        f"({f_pmg[-1]:.3f} / {f_it92[-1]:.3f})")
        print(f"  {text[0]:32s} -> {text[1]}")

    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["name", "atoms", "pymatgen_atoms", "t_pymatgen_s", "t_xrdframe_s", "ratio",
                             "same_ff_max_dtt", "same_ff_max_di", "same_ff_where", "same_ff_unmatched",
                             "it92_raw_max_di", "it92_relabelled_max_di"])
            for k, name in enumerate(names):
                writer.writerow([name, atoms[k], pmg_atoms[k], f"{t_pmg[k]:.6f}", f"{t_ours[k]:.6f}",
                                 f"{ratio[k]:.2f}", f"{same[k].max_dtt:.3g}", f"{same[k].max_di:.6g}",
                                 f"{same[k].where:.5f}", same[k].unmatched, f"{raw[k].max_di:.6g}",
                                 f"{relabelled[k].max_di:.6g}"])
        print(f"\nper-structure figures: {args.csv}")
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")
    print("command: python benchmarks/bench_vs_pymatgen.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
