"""Peak datasets: the simulated peak lists of many structures, in shards, with labels and splits.

Layout of a dataset directory::

    dataset.json              format, wavelength, two_theta range, splits, shards, counts, provenance
    shards/NNNNN/             one shard: the structures of indices [first, first + size) of the source
        shard.json            counts and the SHA-256 of every file below
        offsets.npy           (n + 1,) int64: peaks of structure j are rows offsets[j]:offsets[j+1]
        two_theta.npy d.npy   (peaks,) float64, degrees / Angstrom
        hkl.npy               (peaks, 3) int16
        multiplicity.npy      (peaks,) int16
        intensity.npy         (peaks,) float32, strongest peak of each structure = 100
        space_group.npy crystal_system.npy extinction_group.npy split.npy   (n,) labels
        cell.npy              (n, 6) float64, a b c (Angstrom) alpha beta gamma (degrees)
        structures.csv        id, name, source, note of each structure
        skipped.csv           structures of this shard the source could not use, and why

Every array is a plain ``.npy`` file, opened memory-mapped: opening a dataset
reads only ``dataset.json``; a structure's peaks are read when asked for. A
shard is written into a temporary folder and renamed into place, so a shard
folder is either complete or absent; its checksums let a resumed run verify it.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from xrdframe.diffraction import PeakList
from xrdframe.errors import XrdframeError
from xrdframe.files import write_json_atomic, write_text_atomic
from xrdframe.structure import Structure

__all__ = [
    "FORMAT",
    "SHARD_ARRAYS",
    "PeakDataset",
    "file_sha256",
    "ShardData",
    "split_of",
    "verify_shard",
    "write_csv_atomic",
    "write_shard",
]

FORMAT = "xrdframe-peaks/2"
#: Arrays of a shard and their dtypes.
SHARD_ARRAYS: dict[str, Any] = {
    "offsets": np.int64, "two_theta": np.float64, "d": np.float64, "hkl": np.int16, "multiplicity": np.int16,
    "intensity": np.float32, "space_group": np.int16, "crystal_system": np.int8, "extinction_group": np.int8,
    "split": np.int8, "cell": np.float64,
}
STRUCTURE_COLUMNS = ("id", "name", "source", "note")


def split_of(structure_id: str, fractions: Sequence[float], split_seed: int = 0) -> int:
    """The split (index into ``fractions``) of a structure, from a hash of its id.

    Deterministic and independent of order, sharding and the other structures.

    >>> split_of("NaCl.cif", [0.8, 0.1, 0.1]) == split_of("NaCl.cif", [0.8, 0.1, 0.1])
    True
    """
    digest = hashlib.sha256(f"xrdframe-split:{split_seed}:{structure_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edges = np.cumsum(fractions)
    return int(min(np.searchsorted(edges, u, side="right"), len(fractions) - 1))


@attrs.define
class ShardData:
    """What one shard holds before it is written."""

    ids: list[str] = attrs.field(factory=list)
    structures: list[Structure] = attrs.field(factory=list)
    peaks: list[PeakList] = attrs.field(factory=list)
    labels: list[tuple[int, int, int]] = attrs.field(factory=list)  # crystal system, extinction group, split
    skipped: list[tuple[str, str]] = attrs.field(factory=list)


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv_atomic(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Write a CSV file atomically."""
    write_text_atomic(path, _csv_text(header, rows))


def write_shard(shard_dir: Path, data: ShardData, info: dict[str, Any]) -> dict[str, Any]:
    """Write a shard folder atomically (temporary folder, then rename); return its ``shard.json``."""
    parent = shard_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard_dir.name}.", dir=parent))
    try:
        counts = np.array([len(p) for p in data.peaks], dtype=np.int64)
        labels = np.array(data.labels, dtype=np.int64).reshape(-1, 3)

        def cat(name: str, width: int | None = None) -> np.ndarray:
            parts = [getattr(p, name) for p in data.peaks]
            shape = (0,) if width is None else (0, width)
            return np.concatenate(parts) if parts else np.zeros(shape)

        arrays = {
            "offsets": np.concatenate([[0], np.cumsum(counts)]),
            "two_theta": cat("two_theta"), "d": cat("d"), "hkl": cat("hkl", 3),
            "multiplicity": cat("multiplicity"), "intensity": cat("intensity"),
            "space_group": np.array([s.space_group for s in data.structures]),
            "crystal_system": labels[:, 0], "extinction_group": labels[:, 1], "split": labels[:, 2],
            "cell": np.array([s.cell for s in data.structures], dtype=np.float64).reshape(-1, 6),
        }
        for name, dtype in SHARD_ARRAYS.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name], dtype=dtype), allow_pickle=False)
        rows = [(i, s.name, s.source or "", s.note) for i, s in zip(data.ids, data.structures, strict=True)]
        (tmp / "structures.csv").write_text(_csv_text(STRUCTURE_COLUMNS, rows), encoding="utf-8")
        (tmp / "skipped.csv").write_text(_csv_text(("source", "reason"), data.skipped), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        meta = dict(info, n_structures=len(data.structures), n_peaks=int(counts.sum()),
                    n_skipped=len(data.skipped), sha256={f: file_sha256(tmp / f) for f in files})
        (tmp / "shard.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        if shard_dir.exists():
            shutil.rmtree(shard_dir)  # an incomplete or stale shard from an earlier run
        os.rename(tmp, shard_dir)
        return meta
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify_shard(shard_dir: Path, expect: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """``shard.json`` of a complete, intact shard (checksums verified), else None.

    ``expect``: keys that ``shard.json`` must hold with these values (e.g. the
    configuration fingerprint and index range the shard was written for).
    """
    try:
        meta = json.loads((shard_dir / "shard.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if expect and any(meta.get(k) != v for k, v in expect.items()):
        return None
    for name, digest in meta.get("sha256", {}).items():
        path = shard_dir / name
        if not path.is_file() or file_sha256(path) != digest:
            return None
    return meta


class _Shard:
    """Memory-mapped arrays of one shard, opened on first use (one open file each)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None:
            # a plain ndarray view of the map: slicing it is ~10x cheaper than slicing a np.memmap
            array = np.asarray(np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False))
            self._arrays[name] = array
        return array


def _max_open_shards() -> int:
    """How many shards may stay open at once, from the process's limit on open files."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if soft != resource.RLIM_INFINITY else 65536
    except ImportError:  # pragma: no cover - not on POSIX
        limit = 512
    return max(8, (int(limit) - 64) // 8)  # peaks() opens 6 arrays of a shard; labels() opens none


@attrs.define(eq=False)
class PeakDataset:
    """A peak dataset, opened for reading; nothing is loaded until asked for.

    >>> # ds = PeakDataset.open("runs/quickstart/peaks"); ds.peaks(0).two_theta
    """

    root: Path
    meta: dict[str, Any]
    _shards: OrderedDict[int, _Shard] = attrs.field(factory=OrderedDict, init=False)
    _max_open: int = attrs.field(factory=_max_open_shards, init=False)

    @classmethod
    def open(cls, root: str | Path) -> PeakDataset:
        """Open the dataset in ``root`` (reads only ``dataset.json``)."""
        root = Path(root)
        meta_path = root / "dataset.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise XrdframeError(f"{meta_path}: not found; expected a peak dataset written by task 'simulate'") from None
        except ValueError as exc:
            raise XrdframeError(f"{meta_path}: not valid JSON: {exc}") from None
        if meta.get("format") != FORMAT:
            raise XrdframeError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(root=root, meta=meta)

    @property
    def wavelength(self) -> float:
        """Wavelength of the simulated peaks, Angstrom."""
        return float(self.meta["wavelength"])

    @property
    def split_names(self) -> list[str]:
        return list(self.meta["splits"]["names"])

    @cached_property
    def _starts(self) -> list[int]:
        starts, total = [], 0
        for shard in self.meta["shards"]:
            starts.append(total)
            total += int(shard["n_structures"])
        return starts

    def __len__(self) -> int:
        return int(self.meta["n_structures"])

    def _shard(self, k: int) -> _Shard:
        """Shard k, kept open in a least-recently-used cache bounded by the open-file limit."""
        shard = self._shards.get(k)
        if shard is None:
            shard = self._shards[k] = _Shard(self.root / "shards" / self.meta["shards"][k]["name"])
            while len(self._shards) > self._max_open:
                self._shards.popitem(last=False)
        else:
            self._shards.move_to_end(k)
        return shard

    def _locate(self, index: int) -> tuple[_Shard, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"structure index {index} out of range 0..{len(self) - 1}")
        k = bisect.bisect_right(self._starts, index) - 1
        return self._shard(k), index - self._starts[k]

    def peaks(self, index: int) -> PeakList:
        """The peak list of structure ``index`` (memory-mapped views)."""
        shard, j = self._locate(index)
        lo, hi = shard["offsets"][j : j + 2]
        return PeakList(two_theta=shard["two_theta"][lo:hi], d=shard["d"][lo:hi], hkl=shard["hkl"][lo:hi],
                        multiplicity=shard["multiplicity"][lo:hi], intensity=shard["intensity"][lo:hi],
                        wavelength=self.wavelength)

    def peak_lists(self) -> Iterator[PeakList]:
        """Every structure's peak list, in index order."""
        for index in range(len(self)):
            yield self.peaks(index)

    def labels(self, name: str) -> np.ndarray:
        """A label array over all structures: space_group, crystal_system, extinction_group, split or cell."""
        if name not in ("space_group", "crystal_system", "extinction_group", "split", "cell"):
            raise KeyError(f"no label {name!r}; labels: space_group, crystal_system, extinction_group, split, cell")
        parts = [np.load(self.root / "shards" / s["name"] / f"{name}.npy", allow_pickle=False)
                 for s in self.meta["shards"]]  # small arrays: read whole, no file left open
        return np.concatenate(parts) if parts else np.zeros(0)

    def peak_counts(self) -> np.ndarray:
        """Number of peaks of every structure, (n,) int64."""
        parts = [np.diff(np.load(self.root / "shards" / s["name"] / "offsets.npy", allow_pickle=False))
                 for s in self.meta["shards"]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the structures in ``split`` (for example 'train')."""
        if split not in self.split_names:
            raise XrdframeError(f"{self.root}: no split {split!r}; splits: {', '.join(self.split_names)}")
        return np.flatnonzero(self.labels("split") == self.split_names.index(split))

    def _shard_rows(self, filename: str) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        for shard in self.meta["shards"]:
            with open(self.root / "shards" / shard["name"] / filename, newline="", encoding="utf-8") as fh:
                rows.extend(csv.DictReader(fh))
        return rows

    def structures(self) -> list[dict[str, str]]:
        """Rows of every shard's ``structures.csv`` (id, name, source, note), in index order."""
        return self._shard_rows("structures.csv")

    def skipped(self) -> list[dict[str, str]]:
        """Rows of every shard's ``skipped.csv`` (source, reason)."""
        return self._shard_rows("skipped.csv")

    def verify(self) -> list[str]:
        """Names of shards whose files are missing or do not match their checksums."""
        return [s["name"] for s in self.meta["shards"] if verify_shard(self.root / "shards" / s["name"]) is None]

    def write_meta(self) -> None:
        write_json_atomic(self.root / "dataset.json", self.meta)
