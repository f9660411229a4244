"""xrdframe-example: two detector artefacts the built-in augmentations do not produce.

* ``air_scatter``: the rise of the background toward low angle that X-rays
  scattered by the air in the beam path give;
* ``detector_spikes``: single-bin spikes ("zingers") from cosmic rays and
  other stray events on an area detector.

Both act at stage ``profile``: each is a callable
``(ProfileBatch, torch.Generator) -> ProfileBatch``, vectorised over the
batch, whose random parameters are drawn per pattern from
:class:`xrdframe.distribution.Distribution` laws with the generator it is
given, so a seed gives the same batch bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from xrdframe import Component, param
from xrdframe.distribution import Distribution
from xrdframe.plugin import hookimpl

if TYPE_CHECKING:  # torch is imported when an operator runs: `xrdframe plugins` and `check` stay fast
    import torch
    from xrdframe.augmentation import ProfileBatch

__all__ = ["AirScatter", "AirScatterParams", "DetectorSpikes", "DetectorSpikesParams", "xrdframe_augmentations"]


# -- parameter validators: they run when a spec is checked, before anything is built

def _law_text(law: Distribution) -> str:
    """A law as a spec writes it: ``{normal: [1, 0.5]}``, ``0.2``."""
    if law.kind == "fixed":
        return f"{law.values[0]:g}"
    return f"{{{law.kind}: [{', '.join(f'{v:g}' for v in law.values)}]}}"


def _non_negative_law(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
    low = value.support()[0]
    if low < 0:
        raise ValueError(f"must be >= 0 for every draw, but {_law_text(value)} reaches {low:g}")


def _positive_law(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
    low = value.support()[0]
    if not low > 0:
        raise ValueError(f"must be > 0 for every draw, but {_law_text(value)} reaches {low:g}")


def _angle(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 180.0:
        raise ValueError(f"must be in [0, 180) degrees, got {value}")


def _probability(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be a probability in [0, 1], got {value}")


def _applied(probability: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) booleans, True with ``probability``; always drawn, so the draws after it do not depend on it."""
    import torch

    return torch.rand(n, generator=generator, dtype=torch.float64) < probability


# -- air_scatter

@attrs.frozen
class AirScatterParams:
    amplitude: Distribution = param(Distribution.uniform(0.02, 0.2), validator=_non_negative_law,
                                    doc="air scatter at the cutoff angle, as a fraction of the pattern's maximum")
    decay: Distribution = param(Distribution.uniform(2.0, 8.0), validator=_positive_law, unit="deg",
                                doc="2theta over which the air scatter falls by a factor e")
    cutoff: float = param(0.0, validator=_angle, unit="deg",
                          doc="2theta below which the knife edge / beam stop shadows the detector (no air scatter)")
    probability: float = param(1.0, validator=_probability,
                               doc="chance that a pattern is augmented at all (drawn per pattern)")


class AirScatter:
    """Add air scatter: a background rising steeply toward low angle.

    In Bragg-Brentano geometry the primary beam crosses air before it reaches
    the sample; the detector sees the air it scatters, mostly at small 2theta,
    until the beam knife edge or beam stop blocks its view. Per pattern b:

        I_air(2theta) = A_b * max(I_b) * exp(-(2theta - cutoff) / tau_b)   for 2theta >= cutoff, 0 below

    with A_b drawn from ``amplitude`` (relative to the pattern's maximum, so
    the artefact scales with the pattern) and tau_b from ``decay`` (degrees).
    A knife edge close to the sample gives a small A and a short tau.
    """

    stage: ClassVar[str] = "profile"

    def __init__(self, params: AirScatterParams) -> None:
        self.params = params

    def __call__(self, batch: ProfileBatch, generator: torch.Generator) -> ProfileBatch:
        import torch

        p, intensity = self.params, batch.intensity
        n, device = intensity.shape[0], intensity.device
        applied = _applied(p.probability, n, generator).to(device)
        amplitude = p.amplitude.sample(n, generator, device=device).clamp(min=0.0) * applied      # (B,)
        decay = p.decay.sample(n, generator, device=device).clamp(min=1e-6)                       # (B,) degrees
        offset = batch.grid.centers(device=device).to(intensity.dtype) - p.cutoff               # (n_bins,)
        shape = torch.exp(-offset.clamp(min=0.0)[None, :] / decay[:, None]) * (offset >= 0)     # (B, n_bins)
        air = (amplitude * intensity.amax(dim=1))[:, None] * shape
        return batch.evolve(intensity=intensity + air)


# -- detector_spikes

@attrs.frozen
class DetectorSpikesParams:
    count: Distribution = param(Distribution.parse({"choice": [0, 1, 2, 3]}), validator=_non_negative_law,
                                doc="spikes per pattern (each draw rounded to the nearest integer)")
    height: Distribution = param(Distribution.parse({"log_uniform": [0.2, 2.0]}), validator=_non_negative_law,
                                 doc="height of each spike, as a fraction of the pattern's maximum")
    probability: float = param(1.0, validator=_probability,
                               doc="chance that a pattern is augmented at all (drawn per pattern)")


class DetectorSpikes:
    """Add single-bin spikes ("zingers") as cosmic rays and stray events give on area detectors.

    Per pattern b, ``round(count_b)`` distinct bins drawn uniformly over the
    grid each get ``h * max(I_b)`` added, with a height fraction h drawn from
    ``height`` for every spike. A spike is one bin wide whatever the peak
    widths: that is what tells it apart from a Bragg peak.
    """

    stage: ClassVar[str] = "profile"

    def __init__(self, params: DetectorSpikesParams) -> None:
        self.params = params

    def __call__(self, batch: ProfileBatch, generator: torch.Generator) -> ProfileBatch:
        import torch

        p, intensity = self.params, batch.intensity
        (n, n_bins), device = intensity.shape, intensity.device
        applied = _applied(p.probability, n, generator)
        counts = p.count.sample(n, generator).round().clamp(0, n_bins).long() * applied          # (B,) CPU
        most = int(counts.max()) if n else 0
        if most == 0:
            return batch
        bins = torch.rand(n, n_bins, generator=generator).topk(most, dim=1).indices              # (B, most) distinct
        height = p.height.sample(n * most, generator).reshape(n, most).clamp(min=0.0)
        used = torch.arange(most)[None, :] < counts[:, None]                                    # (B, most)
        spikes = (height * used).to(device, intensity.dtype) * intensity.amax(dim=1, keepdim=True)
        return batch.evolve(intensity=intensity.scatter_add(1, bins.to(device), spikes))


# -- the hook: what xrdframe calls when it builds its registry

@hookimpl
def xrdframe_augmentations() -> list[Component]:
    return [
        Component("air_scatter", AirScatter, AirScatterParams,
                  summary="air-scatter background rising toward low angle (profile stage)", requires=("torch",)),
        Component("detector_spikes", DetectorSpikes, DetectorSpikesParams,
                  summary="single-bin cosmic-ray spikes (zingers) of an area detector (profile stage)",
                  requires=("torch",)),
    ]
