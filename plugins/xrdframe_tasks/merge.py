"""``merge``: join the partial peak datasets of a run spread over machines (``shard: i/n``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs

from xrdframe.component import param
from xrdframe.dataset import PeakDataset, verify_shard, write_csv_atomic
from xrdframe.errors import XrdframeError
from xrdframe.run import RunContext

__all__ = ["Merge", "MergeParams"]

_SAME = ("format", "wavelength", "two_theta", "monochromator_two_theta", "splits", "config", "shard_size",
         "n_shards_total", "source_count")


def _not_empty(instance: object, attribute: attrs.Attribute, value: list) -> None:
    if not value:
        raise ValueError("must list at least one dataset folder")


@attrs.frozen
class MergeParams:
    inputs: list[Path] = param(doc="peak dataset folders written by 'simulate' runs with shard: i/n",
                               validator=_not_empty)
    link: bool = param(True, doc="hard-link shard files instead of copying them (falls back to copying)")


class Merge:
    """Join partial peak datasets into one, verifying every shard's checksums and that none is missing."""

    def __init__(self, params: MergeParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        datasets = [PeakDataset.open(path) for path in self.params.inputs]
        first = datasets[0]
        for ds in datasets[1:]:
            differing = [k for k in _SAME if ds.meta.get(k) != first.meta.get(k)]
            if differing:
                raise XrdframeError(f"{ds.root} was simulated with another configuration than {first.root} "
                                    f"(differs in: {', '.join(differing)}); only parts of one run can be merged")
        by_index: dict[int, tuple[PeakDataset, dict[str, Any]]] = {}
        for ds in datasets:
            for shard in ds.meta["shards"]:
                if shard["index"] in by_index:
                    continue  # the same shard of the same configuration, present twice
                by_index[shard["index"]] = (ds, shard)
        missing = sorted(set(range(first.meta["n_shards_total"])) - set(by_index))
        if missing:
            raise XrdframeError(f"cannot merge: shards {_ranges(missing)} of {first.meta['n_shards_total']} are in "
                                "none of the inputs (a part is missing or unfinished)")
        out_shards = context.output / "shards"
        out_shards.mkdir(parents=True, exist_ok=True)
        bar = context.progress_bar(len(by_index), "shards")
        shards = []
        for index in sorted(by_index):
            ds, shard = by_index[index]
            source_dir = ds.root / "shards" / shard["name"]
            if verify_shard(source_dir) is None:
                raise XrdframeError(f"{source_dir}: files missing or checksums do not match; re-run that part")
            target = out_shards / shard["name"]
            if verify_shard(target) is None:
                self._copy(source_dir, target)
            shards.append(shard)
            bar.advance()
        bar.close()
        meta = dict(first.meta, part=[0, 1], shards=shards,
                    n_structures=sum(s["n_structures"] for s in shards),
                    n_peaks=sum(s["n_peaks"] for s in shards), n_skipped=sum(s["n_skipped"] for s in shards),
                    merged_from=[str(ds.root) for ds in datasets])
        merged = PeakDataset(root=context.output, meta=meta)
        write_csv_atomic(context.output / "skipped.csv", ("source", "reason"),
                         [(r["source"], r["reason"]) for r in merged.skipped()])
        merged.write_meta()
        context.log.info("[%s] merged %d shards, %d structures -> %s", context.stage, len(shards),
                         meta["n_structures"], context.output)

    def _copy(self, source: Path, target: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for path in source.iterdir():
                if self.params.link:
                    try:
                        os.link(path, tmp / path.name)
                        continue
                    except OSError:
                        pass
                shutil.copy2(path, tmp / path.name)
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _ranges(values: list[int]) -> str:
    out, start = [], values[0]
    for a, b in zip(values, values[1:] + [None], strict=True):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)
