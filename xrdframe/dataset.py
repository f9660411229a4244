"""Peak datasets: simulated peak lists of many structures, in shards, with splits.

Layout of a dataset directory::

    dataset.json        format version, wavelength, two_theta range, shards, counts
    structures.csv      one row per structure: id, name, source, space_group,
                        a, b, c, alpha, beta, gamma, n_peaks, split, note
    shards/NNNNN.npz    flat arrays of a block of structures (numpy, no pickles):
                        offsets (n+1), two_theta, d, hkl, multiplicity, intensity,
                        space_group, cell
    skipped.csv         structures a source could not use, with the reason

Shards are written atomically one at a time, so a killed run resumes from the
last complete shard.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np

from xrdframe.diffraction import PeakList
from xrdframe.errors import XrdframeError
from xrdframe.files import atomic_path, write_json_atomic, write_text_atomic
from xrdframe.structure import Structure

__all__ = ["FORMAT", "STRUCTURE_COLUMNS", "PeakDataset", "write_shard", "read_shard", "write_csv_atomic"]

FORMAT = "xrdframe-peaks/1"
STRUCTURE_COLUMNS = ("id", "name", "source", "space_group", "a", "b", "c", "alpha", "beta", "gamma",
                     "n_peaks", "split", "note")


def write_shard(path: Path, structures: Sequence[Structure], peaks: Sequence[PeakList]) -> None:
    """Write one shard of peak lists atomically (``np.savez``; loads with allow_pickle=False)."""
    counts = np.array([len(p) for p in peaks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])

    def cat(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        parts = [getattr(p, name) for p in peaks]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype=dtype)

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                offsets=offsets,
                two_theta=cat("two_theta", (0,), np.float64),
                d=cat("d", (0,), np.float64),
                hkl=cat("hkl", (0, 3), np.int32),
                multiplicity=cat("multiplicity", (0,), np.int32),
                intensity=cat("intensity", (0,), np.float32),
                space_group=np.array([s.space_group for s in structures], dtype=np.int16),
                cell=np.array([s.cell for s in structures], dtype=np.float64).reshape(-1, 6),
            )


def read_shard(path: Path) -> dict[str, np.ndarray]:
    """Read a shard's arrays (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_csv_atomic(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Write a CSV file atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


@attrs.frozen
class PeakDataset:
    """A peak dataset directory, opened for reading."""

    root: Path
    meta: dict

    @classmethod
    def open(cls, root: str | Path) -> PeakDataset:
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
        return float(self.meta["wavelength"])

    def structures(self) -> list[dict[str, str]]:
        """Rows of ``structures.csv``."""
        with open(self.root / "structures.csv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def peak_lists(self) -> Iterator[PeakList]:
        """Every structure's peak list, in ``structures.csv`` order."""
        for name in self.meta["shards"]:
            shard = read_shard(self.root / "shards" / name)
            off = shard["offsets"]
            for i in range(len(off) - 1):
                sl = slice(off[i], off[i + 1])
                yield PeakList(two_theta=shard["two_theta"][sl], d=shard["d"][sl], hkl=shard["hkl"][sl],
                               multiplicity=shard["multiplicity"][sl], intensity=shard["intensity"][sl],
                               wavelength=self.wavelength)

    def write_meta(self) -> None:
        write_json_atomic(self.root / "dataset.json", self.meta)
