"""``simulate``: structures from a structure source -> a peak dataset.

The source's structures are cut into shards of ``shard_size`` consecutive
indices. Each shard is simulated and written as a unit (in a worker process
when ``workers > 1``), atomically and with checksums. A re-run after a kill
verifies the shards already on disk and computes only the missing ones. Large
runs spread over machines with ``shard: i/n`` (each machine writes the shards
k with k mod n = i) and are joined with task ``merge``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from xrdframe import __version__
from xrdframe.component import StructureSourceRef, param
from xrdframe.dataset import FORMAT, PeakDataset, ShardData, split_of, verify_shard, write_csv_atomic, write_shard
from xrdframe.diffraction import simulate_peaks
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext
from xrdframe.sources import SkippedStructure
from xrdframe.spec.validation import unstructure
from xrdframe.validators import fractions, positive, two_theta_range

__all__ = ["Simulate", "SimulateParams", "parse_part"]

_PART = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_part(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    >>> parse_part("2/8")
    (2, 8)
    """
    match = _PART.match(text)
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"must be 'i/n' with 0 <= i < n (this machine's part of n), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _part(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    parse_part(value)


def _optional_angle(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and not 0.0 <= value < 180.0:
        raise ValueError(f"must be null or an angle in [0, 180) degrees, got {value}")


@attrs.frozen
class SimulateParams:
    structures: StructureSourceRef = param(doc="where the structures come from (a structure_source)")
    wavelength: float = param(1.5406, doc="X-ray wavelength of the simulated peaks", unit="Angstrom",
                              validator=positive)
    two_theta: tuple[float, float] = param((0.0, 120.0), doc="[min, max] range of the peak lists", unit="deg",
                                           validator=two_theta_range)
    monochromator_two_theta: float | None = param(
        None, doc="2theta of a monochromator crystal for the polarization factor (null: none)", unit="deg",
        validator=_optional_angle)
    splits: dict[str, float] = param(factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1},
                                     doc="fractions of structures per split ('test' is the equivariance test "
                                         "set of held-out structures); a structure's split follows from a hash "
                                         "of its id", validator=fractions)
    split_seed: int = param(0, doc="salt of the split hash; change it to draw other splits")
    shard_size: int = param(1000, doc="structures per shard (the unit of work, of resuming and of merging)",
                            validator=positive)
    workers: int = param(1, doc="worker processes simulating shards in parallel", validator=positive)
    shard: str = param("0/1", doc="'i/n': write only shards k with k mod n = i (spread a run over n machines; "
                                  "join the outputs with task 'merge')", validator=_part)


def _config_digest(params: SimulateParams, seed: int) -> str:
    body = unstructure(params)
    for key in ("workers", "shard"):  # how the work is spread does not change the result
        body.pop(key)
    return hashlib.sha256(json.dumps({"params": body, "seed": seed, "format": FORMAT},
                                     sort_keys=True).encode()).hexdigest()[:16]


@attrs.frozen
class _ShardJob:
    source: Any
    seed: int
    index: int
    first: int
    size: int
    params: SimulateParams
    shard_dir: Path
    config: str


def _run_shard(job: _ShardJob) -> dict[str, Any]:
    """Simulate and write one shard (runs in a worker process when workers > 1)."""
    from xrdframe.symmetry import CRYSTAL_SYSTEMS, crystal_system, extinction_group_of

    p = job.params
    fractions = list(p.splits.values())
    data = ShardData()
    for index in range(job.first, job.first + job.size):
        item = job.source.structure(index, job.seed)
        if isinstance(item, SkippedStructure):
            data.skipped.append((item.source, item.reason))
            continue
        try:
            peaks = simulate_peaks(item, p.wavelength, p.two_theta,
                                   monochromator_two_theta=p.monochromator_two_theta)
        except (XrdframeError, ValueError, RuntimeError) as exc:
            data.skipped.append((item.source or item.name, f"simulation failed: {exc}"))
            continue
        if len(peaks) == 0:
            data.skipped.append((item.source or item.name, f"no reflection in 2theta {list(p.two_theta)} deg"))
            continue
        structure_id = job.source.structure_id(index, job.seed)
        data.ids.append(structure_id)
        data.structures.append(item)
        data.peaks.append(peaks)
        data.labels.append((CRYSTAL_SYSTEMS.index(crystal_system(item.space_group)),
                            extinction_group_of(item.space_group), split_of(structure_id, fractions, p.split_seed)))
    return write_shard(job.shard_dir, data, {"index": job.index, "first": job.first, "size": job.size,
                                            "config": job.config})


class Simulate:
    """Simulate the powder peak list of every structure of a source into a peak dataset."""

    def __init__(self, params: SimulateParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        p = self.params
        out = context.output
        source = p.structures.build()
        total = source.count()
        part, parts = parse_part(p.shard)
        n_shards = max(1, math.ceil(total / p.shard_size))
        config = _config_digest(p, context.seed)
        shard_root = out / "shards"
        jobs = []
        for k in range(part, n_shards, parts):
            first = k * p.shard_size
            jobs.append(_ShardJob(source, context.seed, k, first, min(p.shard_size, total - first), p,
                                  shard_root / f"{k:05d}", config))
        _remove_stale(shard_root, {job.shard_dir.name for job in jobs})
        done: dict[int, dict[str, Any]] = {}
        for job in jobs:
            meta = verify_shard(job.shard_dir, {"config": config, "first": job.first, "size": job.size})
            if meta is not None:
                done[job.index] = meta
        todo = [job for job in jobs if job.index not in done]
        if done:
            context.log.info("[%s] %d of %d shards already complete and verified; %d to simulate",
                             context.stage, len(done), len(jobs), len(todo))
        bar = context.progress_bar(sum(job.size for job in todo), "structures")
        if p.workers == 1 or len(todo) <= 1:
            for job in todo:
                done[job.index] = _run_shard(job)
                bar.advance(job.size)
        else:
            with concurrent.futures.ProcessPoolExecutor(max_workers=p.workers) as pool:
                futures = {pool.submit(_run_shard, job): job for job in todo}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        job = futures[future]
                        done[job.index] = future.result()
                        bar.advance(job.size)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        bar.close()
        shards = [dict(done[job.index], name=job.shard_dir.name) for job in jobs]
        n_structures = sum(s["n_structures"] for s in shards)
        dataset = PeakDataset(root=out, meta={
            "format": FORMAT, "wavelength": p.wavelength, "two_theta": list(p.two_theta),
            "monochromator_two_theta": p.monochromator_two_theta,
            "splits": {"names": list(p.splits), "fractions": list(p.splits.values()), "split_seed": p.split_seed},
            "n_structures": n_structures, "n_peaks": sum(s["n_peaks"] for s in shards),
            "n_skipped": sum(s["n_skipped"] for s in shards), "source_count": total,
            "shard_size": p.shard_size, "n_shards_total": n_shards, "part": [part, parts], "config": config,
            "provenance": {"xrdframe": __version__, "seed": context.seed, "structures": p.structures.to_spec(),
                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "shards": [{k: s[k] for k in ("name", "index", "first", "size", "n_structures", "n_peaks",
                                          "n_skipped")} for s in shards],
        })
        skipped = dataset.skipped()
        write_csv_atomic(out / "skipped.csv", ("source", "reason"), [(r["source"], r["reason"]) for r in skipped])
        if n_structures == 0:
            reasons = "; ".join(f"{Path(r['source']).name}: {r['reason']}" for r in skipped[:3])
            raise XrdframeError(f"no usable structure among {total} ({len(skipped)} skipped, listed in "
                                f"{out / 'skipped.csv'}: {reasons}{' ...' if len(skipped) > 3 else ''}); "
                                "no dataset written")
        dataset.write_meta()
        counts = {name: int((dataset.labels("split") == i).sum()) for i, name in enumerate(dataset.split_names)}
        context.log.info("[%s] %d structures (%d skipped), splits %s -> %s", context.stage, n_structures,
                         len(skipped), counts, out)


def _remove_stale(shard_root: Path, keep: set[str]) -> None:
    """Remove shard folders of an earlier, larger run and leftovers of interrupted writes."""
    if not shard_root.is_dir():
        return
    for path in shard_root.iterdir():
        if path.name not in keep and (re.fullmatch(r"\d{5,}", path.name) or path.name.startswith(".")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
