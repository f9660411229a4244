"""The ``cnn`` and ``difcon`` indexers: a 1D ResNet with crystal-system, extinction-group and space-group heads.

``cnn`` (``augment_mode: static`` is the paper's CNN static, profiles rendered once; ``online`` is CNN aug,
fresh augmentations every epoch) and ``difcon`` (the same network with a projector MLP and a representation
loss on two independently augmented views of each structure, trained jointly with the heads).

Prediction: a measured profile is put on the model's grid and wavelength (see :mod:`xrdframe_neural.resample`),
normalized as in training, and read by the network in batches. ``Prediction.top_k`` holds the ``top_k`` best
crystal systems, extinction groups and space groups with calibrated probabilities; space-group
probabilities are the joint ``p(system) * p(group | system)``. ``Prediction.space_group`` is the best group
of the *predicted* crystal system's head (the paper's rule), ``figure_of_merit`` its joint probability.

With no ``checkpoint`` the indexer loads the model shipped in ``xrdframe_neural/default/<name>/``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch

from xrdframe.component import EncoderRef, RepresentationLossRef, param
from xrdframe.errors import XrdframeError
from xrdframe.indexing import Prediction
from xrdframe.pattern import ObservedPeaks, Pattern
from xrdframe.symmetry import CRYSTAL_SYSTEMS
from xrdframe.validators import non_negative, positive, two_theta_range
from xrdframe_neural.encoder import positive_widths

__all__ = ["Cnn", "CnnParams", "Difcon", "DifconParams", "DEFAULT_DIR"]

#: Where the shipped default models live: ``DEFAULT_DIR / <name> / model.safetensors`` (+ ``model.json``).
DEFAULT_DIR = Path(__file__).parent / "default"


def _loss_weights(instance: object, attribute: attrs.Attribute, value: dict[str, float]) -> None:
    allowed = {"crystal_system", "extinction_group", "space_group"}
    bad = sorted(set(value) - allowed)
    if bad:
        raise ValueError(f"unknown label {bad[0]!r}; labels: {', '.join(sorted(allowed))}")
    if any(v < 0 for v in value.values()):
        raise ValueError(f"weights must be >= 0, got {value}")


@attrs.frozen
class NeuralParams:
    checkpoint: Path | None = param(None, doc="a trained model (.safetensors with its .json, or the output "
                                              "directory of a train run); null: the shipped default")
    encoder: EncoderRef | None = param(None, doc="the encoder (an 'encoder' component); null: resnet1d with its "
                                                 "defaults")
    head_hidden: int = param(0, doc="width of a hidden layer (Linear, LayerNorm, ReLU) shared by the heads; 0: "
                                    "the heads read the features directly", validator=non_negative)
    two_theta: tuple[float, float] = param((0.0, 120.0), doc="[start, stop] of the model's input grid (training)",
                                           unit="deg", validator=two_theta_range)
    step: float = param(0.02, doc="bin width of the model's input grid (training)", unit="deg", validator=positive)
    wavelength: float | None = param(None, doc="the model's wavelength (training); null: the peak dataset's",
                                     unit="Angstrom")
    loss_weights: dict[str, float] = param(
        factory=lambda: {"crystal_system": 1.0, "extinction_group": 1.0, "space_group": 1.0},
        doc="weights of the cross-entropies of the three labels", validator=_loss_weights)
    top_k: int = param(5, doc="candidates per label in Prediction.top_k", validator=positive)
    predict_batch_size: int = param(
        64, doc="patterns per forward pass when predicting (on a CPU the encoder alone ran 1.25x faster at 64 "
        "than at 256, whose activations leave the cache; a GPU wants more)", validator=positive)
    predict_workers: int = param(
        0, doc="CPU threads predicting whole batches at once, one core each; 0: torch's thread count",
        validator=non_negative)
    device: Literal["auto", "cpu", "cuda"] = param("cpu", doc="where predictions are computed")
    precision: Literal["float32", "bfloat16"] = param(
        "float32", doc="arithmetic of the encoder when predicting: bfloat16 (autocast; the heads and softmax stay "
        "float32) pays only on CPUs with AVX512-BF16 or AMX (here: the encoder alone up to 1.4x faster, whole "
        "predictions -2 to +17 %); probabilities move by up to 0.01, 99 % of labels unchanged (docs/benchmarks.md)")
    peak_fwhm: float = param(0.1, doc="FWHM of the Gaussians drawn for a peak-list input", unit="deg",
                             validator=positive)
    weight_decay: float = param(0.05, doc="AdamW weight decay (not on biases and normalization weights)",
                                validator=non_negative)
    warmup_epochs: float = param(1.0, doc="linear learning-rate warm-up, in epochs", validator=non_negative)
    min_lr_ratio: float = param(0.01, doc="learning rate at the end of the cosine decay / the peak rate",
                                validator=non_negative)
    grad_clip: float = param(1.0, doc="clip the gradient norm to this (0: no clipping)", validator=non_negative)
    patience: int = param(5, doc="early stopping: epochs without a better validation score (0: never stop)",
                          validator=non_negative)
    monitor: Literal["accuracy", "loss"] = param("accuracy", doc="validation score of early stopping and of the "
                                                              "best epoch: mean of the three accuracies, or "
                                                              "minus the loss")
    amp: bool = param(True, doc="mixed precision (float16) on CUDA; ignored on the CPU")
    workers: int = param(1, doc="threads rendering online batches ahead of the training step",
                         validator=non_negative)
    threads: int = param(0, doc="torch.set_num_threads for training (0: leave torch's default)",
                         validator=non_negative)
    calibrate: bool = param(True, doc="fit the heads' softmax temperatures on the validation split")

    def encoder_spec(self) -> dict[str, Any]:
        if self.encoder is None:
            return {"name": "resnet1d", "params": {}}
        return self.encoder.to_spec()

    def model_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder_spec(), "projector": [], "heads_on": "features",
                "head_hidden": int(self.head_hidden)}


@attrs.frozen
class CnnParams(NeuralParams):
    augment_mode: Literal["static", "online"] = param(
        "online", doc="'static': profiles rendered once (CNN static); 'online': fresh augmentations every epoch "
                      "(CNN aug)")


def _default_projector() -> list[int]:
    return [2048, 2048]


@attrs.frozen
class DifconParams(NeuralParams):
    projector: list[int] = param(factory=_default_projector, doc="widths of the projector MLP (Linear, LayerNorm, "
                                 "ReLU between layers); the last is the embedding size", validator=positive_widths)
    representation_loss: RepresentationLossRef | None = param(
        None, doc="loss on the embeddings of the two views (a 'representation_loss'); null: barlow_twins")
    representation_weight: float = param(0.005, doc="weight of the representation loss against the "
                                                    "cross-entropies (Barlow Twins sums over the embedding "
                                                    "dimensions: ~1/width; NT-Xent: ~1)", validator=non_negative)
    heads_on: Literal["features", "embedding"] = param("features", doc="the heads read the encoder's features or "
                                                                       "the projector's embedding")

    def model_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder_spec(), "projector": [int(w) for w in self.projector],
                "heads_on": self.heads_on, "head_hidden": int(self.head_hidden)}

    def representation_loss_fn(self) -> Any:
        if self.representation_loss is None:
            from xrdframe_neural.losses import BarlowTwins

            return BarlowTwins()
        return self.representation_loss.build()


class _NeuralIndexer:
    name = ""

    def __init__(self, params: NeuralParams) -> None:
        self.params = params
        self._model: Any = None
        self._meta: dict[str, Any] | None = None

    # -- training ------------------------------------------------------------------------------------
    def fit(self, params: Any, context: Any) -> None:
        """Train on the ``train`` task's data (see :mod:`xrdframe_neural.trainer`)."""
        from xrdframe_neural.trainer import fit

        fit(self.name, self.params, params, context)

    # -- the model -----------------------------------------------------------------------------------
    def checkpoint_path(self) -> Path:
        if self.params.checkpoint is not None:
            return Path(self.params.checkpoint)
        path = DEFAULT_DIR / self.name / "model.safetensors"
        if not path.is_file():
            raise XrdframeError(f"indexer {self.name!r}: no checkpoint given and no shipped default model at {path}")
        return path

    def load(self) -> tuple[Any, dict[str, Any]]:
        """The network and its description (loaded once)."""
        if self._model is None:
            from xrdframe_neural.model import load_model
            from xrdframe_neural.trainer import _device

            model, meta = load_model(self.checkpoint_path(), expect_model=self.name)
            self._model, self._meta = model.to(_device(self.params.device)), meta
        assert self._meta is not None
        return self._model, self._meta

    # -- inputs --------------------------------------------------------------------------------------
    def profile(self, data: Pattern | ObservedPeaks) -> np.ndarray:
        """The input the network reads for one pattern (on its grid and wavelength, not yet normalized).

        :raises ValueError: no wavelength, or nothing in the model's 2theta range.
        """
        from xrdframe_neural.model import grid_of
        from xrdframe_neural.resample import render_peaks, resample_profile

        _, meta = self.load()
        grid, target = grid_of(meta), float(meta["wavelength"])
        if data.wavelength is None:
            raise ValueError("the pattern has no wavelength (give one: --wavelength, the file or index.csv)")
        if isinstance(data, ObservedPeaks):
            y = render_peaks(data.two_theta, data.intensity, float(data.wavelength), grid, target,
                             self.params.peak_fwhm)
        else:
            y = resample_profile(data.two_theta, data.intensity, float(data.wavelength), grid, target)
        if not np.any(y != 0):
            raise ValueError(_out_of_range(grid, target))
        return y

    def _profiles(self, data: Sequence[Pattern | ObservedPeaks]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        """The network's inputs for many patterns: ``(profiles (n, n_bins), rows of data they belong to, reasons
        for the others)``. Patterns measured at the same 2theta points and wavelength (one instrument's scans)
        are resampled together (:func:`~xrdframe_neural.resample.resample_profiles`); the others one by one."""
        from xrdframe_neural.model import grid_of
        from xrdframe_neural.resample import convert_two_theta, resample_profiles

        _, meta = self.load()
        grid, target = grid_of(meta), float(meta["wavelength"])
        out: dict[int, np.ndarray] = {}
        reasons: dict[int, str] = {}
        groups: dict[tuple[float, int, float, float], list[int]] = {}
        single: list[int] = []
        for i, item in enumerate(data):
            if isinstance(item, Pattern) and item.wavelength is not None and item.two_theta.size >= 2:
                x = item.two_theta
                key = (float(item.wavelength), x.size, float(x[0]), float(x[-1]))
                group = groups.setdefault(key, [])
                if not group or x is data[group[0]].two_theta or np.array_equal(x, data[group[0]].two_theta):
                    group.append(i)
                    continue
            single.append(i)
        for (wavelength, *_), members in groups.items():
            x = convert_two_theta(data[members[0]].two_theta, wavelength, target)
            ok = np.isfinite(x)
            y = np.empty((len(members), x.size), dtype=np.float32)  # one copy, in the network's precision
            for row, i in enumerate(members):
                y[row] = data[i].intensity
            if not ok.all():
                y = y[:, ok]
            finite = np.isfinite(y).all(axis=1)
            single += [i for i, f in zip(members, finite, strict=True) if not f]  # NaN intensities: one by one
            members = [i for i, f in zip(members, finite, strict=True) if f]
            if members:
                resampled = resample_profiles(x[ok], y[finite], grid)
                for i, row, inside in zip(members, resampled, np.any(resampled != 0, axis=1).tolist(), strict=True):
                    if inside:
                        out[i] = row
                    else:
                        reasons[i] = _out_of_range(grid, target)
        for i in single:
            try:
                out[i] = self.profile(data[i])
            except ValueError as exc:
                reasons[i] = str(exc)
        rows = sorted(out)
        profiles = np.stack([out[i] for i in rows]) if rows else np.zeros((0, grid.n_bins), dtype=np.float32)
        return profiles, rows, reasons

    # -- prediction ----------------------------------------------------------------------------------
    def predict(self, data: Pattern | ObservedPeaks) -> Prediction:
        """One pattern (see :meth:`predict_batch`)."""
        return self.predict_batch([data])[0]

    def predict_batch(self, data: Sequence[Pattern | ObservedPeaks]) -> list[Prediction]:
        """Predictions for many patterns, in batches of ``predict_batch_size`` (each put on the model's grid and
        read by the network; on a CPU, ``predict_workers`` batches at once, see :meth:`predict_arrays`)."""
        start = time.perf_counter()
        model, _ = self.load()
        device = next(model.parameters()).device
        size = self.params.predict_batch_size

        def batch(lo: int) -> tuple[list[int], dict[int, str], dict[str, np.ndarray] | None]:
            profiles, rows, reasons = self._profiles(data[lo:lo + size])
            out = self._predict_chunk(model, profiles, device) if rows else None
            return [lo + j for j in rows], {lo + j: reason for j, reason in reasons.items()}, out

        parts = self._map(batch, range(0, len(data), size), device)
        rows = [i for part_rows, _, _ in parts for i in part_rows]
        reasons = {i: reason for _, part_reasons, _ in parts for i, reason in part_reasons.items()}
        results: list[Prediction | None] = [None] * len(data)
        if rows:
            outs = [o for _, _, o in parts if o is not None]
            out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
            top = {name: _top_k(out[name], self.params.top_k)
                   for name in ("crystal_system", "extinction_group", "space_group")}
            labels = {key: out[key].tolist() for key in ("cs", "eg", "sg")}
            p_sg = np.take_along_axis(out["space_group"], out["sg"][:, None].astype(np.int64), axis=1)[:, 0].tolist()
            seconds = (time.perf_counter() - start) / max(1, len(data))
            for j, i in enumerate(rows):
                results[i] = self._prediction(top, labels, p_sg[j], j, seconds)
        seconds = (time.perf_counter() - start) / max(1, len(data))
        return [r if r is not None else Prediction.empty(reasons[i], seconds) for i, r in enumerate(results)]

    def predict_arrays(self, profiles: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probabilities and labels for profiles already on the model's grid, (N, n_bins).

        On a CPU the batches of ``predict_batch_size`` are spread over ``predict_workers`` threads, each running
        whole batches on one core (small convolutions split over cores poorly: 1.05-1.25x the rate of every
        batch over both cores of this machine, docs/benchmarks.md); the results are the same either way."""
        model, meta = self.load()
        n_bins = int(round((meta["grid"]["stop"] - meta["grid"]["start"]) / meta["grid"]["step"]))
        if profiles.ndim != 2 or profiles.shape[1] != n_bins or len(profiles) == 0:
            raise ValueError(f"profiles must be (N >= 1, {n_bins}) on the model's grid, got {profiles.shape}")
        device = next(model.parameters()).device
        size = self.params.predict_batch_size
        parts = self._map(lambda lo: self._predict_chunk(model, profiles[lo:lo + size], device),
                          range(0, len(profiles), size), device)
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}

    def _map(self, fn: Any, items: Sequence[Any], device: torch.device) -> list[Any]:
        """``[fn(item) for item in items]``, on a CPU over ``predict_workers`` threads when there are several."""
        workers = self.params.predict_workers or torch.get_num_threads()
        if device.type == "cpu" and workers > 1 and len(items) > 1:
            return list(_batch_pool(workers).map(fn, items))
        return [fn(item) for item in items]

    def _predict_chunk(self, model: Any, chunk: np.ndarray, device: torch.device) -> dict[str, np.ndarray]:
        """One batch through the network and the calibrated heads (any thread: the modes set here are
        thread-local)."""
        from xrdframe_neural.model import head_probabilities, predicted_labels

        with torch.inference_mode():
            x = torch.as_tensor(np.ascontiguousarray(chunk), dtype=torch.float32, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.params.precision == "bfloat16"):
                features = model.encoder(model.normalize(x))
            probs = head_probabilities(model.heads(features.float()), model.temperature)
            cs, eg, sg = predicted_labels(probs)
            return {key: value.cpu().numpy() for key, value in (*probs.items(), ("cs", cs), ("eg", eg), ("sg", sg))}

    @staticmethod
    def _prediction(top: dict[str, tuple[list[list[int]], list[list[float]]]], labels: dict[str, list[int]],
                    p_sg: float, j: int, seconds: float) -> Prediction:
        """The prediction of row ``j`` from the batch's top-k lists (:func:`_top_k`) and labels."""
        def ranked(name: str, label: Any) -> tuple[tuple[object, float], ...]:
            index, prob = top[name][0][j], top[name][1][j]
            return tuple((label(i), p) for i, p in zip(index, prob, strict=True) if p > 0)

        return Prediction(crystal_system=CRYSTAL_SYSTEMS[labels["cs"][j]], extinction_group=labels["eg"][j],
                          space_group=labels["sg"][j], figure_of_merit=p_sg, seconds=seconds,
                          top_k={"crystal_system": ranked("crystal_system", CRYSTAL_SYSTEMS.__getitem__),
                                 "extinction_group": ranked("extinction_group", int),
                                 "space_group": ranked("space_group", int)})


def _top_k(probabilities: np.ndarray, k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Indices and values of the ``k`` largest probabilities of each row (N, C), largest first (stable on ties),
    as Python lists: one sort for the whole batch."""
    index = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return index.tolist(), np.take_along_axis(probabilities, index, axis=1).tolist()


def _out_of_range(grid: Any, wavelength: float) -> str:
    """Why a pattern has no input for the network."""
    return (f"nothing of the pattern falls in the model's range {grid.start}-{grid.stop} deg 2theta at "
            f"{wavelength} Angstrom")


class Cnn(_NeuralIndexer):
    """CNN static / CNN aug: a 1D ResNet with crystal-system, extinction-group and space-group heads."""

    name = "cnn"


class Difcon(_NeuralIndexer):
    """DIFCON: the CNN with a contrastive representation head trained on two augmented views."""

    name = "difcon"


@functools.cache
def _batch_pool(workers: int) -> ThreadPoolExecutor:
    """Threads that each run whole prediction batches on one core (torch's thread count is per thread)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="xrdframe-predict",
                              initializer=torch.set_num_threads, initargs=(1,))
