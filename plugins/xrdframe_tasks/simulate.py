"""``simulate``: structures from a structure source -> a peak dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from xrdframe.component import StructureSourceRef, param
from xrdframe.dataset import FORMAT, STRUCTURE_COLUMNS, PeakDataset, write_csv_atomic, write_shard
from xrdframe.diffraction import simulate_peaks
from xrdframe.errors import XrdframeError
from xrdframe.files import write_json_atomic
from xrdframe.run import RunContext
from xrdframe.sources import SkippedStructure
from xrdframe.spec.validation import unstructure
from xrdframe_tasks.validators import fractions, positive, two_theta_range

__all__ = ["Simulate", "SimulateParams"]


@attrs.frozen
class SimulateParams:
    structures: StructureSourceRef = param(doc="where the structures come from (a structure_source)")
    wavelength: float = param(1.5406, doc="X-ray wavelength of the simulated peaks", unit="Angstrom",
                              validator=positive)
    two_theta: tuple[float, float] = param((0.0, 120.0), doc="[min, max] range of the peak lists", unit="deg",
                                           validator=two_theta_range)
    splits: dict[str, float] = param(factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1},
                                     doc="fractions of structures per split, assigned at random (seeded)",
                                     validator=fractions)
    shard_size: int = param(2000, doc="structures per shard file (the unit of resuming)", validator=positive)


class Simulate:
    """Simulate the powder peak list of every structure a source yields.

    Writes a peak dataset (see :mod:`xrdframe.dataset`): shards of peak lists,
    ``structures.csv`` with labels, cells and splits, ``skipped.csv`` with
    every structure that could not be used and why. Shards already complete
    from an interrupted run are kept, not recomputed.
    """

    def __init__(self, params: SimulateParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        p = self.params
        out = context.output
        source = p.structures.build()
        shard_dir = out / "shards"
        shard_dir.mkdir(parents=True, exist_ok=True)
        progress_path = out / "progress.json"
        config = json.loads(json.dumps({"params": unstructure(p), "seed": context.seed}))
        done = _read_progress(progress_path)
        if done.get("config") != config:
            done = {}  # an interrupted run of another configuration: start over
        rows: list[list[Any]] = done.get("rows", [])
        skipped: list[list[str]] = done.get("skipped", [])
        shards: list[str] = done.get("shards", [])
        start = done.get("consumed", 0)
        batch_structures: list = []
        batch_peaks: list = []
        batch_rows: list[list[Any]] = []
        batch_skipped: list[list[str]] = []
        consumed = 0

        def flush() -> None:
            nonlocal batch_structures, batch_peaks, batch_rows, batch_skipped
            if batch_structures:
                name = f"{len(shards):05d}.npz"
                write_shard(shard_dir / name, batch_structures, batch_peaks)
                shards.append(name)
            rows.extend(batch_rows)
            skipped.extend(batch_skipped)
            write_json_atomic(progress_path, {"config": config, "rows": rows, "skipped": skipped,
                                              "shards": shards, "consumed": consumed})
            batch_structures, batch_peaks, batch_rows, batch_skipped = [], [], [], []

        for item in context.progress(source.structures(context.seed), desc="structures"):
            consumed += 1
            if consumed <= start:
                continue  # finished in an earlier, interrupted run
            if isinstance(item, SkippedStructure):
                batch_skipped.append([item.source, item.reason])
            else:
                try:
                    peaks = simulate_peaks(item, p.wavelength, p.two_theta)
                except (XrdframeError, ValueError, RuntimeError) as exc:
                    batch_skipped.append([item.source or item.name, f"simulation failed: {exc}"])
                else:
                    batch_structures.append(item)
                    batch_peaks.append(peaks)
                    batch_rows.append([len(rows) + len(batch_rows), item.name, item.source or "",
                                       item.space_group, *(round(x, 6) for x in item.cell), len(peaks), "",
                                       item.note])
            if len(batch_structures) >= p.shard_size:
                flush()
        flush()
        if not rows:
            raise XrdframeError(f"no usable structures ({len(skipped)} skipped; see {out / 'skipped.csv'})")
        rng = np.random.default_rng(context.seed)
        names = list(p.splits)
        assignment = rng.choice(len(names), size=len(rows), p=np.array([p.splits[n] for n in names]))
        for row, split in zip(rows, assignment, strict=True):
            row[STRUCTURE_COLUMNS.index("split")] = names[split]
        write_csv_atomic(out / "structures.csv", STRUCTURE_COLUMNS, rows)
        write_csv_atomic(out / "skipped.csv", ("source", "reason"), skipped)
        counts = {n: int((assignment == i).sum()) for i, n in enumerate(names)}
        PeakDataset(root=out, meta={
            "format": FORMAT, "wavelength": p.wavelength, "two_theta": list(p.two_theta),
            "n_structures": len(rows), "n_skipped": len(skipped), "splits": counts, "shards": shards,
        }).write_meta()
        progress_path.unlink(missing_ok=True)
        context.log.info("simulated %d structures (%d skipped) -> %s", len(rows), len(skipped), out)


def _read_progress(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
