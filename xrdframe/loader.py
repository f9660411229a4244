"""Batches of rendered profiles with their labels, for training and evaluation.

Two modes, as the paper compares them:

* ``static`` (CNN static): every structure's profile is rendered once, with
  the augmentation chain, and stored memory-mapped; each epoch reads the same
  profiles in a new order.
* ``online`` (CNN aug, DIFCON): every batch is rendered afresh from the peak
  lists, so each epoch sees new draws of every random effect; ``views=2``
  gives two independent views of each structure (what a contrastive loss
  compares).

Everything is seeded: the same seed, epoch and batch number give the same
batch, bit for bit, on the CPU. Randomness never depends on the batch size
in ``static`` mode (each structure is rendered in fixed chunks of the
dataset order).

Rendering runs in ``workers`` background threads when asked (the operators'
kernels release the GIL): batch b is always rendered with its own generator,
seeded by (seed, epoch, b), so the batches are the same whatever the number
of workers, and they are yielded in order.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np

from xrdframe.augmentation import AugmentationChain, PeakBatch
from xrdframe.dataset import PeakDataset
from xrdframe.files import atomic_path

__all__ = ["Batch", "PatternLoader", "ordered_map"]

_RENDER_CHUNK = 256


def _seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (stable across processes and platforms)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def ordered_map(function: Callable[[Any], Any], items: Iterable[Any], workers: int = 0,
                prefetch: int = 2) -> Iterator[Any]:
    """``function(item)`` for each item, in order, computed by ``workers`` background threads (0: inline).

    At most ``workers * prefetch`` results are computed ahead of the consumer, so memory stays bounded.

    >>> list(ordered_map(lambda x: x * x, range(5), workers=2))
    [0, 1, 4, 9, 16]
    """
    if workers <= 0:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xrdframe-render") as pool:
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= workers * prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


@attrs.define
class Batch:
    """One batch: profiles and the labels of their structures.

    :ivar profiles: (B, n_bins) float32, or (views, B, n_bins) when views > 1.
    :ivar index: (B,) dataset indices of the structures.
    :ivar space_group, crystal_system, extinction_group: (B,) int64 labels
        (crystal system as an index into ``xrdframe.symmetry.CRYSTAL_SYSTEMS``).
    """

    profiles: Any
    index: Any
    space_group: Any
    crystal_system: Any
    extinction_group: Any


class PatternLoader:
    """Profiles of the structures ``indices`` of a peak dataset, in batches.

    :param dataset: the peak dataset.
    :param indices: dataset indices to serve (e.g. ``dataset.split_indices("train")``).
    :param chain: the augmentation chain (its grid and wavelength define the profiles).
    :param mode: ``static`` or ``online``.
    :param views: profiles per structure in a batch (online mode; 2 for contrastive training).
    :param cache_dir: where ``static`` mode keeps its rendered profiles (memory-mapped .npy).
    :param bucket: in ``online`` mode, group structures with similar numbers of peaks into the same
        batch (within windows of ``bucket`` batches of the shuffled order; 0 = off): peak lists are
        padded to the longest of a batch, so this cuts the padding the operators work on.
    :param workers: background threads rendering ``online`` batches ahead of the consumer (0: render
        in the consuming thread). Results do not depend on it.
    """

    def __init__(self, dataset: PeakDataset, indices: Any, chain: AugmentationChain, *, batch_size: int = 64,
                 mode: Literal["static", "online"] = "online", views: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, cache_dir: str | Path | None = None,
                 device: Any = "cpu", bucket: int = 50, workers: int = 0) -> None:
        if mode not in ("static", "online"):
            raise ValueError(f"mode must be 'static' or 'online', got {mode!r}")
        if views < 1 or (mode == "static" and views != 1):
            raise ValueError(f"views must be >= 1 (and 1 in static mode), got {views}")
        if mode == "static" and cache_dir is None:
            raise ValueError("static mode needs a cache_dir for the rendered profiles")
        self.dataset, self.chain = dataset, chain
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size, self.mode, self.views, self.seed = int(batch_size), mode, int(views), int(seed)
        self.shuffle, self.drop_last, self.device = shuffle, drop_last, device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._labels = {name: np.asarray(dataset.labels(name), dtype=np.int64)
                        for name in ("space_group", "crystal_system", "extinction_group")}
        self._static: np.ndarray | None = None
        self.bucket = int(bucket)
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = int(workers)
        self._counts = dataset.peak_counts()[self.indices] if mode == "online" and bucket > 0 else None

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _peaks(self, index: np.ndarray) -> PeakBatch:
        cells = self.dataset.labels("cell")[index]
        return PeakBatch.from_peak_lists([self.dataset.peaks(int(i)) for i in index], cells=cells,
                                         device=self.device)

    def render(self, index: np.ndarray, generator: Any) -> Any:
        """Profiles (B, n_bins) of the structures ``index`` through the chain."""
        return self.chain(self._peaks(index), generator).intensity

    def _static_profiles(self) -> np.ndarray:
        if self._static is not None:
            return self._static
        import torch

        key = _seed(self.dataset.meta.get("config"), str(self.dataset.root.resolve()), self.indices.tolist(),
                    self.seed, repr([type(op).__name__ + repr(getattr(op, "params", "")) for op in
                                     [*self.chain.peak_ops, self.chain.render, *self.chain.profile_ops]]),
                    attrs.astuple(self.chain.grid), self.chain.wavelength)
        assert self.cache_dir is not None
        path = self.cache_dir / f"profiles-{key:016x}.npy"
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            out = np.zeros((len(self.indices), self.chain.grid.n_bins), dtype=np.float32)
            for start in range(0, len(self.indices), _RENDER_CHUNK):  # fixed chunks: independent of batch_size
                chunk = self.indices[start:start + _RENDER_CHUNK]
                generator = torch.Generator().manual_seed(_seed("static", self.seed, start))
                out[start:start + len(chunk)] = self.render(chunk, generator).cpu().numpy()
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, out, allow_pickle=False)
        self._static = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._static

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of one epoch (a new order each epoch when shuffling)."""
        import torch

        order = np.arange(len(self.indices))
        if self.shuffle:
            order = np.random.default_rng(_seed("order", self.seed, epoch)).permutation(len(self.indices))
        static = self._static_profiles() if self.mode == "static" else None
        batch_order = np.arange(len(self))
        if self._counts is not None:
            window = self.bucket * self.batch_size  # sort by peak count within windows, then shuffle the batches
            for start in range(0, len(order), window):
                part = order[start:start + window]
                order[start:start + window] = part[np.argsort(self._counts[part], kind="stable")]
            if self.shuffle:
                batch_order = np.random.default_rng(_seed("batches", self.seed, epoch)).permutation(len(self))
        def make(b: int) -> Batch:
            rows = order[b * self.batch_size:(b + 1) * self.batch_size]
            index = self.indices[rows]
            if static is not None:
                profiles = torch.as_tensor(np.asarray(static[np.sort(rows)]), device=self.device)
                profiles = profiles[torch.as_tensor(np.argsort(np.argsort(rows)), device=self.device)]
            else:
                generator = torch.Generator().manual_seed(_seed("online", self.seed, epoch, int(b)))
                peaks = self._peaks(index)
                views = [self.chain(peaks, generator).intensity for _ in range(self.views)]
                profiles = views[0] if self.views == 1 else torch.stack(views)
            labels = {k: torch.as_tensor(v[index], device=self.device) for k, v in self._labels.items()}
            return Batch(profiles=profiles, index=torch.as_tensor(index, device=self.device), **labels)

        yield from ordered_map(make, batch_order, self.workers if static is None else 0)
