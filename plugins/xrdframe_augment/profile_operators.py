"""Profile augmentations: rendering peaks as pseudo-Voigt profiles, background and noise, edge cropping.

These are the last three operations of the simulation pipeline of the 2025
paper this package follows (section 4.3): "a pseudo-Voigt profile with peak
asymmetry [...] the FWHM is inspired by the Caglioti functional form [...]
the parameters are sampled using Latin-Hypercube sampling; the pseudo-Voigt
profile is a linear combination of a Gaussian and a Lorentzian using the same
FWHM weighted by the mixing parameter eta; asymmetry is introduced by an error
function", then "a background noise [...] a combination of white noise and
intensity-dependent noise" and "the edges of the XRD profile are cropped
randomly and padded with zeros".

``pseudo_voigt`` (stage ``render``)
    Each Bragg peak at ``2theta_p`` with integrated intensity ``I_p`` becomes

    ``I_p * pV(x) * (1 + a_p erf(x / (H/2))) / N_p``,   ``x = 2theta - 2theta_p``

    * width: Caglioti, Paoletti & Ricci (1958), Nucl. Instrum. 3, 223,
      ``H^2 = U tan^2(theta) + V tan(theta) + W`` (H the FWHM in degrees 2theta,
      U, V, W in deg^2). U comes from the angle-dependent divergence and sample
      broadening, W from the source and slit widths (``sqrt(W)`` is the FWHM at
      2theta = 0), V is a cross term, usually negative. Drawn U, V, W can make
      ``H^2`` negative at some angle (V < 0 and small U, W); ``H^2`` is then
      clamped to ``min_fwhm^2``, as it is everywhere the formula gives less.
    * shape: pseudo-Voigt ``pV = eta L(x; H) + (1 - eta) G(x; H)``, a Gaussian
      and a Lorentzian of the same FWHM, each of unit area (as in GSAS,
      Larson & Von Dreele; Toby & Von Dreele (2013), J. Appl. Cryst. 46, 544).
    * size broadening: ``batch.broadening`` (a Lorentzian FWHM per peak, set
      by a crystallite-size/strain operator) is added the Thompson, Cox &
      Hastings way (1987, J. Appl. Cryst. 20, 79): the instrumental (H, eta)
      is read as a Voigt of Gaussian FWHM ``G`` and Lorentzian FWHM ``L`` by
      inverting the TCH formulas, Lorentzian widths of a convolution add
      (``L' = L + broadening``), and ``(G, L')`` give the new FWHM and eta
      through the TCH formulas again.
    * asymmetry: the error-function factor ``1 + a_p erf(2x / H)`` (scale:
      the half width at half maximum). ``erf`` is odd and ``pV`` even, so the
      factor moves intensity from one side of the peak to the other without
      changing its area; ``|a_p| <= 1`` keeps it non-negative. Axial
      divergence gives peaks a low-angle tail below 2theta = 90 deg and a
      high-angle tail above, strongest at low angles (Finger, Cox & Jephcoat
      (1994), J. Appl. Cryst. 27, 892, where it goes as cot 2theta); the
      bounded stand-in used here is ``a_p = -asymmetry * cos(2theta_p)``:
      ``asymmetry > 0`` gives low-angle tails below 90 deg and high-angle
      tails above.
    * discretisation: the profile is evaluated at bin centres over a window
      of ``+- window`` FWHM around each peak (at most ``+- max_window``
      degrees) and each peak's values, asymmetry included, are divided by
      their sum, so the bins of a peak add up to exactly ``I_p``. The
      Lorentzian tail beyond the window, ``1 - (2/pi) arctan(2 k)`` of the
      Lorentzian part for a window of k FWHM (4 % for the default k = 8; more
      for peaks broader than ``max_window / window``), is thereby given back
      to the window. The Gaussian and the erf are evaluated within +- 2 FWHM
      (``u = 2x/H`` up to 4), where the Gaussian has fallen to 2^-16 of its
      maximum (3e-6 of its area lies beyond) and erf(u) is -+1 to 1.5e-8;
      further out the profile is ``eta``-weighted Lorentzian times
      ``1 -+ a_p``. Bins outside the grid are dropped after normalisation: a
      peak at the edge keeps only what falls on the grid.
    * speed: every peak of the batch is rendered at once, as rows of a
      (peaks, window) tensor added into the profiles by one ``scatter_add``;
      peaks are grouped into a few classes of window sizes (growing by 1.3)
      so narrow peaks do not pay for the broadest one's window. Negative
      ``broadening`` values count as 0.

``background_noise`` (stage ``profile``)
    A smooth background, an optional amorphous hump, then counting and
    detector noise, all relative to each pattern's maximum ``M``:

    * a polynomial background (random Chebyshev series of order
      ``background_order``, shifted and scaled to span [0, background * M]),
      plus ``decay * M * exp(-2theta / decay_width)`` at low angles (air
      scatter and the direct beam);
    * with probability ``amorphous_probability`` a broad Gaussian hump of an
      amorphous phase (glass, a capillary, a polymer film) of height
      ``amorphous_amplitude * M``;
    * Gaussian noise of sd ``sqrt(noise^2 M^2 + counting_noise^2 M I)``:
      white noise of sd ``noise * M`` (detector and electronics) and counting
      noise, Poisson statistics in the Gaussian limit, sd ``sqrt(I / s)`` for
      counts ``I * s`` with ``s = 1 / (counting_noise^2 M)``: a relative sd of
      ``counting_noise`` at the maximum, which then holds
      ``1 / counting_noise^2`` counts. The two are independent Gaussians and
      are drawn as one.

    The result is clamped at 0: a counting detector never reports negative
    counts.

``edge_crop`` (stage ``profile``)
    Bins with centres below ``low`` or from ``high`` up are set to 0, as when
    a pattern's ends are cut off (high background at low angles, a limited
    goniometer range); the zeros are only at the ends.

Random parameters are :class:`~xrdframe.distribution.Distribution` laws, one
draw per pattern from the CPU generator. Their defaults are the training
regime; an invariance test set draws them from ranges that do not overlap
(the paper's Table 1 idea).

>>> import torch
>>> from xrdframe.augmentation import PeakBatch, TwoThetaGrid
>>> from xrdframe.diffraction import PeakList
>>> import numpy as np
>>> peaks = PeakList(two_theta=np.array([30.0, 60.0]), intensity=np.array([100.0, 50.0]),
...                  hkl=np.array([[1, 0, 0], [2, 0, 0]]), d=np.array([2.976, 1.541]),
...                  multiplicity=np.array([6, 6]), wavelength=1.5406)
>>> batch = PeakBatch.from_peak_lists([peaks])
>>> render = PseudoVoigt(PseudoVoigtParams())
>>> profile = render(batch, TwoThetaGrid(), torch.Generator().manual_seed(0))
>>> round(float(profile.intensity.sum()), 2)
150.0
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from xrdframe.augmentation import PeakBatch, ProfileBatch, TwoThetaGrid
from xrdframe.component import Component, param
from xrdframe.distribution import Distribution, latin_hypercube
from xrdframe.validators import positive, probability

if TYPE_CHECKING:
    import torch

__all__ = [
    "COMPONENTS",
    "BackgroundNoise",
    "BackgroundNoiseParams",
    "EdgeCrop",
    "EdgeCropParams",
    "PseudoVoigt",
    "PseudoVoigtParams",
    "caglioti_fwhm",
    "tch_combine",
    "tch_split",
]


# ----------------------------------------------------------------------------------------------- validators


def _random(default: Distribution, *, doc: str, unit: str | None = None, validator: Any = None) -> Any:
    """A random parameter: like :func:`xrdframe.component.param`, also taking spec data in Python."""
    return attrs.field(default=default, converter=Distribution.parse, validator=validator,
                       metadata={"doc": doc, "unit": unit})


def _within(low: float | None = None, high: float | None = None, what: str = "values") -> Any:
    """attrs validator: every possible draw of a Distribution lies in [low, high]."""

    def check(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
        lo, hi = value.support()
        if (low is not None and lo < low) or (high is not None and hi > high):
            bounds = (f"in [{low}, {high}]" if low is not None and high is not None
                      else f">= {low}" if low is not None else f"<= {high}")
            raise ValueError(f"{what} must be {bounds}; the law {value.to_spec()} reaches [{lo}, {hi}]")

    return check


def _is_zero(law: Distribution) -> bool:
    """Whether every draw of ``law`` is 0 (the operation it scales can be skipped)."""
    return law.support() == (0.0, 0.0)




def _order(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not 0 <= value <= 12:
        raise ValueError(f"must be an integer in [0, 12], got {value}")


# ----------------------------------------------------------------------------------------------- physics


#: Thompson-Cox-Hastings coefficients: FWHM^5 = sum_k TCH_FWHM[k] G^(5-k) L^k.
TCH_FWHM = (1.0, 2.69269, 2.42843, 4.47163, 0.07842, 1.0)
#: eta = sum_k TCH_ETA[k] q^(k+1), q = L / FWHM.
TCH_ETA = (1.36603, -0.47719, 0.11116)


def caglioti_fwhm(two_theta: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w: torch.Tensor,
                  min_fwhm: float = 0.0) -> torch.Tensor:
    """FWHM (deg 2theta) from Caglioti's ``H^2 = U tan^2(theta) + V tan(theta) + W``, H^2 >= min_fwhm^2.

    ``two_theta`` in degrees (angles above 179 deg are taken as 179 deg, where
    tan(theta) is still finite); U, V, W in deg^2, broadcast against it.

    >>> import torch
    >>> one = torch.tensor(1.0)
    >>> round(float(caglioti_fwhm(torch.tensor(90.0), 0.03 * one, -0.02 * one, 0.01 * one)), 6)  # sqrt(0.02)
    0.141421
    >>> round(float(caglioti_fwhm(torch.tensor(90.0), 0.0 * one, -0.02 * one, 0.01 * one, 0.02)), 6)  # clamped
    0.02
    """
    import torch

    tan = torch.tan(torch.deg2rad(two_theta.clamp(max=179.0) / 2.0))
    square = (u * tan + v) * tan + w
    return torch.sqrt(square.clamp(min=min_fwhm * min_fwhm))


def _eta_of_q(q: torch.Tensor) -> torch.Tensor:
    return q * (TCH_ETA[0] + q * (TCH_ETA[1] + q * TCH_ETA[2]))


def _tch_fwhm(gauss: torch.Tensor, lorentz: torch.Tensor) -> torch.Tensor:
    g, l_ = gauss, lorentz  # Horner in L with powers of G (products, not the slow generic pow)
    g2 = g * g
    g3 = g2 * g
    g4 = g3 * g
    total = TCH_FWHM[5] * l_ + TCH_FWHM[4] * g
    total = total * l_ + TCH_FWHM[3] * g2
    total = total * l_ + TCH_FWHM[2] * g3
    total = total * l_ + TCH_FWHM[1] * g4
    total = total * l_ + TCH_FWHM[0] * (g4 * g)
    return total.clamp(min=0.0) ** 0.2


def tch_split(eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian and Lorentzian FWHM, as fractions of the FWHM, of the Voigt a pseudo-Voigt of mixing ``eta`` stands for.

    Inverts Thompson, Cox & Hastings (1987): ``eta = 1.36603 q - 0.47719 q^2 +
    0.11116 q^3`` with ``q = L / H`` (increasing on [0, 1], solved by Newton),
    then ``H^5 = G^5 + 2.69269 G^4 L + ... + L^5`` for ``G / H`` (increasing and
    convex in G, Newton from G = H converges from above).

    >>> import torch
    >>> g, l = tch_split(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    >>> [round(x, 4) for x in g.tolist()], [round(x, 4) for x in l.tolist()]
    ([1.0, 0.7533, 0.0], [0.0, 0.4222, 1.0])
    """
    import torch

    eta = eta.double().clamp(0.0, 1.0)
    q = eta.clone()
    for _ in range(6):  # converged to 1e-15 after 4 iterations, for every eta in [0, 1]
        slope = TCH_ETA[0] + q * (2.0 * TCH_ETA[1] + 3.0 * TCH_ETA[2] * q)
        q = (q - (_eta_of_q(q) - eta) / slope).clamp(0.0, 1.0)
    t = torch.ones_like(q)
    for _ in range(16):  # converged to 1e-15 after 12 iterations
        value = _tch_fwhm(t, q) ** 5 - 1.0
        slope = sum(TCH_FWHM[k] * (5 - k) * t ** (4 - k) * q ** k for k in range(5))
        t = (t - value / slope.clamp(min=1e-12)).clamp(0.0, 1.0)
    return t, q


def tch_combine(gauss: torch.Tensor, lorentz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FWHM and eta of the pseudo-Voigt standing for a Voigt of Gaussian and Lorentzian FWHM (TCH 1987).

    >>> import torch
    >>> h, eta = tch_combine(torch.tensor([0.1, 0.0]), torch.tensor([0.0, 0.2]))
    >>> [round(x, 4) for x in h.tolist()], [round(x, 4) for x in eta.tolist()]
    ([0.1, 0.2], [0.0, 1.0])
    """
    import torch

    fwhm = _tch_fwhm(gauss, lorentz)
    q = torch.where(fwhm > 0, lorentz / fwhm.clamp(min=1e-30), torch.zeros_like(fwhm))
    return fwhm, _eta_of_q(q.clamp(0.0, 1.0))


# ----------------------------------------------------------------------------------------------- pseudo_voigt


@attrs.frozen
class PseudoVoigtParams:
    """Parameters of ``pseudo_voigt``; the defaults are the training regime.

    The default U, V, W ranges keep ``V^2 < 4 U W`` for every draw, so FWHM^2 is
    positive at every angle (no clamping): the FWHM runs from sqrt(W) =
    0.045-0.1 deg at low angles to 0.07-0.27 deg at 2theta = 120 deg, a
    laboratory diffractometer's range.
    """

    U: Distribution = _random(
        Distribution.uniform(0.004, 0.02), validator=_within(0.0, None, "U"), unit="deg^2",
        doc="Caglioti U, the tan^2(theta) term of FWHM^2: the broadening growing with angle")
    V: Distribution = _random(
        Distribution.uniform(-0.005, 0.0), unit="deg^2",
        doc="Caglioti V, the tan(theta) term of FWHM^2, usually negative; where U, V, W make FWHM^2 < min_fwhm^2 "
            "it is clamped to min_fwhm^2")
    W: Distribution = _random(
        Distribution.uniform(0.002, 0.01), validator=_within(0.0, None, "W"), unit="deg^2",
        doc="Caglioti W, the constant term of FWHM^2: sqrt(W) is the FWHM at 2theta = 0 (source and slits)")
    eta: Distribution = _random(
        Distribution.uniform(0.1, 0.7), validator=_within(0.0, 1.0, "eta"),
        doc="pseudo-Voigt mixing: the Lorentzian fraction of the area (0 Gaussian, 1 Lorentzian)")
    asymmetry: Distribution = _random(
        Distribution.uniform(0.0, 0.3), validator=_within(-1.0, 1.0, "asymmetry"),
        doc="erf asymmetry a_p = -asymmetry cos(2theta_p) of the factor 1 + a_p erf(2 x / FWHM): > 0 gives "
            "low-angle tails below 90 deg, high-angle tails above (axial divergence); |asymmetry| <= 1")
    sampling: Literal["latin_hypercube", "independent"] = param(
        "latin_hypercube", doc="draw U, V, W, eta, asymmetry jointly by Latin-hypercube sampling over the batch, "
                               "or independently")
    window: float = param(8.0, validator=positive, unit="FWHM",
                          doc="half width of the window each peak is evaluated on; the Lorentzian tail beyond it "
                              "(1 - 2/pi arctan(2 window) of the Lorentzian area, 4 % at 8) goes back to the window")
    max_window: float = param(1.0, validator=positive, unit="deg",
                              doc="cap on the half width of the window (bounds memory and time for broad peaks)")
    min_fwhm: float = param(0.02, validator=positive, unit="deg",
                            doc="smallest FWHM rendered (FWHM^2 is clamped to min_fwhm^2); keep it >= the grid "
                                "step so peaks are sampled by at least a few bins")


#: Half width of the core of a window, in FWHM, where the Gaussian and the erf are evaluated: beyond it
#: the Gaussian is below 2^-16 = 1.5e-5 of its maximum (3e-6 of its area lies beyond) and erf(2x/H) is +-1
#: to 1.5e-8.
_CORE = 2.0
#: Lorentzian tails are followed down to this fraction of the pattern's highest peak (then renormalised).
_TAIL_EPS = 1e-4
#: Ratio of successive window sizes of the width classes.
_GROWTH = 1.3
_LN2 = math.log(2.0)


class _Workspace(threading.local):
    """Scratch buffers reused from call to call (a fresh 50 MB tensor costs page faults every time)."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, Any, Any], torch.Tensor] = {}

    def get(self, name: str, numel: int, dtype: Any, device: Any) -> torch.Tensor:
        import torch

        key = (name, dtype, device)
        buf = self.buffers.get(key)
        if buf is None or buf.numel() < numel:
            buf = torch.empty(max(numel, int(1.25 * (0 if buf is None else buf.numel()))), dtype=dtype,
                              device=device)
            self.buffers[key] = buf
        return buf[:numel]


class PseudoVoigt:
    """The ``pseudo_voigt`` render operator (see the module docstring for the physics)."""

    stage: ClassVar[str] = "render"

    def __init__(self, params: PseudoVoigtParams) -> None:
        self.params = params
        self._work = _Workspace()

    def __getstate__(self) -> dict[str, Any]:  # picklable (data-loader workers): scratch buffers are not sent
        return {"params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["params"])  # type: ignore[misc]

    def draw(self, n: int, generator: torch.Generator, device: Any = "cpu") -> dict[str, torch.Tensor]:
        """Per-pattern U, V, W, eta, asymmetry: (n,) float32 tensors on ``device``."""
        p = self.params
        names = ("U", "V", "W", "eta", "asymmetry")
        u = latin_hypercube(n, len(names), generator) if p.sampling == "latin_hypercube" else None
        return {name: getattr(p, name).sample(n, generator, u=None if u is None else u[:, i], device=device)
                for i, name in enumerate(names)}

    def widths(self, batch: PeakBatch, draws: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P) FWHM (deg) and eta of every peak: Caglioti, then the Lorentzian ``broadening`` (TCH)."""
        import torch

        p = self.params
        col = {k: v[:, None] for k, v in draws.items()}
        fwhm = caglioti_fwhm(batch.two_theta, col["U"], col["V"], col["W"], p.min_fwhm)
        eta = col["eta"].expand_as(fwhm)
        if batch.broadening is not None:
            gauss, lorentz = (x.to(torch.float32)[:, None] for x in tch_split(draws["eta"].double()))
            # Voigt of the instrument's Gaussian and Lorentzian parts plus the sample's Lorentzian broadening,
            # as a pseudo-Voigt (float32: 1e-7 relative); padding and unbroadened peaks come out unchanged
            h = fwhm.to(torch.float32)
            fwhm, eta = tch_combine(gauss * h, torch.addcmul(batch.broadening.to(torch.float32), lorentz, h))
        return fwhm, eta

    def __call__(self, batch: PeakBatch, grid: TwoThetaGrid, generator: torch.Generator) -> ProfileBatch:
        import torch

        device = batch.device
        draws = self.draw(batch.size, generator, device)
        fwhm, eta = self.widths(batch, draws)
        asym = -draws["asymmetry"][:, None] * torch.cos(torch.deg2rad(batch.two_theta.float()))
        out = self.render(batch, grid, fwhm, eta, asym)
        return ProfileBatch(out, grid, batch)

    def render(self, batch: PeakBatch, grid: TwoThetaGrid, fwhm: torch.Tensor, eta: torch.Tensor,
               asym: torch.Tensor) -> torch.Tensor:
        """(B, n_bins) profiles of peaks of given (B, P) FWHM (deg), eta and erf asymmetry a_p.

        Peaks are grouped by the half width their window needs (``window * FWHM``,
        capped at ``max_window``), rounded up to a few sizes growing by a factor
        1.3, so narrow peaks are not evaluated on the window of the broadest.
        """
        import torch

        p = self.params
        device = batch.device
        n_bins, step = grid.n_bins, grid.step
        b_size = batch.size
        position = (batch.two_theta.float() - grid.start) / step  # in bins from the grid start
        centre = torch.floor(position)
        fwhm = fwhm.float().clamp(min=1e-3 * step)
        cap = max(1, math.ceil(p.max_window / step))
        # a peak's window reaches out until its Lorentzian tail, eta (2/pi) / (H (1 + 4 x^2)) per degree at x
        # FWHM from the centre, falls below _TAIL_EPS of the pattern's highest peak (between _CORE and `window`
        # FWHM): weak peaks get short windows; the profile is renormalised within the window either way
        height = batch.intensity.float().abs() / fwhm
        top = torch.where(batch.mask, height, torch.zeros_like(height)).amax(dim=1, keepdim=True).clamp(min=1e-30)
        reach = (0.5 * torch.sqrt((2 / math.pi) * eta.float() * height / (_TAIL_EPS * top))).clamp(_CORE, p.window)
        half = torch.ceil(fwhm * reach / step).clamp(1, cap)
        # peaks whose window touches the grid, with some intensity: a flat list of M peaks
        keep = batch.mask & (batch.intensity != 0) & (centre >= -half) & (centre < n_bins + half)
        flat = torch.nonzero(keep.view(-1), as_tuple=True)[0]
        padded = n_bins + 4 * cap  # rows padded on both sides by two of the largest half windows
        out = torch.zeros(b_size * padded, dtype=torch.float32, device=device)
        if flat.numel():
            sizes = sorted({min(cap, math.ceil(_GROWTH ** k)) for k in range(int(math.log(cap, _GROWTH)) + 2)})
            group = torch.bucketize(half.view(-1)[flat], torch.tensor(sizes, dtype=half.dtype, device=device))
            group, order = torch.sort(group, stable=True)  # the peaks of a width class next to each other
            flat = flat[order]
            take = lambda x: x.reshape(-1)[flat]  # noqa: E731
            rows = torch.div(flat, keep.shape[1], rounding_mode="floor")
            peaks = (rows * padded + 2 * cap + take(centre).long(), take(position) - take(centre), take(fwhm),
                     take(eta).float(), take(asym).float(), take(batch.intensity).float())
            counts = torch.bincount(group, minlength=len(sizes)).tolist()
            empty = torch.zeros(len(sizes), dtype=torch.float32, device=device)
            widest = empty.scatter_reduce(0, group, peaks[2], "amax", include_self=False).tolist()
            narrowest = empty.scatter_reduce(0, group, peaks[2], "amin", include_self=False).tolist()
            asymmetric = bool((peaks[4] != 0).any())
            first = 0
            for size, count, h_max, h_min in zip(sizes, counts, widest, narrowest, strict=True):  # width classes
                if count:
                    core = min(size, math.ceil(_CORE * h_max / step))
                    u_max = 2.0 * step * (core + 1) / h_min  # largest |u| on the core
                    self._add_peaks(out, *(x[first:first + count] for x in peaks), size, core, step, asymmetric,
                                    u_max * u_max + 1.0 > 126.0)
                    first += count
        return out.view(b_size, padded)[:, 2 * cap:2 * cap + n_bins].contiguous()

    def _add_peaks(self, out: torch.Tensor, start: torch.Tensor, frac: torch.Tensor, fwhm: torch.Tensor,
                   eta: torch.Tensor, asym: torch.Tensor, intensity: torch.Tensor, half: int, core: int,
                   step: float, asymmetric: bool = True, clamp: bool = True) -> None:
        """Add M peaks to the flat padded output: a few passes over an (M, 2 half + 1) window tensor.

        ``start``: flat output index of each peak's centre bin; ``frac``: position of
        the peak inside its centre bin, in [0, 1).
        """
        import torch

        device = out.device
        m, width = int(start.numel()), 2 * half + 1
        lo, hi = half - core, half + core + 1
        offsets = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
        # u = 2 (x - x_p) / H = g (d + f): d the bin offset, f = 1/2 - frac the centre bin's offset from the peak
        g = ((2.0 * step) / fwhm)[:, None]
        f = (0.5 - frac)[:, None]
        t = self._work.get("t", m * width, torch.float32, device).view(m, width)
        torch.addcmul(g * f, g, offsets, out=t)  # u for now
        t_core = t[:, lo:hi]
        a = asym[:, None]
        if asymmetric:  # the factor 1 + a erf(u) on the core (erf(u) = -+1 to 1.5e-8 on the tails)
            factor = self._work.get("e", m * (hi - lo), torch.float32, device).view(m, hi - lo)
            torch.erf(t_core, out=factor)
            torch.addcmul(torch.ones((), device=device), factor, a, out=factor)
        torch.addcmul(torch.ones((), device=device), t, t, out=t)  # 1 + u^2
        # Gaussian of FWHM H on the core: exp(-ln2 u^2) = 2 * 2^-(1 + u^2) (exp2 kept above -126: no denormals)
        gauss = self._work.get("g", m * (hi - lo), torch.float32, device).view(m, hi - lo)
        if clamp:
            torch.clamp(t_core, max=126.0, out=gauss)
            gauss.neg_()
        else:
            torch.neg(t_core, out=gauss)
        gauss.exp2_()
        t.reciprocal_()  # Lorentzian of FWHM H everywhere: 1 / (1 + u^2)
        # mixing: the unit-area shapes are (2/H) sqrt(ln2/pi) exp(-ln2 u^2) and (2/H) / (pi (1 + u^2))
        c_gauss = (1.0 - eta) * (4.0 * math.sqrt(_LN2 / math.pi))  # x 2 for 2^-(1 + u^2)
        c_lorentz = eta / math.pi
        w_gauss = (c_gauss / (c_gauss + c_lorentz))[:, None]
        t_core.lerp_(gauss, w_gauss)
        if asymmetric:
            t_core.mul_(factor)
        tail = 1.0 - w_gauss
        left, right = tail * (1.0 - a), tail * (1.0 + a)
        total = t_core.sum(dim=1, keepdim=True)
        if lo > 0:
            total = total + left * t[:, :lo].sum(dim=1, keepdim=True) + right * t[:, hi:].sum(dim=1, keepdim=True)
        scale = intensity[:, None] / total
        t_core.mul_(scale)
        if lo > 0:
            t[:, :lo].mul_(left * scale)
            t[:, hi:].mul_(right * scale)
        index = self._work.get("i", m * width, torch.int64, device).view(m, width)
        torch.add((start - half)[:, None], torch.arange(width, device=device), out=index)
        out.scatter_add_(0, index.view(-1), t.view(-1))


# ----------------------------------------------------------------------------------------------- background_noise


@attrs.frozen
class BackgroundNoiseParams:
    """Parameters of ``background_noise``; amplitudes are relative to each pattern's maximum M.

    The defaults are the training regime: noise up to 1 % of M, at least 2500
    counts at the maximum, backgrounds up to 10 % of M, a hump in one pattern
    out of five.
    """

    noise: Distribution = _random(
        Distribution.uniform(0.0, 0.01), validator=_within(0.0, None, "noise"),
        doc="sd of white Gaussian noise (detector, electronics), relative to the maximum M")
    counting_noise: Distribution = _random(
        Distribution.uniform(0.0, 0.02), validator=_within(0.0, None, "counting_noise"),
        doc="counting (Poisson) noise: sd counting_noise sqrt(I M), the relative sd at the maximum, where "
            "1/counting_noise^2 counts are recorded")
    background: Distribution = _random(
        Distribution.uniform(0.0, 0.1), validator=_within(0.0, None, "background"),
        doc="height of the smooth polynomial background (from its minimum 0 to its maximum), relative to M")
    background_order: int = param(4, validator=_order, doc="order of the random Chebyshev series of the background")
    decay: Distribution = _random(
        Distribution.uniform(0.0, 0.1), validator=_within(0.0, None, "decay"),
        doc="height at 2theta = 0 of the exponential low-angle background (air scatter, direct beam), relative "
            "to M")
    decay_width: Distribution = _random(
        Distribution.uniform(3.0, 10.0), validator=_within(1e-6, None, "decay_width"), unit="deg",
        doc="e-folding angle of the low-angle background")
    amorphous_probability: float = param(0.2, validator=probability,
                                         doc="probability that a pattern gets an amorphous hump")
    amorphous_position: Distribution = _random(
        Distribution.uniform(15.0, 35.0), unit="deg", doc="2theta of the amorphous hump's maximum")
    amorphous_fwhm: Distribution = _random(
        Distribution.uniform(5.0, 15.0), validator=_within(1e-6, None, "amorphous_fwhm"), unit="deg",
        doc="FWHM of the amorphous hump (a Gaussian)")
    amorphous_amplitude: Distribution = _random(
        Distribution.uniform(0.02, 0.1), validator=_within(0.0, None, "amorphous_amplitude"),
        doc="height of the amorphous hump, relative to M")


class BackgroundNoise:
    """The ``background_noise`` profile operator (see the module docstring)."""

    stage: ClassVar[str] = "profile"

    def __init__(self, params: BackgroundNoiseParams) -> None:
        self.params = params

    def __call__(self, batch: ProfileBatch, generator: torch.Generator) -> ProfileBatch:
        import torch

        p = self.params
        profile = batch.intensity.float()
        n, device = profile.shape[0], profile.device
        grid = batch.grid
        centres = grid.centers(device).to(torch.float32)
        top = profile.amax(dim=1, keepdim=True).clamp_(min=0.0)  # M, per pattern
        draw = lambda law: law.sample(n, generator, device=device)[:, None]  # noqa: E731
        noise, counting = draw(p.noise), draw(p.counting_noise)
        background, decay, decay_width = draw(p.background), draw(p.decay), draw(p.decay_width)
        extra = None  # everything added to the profile, (n, n_bins)
        if not _is_zero(p.background):
            coef = torch.rand(n, p.background_order + 1, generator=generator, dtype=torch.float32) * 2.0 - 1.0
            x = (2.0 * (centres - grid.start) / (grid.stop - grid.start) - 1.0).clamp(-1.0, 1.0)
            order = torch.arange(p.background_order + 1, dtype=torch.float32, device=device)
            basis = torch.cos(order[:, None] * torch.acos(x)[None, :])  # T_k(x) = cos(k arccos x)
            extra = coef.to(device) @ basis
            low, high = extra.amin(dim=1, keepdim=True), extra.amax(dim=1, keepdim=True)  # (aminmax: 20x slower)
            gain = background * top / (high - low).clamp(min=1e-12)
            torch.addcmul(-low * gain, extra, gain, out=extra)  # from 0 to background * M
        if not _is_zero(p.decay):
            # exp(-2theta / width) = 2^(-2theta / (width ln 2)), kept above 2^-126 (no denormals)
            curve = torch.mul(centres[None, :], -1.0 / (decay_width * _LN2)).clamp_(min=-126.0).exp2_()
            extra = curve.mul_(decay * top) if extra is None else extra.addcmul_(curve, decay * top)
        if p.amorphous_probability > 0:
            present = torch.rand(n, generator=generator) < p.amorphous_probability
            position, fwhm, height = draw(p.amorphous_position), draw(p.amorphous_fwhm), draw(p.amorphous_amplitude)
            rows = torch.nonzero(present, as_tuple=True)[0].to(device)
            if rows.numel():  # exp(-4 ln2 z^2) = 2^(-4 z^2), z = (2theta - position) / FWHM
                inv = 1.0 / fwhm[rows]
                hump = torch.addcmul(-position[rows] * inv, centres[None, :], inv)
                hump.square_().mul_(-4.0).clamp_(min=-126.0).exp2_().mul_(height[rows] * top[rows])
                if extra is None:
                    extra = torch.zeros_like(profile)
                extra.index_add_(0, rows, hump)
        out = profile.clone() if extra is None else extra.add_(profile)
        if not (_is_zero(p.noise) and _is_zero(p.counting_noise)):
            z = torch.randn(out.shape, generator=generator, dtype=torch.float32).to(device)
            # variance (noise M)^2 + counting^2 M I: white and counting noise, independent, drawn as one
            sd = torch.addcmul((noise * top) ** 2, out.clamp(min=0.0), counting * counting * top).sqrt_()
            out.addcmul_(sd, z)
        out.clamp_(min=0.0)
        return batch.evolve(intensity=out)


# ----------------------------------------------------------------------------------------------- edge_crop


def _crop_ranges(instance: Any, attribute: attrs.Attribute, value: Distribution) -> None:
    if instance is None:  # validated field by field (after a sibling failed): the sibling is not known
        return
    low, high = instance.low, value
    if not low.support()[1] < high.support()[0]:
        raise ValueError(f"every low cut must be below every high cut: low {low.to_spec()} reaches "
                         f"{low.support()[1]}, high {high.to_spec()} reaches down to {high.support()[0]}")


@attrs.frozen
class EdgeCropParams:
    """Parameters of ``edge_crop``; the defaults (training) cut up to 10 deg at the low end and up to 30 deg at the
    high end of the default 0-120 deg grid. Every possible low cut must lie below every possible high cut."""

    low: Distribution = _random(Distribution.uniform(0.0, 10.0), unit="deg",
                                doc="low cut: bins with centres below it are set to 0")
    high: Distribution = _random(Distribution.uniform(90.0, 120.0), validator=_crop_ranges, unit="deg",
                                 doc="high cut: bins with centres at or above it are set to 0")


class EdgeCrop:
    """The ``edge_crop`` profile operator: zeros below ``low`` and from ``high`` up."""

    stage: ClassVar[str] = "profile"

    def __init__(self, params: EdgeCropParams) -> None:
        self.params = params

    def __call__(self, batch: ProfileBatch, generator: torch.Generator) -> ProfileBatch:
        import torch

        profile = batch.intensity
        n, device = profile.shape[0], profile.device
        low = self.params.low.sample(n, generator, device=device)[:, None]
        high = self.params.high.sample(n, generator, device=device)[:, None]
        centres = batch.grid.centers(device)[None, :]
        inside = (centres >= low) & (centres < high)
        return batch.evolve(intensity=torch.where(inside, profile, torch.zeros((), dtype=profile.dtype,
                                                                              device=device)))


COMPONENTS: list[Component] = [
    Component("pseudo_voigt", PseudoVoigt, PseudoVoigtParams,
              "render peaks as asymmetric pseudo-Voigt profiles, Caglioti widths (U, V, W, eta, asymmetry drawn "
              "by Latin hypercube), intensities conserved", requires=("torch",)),
    Component("background_noise", BackgroundNoise, BackgroundNoiseParams,
              "add a smooth background, low-angle decay, optional amorphous hump, white and counting noise",
              requires=("torch",)),
    Component("edge_crop", EdgeCrop, EdgeCropParams,
              "crop the profile's ends at random angles and zero-pad them", requires=("torch",)),
]


def benchmark(batch_size: int = 256, peaks: int = 300, repeats: int = 20, seed: int = 0) -> dict[str, float]:
    """Patterns per second of ``pseudo_voigt`` alone and of [pseudo_voigt, background_noise, edge_crop].

    Default parameters and grid (6000 bins); ``peaks`` +- 50 random peaks per
    pattern between 5 and 120 deg; the best of ``repeats`` runs (other load on
    the machine only slows runs down).
    """
    import time

    import torch

    from xrdframe.augmentation import AugmentationChain

    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(peaks - 50, peaks + 51, (batch_size, 1), generator=generator)
    width = int(counts.max())
    mask = torch.arange(width)[None, :] < counts
    two_theta = 5.0 + 115.0 * torch.rand(batch_size, width, generator=generator)
    intensity = 0.1 + 99.9 * torch.rand(batch_size, width, generator=generator)
    batch = PeakBatch(two_theta=two_theta * mask, intensity=intensity * mask, mask=mask, wavelength=1.5406)
    render = PseudoVoigt(PseudoVoigtParams())
    chain = AugmentationChain([render, BackgroundNoise(BackgroundNoiseParams()), EdgeCrop(EdgeCropParams())])
    grid = TwoThetaGrid()

    def best(run: Any) -> float:
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return batch_size / min(times)

    return {"pseudo_voigt": best(lambda: render(batch, grid, generator)),
            "chain": best(lambda: chain(batch, generator))}

