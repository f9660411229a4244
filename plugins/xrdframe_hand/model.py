"""Saving and loading a trained HAND model safely: skops for the trees, JSON for everything else.

A saved model is two files side by side:

* ``model.skops``: a mapping ``{'crystal_system': forest, 'extinction_group': forest, 'space_group': forest}``
  of fitted scikit-learn ensembles, written with :func:`skops.io.dump` (no pickle: loading cannot run code).
  It is loaded with an explicit list of trusted types (:data:`TRUSTED_TYPES`); a file holding any other
  type is refused;
* ``model.json``: the format tag :data:`FORMAT`, the SHA-256 of ``model.skops``, the feature definition,
  the label classes, the estimator settings, the training spec, the versions (xrdframe, scikit-learn,
  numpy, skops) and the validation accuracies.

:func:`load_model` takes either file or the folder holding them (a ``train`` run's output) and raises
:class:`~xrdframe.errors.XrdframeError` naming the file when it is missing, corrupt or not a HAND model.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from xrdframe.dataset import file_sha256
from xrdframe.errors import XrdframeError
from xrdframe.files import atomic_path, write_json_atomic
from xrdframe_hand.features import FeatureDefinition

__all__ = ["FORMAT", "LABELS", "MODEL_FILE", "META_FILE", "TRUSTED_TYPES", "HandModel", "load_model", "save_model"]

FORMAT = "xrdframe-hand/1"
#: The three labels, in the order the ensembles are stored and predicted.
LABELS = ("crystal_system", "extinction_group", "space_group")
MODEL_FILE = "model.skops"
META_FILE = "model.json"
#: Types a HAND ``model.skops`` may hold beyond those skops trusts by default; nothing else is loaded.
TRUSTED_TYPES = (
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
)


@attrs.define(eq=False)
class HandModel:
    """Three fitted ensembles and what describes them.

    :ivar estimators: label name -> fitted classifier whose integer classes are label codes
        (crystal systems as indices into :data:`xrdframe.symmetry.CRYSTAL_SYSTEMS`).
    :ivar definition: the feature definition the ensembles were trained on.
    :ivar meta: the contents of ``model.json``.
    :ivar path: where it was loaded from, if anywhere.
    """

    estimators: dict[str, Any]
    definition: FeatureDefinition
    meta: dict[str, Any] = attrs.field(factory=dict)
    path: Path | None = None


def save_model(model: HandModel, folder: Path, compress: bool = True) -> Path:
    """Write ``model.skops`` then ``model.json`` into ``folder`` (each atomically); return the JSON's path."""
    import skops.io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    with atomic_path(target) as tmp:
        skops.io.dump({name: model.estimators[name] for name in LABELS}, tmp,
                      compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                      compresslevel=9 if compress else None)
    meta = dict(model.meta, format=FORMAT, model_file=MODEL_FILE, sha256=file_sha256(target),
                bytes=target.stat().st_size, features=model.definition.to_dict())
    write_json_atomic(folder / META_FILE, meta)
    model.meta, model.path = meta, target
    return folder / META_FILE


def _files(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / MODEL_FILE, path / META_FILE
    if path.suffix == ".json":
        return path.with_name(MODEL_FILE), path
    return path, path.with_name(META_FILE)


def load_model(path: str | Path) -> HandModel:
    """Load a HAND model from ``model.skops``, ``model.json`` or the folder holding both.

    :raises XrdframeError: naming the file, when it is missing, corrupt, not a HAND model or holds types
        outside :data:`TRUSTED_TYPES`.
    """
    import skops.io

    path = Path(path)
    if not path.exists():
        raise XrdframeError(f"{path}: hand checkpoint not found (expected {MODEL_FILE}, {META_FILE} or a folder "
                            f"holding them, the output of a 'train' run)")
    skops_path, meta_path = _files(path)
    for f in (skops_path, meta_path):
        if not f.is_file():
            raise XrdframeError(f"{f}: not found; a hand checkpoint is {MODEL_FILE} with {META_FILE} beside it")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise XrdframeError(f"{meta_path}: not a hand model description (unreadable JSON: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise XrdframeError(f"{meta_path}: not a hand model (format {found!r}, expected {FORMAT!r})")
    if meta.get("sha256") != file_sha256(skops_path):
        raise XrdframeError(f"{skops_path}: corrupt or replaced (SHA-256 differs from the one in {meta_path.name})")
    try:
        definition = FeatureDefinition.from_dict(meta["features"])
        untrusted = skops.io.get_untrusted_types(file=skops_path)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is not what it claims
        raise XrdframeError(f"{skops_path}: not a readable hand model ({type(exc).__name__}: {exc})") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise XrdframeError(f"{skops_path}: refuses to load types outside the hand model's trusted list: "
                            f"{', '.join(refused)}")
    try:
        estimators = skops.io.load(skops_path, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001
        raise XrdframeError(f"{skops_path}: not a readable hand model ({type(exc).__name__}: {exc})") from None
    if not isinstance(estimators, dict) or set(estimators) != set(LABELS):
        raise XrdframeError(f"{skops_path}: not a hand model (expected the ensembles {', '.join(LABELS)})")
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    for name in LABELS:
        if not isinstance(estimators[name], ExtraTreesClassifier | RandomForestClassifier):
            raise XrdframeError(f"{skops_path}: not a hand model (the {name} model is a "
                                f"{type(estimators[name]).__name__}, expected a forest)")
        classes = getattr(estimators[name], "classes_", None)
        if classes is None or not np.array_equal(np.asarray(classes), np.asarray(meta["labels"][name]["codes"])):
            raise XrdframeError(f"{skops_path}: the {name} ensemble does not match the classes in {meta_path.name}")
    return HandModel(estimators=estimators, definition=definition, meta=meta, path=skops_path)
