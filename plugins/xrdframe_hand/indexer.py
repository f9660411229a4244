"""The ``hand`` indexer: three randomized-tree ensembles on the HAND peak features.

Prediction: a peak list (:class:`~xrdframe.pattern.ObservedPeaks`) is used as it is, a measured profile
(:class:`~xrdframe.pattern.Pattern`) has its peaks picked first (:func:`~xrdframe.peak_picking.pick_peaks`);
the features (:mod:`xrdframe_hand.features`) go through one ensemble per label: crystal system, extinction
group, space group. The three answers are independent (as in the paper), unless ``restrict_space_group``
limits the space group to the predicted crystal system.

Training (:meth:`Hand.fit`, called by task ``train``): every structure of the training split of a peak
dataset gives ``views`` feature vectors, each from its simulated peak list after an independent draw of the
peak-stage augmentation operators of the spec (zero shift, position noise, crop, impurity peaks,
intensity noise...), then the merge and intensity threshold that make it look like a picked list.
Everything random comes from ``context.seed``.
"""

from __future__ import annotations

import importlib.resources
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np

from xrdframe import __version__
from xrdframe.component import param
from xrdframe.errors import XrdframeError
from xrdframe.indexing import Prediction
from xrdframe.pattern import ObservedPeaks, Pattern
from xrdframe.peak_picking import PeakPickingParams, pick_peaks
from xrdframe.symmetry import CRYSTAL_SYSTEMS, crystal_system
from xrdframe.validators import non_negative, optional_positive, positive
from xrdframe_hand.features import CU_WAVELENGTH, FEATURE_NAMES, TWO_THETA_MAX, FeatureDefinition, features
from xrdframe_hand.model import LABELS, HandModel, load_model, save_model

__all__ = ["AUGMENT_WAVELENGTH", "Hand", "HandParams", "augmented_features", "default_model_path"]

#: The wavelength the peak-stage augmentations run at: Cu K-alpha1 (Angstrom), the reference of the augmentation
#: regimes (their shifts are degrees at Cu; ``kalpha2`` adds K-alpha2 companions to K-alpha1 lines). The
#: features then move the augmented lines to :data:`~xrdframe_hand.features.CU_WAVELENGTH` through d.
AUGMENT_WAVELENGTH = 1.540593
#: Patterns augmented at once in training.
_BATCH = 2048
#: Simulated peaks beyond this angle (at Cu) are left out before augmentation: no shift the training regime
#: draws brings them below 90 degrees.
_CUTOFF = TWO_THETA_MAX + 5.0


def _fraction(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value}")


def _threshold(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value}")


@attrs.frozen
class HandParams:
    checkpoint: Path | None = param(
        None, doc="a trained hand model: model.skops (with model.json beside it) or the folder holding both "
                  "(the output of a 'train' run); null: the default model shipped with xrdframe")
    model: Literal["extra_trees", "random_forest"] = param(
        "extra_trees", doc="training: the ensemble, extremely randomized trees (Geurts et al. 2006) or a random "
                           "forest (Breiman 2001)")
    n_estimators: int = param(100, doc="training: trees per ensemble", validator=positive)
    max_depth: int | None = param(None, doc="training: largest tree depth; null: unlimited",
                                  validator=optional_positive)
    min_samples_leaf: int = param(1, doc="training: fewest training vectors in a leaf", validator=positive)
    max_leaf_nodes: int | None = param(None, doc="training: most leaves per tree (best-first growth); null: "
                                                 "unlimited", validator=optional_positive)
    max_features: float = param(0.3, doc="training: fraction of the 11 features tried at each split (0.3: 3 "
                                         "features, about sqrt(11))", validator=_fraction)
    bootstrap: bool | None = param(None, doc="training: draw a bootstrap sample per tree; null: the ensemble's "
                                             "default (no for extra_trees, yes for random_forest)")
    views: int | None = param(None, doc="training: independently augmented feature vectors per training "
                                        "structure; null: the train task's trainer.epochs",
                              validator=optional_positive)
    intensity_threshold: float = param(
        0.01, unit="fraction of the strongest line", validator=_threshold,
        doc="training: lines weaker than this are dropped before the features are taken, so simulated lists "
            "look like picked ones (stored with the model and applied at prediction to lists with intensities)")
    merge_width: float = param(0.05, unit="deg 2theta at Cu", validator=non_negative,
                               doc="training: lines closer than this are one line (stored with the model)")
    n_jobs: int = param(1, doc="processes scikit-learn uses to fit and predict", validator=positive)
    restrict_space_group: bool = param(
        False, doc="restrict the space group to those of the predicted crystal system (probabilities "
                   "renormalised); false as in the paper, where the three models answer independently")
    top_k: int = param(5, doc="ranked (label, probability) pairs returned per label", validator=positive)
    min_peaks: int = param(1, doc="fewer peaks than this between 0 and 90 deg (at Cu): an empty prediction "
                                  "with the reason", validator=positive)
    picking: PeakPickingParams = param(factory=PeakPickingParams,
                                       doc="peak picking for measured profiles (ignored for peak lists)")

    def definition(self) -> FeatureDefinition:
        return FeatureDefinition(intensity_threshold=self.intensity_threshold, merge_width=self.merge_width)


def default_model_path() -> Path:
    """The shipped default model (``xrdframe_hand/default/model.json``)."""
    return Path(str(importlib.resources.files("xrdframe_hand") / "default" / "model.json"))



def _label_names(name: str, codes: np.ndarray) -> list[Any]:
    if name == "crystal_system":
        return [CRYSTAL_SYSTEMS[int(c)] for c in codes]
    return [int(c) for c in codes]


def augmented_features(peak_lists: Sequence[Any], chain: Any, generator: Any, definition: FeatureDefinition,
                       cells: np.ndarray | None = None) -> np.ndarray:
    """Feature vectors (B, 11) of simulated peak lists (one wavelength) after the chain's peak-stage operators.

    ``chain`` is an :class:`~xrdframe.augmentation.AugmentationChain` at :data:`AUGMENT_WAVELENGTH` (None: no
    augmentation); ``generator`` a seeded :class:`torch.Generator`.
    """
    from xrdframe.augmentation import PeakBatch

    if not peak_lists:
        return np.zeros((0, len(FEATURE_NAMES)))
    batch = PeakBatch.from_peak_lists(peak_lists, cells=cells)
    if chain is not None:
        batch = chain.peaks(batch, generator)
    return features(batch.two_theta.double().numpy(), batch.intensity.double().numpy(), batch.wavelength,
                    definition, mask=batch.mask.numpy())


def _truncate(peaks: Any, max_two_theta: float) -> Any:
    """The peak list without the peaks beyond ``max_two_theta`` (degrees at its own wavelength)."""
    from xrdframe.diffraction import PeakList

    k = int(np.searchsorted(peaks.two_theta, max_two_theta, side="right"))
    if k == len(peaks):
        return peaks
    return PeakList(two_theta=peaks.two_theta[:k], d=peaks.d[:k], hkl=peaks.hkl[:k],
                    multiplicity=peaks.multiplicity[:k], intensity=peaks.intensity[:k], wavelength=peaks.wavelength)


def _drop_internal_values(forest: Any) -> None:
    """Zero the class distributions stored at the internal (split) nodes of every tree, in place.

    ``predict`` and ``predict_proba`` read the distributions of the leaves only, so predictions are unchanged
    bit for bit; the zeros compress to nothing, which makes ``model.skops`` about 2.7 times smaller (the
    distributions, one float64 per class and node, are most of a forest's size with 230 space groups).
    """
    for tree in forest.estimators_:
        internal = tree.tree_.children_left != -1
        tree.tree_.value[internal] = 0.0  # a view of the tree's own array


def _dataset_cutoff(wavelength: float) -> float:
    """The angle at ``wavelength`` of :data:`_CUTOFF` at Cu (180 when beyond reach)."""
    s = math.sin(math.radians(_CUTOFF / 2.0)) * wavelength / CU_WAVELENGTH
    return 180.0 if s >= 1.0 else 2.0 * math.degrees(math.asin(s))


class Hand:
    """HAND (after Suzuki et al. 2020): three tree ensembles (crystal system, extinction group, space group) on
    eleven features, the first ten peak positions below 90 deg and the number of peaks there, at Cu K-alpha
    1.5418 Angstrom (other wavelengths converted through d; missing positions padded with 90.0). Peaks are
    picked from profiles; peak lists are used as given. Trained by task 'train' on a peak dataset with the
    peak-stage augmentations; without 'checkpoint' the model shipped with xrdframe is used. docs/hand.md."""

    def __init__(self, params: HandParams) -> None:
        self.params = params
        self._model: HandModel | None = None
        self._systems: tuple[HandModel, np.ndarray] | None = None
        if params.checkpoint is not None:  # a bad checkpoint is an error at build time, naming the file
            self._model = load_model(params.checkpoint)

    # ------------------------------------------------------------------ model

    @property
    def model(self) -> HandModel:
        """The trained model: the checkpoint's, the one just fitted, or the shipped default (loaded on first use)."""
        if self._model is None:
            path = default_model_path()
            if not path.is_file():
                raise XrdframeError(f"{path}: the default hand model is missing from this installation; give a "
                                    f"checkpoint (train one with examples/hand_default.yaml)")
            self._model = load_model(path)
        return self._model

    # ------------------------------------------------------------------ prediction

    def features(self, data: Pattern | ObservedPeaks) -> np.ndarray:
        """The (11,) feature vector of one pattern or peak list (peaks picked from a profile).

        :raises ValueError: without a wavelength.
        """
        peaks = data if isinstance(data, ObservedPeaks) else pick_peaks(data, self.params.picking)
        if peaks.wavelength is None:
            raise ValueError("no wavelength (not in the file, nor given)")
        return features(np.asarray(peaks.two_theta, dtype=float)[None, :],
                        None if peaks.intensity is None else np.asarray(peaks.intensity, dtype=float)[None, :],
                        float(peaks.wavelength), self.model.definition)[0]

    def predict(self, data: Pattern | ObservedPeaks) -> Prediction:
        """Crystal system, extinction group and space group of one pattern; never raises for a bad pattern."""
        return self.predict_batch([data])[0]

    def predict_batch(self, data: Sequence[Pattern | ObservedPeaks]) -> list[Prediction]:
        """One prediction per input, in order; the ensembles run once on all usable inputs."""
        n = len(data)
        x = np.zeros((n, len(FEATURE_NAMES)))
        reasons: list[str | None] = [None] * n
        seconds = np.zeros(n)
        for i, item in enumerate(data):
            start = time.perf_counter()
            try:
                x[i] = self.features(item)
            except Exception as exc:  # noqa: BLE001 - an indexer answers with a reason, never raises
                reasons[i] = f"peak picking failed: {exc}" if isinstance(item, Pattern) and not \
                    isinstance(exc, ValueError) else str(exc)
            seconds[i] = time.perf_counter() - start
        return self.predict_features(x, reasons, seconds)

    def predict_features(self, x: np.ndarray, reasons: Sequence[str | None] | None = None,
                         seconds: np.ndarray | None = None) -> list[Prediction]:
        """One prediction per row of a (B, 11) feature matrix (:func:`~xrdframe_hand.features.features`).

        :param reasons: per row, why it has no usable features (None where it has); rows with fewer than
            ``min_peaks`` peaks are answered with the reason too.
        :param seconds: per row, time already spent on it (peak picking, features), seconds.
        """
        model = self.model
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))
        n = len(x)
        reasons = list(reasons) if reasons is not None else [None] * n
        seconds = np.zeros(n) if seconds is None else np.asarray(seconds, dtype=float)
        for i in np.flatnonzero(x[:, -1] < self.params.min_peaks):
            if reasons[i] is None:
                reasons[i] = (f"{int(x[i, -1])} peak(s) between 0 and {TWO_THETA_MAX:g} deg 2theta at Cu "
                              f"K-alpha; at least {self.params.min_peaks} needed")
        usable = np.array([r is None for r in reasons], dtype=bool)
        out: list[Prediction] = []
        start = time.perf_counter()
        probabilities = {}
        if usable.any():
            xs = x[usable].astype(np.float32)
            probabilities = {name: model.estimators[name].predict_proba(xs) for name in LABELS}
        shared = (time.perf_counter() - start) / max(1, int(usable.sum()))
        row = 0
        for i in range(n):
            if not usable[i]:
                out.append(Prediction.empty(reasons[i] or "unusable input", float(seconds[i])))
                continue
            out.append(self._prediction({k: v[row] for k, v in probabilities.items()}, float(seconds[i] + shared)))
            row += 1
        return out

    def _ranked(self, name: str, p: np.ndarray) -> tuple[tuple[Any, float], ...]:
        classes = self.model.estimators[name].classes_
        order = np.argsort(-p, kind="stable")[: self.params.top_k]
        labels = _label_names(name, classes[order])
        return tuple((label, float(p[j])) for label, j in zip(labels, order, strict=True))

    def _space_group_systems(self) -> np.ndarray:
        """The crystal system of each class of the space-group ensemble (cached per model)."""
        model = self.model
        cached = self._systems
        if cached is None or cached[0] is not model:
            classes = model.estimators["space_group"].classes_
            cached = (model, np.array([crystal_system(int(c)) for c in classes]))
            self._systems = cached
        return cached[1]

    def _prediction(self, p: dict[str, np.ndarray], seconds: float) -> Prediction:
        top_k = {"crystal_system": self._ranked("crystal_system", p["crystal_system"]),
                 "extinction_group": self._ranked("extinction_group", p["extinction_group"])}
        system = top_k["crystal_system"][0][0]
        sg = p["space_group"]
        if self.params.restrict_space_group:
            inside = self._space_group_systems() == system
            total = float(sg[inside].sum())
            if total > 0:  # otherwise no group of that system has any vote: leave the space group unrestricted
                sg = np.where(inside, sg, 0.0) / total
        top_k["space_group"] = self._ranked("space_group", sg)
        return Prediction(crystal_system=system, extinction_group=int(top_k["extinction_group"][0][0]),
                          space_group=int(top_k["space_group"][0][0]), top_k=top_k, seconds=seconds)

    # ------------------------------------------------------------------ training

    def estimator(self, seed: int) -> Any:
        """A fresh, unfitted ensemble with this indexer's hyperparameters."""
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        p = self.params
        cls = ExtraTreesClassifier if p.model == "extra_trees" else RandomForestClassifier
        kwargs: dict[str, Any] = {"n_estimators": p.n_estimators, "max_depth": p.max_depth,
                                  "min_samples_leaf": p.min_samples_leaf, "max_leaf_nodes": p.max_leaf_nodes,
                                  "max_features": p.max_features, "n_jobs": p.n_jobs, "random_state": seed}
        if p.bootstrap is not None:
            kwargs["bootstrap"] = p.bootstrap
        return cls(**kwargs)

    def dataset_features(self, dataset: Any, indices: np.ndarray, chain: Any, generator: Any, views: int,
                         progress: Any = None) -> np.ndarray:
        """Features of ``views`` augmented copies of each structure: rows ordered (batch, view, structure)."""
        definition = self.params.definition()
        cutoff = _dataset_cutoff(dataset.wavelength)
        cells = dataset.labels("cell")
        parts = []
        for first in range(0, len(indices), _BATCH):
            chunk = indices[first:first + _BATCH]
            lists = [_truncate(dataset.peaks(int(i)), cutoff) for i in chunk]
            for _ in range(views):
                parts.append(augmented_features(lists, chain, generator, definition, cells[chunk]))
            if progress is not None:
                progress.advance(len(chunk))
        return np.concatenate(parts) if parts else np.zeros((0, len(FEATURE_NAMES)))

    def fit(self, params: Any, context: Any) -> None:
        """Train the three ensembles on a peak dataset and save them into ``context.output`` (see the module
        docstring); ``params`` is the train task's :class:`~xrdframe_tasks.train.TrainParams`."""
        import sklearn
        import skops
        import torch

        from xrdframe.augmentation import AugmentationChain
        from xrdframe.dataset import PeakDataset
        from xrdframe.spec.validation import unstructure

        started = time.perf_counter()
        p = self.params
        dataset = PeakDataset.open(params.data.path)
        views = p.views if p.views is not None else params.trainer.epochs
        operators = [ref.build() for ref in params.augmentations]
        ignored = [ref.name for ref, op in zip(params.augmentations, operators, strict=True)
                   if getattr(op, "stage", None) != "peaks"]
        if ignored:
            context.log.warning("[%s] hand learns from peak lists: augmentations %s (not of stage 'peaks') are "
                                "not used", context.stage, ", ".join(ignored))
        peak_ops = [op for op in operators if getattr(op, "stage", None) == "peaks"]
        chain = AugmentationChain(peak_ops, wavelength=AUGMENT_WAVELENGTH) if peak_ops else None
        train = dataset.split_indices(params.data.train_split)
        if len(train) == 0:
            raise XrdframeError(f"{dataset.root}: split {params.data.train_split!r} has no structure to train on")
        val = dataset.split_indices(params.data.val_split) if params.data.val_split in dataset.split_names \
            else np.zeros(0, dtype=np.int64)
        labels = {"crystal_system": dataset.labels("crystal_system").astype(np.int64),
                  "extinction_group": dataset.labels("extinction_group").astype(np.int64),
                  "space_group": dataset.labels("space_group").astype(np.int64)}

        generator = torch.Generator().manual_seed(int(context.seed))
        bar = context.progress_bar(len(train), f"structures x {views} views")
        x = self.dataset_features(dataset, train, chain, generator, views, bar)
        bar.close()
        order = np.concatenate([np.tile(train[f:f + _BATCH], views) for f in range(0, len(train), _BATCH)])
        seconds_features = time.perf_counter() - started
        context.log.info("[%s] %d feature vectors (%d structures x %d views) in %.0f s", context.stage, len(x),
                         len(train), views, seconds_features)

        seeds = np.random.SeedSequence(int(context.seed)).generate_state(len(LABELS))
        estimators: dict[str, Any] = {}
        fit_seconds: dict[str, float] = {}
        for k, name in enumerate(LABELS):
            t0 = time.perf_counter()
            est = self.estimator(int(seeds[k]))
            est.fit(x.astype(np.float32), labels[name][order])
            _drop_internal_values(est)
            estimators[name] = est
            fit_seconds[name] = time.perf_counter() - t0
            context.log.info("[%s] %s ensemble fitted in %.0f s (%d leaves per tree on average)", context.stage,
                             name, fit_seconds[name], int(np.mean([t.get_n_leaves() for t in est.estimators_])))

        # validation: one augmented view (its own seeded generator) and the clean simulated lists
        validation: dict[str, Any] = {"split": params.data.val_split, "n": int(len(val))}
        if len(val):
            val_generator = torch.Generator().manual_seed(int(context.seed) + 1)
            for kind, ch in (("augmented", chain), ("clean", None)):
                xv = self.dataset_features(dataset, val, ch, val_generator, 1).astype(np.float32)
                validation[kind] = {f"{name}_accuracy": float(np.mean(estimators[name].predict(xv)
                                                                      == labels[name][val])) for name in LABELS}
            context.log.info("[%s] validation accuracy (augmented): %s", context.stage,
                             ", ".join(f"{k} {v:.3f}" for k, v in validation["augmented"].items()))

        model = HandModel(estimators=estimators, definition=p.definition())
        model.meta = {
            "labels": {name: {"codes": [int(c) for c in estimators[name].classes_],
                              "names": _label_names(name, estimators[name].classes_)} for name in LABELS},
            "estimator": {"model": p.model, **{k: v for k, v in estimators["space_group"].get_params().items()
                                               if k in ("n_estimators", "max_depth", "min_samples_leaf",
                                                        "max_leaf_nodes", "max_features", "bootstrap")}},
            "training": {"spec": unstructure(params), "seed": int(context.seed), "dataset": str(dataset.root),
                         "dataset_config": dataset.meta.get("config"), "dataset_wavelength": dataset.wavelength,
                         "n_structures": int(len(train)), "views": int(views), "n_vectors": int(len(x)),
                         "peak_operators": [ref.name for ref, op in zip(params.augmentations, operators,
                                                                        strict=True) if op in peak_ops],
                         "seconds_features": round(seconds_features, 1),
                         "seconds_fit": {k: round(v, 1) for k, v in fit_seconds.items()},
                         "seconds": round(time.perf_counter() - started, 1)},
            "validation": validation,
            "versions": {"xrdframe": __version__, "sklearn": sklearn.__version__, "numpy": np.__version__,
                         "skops": skops.__version__},
        }
        save_model(model, Path(context.output))
        self._model = model
        context.log.info("[%s] hand model written to %s (%.1f MB)", context.stage, context.output,
                         model.meta["bytes"] / 1e6)
