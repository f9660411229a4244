"""The network shared by ``cnn`` and ``difcon``: encoder, optional projector, eight classification heads.

Heads (the paper's section 4.3): crystal system (7 classes), extinction group (101) and one space-group head
per crystal system (2, 13, 59, 68, 25, 27, 36 classes, the groups of that system in number order). Training
reads the space-group head of the *true* crystal system; prediction reads the head of the *predicted* one.
Every head has its own softmax temperature (index 0 crystal system, 1 extinction group, 2-8 the space-group
heads), fitted on the validation split after training and stored with the weights.

Checkpoints are a pair of files: ``NAME.safetensors`` (weights, the temperatures included) and
``NAME.json`` (format, model kind, architecture, input grid, wavelength, training summary).
:func:`load_model` checks both and names the file and what does not match.

>>> sizes = [len(v) for v in SPACE_GROUPS_BY_SYSTEM]
>>> sizes, sum(sizes)
([2, 13, 59, 68, 25, 27, 36], 230)
>>> int(SG_SYSTEM[62]), SPACE_GROUPS_BY_SYSTEM[SG_SYSTEM[62]][SG_INDEX[62]]
(2, 62)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrdframe.augmentation import TwoThetaGrid
from xrdframe.errors import XrdframeError
from xrdframe.symmetry import CRYSTAL_SYSTEMS, space_groups_by_crystal_system, symmetry_labels

__all__ = [
    "FORMAT",
    "N_EXTINCTION_GROUPS",
    "SG_INDEX",
    "SG_SYSTEM",
    "SPACE_GROUPS_BY_SYSTEM",
    "SymmetryNet",
    "build_encoder",
    "export_for_inference",
    "load_model",
    "save_model",
]

FORMAT = "xrdframe-neural/1"
N_EXTINCTION_GROUPS = 101
_BY_SYSTEM = space_groups_by_crystal_system()
#: Space groups of each crystal system (in the order of CRYSTAL_SYSTEMS), number order: the classes of its head.
SPACE_GROUPS_BY_SYSTEM: tuple[tuple[int, ...], ...] = tuple(tuple(_BY_SYSTEM[s]) for s in CRYSTAL_SYSTEMS)
#: (231,) crystal-system index of each space group (entry 0 unused, -1).
SG_SYSTEM = np.full(231, -1, dtype=np.int64)
#: (231,) class index of each space group within its system's head.
SG_INDEX = np.full(231, -1, dtype=np.int64)
for _s, _groups in enumerate(SPACE_GROUPS_BY_SYSTEM):
    for _i, _g in enumerate(_groups):
        SG_SYSTEM[_g], SG_INDEX[_g] = _s, _i
#: (231,) extinction group of each space group.
SG_EXTINCTION = np.array([-1] + [symmetry_labels(g).extinction_group for g in range(1, 231)], dtype=np.int64)
N_HEADS = 2 + len(CRYSTAL_SYSTEMS)


def build_encoder(spec: dict[str, Any]) -> nn.Module:
    """An encoder module from its ``{name, params}`` spec (through the plugin registry)."""
    import xrdframe

    encoder = xrdframe.create("encoder", spec["name"], **spec.get("params", {}))
    if not isinstance(encoder, nn.Module) or not hasattr(encoder, "out_features"):
        raise XrdframeError(f"encoder {spec['name']!r} must be a torch.nn.Module with an 'out_features' attribute")
    return encoder


def _mlp(n_in: int, widths: list[int], final_plain: bool) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    for i, w in enumerate(widths):
        layers.append(nn.Linear(n_in, int(w)))
        if not (final_plain and i == len(widths) - 1):
            layers += [nn.LayerNorm(int(w)), nn.ReLU(inplace=True)]
        n_in = int(w)
    return nn.Sequential(*layers), n_in


class SymmetryNet(nn.Module):
    """Encoder (+ projector) + heads.

    :param config: ``{"encoder": {name, params}, "projector": [widths] (difcon; [] for none),
        "heads_on": "features" | "embedding", "head_hidden": int}``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.encoder = build_encoder(config["encoder"])
        n = int(self.encoder.out_features)
        widths = list(config.get("projector") or [])
        self.projector: nn.Module | None = None
        n_embed = n
        if widths:
            self.projector, n_embed = _mlp(n, widths, final_plain=True)
        self.heads_on = config.get("heads_on", "features")
        if self.heads_on == "embedding" and self.projector is None:
            raise XrdframeError("heads_on 'embedding' needs a projector")
        n_head_in = n_embed if self.heads_on == "embedding" else n
        hidden = int(config.get("head_hidden", 0))
        self.trunk: nn.Module = nn.Identity()
        if hidden:
            self.trunk, n_head_in = _mlp(n_head_in, [hidden], final_plain=False)
        self.cs_head = nn.Linear(n_head_in, len(CRYSTAL_SYSTEMS))
        self.eg_head = nn.Linear(n_head_in, N_EXTINCTION_GROUPS)
        self.sg_heads = nn.ModuleList(nn.Linear(n_head_in, len(g)) for g in SPACE_GROUPS_BY_SYSTEM)
        self.register_buffer("temperature", torch.ones(N_HEADS))

    @staticmethod
    def normalize(profiles: torch.Tensor) -> torch.Tensor:
        """Each profile divided by its largest absolute value (what training and prediction both feed)."""
        scale = profiles.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
        return profiles / scale

    def forward(self, profiles: torch.Tensor, embed: bool = False) -> dict[str, Any]:
        """Logits of every head (and the projector's embedding when ``embed`` or the heads read it)."""
        return self.heads(self.encoder(self.normalize(profiles.float())), embed)

    def heads(self, features: torch.Tensor, embed: bool = False) -> dict[str, Any]:
        """Logits of every head from the encoder's ``features`` (B, out_features), as :meth:`forward`."""
        out: dict[str, Any] = {"features": features}
        if self.projector is not None and (embed or self.heads_on == "embedding"):
            out["embedding"] = self.projector(features)
        h = self.trunk(out["embedding"] if self.heads_on == "embedding" else features)
        out["crystal_system"] = self.cs_head(h)
        out["extinction_group"] = self.eg_head(h)
        out["space_group"] = [head(h) for head in self.sg_heads]
        return out


def head_losses(out: dict[str, Any], cs: torch.Tensor, eg: torch.Tensor, sg: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropies (batch means) of the three labels; the space group through the true system's head."""
    loss_cs = F.cross_entropy(out["crystal_system"].float(), cs)
    loss_eg = F.cross_entropy(out["extinction_group"].float(), eg)
    sg_index = torch.as_tensor(SG_INDEX, device=sg.device)[sg]
    total = out["crystal_system"].new_zeros((), dtype=torch.float32)
    for s, logits in enumerate(out["space_group"]):
        rows = cs == s
        if bool(rows.any()):
            total = total + F.cross_entropy(logits[rows].float(), sg_index[rows], reduction="sum")
        else:  # every head takes part (zero gradient): the same optimizer updates whatever the batch split
            total = total + 0.0 * logits.float().sum()
    return {"crystal_system": loss_cs, "extinction_group": loss_eg, "space_group": total / max(1, cs.numel())}


def head_probabilities(out: dict[str, Any], temperature: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Calibrated probabilities: crystal system (B, 7), extinction group (B, 101), and the joint
    ``p(system) * p(group | system)`` over the 230 space groups (B, 231; column 0 is 0)."""
    t = torch.ones(N_HEADS, device=out["crystal_system"].device) if temperature is None else temperature
    p_cs = torch.softmax(out["crystal_system"].float() / t[0], dim=1)
    p_eg = torch.softmax(out["extinction_group"].float() / t[1], dim=1)
    p_sg = p_cs.new_zeros(p_cs.shape[0], 231)
    for s, logits in enumerate(out["space_group"]):
        cols = torch.as_tensor(SPACE_GROUPS_BY_SYSTEM[s], device=p_sg.device)
        p_sg[:, cols] = p_cs[:, s:s + 1] * torch.softmax(logits.float() / t[2 + s], dim=1)
    return {"crystal_system": p_cs, "extinction_group": p_eg, "space_group": p_sg}


def predicted_labels(probs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crystal system index, extinction group, and space group (the best of the predicted system's head)."""
    cs = probs["crystal_system"].argmax(dim=1)
    eg = probs["extinction_group"].argmax(dim=1)
    mask = torch.as_tensor(SG_SYSTEM, device=cs.device)[None, :] == cs[:, None]
    sg = torch.where(mask, probs["space_group"], torch.full_like(probs["space_group"], -1.0)).argmax(dim=1)
    return cs, eg, sg


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------


def json_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_model(path: str | Path, model: SymmetryNet, info: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors, weights) and its ``.json`` atomically; ``info`` must hold ``model``
    (the indexer name), ``grid`` and ``wavelength``."""
    from safetensors.torch import save_file

    from xrdframe.files import atomic_path, write_json_atomic

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(info, format=FORMAT, config=model.config, temperature=model.temperature.tolist())
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "model": str(info["model"])})
    write_json_atomic(json_path(path), meta)


def read_model_info(path: str | Path) -> dict[str, Any]:
    """The ``.json`` beside a ``.safetensors`` model, checked; errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    meta_path = json_path(path)
    if not path.is_file():
        raise XrdframeError(f"{path}: checkpoint not found (expected a .safetensors file with a .json beside it)")
    if not meta_path.is_file():
        raise XrdframeError(f"{path}: no {meta_path.name} beside it; an xrdframe neural checkpoint is a pair "
                            f"NAME.safetensors + NAME.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise XrdframeError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise XrdframeError(f"{meta_path}: format {got!r}, expected {FORMAT!r} (not an xrdframe neural model)")
    for key in ("model", "config", "grid", "wavelength"):
        if key not in meta:
            raise XrdframeError(f"{meta_path}: key {key!r} missing")
    meta["weights"] = str(path)
    return meta


def load_model(path: str | Path, expect_model: str | None = None) -> tuple[SymmetryNet, dict[str, Any]]:
    """Rebuild the network a checkpoint describes and load its weights (exactly).

    :raises XrdframeError: missing or corrupt files, another model kind, or weights that do not fit the
        architecture (the message lists missing, unexpected and mis-shaped tensors).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_model_info(path)
    weights = Path(meta["weights"])
    if expect_model is not None and meta["model"] != expect_model:
        raise XrdframeError(f"{weights}: a {meta['model']!r} model, not a {expect_model!r} one")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise XrdframeError(f"{weights}: not a readable safetensors file ({exc})") from None
    try:
        model = SymmetryNet(meta["config"])
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad architecture description
        raise XrdframeError(f"{json_path(weights)}: cannot build the network it describes ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} (architecture: {tuple(expected[k].shape)})" for k in expected
              if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if items:
                parts.append(f"{label}: {', '.join(items[:5])}" + (f" and {len(items) - 5} more" if len(items) > 5
                                                                   else ""))
        raise XrdframeError(f"{weights}: weights do not match the architecture in {json_path(weights).name} "
                            f"({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta


def grid_of(meta: dict[str, Any]) -> TwoThetaGrid:
    g = meta["grid"]
    return TwoThetaGrid(start=float(g["start"]), stop=float(g["stop"]), step=float(g["step"]))


def export_for_inference(source: str | Path, target: str | Path) -> Path:
    """Copy a trained model to ``target`` (.safetensors + .json) without what prediction never reads: the
    projector of a ``difcon`` whose heads read the encoder's features (``heads_on: features``). Predictions
    are unchanged; the file shrinks (the shipped DIFCON default: 17.6 MB -> 4.9 MB). The JSON keeps the
    training spec and records the architecture as trained under ``trained_config``."""
    model, meta = load_model(source)
    config = dict(model.config)
    if model.projector is not None and model.heads_on == "features":
        config["projector"] = []
    slim = SymmetryNet(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("projector.")}
    slim.load_state_dict(state, strict=True)
    info = {k: v for k, v in meta.items() if k not in ("weights", "format", "config", "temperature")}
    info["trained_config"] = model.config
    save_model(target, slim, info)
    return Path(target)

