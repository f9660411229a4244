"""Simulated test sets: profiles rendered from a peak dataset through an augmentation regime.

* ``equivariance``: held-out structures (split ``test``) in the *training* regime -- does a method
  generalise to structures it has not seen, under the effects it was trained on?
* ``invariance``: training structures (split ``train``) in the *invariance-test* regime, whose random
  parameters are drawn from ranges disjoint from the training ones -- is a method invariant to effects
  it has never met at that strength?

Without ``augmentations`` the regime is the built-in one: the training regime is every operator with its
default parameters (as ``examples/augment_training.yaml`` writes out), the invariance regime the laws of
``examples/augment_invariance.yaml`` (:data:`INVARIANCE_REGIME`; a test keeps both in step).

Profiles are rendered in chunks of :data:`CHUNK` structures with a generator seeded from the run's seed,
the view and the chunk, so the same seed gives the same patterns bit for bit whatever else runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np

from xrdframe.component import AugmentationRef, param
from xrdframe.errors import XrdframeError
from xrdframe.pattern import Pattern
from xrdframe.sources import LabelledPattern
from xrdframe.validators import optional_positive, positive, two_theta_range

__all__ = ["CHUNK", "INVARIANCE_REGIME", "TRAINING_REGIME", "Equivariance", "Invariance", "SimulatedParams"]

#: Structures rendered per augmentation call.
CHUNK = 64
#: Cu K-alpha2 (Angstrom), given to the indexers in the metadata of patterns rendered with ``kalpha2``.
CU_KALPHA2 = 1.544427

#: The training regime: every built-in operator with its default parameters, in the chain's order.
TRAINING_REGIME: tuple[dict[str, Any], ...] = tuple({"name": name, "params": {}} for name in (
    "preferred_orientation", "kalpha2", "crystallite_size", "sample_displacement", "zero_shift",
    "peak_position_noise", "peak_crop", "intensity_noise", "impurity_peaks", "pseudo_voigt", "background_noise",
    "edge_crop"))

_DIRECTIONS = [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 1]]
#: The invariance-test regime (examples/augment_invariance.yaml; docs/augmentation.md explains each range).
INVARIANCE_REGIME: tuple[dict[str, Any], ...] = (
    {"name": "preferred_orientation", "params": {"r": {"uniform": [1.35, 2.0]}, "directions": _DIRECTIONS}},
    {"name": "kalpha2", "params": {"ratio": {"uniform": [0.0, 0.4]}}},
    {"name": "crystallite_size", "params": {"size": {"log_uniform": [50.0, 190.0]}, "k": 0.9}},
    {"name": "sample_displacement", "params": {"displacement": {"uniform": [0.11, 0.3]}, "radius": 240.0}},
    {"name": "zero_shift", "params": {"shift": {"uniform": [0.11, 0.3]}}},
    {"name": "peak_position_noise", "params": {"sigma": {"uniform": [0.012, 0.03]}}},
    {"name": "peak_crop", "params": {"low": {"uniform": [11.0, 20.0]}, "high": {"uniform": [60.0, 89.0]}}},
    {"name": "intensity_noise", "params": {"sigma": {"uniform": [0.11, 0.3]}}},
    {"name": "impurity_peaks", "params": {"count": {"choice": [4, 5, 6]}, "min_fraction": 0.25,
                                          "detection_limit": 0.01}},
    {"name": "pseudo_voigt", "params": {
        "U": {"uniform": [0.025, 0.05]}, "V": {"uniform": [-0.015, -0.007]}, "W": {"uniform": [0.012, 0.025]},
        "eta": {"uniform": [0.8, 1.0]}, "asymmetry": {"uniform": [0.4, 0.7]}, "sampling": "latin_hypercube",
        "window": 8.0, "max_window": 5.0, "min_fwhm": 0.02}},
    {"name": "background_noise", "params": {
        "noise": {"uniform": [0.015, 0.03]}, "counting_noise": {"uniform": [0.03, 0.06]},
        "background": {"uniform": [0.15, 0.3]}, "background_order": 4, "decay": {"uniform": [0.15, 0.3]},
        "decay_width": {"uniform": [12.0, 20.0]}, "amorphous_probability": 0.5,
        "amorphous_position": {"uniform": [40.0, 60.0]}, "amorphous_fwhm": {"uniform": [16.0, 25.0]},
        "amorphous_amplitude": {"uniform": [0.12, 0.25]}}},
    {"name": "edge_crop", "params": {"low": {"uniform": [12.0, 20.0]}, "high": {"uniform": [70.0, 85.0]}}},
)


@attrs.frozen
class SimulatedParams:
    data: Path = param(doc="a peak dataset directory (the output of task 'simulate')")
    split: str | None = param(None, doc="the dataset split whose structures are rendered (null: 'test' for "
                                        "equivariance, 'train' for invariance)")
    augmentations: list[AugmentationRef] | None = param(
        None, doc="the regime: operators applied in order (null: the built-in training regime for equivariance, "
                  "the invariance-test regime of examples/augment_invariance.yaml for invariance)")
    wavelength: float = param(1.540593, unit="Angstrom", validator=positive,
                              doc="wavelength of the profiles (peaks are moved to it through their d-spacings)")
    two_theta: tuple[float, float] = param((0.0, 120.0), unit="deg", validator=two_theta_range,
                                           doc="[start, stop] of the profiles' 2theta grid")
    step: float = param(0.02, unit="deg", validator=positive, doc="bin width of the grid")
    limit: int | None = param(None, validator=optional_positive,
                              doc="at most this many structures of the split, drawn with the run's seed (null: all)")
    views: int = param(1, validator=positive, doc="profiles per structure, each with its own random draws")


def _seed(*parts: Any) -> int:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class _Simulated:
    """Common body of the two simulated test sets."""

    kind: ClassVar[str] = ""
    default_split: ClassVar[str] = ""
    default_regime: ClassVar[tuple[dict[str, Any], ...]] = ()

    def __init__(self, params: SimulatedParams) -> None:
        self.params = params

    def _dataset(self) -> Any:
        from xrdframe.dataset import PeakDataset

        root = Path(self.params.data)
        if not (root / "dataset.json").is_file():
            raise XrdframeError(f"{self.kind}: {root} is not a peak dataset (no dataset.json); expected the output "
                                "folder of a 'simulate' stage")
        return PeakDataset.open(root)

    @property
    def split(self) -> str:
        return self.params.split or self.default_split

    def _indices(self, dataset: Any, seed: int) -> np.ndarray:
        if self.split not in dataset.split_names:
            raise XrdframeError(f"{self.kind}: the dataset {self.params.data} has no split {self.split!r}; its "
                                f"splits are {dataset.split_names}")
        indices = np.asarray(dataset.split_indices(self.split), dtype=np.int64)
        limit = self.params.limit
        if limit is not None and len(indices) > limit:
            rng = np.random.default_rng(_seed(self.kind, "subset", seed))
            indices = np.sort(rng.choice(indices, size=limit, replace=False))
        return indices

    def count(self) -> int:
        dataset = self._dataset()
        return len(self._indices(dataset, 0)) * self.params.views

    def regime(self) -> list[Any]:
        """The regime's augmentation references (the built-in regime when the spec gives none)."""
        if self.params.augmentations is not None:
            return list(self.params.augmentations)
        from xrdframe.api import resolve

        return [resolve("augmentation", entry["name"], **entry["params"]) for entry in self.default_regime]

    def patterns(self, seed: int = 0) -> Iterator[LabelledPattern]:
        import torch

        from xrdframe.augmentation import AugmentationChain, PeakBatch, TwoThetaGrid

        p = self.params
        dataset = self._dataset()
        indices = self._indices(dataset, seed)
        regime = self.regime()
        operators = [ref.build() for ref in regime]
        grid = TwoThetaGrid(p.two_theta[0], p.two_theta[1], p.step)
        chain = AugmentationChain(operators, grid, p.wavelength)
        x = grid.centers().numpy()
        ids = [row.get("id", str(i)) for i, row in enumerate(dataset.structures())]
        space_groups = np.asarray(dataset.labels("space_group"))
        cells = np.asarray(dataset.labels("cell"), dtype=float)
        with_kalpha2 = any(ref.name == "kalpha2" for ref in regime)
        metadata: dict[str, Any] = {"simulated": self.kind, "kalpha2_present": with_kalpha2}
        if with_kalpha2 and abs(p.wavelength - 1.540593) < 1e-3:
            metadata["kalpha2"] = CU_KALPHA2
        for view in range(p.views):
            for start in range(0, len(indices), CHUNK):
                chunk = indices[start:start + CHUNK]
                generator = torch.Generator().manual_seed(_seed(self.kind, seed, view, start))
                batch = PeakBatch.from_peak_lists([dataset.peaks(int(i)) for i in chunk], cells=cells[chunk])
                profiles = chain(batch, generator).intensity.double().cpu().numpy()
                for row, i in enumerate(chunk):
                    sid = ids[int(i)] if int(i) < len(ids) else str(int(i))
                    yield LabelledPattern(
                        id=f"{sid}#{view}",
                        data=Pattern(x.copy(), profiles[row], p.wavelength, f"{p.data}#{sid}", dict(metadata)),
                        space_group=int(space_groups[i]),
                        cell=tuple(float(v) for v in cells[i]),  # type: ignore[arg-type]
                        extra={"structure": sid, "view": str(view), "split": self.split})


class Equivariance(_Simulated):
    """Held-out structures (split ``test``) rendered in the training regime."""

    kind = "equivariance"
    default_split = "test"
    default_regime = TRAINING_REGIME


class Invariance(_Simulated):
    """Training structures (split ``train``) rendered in the invariance-test regime."""

    kind = "invariance"
    default_split = "train"
    default_regime = INVARIANCE_REGIME
