"""Training the neural indexers: one loop for ``cnn`` (static or online) and ``difcon`` (two views).

What it does (issue 7, item 5):

* device ``auto`` (CUDA when present, else CPU); AdamW (no weight decay on biases and normalization
  weights) with a linear warm-up and a cosine decay of the learning rate per step; gradient clipping;
  mixed precision (float16 autocast + gradient scaling) on CUDA only;
* a progress line with loss, accuracies and rate (``context.progress_bar``);
* validation every epoch on the validation split (held-out structures, profiles rendered once with the
  training chain), early stopping on it (``patience`` epochs without improvement of the monitored score);
  the final model is the best epoch's, with its softmax temperatures fitted on the validation split;
* a checkpoint every ``checkpoint_every`` epochs, ``checkpoint/last.safetensors`` written atomically:
  model weights, AdamW state, the best weights so far, and (in its metadata, copied to
  ``checkpoint/last.json``) the spec, epoch, step, sampler and early-stopping state and the log. A re-run on
  the same spec resumes from it; on the CPU it reaches bit for bit the weights an uninterrupted run reaches
  (every batch is a pure function of seed, epoch and batch number; nothing else draws random numbers);
* ``log.csv`` (and TensorBoard scalars under ``tensorboard/`` when ``torch.utils.tensorboard`` imports);
* data parallelism over processes with ``torch.distributed`` (launch with ``torchrun``): every rank takes
  its slice of each global batch, gradients are averaged by DistributedDataParallel, rank 0 writes. In
  ``static`` mode the result equals a one-process run with the same global batch (up to float rounding); in
  ``online`` mode each rank renders only its slice, with its own generator, so the draws differ from a
  one-process run (same distribution). Barlow Twins / NT-Xent embeddings are gathered over ranks, so the
  representation loss sees the global batch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrdframe.augmentation import AugmentationChain, TwoThetaGrid
from xrdframe.dataset import PeakDataset
from xrdframe.errors import XrdframeError
from xrdframe.files import atomic_path, write_json_atomic, write_text_atomic
from xrdframe.loader import PatternLoader
from xrdframe.spec.validation import unstructure
from xrdframe_neural.model import (
    N_HEADS,
    SPACE_GROUPS_BY_SYSTEM,
    SymmetryNet,
    head_losses,
    head_probabilities,
    predicted_labels,
    save_model,
)

__all__ = ["fit", "fit_temperatures", "learning_rate_at"]

LOG_COLUMNS = ("epoch", "step", "lr", "train_loss", "train_cs_acc", "train_eg_acc", "train_sg_acc",
               "train_rep_loss", "val_loss", "val_cs_acc", "val_eg_acc", "val_sg_acc", "samples_per_s",
               "data_share", "seconds")


def _seed(*parts: Any) -> int:
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def learning_rate_at(step: int, base: float, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio * base`` at ``total``.

    >>> [round(learning_rate_at(s, 1.0, 10, 2, 0.0), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return base * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


# ---------------------------------------------------------------------------------------------------------
# distributed helpers
# ---------------------------------------------------------------------------------------------------------


def _distributed(device: torch.device) -> tuple[int, int]:
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _gather(z: torch.Tensor, world: int) -> torch.Tensor:
    """Embeddings of every rank, concatenated in rank order (gradients flow back to this rank's part)."""
    if world == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)


class _RankChain:
    """An augmentation chain rendering only this rank's slice of each batch, with its own generator."""

    _FIELDS = ("two_theta", "intensity", "mask", "hkl", "cell", "broadening")

    def __init__(self, chain: AugmentationChain, rank: int, world: int) -> None:
        self.chain, self.rank, self.world = chain, rank, world

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chain, name)

    def __call__(self, peaks: Any, generator: torch.Generator) -> Any:
        n = peaks.size
        lo, hi = self.rank * n // self.world, (self.rank + 1) * n // self.world
        sub = peaks.evolve(**{f: getattr(peaks, f)[lo:hi] for f in self._FIELDS if getattr(peaks, f) is not None})
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return self.chain(sub, torch.Generator().manual_seed(_seed(seed, self.rank)))


def _device(kind: str) -> torch.device:
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise XrdframeError("device 'cuda' asked for, but torch sees no CUDA device (use 'auto' or 'cpu')")
    return torch.device(kind)


# ---------------------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------------------


def _fit_temperature(logits: torch.Tensor, target: torch.Tensor, iterations: int = 60) -> float:
    """The temperature in [0.05, 20] minimizing the negative log-likelihood, by golden-section search on
    log T (the NLL is convex in 1/T, hence unimodal in log T)."""
    x = logits.double()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(x / math.exp(log_t), target))

    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    with torch.no_grad():
        for _ in range(iterations):
            if fa <= fb:
                hi, b, fb = b, a, fa
                a = hi - ratio * (hi - lo)
                fa = nll(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + ratio * (hi - lo)
                fb = nll(b)
    return float(math.exp((lo + hi) / 2.0))


def fit_temperatures(logits: dict[str, Any], cs: torch.Tensor, eg: torch.Tensor, sg: torch.Tensor,
                     min_count: int = 20) -> torch.Tensor:
    """Temperature scaling (Guo et al. 2017) per head on validation logits: the temperature minimizing the
    negative log-likelihood. A space-group head with fewer than ``min_count`` validation patterns of its
    system gets the temperature fitted on all space-group heads together."""
    from xrdframe_neural.model import SG_INDEX

    t = torch.ones(N_HEADS, dtype=torch.float32)
    if cs.numel() == 0:
        return t
    t[0] = _fit_temperature(logits["crystal_system"], cs)
    t[1] = _fit_temperature(logits["extinction_group"], eg)
    sg_index = torch.as_tensor(SG_INDEX)[sg]
    pooled_logits, pooled_target = [], []
    width = max(len(g) for g in SPACE_GROUPS_BY_SYSTEM)
    for s, head in enumerate(logits["space_group"]):
        rows = cs == s
        if int(rows.sum()) == 0:
            continue
        padded = torch.full((int(rows.sum()), width), -1e4, dtype=torch.float64)
        padded[:, :head.shape[1]] = head[rows].double()
        pooled_logits.append(padded)
        pooled_target.append(sg_index[rows])
    pooled = _fit_temperature(torch.cat(pooled_logits), torch.cat(pooled_target)) if pooled_logits else 1.0
    for s, head in enumerate(logits["space_group"]):
        rows = cs == s
        t[2 + s] = _fit_temperature(head[rows], sg_index[rows]) if int(rows.sum()) >= min_count else pooled
    return t


# ---------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def collect_logits(model: SymmetryNet, loader: PatternLoader, device: torch.device) -> dict[str, Any]:
    """Logits of every head and the labels over a loader (one epoch, in order)."""
    model.eval()
    parts: dict[str, list[Any]] = {"crystal_system": [], "extinction_group": [], "cs": [], "eg": [], "sg": []}
    sg_parts: list[list[torch.Tensor]] = [[] for _ in SPACE_GROUPS_BY_SYSTEM]
    for batch in loader.epoch(0):
        out = model(batch.profiles.to(device))
        parts["crystal_system"].append(out["crystal_system"].float().cpu())
        parts["extinction_group"].append(out["extinction_group"].float().cpu())
        for s, logits in enumerate(out["space_group"]):
            sg_parts[s].append(logits.float().cpu())
        parts["cs"].append(batch.crystal_system.cpu())
        parts["eg"].append(batch.extinction_group.cpu())
        parts["sg"].append(batch.space_group.cpu())
    result: dict[str, Any] = {k: torch.cat(v) for k, v in parts.items()}
    result["space_group"] = [torch.cat(p) for p in sg_parts]
    return result


def metrics_of(logits: dict[str, Any], temperature: torch.Tensor | None = None) -> dict[str, float]:
    """Loss (sum of the three cross-entropies) and accuracies of collected logits."""
    cs, eg, sg = logits["cs"], logits["eg"], logits["sg"]
    if cs.numel() == 0:
        return {"loss": float("nan"), "cs_acc": float("nan"), "eg_acc": float("nan"), "sg_acc": float("nan")}
    losses = head_losses(logits, cs, eg, sg)
    p_cs, p_eg, p_sg = predicted_labels(head_probabilities(logits, temperature))
    return {"loss": float(sum(losses.values())), "cs_acc": float((p_cs == cs).float().mean()),
            "eg_acc": float((p_eg == eg).float().mean()), "sg_acc": float((p_sg == sg).float().mean())}


# ---------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       info: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def _save_checkpoint(directory: Path, model: nn.Module, best: dict[str, torch.Tensor],
                     optimizer: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    optim_tensors, optim_info = _optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    info = dict(info, optimizer=optim_info)
    text = json.dumps(info, default=str)
    with atomic_path(directory / "last.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "xrdframe-neural-checkpoint/1", "state": text})
    write_json_atomic(directory / "last.json", info)  # a readable copy; the safetensors metadata is authoritative


def _load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        info = json.loads(meta["state"])
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is reported and training starts afresh
        raise XrdframeError(f"{path}: damaged checkpoint ({exc}); delete it to train from scratch") from None
    return tensors, info


def _write_log(output: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_COLUMNS})
    write_text_atomic(output / "log.csv", buffer.getvalue())


def plot_log(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and accuracy curves of a training log (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epochs, [r["train_loss"] for r in rows], label="train")
    ax1.plot(epochs, [r["val_loss"] for r in rows], label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("classification loss")
    ax1.legend()
    for key, label in (("cs", "crystal system"), ("eg", "extinction group"), ("sg", "space group")):
        line, = ax2.plot(epochs, [r[f"val_{key}_acc"] for r in rows], label=f"{label} (val)")
        ax2.plot(epochs, [r[f"train_{key}_acc"] for r in rows], ls="--", color=line.get_color())
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (dashed: train)")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------------------


def _accuracy(out: dict[str, Any], cs: torch.Tensor, eg: torch.Tensor, sg: torch.Tensor) -> tuple[int, int, int]:
    with torch.no_grad():
        p_cs, p_eg, p_sg = predicted_labels(head_probabilities({k: (v.detach() if isinstance(v, torch.Tensor) else
                                                                     [x.detach() for x in v])
                                                                 for k, v in out.items()
                                                                 if k in ("crystal_system", "extinction_group",
                                                                          "space_group")}))
    return int((p_cs == cs).sum()), int((p_eg == eg).sum()), int((p_sg == sg).sum())


def fit(name: str, params: Any, train: Any, context: Any) -> SymmetryNet:
    """Train indexer ``name`` (``cnn`` or ``difcon``) with its params and the ``train`` task's params; write
    ``model.safetensors`` (+ ``.json``), ``log.csv``, ``training.png`` and ``checkpoint/`` into
    ``context.output``; return the final (calibrated) network (on every rank)."""
    from torch.nn.parallel import DistributedDataParallel

    from xrdframe_neural.model import SG_SYSTEM  # noqa: F401  (keeps the label tables warm)

    if params.threads:
        torch.set_num_threads(int(params.threads))
    output = Path(context.output)
    trainer = train.trainer
    device = _device(trainer.device)
    rank, world = _distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    main = rank == 0
    use_amp = bool(params.amp) and device.type == "cuda"

    dataset = PeakDataset.open(train.data.path)
    wavelength = float(params.wavelength or dataset.wavelength)
    grid = TwoThetaGrid(float(params.two_theta[0]), float(params.two_theta[1]), float(params.step))
    chain = AugmentationChain([ref.build() for ref in train.augmentations], grid, wavelength)
    train_idx = dataset.split_indices(train.data.train_split)
    val_idx = dataset.split_indices(train.data.val_split)
    if len(train_idx) == 0:
        raise XrdframeError(f"{train.data.path}: split {train.data.train_split!r} is empty")
    difcon = name == "difcon"
    mode = "online" if difcon else params.augment_mode
    batch_size = min(int(trainer.batch_size), len(train_idx))
    if batch_size % world:
        raise XrdframeError(f"trainer.batch_size {batch_size} must be a multiple of the {world} processes")
    cache = output / "cache"
    loader = PatternLoader(dataset, train_idx, _RankChain(chain, rank, world) if (world > 1 and mode == "online")
                           else chain, batch_size=batch_size, mode=mode, views=2 if difcon else 1,
                           seed=context.seed, shuffle=True, drop_last=True, cache_dir=cache,
                           workers=int(params.workers) if mode == "online" else 0)
    val_loader = PatternLoader(dataset, val_idx, chain, batch_size=256, mode="static", seed=_seed("val", context.seed)
                               % 2**31, shuffle=False, cache_dir=cache)
    if main:  # render the static caches once, then the other ranks read them
        if mode == "static":
            loader._static_profiles()
        if len(val_idx):
            val_loader._static_profiles()
    _barrier(world)

    config = params.model_config()
    spec = {"indexer": {"name": name, "params": unstructure(params)}, "data": unstructure(train.data),
            "augmentations": [ref.to_spec() for ref in train.augmentations],
            "trainer": unstructure(trainer), "seed": context.seed}
    fingerprint = hashlib.sha256(json.dumps(
        {k: v for k, v in spec.items() if k != "trainer"} | {"trainer": {k: v for k, v in spec["trainer"].items()
                                                                         if k not in ("epochs", "checkpoint_every")}},
        sort_keys=True, default=str).encode()).hexdigest()

    torch.manual_seed(_seed("init", context.seed) % 2**63)
    model = SymmetryNet(config).to(device)
    rep_loss = params.representation_loss_fn() if difcon else None
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        (decay if p.dim() > 1 and "norm" not in pname else no_decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": float(params.weight_decay)},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=float(trainer.learning_rate))
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * int(trainer.epochs)
    warmup = int(round(float(params.warmup_epochs) * steps_per_epoch))

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_score": None, "best_epoch": -1, "bad_epochs": 0,
                             "finished": False, "stopped_early": False, "log": []}
    best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt_dir = output / "checkpoint"
    loaded = _load_checkpoint(ckpt_dir / "last.safetensors")
    if loaded is not None and loaded[1].get("fingerprint") == fingerprint:
        tensors, info = loaded
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        _restore_optimizer(optimizer, tensors, info["optimizer"])
        state = {k: info.get(k, v) for k, v in state.items()}
        state["finished"] = bool(state["stopped_early"]) or state["epoch"] >= int(trainer.epochs)
        context.log.info("resuming %s from %s (epoch %d done)", name, ckpt_dir / "last.safetensors", state["epoch"])
    elif loaded is not None and main:
        context.log.warning("%s: checkpoint of another configuration; training from scratch",
                            ckpt_dir / "last.safetensors")
    net: nn.Module = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    writer = None
    if main:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(output / "tensorboard"))
        except ImportError:
            context.log.info("tensorboard is not installed: TensorBoard scalars skipped (log.csv is written)")
    weights = params.loss_weights
    rep_weight = float(getattr(params, "representation_weight", 0.0))

    epoch = int(state["epoch"])
    while not state["finished"] and epoch < int(trainer.epochs):
        net.train()
        bar = context.progress_bar(steps_per_epoch * batch_size, f"{name} epoch {epoch + 1}/{trainer.epochs}")
        totals = np.zeros(6)  # loss, rep loss, cs, eg, sg correct, rows
        t_epoch = time.perf_counter()
        t_data = 0.0
        batches = iter(loader.epoch(epoch))
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t_data += time.perf_counter() - t0
            if batch is None:
                break
            n = batch.index.shape[0]
            lo, hi = rank * n // world, (rank + 1) * n // world
            cs, eg, sg = (x[lo:hi].to(device)
                          for x in (batch.crystal_system, batch.extinction_group, batch.space_group))
            profiles = batch.profiles
            if world > 1 and mode == "static":
                profiles = profiles[lo:hi]
            profiles = profiles.to(device, non_blocking=True)
            lr = learning_rate_at(int(state["step"]), float(trainer.learning_rate), total_steps, warmup,
                                  float(params.min_lr_ratio))
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                if difcon:
                    b = profiles.shape[1]
                    out = net(profiles.reshape(2 * b, -1), embed=True)
                    cs2, eg2, sg2 = cs.repeat(2), eg.repeat(2), sg.repeat(2)
                    losses = head_losses(out, cs2, eg2, sg2)
                    z = out["embedding"].float()
                    rep = rep_loss(_gather(z[:b], world), _gather(z[b:], world))
                else:
                    out = net(profiles)
                    cs2, eg2, sg2 = cs, eg, sg
                    losses = head_losses(out, cs, eg, sg)
                    rep = torch.zeros((), device=device)
                loss = sum(float(weights.get(k, 1.0)) * v for k, v in losses.items()) + rep_weight * rep
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if params.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(params.grad_clip))
            scaler.step(optimizer)
            scaler.update()
            state["step"] += 1
            correct = _accuracy(out, cs2, eg2, sg2)
            rows = int(cs2.numel())
            totals += np.array([float(loss.detach()) * rows, float(rep.detach()) * rows, *correct, rows])
            bar.desc = (f"{name} epoch {epoch + 1}/{trainer.epochs} loss {totals[0] / totals[5]:.3f} "
                        f"acc cs/eg/sg {totals[2] / totals[5]:.2f}/{totals[3] / totals[5]:.2f}/"
                        f"{totals[4] / totals[5]:.2f}")
            bar.advance(n)
        bar.close()
        seconds = time.perf_counter() - t_epoch
        val = metrics_of(collect_logits(model, val_loader, device)) if len(val_idx) else \
            {"loss": float("nan"), "cs_acc": float("nan"), "eg_acc": float("nan"), "sg_acc": float("nan")}
        rows_done = max(totals[5], 1)
        row = {"epoch": epoch + 1, "step": int(state["step"]), "lr": lr,
               "train_loss": totals[0] / rows_done, "train_rep_loss": totals[1] / rows_done,
               "train_cs_acc": totals[2] / rows_done, "train_eg_acc": totals[3] / rows_done,
               "train_sg_acc": totals[4] / rows_done, "val_loss": val["loss"], "val_cs_acc": val["cs_acc"],
               "val_eg_acc": val["eg_acc"], "val_sg_acc": val["sg_acc"],
               "samples_per_s": steps_per_epoch * batch_size / max(seconds, 1e-9),
               "data_share": t_data / max(seconds, 1e-9), "seconds": seconds}
        state["log"].append(row)
        score = (-val["loss"] if params.monitor == "loss" else (val["cs_acc"] + val["eg_acc"] + val["sg_acc"]) / 3)
        if not math.isnan(score) and (state["best_score"] is None or score > state["best_score"]):
            state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        epoch += 1
        state["epoch"] = epoch
        if params.patience and state["bad_epochs"] >= int(params.patience):
            state["finished"] = state["stopped_early"] = True
            context.log.info("early stopping after epoch %d (best: epoch %d)", epoch, state["best_epoch"])
        if epoch >= int(trainer.epochs):
            state["finished"] = True
        if main:
            context.log.info("epoch %d: train loss %.4f, val loss %.4f, val acc cs/eg/sg %.3f/%.3f/%.3f, "
                             "%.1f samples/s, data %.0f%%", epoch, row["train_loss"], row["val_loss"],
                             row["val_cs_acc"], row["val_eg_acc"], row["val_sg_acc"], row["samples_per_s"],
                             100 * row["data_share"])
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            _write_log(output, state["log"])
            if state["finished"] or epoch % int(trainer.checkpoint_every) == 0:
                _save_checkpoint(ckpt_dir, model, best, optimizer,
                                 dict(state, fingerprint=fingerprint, spec=spec,
                                      sampler={"seed": context.seed, "next_epoch": epoch, "batch": 0,
                                               "mode": mode, "batch_size": batch_size, "world": world}))
        _barrier(world)
    if writer is not None:
        writer.close()

    # the final model: the best epoch's weights, calibrated on the validation split
    model.load_state_dict(best)
    model.eval()
    temperature = torch.ones(N_HEADS)
    if params.calibrate and len(val_idx):
        logits = collect_logits(model, val_loader, device)
        temperature = fit_temperatures(logits, logits["cs"], logits["eg"], logits["sg"])
    model.temperature.copy_(temperature.to(model.temperature.device))
    final = output / "model.safetensors"
    if main:
        val_final = metrics_of(collect_logits(model, val_loader, device), model.temperature) if len(val_idx) else {}
        log = state["log"]
        info = {"model": name, "grid": attrs.asdict(grid), "wavelength": wavelength, "spec": spec,
                "training": {"epochs_run": int(state["epoch"]), "best_epoch": int(state["best_epoch"]),
                             "validation": val_final, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
                             "samples_per_s": float(np.mean([r["samples_per_s"] for r in log])) if log else None,
                             "data_share": float(np.mean([r["data_share"] for r in log])) if log else None,
                             "seconds": float(sum(r["seconds"] for r in log)), "world_size": world,
                             "device": device.type}}
        import xrdframe

        info["versions"] = {"xrdframe": xrdframe.__version__, "torch": torch.__version__}
        save_model(final, model.cpu(), info)
        model.to(device)
        plot_log(log, output / "training.png", f"{name}: {len(train_idx)} training structures")
    _barrier(world)
    return model
