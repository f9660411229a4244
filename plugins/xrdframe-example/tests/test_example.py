"""Tests of xrdframe-example: the physics of both operators, and that xrdframe finds the installed plugin.

Run them where the distribution is installed (``pip install ./plugins/xrdframe-example``,
or ``tox -e example`` from the xrdframe repository). ``test_installed_plugin_is_discovered``
fails, and never skips, when xrdframe does not find the plugin.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
import torch
import xrdframe
from xrdframe import SpecError
from xrdframe.api import resolve
from xrdframe.augmentation import AugmentationChain, PeakBatch, ProfileBatch, TwoThetaGrid
from xrdframe.distribution import Distribution
from xrdframe.plugin.manager import Registry

from xrdframe_example import AirScatter, AirScatterParams, DetectorSpikes, DetectorSpikesParams

#: The xrdframe source tree this plugin sits in (plugins/xrdframe-example/tests/ -> the repository).
XRDFRAME_REPO = Path(__file__).resolve().parents[3]
NACL = XRDFRAME_REPO / "examples" / "structures" / "NaCl.cif"


def profiles(n: int = 4, grid: TwoThetaGrid | None = None) -> ProfileBatch:
    """``n`` patterns of Gaussian peaks of different heights on ``grid`` (no randomness)."""
    grid = grid or TwoThetaGrid(0.0, 90.0, 0.05)
    x = grid.centers().float()
    centres = torch.tensor([20.0, 31.7, 45.5, 56.4, 75.3])
    heights = torch.arange(1, n + 1, dtype=torch.float32)[:, None] * torch.tensor([10.0, 100.0, 60.0, 20.0, 5.0])
    intensity = (heights[:, :, None] * torch.exp(-0.5 * ((x - centres[:, None]) / 0.08) ** 2)).sum(dim=1)
    peaks = PeakBatch(two_theta=centres.repeat(n, 1), intensity=heights, mask=torch.ones(n, 5, dtype=torch.bool),
                      wavelength=1.5406)
    return ProfileBatch(intensity, grid, peaks)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def registry() -> Registry:
    """A registry of this plugin alone, made from an entry point built here (no installation needed)."""
    ep = importlib.metadata.EntryPoint(name="example", value="xrdframe_example", group="xrdframe")
    return Registry(entry_points=[ep], disabled=[])


# -- air_scatter ------------------------------------------------------------------


def test_air_scatter_is_amplitude_times_max_times_exponential():
    batch = profiles()
    op = AirScatter(AirScatterParams(amplitude=Distribution.fixed(0.1), decay=Distribution.fixed(5.0), cutoff=10.0))
    out = op(batch, gen())
    added = (out.intensity - batch.intensity).double()
    x = batch.grid.centers()
    expected = 0.1 * batch.intensity.amax(dim=1, keepdim=True).double() * torch.exp(-(x - 10.0) / 5.0)
    expected = torch.where(x >= 10.0, expected, torch.zeros_like(expected))
    torch.testing.assert_close(added, expected, rtol=1e-5, atol=1e-4)
    assert torch.all(added[:, x < 10.0] == 0)                      # shadowed by the knife edge / beam stop
    first = int(torch.searchsorted(x, torch.tensor(10.0, dtype=x.dtype)))
    assert torch.allclose(added[:, first], 0.1 * batch.intensity.amax(dim=1).double(), rtol=0.01)


def test_air_scatter_draws_amplitude_and_decay_per_pattern_within_their_laws():
    batch = profiles(n=32)
    op = AirScatter(AirScatterParams(amplitude=Distribution.uniform(0.05, 0.3), decay=Distribution.uniform(2.0, 8.0)))
    added = (op(batch, gen(1)).intensity - batch.intensity).double()
    x = batch.grid.centers()
    # log(I_air) = log(A max) - 2theta / tau: read A and tau back from two bins
    i, j = 10, 110
    tau = (x[j] - x[i]) / torch.log(added[:, i] / added[:, j])
    amplitude = added[:, i] * torch.exp(x[i] / tau) / batch.intensity.amax(dim=1).double()
    assert torch.all((tau > 2.0 - 1e-3) & (tau < 8.0 + 1e-3)), tau
    assert torch.all((amplitude > 0.05 - 1e-4) & (amplitude < 0.3 + 1e-4)), amplitude
    assert len(set(amplitude.round(decimals=4).tolist())) == 32          # one draw per pattern
    rounding = 1e-6 * batch.intensity.amax()                             # float32 sums near the Bragg peaks
    assert torch.all(added[:, 1:] <= added[:, :-1] + rounding)           # rises toward low angle


def test_air_scatter_scales_with_the_pattern():
    batch = profiles()
    op = AirScatter(AirScatterParams())
    small = op(batch, gen(3)).intensity - batch.intensity
    large = op(batch.evolve(intensity=10 * batch.intensity), gen(3)).intensity - 10 * batch.intensity
    torch.testing.assert_close(large, 10 * small, rtol=1e-4, atol=1e-3)


# -- detector_spikes ---------------------------------------------------------------


def test_spikes_fixed_count_and_height_hit_distinct_single_bins():
    batch = profiles(n=8)
    op = DetectorSpikes(DetectorSpikesParams(count=Distribution.fixed(3), height=Distribution.fixed(1.5)))
    added = op(batch, gen()).intensity - batch.intensity
    assert torch.all((added != 0).sum(dim=1) == 3)
    spikes = added[added != 0].reshape(8, 3)
    torch.testing.assert_close(spikes, 1.5 * batch.intensity.amax(dim=1, keepdim=True).expand(8, 3))


def test_spike_counts_follow_their_law():
    batch = profiles(n=200)
    op = DetectorSpikes(DetectorSpikesParams(count=Distribution.parse({"choice": [0, 1, 2, 5]}),
                                             height=Distribution.parse({"log_uniform": [0.5, 2.0]})))
    added = op(batch, gen(2)).intensity - batch.intensity
    counts = (added != 0).sum(dim=1)
    assert set(counts.tolist()) == {0, 1, 2, 5}
    relative = added / batch.intensity.amax(dim=1, keepdim=True)
    assert torch.all(relative[added != 0] >= 0.5 - 1e-5) and torch.all(relative[added != 0] <= 2.0 + 1e-5)


def test_no_spikes_leaves_the_batch_alone():
    batch = profiles()
    out = DetectorSpikes(DetectorSpikesParams(count=Distribution.fixed(0)))(batch, gen())
    assert torch.equal(out.intensity, batch.intensity)


# -- both ----------------------------------------------------------------------------


@pytest.mark.parametrize("op", [AirScatter(AirScatterParams()), DetectorSpikes(DetectorSpikesParams())],
                         ids=["air_scatter", "detector_spikes"])
def test_operators_are_deterministic_and_do_not_modify_their_input(op):
    batch = profiles(n=16)
    before = batch.intensity.clone()
    a, b, c = op(batch, gen(7)), op(batch, gen(7)), op(batch, gen(8))
    assert op.stage == "profile"
    assert torch.equal(a.intensity, b.intensity)
    assert not torch.equal(a.intensity, c.intensity)
    assert torch.equal(batch.intensity, before)
    assert a.intensity.shape == before.shape and a.intensity.dtype == before.dtype


@pytest.mark.parametrize("name", ["air_scatter", "detector_spikes"])
def test_probability_is_the_chance_a_pattern_is_touched(name):
    batch = profiles(n=64)

    def touched(probability: float) -> torch.Tensor:
        op = AirScatter(AirScatterParams(probability=probability)) if name == "air_scatter" else \
            DetectorSpikes(DetectorSpikesParams(count=Distribution.fixed(2), probability=probability))
        return (op(batch, gen(4)).intensity != batch.intensity).any(dim=1)

    assert not touched(0.0).any() and touched(1.0).all()
    assert 10 < int(touched(0.5).sum()) < 54


def test_chain_on_a_simulated_pattern():
    """Both operators in an AugmentationChain on the simulated peaks of NaCl (from the xrdframe repository)."""
    assert NACL.is_file(), f"{NACL} not found: this test runs from the xrdframe source tree"
    peaks = xrdframe.simulate_peaks(NACL, wavelength=1.5406, two_theta_range=(5.0, 90.0))
    batch = PeakBatch.from_peak_lists([peaks, peaks])
    grid = TwoThetaGrid(5.0, 90.0, 0.02)
    ops = [AirScatter(AirScatterParams(amplitude=Distribution.fixed(0.2), decay=Distribution.fixed(4.0), cutoff=5.0)),
           DetectorSpikes(DetectorSpikesParams(count=Distribution.fixed(2)))]
    ideal = AugmentationChain([], grid)(batch, gen()).intensity            # the peaks binned as sticks
    out = AugmentationChain(ops, grid)(batch, gen()).intensity
    assert out.shape == (2, grid.n_bins)
    x = grid.centers()
    air = 0.2 * ideal.amax(dim=1, keepdim=True).double() * torch.exp(-(x - 5.0) / 4.0)
    spikes = (out - ideal).double() - air                                  # what is left once the air is removed
    assert torch.all((spikes.abs() > 1e-3).sum(dim=1) == 2)                # two single-bin spikes per pattern
    assert not torch.equal(out[0], out[1])                                 # drawn per pattern


# -- as xrdframe sees it -------------------------------------------------------------------


def test_plugin_loads(registry):
    info = registry.plugins["example"]
    assert info.status == "ok", info.error
    assert info.components == {"augmentation": ["air_scatter", "detector_spikes"]}


def test_created_as_a_spec_would(registry):
    op = resolve("augmentation", "air_scatter", registry=registry, amplitude={"uniform": [0.1, 0.2]},
                 decay=3.0).build()
    assert isinstance(op, AirScatter)
    assert op.params.amplitude == Distribution.uniform(0.1, 0.2) and op.params.decay == Distribution.fixed(3.0)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("air_scatter", {"amplitude": {"uniform": [-0.1, 0.2]}}, r"\$\.params\.amplitude: must be >= 0"),
    ("air_scatter", {"decay": {"normal": [1.0, 0.5]}}, r"\$\.params\.decay: must be > 0"),
    ("air_scatter", {"cutoff": 200.0}, r"\$\.params\.cutoff: must be in \[0, 180\)"),
    ("detector_spikes", {"hieght": 1.0}, r"did you mean 'height'"),
    ("detector_spikes", {"count": {"poisson": [2]}}, r"unknown distribution 'poisson'"),
])
def test_bad_parameters_are_reported(registry, name, params, message):
    with pytest.raises(SpecError, match=message):
        resolve("augmentation", name, registry=registry, **params)


def test_installed_plugin_is_discovered():
    """The real installation: fails (never skips) when xrdframe does not find the plugin."""
    registry = Registry(disabled=[])  # every installed entry point of group "xrdframe", whatever the environment
    found = [ep.dist.metadata["Name"] for ep in importlib.metadata.entry_points(group="xrdframe", name="example")]
    assert found == ["xrdframe-example"], f"entry point 'example' should be installed once, found in: {found}"
    assert "example" in registry.plugins, (
        "xrdframe did not discover plugin 'example': install the distribution first "
        f"(pip install plugins/xrdframe-example); plugins found: {sorted(registry.plugins)}")
    info = registry.plugins["example"]
    assert info.status == "ok", info.error
    assert (info.distribution, info.version) == ("xrdframe-example", importlib.metadata.version("xrdframe-example"))
    assert info.components == {"augmentation": ["air_scatter", "detector_spikes"]}
    op = xrdframe.create("augmentation", "detector_spikes", count=1)  # through the process-wide registry
    assert isinstance(op, DetectorSpikes) and op.params.count == Distribution.fixed(1)


def test_tutorial_quotes_the_real_files():
    """docs/writing-augmentation-plugin.md quotes these files verbatim: each block after a
    ``<!-- quote: PATH -->`` line must be a part of PATH (relative to the xrdframe repository)."""
    tutorial = XRDFRAME_REPO / "docs" / "writing-augmentation-plugin.md"
    assert tutorial.is_file(), f"{tutorial} not found: this test runs from the xrdframe source tree"
    quotes = re.findall(r"<!-- quote: (\S+) -->\n```[a-z]*\n(.*?)```", tutorial.read_text(), flags=re.S)
    assert len(quotes) >= 8
    for path, block in quotes:
        assert block in (XRDFRAME_REPO / path).read_text(), f"the tutorial's quote of {path} is out of date:\n{block}"
