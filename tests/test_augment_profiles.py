"""Physics of the profile augmentations: pseudo_voigt, background_noise, edge_crop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from xrdframe_augment.profile_operators import BackgroundNoise, EdgeCrop, PseudoVoigt

import xrdframe
from xrdframe.augmentation import AugmentationChain, PeakBatch, ProfileBatch, TwoThetaGrid
from xrdframe.diffraction import PeakList
from xrdframe.distribution import Distribution
from xrdframe.errors import SpecError

NACL = Path(__file__).resolve().parent.parent / "examples" / "structures" / "NaCl.cif"
INSTRUMENT = {"U": 0.01, "V": -0.005, "W": 0.004}  # deg^2


def caglioti(two_theta: float, U: float, V: float, W: float) -> float:  # noqa: N803
    tan = math.tan(math.radians(two_theta / 2.0))
    return math.sqrt(U * tan * tan + V * tan + W)


def single(two_theta: float | list[float], intensity: float = 100.0,
           broadening: float | None = None) -> PeakBatch:
    """One pattern per position, each with one peak."""
    positions = torch.tensor(two_theta if isinstance(two_theta, list) else [two_theta], dtype=torch.float32)
    n = positions.numel()
    return PeakBatch(two_theta=positions[:, None], intensity=torch.full((n, 1), intensity),
                     mask=torch.ones(n, 1, dtype=torch.bool), wavelength=1.5406,
                     broadening=None if broadening is None else torch.full((n, 1), broadening))


def fine_grid(centre: float, half: float = 2.0, step: float = 0.002) -> TwoThetaGrid:
    return TwoThetaGrid(start=centre - half, stop=centre + half, step=step)


def measured_fwhm(profile: torch.Tensor, grid: TwoThetaGrid) -> float:
    """Width at half maximum of a single-peak profile, crossings linearly interpolated."""
    y = profile.double().numpy()
    x = grid.centers().numpy()
    top = int(np.argmax(y))
    half = y[top] / 2.0
    left = top - int(np.argmax(y[top::-1] < half))  # last bin below half before the peak
    right = top + int(np.argmax(y[top:] < half))  # first bin below half after it
    x_left = x[left] + (half - y[left]) * (x[left + 1] - x[left]) / (y[left + 1] - y[left])
    x_right = x[right - 1] + (half - y[right - 1]) * (x[right] - x[right - 1]) / (y[right] - y[right - 1])
    return float(x_right - x_left)


def random_peaks(n_patterns: int, seed: int, low: float = 10.0, high: float = 110.0) -> list[PeakList]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_patterns):
        n = int(rng.integers(20, 60))
        tt = np.sort(rng.uniform(low, high, n))
        d = 1.5406 / (2.0 * np.sin(np.radians(tt / 2.0)))
        out.append(PeakList(two_theta=tt, intensity=rng.uniform(1.0, 100.0, n), hkl=np.zeros((n, 3), dtype=int),
                            d=d, multiplicity=np.ones(n, dtype=int), wavelength=1.5406))
    return out


# ----------------------------------------------------------------------------------------------- pseudo_voigt


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("two_theta", [20.0013, 60.0071, 110.0139])
def test_fwhm_is_caglioti(two_theta: float, eta: float) -> None:
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=eta, asymmetry=0.0, **INSTRUMENT)
    grid = fine_grid(two_theta)
    profile = render(single(two_theta), grid, torch.Generator().manual_seed(0)).intensity[0]
    expected = caglioti(two_theta, **INSTRUMENT)
    assert measured_fwhm(profile, grid) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("asymmetry", [0.0, 0.6, -1.0])
def test_area_is_the_integrated_intensity(eta: float, asymmetry: float) -> None:
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=eta, asymmetry=asymmetry, **INSTRUMENT)
    positions = [15.0, 33.3, 47.77, 88.01, 111.5]
    for grid in (TwoThetaGrid(), TwoThetaGrid(start=5.0, stop=118.0, step=0.005)):
        profile = render(single(positions, intensity=37.5), grid, torch.Generator().manual_seed(1)).intensity
        assert profile.double().sum(dim=1).numpy() == pytest.approx(37.5, rel=1e-3)
        assert bool((profile >= 0).all())


def test_area_with_random_training_parameters() -> None:
    lists = random_peaks(16, seed=3)
    batch = PeakBatch.from_peak_lists(lists)
    render = xrdframe.create("augmentation", "pseudo_voigt")
    profile = render(batch, TwoThetaGrid(), torch.Generator().manual_seed(2)).intensity.double()
    expected = np.array([p.intensity.sum() for p in lists])
    assert profile.sum(dim=1).numpy() == pytest.approx(expected, rel=1e-3)


def test_peak_at_the_grid_edge_keeps_what_falls_on_the_grid() -> None:
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=0.0, asymmetry=0.0, **INSTRUMENT)
    grid = TwoThetaGrid(start=20.0, stop=40.0, step=0.01)
    profile = render(single([20.0, 40.0, 60.0]), grid, torch.Generator().manual_seed(0)).intensity.double()
    assert profile.sum(dim=1).numpy() == pytest.approx([50.0, 50.0, 0.0], rel=1e-2, abs=1e-6)


def test_tails_of_peaks_outside_the_grid_stay_in_their_own_pattern() -> None:
    grid = TwoThetaGrid(start=20.0, stop=40.0, step=0.01)
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=1.0, asymmetry=0.0, U=0.0, V=0.0, W=0.01,
                             window=10.0, max_window=0.5)  # FWHM 0.1 deg, windows of +-0.5 deg = 50 bins
    batch = PeakBatch(two_theta=torch.tensor([[19.55], [0.0], [0.0], [40.45]]), intensity=torch.full((4, 1), 10.0),
                      mask=torch.tensor([[True], [False], [False], [True]]), wavelength=1.5406)
    profile = render(batch, grid, torch.Generator().manual_seed(0)).intensity.double()[[0, 3, 1, 2]]
    assert float(profile[2].abs().sum()) == 0.0 and float(profile[3].abs().sum()) == 0.0
    # a Lorentzian of FWHM 0.1 deg, 0.45 deg from the edge: its share from 0.45 to 0.5 deg out of +-0.5 deg
    inside = (math.atan(2 * 0.5 / 0.1) - math.atan(2 * 0.45 / 0.1)) / (2.0 * math.atan(2 * 0.5 / 0.1))
    assert profile[:2].sum(dim=1).numpy() == pytest.approx(10.0 * inside, rel=0.05)
    low_tail, high_tail = profile[0][profile[0] > 0], profile[1][profile[1] > 0]
    assert len(low_tail) in (4, 5, 6) and len(high_tail) in (4, 5, 6)  # the window's last 0.05 deg
    assert bool((low_tail.diff() < 0).all()) and bool((high_tail.diff() > 0).all())  # falling off inwards


def test_asymmetry_moves_intensity_to_the_expected_side() -> None:
    grid = TwoThetaGrid(start=0.0, stop=120.0, step=0.005)
    x = grid.centers()
    for asymmetry, sign in ((0.5, -1.0), (-0.5, 1.0)):
        render = xrdframe.create("augmentation", "pseudo_voigt", eta=0.3, asymmetry=asymmetry, **INSTRUMENT)
        profile = render(single([25.0, 110.0]), grid, torch.Generator().manual_seed(0)).intensity.double()
        for row, peak, side in ((0, 25.0, sign), (1, 110.0, -sign)):  # the tail flips side above 90 deg
            centroid = float((profile[row] * x).sum() / profile[row].sum())
            assert side * (centroid - peak) > 0.002
            low, high = float(profile[row][x < peak].sum()), float(profile[row][x > peak].sum())
            assert side * (high - low) > 0
    # no asymmetry: the centroid stays at the peak
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=0.3, asymmetry=0.0, **INSTRUMENT)
    profile = render(single(25.0), grid, torch.Generator().manual_seed(0)).intensity.double()[0]
    assert float((profile * x).sum() / profile.sum()) == pytest.approx(25.0, abs=2e-4)


def test_negative_caglioti_square_is_clamped() -> None:
    render = xrdframe.create("augmentation", "pseudo_voigt", U=0.0, V=-0.05, W=0.001, eta=0.5, min_fwhm=0.03)
    grid = fine_grid(100.0)
    profile = render(single(100.0), grid, torch.Generator().manual_seed(0)).intensity[0]
    assert bool(torch.isfinite(profile).all())
    assert float(profile.double().sum()) == pytest.approx(100.0, rel=1e-3)
    assert measured_fwhm(profile, grid) == pytest.approx(0.03, rel=0.03)


def olivero_voigt_fwhm(gauss: float, lorentz: float) -> float:
    """FWHM of a Voigt profile to 0.02 % (Olivero & Longbothum 1977)."""
    return 0.5346 * lorentz + math.sqrt(0.2166 * lorentz ** 2 + gauss ** 2)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_size_broadening_convolves_a_lorentzian(eta: float) -> None:
    two_theta, extra = 50.0, 0.15
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=eta, asymmetry=0.0, **INSTRUMENT)
    grid = fine_grid(two_theta, half=4.0)
    h = caglioti(two_theta, **INSTRUMENT)
    plain = render(single(two_theta), grid, torch.Generator().manual_seed(0)).intensity[0]
    zero = render(single(two_theta, broadening=0.0), grid, torch.Generator().manual_seed(0)).intensity[0]
    assert torch.allclose(plain, zero, rtol=1e-4, atol=1e-6)
    broad = render(single(two_theta, broadening=extra), grid, torch.Generator().manual_seed(0)).intensity[0]
    expected = {0.0: olivero_voigt_fwhm(h, extra), 1.0: h + extra}.get(eta)
    if expected is None:  # the instrumental pseudo-Voigt read as a Voigt (TCH), then its Lorentzian widened
        from xrdframe_augment.profile_operators import tch_split

        g, lo = (float(v) for v in tch_split(torch.tensor([eta], dtype=torch.float64)))
        expected = olivero_voigt_fwhm(g * h, lo * h + extra)
    assert measured_fwhm(broad, grid) == pytest.approx(expected, rel=0.02)
    assert float(broad.double().sum()) == pytest.approx(100.0, rel=1e-3)


def test_latin_hypercube_stratifies_each_parameter() -> None:
    n = 32
    for sampling, stratified in (("latin_hypercube", True), ("independent", False)):
        render = xrdframe.create("augmentation", "pseudo_voigt", sampling=sampling, eta={"uniform": [0.0, 1.0]},
                                 U={"uniform": [0.0, 1.0]})
        draws = render.draw(n, torch.Generator().manual_seed(5))
        for name in ("eta", "U"):
            strata = sorted((draws[name] * n).long().tolist())
            assert (strata == list(range(n))) == stratified


# ----------------------------------------------------------------------------------------------- binning


def test_binning_without_render_conserves_intensity() -> None:
    peaks = xrdframe.simulate_peaks(str(NACL))
    batch = PeakBatch.from_peak_lists([peaks, peaks])
    profile = AugmentationChain([])(batch, torch.Generator().manual_seed(0))
    inside = peaks.intensity[(peaks.two_theta >= 0) & (peaks.two_theta < 120)].sum()
    assert profile.intensity.double().sum(dim=1).numpy() == pytest.approx(inside, rel=1e-5)


# ----------------------------------------------------------------------------------------------- background_noise


def flat_profiles(levels: tuple[float, ...], n: int = 64, grid: TwoThetaGrid | None = None) -> ProfileBatch:
    grid = grid or TwoThetaGrid()
    values = torch.tensor(levels, dtype=torch.float32).repeat_interleave(grid.n_bins // len(levels))
    peaks = single([30.0] * n)
    return ProfileBatch(values.repeat(n, 1), grid, peaks)


ZERO_BACKGROUND = dict(noise=0.0, counting_noise=0.0, background=0.0, decay=0.0, amorphous_probability=0.0)


def test_background_noise_with_zero_amplitudes_is_the_identity() -> None:
    lists = random_peaks(4, seed=7)
    chain = AugmentationChain([xrdframe.create("augmentation", "pseudo_voigt")])
    profile = chain(PeakBatch.from_peak_lists(lists), torch.Generator().manual_seed(0))
    same = xrdframe.create("augmentation", "background_noise", **ZERO_BACKGROUND)(profile,
                                                                                  torch.Generator().manual_seed(1))
    assert torch.equal(same.intensity, profile.intensity)


def test_white_and_counting_noise_have_the_requested_sd() -> None:
    batch = flat_profiles((100.0, 25.0))
    half = batch.grid.n_bins // 2
    white = xrdframe.create("augmentation", "background_noise", **{**ZERO_BACKGROUND, "noise": 0.05})
    residual = (white(batch, torch.Generator().manual_seed(0)).intensity - batch.intensity).double()
    assert float(residual.std()) == pytest.approx(5.0, rel=0.02)  # 0.05 of the maximum, at every level
    assert abs(float(residual.mean())) < 0.05
    counting = xrdframe.create("augmentation", "background_noise", **{**ZERO_BACKGROUND, "counting_noise": 0.1})
    residual = (counting(batch, torch.Generator().manual_seed(0)).intensity - batch.intensity).double()
    # sd = 0.1 sqrt(I M): 10 at I = M = 100 (100 counts), 5 at I = 25 (25 counts)
    assert float(residual[:, :half].std()) == pytest.approx(10.0, rel=0.02)
    assert float(residual[:, half:].std()) == pytest.approx(5.0, rel=0.02)


def test_background_hump_and_decay_are_where_and_as_high_as_drawn() -> None:
    batch = flat_profiles((0.0, 0.0), n=8)
    batch.intensity[:, 3000] = 100.0  # one line: the maximum M = 100
    x = batch.grid.centers().float()
    hump = xrdframe.create("augmentation", "background_noise", **{
        **ZERO_BACKGROUND, "amorphous_probability": 1.0, "amorphous_position": 25.0, "amorphous_fwhm": 10.0,
        "amorphous_amplitude": 0.2})
    added = hump(batch, torch.Generator().manual_seed(0)).intensity - batch.intensity
    assert torch.allclose(added[0], 20.0 * torch.exp(-4 * math.log(2) * ((x - 25.0) / 10.0) ** 2), atol=1e-4)
    decay = xrdframe.create("augmentation", "background_noise", **{**ZERO_BACKGROUND, "decay": 0.3,
                                                                    "decay_width": 5.0})
    added = decay(batch, torch.Generator().manual_seed(0)).intensity - batch.intensity
    assert torch.allclose(added[0], 30.0 * torch.exp(-x / 5.0), atol=1e-4)
    smooth = xrdframe.create("augmentation", "background_noise", **{**ZERO_BACKGROUND, "background": 0.1})
    added = smooth(batch, torch.Generator().manual_seed(0)).intensity - batch.intensity
    assert torch.allclose(added.amax(dim=1), torch.full((8,), 10.0), rtol=1e-4)
    assert torch.allclose(added.amin(dim=1), torch.zeros(8), atol=1e-4)
    assert float(added.diff(dim=1).abs().max()) < 0.1  # smooth: no jumps from bin to bin


def test_background_noise_output_is_non_negative() -> None:
    noisy = xrdframe.create("augmentation", "background_noise", noise=0.2, counting_noise=0.3)
    out = noisy(flat_profiles((0.0, 1.0)), torch.Generator().manual_seed(0)).intensity
    assert bool((out >= 0).all()) and float(out.std()) > 0


# ----------------------------------------------------------------------------------------------- edge_crop


def zero_runs_touch_the_ends(before: torch.Tensor, after: torch.Tensor) -> bool:
    introduced = ((after == 0) & (before != 0)).numpy()
    for row_after, row_new in zip(after.numpy(), introduced, strict=True):
        nonzero = np.flatnonzero(row_after)
        first, last = (nonzero[0], nonzero[-1]) if nonzero.size else (len(row_after), -1)
        if row_new[first:last + 1].any():  # a new zero between the first and last kept bins
            return False
    return True


def test_edge_crop_zeros_only_the_ends_and_keeps_the_middle() -> None:
    grid = TwoThetaGrid()
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(64, grid.n_bins, generator=generator) + 0.1
    values[:, 2000:2100] = 0.0  # zeros already in the middle stay as they are
    batch = ProfileBatch(values, grid, single([30.0] * 64))
    crop = xrdframe.create("augmentation", "edge_crop")
    out = crop(batch, torch.Generator().manual_seed(1)).intensity
    assert zero_runs_touch_the_ends(values, out)
    x = grid.centers()
    kept = out != 0
    assert torch.equal(out[kept], values[kept])
    first = torch.stack([x[row.nonzero()[0, 0]] for row in kept])
    last = torch.stack([x[row.nonzero()[-1, 0]] for row in kept])
    assert float(first.min()) >= 0.0 and float(first.max()) <= 10.0 + grid.step
    assert float(last.min()) >= 90.0 - grid.step and float(last.max()) <= 120.0
    assert float(first.std()) > 1.0 and float(last.std()) > 3.0  # cut angles drawn per pattern
    assert torch.equal(out[:, (x >= 10.0) & (x < 90.0)], values[:, (x >= 10.0) & (x < 90.0)])


def test_edge_crop_at_fixed_angles() -> None:
    grid = TwoThetaGrid()
    batch = ProfileBatch(torch.ones(2, grid.n_bins), grid, single([30.0, 40.0]))
    out = xrdframe.create("augmentation", "edge_crop", low=5.0, high=100.0)(batch, torch.Generator()).intensity
    x = grid.centers()
    assert torch.equal(out[0] != 0, (x >= 5.0) & (x < 100.0))


# ----------------------------------------------------------------------------------------------- chain, specs


def full_chain() -> AugmentationChain:
    return AugmentationChain([xrdframe.create("augmentation", name)
                              for name in ("edge_crop", "pseudo_voigt", "background_noise")])


def test_chain_is_reproducible_bit_for_bit() -> None:
    peaks = xrdframe.simulate_peaks(str(NACL))
    batch = PeakBatch.from_peak_lists([peaks, *random_peaks(7, seed=11)])
    first = full_chain()(batch, torch.Generator().manual_seed(42)).intensity
    again = full_chain()(batch, torch.Generator().manual_seed(42)).intensity
    other = full_chain()(batch, torch.Generator().manual_seed(43)).intensity
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert bool(torch.isfinite(first).all()) and bool((first >= 0).all())


def test_components_build_through_create() -> None:
    for name, cls in (("pseudo_voigt", PseudoVoigt), ("background_noise", BackgroundNoise),
                      ("edge_crop", EdgeCrop)):
        assert isinstance(xrdframe.create("augmentation", name), cls)
    render = xrdframe.create("augmentation", "pseudo_voigt", eta=0.25, W={"log_uniform": [0.001, 0.01]},
                             sampling="independent")
    assert render.params.eta == Distribution.fixed(0.25)
    assert render.params.W == Distribution("log_uniform", (0.001, 0.01))
    assert render.stage == "render"


@pytest.mark.parametrize(("name", "params", "path"), [
    ("pseudo_voigt", {"W": {"uniform": [-1, 0]}}, "$.params.W"),
    ("pseudo_voigt", {"U": -0.01}, "$.params.U"),
    ("pseudo_voigt", {"eta": {"normal": [0.5, 0.2]}}, "$.params.eta"),
    ("pseudo_voigt", {"asymmetry": 1.5}, "$.params.asymmetry"),
    ("pseudo_voigt", {"window": 0.0}, "$.params.window"),
    ("pseudo_voigt", {"sampling": "sobol"}, "$.params.sampling"),
    ("background_noise", {"noise": {"uniform": [-0.1, 0.1]}}, "$.params.noise"),
    ("background_noise", {"amorphous_probability": 2.0}, "$.params.amorphous_probability"),
    ("edge_crop", {"low": {"uniform": [0, 50]}, "high": {"uniform": [40, 120]}}, "$.params.high"),
])
def test_invalid_params_are_spec_errors_with_their_path(name: str, params: dict, path: str) -> None:
    with pytest.raises(SpecError) as info:
        xrdframe.api.resolve("augmentation", name, **params)
    assert path in str(info.value)


def test_negative_v_is_allowed() -> None:
    xrdframe.api.resolve("augmentation", "pseudo_voigt", V={"uniform": [-0.05, 0.01]})
