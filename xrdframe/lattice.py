"""Lattice geometry in the indexer's terms: the reciprocal metric as the six Q coefficients.

For a cell with reciprocal metric tensor G*, the squared inverse d-spacing of reflection hkl is

    Q(hkl) = 1/d^2 = h^2 A + k^2 B + l^2 C + hk D + hl E + kl F,

with A = a*^2, B = b*^2, C = c*^2, D = 2 a* b* cos(gamma*), E = 2 a* c* cos(beta*), F = 2 b* c* cos(alpha*)
(International Tables vol. C, 1.1; the notation of the TREOR and ITO programs). Q is in Angstrom^-2.

>>> coeffs = q_coefficients((5.0, 5.0, 5.0, 90.0, 90.0, 90.0))
>>> round(float(q_values(np.array([[1, 1, 1]]), coeffs)[0]), 6)   # 3 / a^2
0.12
>>> [round(x, 6) for x in cell_from_q_coefficients(coeffs)]
[5.0, 5.0, 5.0, 90.0, 90.0, 90.0]
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import attrs
import gemmi
import numpy as np

__all__ = ["q_coefficients", "cell_from_q_coefficients", "q_values", "cell_volume", "two_theta_to_q",
           "q_to_two_theta", "Cell", "NiggliReduction", "LatticeMatch", "LatticeRMSE", "transform_cell",
           "centring_matrix", "centring_mask", "niggli_reduction", "niggli_cell", "bravais_lattice_of",
           "lattice_symmetry", "conventional_cell", "same_lattice", "match_setting", "lattice_rmse"]

Cell = tuple[float, float, float, float, float, float]


def centring_mask(hkl: np.ndarray, centring: str) -> np.ndarray:
    """Reflections allowed by a lattice centring (P, I, F, A, B, C, R obverse on hexagonal axes)."""
    hkl = np.asarray(hkl, dtype=np.int64)
    h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]  # noqa: E741 (Miller indices)
    if centring == "I":
        return (h + k + l) % 2 == 0
    if centring == "F":
        return ((h + k) % 2 == 0) & ((k + l) % 2 == 0)
    if centring == "C":
        return (h + k) % 2 == 0
    if centring == "A":
        return (k + l) % 2 == 0
    if centring == "B":
        return (h + l) % 2 == 0
    if centring == "R":
        return (-h + k + l) % 3 == 0
    return np.ones(len(hkl), dtype=bool)


def _metric(cell: Sequence[float]) -> np.ndarray:
    a, b, c, alpha, beta, gamma = (float(x) for x in cell)
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def q_coefficients(cell: Sequence[float]) -> np.ndarray:
    """The six coefficients ``(A, B, C, D, E, F)`` of Q(hkl) for a cell ``(a, b, c, alpha, beta, gamma)``
    (Angstrom, degrees); Angstrom^-2."""
    g = np.linalg.inv(_metric(cell))
    return np.array([g[0, 0], g[1, 1], g[2, 2], 2 * g[0, 1], 2 * g[0, 2], 2 * g[1, 2]])


def cell_from_q_coefficients(coeffs: Sequence[float]) -> Cell:
    """The cell ``(a, b, c, alpha, beta, gamma)`` whose Q coefficients are ``coeffs``.

    :raises ValueError: when the coefficients are not a positive-definite metric (no real cell).
    """
    A, B, C, D, E, F = (float(x) for x in coeffs)
    g_star = np.array([[A, D / 2, E / 2], [D / 2, B, F / 2], [E / 2, F / 2, C]])
    if np.any(np.linalg.eigvalsh(g_star) <= 0):
        raise ValueError(f"Q coefficients {tuple(coeffs)} are not a positive-definite reciprocal metric")
    g = np.linalg.inv(g_star)
    a, b, c = np.sqrt(np.diag(g))
    alpha = np.degrees(np.arccos(g[1, 2] / (b * c)))
    beta = np.degrees(np.arccos(g[0, 2] / (a * c)))
    gamma = np.degrees(np.arccos(g[0, 1] / (a * b)))
    return (float(a), float(b), float(c), float(alpha), float(beta), float(gamma))


def q_values(hkl: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Q = 1/d^2 (Angstrom^-2) of reflections ``hkl`` (shape (..., 3)) for coefficients ``coeffs`` of shape
    (6,) or (m, 6) (then the result has shape (m, ...))."""
    h, k, l = (np.asarray(hkl, dtype=float)[..., i] for i in range(3))  # noqa: E741 (Miller indices)
    terms = np.stack([h * h, k * k, l * l, h * k, h * l, k * l], axis=-1)  # (..., 6)
    coeffs = np.asarray(coeffs, dtype=float)
    if coeffs.ndim == 1:
        return terms @ coeffs
    return np.einsum("...j,mj->m...", terms, coeffs)


def cell_volume(cell: Sequence[float]) -> float:
    """Volume of a cell, Angstrom^3."""
    return float(np.sqrt(max(np.linalg.det(_metric(cell)), 0.0)))


def two_theta_to_q(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
    """Q = 1/d^2 = (2 sin(theta) / lambda)^2, Angstrom^-2, from 2theta in degrees and lambda in Angstrom."""
    return (2.0 * np.sin(np.radians(np.asarray(two_theta, dtype=float)) / 2.0) / wavelength) ** 2


def q_to_two_theta(q: np.ndarray, wavelength: float) -> np.ndarray:
    """2theta in degrees of Q = 1/d^2 (Angstrom^-2) at wavelength lambda (Angstrom); NaN beyond 180 degrees."""
    s = np.sqrt(np.asarray(q, dtype=float)) * wavelength / 2.0
    with np.errstate(invalid="ignore"):
        return np.degrees(2.0 * np.arcsin(np.where(s <= 1.0, s, np.nan)))


# ---------------------------------------------------------------------------------------------
# Cell reduction and Bravais lattices.
#
# Conventions. A change of basis is a 3x3 matrix P with (a', b', c') = (a, b, c) P: its columns are the new basis
# vectors in coordinates of the old basis, the metric transforms as G' = P^T G P and Miller indices as
# h' = h P (International Tables vol. A (2016), section 1.5.1). Centring letters are those of the space-group
# symbols (P A B C I F, and R for a rhombohedral lattice on hexagonal axes, obverse setting).

#: Pearson symbol -> (crystal system, centring letter of the conventional cell).
_LATTICE_TYPES: dict[str, tuple[str, str]] = {
    "aP": ("triclinic", "P"), "mP": ("monoclinic", "P"), "mC": ("monoclinic", "C"),
    "oP": ("orthorhombic", "P"), "oC": ("orthorhombic", "C"), "oI": ("orthorhombic", "I"),
    "oF": ("orthorhombic", "F"), "tP": ("tetragonal", "P"), "tI": ("tetragonal", "I"), "hR": ("trigonal", "R"),
    "hP": ("hexagonal", "P"), "cP": ("cubic", "P"), "cI": ("cubic", "I"), "cF": ("cubic", "F"),
}
# A symmorphic space group (standard setting) whose rotations are the holohedry of each lattice system; hR uses
# R-3m on hexagonal axes.
_HOLOHEDRY_SPACE_GROUP = {"a": "P -1", "m": "P 1 2/m 1", "o": "P m m m", "t": "P 4/m m m", "hR": "R -3 m:H",
                          "hP": "P 6/m m m", "c": "P m -3 m"}
_CENTRING_TRANSLATIONS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "P": (), "A": ((0, 0.5, 0.5),), "B": ((0.5, 0, 0.5),), "C": ((0.5, 0.5, 0),), "I": ((0.5, 0.5, 0.5),),
    "F": ((0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
    "R": ((2 / 3, 1 / 3, 1 / 3), (1 / 3, 2 / 3, 2 / 3)),  # obverse, hexagonal axes
    "R_reverse": ((1 / 3, 2 / 3, 1 / 3), (2 / 3, 1 / 3, 2 / 3)),
}


def _cell_tuple(cell: Sequence[float]) -> Cell:
    values = tuple(float(x) for x in cell)
    if len(values) != 6:
        raise ValueError(f"a cell is (a, b, c, alpha, beta, gamma), got {cell!r}")
    a, b, c, alpha, beta, gamma = values
    if not (all(np.isfinite(values)) and min(a, b, c) > 0 and all(0 < x < 180 for x in (alpha, beta, gamma))):
        raise ValueError(f"not a unit cell: {cell!r}")
    if np.linalg.det(_metric(values)) <= 0:
        raise ValueError(f"the angles of {cell!r} do not make a cell (non-positive volume)")
    return (a, b, c, alpha, beta, gamma)


def _cell_from_metric(g: np.ndarray) -> Cell:
    a, b, c = np.sqrt(np.diag(g))
    alpha = np.degrees(np.arccos(np.clip(g[1, 2] / (b * c), -1, 1)))
    beta = np.degrees(np.arccos(np.clip(g[0, 2] / (a * c), -1, 1)))
    gamma = np.degrees(np.arccos(np.clip(g[0, 1] / (a * b), -1, 1)))
    return (float(a), float(b), float(c), float(alpha), float(beta), float(gamma))


def transform_cell(cell: Sequence[float], transformation: np.ndarray) -> Cell:
    """The cell spanned by ``(a', b', c') = (a, b, c) P`` for ``P = transformation`` (3x3; columns are the new
    basis vectors in the old basis; International Tables vol. A (2016), 1.5.1).

    >>> [round(x, 4) for x in transform_cell((4, 4, 4, 90, 90, 90), np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 1]]))]
    [5.6569, 5.6569, 4.0, 90.0, 90.0, 90.0]
    """
    p = np.asarray(transformation, dtype=float)
    return _cell_from_metric(p.T @ _metric(_cell_tuple(cell)) @ p)


def centring_matrix(centring: str) -> np.ndarray:
    """The change of basis from a centred cell to a primitive cell of its lattice, (a', b', c') = (a, b, c) P
    (International Tables vol. A (2016), Table 1.5.1.1; gemmi's ``centred_to_primitive``; R: obverse hexagonal
    axes to rhombohedral axes)."""
    cob = gemmi.GruberVector(gemmi.UnitCell(10, 10, 10, 90, 90, 90 if centring != "R" else 120), centring,
                             True).change_of_basis
    return np.array(cob.rot, dtype=float) / gemmi.Op.DEN


@attrs.frozen(eq=False)
class NiggliReduction:
    """A Niggli-reduced primitive cell and the change of basis that gives it.

    :ivar cell: the Niggli cell ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees (a <= b <= c; all angles
        acute or all non-acute).
    :ivar transformation: P (3x3) with (Niggli basis) = (input basis) P; rational for a centred input, with
        det P = 1 / (number of lattice points of the input cell).
    """

    cell: Cell
    transformation: np.ndarray


def niggli_reduction(cell: Sequence[float], centring: str = "P", relative_epsilon: float = 1e-5) -> NiggliReduction:
    """The Niggli-reduced primitive cell of the lattice of ``cell`` (with centring ``centring``) and the change of
    basis to it.

    Křivý & Gruber (1976), Acta Cryst. A32, 297, with the comparisons made to within ``relative_epsilon`` times
    V^(2/3) (Grosse-Kunstleve, Sauter & Adams (2004), Acta Cryst. A60, 1), as implemented by gemmi's
    ``GruberVector``.

    >>> red = niggli_reduction((5.6402, 5.6402, 5.6402, 90, 90, 90), "F")
    >>> [round(x, 4) for x in red.cell]
    [3.9882, 3.9882, 3.9882, 60.0, 60.0, 60.0]
    >>> float(round(np.linalg.det(red.transformation), 6))
    0.25
    """
    cell = _cell_tuple(cell)
    if centring not in _CENTRING_TRANSLATIONS or centring == "R_reverse":
        raise ValueError(f"unknown centring {centring!r}; expected one of P A B C I F R")
    vector = gemmi.GruberVector(gemmi.UnitCell(*cell), centring, True)
    n_points = 1 + len(_CENTRING_TRANSLATIONS[centring])
    epsilon = relative_epsilon * (cell_volume(cell) / n_points) ** (2 / 3)
    vector.niggli_reduce(epsilon=epsilon, iteration_limit=1000)
    p = np.array(vector.change_of_basis.rot, dtype=float) / gemmi.Op.DEN
    if np.linalg.det(p) < 0:  # the inversion keeps the metric; keep the basis right-handed
        p = -p
    return NiggliReduction(transform_cell(cell, p), p)


def niggli_cell(cell: Sequence[float], centring: str = "P") -> Cell:
    """The Niggli-reduced primitive cell of a lattice (see :func:`niggli_reduction`).

    >>> [round(x, 2) for x in niggli_cell((3.0, 3.0, 3.0, 90, 90, 90), "I")]   # bcc: a sqrt(3)/2, 109.47 deg
    [2.6, 2.6, 2.6, 109.47, 109.47, 109.47]
    """
    return niggli_reduction(cell, centring).cell


def bravais_lattice_of(space_group: int) -> str:
    """The Bravais lattice (Pearson symbol) of a space group: trigonal P groups give hP, R groups hR, monoclinic
    A/C/I-centred groups mC and orthorhombic A/B/C-centred groups oC.

    >>> bravais_lattice_of(14), bravais_lattice_of(15), bravais_lattice_of(64), bravais_lattice_of(167)
    ('mP', 'mC', 'oC', 'hR')
    >>> bravais_lattice_of(152), bravais_lattice_of(227)
    ('hP', 'cF')
    """
    from xrdframe.symmetry import symmetry_labels  # symmetry imports nothing from here; keep the import light

    labels = symmetry_labels(space_group)
    letter = labels.centring
    system = labels.crystal_system
    if system == "triclinic":
        return "aP"
    if system == "monoclinic":
        return "mP" if letter == "P" else "mC"
    if system == "orthorhombic":
        return {"P": "oP", "A": "oC", "B": "oC", "C": "oC", "I": "oI", "F": "oF"}[letter]
    if system in ("trigonal", "hexagonal"):
        return "hR" if letter == "R" else "hP"
    return system[0] + letter


@functools.cache
def _holohedry(lattice: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotations of the lattice point group in conventional coordinates (acting on fractional coordinates,
    x' = R x), shape (n, 3, 3), and its twofold rotations, shape (m, 3, 3)."""
    key = lattice if lattice in _HOLOHEDRY_SPACE_GROUP else lattice[0]
    ops = gemmi.SpaceGroup(_HOLOHEDRY_SPACE_GROUP[key]).operations().sym_ops
    rotations = np.array([np.array(op.rot) // gemmi.Op.DEN for op in ops], dtype=np.int64)
    proper = rotations[np.round(np.linalg.det(rotations)).astype(int) == 1]
    twofolds = proper[np.trace(proper, axis1=1, axis2=2) == -1]
    return rotations, twofolds


def _twofold_obliquity(g: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Le Page's obliquity (degrees) of twofold rotations ``rotations`` (m, 3, 3) in a cell of metric ``g``: the
    angle between the direct lattice row along the axis and the normal of the lattice plane it should be
    perpendicular to (Le Page (1982), J. Appl. Cryst. 15, 255)."""
    if len(rotations) == 0:
        return np.zeros(0)
    eye = np.eye(3, dtype=np.int64)
    # R + 1 has rank one for a twofold: its non-zero columns are along the axis u; (R^T + 1) gives the normal h
    plus = rotations + eye
    u = plus[np.arange(len(rotations)), :, np.argmax(np.abs(plus).sum(axis=1), axis=1)]
    plus_t = np.transpose(rotations, (0, 2, 1)) + eye
    h = plus_t[np.arange(len(rotations)), :, np.argmax(np.abs(plus_t).sum(axis=1), axis=1)]
    return _obliquity(u.astype(float), h.astype(float), g)


def _obliquity(u: np.ndarray, h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Angle (degrees) between direct rows ``u`` (..., 3) and reciprocal rows ``h`` (..., 3) in metric ``g``."""
    g_star = np.linalg.inv(g)
    uu = np.einsum("...i,ij,...j->...", u, g, u)
    hh = np.einsum("...i,ij,...j->...", h, g_star, h)
    cos = np.abs(np.einsum("...i,...i->...", u, h)) / np.sqrt(uu * hh)
    return np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))


@functools.cache
def _rows(limit: int, primitive_only: bool = True) -> np.ndarray:
    """Integer vectors with components in -limit..limit, one of each +- pair (first non-zero component positive),
    gcd 1 when ``primitive_only``; sorted by sum of squares."""
    r = np.arange(-limit, limit + 1)
    v = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    first = np.array([row[np.flatnonzero(row)[0]] if row.any() else 0 for row in v])
    v = v[first > 0]
    if primitive_only:
        v = v[np.gcd.reduce(np.abs(v), axis=1) == 1]
    return v[np.argsort((v * v).sum(axis=1), kind="stable")]


def _centring_of(m: np.ndarray) -> str | None:
    """The centring letter of the cell spanned by the integer columns of ``m`` (in a primitive basis), or None
    when it is not a standard centring (a supercell that is not a centred cell)."""
    det = round(abs(float(np.linalg.det(m))))
    if det == 0 or det > 4:
        return None
    generators = np.linalg.inv(m).T  # rows: the primitive basis vectors in the new coordinates
    points = {(0, 0, 0)}
    frontier = [np.zeros(3)]
    while frontier:
        x = frontier.pop()
        for gen in generators:
            y = (x + gen) % 1.0
            key = tuple(int(v) % 12 for v in np.round(y * 12))
            if key not in points:
                points.add(key)
                frontier.append(y)
        if len(points) > 4:
            return None
    for letter, translations in _CENTRING_TRANSLATIONS.items():
        want = {(0, 0, 0)} | {tuple(int(round(v * 12)) % 12 for v in t) for t in translations}
        if points == want:
            return letter
    return None


@attrs.frozen(eq=False)
class LatticeMatch:
    """A Bravais lattice compatible with a cell's metric, with its conventional cell.

    :ivar bravais_lattice: Pearson symbol (one of ``xrdframe.indexing.BRAVAIS_LATTICES``).
    :ivar crystal_system: the lattice's crystal family name ('trigonal' for hR, 'hexagonal' for hP).
    :ivar cell: the conventional cell ``(a, b, c, alpha, beta, gamma)`` (Angstrom, degrees) spanned by the input
        lattice, in the standard setting: monoclinic unique axis b, beta >= 90, C-centred for mC; orthorhombic
        C-centred for oC (a < b), otherwise a <= b <= c; hR on hexagonal axes, obverse. Not symmetrised.
    :ivar ideal_cell: ``cell`` with the metric averaged over the lattice point group (exactly of the lattice's
        symmetry: a = b for tetragonal, gamma = 120 for hexagonal axes, ...).
    :ivar transformation: P with (conventional basis) = (input basis) P, 3x3.
    :ivar obliquity: the misfit, degrees: the largest Le Page obliquity of the lattice's twofold axes (0 for an
        exact metric). For a tetragonal cell with a = b (1 + eps), about eps radians.
    """

    bravais_lattice: str
    crystal_system: str
    cell: Cell
    ideal_cell: Cell
    transformation: np.ndarray
    obliquity: float

    @property
    def centring(self) -> str:
        """Centring letter of the conventional cell (P, C, I, F or R)."""
        return _LATTICE_TYPES[self.bravais_lattice][1]


# holohedry order, for ranking (highest symmetry first)
_ORDER = {"aP": 2, "mP": 4, "mC": 4, "oP": 8, "oC": 8, "oI": 8, "oF": 8, "hR": 12, "tP": 16, "tI": 16,
          "hP": 24, "cP": 48, "cI": 48, "cF": 48}


def _twofold_axes(g: np.ndarray, tolerance: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Le Page's search: lattice rows u (components -2..2 in the reduced basis) that are twofold axes to within
    ``tolerance`` degrees, each with its reciprocal row h (|u.h| = 1 or 2) and obliquity."""
    u = _rows(2)
    h = _rows(2)
    dots = np.abs(u @ h.T)
    delta = _obliquity(u[:, None, :].astype(float), h[None, :, :].astype(float), g)
    delta = np.where((dots == 1) | (dots == 2), delta, np.inf)
    best = np.argmin(delta, axis=1)
    best_delta = delta[np.arange(len(u)), best]
    keep = np.flatnonzero(best_delta <= tolerance)
    return [(u[i], h[best[i]], float(best_delta[i])) for i in keep]


def _angle(g: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(u @ g @ v / np.sqrt((u @ g @ u) * (v @ g @ v)), -1, 1))))


def _gauss_reduce(g: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of a 2D lattice basis (integer rows) in metric g: |p1| <= |p2|, |2 p1.p2| <= p1.p1."""
    for _ in range(100):
        if p1 @ g @ p1 > p2 @ g @ p2:
            p1, p2 = p2, p1
        k = int(np.round((p1 @ g @ p2) / (p1 @ g @ p1)))
        if k == 0:
            break
        p2 = p2 - k * p1
    return p1, p2


def _monoclinic_bases(g: np.ndarray, u: np.ndarray, h: np.ndarray) -> list[np.ndarray]:
    """Conventional monoclinic bases (columns a, b, c in the reduced basis) with b along the twofold axis u."""
    plane = _rows(3, primitive_only=False)
    plane = plane[(plane @ h) == 0]
    if len(plane) < 2:
        return []
    lengths = np.einsum("ni,ij,nj->n", plane, g, plane)
    plane = plane[np.argsort(lengths, kind="stable")]
    p1 = plane[0]
    p2 = next((v for v in plane[1:] if np.array_equal(np.abs(np.cross(p1, v)), np.abs(h))), None)
    if p2 is None:
        return []
    p1, p2 = _gauss_reduce(g, p1, p2)
    index = abs(int(u @ h))
    if index == 1:  # mP: a, c the reduced plane basis
        choices = [(p1, p2)]
    else:  # mC: a in (centring parity) + 2 P, c completing the plane basis, reduced against a
        t = np.linalg.solve(np.column_stack([p1, u, p2]).astype(float), np.eye(3)).T  # rows: reduced basis vectors
        frac = [x for x in (t % 1.0) if not np.allclose(x, np.round(x))]
        if not frac:
            return []
        x_par, z_par = (int(round(2 * frac[0][0])) % 2, int(round(2 * frac[0][2])) % 2)
        choices = []
        for m1 in range(-4, 5):
            for m2 in range(-4, 5):
                if (m1 % 2, m2 % 2) != (x_par, z_par) or np.gcd(m1, m2) != 1:
                    continue
                a = m1 * p1 + m2 * p2
                _, s, t2 = _extended_gcd(m1, m2)  # m1 s + m2 t2 = +-1: c = -t2 p1 + s p2 completes the basis
                if abs(m1 * s + m2 * t2) != 1:
                    continue
                c = -t2 * p1 + s * p2
                k = int(np.round((a @ g @ c) / (a @ g @ a)))
                choices.append((a, c - k * a))
    bases = []
    for a, c in choices:
        if _angle(g, a, c) < 90:
            c = -c
        b = u if np.linalg.det(np.column_stack([a, u, c])) > 0 else -u
        bases.append(np.column_stack([a, b, c]))
    if index == 2:  # the shortest a + c, then beta closest to 90 (the reduced C-centred choice)
        def key(m: np.ndarray) -> tuple[float, float]:
            a, c = np.sqrt(m[:, 0] @ g @ m[:, 0]), np.sqrt(m[:, 2] @ g @ m[:, 2])
            return (round(float(a + c), 6), abs(_angle(g, m[:, 0], m[:, 2]) - 90))
        bases = sorted(bases, key=key)[:1]
    else:
        a_len, c_len = (float(bases[0][:, i] @ g @ bases[0][:, i]) for i in (0, 2))
        if a_len > c_len:  # a <= c
            m = bases[0]
            bases = [np.column_stack([m[:, 2], -m[:, 1], m[:, 0]])]
    return bases


def _extended_gcd(a: int, b: int) -> tuple[int, int, int]:
    if b == 0:
        return (abs(a), 1 if a >= 0 else -1, 0)
    g, x, y = _extended_gcd(b, a % b)
    return g, y, x - (a // b) * y


def _orthogonal_bases(g: np.ndarray, axes: list[np.ndarray], tolerance: float) -> list[np.ndarray]:
    """Bases of three mutually (nearly) perpendicular twofold axes, right-handed."""
    out = []
    for i, j, k in itertools.combinations(range(len(axes)), 3):
        u, v, w = axes[i], axes[j], axes[k]
        if max(abs(_angle(g, x, y) - 90) for x, y in ((u, v), (u, w), (v, w))) > 3 * tolerance:
            continue
        m = np.column_stack([u, v, w])
        if np.linalg.det(m) < 0:
            m[:, 2] *= -1
        out.append(m)
    return out


def _hexagonal_bases(g: np.ndarray, axes: list[np.ndarray], tolerance: float) -> list[np.ndarray]:
    """Bases (a, b, c) with a, b twofold axes at 120 degrees and c the shortest row perpendicular to them."""
    out = []
    rows = _rows(3)
    for i, j in itertools.permutations(range(len(axes)), 2):
        a, b = axes[i], axes[j]
        angle = _angle(g, a, b)
        if abs(angle - 60) <= 3 * tolerance:
            b = -b
        elif abs(angle - 120) > 3 * tolerance:
            continue
        normal = np.cross(a, b)  # reciprocal row normal to the (a, b) plane
        delta = _obliquity(rows.astype(float), np.broadcast_to(normal.astype(float), rows.shape), g)
        near = np.flatnonzero(delta <= max(3 * tolerance, 1e-6))
        if len(near) == 0:
            continue
        c = rows[near[np.argmin(np.einsum("ni,ij,nj->n", rows[near], g, rows[near]))]]
        if c @ normal < 0:
            c = -c
        out.append(np.column_stack([a, b, c]))
    return out


def _standard_orthorhombic(g: np.ndarray, m: np.ndarray, centring: str) -> np.ndarray:
    """Orthorhombic setting: C-centred face for A/B, a < b for C; a <= b <= c for P, I, F; right-handed."""
    if centring == "A":
        m = m[:, [1, 2, 0]]
    elif centring == "B":
        m = m[:, [2, 0, 1]]
    lengths = np.einsum("ji,jk,ki->i", m, g, m)
    if centring in ("A", "B", "C"):
        if lengths[0] > lengths[1]:
            m = m[:, [1, 0, 2]]
    else:
        m = m[:, np.argsort(lengths, kind="stable")]
    if np.linalg.det(m) < 0:
        m[:, 2] *= -1
    return m


def lattice_symmetry(cell: Sequence[float], centring: str = "P", tolerance_degrees: float = 0.1) -> list[LatticeMatch]:
    """The Bravais lattices compatible with the metric of a cell, highest symmetry first.

    The cell (with centring ``centring``) is reduced to its Niggli cell; Le Page's search finds the lattice rows
    that are twofold axes to within ``tolerance_degrees`` of obliquity (Le Page (1982), J. Appl. Cryst. 15, 255);
    conventional bases are built from them (three perpendicular axes for orthorhombic, tetragonal and cubic
    lattices, two at 120 degrees and their normal row for hexagonal axes, one axis and its reduced
    perpendicular net for monoclinic), their centring is read from the change of basis, and each is kept when
    every twofold axis of its lattice point group has an obliquity within the tolerance. One match per Bravais
    lattice (the smallest obliquity), ranked by the order of the lattice point group, then obliquity; aP (the
    Niggli cell) is always last.

    :param cell: ``(a, b, c, alpha, beta, gamma)``, Angstrom and degrees, any setting.
    :param centring: centring letter of ``cell`` (P A B C I F R; R = rhombohedral lattice on hexagonal axes).
    :param tolerance_degrees: largest obliquity accepted, degrees. For a tetragonal a and b differing by a fraction
        eps the obliquity is about eps radians: the default 0.1 degree accepts 0.17 %, which suits refined cells
        (Le Page's 1-3 degrees suit raw single-crystal cells). Real structures can be metrically pseudo-symmetric
        well within this (a monoclinic beta of 90.05 degrees): the metric alone does not decide the system.

    >>> [m.bravais_lattice for m in lattice_symmetry((3.9882, 3.9882, 3.9882, 60, 60, 60))]
    ['cF', 'tI', 'hR', 'oF', 'oI', 'mC', 'aP']
    >>> [round(x, 4) for x in lattice_symmetry((3.9882, 3.9882, 3.9882, 60, 60, 60))[0].cell]
    [5.6402, 5.6402, 5.6402, 90.0, 90.0, 90.0]
    """
    cell = _cell_tuple(cell)
    reduction = niggli_reduction(cell, centring)
    g = _metric(reduction.cell)
    axes = [u for u, _, _ in _twofold_axes(g, tolerance_degrees)]
    candidates: list[tuple[str, np.ndarray]] = [("aP", np.eye(3, dtype=np.int64))]
    for u, h, _ in _twofold_axes(g, tolerance_degrees):
        for m in _monoclinic_bases(g, u, h):
            candidates.append(("mP" if _centring_of(m) == "P" else "mC", m))
    for m in _orthogonal_bases(g, axes, tolerance_degrees):
        letter = _centring_of(m)
        if letter is None or letter == "R":
            continue
        candidates.append(("o" + ("C" if letter in "ABC" else letter), _standard_orthorhombic(g, m, letter)))
        if letter in ("P", "I", "F"):
            candidates.append(("c" + letter, m))
        for shift in range(3):  # each axis as the tetragonal c
            mt = np.roll(m, -shift - 1, axis=1)
            letter_t = _centring_of(mt)
            if letter_t in ("P", "I"):
                candidates.append(("t" + letter_t, mt))
    for m in _hexagonal_bases(g, axes, tolerance_degrees):
        letter = _centring_of(m)
        if letter == "P":
            candidates.append(("hP", m))
        elif letter == "R":
            candidates.append(("hR", m))
        elif letter == "R_reverse":
            candidates.append(("hR", m * np.array([-1, -1, 1])))
    best: dict[str, LatticeMatch] = {}
    for lattice, m in candidates:
        if _centring_of(m) not in (_LATTICE_TYPES[lattice][1], "P" if lattice == "aP" else None):
            continue
        gc = m.T @ g @ m
        rotations, twofolds = _holohedry(lattice)
        obliquity = float(_twofold_obliquity(gc, twofolds).max(initial=0.0))
        if obliquity > tolerance_degrees:
            continue
        ideal = np.mean(np.transpose(rotations, (0, 2, 1)) @ gc @ rotations, axis=0)
        p = reduction.transformation @ m
        match = LatticeMatch(lattice, _LATTICE_TYPES[lattice][0], _cell_from_metric(gc), _cell_from_metric(ideal),
                             p, obliquity)
        if lattice not in best or obliquity < best[lattice].obliquity - 1e-9:
            best[lattice] = match
    return sorted(best.values(), key=lambda m: (-_ORDER[m.bravais_lattice], m.obliquity,
                                                _BRAVAIS_ORDER.index(m.bravais_lattice)))


_BRAVAIS_ORDER = ("cF", "cI", "cP", "hP", "tI", "tP", "hR", "oF", "oI", "oC", "oP", "mC", "mP", "aP")


def conventional_cell(cell: Sequence[float], bravais_lattice: str, centring: str = "P",
                      tolerance_degrees: float = 0.1) -> Cell:
    """The conventional cell (standard setting, see :class:`LatticeMatch`) of ``bravais_lattice`` spanned by the
    lattice of ``cell``; the metric is not symmetrised.

    :raises ValueError: when the lattice is not compatible with the cell's metric within the tolerance.

    >>> [round(x, 2) for x in conventional_cell((5.128, 5.128, 5.128, 55.28, 55.28, 55.28), "hR")]
    [4.76, 4.76, 12.99, 90.0, 90.0, 120.0]
    """
    if bravais_lattice not in _LATTICE_TYPES:
        raise ValueError(f"unknown Bravais lattice {bravais_lattice!r}; expected one of {tuple(_LATTICE_TYPES)}")
    for match in lattice_symmetry(cell, centring, tolerance_degrees):
        if match.bravais_lattice == bravais_lattice:
            return match.cell
    raise ValueError(f"the metric of {tuple(cell)} ({centring}) is not compatible with {bravais_lattice} within "
                     f"{tolerance_degrees} degrees")


def _parse_cells(args: tuple[object, ...], keywords: dict[str, object]) -> tuple[Cell, str, Cell, str, list[float]]:
    """(cell1, [centring1], cell2, [centring2], [numbers...]) -> the two cells, their centrings and the numbers."""
    cells: list[list[object]] = []
    numbers: list[float] = []
    for arg in args:
        if isinstance(arg, str):
            if not cells or len(cells[-1]) != 1:
                raise TypeError(f"centring {arg!r} must follow a cell")
            cells[-1].append(arg)
        elif isinstance(arg, (int, float, np.floating, np.integer)):
            numbers.append(float(arg))
        else:
            cells.append([arg])
    if len(cells) != 2:
        raise TypeError("expected two cells, each optionally followed by its centring letter")
    (c1, *z1), (c2, *z2) = cells
    centring1 = str(keywords.get("centring1") or (z1[0] if z1 else "P"))
    centring2 = str(keywords.get("centring2") or (z2[0] if z2 else "P"))
    return _cell_tuple(c1), centring1, _cell_tuple(c2), centring2, numbers  # type: ignore[arg-type]


def same_lattice(cell1: Sequence[float], *args: object, centring1: str | None = None, centring2: str | None = None,
                 length_tolerance: float = 0.005, volume_tolerance: float = 0.01) -> bool:
    """Whether two cells span the same lattice, as the indexing benchmark counts it: the Niggli-reduced primitive
    cells have their three lengths within ``length_tolerance`` (relative, 0.5 %) and their volumes within
    ``volume_tolerance`` (relative, 1 %).

    Called as ``same_lattice(cell1, cell2)``, ``same_lattice(cell1, 'F', cell2, 'P')`` (each cell followed by its
    centring letter, P when omitted) or with ``centring1=``/``centring2=``; two trailing numbers are the
    tolerances. Niggli lengths are ordered a <= b <= c and continuous in the metric except at rare boundaries.

    >>> same_lattice((5.6402, 5.6402, 5.6402, 90, 90, 90), "F", (3.9882, 3.9882, 3.9882, 60, 60, 60), "P")
    True
    >>> same_lattice((5.6402, 5.6402, 5.6402, 90, 90, 90), "P", (3.9882, 3.9882, 3.9882, 60, 60, 60), "P")
    False
    """
    c1, z1, c2, z2, numbers = _parse_cells((cell1, *args), {"centring1": centring1, "centring2": centring2})
    if numbers:
        length_tolerance = numbers[0]
    if len(numbers) > 1:
        volume_tolerance = numbers[1]
    r1, r2 = niggli_cell(c1, z1), niggli_cell(c2, z2)
    l1, l2 = np.array(r1[:3]), np.array(r2[:3])
    v1, v2 = cell_volume(r1), cell_volume(r2)
    return bool(np.all(np.abs(l1 - l2) <= length_tolerance * l2) and abs(v1 - v2) <= volume_tolerance * v2)


@functools.cache
def _unimodular() -> np.ndarray:
    """The integer matrices with entries -1..1 and determinant +-1, (n, 3, 3), identity first."""
    r = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=np.int64).reshape(-1, 3, 3)
    det = np.round(np.linalg.det(r)).astype(int)
    r = r[np.abs(det) == 1]
    is_identity = np.all(r == np.eye(3, dtype=np.int64), axis=(1, 2))
    return np.concatenate([r[is_identity], r[~is_identity]])


def match_setting(cell_pred: Sequence[float], cell_true: Sequence[float], centring_pred: str = "P",
                  centring_true: str = "P") -> Cell:
    """The basis of the lattice of ``cell_pred`` that best matches the setting of ``cell_true``.

    Both cells are Niggli-reduced; among the unimodular changes of basis with entries -1, 0, 1 of the predicted
    Niggli cell (which relate the reduced cells of equal or nearly equal lattices, ambiguities at reduction
    boundaries included) the one whose metric is closest to the true Niggli metric (relative Frobenius norm) is
    taken, and the true cell's change of basis from its Niggli cell is applied to it. Axis permutations
    (orthorhombic), a/c exchange (monoclinic), sign and origin-free choices of the same lattice are thus matched.
    When the lattices differ (a wrong cell, a sub- or super-cell) the result is the closest basis in that sense.

    >>> [round(x, 3) for x in match_setting((6, 5, 7, 90, 90, 90), (5.01, 6.01, 7.01, 90, 90, 90))]
    [5.0, 6.0, 7.0, 90.0, 90.0, 90.0]
    """
    pred = niggli_reduction(cell_pred, centring_pred)
    true = niggli_reduction(cell_true, centring_true)
    gp, gt = _metric(pred.cell), _metric(true.cell)
    u = _unimodular().astype(float)
    metrics = np.transpose(u, (0, 2, 1)) @ gp @ u
    distance = np.sqrt(((metrics - gt) ** 2).sum(axis=(1, 2))) / np.linalg.norm(gt)
    best = u[int(np.argmin(distance))]
    p = pred.transformation @ best @ np.linalg.inv(true.transformation)
    return transform_cell(cell_pred, p)


class LatticeRMSE(NamedTuple):
    """Root-mean-square differences of two cells in the same setting."""

    lengths: float  # of a, b, c, Angstrom
    angles: float  # of alpha, beta, gamma, degrees


def lattice_rmse(cell_pred: Sequence[float], cell_true: Sequence[float], centring_pred: str = "P",
                 centring_true: str = "P") -> LatticeRMSE:
    """RMSE of lengths (Angstrom) and angles (degrees) between a predicted and a true cell, after expressing the
    predicted lattice in the setting of the true cell (:func:`match_setting`). Give both in their conventional
    settings with their centring letters; the comparison is then of conventional cells.

    >>> r = lattice_rmse((6.0, 5.0, 7.0, 90, 90, 90), (5.0, 6.0, 7.03, 90, 90, 90))
    >>> round(r.lengths, 4), round(r.angles, 4)
    (0.0173, 0.0)
    """
    matched = np.array(match_setting(cell_pred, cell_true, centring_pred, centring_true))
    true = np.array(_cell_tuple(cell_true))
    diff = matched - true
    return LatticeRMSE(float(np.sqrt(np.mean(diff[:3] ** 2))), float(np.sqrt(np.mean(diff[3:] ** 2))))
