"""Peak picking: positions within 0.01 degree on synthetic and augmentation-rendered profiles, K-alpha2 doublets,
degenerate input, and the shared measured patterns against their known cells."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import pytest

from xrdframe.errors import XrdframeError
from xrdframe.pattern import ObservedPeaks, Pattern, read_pattern
from xrdframe.peak_picking import (
    CU_KALPHA1,
    CU_KALPHA2,
    PeakPickingParams,
    pick_peaks,
    reflection_two_theta,
    snip_background,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "experimental"

TRUE_POSITIONS = np.array([15.3, 22.17, 28.9, 29.45, 36.02, 47.5, 55.55, 63.1])
TRUE_AREAS = np.array([30.0, 100.0, 60.0, 25.0, 45.0, 20.0, 35.0, 15.0])


def pseudo_voigt(x: np.ndarray, position: float, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt, degrees^-1."""
    u = (x - position) / fwhm
    lorentz = 2.0 / (math.pi * fwhm) / (1.0 + 4.0 * u * u)
    gauss = 2.0 * math.sqrt(math.log(2.0) / math.pi) / fwhm * np.exp(-4.0 * math.log(2.0) * u * u)
    return eta * lorentz + (1.0 - eta) * gauss


def profile(positions: np.ndarray, areas: np.ndarray, *, step: float = 0.02, counts: float = 4000.0,
            kalpha2: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts of pseudo-Voigt peaks (Caglioti-like widths) on a sloping background with a low-angle decay."""
    x = np.arange(10.0, 70.0, step)
    fwhm = lambda t: np.sqrt(0.01 * np.tan(np.radians(t / 2)) ** 2 - 0.002 * np.tan(np.radians(t / 2)) + 0.006)  # noqa: E731
    mean = 60.0 + 0.5 * (70.0 - x) + 300.0 * np.exp(-x / 5.0)
    for position, area in zip(positions, areas, strict=True):
        mean = mean + counts * area / 100.0 * pseudo_voigt(x, position, fwhm(position), 0.4)
        if kalpha2:
            position2 = 2.0 * np.degrees(np.arcsin(CU_KALPHA2 / CU_KALPHA1 * np.sin(np.radians(position / 2))))
            mean = mean + kalpha2 * counts * area / 100.0 * pseudo_voigt(x, position2, fwhm(position2), 0.4)
    return x, np.random.default_rng(seed).poisson(mean).astype(float)


def test_synthetic_pseudo_voigt_sum_with_poisson_noise() -> None:
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS)
    peaks = pick_peaks(Pattern(x, y, wavelength=0.7093))
    assert isinstance(peaks, ObservedPeaks)
    assert len(peaks) == TRUE_POSITIONS.size, peaks.note
    np.testing.assert_allclose(peaks.two_theta, TRUE_POSITIONS, atol=0.01)
    assert np.all(peaks.sigma > 0) and np.all(peaks.sigma < 0.01)
    # integrated intensities in proportion to the true areas (within 15 %)
    ratio = peaks.intensity / TRUE_AREAS
    assert np.ptp(ratio) / ratio.mean() < 0.15
    assert "no K-alpha2 handling" in peaks.note and "candidates" in peaks.note


def test_uncertainties_are_realistic() -> None:
    """Over seeds, the scatter of a fitted position is of the order of its reported standard uncertainty."""
    errors, sigmas = [], []
    for seed in range(6):
        x, y = profile(TRUE_POSITIONS, TRUE_AREAS, counts=1500.0, seed=seed)
        peaks = pick_peaks(Pattern(x, y, wavelength=0.7093))
        assert len(peaks) == TRUE_POSITIONS.size
        errors.append(peaks.two_theta - TRUE_POSITIONS)
        sigmas.append(peaks.sigma)
    z = np.concatenate(errors) / np.concatenate(sigmas)
    assert 0.4 < np.std(z) < 2.5


def test_cu_kalpha_doublets_give_kalpha1_positions() -> None:
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS, kalpha2=0.5, seed=1)
    peaks = pick_peaks(Pattern(x, y, wavelength=1.5406))  # kalpha2 'auto': on for a lab Cu wavelength
    assert len(peaks) == TRUE_POSITIONS.size, peaks.note  # no spurious K-alpha2 peaks
    np.testing.assert_allclose(peaks.two_theta, TRUE_POSITIONS, atol=0.01)
    assert "K-alpha1 + 0.5 x K-alpha2" in peaks.note and peaks.wavelength == 1.5406
    # a pattern labelled with the weighted Cu K-alpha mean: K-alpha1 positions, and the wavelength becomes K-alpha1
    mean = pick_peaks(Pattern(x, y, wavelength=1.5418))
    np.testing.assert_allclose(mean.two_theta, TRUE_POSITIONS, atol=0.01)
    assert mean.wavelength == CU_KALPHA1 and "K-alpha mean" in mean.note
    # without doublet handling, high-angle K-alpha2 lines show up as extra peaks and positions are biased
    plain = pick_peaks(Pattern(x, y, wavelength=1.5406), PeakPickingParams(kalpha2=False))
    assert len(plain) > TRUE_POSITIONS.size


def test_kalpha1_only_lab_pattern_is_recognised() -> None:
    """A monochromated (K-alpha1 only) pattern at 1.5406: 'auto' sees that single lines fit better."""
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS, seed=2)
    peaks = pick_peaks(Pattern(x, y, wavelength=1.5406))
    assert "fit better as single K-alpha1 lines" in peaks.note
    np.testing.assert_allclose(peaks.two_theta, TRUE_POSITIONS, atol=0.01)
    forced = pick_peaks(Pattern(x, y, wavelength=1.5406), PeakPickingParams(kalpha2=True))
    assert "doublets" in forced.note


def test_kalpha2_follows_metadata() -> None:
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS)
    single = pick_peaks(Pattern(x, y, wavelength=1.5406, metadata={"kalpha2_present": False}))
    assert "K-alpha1 only" in single.note
    np.testing.assert_allclose(single.two_theta, TRUE_POSITIONS, atol=0.01)
    with pytest.raises(XrdframeError, match="wavelength"):
        pick_peaks(Pattern(x, y), PeakPickingParams(kalpha2=True))


def test_augmentation_chain_profile() -> None:
    """A profile rendered by the project's own chain (pseudo_voigt without asymmetry, K-alpha2 companions,
    background and counting noise): K-alpha1 positions within 0.01 degree for peaks above 3 % of the strongest."""
    torch = pytest.importorskip("torch")
    from xrdframe_augment.peak_operators import KAlpha2, KAlpha2Params
    from xrdframe_augment.profile_operators import (
        BackgroundNoise,
        BackgroundNoiseParams,
        PseudoVoigt,
        PseudoVoigtParams,
    )

    from xrdframe.augmentation import AugmentationChain, PeakBatch, TwoThetaGrid
    from xrdframe.diffraction import simulate_peaks
    from xrdframe.distribution import Distribution

    structure = REPO / "examples" / "structures" / "Al2O3_corundum.cif"
    peaks = simulate_peaks(structure, wavelength=CU_KALPHA1, two_theta_range=(10.0, 90.0))
    grid = TwoThetaGrid(10.0, 90.0, 0.02)
    chain = AugmentationChain([
        KAlpha2(KAlpha2Params(ratio=Distribution.fixed(0.5))),
        PseudoVoigt(PseudoVoigtParams(asymmetry=Distribution.fixed(0.0))),
        BackgroundNoise(BackgroundNoiseParams(noise=Distribution.fixed(0.002), counting_noise=Distribution.fixed(0.01),
                                              amorphous_probability=0.0)),
    ], grid=grid, wavelength=CU_KALPHA1)
    rendered = chain(PeakBatch.from_peak_lists([peaks]), torch.Generator().manual_seed(0))
    pattern = Pattern(grid.centers().numpy(), rendered.intensity[0].double().numpy(), wavelength=CU_KALPHA1)
    picked = pick_peaks(pattern)
    # peaks above 3 % of the strongest with no other peak within 0.25 degree (2 FWHM: a weaker shoulder that makes
    # no maximum of its own is not separated; see the module docstring)
    gaps = np.abs(peaks.two_theta[:, None] - peaks.two_theta[None, :]) + np.eye(len(peaks)) * 1e9
    isolated = np.min(np.where(peaks.intensity[None, :] > 0.5, gaps, 1e9), axis=1) > 0.25
    strong = peaks.two_theta[(peaks.intensity > 3.0) & isolated & (peaks.two_theta > 11.0) & (peaks.two_theta < 89.0)]
    assert strong.size >= 12
    for position in strong:
        assert np.min(np.abs(picked.two_theta - position)) < 0.01, (position, picked.two_theta, picked.note)
    # no K-alpha2 ghosts and no noise peaks among peaks above 1 % of the strongest: every picked peak is near a
    # true K-alpha1 peak (within 0.1 degree: an unresolved pair is fitted as one peak in between)
    strongest = picked.two_theta[picked.intensity >= 0.01 * picked.intensity.max()]
    to_kalpha1 = np.min(np.abs(strongest[:, None] - peaks.two_theta[None, :]), axis=1)
    companions = 2.0 * np.degrees(np.arcsin(CU_KALPHA2 / CU_KALPHA1 * np.sin(np.radians(peaks.two_theta / 2))))
    to_kalpha2 = np.min(np.abs(strongest[:, None] - companions[None, :]), axis=1)
    assert np.all(to_kalpha1 < 0.1), strongest[to_kalpha1 >= 0.1]
    assert not np.any((to_kalpha2 < 0.02) & (to_kalpha1 > 0.05)), strongest


@pytest.mark.parametrize("intensity", [np.zeros(500), np.full(500, 37.0), np.linspace(10, 20, 500)])
def test_flat_patterns_give_no_peaks(intensity: np.ndarray) -> None:
    peaks = pick_peaks(Pattern(np.linspace(5, 60, 500), intensity, wavelength=1.5406))
    assert len(peaks) == 0 and "no peaks" in peaks.note
    assert peaks.intensity is not None and peaks.sigma is not None


def test_degenerate_input_never_crashes() -> None:
    assert "only 3 points" in pick_peaks(Pattern([1.0, 2.0, 3.0], [1.0, 5.0, 1.0])).note
    assert "do not match" in pick_peaks(Pattern([1.0, 2.0], [1.0])).note
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS)
    y[100:110] = np.nan
    peaks = pick_peaks(Pattern(x, y, wavelength=0.7093))
    assert "10 non-finite points ignored" in peaks.note and len(peaks) == TRUE_POSITIONS.size
    noise = np.random.default_rng(3).poisson(100.0, size=3000).astype(float)
    assert len(pick_peaks(Pattern(np.linspace(5, 65, 3000), noise))) <= 2  # pure noise: (almost) nothing


def test_max_peaks_range_and_options() -> None:
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS)
    pattern = Pattern(x, y, wavelength=0.7093)
    top = pick_peaks(pattern, PeakPickingParams(max_peaks=3))
    np.testing.assert_allclose(top.two_theta, [22.17, 28.9, 36.02], atol=0.01)  # the three strongest, by 2theta
    assert "kept the 3 strongest of 8" in top.note
    inside = pick_peaks(pattern, PeakPickingParams(two_theta_range=(20.0, 40.0)))
    np.testing.assert_allclose(inside.two_theta, TRUE_POSITIONS[(TRUE_POSITIONS > 20) & (TRUE_POSITIONS < 40)],
                               atol=0.01)
    for params in (PeakPickingParams(background="als"), PeakPickingParams(fwhm=0.1, smoothing_width=0)):
        other = pick_peaks(pattern, params)
        np.testing.assert_allclose(other.two_theta, TRUE_POSITIONS, atol=0.01)
    rough = pick_peaks(pattern, PeakPickingParams(refine=False, prominence=6.0))  # no significance test
    np.testing.assert_allclose(rough.two_theta, TRUE_POSITIONS, atol=0.03)
    with pytest.raises(ValueError, match="kalpha2"):
        PeakPickingParams(kalpha2="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two_theta_range"):
        PeakPickingParams(two_theta_range=(50.0, 10.0))


def test_params_from_a_spec() -> None:
    """Specs (YAML) build the parameters through the project's structuring, with clear problems."""
    from xrdframe.spec.validation import structure

    params, problems = structure({"kalpha2": False, "two_theta_range": [5, 60], "max_peaks": 30}, PeakPickingParams)
    assert not problems and params.kalpha2 is False and params.two_theta_range == (5.0, 60.0)
    _, problems = structure({"kalpha2": "yes", "background": "snp"}, PeakPickingParams)
    assert len(problems) >= 1 and "did you mean 'snip'" in " ".join(map(str, problems))


def test_nonuniform_grid_is_resampled() -> None:
    x, y = profile(TRUE_POSITIONS, TRUE_AREAS, step=0.01)
    keep = np.sort(np.random.default_rng(0).choice(x.size, size=x.size * 2 // 3, replace=False))
    peaks = pick_peaks(Pattern(x[keep], y[keep], wavelength=0.7093))
    assert "resampled" in peaks.note
    np.testing.assert_allclose(peaks.two_theta, TRUE_POSITIONS, atol=0.01)


def test_snip_background_under_peaks() -> None:
    x = np.linspace(0, 10, 1001)
    background = 100 + 10 * x
    y = background + 1000 * np.exp(-0.5 * ((x - 5) / 0.05) ** 2)
    estimate = snip_background(y, 20)
    assert np.max(np.abs(estimate - background)[50:-50]) < 3.0


def test_speed_50k_points() -> None:
    positions = np.sort(np.random.default_rng(5).uniform(11, 69, 150))
    x, y = profile(positions, np.full(150, 20.0), step=0.0012)
    start = time.perf_counter()
    peaks = pick_peaks(Pattern(x, y, wavelength=0.7093))
    assert time.perf_counter() - start < 10.0
    assert len(peaks) > 100


def match_fraction(two_theta: np.ndarray, reflections: np.ndarray, tolerance: float = 0.05) -> float:
    """Fraction of positions within ``tolerance`` of a reflection after the best zero shift in +-0.15 degree."""
    best = 0
    for zero in np.arange(-0.15, 0.1501, 0.0025):
        distance = np.min(np.abs(two_theta[:, None] + zero - reflections[None, :]), axis=1)
        best = max(best, int(np.sum(distance <= tolerance)))
    return best / two_theta.size


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent (a fresh clone): no measured patterns")
@pytest.mark.parametrize("name", ["g2_PbSO4_xray.xy", "g2_FAP.xy", "g2_Quinoli_3-aminoquinoline.xy"])
def test_gsas2_tutorial_peaks_match_known_cells(name: str) -> None:
    path = SHARED / "gsas2_tutorials" / name
    row = next(r for r in csv.DictReader(open(path.parent / "index.csv")) if r["path"] == name)
    pattern = read_pattern(path)
    peaks = pick_peaks(pattern)
    assert len(peaks) >= 15, peaks.note
    cell = [float(row[k]) for k in ("a", "b", "c", "alpha", "beta", "gamma")]
    reflections = reflection_two_theta(cell, peaks.wavelength, float(pattern.two_theta[-1]) + 1.0,
                                       int(row["space_group"]))
    assert match_fraction(peaks.two_theta[:15], reflections) == 1.0
