"""Peak-stage augmentation operators: what the instrument and the sample do to a list of Bragg peaks.

Every operator here is an ``augmentation`` component of stage ``peaks``: it takes a
:class:`~xrdframe.augmentation.PeakBatch` and a CPU :class:`torch.Generator` and
returns a new batch, vectorized over patterns and peaks. Random parameters are
:class:`~xrdframe.distribution.Distribution` laws drawn once per pattern (or once
per peak where said); ``probability`` is the chance that a pattern is touched at
all. The defaults are the *training* regime: the range of each effect met on a
well-aligned laboratory Bragg-Brentano diffractometer with Cu K-alpha radiation,
in the spirit of Table 1 of "Learning Self-Supervised Representations of
Powder-Diffraction Patterns", *Crystals* 15 (2025) 393 (doi:10.3390/cryst15050393),
whose simulation pipeline (zero shift, peak-position white noise, cropping of the
tail peaks, noise on integrated intensities, small impurity peaks) these operators
follow. An *invariance* test set draws the same parameters from ranges that do not
overlap these (larger shifts, stronger noise, ...).

Operators and their physics:

* ``zero_shift``: a calibration error of the 2theta scale, the same offset for every peak.
* ``peak_position_noise``: white Gaussian noise on each peak position.
* ``peak_crop``: the tails of the pattern (low and high 2theta) are cut off.
* ``intensity_noise``: multiplicative Gaussian noise on the integrated intensities.
* ``impurity_peaks``: a few weak spurious peaks from a minor unknown phase.
* ``kalpha2``: the Cu K-alpha2 companion of every peak, by Bragg's law.
* ``preferred_orientation``: March-Dollase texture (Dollase 1986).
* ``sample_displacement``: the specimen surface off the goniometer axis shifts peaks by ``-2 s cos(theta) / R``.
* ``crystallite_size``: Scherrer broadening ``K lambda / (L cos(theta))`` added to the peak widths.

Peaks pushed outside 0 < 2theta < 180 degrees are dropped (mask False, zero
position and intensity), like padding. Operators that add peaks (``impurity_peaks``,
``kalpha2``) widen the batch; peaks are not kept sorted by 2theta.

A physically sensible order (the chain keeps the order within the stage):
``preferred_orientation``, ``kalpha2``, ``crystallite_size``, ``sample_displacement``,
``zero_shift``, ``peak_position_noise``, ``intensity_noise``, ``impurity_peaks``, ``peak_crop``.

>>> import torch
>>> from xrdframe.augmentation import PeakBatch
>>> batch = PeakBatch(two_theta=torch.tensor([[20.0, 40.0, 0.0]]), intensity=torch.tensor([[100.0, 50.0, 0.0]]),
...                   mask=torch.tensor([[True, True, False]]), wavelength=1.540593)
>>> shifted = ZeroShift(ZeroShiftParams(shift=Distribution.fixed(0.05)))(batch, torch.Generator().manual_seed(0))
>>> [round(x, 4) for x in shifted.two_theta[0].tolist()]  # the padding stays at 0
[20.05, 40.05, 0.0]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from xrdframe.component import Component, param
from xrdframe.distribution import Distribution
from xrdframe.validators import law_non_negative, law_positive, law_text, positive, probability

if TYPE_CHECKING:
    import torch

    from xrdframe.augmentation import PeakBatch

__all__ = [
    "COMPONENTS",
    "CU_KALPHA1",
    "CU_KALPHA2",
    "CrystalliteSize",
    "CrystalliteSizeParams",
    "ImpurityPeaks",
    "ImpurityPeaksParams",
    "IntensityNoise",
    "IntensityNoiseParams",
    "KAlpha2",
    "KAlpha2Params",
    "PeakCrop",
    "PeakCropParams",
    "PeakPositionNoise",
    "PeakPositionNoiseParams",
    "PreferredOrientation",
    "PreferredOrientationParams",
    "SampleDisplacement",
    "SampleDisplacementParams",
    "ZeroShift",
    "ZeroShiftParams",
    "march_dollase",
    "reciprocal_metric",
]

#: Cu K-alpha1 and K-alpha2 wavelengths, Angstrom (International Tables vol. C, Table 4.2.2.1;
#: Hoelzer et al. 1997, Phys. Rev. A 56, 4554).
CU_KALPHA1 = 1.540593
CU_KALPHA2 = 1.544427

#: Largest distance between the batch wavelength and K-alpha1 that ``kalpha2`` accepts, Angstrom.
_WAVELENGTH_TOLERANCE = 1e-3

#: The 13 distinct lattice directions with indices in {-1, 0, 1} (first non-zero index positive):
#: the "random" choice of ``preferred_orientation``.
_LOW_INDEX_DIRECTIONS = (
    (0, 0, 1), (0, 1, 0), (1, 0, 0), (0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
    (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1),
)


# --------------------------------------------------------------------------- validators

def _angle_law(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
    low, high = value.support()
    if low < 0 or high > 180:
        raise ValueError(f"must stay within [0, 180] degrees, but {law_text(value)} spans [{low:g}, {high:g}]")


def _high_cut(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
    _angle_law(instance, attribute, value)
    if instance is not None and isinstance(getattr(instance, "low", None), Distribution):
        low_max, high_min = instance.low.support()[1], value.support()[0]
        if low_max > high_min:
            raise ValueError(f"must lie above every low cut, but the low cut {law_text(instance.low)} reaches "
                             f"{low_max:g} and the high cut {law_text(value)} goes down to {high_min:g} degrees")


def _fraction(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"must be in (0, 1], got {value}")


def _detection_limit(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value}")


def _optional_two_theta_range(instance: Any, attribute: attrs.Attribute, value: tuple[float, float] | None) -> None:
    if value is not None and not 0.0 <= value[0] < value[1] <= 180.0:
        raise ValueError(f"must be [min, max] degrees with 0 <= min < max <= 180, got [{value[0]}, {value[1]}]")


def _wavelength_pair(instance: Any, attribute: attrs.Attribute, value: tuple[float, float] | None) -> None:
    if value is not None and not (value[0] > 0 and value[1] > 0):
        raise ValueError(f"must be [lambda1, lambda2] in Angstrom, both > 0, got [{value[0]}, {value[1]}]")


def _directions(instance: Any, attribute: attrs.Attribute, value: list[tuple[int, int, int]] | None) -> None:
    if value is None:
        return
    if not value:
        raise ValueError("must list at least one direction [h, k, l] (or be null for a random low-index one)")
    zero = [i for i, d in enumerate(value) if tuple(d) == (0, 0, 0)]
    if zero:
        raise ValueError(f"[0, 0, 0] is not a direction (entry {zero[0]})")


def _probability_param() -> Any:
    return param(1.0, doc="chance that a pattern is augmented at all (drawn per pattern)", validator=probability)


# --------------------------------------------------------------------------- helpers

def _applied(probability: float, n: int, generator: torch.Generator, device: Any) -> torch.Tensor:
    """(n,) booleans, True with ``probability``; always drawn so the random stream does not depend on it."""
    import torch

    return (torch.rand(n, generator=generator, dtype=torch.float64) < probability).to(device)


def _draw(law: Distribution, n: int, generator: torch.Generator, device: Any) -> torch.Tensor:
    """(n,) draws of ``law`` (made on the CPU generator) as float64 on ``device``."""
    import torch

    return law.sample(n, generator).to(device=device, dtype=torch.float64)


def _normal(shape: tuple[int, ...], generator: torch.Generator, device: Any) -> torch.Tensor:
    """Standard normal draws, float32 (per-peak noise: float32 resolves 1e-5 degrees at 120 degrees)."""
    import torch

    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: Any) -> torch.Tensor:
    import torch

    return torch.rand(shape, generator=generator, dtype=torch.float32).to(device)


def _keep(batch: PeakBatch, keep: torch.Tensor) -> PeakBatch:
    """The batch with the peaks outside ``keep`` turned into padding (mask False, everything 0)."""
    import torch

    mask = batch.mask & keep
    if torch.equal(mask, batch.mask):
        return batch  # nothing dropped: no copies

    def zero(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        m = mask if t.dim() == 2 else mask[..., None]
        return t.masked_fill(~m, 0)

    return batch.evolve(mask=mask, two_theta=zero(batch.two_theta), intensity=zero(batch.intensity),
                        hkl=zero(batch.hkl), broadening=zero(batch.broadening))


def _confine(batch: PeakBatch) -> PeakBatch:
    """Drop peaks moved outside 0 < 2theta < 180 degrees."""
    return _keep(batch, (batch.two_theta > 0) & (batch.two_theta < 180))


def _move(batch: PeakBatch, delta: torch.Tensor, where: torch.Tensor) -> PeakBatch:
    """Add ``delta`` (degrees) to the positions of the real peaks selected by ``where``."""
    import torch

    moved = batch.two_theta + delta.to(batch.two_theta.dtype)
    return _confine(batch.evolve(two_theta=torch.where(batch.mask & where, moved, batch.two_theta)))


def _append(batch: PeakBatch, two_theta: torch.Tensor, intensity: torch.Tensor, mask: torch.Tensor,
            hkl: torch.Tensor | None = None, broadening: torch.Tensor | None = None) -> PeakBatch:
    """The batch with (B, M) extra peaks appended along the peak axis (padding where ``mask`` is False)."""
    import torch

    mask = mask.to(batch.device)
    two_theta = torch.where(mask, two_theta, 0.0).to(batch.two_theta.dtype)
    intensity = torch.where(mask, intensity, 0.0).to(batch.intensity.dtype)
    changes: dict[str, Any] = {
        "two_theta": torch.cat([batch.two_theta, two_theta], dim=1),
        "intensity": torch.cat([batch.intensity, intensity], dim=1),
        "mask": torch.cat([batch.mask, mask], dim=1),
    }
    if batch.hkl is not None:
        extra = torch.zeros(*mask.shape, 3, dtype=batch.hkl.dtype, device=batch.device) if hkl is None else \
            torch.where(mask[..., None], hkl, torch.zeros_like(hkl))
        changes["hkl"] = torch.cat([batch.hkl, extra], dim=1)
    if batch.broadening is not None:
        extra = torch.zeros(mask.shape, dtype=batch.broadening.dtype, device=batch.device) if broadening is None \
            else torch.where(mask, broadening, torch.zeros_like(broadening))
        changes["broadening"] = torch.cat([batch.broadening, extra], dim=1)
    return batch.evolve(**changes)


class _PeakOperator:
    """Base of the operators: holds the structured parameters."""

    stage: ClassVar[str] = "peaks"

    def __init__(self, params: Any) -> None:
        self.params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


# --------------------------------------------------------------------------- zero_shift

@attrs.frozen
class ZeroShiftParams:
    shift: Distribution = param(
        Distribution.uniform(-0.1, 0.1), unit="deg",
        doc="offset added to every peak position of a pattern (drawn per pattern): the zero error of a "
            "miscalibrated 2theta scale; a well-aligned laboratory goniometer stays within a few hundredths "
            "of a degree, a careless one reaches 0.1 (training regime: uniform [-0.1, 0.1])")
    probability: float = _probability_param()


class ZeroShift(_PeakOperator):
    """Zero shift: ``2theta -> 2theta + shift`` for every peak of a pattern.

    The 2theta zero of a goniometer is set by calibration (against a standard such
    as Si or LaB6); an error moves the whole pattern by a constant. Unlike the
    sample displacement, it does not depend on the angle.
    """

    params: ZeroShiftParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        shift = self.params.shift.sample(batch.size, generator, device=batch.device).to(batch.two_theta.dtype)
        moved = batch.two_theta + torch.where(apply, shift, torch.zeros_like(shift))[:, None]
        return _confine(batch.evolve(two_theta=torch.where(batch.mask, moved, batch.two_theta)))


# --------------------------------------------------------------------------- peak_position_noise

@attrs.frozen
class PeakPositionNoiseParams:
    sigma: Distribution = param(
        Distribution.uniform(0.0, 0.01), unit="deg", validator=law_non_negative,
        doc="standard deviation of the white Gaussian noise added to each peak position, drawn per pattern; "
            "models small errors of peak positions (strain, detector pixel, step size): at most half a "
            "0.02-degree bin in training (uniform [0, 0.01])")
    probability: float = _probability_param()


class PeakPositionNoise(_PeakOperator):
    """White noise on peak positions: ``2theta_i -> 2theta_i + sd * N(0, 1)``, one draw per peak.

    ``sd`` is drawn once per pattern from ``sigma``. Peaks may change order.
    """

    params: PeakPositionNoiseParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        sd = _draw(self.params.sigma, batch.size, generator, batch.device)
        noise = _normal(tuple(batch.two_theta.shape), generator, batch.device)
        return _move(batch, sd[:, None] * noise, apply[:, None])


# --------------------------------------------------------------------------- peak_crop

@attrs.frozen
class PeakCropParams:
    low: Distribution = param(
        Distribution.uniform(0.0, 10.0), unit="deg", validator=_angle_law,
        doc="low 2theta cut, drawn per pattern: peaks below it are removed; laboratory scans start "
            "between 3 and 10 degrees (beam stop, air scatter), training uniform [0, 10]")
    high: Distribution = param(
        Distribution.uniform(90.0, 120.0), unit="deg", validator=_high_cut,
        doc="high 2theta cut, drawn per pattern: peaks above it are removed; laboratory scans end between "
            "80 and 120 degrees, training uniform [90, 120]")
    probability: float = _probability_param()


class PeakCrop(_PeakOperator):
    """Cropping of the tails: peaks below the low cut or above the high cut become padding.

    Cropped peaks get mask False and zero intensity, as if never measured (the
    paper's "peaks at the tails are randomly cropped"). Peaks at a cut are kept.
    """

    params: PeakCropParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        low = _draw(self.params.low, batch.size, generator, batch.device)[:, None]
        high = _draw(self.params.high, batch.size, generator, batch.device)[:, None]
        two_theta = batch.two_theta.double()
        return _keep(batch, ~apply[:, None] | ((two_theta >= low) & (two_theta <= high)))


# --------------------------------------------------------------------------- intensity_noise

@attrs.frozen
class IntensityNoiseParams:
    sigma: Distribution = param(
        Distribution.uniform(0.0, 0.1), unit="relative", validator=law_non_negative,
        doc="relative standard deviation of the integrated intensities, drawn per pattern: each intensity is "
            "multiplied by 1 + N(0, sd); stands for counting statistics, detector non-linearity, absorption "
            "and mild texture; training uniform [0, 0.1] (up to 10 %)")
    probability: float = _probability_param()


class IntensityNoise(_PeakOperator):
    """Multiplicative noise on integrated intensities: ``I_i -> max(0, I_i (1 + sd * N(0, 1)))``, per peak.

    The noise has mean zero, so the expected intensity of each peak is kept (up to
    the clamp at 0, negligible for sd < 0.3).
    """

    params: IntensityNoiseParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        sd = _draw(self.params.sigma, batch.size, generator, batch.device)
        noise = _normal(tuple(batch.intensity.shape), generator, batch.device)
        sd = sd.to(batch.intensity.dtype)
        noisy = torch.addcmul(torch.ones((), dtype=noise.dtype), sd[:, None], noise)
        noisy.mul_(batch.intensity).clamp_(min=0.0)
        return batch.evolve(intensity=torch.where(batch.mask & apply[:, None], noisy, batch.intensity))


# --------------------------------------------------------------------------- impurity_peaks

@attrs.frozen
class ImpurityPeaksParams:
    count: Distribution = param(
        Distribution("choice", (0.0, 1.0, 2.0, 3.0)), validator=law_non_negative,
        doc="number of impurity peaks of a pattern, drawn per pattern and rounded to an integer; a minor "
            "second phase shows its few strongest lines (training {choice: [0, 1, 2, 3]})")
    min_fraction: float = param(
        0.25, validator=_fraction,
        doc="each impurity peak's integrated intensity is uniform between min_fraction and 1 times the weakest "
            "visible Bragg peak of its pattern: comparable to or smaller than the smallest reflection, but "
            "above the noise")
    detection_limit: float = param(
        0.01, validator=_detection_limit,
        doc="Bragg peaks weaker than this fraction of the strongest one count as invisible (below the noise of "
            "a laboratory pattern, about 1 %) when finding the weakest peak; 0 takes the weakest peak there is")
    two_theta: tuple[float, float] | None = param(
        None, unit="deg", validator=_optional_two_theta_range,
        doc="[min, max] range of the impurity positions; null: between the first and the last peak of each "
            "pattern")
    probability: float = _probability_param()


class ImpurityPeaks(_PeakOperator):
    """Small impurity peaks: a few spurious reflections of a minor unknown phase.

    For each pattern, ``count`` peaks at 2theta uniform in the range of its peaks
    (or ``two_theta``), each with an intensity uniform in
    ``[min_fraction, 1] * I_weakest``, where ``I_weakest`` is the weakest Bragg peak
    at or above ``detection_limit`` times the strongest. The batch is widened by
    the largest count drawn; impurity peaks have hkl (0, 0, 0) and no extra
    broadening. Patterns without a peak get none.
    """

    params: ImpurityPeaksParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        p = self.params
        n, device = batch.size, batch.device
        apply = _applied(p.probability, n, generator, device)
        counts = p.count.sample(n, generator).round().clamp(min=0).long().to(device)
        intensity = batch.intensity.double()
        strongest = torch.where(batch.mask, intensity, 0.0).amax(dim=1, keepdim=True)
        visible = batch.mask & (intensity > 0) & (intensity >= p.detection_limit * strongest)
        weakest = torch.where(visible, intensity, math.inf).amin(dim=1)
        two_theta = batch.two_theta.double()
        if p.two_theta is None:
            low = torch.where(batch.mask, two_theta, math.inf).amin(dim=1)
            high = torch.where(batch.mask, two_theta, -math.inf).amax(dim=1)
        else:
            low = torch.full((n,), p.two_theta[0], dtype=torch.float64, device=device)
            high = torch.full((n,), p.two_theta[1], dtype=torch.float64, device=device)
        counts = torch.where(apply & visible.any(dim=1) & (high >= low), counts, 0)
        width = int(counts.max()) if n else 0
        if width == 0:
            return batch
        u_position = _uniform((n, width), generator, device)
        u_intensity = _uniform((n, width), generator, device)
        mask = torch.arange(width, device=device)[None, :] < counts[:, None]
        low, high, weakest = (torch.where(counts > 0, t, 0.0)[:, None] for t in (low, high, weakest))
        positions = low + (high - low) * u_position
        intensities = weakest * (p.min_fraction + (1.0 - p.min_fraction) * u_intensity)
        return _append(batch, positions, intensities, mask)


# --------------------------------------------------------------------------- kalpha2

@attrs.frozen
class KAlpha2Params:
    ratio: Distribution = param(
        Distribution.uniform(0.45, 0.55), unit="I(Ka2)/I(Ka1)", validator=law_non_negative,
        doc="intensity of each K-alpha2 companion relative to its K-alpha1 peak, drawn per pattern; the "
            "natural Cu ratio is close to 0.5 (2p1/2 vs 2p3/2 occupancy), slightly changed by the optics: "
            "training uniform [0.45, 0.55]")
    wavelengths: tuple[float, float] | None = param(
        None, unit="Angstrom", validator=_wavelength_pair,
        doc="[lambda1, lambda2]; null: Cu K-alpha1 1.540593 and K-alpha2 1.544427 (International Tables "
            "vol. C, Table 4.2.2.1), and the batch must be at K-alpha1; when given, the batch wavelength is "
            "taken as lambda1 without check")
    probability: float = _probability_param()


class KAlpha2(_PeakOperator):
    """K-alpha2 companions: for every peak at ``theta1``, a peak at ``theta2 = asin(lambda2 / lambda1 * sin theta1)``.

    The K-alpha doublet of an X-ray tube without a K-alpha1 monochromator: the
    same d-spacing diffracts both lines (Bragg's law ``lambda = 2 d sin theta``),
    so ``sin theta2 / sin theta1 = lambda2 / lambda1``; the companion has
    ``ratio`` times the intensity, the parent's hkl and broadening. The batch's
    peaks must be K-alpha1 peaks: with the default Cu wavelengths a batch
    wavelength more than 0.001 Angstrom from K-alpha1 is a ValueError (a batch at
    the weighted K-alpha mean, 1.5418, already averages the doublet). Companions
    beyond 2theta = 180 degrees are dropped. The batch is twice as wide after.
    """

    params: KAlpha2Params

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        p = self.params
        if p.wavelengths is None:
            lambda1, lambda2 = CU_KALPHA1, CU_KALPHA2
            if abs(batch.wavelength - lambda1) > _WAVELENGTH_TOLERANCE:
                raise ValueError(
                    f"kalpha2: the batch is at {batch.wavelength} Angstrom, not Cu K-alpha1 ({lambda1} Angstrom); "
                    "K-alpha2 companions are computed from K-alpha1 peaks. Set the chain's wavelength to "
                    f"{lambda1}, or give kalpha2 params wavelengths: [lambda1, lambda2] for another anode")
        else:
            lambda1, lambda2 = p.wavelengths
        apply = _applied(p.probability, batch.size, generator, batch.device)
        ratio = _draw(p.ratio, batch.size, generator, batch.device)
        sin2 = torch.sin(torch.deg2rad(batch.two_theta.double() / 2.0)) * (lambda2 / lambda1)  # exact angles
        mask = batch.mask & apply[:, None] & (sin2 < 1.0)
        two_theta2 = 2.0 * torch.rad2deg(torch.asin(sin2.clamp(max=1.0)))
        return _append(batch, two_theta2, ratio[:, None] * batch.intensity.double(), mask,
                       hkl=batch.hkl, broadening=batch.broadening)


# --------------------------------------------------------------------------- preferred_orientation

def reciprocal_metric(cell: torch.Tensor) -> torch.Tensor:
    """Reciprocal metric tensors ``G* = G^-1`` (Angstrom^-2) of cells ``(..., 6)`` (a, b, c, alpha, beta, gamma).

    ``G_ij = a_i . a_j`` is the direct metric; ``|h|^2 = h G* h^T = 1 / d_hkl^2``
    for Miller indices h (International Tables vol. B, 1.1.3), float64.

    >>> import torch
    >>> g = reciprocal_metric(torch.tensor([4.0, 4.0, 6.0, 90.0, 90.0, 90.0]))
    >>> [round(float(g[i, i]), 6) for i in range(3)]
    [0.0625, 0.0625, 0.027778]
    >>> hexagonal = reciprocal_metric(torch.tensor([3.0, 3.0, 5.0, 90.0, 90.0, 120.0]))
    >>> h = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    >>> round(float(1 / (h @ hexagonal @ h).sqrt()), 6)  # d(100) = a sqrt(3) / 2
    2.598076
    """
    import torch

    cell = cell.double()
    a, b, c = cell[..., 0], cell[..., 1], cell[..., 2]
    ca, cb, cg = (torch.cos(torch.deg2rad(cell[..., i])) for i in (3, 4, 5))
    metric = torch.stack([
        torch.stack([a * a, a * b * cg, a * c * cb], dim=-1),
        torch.stack([a * b * cg, b * b, b * c * ca], dim=-1),
        torch.stack([a * c * cb, b * c * ca, c * c], dim=-1),
    ], dim=-2)
    return torch.linalg.inv(metric)


def march_dollase(cos_alpha: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """March-Dollase factor ``(r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2)`` (Dollase 1986).

    ``alpha`` is the angle between the scattering vector and the preferred
    direction; ``r = 1`` is a random powder, ``r < 1`` platelets lying flat (the
    preferred direction along the scattering vector, reflections near it
    enhanced by up to ``r^-3``), ``r > 1`` needles. The factor averages to 1 over
    the sphere, so the total scattered intensity is kept.

    >>> import torch
    >>> march_dollase(torch.tensor([1.0, 0.0]), torch.tensor(0.5)).tolist()  # r^-3 and r^(3/2)
    [8.0, 0.3535533845424652]
    """
    cos2 = cos_alpha * cos_alpha
    return (r * r * cos2 + (1.0 - cos2) / r) ** -1.5


@attrs.frozen
class PreferredOrientationParams:
    r: Distribution = param(
        Distribution.uniform(0.7, 1.3), validator=law_positive,
        doc="March-Dollase parameter, drawn per pattern: 1 for a random powder, < 1 for platelets (reflections "
            "along the preferred direction enhanced), > 1 for needles; training uniform [0.7, 1.3], the mild "
            "texture of a back-loaded laboratory specimen")
    directions: list[tuple[int, int, int]] | None = param(
        factory=lambda: [(0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1)], validator=_directions,
        doc="preferred directions [h, k, l] (the plate normal as a reciprocal-lattice vector, as in GSAS-II and "
            "FullProf), one chosen per pattern with equal chance; null: a random low-index one (indices in "
            "-1..1, 13 directions)")
    probability: float = _probability_param()


class PreferredOrientation(_PeakOperator):
    """Preferred orientation, March-Dollase: ``I_hkl *= (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2)``.

    ``alpha`` is the angle between the reciprocal vector of the reflection,
    ``h = (h, k, l)``, and the preferred direction ``p`` (also in reciprocal-lattice
    units): ``cos alpha = h G* p / sqrt(h G* h  p G* p)`` with the reciprocal
    metric ``G*`` of the pattern's cell (W. A. Dollase, J. Appl. Cryst. 19 (1986)
    267-272; March, Z. Kristallogr. 81 (1932) 285). Needs ``batch.hkl`` and
    ``batch.cell``; impurity peaks (hkl 0 0 0) and padding are unchanged.

    Limitation: the batch holds one representative hkl per reflection family, so
    the factor is that of the representative. The exact powder intensity of the
    family averages the factor over its m symmetry-equivalent members, which lie
    at different angles from ``p`` (e.g. cubic {100} with p = [001]: one of three
    axes along p). The texture drawn here is therefore stronger and depends on
    which member represents the family; as an augmentation it varies relative
    intensities in the right direction without the multiplicity average.
    """

    params: PreferredOrientationParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        if batch.hkl is None or batch.cell is None:
            raise ValueError("preferred_orientation needs the Miller indices and the cell of each pattern "
                             "(PeakBatch.hkl and PeakBatch.cell); build the batch with "
                             "PeakBatch.from_peak_lists(peak_lists, cells=[structure.cell, ...])")
        p = self.params
        n, device = batch.size, batch.device
        apply = _applied(p.probability, n, generator, device)
        r = _draw(p.r, n, generator, device)
        table = torch.tensor(_LOW_INDEX_DIRECTIONS if p.directions is None else p.directions, dtype=torch.float64)
        choice = torch.randint(len(table), (n,), generator=generator)
        direction = table[choice].to(device)
        g = reciprocal_metric(batch.cell.to(device))  # (n, 3, 3), float64
        gp = torch.einsum("nij,nj->ni", g, direction)  # G* p
        pp = (direction * gp).sum(dim=1)
        # per peak, in float32 (the hot part): h G* p and h G* h as batched matrix products
        hkl = batch.hkl.to(torch.float32)
        hp = torch.bmm(hkl, gp.to(torch.float32)[:, :, None]).squeeze(2)
        hh = (torch.bmm(hkl, g.to(torch.float32)) * hkl).sum(dim=2)
        real = batch.mask & (hh > 0) & apply[:, None]
        cos_alpha = (hp / torch.sqrt(torch.where(real, hh, 1.0) * pp.to(torch.float32)[:, None])).clamp_(-1.0, 1.0)
        factor = torch.where(real, march_dollase(cos_alpha, r.to(torch.float32)[:, None]), 1.0)
        return batch.evolve(intensity=batch.intensity * factor.to(batch.intensity.dtype))


# --------------------------------------------------------------------------- sample_displacement

@attrs.frozen
class SampleDisplacementParams:
    displacement: Distribution = param(
        Distribution.uniform(-0.1, 0.1), unit="mm",
        doc="specimen displacement s from the goniometer axis along the specimen normal, drawn per pattern; "
            "positive: surface below the axis (away from tube and detector), peaks move to lower 2theta; a "
            "carefully filled holder is within 0.1 mm (training uniform [-0.1, 0.1])")
    radius: float = param(
        240.0, unit="mm", validator=positive,
        doc="goniometer radius R (specimen to detector), 240 mm on most laboratory instruments")
    probability: float = _probability_param()


class SampleDisplacement(_PeakOperator):
    """Specimen displacement: ``delta(2theta) = -2 s cos(theta) / R`` radians, per peak.

    In Bragg-Brentano geometry a specimen surface a distance ``s`` off the
    goniometer axis moves the diffracted ray sideways by ``2 s cos(theta)``; seen
    from the detector at distance ``R``, the peak moves by ``-2 s cos(theta) / R``
    (H. P. Klug & L. E. Alexander, *X-ray Diffraction Procedures*, 2nd ed., 1974;
    Cullity, *Elements of X-ray Diffraction*). The largest shifts are at low
    angles, unlike a zero shift's constant.
    """

    params: SampleDisplacementParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        s = _draw(self.params.displacement, batch.size, generator, batch.device)
        cos_theta = torch.cos(torch.deg2rad(batch.two_theta / 2.0))
        delta = cos_theta.mul_((-2.0 * 180.0 / math.pi / self.params.radius) * s.to(cos_theta.dtype)[:, None])
        return _move(batch, delta, apply[:, None])


# --------------------------------------------------------------------------- crystallite_size

@attrs.frozen
class CrystalliteSizeParams:
    size: Distribution = param(
        Distribution.parse({"log_uniform": [200.0, 2000.0]}), unit="Angstrom", validator=law_positive,
        doc="volume-weighted crystallite size L, drawn per pattern; 20 to 200 nm covers ordinary laboratory "
            "powders whose size broadening is visible (larger crystallites: instrument-limited widths); "
            "training log_uniform [200, 2000]")
    k: float = param(0.9, validator=positive, doc="Scherrer constant K (0.9 for FWHM and roughly spherical "
                                                   "crystallites; 0.89-0.94 by shape)")
    probability: float = _probability_param()


class CrystalliteSize(_PeakOperator):
    """Scherrer size broadening: the FWHM of each peak grows by ``beta = K lambda / (L cos theta)`` radians.

    P. Scherrer, Nachr. Ges. Wiss. Goettingen (1918) 98; J. I. Langford & A. J. C.
    Wilson, J. Appl. Cryst. 11 (1978) 102. ``beta`` (in degrees of 2theta) is
    added to ``batch.broadening`` (created as zeros when absent), the extra
    Lorentzian width the render operator adds to the instrumental profile;
    ``lambda`` is the batch wavelength.
    """

    params: CrystalliteSizeParams

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        import torch

        apply = _applied(self.params.probability, batch.size, generator, batch.device)
        size = _draw(self.params.size, batch.size, generator, batch.device)
        cos_theta = torch.cos(torch.deg2rad(batch.two_theta / 2.0)).clamp_(min=1e-6)
        scale = (180.0 / math.pi * self.params.k * batch.wavelength / size).to(cos_theta.dtype)
        beta = torch.div(torch.where(apply, scale, 0.0)[:, None], cos_theta)
        beta.masked_fill_(~batch.mask, 0.0)
        return batch.evolve(broadening=beta if batch.broadening is None else beta.add_(batch.broadening))


COMPONENTS: list[Component] = [
    Component("zero_shift", ZeroShift, ZeroShiftParams,
              "zero shift: every peak of a pattern moved by one offset (2theta calibration error)"),
    Component("peak_position_noise", PeakPositionNoise, PeakPositionNoiseParams,
              "white Gaussian noise on each peak position, sd drawn per pattern"),
    Component("peak_crop", PeakCrop, PeakCropParams,
              "peaks below a low and above a high 2theta cut removed (tails of the scan)"),
    Component("intensity_noise", IntensityNoise, IntensityNoiseParams,
              "integrated intensities times (1 + Gaussian noise), relative sd drawn per pattern"),
    Component("impurity_peaks", ImpurityPeaks, ImpurityPeaksParams,
              "a few spurious peaks no stronger than the weakest visible Bragg peak (minor phase)"),
    Component("kalpha2", KAlpha2, KAlpha2Params,
              "K-alpha2 companion of every peak by Bragg's law (Cu by default), intensity ratio ~0.5"),
    Component("preferred_orientation", PreferredOrientation, PreferredOrientationParams,
              "March-Dollase texture along a low-index direction (needs hkl and cell)"),
    Component("sample_displacement", SampleDisplacement, SampleDisplacementParams,
              "specimen off the goniometer axis: peaks shifted by -2 s cos(theta) / R"),
    Component("crystallite_size", CrystalliteSize, CrystalliteSizeParams,
              "Scherrer size broadening K lambda / (L cos theta) added to the peak widths"),
]
