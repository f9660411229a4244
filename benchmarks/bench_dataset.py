"""Opening and reading a large peak dataset: a synthetic one of 1,000,000 structures in the real format.

Reproduce: python benchmarks/bench_dataset.py [--structures 1e6] [--shard-size 1000] [--output DIR]
                                              [--samples 100000] [--seed 0]

Builds a dataset as the ``simulate`` task writes it: shards written by
``xrdframe.dataset.write_shard`` from ``ShardData`` (one cheap one-atom
``Structure`` per entry and a random but valid peak list of 20-50 lines:
sorted 2theta in 5-120 deg, d from Bragg's law at 1.5406 A, small hkl,
crystallographic multiplicities, intensities with the strongest = 100; labels
from the space group, split from the id hash), then ``dataset.json`` as
plugins/xrdframe_tasks/simulate.py assembles it. In a temporary folder
(removed afterwards) unless ``--output`` is given (kept).

Then, in this process, on the dataset as written (its files evicted from the
page cache first with posix_fadvise where the system allows, so first touches
read the disk):

* ``PeakDataset.open``: time, RSS increase, and how many arrays it loads (np.load calls);
* ``ds.peaks(i)`` for ``--samples`` random i: per call, including the first
  touch of each shard (the pass that opens the shards) and after it (a second
  pass over new random i, every shard open); also ``peaks(i)`` plus copying its
  five arrays, since ``peaks`` returns memory-mapped views whose pages are read
  only when used;
* ``ds.labels('space_group')`` over all structures, first and second call;
* ``ds.verify()`` (SHA-256 of every file), and the size on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import xrdframe
import xrdframe.dataset as dataset_module
from xrdframe.dataset import FORMAT, PeakDataset, ShardData, split_of, write_shard
from xrdframe.diffraction import PeakList
from xrdframe.structure import Structure
from xrdframe.symmetry import CRYSTAL_SYSTEMS, symmetry_labels

WAVELENGTH = 1.5406
TWO_THETA = (0.0, 120.0)
SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
MULTIPLICITIES = np.array([1, 2, 4, 6, 8, 12, 16, 24, 48], dtype=np.int16)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def synthetic_shard(rng: np.random.Generator, first: int, size: int, labels: dict[int, tuple[int, int]]) -> ShardData:
    """``size`` synthetic structures with random but valid peak lists, in the form the simulate task writes."""
    counts = rng.integers(20, 51, size=size)
    total = int(counts.sum())
    offsets = np.concatenate([[0], np.cumsum(counts)])
    two_theta = rng.uniform(5.0, 120.0, size=total)
    for j in range(size):  # sorted within each structure
        two_theta[offsets[j]:offsets[j + 1]].sort()
    d = WAVELENGTH / (2.0 * np.sin(np.radians(two_theta) / 2.0))
    hkl = rng.integers(-8, 9, size=(total, 3)).astype(np.int64)
    multiplicity = rng.choice(MULTIPLICITIES, size=total).astype(np.int64)
    intensity = rng.uniform(0.01, 100.0, size=total)
    strongest = offsets[:-1] + (rng.random(size) * counts).astype(np.int64)
    intensity[strongest] = 100.0
    space_groups = rng.integers(1, 231, size=size)
    edges = rng.uniform(3.0, 25.0, size=(size, 3))
    data = ShardData()
    for j in range(size):
        lo, hi = offsets[j], offsets[j + 1]
        sg = int(space_groups[j])
        structure_id = f"synthetic/{first + j:07d}"
        data.ids.append(structure_id)
        data.structures.append(Structure(
            cell=(*edges[j].tolist(), 90.0, 90.0, 90.0), space_group=sg, fract=[[0.0, 0.0, 0.0]],
            elements=("Si",), occupancy=[1.0], b_iso=[0.0], name=structure_id))
        data.peaks.append(PeakList(two_theta=two_theta[lo:hi], d=d[lo:hi], hkl=hkl[lo:hi],
                                   multiplicity=multiplicity[lo:hi], intensity=intensity[lo:hi],
                                   wavelength=WAVELENGTH))
        system, extinction = labels[sg]
        data.labels.append((system, extinction, split_of(structure_id, list(SPLITS.values()))))
    return data


def build(root: Path, n: int, shard_size: int, seed: int) -> float:
    """Write the dataset; return the seconds it took."""
    start = time.perf_counter()
    labels = {}
    for sg in range(1, 231):
        lab = symmetry_labels(sg)
        labels[sg] = (CRYSTAL_SYSTEMS.index(lab.crystal_system), lab.extinction_group)
    config = hashlib.sha256(f"bench_dataset:{n}:{shard_size}:{seed}".encode()).hexdigest()[:16]
    rng = np.random.default_rng(seed)
    n_shards = max(1, -(-n // shard_size))
    shards = []
    for k in range(n_shards):
        first = k * shard_size
        size = min(shard_size, n - first)
        meta = write_shard(root / "shards" / f"{k:05d}", synthetic_shard(rng, first, size, labels),
                           {"index": k, "first": first, "size": size, "config": config})
        shards.append(dict(meta, name=f"{k:05d}"))
        if (k + 1) % max(1, n_shards // 10) == 0:
            done = first + size
            print(f"  written {done:,} structures ({done / (time.perf_counter() - start):,.0f} per s)", flush=True)
    PeakDataset(root=root, meta={  # as plugins/xrdframe_tasks/simulate.py assembles it
        "format": FORMAT, "wavelength": WAVELENGTH, "two_theta": list(TWO_THETA), "monochromator_two_theta": None,
        "splits": {"names": list(SPLITS), "fractions": list(SPLITS.values()), "split_seed": 0},
        "n_structures": sum(s["n_structures"] for s in shards), "n_peaks": sum(s["n_peaks"] for s in shards),
        "n_skipped": 0, "source_count": n, "shard_size": shard_size, "n_shards_total": n_shards, "part": [0, 1],
        "config": config,
        "provenance": {"xrdframe": xrdframe.__version__, "seed": seed,
                       "structures": {"name": "bench_dataset (synthetic)", "params": {"count": n}},
                       "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "shards": [{k: s[k] for k in ("name", "index", "first", "size", "n_structures", "n_peaks", "n_skipped")}
                   for s in shards],
    }).write_meta()
    return time.perf_counter() - start


def evict(root: Path) -> bool:
    """Drop the dataset's files from the page cache (best effort); True if the system supports it."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def rss_parts() -> str:
    """Anonymous (private) and file-backed (mapped files, reclaimable) resident memory, from /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh if line.startswith(("RssAnon", "RssFile")))
    except OSError:
        return "n/a"
    return ", ".join(f"{k} {int(v.split()[0]) / 1e3:.0f} MB" for k, v in fields.items())


def open_files() -> int | None:
    """Number of file descriptors this process holds (Linux /proc), or None."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def disk_usage(root: Path) -> tuple[int, int, int]:
    """(bytes of file contents, bytes of allocated blocks, number of files)."""
    size = blocks = files = 0
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            size += st.st_size
            blocks += st.st_blocks * 512
            files += 1
    return size, blocks, files


def us(values_ns: list[int] | np.ndarray) -> str:
    v = np.asarray(values_ns, dtype=np.float64) / 1e3
    return (f"median {np.median(v):.1f} us, mean {v.mean():.1f} us, p99 {np.percentile(v, 99):.1f} us, "
            f"max {v.max() / 1e3:.1f} ms, total {v.sum() / 1e6:.2f} s")


def measure(root: Path, args: argparse.Namespace, n: int) -> None:
    """Build (unless present) and measure the dataset in ``root``."""
    if (root / "dataset.json").is_file():
        print(f"dataset: {root} exists; reusing it (remove it to rebuild)")
    else:
        print(f"building {n:,} structures in shards of {args.shard_size} under {root} ...", flush=True)
        seconds = build(root, n, args.shard_size, args.seed)
        print(f"built in {seconds:.0f} s ({n / seconds:,.0f} structures per s, write_shard, one process)")
    size, blocks, files = disk_usage(root)
    evicted = evict(root)
    print(f"on disk: {size / 1e9:.2f} GB in {files:,} files ({blocks / 1e9:.2f} GB allocated); "
          f"page cache {'evicted' if evicted else 'NOT evicted (no posix_fadvise)'} before the reads below")

    loads = 0
    real_load = np.load

    def counting_load(*a, **k):
        nonlocal loads
        loads += 1
        return real_load(*a, **k)

    dataset_module.np.load = counting_load  # the module's np is numpy itself
    try:
        rss0 = rss_bytes()
        t = time.perf_counter()
        ds = PeakDataset.open(root)
        open_s = time.perf_counter() - t
        rss1 = rss_bytes()
        open_loads = loads
    finally:
        dataset_module.np.load = real_load
    print(f"\nPeakDataset.open: {1e3 * open_s:.1f} ms, RSS +{(rss1 - rss0) / 1e6:.1f} MB, arrays loaded: "
          f"{open_loads}; {len(ds):,} structures, {ds.meta['n_peaks']:,} peaks, {len(ds.meta['shards'])} shards")

    rng = np.random.default_rng(args.seed + 1)
    n_shards = len(ds.meta["shards"])
    first_pass = rng.integers(0, len(ds), size=args.samples)
    times = np.empty(args.samples, dtype=np.int64)
    clock = time.perf_counter_ns
    for k, i in enumerate(first_pass.tolist()):
        t0 = clock()
        ds.peaks(i)
        times[k] = clock() - t0
    starts = np.cumsum([0] + [int(s["n_structures"]) for s in ds.meta["shards"]])[:-1]
    shard_of = np.searchsorted(starts, first_pass, side="right") - 1
    _, first_touch = np.unique(shard_of, return_index=True)
    is_first = np.zeros(args.samples, dtype=bool)
    is_first[first_touch] = True
    rss2 = rss_bytes()
    print(f"\nds.peaks(i), {args.samples:,} random i, first pass ({len(first_touch)} of {n_shards} shards "
          f"opened by it): {us(times)}")
    print(f"  the {len(first_touch)} first touches of a shard: {us(times[is_first])}")
    print(f"  the other calls: {us(times[~is_first])}")
    second = rng.integers(0, len(ds), size=args.samples)
    times2 = np.empty(args.samples, dtype=np.int64)
    for k, i in enumerate(second.tolist()):
        t0 = clock()
        ds.peaks(i)
        times2[k] = clock() - t0
    print(f"ds.peaks(i), {args.samples:,} new random i, every shard already open: {us(times2)}")
    third = rng.integers(0, len(ds), size=args.samples)
    times3 = np.empty(args.samples, dtype=np.int64)
    n_read = 0
    for k, i in enumerate(third.tolist()):
        t0 = clock()
        p = ds.peaks(i)
        arrays = (np.array(p.two_theta), np.array(p.d), np.array(p.hkl), np.array(p.multiplicity),
                  np.array(p.intensity))
        times3[k] = clock() - t0
        n_read += len(arrays[0])
    print(f"ds.peaks(i) and copying its 5 arrays (the data pages read), {args.samples:,} new random i: "
          f"{us(times3)}; {n_read / args.samples:.1f} peaks per structure")
    rss3 = rss_bytes()
    print(f"RSS after the random reads: +{(rss2 - rss0) / 1e6:.1f} MB after the first pass, "
          f"+{(rss3 - rss0) / 1e6:.1f} MB after all three; now {rss_parts()}")
    print(f"open file descriptors: {open_files()} (each memory-mapped array keeps one); "
          f"limit (ulimit -n): {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")

    fresh = PeakDataset.open(root)
    t = time.perf_counter()
    sg = fresh.labels("space_group")
    labels_first = time.perf_counter() - t
    t = time.perf_counter()
    sg2 = fresh.labels("space_group")
    labels_second = time.perf_counter() - t
    assert len(sg) == len(sg2) == len(ds) and sg.min() >= 1 and sg.max() <= 230
    print(f"\nds.labels('space_group') over {len(sg):,} structures: first call {1e3 * labels_first:.0f} ms "
          f"(opens {n_shards} files), second {1e3 * labels_second:.0f} ms; dtype {sg.dtype}")

    t = time.perf_counter()
    bad = ds.verify()
    verify_s = time.perf_counter() - t
    print(f"ds.verify() (SHA-256 of {size / 1e9:.2f} GB): {verify_s:.1f} s, {len(bad)} bad shard(s)")
    meta = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    print(f"dataset.json: {(root / 'dataset.json').stat().st_size / 1e3:.0f} kB, {len(meta['shards'])} shards")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=float, default=1e6, help="number of structures (1e6 accepted)")
    parser.add_argument("--shard-size", type=int, default=1000, help="structures per shard (the simulate default)")
    parser.add_argument("--output", type=Path, default=None, help="build here and keep it (default: a temp folder)")
    parser.add_argument("--samples", type=int, default=100_000, help="random peaks(i) calls per pass")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = int(args.structures)
    started = time.perf_counter()
    root = args.output or Path(tempfile.mkdtemp(prefix="xrdframe-bench-dataset-"))
    status = 0
    try:
        measure(root, args, n)
    except Exception:  # noqa: BLE001 - reported; the frame (and its open memory maps) is released before cleanup
        traceback.print_exc()
        status = 1
    finally:
        if args.output is None:
            shutil.rmtree(root, ignore_errors=True)
            if root.exists():
                print(f"note: could not remove {root}; remove it by hand")
    print(f"\nbenchmark wall time: {time.perf_counter() - started:.0f} s")
    command = "python benchmarks/bench_dataset.py"
    if args.structures != 1e6:
        command += f" --structures {n}"
    if args.shard_size != 1000:
        command += f" --shard-size {args.shard_size}"
    if args.output is not None:
        command += f" --output {args.output}"
    if args.samples != 100_000:
        command += f" --samples {args.samples}"
    if args.seed != 0:
        command += f" --seed {args.seed}"
    print(f"command: {command}")
    return status


if __name__ == "__main__":
    sys.exit(main())
