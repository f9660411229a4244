"""The augmentation core: wavelength conversion through d-spacings, binning, chain order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO

from xrdframe.augmentation import AugmentationChain, PeakBatch, TwoThetaGrid, convert_wavelength
from xrdframe.diffraction import simulate_peaks

NACL = REPO / "examples" / "structures" / "NaCl.cif"


def test_mo_peaks_binned_at_the_cu_wavelength_fall_at_cu_angles() -> None:
    mo = simulate_peaks(NACL, 0.70930, (0, 120))
    cu = simulate_peaks(NACL, 1.5406, (0, 120))
    chain = AugmentationChain([], TwoThetaGrid(), wavelength=1.5406)
    profile = chain(PeakBatch.from_peak_lists([mo]), torch.Generator().manual_seed(0)).intensity[0]
    # the same bins as the Cu pattern (intensities keep the Mo pattern's own Lorentz-polarization factors)
    assert np.flatnonzero(profile.numpy()).tolist() == sorted(set(np.floor(cu.two_theta / 0.02).astype(int)))
    on_grid = mo.d >= 1.5406 / (2 * np.sin(np.radians(60.0)))  # 2theta <= 120 deg at the Cu wavelength
    assert float(profile.sum()) == pytest.approx(float(mo.intensity[on_grid].sum()), rel=1e-5)
    # Mo reaches d-spacings Cu cannot: those peaks are dropped and counted
    assert chain.dropped_peaks == int(np.sum(mo.d < 1.5406 / 2))
    assert chain.dropped_peaks > 0


def test_convert_wavelength_is_bragg_law() -> None:
    mo = simulate_peaks(NACL, 0.70930, (0, 60))
    batch, dropped = convert_wavelength(PeakBatch.from_peak_lists([mo]), 1.5406)
    reachable = mo.d >= 1.5406 / 2
    assert dropped == int((~reachable).sum()) > 0
    expected = 2 * np.degrees(np.arcsin(1.5406 / (2 * mo.d[reachable])))
    assert batch.mask[0].numpy().tolist() == reachable.tolist()
    np.testing.assert_allclose(batch.two_theta[0].double().numpy()[reachable], expected, atol=1e-4)
    with pytest.raises(ValueError, match="wavelength must be > 0"):
        convert_wavelength(batch, 0.0)


def test_chain_runs_stages_in_order_and_refuses_two_renderers() -> None:
    calls: list[str] = []

    class Op:
        def __init__(self, stage: str, name: str) -> None:
            self.stage, self.name = stage, name

        def __call__(self, batch, *args):
            calls.append(self.name)
            if self.stage == "render":
                from xrdframe.augmentation import ProfileBatch, bin_peaks

                return ProfileBatch(bin_peaks(batch, args[0]), args[0], batch)
            return batch

    chain = AugmentationChain([Op("profile", "c"), Op("render", "r"), Op("peaks", "a"), Op("peaks", "b")])
    chain(PeakBatch.from_peak_lists([simulate_peaks(NACL)]), torch.Generator())
    assert calls == ["a", "b", "r", "c"]
    with pytest.raises(ValueError, match="at most one render operator"):
        AugmentationChain([Op("render", "r1"), Op("render", "r2")])
    with pytest.raises(ValueError, match="stage must be one of"):
        AugmentationChain([Op("sideways", "x")])
