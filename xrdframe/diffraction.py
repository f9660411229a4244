"""Powder diffraction peaks of a crystal structure.

For each symmetry-distinct reflection hkl (systematic absences removed):

* Bragg's law gives the angle: ``lambda = 2 d sin(theta)``.
* The structure factor sums over every atom j of the unit cell,
  ``F(hkl) = sum_j occ_j f_j(s) exp(-B_j s^2) exp(2 pi i (h x_j + k y_j + l z_j))``
  with ``s = sin(theta)/lambda = 1/(2d)`` and ``f_j`` the X-ray form factor of
  International Tables vol. C, Table 6.1.1.4 (the IT92 four-Gaussian fit).
* The powder multiplicity m is the number of distinct reflections in the orbit
  of hkl under the Laue group (point group plus Friedel's law).
* The Lorentz-polarization factor for an unpolarized beam without
  monochromator is ``LP = (1 + cos^2 2theta) / (sin^2 theta cos theta)``.
* The integrated intensity is ``I = m |F|^2 LP``, scaled to 100 for the strongest
  reflection.

This follows the kinematic treatment of B. D. Cullity, *Elements of X-ray
Diffraction*, ch. 4, as pymatgen's ``analysis/diffraction/xrd.py`` does, but
computes one reflection per symmetry orbit, vectorized over reflections and atoms.

>>> import numpy as np
>>> from xrdframe.structure import Structure
>>> nacl = Structure(cell=(5.6402, 5.6402, 5.6402, 90, 90, 90), space_group=225,
...                  fract=[[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0],
...                         [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
...                  elements=["Na"] * 4 + ["Cl"] * 4, occupancy=np.ones(8), b_iso=np.zeros(8))
>>> peaks = simulate_peaks(nacl, wavelength=1.5406, two_theta_range=(0, 60))
>>> [tuple(int(i) for i in h) for h in peaks.hkl]
[(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2)]
>>> peaks.multiplicity.tolist()
[8, 6, 12, 24, 8]
>>> round(float(peaks.two_theta[1]), 2)  # the strongest line, NaCl (200)
31.7
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import attrs
import gemmi
import numpy as np

from xrdframe.errors import XrdframeError
from xrdframe.structure import Structure, read_structure, space_group_setting

__all__ = [
    "WAVELENGTHS",
    "FormFactor",
    "it92_form_factor",
    "mott_bethe_form_factor",
    "PeakList",
    "bragg_two_theta",
    "lorentz_polarization",
    "powder_multiplicity",
    "reflection_orbits",
    "structure_factors",
    "simulate_peaks",
]

#: Characteristic X-ray wavelengths, Angstrom (International Tables vol. C, Table 4.2.2.1).
WAVELENGTHS: Mapping[str, float] = {
    "CuKa": 1.54184,
    "CuKa1": 1.54056,
    "CuKa2": 1.54439,
    "MoKa": 0.71073,
    "MoKa1": 0.70930,
    "MoKa2": 0.71359,
    "CoKa": 1.79026,
    "CoKa1": 1.78896,
    "FeKa": 1.93735,
    "CrKa": 2.29100,
    "AgKa": 0.56087,
}


@attrs.frozen(eq=False)
class PeakList:
    """Powder peaks, one per symmetry-distinct reflection, sorted by two_theta.

    :ivar two_theta: peak positions, degrees.
    :ivar d: d-spacings, Angstrom.
    :ivar hkl: Miller indices, shape (n, 3), one representative per orbit.
    :ivar multiplicity: powder multiplicities.
    :ivar intensity: integrated intensities with Lorentz-polarization, strongest = 100.
    :ivar wavelength: Angstrom.
    """

    two_theta: np.ndarray
    d: np.ndarray
    hkl: np.ndarray
    multiplicity: np.ndarray
    intensity: np.ndarray
    wavelength: float

    def __len__(self) -> int:
        return int(self.two_theta.shape[0])


def bragg_two_theta(d: np.ndarray, wavelength: float) -> np.ndarray:
    """Diffraction angle 2theta (degrees) of d-spacings ``d`` (Angstrom); NaN beyond reach."""
    ratio = wavelength / (2.0 * np.asarray(d, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.where(ratio <= 1.0, 2.0 * np.degrees(np.arcsin(np.minimum(ratio, 1.0))), np.nan)


def lorentz_polarization(two_theta: np.ndarray, monochromator_two_theta: float | None = None) -> np.ndarray:
    """Lorentz-polarization factor for 2theta in degrees.

    Without monochromator ``(1 + cos^2 2theta) / (sin^2 theta cos theta)``; with a
    monochromator crystal diffracting at 2alpha (degrees, e.g. 26.6 for graphite
    with Cu K-alpha), ``(1 + cos^2 2alpha cos^2 2theta) / ((1 + cos^2 2alpha)
    sin^2 theta cos theta)`` (International Tables vol. C, 6.2.2).

    >>> round(float(lorentz_polarization(np.array([90.0]))[0]), 6)  # (1 + 0) / (0.5 cos 45)
    2.828427
    """
    tt = np.radians(np.asarray(two_theta, dtype=np.float64))
    theta = tt / 2.0
    if monochromator_two_theta is None:
        polarization = 1.0 + np.cos(tt) ** 2
    else:
        c2a = math.cos(math.radians(monochromator_two_theta)) ** 2
        polarization = (1.0 + c2a * np.cos(tt) ** 2) / (1.0 + c2a)
    return polarization / (np.sin(theta) ** 2 * np.cos(theta))


@lru_cache(maxsize=1024)
def _laue_rotations(space_group: int, setting: str = "") -> np.ndarray:
    """Distinct rotations of the Laue group acting on row vectors hkl, shape (k, 3, 3)."""
    ops = space_group_setting(space_group, setting).operations()
    rots = {tuple(np.array(op.rot, dtype=np.int64).ravel() // gemmi.Op.DEN) for op in ops.sym_ops}
    mats = np.array(sorted(rots), dtype=np.int64).reshape(-1, 3, 3)
    return np.unique(np.concatenate([mats, -mats]), axis=0)


def reflection_orbits(hkl: np.ndarray, space_group: int, setting: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Canonical representative and powder multiplicity of each reflection.

    The orbit of hkl is its set of images under the Laue group (point group
    plus Friedel's law); the multiplicity is the orbit's size and the
    representative its lexicographically largest member, e.g. (2, 0, 0) for
    the cubic {200} family.

    >>> rep, m = reflection_orbits(np.array([[0, 0, 1], [-1, 1, 1], [3, 1, 2]]), 225)
    >>> rep.tolist(), m.tolist()
    ([[1, 0, 0], [1, 1, 1], [3, 2, 1]], [6, 8, 48])
    """
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    if hkl.size == 0:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    rots = _laue_rotations(space_group, setting)
    # each image h' = h R is encoded as the integer key (h'+s) b^2 + (k'+s) b + (l'+s); as the key is linear
    # in h', all keys come from one (n, 3) x (3, k) product: key = h . (R w) + s (b^2 + b + 1), w = (b^2, b, 1)
    span = int(np.abs(hkl).max()) * int(np.abs(rots).sum(axis=2).max()) + 1
    base = 2 * span + 1
    weights = np.array([base * base, base, 1], dtype=np.int64)
    keys = hkl @ (rots @ weights).T + span * (base * base + base + 1)  # (n, k)
    keys.sort(axis=1)
    multiplicity = 1 + np.count_nonzero(np.diff(keys, axis=1), axis=1)
    top = keys[:, -1]
    representative = np.stack([top // base**2 - span, (top // base) % base - span, top % base - span], axis=1)
    return representative, multiplicity


def powder_multiplicity(hkl: np.ndarray, space_group: int, setting: str = "") -> np.ndarray:
    """Number of distinct reflections equivalent to each hkl under the Laue group.

    >>> powder_multiplicity(np.array([[1, 0, 0], [1, 1, 1], [1, 2, 3]]), 225).tolist()
    [6, 8, 48]
    """
    return reflection_orbits(hkl, space_group, setting)[1]


@lru_cache(maxsize=256)
def _it92(element: str) -> np.ndarray:
    coefs = gemmi.Element(element).it92.get_coefs()
    return np.array(coefs, dtype=np.float64)


#: A form-factor function: ``form_factor(element, stol2) -> f`` with ``stol2 = (sin(theta)/lambda)^2``
#: in Angstrom^-2, returning the X-ray form factor (electrons) at each value.
FormFactor = Callable[[str, np.ndarray], np.ndarray]


def it92_form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
    """IT92 X-ray form factor ``sum_i a_i exp(-b_i s^2) + c`` (International Tables vol. C, 6.1.1.4).

    >>> round(float(it92_form_factor("Si", np.array([0.0]))[0]), 2)  # f(0) = Z for a neutral atom
    14.0
    """
    coefs = _it92(element)
    stol2 = np.asarray(stol2, dtype=np.float64)
    return (coefs[0:4] * np.exp(-coefs[4:8] * stol2[..., None])).sum(axis=-1) + coefs[8]


@lru_cache(maxsize=4096)
def _species(elements: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Distinct elements and, for each atom, the index of its element."""
    species, index = np.unique(np.asarray(elements), return_inverse=True)
    return tuple(str(e) for e in species), index


def mott_bethe_form_factor(electron_table: Mapping[str, Sequence[Sequence[float]]]) -> FormFactor:
    """X-ray form factors from a table of electron-scattering Gaussian fits, by the Mott-Bethe relation.

    ``f_x(s) = Z - 41.78214 s^2 sum_i a_i exp(-b_i s^2)`` with ``s = sin(theta)/lambda`` (Angstrom^-1)
    and ``electron_table[element] = [[a_1, b_1], [a_2, b_2], ...]``; 41.78214 = 8 pi^2 a_0 in
    Angstrom. This is the form pymatgen's ``XRDCalculator`` uses with its
    ``atomic_scattering_params.json`` table (International Tables vol. C, 4.3.1.2).

    >>> f = mott_bethe_form_factor({"Si": [[1.0, 1.0]]})
    >>> float(f("Si", np.array([0.0]))[0])  # f(0) = Z
    14.0
    """
    table = {element: np.asarray(coefficients, dtype=np.float64) for element, coefficients in electron_table.items()}

    def form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
        c = table[element]
        s2 = np.asarray(stol2, dtype=np.float64)
        z = gemmi.Element(element).atomic_number
        return z - 41.78214 * s2 * np.sum(c[:, 0] * np.exp(-c[:, 1] * s2[..., None]), axis=-1)

    return form_factor


def structure_factors(structure: Structure, hkl: np.ndarray, d: np.ndarray,
                      form_factor: FormFactor = it92_form_factor) -> np.ndarray:
    """Complex structure factors F(hkl) of the unit cell (electrons), vectorized.

    Atomic form factors come from ``form_factor`` (IT92 four-Gaussian fits by
    default); each atom carries its occupancy and a Debye-Waller factor
    ``exp(-B s^2)`` with ``s = 1/(2d)``.
    """
    hkl = np.asarray(hkl, dtype=np.float64)
    stol2 = 1.0 / (4.0 * np.asarray(d, dtype=np.float64) ** 2)
    species, atom_species = _species(tuple(structure.elements))
    f = np.stack([form_factor(e, stol2) for e in species])  # (species, reflections)
    atom_f = f[atom_species]  # (atoms, reflections)
    atom_f = atom_f * (structure.occupancy[:, None] * np.exp(-structure.b_iso[:, None] * stol2[None, :]))
    angle = (2.0 * np.pi) * (structure.fract @ hkl.T)  # (atoms, reflections)
    return (atom_f * np.cos(angle)).sum(axis=0) + 1j * (atom_f * np.sin(angle)).sum(axis=0)


def simulate_peaks(
    structure: Structure | str | Path,
    wavelength: float = 1.5406,
    two_theta_range: tuple[float, float] = (0.0, 120.0),
    min_relative_intensity: float = 1e-6,
    *,
    monochromator_two_theta: float | None = None,
    form_factor: FormFactor = it92_form_factor,
) -> PeakList:
    """The powder peak list of ``structure`` (a Structure or a CIF path).

    :param wavelength: X-ray wavelength, Angstrom (default Cu K-alpha1).
    :param two_theta_range: ``(min, max)`` in degrees, max <= 180.
    :param min_relative_intensity: reflections weaker than this fraction of the
        strongest (zero by accident of atom positions) are dropped.
    :param monochromator_two_theta: 2theta of a monochromator crystal, degrees,
        for the polarization factor; None for no monochromator.
    :param form_factor: X-ray form factors (IT92 by default); any function
        ``(element, stol2) -> f``.
    :returns: a :class:`PeakList` sorted by two_theta, strongest intensity 100.
    """
    if not isinstance(structure, Structure):
        structure = read_structure(structure)
    if not (isinstance(wavelength, (int, float)) and math.isfinite(wavelength) and wavelength > 0):
        raise XrdframeError(f"wavelength must be a positive number of Angstrom, got {wavelength!r}")
    lo, hi = (float(x) for x in two_theta_range)
    if not 0.0 <= lo < hi <= 180.0:
        raise XrdframeError(f"two_theta_range must satisfy 0 <= min < max <= 180 degrees, got {two_theta_range!r}")
    d_min = wavelength / (2.0 * math.sin(math.radians(hi) / 2.0))
    cell = structure.unit_cell
    hkl = np.asarray(gemmi.make_miller_array(cell, structure.gemmi_space_group, d_min, 0.0, True), dtype=np.int64)
    empty = PeakList(np.zeros(0), np.zeros(0), np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64),
                     np.zeros(0), float(wavelength))
    if hkl.size == 0:
        return empty
    d = np.asarray(cell.calculate_d_array(hkl.astype(np.int32)), dtype=np.float64)
    two_theta = bragg_two_theta(d, wavelength)
    keep = np.isfinite(two_theta) & (two_theta >= lo) & (two_theta <= hi) & (two_theta > 0)
    hkl, d, two_theta = hkl[keep], d[keep], two_theta[keep]
    if hkl.size == 0:
        return empty
    f = structure_factors(structure, hkl, d, form_factor)
    hkl, multiplicity = reflection_orbits(hkl, structure.space_group, structure.setting)
    intensity = multiplicity * np.abs(f) ** 2 * lorentz_polarization(two_theta, monochromator_two_theta)
    peak = intensity.max()
    if not peak > 0:
        return empty
    intensity = 100.0 * intensity / peak
    keep = intensity >= 100.0 * min_relative_intensity
    order = np.lexsort((hkl[keep][:, 2], hkl[keep][:, 1], hkl[keep][:, 0], two_theta[keep]))
    return PeakList(
        two_theta=two_theta[keep][order],
        d=d[keep][order],
        hkl=hkl[keep][order],
        multiplicity=multiplicity[keep][order],
        intensity=intensity[keep][order],
        wavelength=float(wavelength),
    )
