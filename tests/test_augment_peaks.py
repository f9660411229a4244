"""Physics of the peak-stage augmentation operators (plugin ``augment``, module ``peak_operators``).

Batches are built from the peak lists of the example structures, at Cu K-alpha1.
Statistical tests use a fixed seed and tolerances of 5 standard errors.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import xrdframe
from xrdframe.api import resolve
from xrdframe.augmentation import PeakBatch
from xrdframe.errors import SpecError
from xrdframe.structure import read_structure

STRUCTURES = Path(__file__).resolve().parent.parent / "examples" / "structures"
CU_KA1, CU_KA2 = 1.540593, 1.544427
NAMES = ("zero_shift", "peak_position_noise", "peak_crop", "intensity_noise", "impurity_peaks", "kalpha2",
         "preferred_orientation", "sample_displacement", "crystallite_size")


@pytest.fixture(scope="module")
def examples() -> dict[str, tuple[xrdframe.PeakList, tuple[float, ...]]]:
    out = {}
    for path in sorted(STRUCTURES.glob("*.cif")):
        structure = read_structure(path)
        out[path.stem] = (xrdframe.simulate_peaks(structure, wavelength=CU_KA1), structure.cell)
    return out


def make_batch(examples: dict, names: list[str] | None = None, repeat: int = 1) -> PeakBatch:
    names = names or sorted(examples)
    chosen = [examples[n] for n in names] * repeat
    return PeakBatch.from_peak_lists([p for p, _ in chosen], cells=[c for _, c in chosen])


@pytest.fixture(scope="module")
def batch(examples: dict) -> PeakBatch:
    return make_batch(examples)


@pytest.fixture(scope="module")
def big_batch(examples: dict) -> PeakBatch:
    return make_batch(examples, repeat=40)  # 280 patterns, 8960 peaks


def op(name: str, **params):
    return xrdframe.create("augmentation", name, **params)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- positions

def test_zero_shift_moves_every_peak_by_the_shift_and_leaves_padding(batch: PeakBatch) -> None:
    out = op("zero_shift", shift=0.05)(batch, gen())
    expected = batch.two_theta + torch.tensor(0.05, dtype=torch.float32)
    assert torch.equal(out.mask, batch.mask)
    assert torch.equal(out.two_theta[batch.mask], expected[batch.mask])
    assert torch.equal(out.two_theta[~batch.mask], batch.two_theta[~batch.mask])
    assert torch.equal(out.intensity, batch.intensity) and torch.equal(out.hkl, batch.hkl)


def test_zero_shift_random_shift_is_one_value_per_pattern_within_its_range(big_batch: PeakBatch) -> None:
    out = op("zero_shift", shift={"uniform": [-0.1, 0.1]})(big_batch, gen(3))
    delta = torch.where(big_batch.mask, out.two_theta.double() - big_batch.two_theta.double(), math.nan)
    per_pattern = torch.nanmean(delta, dim=1)
    assert float((delta - per_pattern[:, None]).nan_to_num().abs().max()) < 2e-5  # float32 rounding of 2theta
    assert float(per_pattern.abs().max()) <= 0.1 + 2e-5 and float(per_pattern.std()) > 0.03


def test_probability_zero_leaves_every_operator_idle(batch: PeakBatch) -> None:
    for name in NAMES:
        out = op(name, probability=0.0)(batch, gen())
        assert torch.equal(out.two_theta[:, : batch.two_theta.shape[1]], batch.two_theta), name
        assert torch.equal(out.intensity[:, : batch.intensity.shape[1]], batch.intensity), name
        assert int(out.mask.sum()) == int(batch.mask.sum()), name


def test_probability_half_touches_about_half_of_the_patterns(big_batch: PeakBatch) -> None:
    out = op("zero_shift", shift=0.05, probability=0.5)(big_batch, gen(1))
    moved = (out.two_theta != big_batch.two_theta).any(dim=1).double().mean()
    assert abs(float(moved) - 0.5) < 5 * math.sqrt(0.25 / big_batch.size)


def test_position_noise_has_the_requested_sd(big_batch: PeakBatch) -> None:
    out = op("peak_position_noise", sigma=0.01)(big_batch, gen(2))
    assert torch.equal(out.mask, big_batch.mask)
    delta = (out.two_theta.double() - big_batch.two_theta.double())[big_batch.mask]
    n = delta.numel()
    # Gaussian: the sample sd has standard error sd / sqrt(2 n), the mean sd / sqrt(n); float32 rounding of
    # 2theta (< 4e-6 degrees) is negligible against 0.01.
    assert abs(float(delta.std()) - 0.01) < 5 * 0.01 / math.sqrt(2 * n)
    assert abs(float(delta.mean())) < 5 * 0.01 / math.sqrt(n)


def test_position_noise_sd_is_drawn_per_pattern(big_batch: PeakBatch) -> None:
    out = op("peak_position_noise", sigma={"uniform": [0.0, 0.02]})(big_batch, gen(2))
    delta = torch.where(big_batch.mask, out.two_theta.double() - big_batch.two_theta.double(), 0.0)
    rms = (delta.pow(2).sum(1) / big_batch.mask.sum(1)).sqrt()
    assert float(rms.min()) < 0.004 and float(rms.max()) > 0.016


def test_sample_displacement_shift_is_minus_2_s_cos_theta_over_r(batch: PeakBatch) -> None:
    out = op("sample_displacement", displacement=0.1, radius=240.0)(batch, gen())
    tt = batch.two_theta.double().numpy()[batch.mask.numpy()]
    expected = np.degrees(-2.0 * 0.1 * np.cos(np.radians(tt / 2.0)) / 240.0)
    got = (out.two_theta.double() - batch.two_theta.double()).numpy()[batch.mask.numpy()]
    assert np.abs(got - expected).max() < 1e-5  # float32 2theta: half an ulp is 3.8e-6 degrees below 128
    assert got[np.argmin(tt)] < got[np.argmax(tt)] < 0  # s > 0: down-shifts, largest at low angles


def test_shifted_peaks_leaving_the_range_are_dropped() -> None:
    small = PeakBatch(two_theta=torch.tensor([[0.02, 50.0, 179.99]]), intensity=torch.tensor([[10.0, 100.0, 5.0]]),
                      mask=torch.tensor([[True, True, True]]), wavelength=CU_KA1)
    down = op("zero_shift", shift=-0.05)(small, gen())
    assert down.mask.tolist() == [[False, True, True]] and float(down.intensity[0, 0]) == 0.0
    up = op("zero_shift", shift=0.05)(small, gen())
    assert up.mask.tolist() == [[True, True, False]] and float(up.two_theta[0, 2]) == 0.0


# --------------------------------------------------------------------------- cropping

def test_crop_keeps_exactly_the_peaks_inside_the_cuts(batch: PeakBatch) -> None:
    out = op("peak_crop", low=20.0, high=60.0)(batch, gen())
    inside = batch.mask & (batch.two_theta >= 20.0) & (batch.two_theta <= 60.0)
    assert torch.equal(out.mask, inside)
    assert torch.equal(out.two_theta[inside], batch.two_theta[inside])
    assert float(out.intensity[~inside].abs().sum()) == 0.0 and int(out.hkl[~inside].abs().sum()) == 0


def test_crop_with_default_laws_keeps_the_middle(big_batch: PeakBatch) -> None:
    out = op("peak_crop")(big_batch, gen(5))  # low in [0, 10], high in [90, 120]
    kept = out.two_theta[out.mask]
    middle = big_batch.mask & (big_batch.two_theta >= 10.0) & (big_batch.two_theta <= 90.0)
    assert bool((out.mask | ~middle).all())
    assert float(kept.min()) >= 0.0 and float(kept.max()) <= 120.0
    assert int(out.mask.sum()) < int(big_batch.mask.sum())


# --------------------------------------------------------------------------- intensities

def test_intensity_noise_preserves_the_mean(big_batch: PeakBatch) -> None:
    out = op("intensity_noise", sigma=0.1)(big_batch, gen(4))
    ratio = (out.intensity.double() / big_batch.intensity.double())[big_batch.mask]
    n = ratio.numel()
    # ratio = 1 + 0.1 N(0, 1); clamping at 0 needs a 10-sigma draw: the mean's standard error is 0.1 / sqrt(n)
    assert abs(float(ratio.mean()) - 1.0) < 5 * 0.1 / math.sqrt(n)
    assert abs(float(ratio.std()) - 0.1) < 5 * 0.1 / math.sqrt(2 * n)
    assert float(out.intensity.min()) >= 0.0 and torch.equal(out.two_theta, big_batch.two_theta)


def test_intensity_noise_never_goes_negative(batch: PeakBatch) -> None:
    out = op("intensity_noise", sigma=2.0)(batch, gen(4))
    assert float(out.intensity.min()) == 0.0  # some clamped, none below


def test_impurity_peaks_count_position_and_intensity_bounds(batch: PeakBatch) -> None:
    out = op("impurity_peaks", count=3, min_fraction=0.25, detection_limit=0.0)(batch, gen(6))
    width = batch.two_theta.shape[1]
    assert out.two_theta.shape == (batch.size, width + 3) and out.hkl.shape == (batch.size, width + 3, 3)
    assert torch.equal(out.two_theta[:, :width], batch.two_theta) and torch.equal(out.mask[:, :width], batch.mask)
    extra = slice(width, None)
    assert bool(out.mask[:, extra].all()) and int(out.hkl[:, extra].abs().sum()) == 0
    weakest = torch.where(batch.mask, batch.intensity, math.inf).amin(1, keepdim=True)
    low = torch.where(batch.mask, batch.two_theta, math.inf).amin(1, keepdim=True)
    high = torch.where(batch.mask, batch.two_theta, -math.inf).amax(1, keepdim=True)
    intensity, position = out.intensity[:, extra], out.two_theta[:, extra]
    assert bool((intensity >= 0.25 * weakest * (1 - 1e-6)).all() and (intensity <= weakest * (1 + 1e-6)).all())
    assert bool((position >= low - 1e-4).all() and (position <= high + 1e-4).all())


def test_impurity_peaks_stay_below_the_weakest_visible_peak(big_batch: PeakBatch) -> None:
    out = op("impurity_peaks", count={"choice": [0, 1, 2, 3]})(big_batch, gen(7))  # detection limit 1 %
    width = big_batch.two_theta.shape[1]
    counts = out.mask[:, width:].sum(1)
    assert set(counts.tolist()) == {0, 1, 2, 3}
    strongest = big_batch.intensity.amax(1, keepdim=True)
    visible = big_batch.mask & (big_batch.intensity >= 0.01 * strongest)
    weakest = torch.where(visible, big_batch.intensity, math.inf).amin(1, keepdim=True)
    extra = out.intensity[:, width:]
    added = out.mask[:, width:]
    assert bool((extra[added] <= weakest.expand_as(extra)[added] * (1 + 1e-6)).all())
    assert bool((extra[added] >= 0.25 * weakest.expand_as(extra)[added] * (1 - 1e-6)).all())
    assert bool((extra[added] >= 0.0025 * strongest.expand_as(extra)[added]).all())  # above the 1 % floor / 4
    assert float(extra[~added].abs().sum()) == 0.0


def test_impurity_peaks_in_a_given_range_and_with_broadening(batch: PeakBatch) -> None:
    broadened = op("crystallite_size", size=500.0)(batch, gen())
    out = op("impurity_peaks", count=2, two_theta=[30.0, 40.0])(broadened, gen(8))
    width = batch.two_theta.shape[1]
    assert out.broadening.shape == out.two_theta.shape and float(out.broadening[:, width:].abs().sum()) == 0.0
    assert bool(((out.two_theta[:, width:] >= 30.0) & (out.two_theta[:, width:] <= 40.0)).all())


def test_kalpha2_companions_sit_at_the_bragg_angles_of_lambda2(batch: PeakBatch, examples: dict) -> None:
    out = op("kalpha2", ratio=0.5)(batch, gen())
    width = batch.two_theta.shape[1]
    mask = batch.mask.numpy()
    tt1 = batch.two_theta.double().numpy()
    d = np.divide(CU_KA1, 2.0 * np.sin(np.radians(tt1 / 2.0)), out=np.ones_like(tt1), where=mask)  # via d
    tt2 = 2.0 * np.degrees(np.arcsin(np.clip(CU_KA2 / (2.0 * d), 0, 1)))
    got = out.two_theta[:, width:].double().numpy()
    assert np.array_equal(out.mask[:, width:].numpy(), mask)
    assert np.abs(got[mask] - tt2[mask]).max() < 1e-4
    assert np.all(got[mask] > tt1[mask])  # lambda2 > lambda1
    ratio = out.intensity[:, width:].double().numpy()[mask] / batch.intensity.double().numpy()[mask]
    assert np.allclose(ratio, 0.5, rtol=1e-6)
    assert torch.equal(out.hkl[:, width:], batch.hkl)
    # e.g. Si (111) near 28.44 degrees: the doublet splits by about 0.07 degrees
    si = sorted(examples).index("Si")
    assert 0.06 < float(out.two_theta[si, width] - out.two_theta[si, 0]) < 0.08


def test_kalpha2_drops_companions_beyond_180_degrees() -> None:
    small = PeakBatch(two_theta=torch.tensor([[40.0, 179.0]]), intensity=torch.tensor([[100.0, 20.0]]),
                      mask=torch.tensor([[True, True]]), wavelength=CU_KA1)
    out = op("kalpha2", ratio=0.5)(small, gen())
    assert out.mask.tolist() == [[True, True, True, False]] and float(out.intensity[0, 3]) == 0.0


def test_kalpha2_needs_a_k_alpha1_batch_unless_wavelengths_are_given(examples: dict) -> None:
    mean = PeakBatch.from_peak_lists([xrdframe.simulate_peaks(STRUCTURES / "Si.cif", wavelength=1.5418)])
    with pytest.raises(ValueError, match="not Cu K-alpha1"):
        op("kalpha2")(mean, gen())
    out = op("kalpha2", ratio=0.5, wavelengths=[0.70930, 0.71359])(mean, gen())  # ratio of Mo lines applied
    sin1 = np.sin(np.radians(mean.two_theta[0].double().numpy() / 2.0))
    expected = 2.0 * np.degrees(np.arcsin(sin1 * 0.71359 / 0.70930))
    assert np.abs(out.two_theta[0, mean.two_theta.shape[1]:].double().numpy() - expected).max() < 1e-4


# --------------------------------------------------------------------------- preferred orientation

def _by_hkl(batch: PeakBatch, row: int) -> dict[tuple[int, ...], int]:
    return {tuple(h): j for j, h in enumerate(batch.hkl[row].tolist()) if batch.mask[row, j]}


def test_march_dollase_with_r_one_changes_nothing(batch: PeakBatch) -> None:
    out = op("preferred_orientation", r=1.0, directions=None)(batch, gen())
    assert torch.equal(out.intensity, batch.intensity)


def test_march_dollase_platelets_enhance_00l_over_h00(examples: dict) -> None:
    rutile = make_batch(examples, ["TiO2_rutile"])  # tetragonal, a = 4.5937, c = 2.9587
    r = 0.6
    out = op("preferred_orientation", r=r, directions=[[0, 0, 1]])(rutile, gen())
    index = _by_hkl(rutile, 0)
    factor = (out.intensity[0].double() / rutile.intensity[0].double()).tolist()
    assert factor[index[(0, 0, 2)]] == pytest.approx(r ** -3, rel=1e-5)  # along [001]: r^-3, enhanced
    assert factor[index[(2, 0, 0)]] == pytest.approx(r ** 1.5, rel=1e-5)  # perpendicular: r^(3/2), reduced
    assert factor[index[(1, 1, 0)]] == pytest.approx(r ** 1.5, rel=1e-5)
    # one oblique reflection, (1 0 1), computed independently in Cartesian reciprocal space
    a, c = 4.5937, 2.9587
    q = np.array([1 / a, 0.0, 1 / c])
    cos2 = (q[2] / np.linalg.norm(q)) ** 2
    assert factor[index[(1, 0, 1)]] == pytest.approx((r**2 * cos2 + (1 - cos2) / r) ** -1.5, rel=1e-5)
    needles = op("preferred_orientation", r=1.5, directions=[[0, 0, 1]])(rutile, gen())
    assert float(needles.intensity[0, index[(0, 0, 2)]]) < float(rutile.intensity[0, index[(0, 0, 2)]])
    assert float(needles.intensity[0, index[(2, 0, 0)]]) > float(rutile.intensity[0, index[(2, 0, 0)]])


def test_march_dollase_in_a_hexagonal_cell_matches_cartesian_reciprocal_vectors(examples: dict) -> None:
    zno = make_batch(examples, ["ZnO_zincite"])
    a, c, r = 3.2498, 5.2066, 0.8
    out = op("preferred_orientation", r=r, directions=[[1, 0, 0]])(zno, gen())
    direct = np.array([[a, 0, 0], [-a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
    recip = np.linalg.inv(direct).T  # rows a*, b*, c*: a_i . a*_j = delta_ij
    p = np.array([1, 0, 0]) @ recip
    for hkl, j in _by_hkl(zno, 0).items():
        q = np.array(hkl) @ recip
        cos2 = (q @ p) ** 2 / ((q @ q) * (p @ p))
        expected = (r**2 * cos2 + (1 - cos2) / r) ** -1.5
        assert float(out.intensity[0, j] / zno.intensity[0, j]) == pytest.approx(expected, rel=1e-5), hkl


def test_march_dollase_leaves_impurities_and_needs_hkl_and_cell(batch: PeakBatch) -> None:
    dirty = op("impurity_peaks", count=2)(batch, gen(9))
    out = op("preferred_orientation", r=0.5, directions=None)(dirty, gen(9))
    width = batch.two_theta.shape[1]
    assert torch.equal(out.intensity[:, width:], dirty.intensity[:, width:])
    assert not torch.equal(out.intensity[:, :width], dirty.intensity[:, :width])
    with pytest.raises(ValueError, match="cell"):
        op("preferred_orientation")(batch.evolve(cell=None), gen())


# --------------------------------------------------------------------------- broadening

def test_scherrer_broadening_is_k_lambda_over_l_cos_theta(batch: PeakBatch) -> None:
    out = op("crystallite_size", size=1000.0, k=0.9)(batch, gen())
    tt = batch.two_theta.double().numpy()
    mask = batch.mask.numpy()
    expected = np.degrees(0.9 * CU_KA1 / (1000.0 * np.cos(np.radians(tt / 2.0))))
    assert np.allclose(out.broadening.double().numpy()[mask], expected[mask], rtol=1e-5, atol=0)
    assert float(out.broadening.double().numpy()[~mask].sum()) == 0.0
    twice = op("crystallite_size", size=1000.0, k=0.9)(out, gen())  # widths add up
    assert np.allclose(twice.broadening.double().numpy()[mask], 2 * expected[mask], rtol=1e-5)


# --------------------------------------------------------------------------- seeds, factories, specs

def _everything() -> list:
    return [op(name) for name in ("preferred_orientation", "kalpha2", "crystallite_size", "sample_displacement",
                                  "zero_shift", "peak_position_noise", "intensity_noise", "impurity_peaks",
                                  "peak_crop")]


def _run(ops: list, batch: PeakBatch, seed: int) -> PeakBatch:
    g = gen(seed)
    for o in ops:
        batch = o(batch, g)
    return batch


def test_same_seed_same_batch_bit_for_bit_and_another_seed_differs(batch: PeakBatch) -> None:
    ops = _everything()
    assert all(o.stage == "peaks" for o in ops)
    first, again, other = _run(ops, batch, 11), _run(ops, batch, 11), _run(ops, batch, 12)
    for field in ("two_theta", "intensity", "mask", "hkl", "broadening"):
        assert torch.equal(getattr(first, field), getattr(again, field)), field
    assert first.cell is batch.cell and first.wavelength == batch.wavelength
    assert first.two_theta.shape != other.two_theta.shape or not torch.equal(first.two_theta, other.two_theta)


def test_every_operator_through_create_and_in_a_chain(batch: PeakBatch) -> None:
    from xrdframe.augmentation import AugmentationChain

    chain = AugmentationChain(_everything(), wavelength=CU_KA1)
    profile = chain(batch, gen(13))
    assert profile.intensity.shape == (batch.size, chain.grid.n_bins) and float(profile.intensity.sum()) > 0


@pytest.mark.parametrize(("name", "params", "path", "words"), [
    ("peak_position_noise", {"sigma": {"uniform": [-1, 1]}}, "$.params.sigma", ">= 0"),
    ("peak_position_noise", {"sigma": {"gauss": [0, 1]}}, "$.params.sigma", "unknown distribution"),
    ("intensity_noise", {"sigma": {"normal": [0.05, 0.02]}}, "$.params.sigma", "reaches -0.03"),
    ("zero_shift", {"probability": 1.5}, "$.params.probability", "[0, 1]"),
    ("peak_crop", {"low": 50, "high": {"uniform": [40, 60]}}, "$.params.high", "above every low cut"),
    ("peak_crop", {"low": {"uniform": [-5, 5]}}, "$.params.low", "[0, 180]"),
    ("impurity_peaks", {"min_fraction": 0}, "$.params.min_fraction", "(0, 1]"),
    ("impurity_peaks", {"count": {"uniform": [3, 1]}}, "$.params.count", "low must be <= high"),
    ("impurity_peaks", {"two_theta": [40, 30]}, "$.params.two_theta", "min < max"),
    ("preferred_orientation", {"r": {"uniform": [0, 1]}}, "$.params.r", "> 0"),
    ("preferred_orientation", {"directions": [[0, 0, 0]]}, "$.params.directions", "not a direction"),
    ("crystallite_size", {"size": -100}, "$.params.size", "> 0"),
    ("sample_displacement", {"radius": 0}, "$.params.radius", "> 0"),
    ("kalpha2", {"wavelengths": [1.54, -1]}, "$.params.wavelengths", "> 0"),
])
def test_bad_parameters_are_spec_errors_with_their_path(name: str, params: dict, path: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve("augmentation", name, **params)
    text = str(info.value)
    assert path in text and words in text, text
