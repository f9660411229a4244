"""Neural indexers, the parts without training: encoder, heads, losses, calibration, resampling, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from xrdframe_neural.losses import BarlowTwins, BarlowTwinsParams, NtXent, NtXentParams
from xrdframe_neural.model import (
    SG_INDEX,
    SG_SYSTEM,
    SPACE_GROUPS_BY_SYSTEM,
    SymmetryNet,
    export_for_inference,
    head_losses,
    head_probabilities,
    load_model,
    predicted_labels,
    save_model,
)
from xrdframe_neural.resample import convert_two_theta, render_peaks, resample_profile
from xrdframe_neural.trainer import fit_temperatures, learning_rate_at

import xrdframe
from xrdframe.augmentation import TwoThetaGrid
from xrdframe.errors import XrdframeError
from xrdframe.pattern import ObservedPeaks, Pattern
from xrdframe.symmetry import CRYSTAL_SYSTEMS, space_groups_by_crystal_system, symmetry_labels

TINY = {"name": "resnet1d", "params": {"widths": [4, 8], "depth": 1, "stem_width": 4, "kernel": 3}}
GRID = {"start": 5.0, "stop": 65.0, "step": 0.1}


def tiny_net(projector: list[int] | None = None, seed: int = 0) -> SymmetryNet:
    torch.manual_seed(seed)
    return SymmetryNet({"encoder": TINY, "projector": projector or [], "heads_on": "features", "head_hidden": 0})


def save_tiny(path: Path, kind: str = "cnn", projector: list[int] | None = None) -> SymmetryNet:
    net = tiny_net(projector)
    save_model(path, net, {"model": kind, "grid": GRID, "wavelength": 1.5406})
    return net


# ---- encoder ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_resnet1d_shapes_and_residual_blocks(norm: str) -> None:
    encoder = xrdframe.create("encoder", "resnet1d", widths=[4, 8, 16], depth=2, stem_width=4, norm=norm,
                              pooling="avg")
    assert encoder.out_features == 16
    assert encoder(torch.randn(5, 1000)).shape == (5, 16)
    assert encoder(torch.randn(5, 1, 333)).shape == (5, 16)  # any length: global pooling
    blocks = [m for m in encoder.modules() if type(m).__name__ == "_Block"]
    assert len(blocks) == 6 and sum(not isinstance(b.skip, torch.nn.Identity) for b in blocks) == 2
    both = xrdframe.create("encoder", "resnet1d", widths=[4, 8], depth=1, stem_width=4, pooling="avgmax")
    assert both.out_features == 16 and both(torch.randn(2, 300)).shape == (2, 16)


def test_segment_pooling_keeps_where_along_two_theta_a_feature_is() -> None:
    torch.manual_seed(0)
    kwargs = {"widths": [4, 8], "depth": 1, "stem_width": 4}
    segments = xrdframe.create("encoder", "resnet1d", pooling="segments", segments=5, **kwargs).eval()
    assert segments.out_features == 40 and segments(torch.randn(3, 640)).shape == (3, 40)
    x = torch.zeros(2, 640)
    x[0, 100], x[1, 500] = 1.0, 1.0  # the same peak at two 2theta positions, far from the edges
    # global average pooling of the same network sees the two patterns alike (translation invariance) ...
    avg = xrdframe.create("encoder", "resnet1d", pooling="avg", **kwargs).eval()
    avg.load_state_dict(segments.state_dict())
    torch.testing.assert_close(avg(x)[0], avg(x)[1], atol=1e-5, rtol=1e-4)
    # ... the segment means tell them apart, and their mean over the segments is the global average
    f = segments(x)
    assert (f[0] - f[1]).abs().max() > 100 * (avg(x)[0] - avg(x)[1]).abs().max().clamp_min(1e-7)
    torch.testing.assert_close(f.reshape(2, 8, 5).mean(-1), avg(x), atol=1e-6, rtol=1e-5)


def test_group_norm_features_do_not_depend_on_the_batch() -> None:
    encoder = xrdframe.create("encoder", "resnet1d", widths=[4, 8], depth=1, stem_width=4).eval()
    x = torch.randn(6, 400)
    torch.testing.assert_close(encoder(x)[:2], encoder(x[:2]), atol=1e-6, rtol=1e-5)


# ---- heads -----------------------------------------------------------------------------------------------


def test_eight_heads_with_the_sizes_of_the_symmetry_tables() -> None:
    by_system = space_groups_by_crystal_system()
    assert [len(by_system[s]) for s in CRYSTAL_SYSTEMS] == [2, 13, 59, 68, 25, 27, 36]
    net = tiny_net()
    out = net(torch.rand(3, 600))
    assert out["crystal_system"].shape == (3, 7) and out["extinction_group"].shape == (3, 101)
    assert [h.shape[1] for h in out["space_group"]] == [2, 13, 59, 68, 25, 27, 36]
    for g in range(1, 231):
        assert CRYSTAL_SYSTEMS[SG_SYSTEM[g]] == symmetry_labels(g).crystal_system
        assert SPACE_GROUPS_BY_SYSTEM[SG_SYSTEM[g]][SG_INDEX[g]] == g


def fake_logits(cs_best: list[int], sg_boost: dict[int, int]) -> dict:
    b = len(cs_best)
    cs = torch.zeros(b, 7)
    cs[torch.arange(b), torch.tensor(cs_best)] = 5.0
    heads = [torch.zeros(b, len(g)) for g in SPACE_GROUPS_BY_SYSTEM]
    for row, group in sg_boost.items():
        heads[SG_SYSTEM[group]][row, SG_INDEX[group]] = 50.0
    return {"crystal_system": cs, "extinction_group": torch.zeros(b, 101), "space_group": heads}


def test_space_group_comes_from_the_head_of_the_predicted_crystal_system() -> None:
    # row 0: cubic predicted, the monoclinic head is very sure of P2_1/c (14), the cubic head of Fm-3m (225)
    logits = fake_logits([6, 1], {0: 14, 1: 14})
    logits["space_group"][6][0, SG_INDEX[225]] = 3.0
    probs = head_probabilities(logits)
    cs, _, sg = predicted_labels(probs)
    assert cs.tolist() == [6, 1] and sg.tolist() == [225, 14]
    assert torch.allclose(probs["space_group"].sum(1), torch.ones(2))  # a joint distribution over 230 groups
    assert float(probs["space_group"][:, 0].abs().max()) == 0.0


def test_loss_is_the_cross_entropy_of_the_true_systems_head() -> None:
    torch.manual_seed(1)
    logits = {"crystal_system": torch.randn(4, 7), "extinction_group": torch.randn(4, 101),
              "space_group": [torch.randn(4, len(g)) for g in SPACE_GROUPS_BY_SYSTEM]}
    sg = torch.tensor([1, 14, 62, 225])
    cs = torch.as_tensor(SG_SYSTEM)[sg]
    eg = torch.tensor([symmetry_labels(int(g)).extinction_group for g in sg])
    losses = head_losses(logits, cs, eg, sg)
    direct = np.mean([-torch.log_softmax(logits["space_group"][int(cs[i])][i], 0)[SG_INDEX[int(sg[i])]].item()
                      for i in range(4)])
    assert losses["space_group"].item() == pytest.approx(direct, rel=1e-6)
    assert losses["crystal_system"].item() == pytest.approx(F.cross_entropy(logits["crystal_system"], cs).item())


# ---- representation losses -------------------------------------------------------------------------------


def barlow_loop(a: torch.Tensor, b: torch.Tensor, lam: float, eps: float = 1e-5) -> float:
    n, d = a.shape
    a = a.double().numpy()
    b = b.double().numpy()
    za = (a - a.mean(0)) / np.sqrt(a.var(0) + eps)
    zb = (b - b.mean(0)) / np.sqrt(b.var(0) + eps)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[k, i] * zb[k, j] for k in range(n)) / n
            total += (1 - c) ** 2 if i == j else lam * c * c
    return total


def nt_xent_loop(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    z = torch.cat([a, b]).double()
    z = (z / z.norm(dim=1, keepdim=True)).numpy()
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        positive = (i + n) % n2
        sims = [float(z[i] @ z[k]) / t for k in range(n2) if k != i]  # the positive and 2N - 2 negatives
        total += -(float(z[i] @ z[positive]) / t - np.log(np.sum(np.exp(sims))))
    return total / n2


def test_barlow_twins_equals_a_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    loss = xrdframe.create("representation_loss", "barlow_twins", off_diagonal_weight=0.3)
    assert loss(a, b).item() == pytest.approx(barlow_loop(a, b, 0.3), rel=1e-5)


def test_nt_xent_equals_a_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    loss = xrdframe.create("representation_loss", "nt_xent", temperature=0.5)
    assert loss(a, b).item() == pytest.approx(nt_xent_loop(a, b, 0.5), rel=1e-6)


@pytest.mark.parametrize("loss", [BarlowTwins(BarlowTwinsParams()), NtXent(NtXentParams())])
def test_identical_views_cost_less_than_unrelated_ones(loss: object) -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(32, 16, generator=g)
    near = z + 0.01 * torch.randn(32, 16, generator=g)
    other = torch.randn(32, 16, generator=g)
    assert max(loss(z, z), loss(z, near)) < loss(z, other)  # type: ignore[operator]


def test_representation_losses_have_gradients() -> None:
    z = torch.randn(8, 6, requires_grad=True)
    for loss in (BarlowTwins(), NtXent()):
        z.grad = None
        loss(z, z.detach() + 0.1).backward()
        assert z.grad is not None and torch.isfinite(z.grad).all()


# ---- calibration and schedule ------------------------------------------------------------------------------


def test_temperature_scaling_fixes_overconfident_heads() -> None:
    g = torch.Generator().manual_seed(0)
    n = 400
    cs = torch.randint(0, 7, (n,), generator=g)
    # honest logits (right 60 % of the time) made 4x overconfident
    true_logits = torch.randn(n, 7, generator=g)
    right = torch.rand(n, generator=g) < 0.6
    true_logits[right, cs[right]] += 2.0
    logits = {"crystal_system": 4.0 * true_logits, "extinction_group": torch.randn(n, 101, generator=g),
              "space_group": [torch.randn(n, len(s), generator=g) for s in SPACE_GROUPS_BY_SYSTEM]}
    sg = torch.tensor([SPACE_GROUPS_BY_SYSTEM[int(c)][0] for c in cs])
    eg = torch.tensor([symmetry_labels(int(x)).extinction_group for x in sg])
    t = fit_temperatures(logits, cs, eg, sg)
    assert t.shape == (9,) and 3.0 < float(t[0]) < 5.5
    before = F.cross_entropy(logits["crystal_system"], cs)
    after = F.cross_entropy(logits["crystal_system"] / t[0], cs)
    assert after < before
    # calibrated confidence is close to the accuracy
    p = torch.softmax(logits["crystal_system"] / t[0], 1)
    acc = float((p.argmax(1) == cs).float().mean())
    assert abs(float(p.max(1).values.mean()) - acc) < 0.08


def test_warm_up_then_cosine() -> None:
    lrs = [learning_rate_at(s, 1.0, 100, 10, 0.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[-1] < 0.01


# ---- resampling ----------------------------------------------------------------------------------------------


def test_a_pattern_at_another_wavelength_lands_on_the_same_d_spacings() -> None:
    grid = TwoThetaGrid(5.0, 65.0, 0.05)
    d = 2.5
    cu, mo = 1.5406, 0.7093
    tt_cu = 2 * np.degrees(np.arcsin(cu / (2 * d)))
    tt_mo = 2 * np.degrees(np.arcsin(mo / (2 * d)))
    assert convert_two_theta(np.array([tt_mo]), mo, cu)[0] == pytest.approx(tt_cu)
    x = np.arange(2.0, 40.0, 0.007)  # finer and another range than the model's grid
    y = np.exp(-0.5 * ((x - tt_mo) / 0.03) ** 2)
    out = resample_profile(x, y, mo, grid, cu)
    peak = float(grid.centers()[int(np.argmax(out))])
    assert abs(peak - tt_cu) <= grid.step
    # unreachable angles at the target wavelength are dropped, not folded back
    assert np.isnan(convert_two_theta(np.array([170.0]), cu, 2 * cu))[0]


def test_coarse_patterns_are_interpolated_and_the_mean_is_kept() -> None:
    grid = TwoThetaGrid(10.0, 20.0, 0.02)
    x = np.arange(0.0, 40.0, 0.1)
    out = resample_profile(x, np.full_like(x, 7.0), 1.5406, grid, 1.5406)
    np.testing.assert_allclose(out, 7.0, rtol=1e-6)
    part = resample_profile(np.arange(12.0, 15.0, 0.1), np.ones(30), 1.5406, grid, 1.5406)
    assert part[:90].max() == 0.0 and part[-200:].max() == 0.0 and part[150] == pytest.approx(1.0)


def test_bin_means_of_a_linear_profile_and_of_unsorted_points() -> None:
    """y = 2 x + 1 sampled irregularly: the mean over a bin is the value at its centre; shuffled points give
    the same profile."""
    rng = np.random.default_rng(3)
    grid = TwoThetaGrid(10.0, 20.0, 0.5)
    x = np.sort(np.concatenate([[5.0, 25.0], rng.uniform(5.0, 25.0, 300)]))
    out = resample_profile(x, 2 * x + 1, 1.5406, grid, 1.5406)
    np.testing.assert_allclose(out, 2 * grid.centers().numpy() + 1, rtol=1e-5)
    perm = rng.permutation(x.size)
    np.testing.assert_array_equal(resample_profile(x[perm], 2 * x[perm] + 1, 1.5406, grid, 1.5406), out)


# ---- checkpoints -------------------------------------------------------------------------------------------


def test_save_and_load_are_exact(tmp_path: Path) -> None:
    net = save_tiny(tmp_path / "m.safetensors", "difcon", projector=[16, 8])
    loaded, meta = load_model(tmp_path / "m.safetensors", expect_model="difcon")
    assert meta["model"] == "difcon"
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.rand(2, 600)
    net.eval()
    assert torch.equal(net(x)["crystal_system"], loaded(x)["crystal_system"])


def test_the_inference_export_drops_the_projector_and_predicts_the_same(tmp_path: Path) -> None:
    net = save_tiny(tmp_path / "m.safetensors", "difcon", projector=[16, 8])
    export_for_inference(tmp_path / "m.safetensors", tmp_path / "slim.safetensors")
    slim, meta = load_model(tmp_path / "slim.safetensors", expect_model="difcon")
    assert slim.projector is None and meta["trained_config"]["projector"] == [16, 8]
    assert (tmp_path / "slim.safetensors").stat().st_size < (tmp_path / "m.safetensors").stat().st_size
    x = torch.rand(3, 600)
    net.eval()
    a, b = net(x), slim(x)
    for key in ("crystal_system", "extinction_group"):
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(slim.temperature, net.temperature)


def test_bad_checkpoints_name_the_file_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_tiny(path, "cnn")
    with pytest.raises(XrdframeError, match=r"m\.safetensors: a 'cnn' model, not a 'difcon' one"):
        load_model(path, expect_model="difcon")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"]["encoder"]["params"]["widths"] = [4, 16]
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(XrdframeError, match=r"m\.safetensors: weights do not match.*wrong shape: encoder"):
        load_model(path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(XrdframeError, match=r"m\.safetensors: not a readable safetensors file"):
        load_model(path)
    path.with_suffix(".json").write_text("{broken")
    with pytest.raises(XrdframeError, match=r"m\.json: not valid JSON"):
        load_model(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(XrdframeError, match=r"m\.safetensors: no m\.json beside it"):
        load_model(path)
    with pytest.raises(XrdframeError, match=r"nothing\.safetensors: checkpoint not found"):
        load_model(tmp_path / "nothing.safetensors")
    other = tmp_path / "o.safetensors"
    save_tiny(other, "cnn", projector=[8])  # a difcon-shaped network declared without its projector
    meta = json.loads(other.with_suffix(".json").read_text())
    meta["config"]["projector"] = []
    other.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(XrdframeError, match=r"o\.safetensors: weights do not match.*unexpected: projector"):
        load_model(other)


def test_indexer_predicts_from_a_checkpoint_on_any_grid(tmp_path: Path) -> None:
    save_tiny(tmp_path / "m.safetensors", "cnn")
    indexer = xrdframe.create("indexer", "cnn", checkpoint=str(tmp_path / "m.safetensors"), top_k=3)
    x = np.arange(3.0, 80.0, 0.013)
    y = 10 + 100 * np.exp(-0.5 * ((x - 30.0) / 0.05) ** 2)
    patterns = [Pattern(x, y, 1.5406), Pattern(x, y, 0.7093), Pattern(x, y, None),
                ObservedPeaks([20.0, 30.0, 41.0], None, 1.5406), Pattern(x + 200.0, y, 1.5406)]
    batch = indexer.predict_batch(patterns)
    one = [indexer.predict(p) for p in patterns]
    assert [p.crystal_system for p in batch] == [p.crystal_system for p in one]
    first = batch[0]
    assert first.crystal_system in CRYSTAL_SYSTEMS and 0 <= first.extinction_group <= 100
    assert SG_SYSTEM[first.space_group] == CRYSTAL_SYSTEMS.index(first.crystal_system)
    assert [len(v) for v in first.top_k.values()] == [3, 3, 3]
    probs = [p for _, p in first.top_k["crystal_system"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert first.figure_of_merit == pytest.approx(dict(first.top_k["space_group"]).get(first.space_group,
                                                                                        first.figure_of_merit))
    assert batch[2].crystal_system is None and "no wavelength" in batch[2].reason
    assert batch[3].crystal_system is not None
    assert batch[4].crystal_system is None and "range" in batch[4].reason
    with pytest.raises(XrdframeError, match="not a 'difcon' one"):
        xrdframe.create("indexer", "difcon", checkpoint=str(tmp_path / "m.safetensors")).predict(patterns[0])


def test_scans_on_one_grid_are_resampled_together_as_each_alone(tmp_path: Path) -> None:
    """predict_batch resamples patterns measured at the same points and wavelength in one pass; the
    probabilities equal those of one-by-one prediction, also with a NaN intensity and other grids mixed in."""
    save_tiny(tmp_path / "m.safetensors", "cnn")
    indexer = xrdframe.create("indexer", "cnn", checkpoint=str(tmp_path / "m.safetensors"), top_k=4)
    rng = np.random.default_rng(5)
    x = np.arange(3.0, 80.0, 0.013)
    scans = [10 + 100 * np.exp(-0.5 * ((x[:, None] - rng.uniform(10, 70, 6)) / 0.05) ** 2).sum(axis=1)
             for _ in range(4)]
    with_nan = scans[1].copy()
    with_nan[100] = np.nan
    patterns = [Pattern(x, scans[0], 1.5406), Pattern(x, scans[1], 1.5406), Pattern(x[::2], scans[2][::2], 1.5406),
                Pattern(x, with_nan, 1.5406), Pattern(x.copy(), scans[3], 1.5406), Pattern(x, scans[2], 0.7093)]
    batch = indexer.predict_batch(patterns)
    for got, item in zip(batch, patterns, strict=True):
        alone = indexer.predict(item)
        assert got.reason is None and alone.reason is None
        for label in ("crystal_system", "extinction_group", "space_group"):
            assert [k for k, _ in got.top_k[label]] == [k for k, _ in alone.top_k[label]]
            np.testing.assert_allclose([v for _, v in got.top_k[label]], [v for _, v in alone.top_k[label]],
                                       rtol=1e-4, atol=1e-6)


def test_batches_on_worker_threads_predict_as_one_thread_does(tmp_path: Path) -> None:
    """predict_batch and predict_arrays spread batches over ``predict_workers`` threads (one core each): the
    same predictions, in the same order, as batch after batch on one thread; the caller's torch thread count
    is left alone."""
    save_tiny(tmp_path / "m.safetensors", "cnn")
    ckpt = str(tmp_path / "m.safetensors")
    threaded = xrdframe.create("indexer", "cnn", checkpoint=ckpt, predict_batch_size=3, predict_workers=2)
    serial = xrdframe.create("indexer", "cnn", checkpoint=ckpt, predict_batch_size=3, predict_workers=1)
    rng = np.random.default_rng(11)
    x = np.arange(3.0, 80.0, 0.013)
    patterns: list[Pattern | ObservedPeaks] = [
        Pattern(x, 10 + 100 * np.exp(-0.5 * ((x[:, None] - rng.uniform(10, 70, 5)) / 0.05) ** 2).sum(axis=1),
                1.5406) for _ in range(10)]
    patterns[4] = Pattern(x + 200.0, patterns[4].intensity, 1.5406)  # out of range: a reason, not a row
    threads = torch.get_num_threads()
    got, expected = threaded.predict_batch(patterns), serial.predict_batch(patterns)
    assert torch.get_num_threads() == threads
    assert got[4].crystal_system is None and "range" in got[4].reason
    for a, b in zip(got, expected, strict=True):
        assert (a.crystal_system, a.extinction_group, a.space_group) == (b.crystal_system, b.extinction_group,
                                                                        b.space_group)
        for label in ("crystal_system", "extinction_group", "space_group") if a.top_k else ():
            assert [k for k, _ in a.top_k[label]] == [k for k, _ in b.top_k[label]]
            np.testing.assert_allclose([v for _, v in a.top_k[label]], [v for _, v in b.top_k[label]], rtol=1e-5)
    profiles = np.stack([threaded.profile(p) for i, p in enumerate(patterns) if i != 4])
    arrays, reference = threaded.predict_arrays(profiles), serial.predict_arrays(profiles)
    assert np.ptp(reference["crystal_system"], axis=0).max() > 1e-4  # the rows differ: their order is checked
    for key, value in reference.items():
        np.testing.assert_allclose(arrays[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def test_a_peak_list_is_drawn_as_gaussians_at_the_converted_positions() -> None:
    """``render_peaks`` against the Gaussian sum written out over every bin (Mo list drawn on a Cu grid)."""
    grid = TwoThetaGrid(5.0, 90.0, 0.04)
    two_theta_mo = np.array([10.0, 10.03, 20.0, 38.5])  # two overlapping peaks, one near the grid's top at Cu
    intensity = np.array([100.0, 40.0, 7.0, 12.0])
    got = render_peaks(two_theta_mo, intensity, 0.7093, grid, 1.5406, fwhm=0.1)
    x = convert_two_theta(two_theta_mo, 0.7093, 1.5406)
    sigma = 0.1 / 2.354820045
    centers = grid.centers().numpy()
    expected = (intensity[:, None] * np.exp(-0.5 * ((centers[None, :] - x[:, None]) / sigma) ** 2)).sum(axis=0)
    assert got.shape == (grid.n_bins,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)  # the window cuts tails below 4e-6 of a peak
    assert np.argmax(got) == np.argmin(np.abs(centers - x[0]))


def test_bfloat16_prediction_is_the_float32_one_within_its_rounding(tmp_path: Path) -> None:
    """``precision: bfloat16`` runs the encoder in bfloat16 (the probabilities change: it is applied) and the
    heads in float32: probabilities within 0.02 of float32's, and the same labels on most patterns."""
    save_tiny(tmp_path / "m.safetensors", "cnn")
    rng = np.random.default_rng(3)
    centers = np.arange(5.05, 65.0, 0.1)
    profiles = 0.02 + (rng.uniform(0.05, 1.0, (64, 1, 20))
                       * np.exp(-0.5 * ((centers[None, :, None] - rng.uniform(5, 65, (64, 1, 20))) / 0.1) ** 2)
                       ).sum(axis=2)
    full = xrdframe.create("indexer", "cnn", checkpoint=str(tmp_path / "m.safetensors")).predict_arrays(profiles)
    half = xrdframe.create("indexer", "cnn", checkpoint=str(tmp_path / "m.safetensors"),
                           precision="bfloat16").predict_arrays(profiles)
    for key in ("crystal_system", "extinction_group", "space_group"):
        assert half[key].dtype == full[key].dtype
        assert not np.array_equal(half[key], full[key])
        np.testing.assert_allclose(half[key], full[key], atol=0.02)
    assert np.mean(half["cs"] == full["cs"]) >= 0.9
