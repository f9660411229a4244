"""Augmentation: from Bragg peak lists to realistic powder profiles, a batch at a time.

Operators (``augmentation`` components) act at one of three stages, in this
order:

1. ``peaks``: on a :class:`PeakBatch` of peak lists (zero shift, position and
   intensity noise, cropping, impurity peaks, K-alpha2, preferred orientation...);
2. ``render``: one operator turning peaks into profiles on the 2theta grid
   (a pseudo-Voigt profile); without one, peaks are binned as sticks;
3. ``profile``: on a :class:`ProfileBatch` (background and noise, edge cropping...).

Everything is a torch tensor on one device; random draws come from a
:class:`torch.Generator` (on the CPU), so a seed gives the same batch bit for
bit. An :class:`AugmentationChain` sorts the operators by stage (keeping their
order within a stage) and runs them.

Peaks measured at another wavelength are moved to the chain's wavelength
through their d-spacings (:func:`convert_wavelength`); peaks that cannot be
reached at the new wavelength are dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np

if TYPE_CHECKING:
    import torch

    from xrdframe.diffraction import PeakList

__all__ = [
    "STAGES",
    "Augmentation",
    "AugmentationChain",
    "PeakBatch",
    "ProfileBatch",
    "TwoThetaGrid",
    "bin_peaks",
    "convert_wavelength",
]

#: Stages in the order they run.
STAGES = ("peaks", "render", "profile")


@attrs.frozen
class TwoThetaGrid:
    """A 2theta grid of equal bins: ``n_bins`` bins of width ``step`` from ``start`` to ``stop`` (degrees).

    >>> TwoThetaGrid().n_bins, float(TwoThetaGrid().centers()[0])
    (6000, 0.01)
    """

    start: float = 0.0
    stop: float = 120.0
    step: float = 0.02

    def __attrs_post_init__(self) -> None:
        if not (0.0 <= self.start < self.stop <= 180.0 and self.step > 0):
            raise ValueError(f"grid must satisfy 0 <= start < stop <= 180 and step > 0, got {self}")

    @property
    def n_bins(self) -> int:
        return int(round((self.stop - self.start) / self.step))

    def centers(self, device: Any = "cpu") -> torch.Tensor:
        """Bin centres, degrees, float64."""
        import torch

        return self.start + self.step * (torch.arange(self.n_bins, device=device, dtype=torch.float64) + 0.5)


@attrs.define
class PeakBatch:
    """Peak lists of B patterns padded to P peaks.

    :ivar two_theta: (B, P) peak positions, degrees.
    :ivar intensity: (B, P) integrated intensities (strongest Bragg peak = 100).
    :ivar mask: (B, P) True where a peak exists.
    :ivar wavelength: Angstrom.
    :ivar hkl: (B, P, 3) Miller indices, int16 (0 for padding and impurity peaks), or None.
    :ivar cell: (B, 6) lattice parameters (Angstrom, degrees), or None.
    :ivar broadening: (B, P) extra Lorentzian FWHM of each peak, degrees (crystallite size, strain), or
        None; the render operator adds it to the instrumental width.
    """

    two_theta: torch.Tensor
    intensity: torch.Tensor
    mask: torch.Tensor
    wavelength: float
    hkl: torch.Tensor | None = None
    cell: torch.Tensor | None = None
    broadening: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.two_theta.shape[0])

    @property
    def device(self) -> torch.device:
        return self.two_theta.device

    @classmethod
    def from_peak_lists(cls, peak_lists: Sequence[PeakList], cells: Sequence[Sequence[float]] | None = None,
                        device: Any = "cpu") -> PeakBatch:
        """Pad peak lists (all at one wavelength) into a batch."""
        import torch

        if not peak_lists:
            raise ValueError("an empty list of peak lists")
        wavelengths = {float(p.wavelength) for p in peak_lists}
        if len(wavelengths) != 1:
            raise ValueError(f"peak lists of one batch must share a wavelength, got {sorted(wavelengths)}")
        n = len(peak_lists)
        width = max(1, max(len(p) for p in peak_lists))
        two_theta = np.zeros((n, width), dtype=np.float32)
        intensity = np.zeros((n, width), dtype=np.float32)
        hkl = np.zeros((n, width, 3), dtype=np.int16)
        mask = np.zeros((n, width), dtype=bool)
        for i, p in enumerate(peak_lists):  # one copy per pattern, not per peak
            k = len(p)
            two_theta[i, :k], intensity[i, :k], hkl[i, :k], mask[i, :k] = p.two_theta, p.intensity, p.hkl, True
        cell = None if cells is None else torch.as_tensor(np.asarray(cells, dtype=np.float32), device=device)
        return cls(two_theta=torch.as_tensor(two_theta, device=device),
                   intensity=torch.as_tensor(intensity, device=device), mask=torch.as_tensor(mask, device=device),
                   wavelength=wavelengths.pop(), hkl=torch.as_tensor(hkl, device=device), cell=cell)

    def evolve(self, **changes: Any) -> PeakBatch:
        """A copy with some fields replaced."""
        return attrs.evolve(self, **changes)


@attrs.define
class ProfileBatch:
    """Profiles of B patterns on a grid.

    :ivar intensity: (B, n_bins) intensity per bin.
    :ivar grid: the 2theta grid.
    :ivar peaks: the peaks the profiles were rendered from (after the peak operators).
    """

    intensity: torch.Tensor
    grid: TwoThetaGrid
    peaks: PeakBatch

    def evolve(self, **changes: Any) -> ProfileBatch:
        return attrs.evolve(self, **changes)


@runtime_checkable
class Augmentation(Protocol):
    """An ``augmentation`` component: ``stage`` says what it takes and returns.

    ``peaks``: ``(PeakBatch, generator) -> PeakBatch``; ``render``: ``(PeakBatch,
    grid, generator) -> ProfileBatch``; ``profile``: ``(ProfileBatch, generator) -> ProfileBatch``.
    """

    stage: ClassVar[str]

    def __call__(self, batch: Any, *args: Any) -> Any: ...


def convert_wavelength(batch: PeakBatch, wavelength: float) -> tuple[PeakBatch, int]:
    """Move peaks to ``wavelength`` through their d-spacings (Bragg's law).

    ``sin(theta') = sin(theta) * wavelength / batch.wavelength``; peaks with
    ``sin(theta') > 1`` cannot be reached and are masked out. Returns the new
    batch and the number of peaks dropped.
    """
    import torch

    if not wavelength > 0:
        raise ValueError(f"wavelength must be > 0 Angstrom, got {wavelength}")
    if math.isclose(wavelength, batch.wavelength, rel_tol=0, abs_tol=1e-9):
        return batch, 0
    sin_theta = torch.sin(torch.deg2rad(batch.two_theta.double() / 2.0)) * (wavelength / batch.wavelength)
    reachable = batch.mask & (sin_theta <= 1.0)
    two_theta = torch.where(reachable, 2.0 * torch.rad2deg(torch.asin(sin_theta.clamp(max=1.0))),
                            torch.zeros_like(sin_theta)).to(batch.two_theta.dtype)
    dropped = int((batch.mask & ~reachable).sum())
    return batch.evolve(two_theta=two_theta, mask=reachable, wavelength=float(wavelength),
                        intensity=torch.where(reachable, batch.intensity, torch.zeros_like(batch.intensity))), dropped


def bin_peaks(batch: PeakBatch, grid: TwoThetaGrid) -> torch.Tensor:
    """Stick profiles: each peak's integrated intensity added to the bin holding its 2theta.

    Peaks outside the grid are left out; the total intensity of the peaks inside is conserved.
    """
    import torch

    index = torch.floor((batch.two_theta.double() - grid.start) / grid.step).long()
    inside = batch.mask & (index >= 0) & (index < grid.n_bins)
    out = torch.zeros(batch.size, grid.n_bins, dtype=torch.float32, device=batch.device)
    out.scatter_add_(1, index.clamp(0, grid.n_bins - 1), torch.where(inside, batch.intensity,
                                                                     torch.zeros_like(batch.intensity)))
    return out


class AugmentationChain:
    """Operators sorted by stage, run on batches of peak lists.

    :param operators: augmentation objects (each with a ``stage``).
    :param grid: the 2theta grid of the profiles.
    :param wavelength: the training wavelength, Angstrom; batches at another
        wavelength are converted first.
    """

    def __init__(self, operators: Sequence[Any], grid: TwoThetaGrid | None = None,
                 wavelength: float = 1.5406) -> None:
        for op in operators:
            if getattr(op, "stage", None) not in STAGES:
                raise ValueError(f"{type(op).__name__}: stage must be one of {', '.join(STAGES)}, "
                                 f"got {getattr(op, 'stage', None)!r}")
        renders = [op for op in operators if op.stage == "render"]
        if len(renders) > 1:
            raise ValueError(f"at most one render operator, got {len(renders)}: "
                             f"{', '.join(type(op).__name__ for op in renders)}")
        self.peak_ops = [op for op in operators if op.stage == "peaks"]
        self.render = renders[0] if renders else None
        self.profile_ops = [op for op in operators if op.stage == "profile"]
        self.grid = grid or TwoThetaGrid()
        self.wavelength = float(wavelength)
        self.dropped_peaks = 0

    def peaks(self, batch: PeakBatch, generator: torch.Generator) -> PeakBatch:
        """Convert to the chain's wavelength and run the peak operators."""
        batch, dropped = convert_wavelength(batch, self.wavelength)
        self.dropped_peaks += dropped
        for op in self.peak_ops:
            batch = op(batch, generator)
        return batch

    def __call__(self, batch: PeakBatch, generator: torch.Generator) -> ProfileBatch:
        """Profiles of a batch of peak lists, every operator applied."""
        batch = self.peaks(batch, generator)
        if self.render is None:
            profile = ProfileBatch(bin_peaks(batch, self.grid), self.grid, batch)
        else:
            profile = self.render(batch, self.grid, generator)
        for op in self.profile_ops:
            profile = op(profile, generator)
        return profile
