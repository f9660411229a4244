"""``random_structures``: random crystals for chosen space groups, each label verified with spglib.

How one structure is made (for space group G, drawn from ``space_groups`` with ``weights``):

1. *Sites.* 1 to ``max_atoms_asymmetric`` sites of the asymmetric unit, each on the
   general position or, with probability ``special_position_probability``, on a
   special position (a Wyckoff position with a site symmetry larger than 1). The
   cell may hold at most ``max_atoms_cell`` atoms.
2. *Lattice.* A random cell of G's crystal system in the standard setting gemmi
   uses (monoclinic unique axis b, rhombohedral groups on hexagonal axes), axis
   ratios log-uniform within 1 : 3.3, then scaled so that the volume per atom lies
   in ``volume_per_atom``.
3. *Positions.* Each site is drawn on its position, expanded by every operation
   of G (centring included) and kept only when none of its images, nor any atom
   placed before, is closer than ``min_distance`` (periodic images included).
   An atom drawn near a symmetry element is caught here: its own images come
   too close.
4. *Elements.* 1 to 4 distinct elements from the ``elements`` pool (by weight),
   one per site, each used at least once.
5. *Check.* A structure whose cell is not primitive for its group (an extra
   lattice translation) or whose spglib space group (``symprec``) is not G is
   redrawn, never mislabelled.

Special positions are derived from the operations of the group, no Wyckoff table
is typed in. The fixed points of one operation ``x -> R x + t`` (modulo lattice
translations n) solve ``(R - I) x = n - t``: a point, a line or a plane by the
rank of ``R - I``. Every Wyckoff position is the fixed set of one operation,
except points whose site symmetry is a group of proper rotations about several
axes (222, 32, 422, 622, 23, 432): those are intersections of two rotation
axes. The fixed sets are collected for every operation and every n in a small
range, intersected pairwise where they are lines, and merged into one
representative per orbit under G; the multiplicity of each is the number of
distinct images of a generic point of it, ``|G| / |site symmetry|``. The count
over the 230 groups is 1501 special positions, as in the International Tables.

>>> source = RandomStructures(RandomStructuresParams(count=2, space_groups=[62]))
>>> [s.space_group for s in source.structures(seed=1)]
[62, 62]
>>> sorted({t.multiplicity for t in special_positions(225)})
[4, 8, 24, 32, 48, 96]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from functools import cache

import attrs
import gemmi
import numpy as np

from xrdframe.component import param
from xrdframe.errors import XrdframeError
from xrdframe.sources import iter_structures
from xrdframe.structure import Structure
from xrdframe.validators import positive, probability
from xrdframe_structures.cif_dir import spglib_space_group

__all__ = [
    "DEFAULT_ELEMENTS",
    "RandomStructures",
    "RandomStructuresParams",
    "SiteType",
    "crystal_system",
    "special_positions",
]

#: Relative frequencies of the elements in inorganic crystal structures, rounded by
#: hand from the element statistics of inorganic structure databases (ICSD-like):
#: oxygen dominates, then halogens, chalcogens, pnictogens, alkali and alkaline-earth
#: metals and the common transition metals. Hydrogen (nearly invisible to X-rays and
#: mostly missing from such files) and noble gases are left out.
DEFAULT_ELEMENTS: dict[str, float] = {
    "O": 30.0, "F": 4.0, "Cl": 4.0, "Br": 1.5, "I": 1.5, "S": 4.0, "Se": 2.0, "Te": 1.2,
    "N": 3.0, "P": 3.5, "As": 1.5, "Sb": 1.2, "Bi": 1.2, "C": 2.0, "Si": 3.5, "Ge": 1.5,
    "Sn": 1.5, "Pb": 1.2, "B": 2.5, "Al": 2.5, "Ga": 1.5, "In": 1.2, "Tl": 0.6,
    "Li": 2.5, "Na": 3.5, "K": 3.0, "Rb": 1.2, "Cs": 1.5, "Be": 0.4, "Mg": 2.5, "Ca": 2.5,
    "Sr": 2.0, "Ba": 2.5, "Sc": 0.6, "Y": 1.0, "La": 1.5, "Ce": 1.0, "Pr": 0.8, "Nd": 1.0,
    "Sm": 0.7, "Eu": 0.7, "Gd": 0.7, "Ti": 1.8, "Zr": 1.2, "Hf": 0.4, "V": 1.5, "Nb": 1.2,
    "Ta": 0.8, "Cr": 1.2, "Mo": 1.5, "W": 1.2, "Mn": 2.0, "Re": 0.5, "Fe": 2.5, "Ru": 0.5,
    "Os": 0.3, "Co": 2.0, "Rh": 0.5, "Ir": 0.4, "Ni": 2.0, "Pd": 0.8, "Pt": 0.7, "Cu": 2.5,
    "Ag": 1.2, "Au": 0.5, "Zn": 1.5, "Cd": 1.0, "Hg": 0.8, "U": 0.8,
}

#: Probabilities of 1, 2, 3 and 4 distinct elements in one structure.
_SPECIES_COUNT_P = np.array([0.05, 0.35, 0.4, 0.2])
#: Axis lengths are multiplied by factors log-uniform in [1/_AXIS_SPREAD, _AXIS_SPREAD].
_AXIS_SPREAD = 1.8
#: Positions drawn at once for a site, and batches drawn before the whole attempt is given up.
_BATCH = 8
_BATCHES = 4
#: Space-group draws for one structure (each with up to max_attempts attempts) before giving up.
_GROUP_DRAWS = 20
#: Fractional tolerance under which two images of a site count as one atom.
_MERGE = 1e-5


# --------------------------------------------------------------------------- parameters



def _range(instance: object, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    lo, hi = value
    if not 0 < lo <= hi:
        raise ValueError(f"must be [low, high] with 0 < low <= high, got {list(value)}")


def _space_groups(instance: object, attribute: attrs.Attribute, value: list[int] | None) -> None:
    if value is None:
        return
    if not value:
        raise ValueError("must list at least one space group (or be null for all 230)")
    bad = [n for n in value if not 1 <= n <= 230]
    if bad:
        raise ValueError(f"space group {bad[0]} is not in 1-230")


def _weights(instance: object, attribute: attrs.Attribute, value: list[float] | None) -> None:
    if value is None:
        return
    if any(not (w >= 0 and math.isfinite(w)) for w in value):
        raise ValueError(f"weights must be finite and >= 0, got {value}")
    if not any(w > 0 for w in value):
        raise ValueError("weights are all zero; at least one space group needs a positive weight")
    groups = getattr(instance, "space_groups", None) if instance is not None else None
    expected = 230 if groups is None else len(groups)
    if instance is not None and len(value) != expected:
        what = f"space_groups has {expected}" if groups is not None else "space_groups is null (all 230 groups)"
        raise ValueError(f"weights has {len(value)} entr{'y' if len(value) == 1 else 'ies'} but {what}; "
                         f"give one weight per space group")


def _elements(instance: object, attribute: attrs.Attribute, value: list[str] | None) -> None:
    if value is None:
        return
    if not value:
        raise ValueError("must list at least one element (or be null for the default pool)")
    for symbol in value:
        element = gemmi.Element(symbol)
        if element.atomic_number == 0 or element.name != symbol:
            raise ValueError(f"unknown element symbol {symbol!r} (write it like 'O', 'Fe', 'Cl')")


@attrs.frozen
class RandomStructuresParams:
    """Parameters of ``random_structures`` (see the module documentation for how they are used)."""

    count: int = param(1000, doc="number of structures to yield", validator=positive)
    space_groups: list[int] | None = param(
        None, doc="space-group numbers (1-230) to draw from; null for all 230", validator=_space_groups)
    weights: list[float] | None = param(
        None, doc="relative weight of each entry of space_groups (230 entries when space_groups is null); "
                  "null for equal weights", validator=_weights)
    max_atoms_asymmetric: int = param(6, doc="at most this many sites in the asymmetric unit (1 to this, "
                                             "uniformly)", validator=positive)
    max_atoms_cell: int = param(200, doc="at most this many atoms in the unit cell", validator=positive)
    volume_per_atom: tuple[float, float] = param(
        (10.0, 25.0), doc="cell volume divided by the number of atoms, drawn uniformly in [low, high] "
                          "(oxides mostly 10-15, halides and chalcogenides 20-40)",
        unit="Angstrom^3", validator=_range)
    min_distance: float = param(
        1.5, doc="smallest interatomic distance allowed (periodic images included); 1.5 A is below "
                 "nearly every bond between the heavier-than-hydrogen atoms of inorganic crystals "
                 "and still lets 10 A^3 per atom pack easily", unit="Angstrom", validator=positive)
    elements: list[str] | None = param(
        None, doc="element pool, drawn with equal weights; null for the default pool weighted by the "
                  "frequency of each element in inorganic crystal structures (O a fifth of the weight)",
        validator=_elements)
    special_position_probability: float = param(
        0.35, doc="chance that a site goes on a special position (one exists and fits the cell)",
        validator=probability)
    b_iso: tuple[float, float] = param((0.3, 1.5), doc="isotropic displacement parameter B, drawn uniformly "
                                                      "per site in [low, high]", unit="Angstrom^2",
                                       validator=_range)
    symprec: float = param(
        1e-2, doc="spglib tolerance of the label check; a structure within this distance of a higher "
                  "symmetry is redrawn, so the label holds for any tolerance up to this one",
        unit="Angstrom", validator=positive)
    max_attempts: int = param(50, doc=f"attempts per space-group draw before another group is drawn "
                                      f"({_GROUP_DRAWS} draws at most, then an error)",
                              validator=positive)


# --------------------------------------------------------------------------- crystal systems

_SYSTEMS = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
            (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))


def crystal_system(number: int) -> str:
    """The crystal system of space group ``number``.

    >>> crystal_system(14), crystal_system(166), crystal_system(225)
    ('monoclinic', 'trigonal', 'cubic')
    """
    for last, name in _SYSTEMS:
        if number <= last:
            return name
    raise ValueError(f"space group {number} is not in 1-230")


# --------------------------------------------------------------------------- special positions

@attrs.frozen(eq=False)
class SiteType:
    """One special (Wyckoff) position of a space group: an affine subspace, modulo the lattice.

    Points ``origin + basis @ u`` with ``u`` uniform in ``[0, 1)^dim`` cover one
    representative subspace exactly once modulo lattice translations.

    :ivar dim: 0 (point), 1 (line) or 2 (plane).
    :ivar origin: a point of the subspace, fractional coordinates.
    :ivar basis: (3, dim) integer lattice vectors spanning the subspace.
    :ivar multiplicity: atoms in the conventional cell generated by one site here.
    :ivar site_order: order of the site-symmetry group, ``|G| / multiplicity``.
    """

    dim: int
    origin: np.ndarray
    basis: np.ndarray
    multiplicity: int
    site_order: int


def _primitive(v: np.ndarray) -> tuple[int, int, int]:
    """An integer vector divided by the gcd of its entries, first nonzero entry positive."""
    iv = [int(round(x)) for x in v]
    g = math.gcd(*iv)
    iv = [x // g for x in iv]
    if next(x for x in iv if x != 0) < 0:
        iv = [-x for x in iv]
    return iv[0], iv[1], iv[2]


_SMALL = np.array([v for v in itertools.product(range(-3, 4), repeat=3) if any(v)])
_SMALL = _SMALL[np.argsort(np.abs(_SMALL).sum(axis=1), kind="stable")]


@cache
def _perp_basis(v: tuple[int, int, int]) -> np.ndarray:
    """Rows h1, h2: a basis of the integer vectors h with h . v = 0 (v primitive)."""
    cands = _SMALL[_SMALL @ np.array(v) == 0]
    target = np.array(v)
    for i, j in itertools.combinations(range(len(cands)), 2):
        c = np.cross(cands[i], cands[j])
        if np.array_equal(c, target) or np.array_equal(c, -target):
            return np.array([cands[i], cands[j]])
    raise AssertionError(f"no integer basis orthogonal to {v}")  # pragma: no cover - v has small entries


def _frac_key(x: np.ndarray) -> np.ndarray:
    """Integer keys of values modulo 1 (1e-6 resolution, 1 - epsilon folded onto 0)."""
    return np.rint(np.mod(x, 1.0) * 1e6).astype(np.int64) % 1_000_000


def _subspace_keys(dim: int, direction: tuple[int, int, int] | None, origins: np.ndarray) -> list[tuple]:
    """Hashable keys of affine subspaces (one direction, several origins (k, 3)) modulo the lattice.

    A line with primitive direction v is fixed modulo the lattice by the values
    modulo 1 of h1 . x and h2 . x for the integer basis h1, h2 orthogonal to v;
    a plane with primitive normal h by h . x modulo 1; a point by x modulo 1.
    """
    if dim == 0:
        values = _frac_key(origins)
    elif dim == 1:
        values = _frac_key(origins @ _perp_basis(direction).T)
    else:
        values = _frac_key(origins @ np.array(direction, dtype=float))[:, None]
    return [(dim, direction, *row) for row in values.tolist()]


@attrs.frozen(eq=False)
class _Subspace:
    dim: int
    origin: np.ndarray
    direction: tuple[int, int, int] | None  # line: direction; plane: normal; point: None
    key: tuple

    @property
    def basis(self) -> np.ndarray:
        if self.dim == 0:
            return np.zeros((3, 0))
        if self.dim == 1:
            return np.array(self.direction, dtype=float).reshape(3, 1)
        return _perp_basis(self.direction).T.astype(float)

    def image_keys(self, rot: np.ndarray, rot_inv_t: np.ndarray, tran: np.ndarray) -> list[tuple]:
        """Keys of the images of this subspace under every operation."""
        origins = rot @ self.origin + tran
        if self.dim == 0:
            return _subspace_keys(0, None, origins)
        linear = rot if self.dim == 1 else rot_inv_t  # directions map by R, normals by R^-T
        directions = np.rint(linear @ np.array(self.direction, dtype=float)).astype(int)
        first = directions[np.arange(len(directions)), np.argmax(directions != 0, axis=1)]
        directions *= np.sign(first)[:, None]  # R is unimodular: still primitive, now sign-normalized
        keys = []
        for d in np.unique(directions, axis=0):
            rows = np.all(directions == d, axis=1)
            keys += _subspace_keys(self.dim, (int(d[0]), int(d[1]), int(d[2])), origins[rows])
        return keys


def _make_subspaces(dim: int, direction: tuple[int, int, int] | None, origins: np.ndarray) -> list[_Subspace]:
    """Subspaces through ``origins``, one per distinct key."""
    found: dict[tuple, _Subspace] = {}
    for key, origin in zip(_subspace_keys(dim, direction, origins), origins, strict=True):
        if key not in found:
            found[key] = _Subspace(dim, origin, direction, key)
    return list(found.values())


_SHIFTS = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=float)


@cache
def _rotation_info(rot: tuple[int, ...]) -> tuple[int, np.ndarray, tuple[int, int, int] | None]:
    """For a rotation (9 integers): rank of R - I, its pseudo-inverse, and the fixed direction or normal."""
    a = np.array(rot, dtype=float).reshape(3, 3) - np.eye(3)
    rank = int(np.linalg.matrix_rank(a))
    direction = None
    if rank == 2:
        rows = [r for r in a if np.any(r)]
        pair = next((r, s) for r, s in itertools.combinations(rows, 2) if np.any(np.cross(r, s)))
        direction = _primitive(np.cross(*pair))
    elif rank == 1:
        direction = _primitive(next(r for r in a if np.any(r)))
    return rank, np.linalg.pinv(a) if rank else a, direction


def _fixed_subspaces(rot: np.ndarray, tran: np.ndarray) -> list[_Subspace]:
    """Fixed-point sets of ``x -> rot x + tran - n`` for small integer n, distinct modulo the lattice."""
    rank, pinv, direction = _rotation_info(tuple(np.rint(rot).astype(int).ravel().tolist()))
    if rank == 0:
        return []  # identity or a pure translation
    a = rot - np.eye(3)
    rhs = _SHIFTS - tran  # (125, 3): (R - I) x = n - t
    x = rhs @ pinv.T
    ok = np.abs(x @ a.T - rhs).max(axis=1) < 1e-9
    return _make_subspaces(3 - rank, direction, x[ok])


def _line_intersections(line: _Subspace, others: Sequence[_Subspace]) -> list[np.ndarray]:
    """Points (modulo the lattice) where ``line`` meets any of the lines ``others``."""
    v = np.array(line.direction, dtype=float)
    x0 = line.origin
    points = []
    for other in others:
        if other.direction == line.direction:
            continue
        h = _perp_basis(other.direction).astype(float)  # point p is on `other` iff h @ p == h @ y0 (mod 1)
        a = h @ v
        c = h @ other.origin - h @ x0
        i = 0 if abs(a[0]) > 0.5 else 1  # a is integer and not all zero (the lines are not parallel)
        j = 1 - i
        na = int(round(abs(a[i])))
        for k in range(na):
            s = (np.mod(c[i], 1.0) + k) / a[i]
            residue = np.mod(a[j] * s - c[j] + 0.5, 1.0) - 0.5
            if abs(residue) < 1e-9:
                points.append(x0 + s * v)
    return points


@cache
def _group_ops(number: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (m, 3, 3) and translations (m, 3) of every operation, centring included; identity first."""
    ops = gemmi.find_spacegroup_by_number(number).operations()
    rot = np.array([op.rot for op in ops], dtype=float) / gemmi.Op.DEN
    tran = np.array([op.tran for op in ops], dtype=float) / gemmi.Op.DEN
    identity = next(i for i in range(len(rot)) if np.array_equal(rot[i], np.eye(3)) and not tran[i].any())
    order = [identity] + [i for i in range(len(rot)) if i != identity]
    return rot[order], tran[order]


def _orbit_size(rot: np.ndarray, tran: np.ndarray, x: np.ndarray) -> int:
    images = rot @ x + tran
    return len(np.unique(_keys(images)))


def _keys(frac: np.ndarray) -> np.ndarray:
    """One integer per fractional position, equal for positions equal modulo 1 (resolution _MERGE)."""
    n = round(1 / _MERGE)
    k = np.rint(frac * n).astype(np.int64) % n  # numpy's integer % is a floor modulo: always in [0, n)
    return (k[..., 0] * n + k[..., 1]) * n + k[..., 2]


@cache
def special_positions(number: int) -> tuple[SiteType, ...]:
    """The special positions of space group ``number`` (standard setting), one per Wyckoff position.

    Derived from the group's operations (see the module documentation); sorted by
    dimension and multiplicity.

    >>> [(t.dim, t.multiplicity) for t in special_positions(2)][:3]  # P-1: eight inversion centres
    [(0, 1), (0, 1), (0, 1)]
    >>> len(special_positions(2)), len(special_positions(221)), len(special_positions(19))
    (8, 13, 0)
    """
    rot, tran = _group_ops(number)
    rot_inv_t = np.rint(np.linalg.inv(rot)).transpose(0, 2, 1)
    elementary: dict[tuple, _Subspace] = {}
    for r, t in zip(rot, tran, strict=True):
        for s in _fixed_subspaces(r, t):
            elementary.setdefault(s.key, s)
    lines = [s for s in elementary.values() if s.dim == 1]

    representatives: list[_Subspace] = []
    seen: set[tuple] = set()

    def add(s: _Subspace) -> None:
        if s.key not in seen:
            representatives.append(s)
            seen.update(s.image_keys(rot, rot_inv_t, tran))

    for s in sorted(elementary.values(), key=lambda s: s.dim):
        add(s)
    for line in [s for s in representatives if s.dim == 1]:
        points = _line_intersections(line, lines)
        if points:
            for s in _make_subspaces(0, None, np.array(points)):
                add(s)

    generic = np.array([0.1372, 0.3719])
    types = []
    for s in representatives:
        basis = s.basis
        origin = np.mod(s.origin, 1.0)
        m = _orbit_size(rot, tran, origin + basis @ generic[: s.dim])
        if len(rot) % m:  # pragma: no cover - would be a bug in the derivation
            raise AssertionError(f"space group {number}: multiplicity {m} does not divide {len(rot)}")
        types.append(SiteType(int(s.dim), origin, basis, int(m), len(rot) // int(m)))
    types.sort(key=lambda t: (t.dim, t.multiplicity, tuple(np.round(t.origin, 6))))
    return tuple(types)


# --------------------------------------------------------------------------- lattices

def _log_uniform(rng: np.random.Generator, size: int | None = None) -> np.ndarray | float:
    return np.exp(rng.uniform(-math.log(_AXIS_SPREAD), math.log(_AXIS_SPREAD), size))


def _distinct(*lengths: float, tol: float = 0.03) -> bool:
    """True when no two lengths agree within a relative ``tol`` (no accidental higher metric)."""
    return all(abs(x - y) > tol * max(x, y) for x, y in itertools.combinations(lengths, 2))


def _draw_shape(rng: np.random.Generator, system: str) -> tuple[float, ...]:
    """Cell parameters of unit scale for ``system``, in gemmi's standard setting."""
    while True:
        a, b, c = _log_uniform(rng, 3)
        if system == "cubic":
            return (1.0, 1.0, 1.0, 90.0, 90.0, 90.0)
        if system in ("tetragonal", "trigonal", "hexagonal"):
            gamma = 90.0 if system == "tetragonal" else 120.0
            if _distinct(a, c):
                return (a, a, c, 90.0, 90.0, gamma)
        elif system == "orthorhombic":
            if _distinct(a, b, c):
                return (a, b, c, 90.0, 90.0, 90.0)
        elif system == "monoclinic":
            beta = rng.uniform(92.0, 125.0)
            cb = math.cos(math.radians(beta))
            # the ac net must not be rectangular, rhombic or centred rectangular by accident
            if _distinct(a, c) and _distinct(a, -2 * c * cb) and _distinct(c, -2 * a * cb):
                return (a, b, c, 90.0, beta, 90.0)
        else:
            alpha, beta, gamma = rng.uniform(70.0, 115.0, 3)
            ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
            if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg > 0.25 and _distinct(a, b, c):
                return (a, b, c, alpha, beta, gamma)


def _scaled_cell(shape: tuple[float, ...], volume: float) -> tuple[float, float, float, float, float, float]:
    s = float((volume / gemmi.UnitCell(*shape).volume) ** (1.0 / 3.0))
    a, b, c, al, be, ga = (float(x) for x in shape)
    return (a * s, b * s, c * s, al, be, ga)


_IMAGE_SHIFTS = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=float)


class _Geometry:
    """Distances in one cell: the minimum image convention, widened where the cell is thin."""

    def __init__(self, cell: tuple[float, ...], min_distance: float) -> None:
        self.orth = np.array(gemmi.UnitCell(*cell).orth.mat)  # columns a, b, c in Cartesian
        self.min2 = min_distance**2
        widths = 1.0 / np.linalg.norm(np.linalg.inv(self.orth), axis=1)  # distances between lattice planes
        reach = np.floor(0.5 + min_distance / widths).astype(int)
        self.shifts = None
        if reach.any():
            keep = np.all(np.abs(_IMAGE_SHIFTS) <= reach, axis=1)
            self.shifts = _IMAGE_SHIFTS[keep]
        lattice_vectors = _IMAGE_SHIFTS[np.any(_IMAGE_SHIFTS != 0, axis=1)] @ self.orth.T
        # no lattice vector shorter than the minimum distance, and the cell not so thin that +-2 images miss one
        self.lattice_ok = bool(np.min(np.einsum("ij,ij->i", lattice_vectors, lattice_vectors)) >= self.min2
                               and reach.max() <= 2)

    def shortest2(self, x: np.ndarray, others: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Squared shortest distance from each ``x[b]`` to the points ``others[b]``, periodic images included.

        :param x: (B, 3) fractional positions.
        :param others: (B, k, 3) fractional positions.
        :param mask: (B, k) True for points to leave out.
        """
        d = others - x[:, None, :]
        d -= np.rint(d)
        if self.shifts is not None:
            d = d[:, :, None, :] + self.shifts  # (B, k, S, 3)
        cart = d @ self.orth.T
        r2 = np.einsum("...i,...i->...", cart, cart).reshape(len(x), others.shape[1], -1).min(axis=2)
        if mask is not None:
            r2[mask] = np.inf
        return r2.min(axis=1, initial=np.inf)


# --------------------------------------------------------------------------- the source

@attrs.frozen
class _Group:
    number: int
    system: str
    rot: np.ndarray
    tran: np.ndarray
    centring: np.ndarray  # (k, 3) pure translations of the operations
    special: tuple[SiteType, ...]

    @property
    def order(self) -> int:
        return len(self.rot)


@cache
def _group(number: int) -> _Group:
    rot, tran = _group_ops(number)
    pure = np.all(np.abs(rot - np.eye(3)) < 1e-9, axis=(1, 2))
    return _Group(number, crystal_system(number), rot, tran, tran[pure], special_positions(number))


@attrs.define
class Stats:
    """Counters of one :meth:`RandomStructures.structures` run (for reports and benchmarks)."""

    structures: int = 0
    attempts: int = 0
    placement_failures: int = 0
    placement_tries: int = 0
    placement_rejections: int = 0
    extra_translation: int = 0
    spglib_mismatch: int = 0
    group_redraws: int = 0
    with_special: int = 0

    @property
    def redraws(self) -> int:
        """Structures drawn, then redrawn because their symmetry was not the requested one."""
        return self.extra_translation + self.spglib_mismatch


class RandomStructures:
    """``count`` random structures, deterministic for the seed; an indexed structure source.

    Structure i is drawn from its own generator, ``SeedSequence(seed, spawn_key=(i,))``,
    so it does not depend on how many attempts the others needed, nor on ``count``,
    nor on which process computes it.
    """

    def __init__(self, params: RandomStructuresParams) -> None:
        self.params = params
        groups = params.space_groups if params.space_groups is not None else list(range(1, 231))
        weights = np.array(params.weights if params.weights is not None else [1.0] * len(groups), float)
        keep = weights > 0
        self.groups = np.array(groups)[keep]
        self.group_p = weights[keep] / weights[keep].sum()
        if params.elements is None:
            self.elements = np.array(list(DEFAULT_ELEMENTS))
            w = np.array(list(DEFAULT_ELEMENTS.values()))
        else:
            self.elements = np.array(list(dict.fromkeys(params.elements)))
            w = np.ones(len(self.elements))
        self.element_p = w / w.sum()
        self.log_element_p = np.log(self.element_p)
        self.stats = Stats()

    def __getstate__(self) -> dict:
        return {"params": self.params}  # workers rebuild the rest from the parameters

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["params"])  # type: ignore[misc]

    def count(self) -> int:
        return self.params.count

    def structure_id(self, index: int, seed: int) -> str:
        return f"random-{seed}-{index}"

    def structure(self, index: int, seed: int) -> Structure:
        """Structure ``index`` for ``seed``, from its own generator."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        return self._one(rng, seed, index)

    def structures(self, seed: int = 0) -> Iterator[Structure]:
        """Every structure in index order (``stats`` counts this run)."""
        self.stats = Stats()
        yield from iter_structures(self, seed)

    # -- one structure

    def _one(self, rng: np.random.Generator, seed: int, index: int) -> Structure:
        p = self.params
        tried: list[int] = []
        failed = {"placement": 0, "translation": 0, "spglib": 0}
        for _ in range(_GROUP_DRAWS):
            number = int(rng.choice(self.groups, p=self.group_p))
            tried.append(number)
            group = _group(number)
            mismatches = 0
            for _ in range(p.max_attempts):
                self.stats.attempts += 1
                # after a draw with too much symmetry, draw more sites: few atoms often have extra symmetry
                n_min = min(1 + mismatches, p.max_atoms_asymmetric)
                result = self._attempt(rng, group, n_min)
                if isinstance(result, str):
                    failed[result] += 1
                    mismatches += result != "placement"
                    continue
                structure, b_iso, n_special, n_sites = result
                self.stats.structures += 1
                self.stats.with_special += n_special > 0
                return attrs.evolve(structure, b_iso=b_iso, name=f"random-{seed}-{index}-sg{number}",
                                    note=f"special positions: {n_special} of {n_sites} sites")
            self.stats.group_redraws += 1
        groups = ", ".join(str(n) for n in sorted(set(tried)))
        raise XrdframeError(
            f"random_structures: structure {index}: nothing usable in {_GROUP_DRAWS} x {p.max_attempts} attempts "
            f"(space group(s) {groups}): {failed['placement']} could not keep atoms min_distance="
            f"{p.min_distance} A apart at volume_per_atom={list(p.volume_per_atom)}, "
            f"{failed['translation'] + failed['spglib']} had more symmetry than requested; "
            f"change those parameters, max_atoms_cell or max_attempts")

    def _plan(self, rng: np.random.Generator, group: _Group, n_min: int) -> list[int]:
        """Site types of the asymmetric unit: -1 for the general position, else an index into group.special."""
        p = self.params
        n_sites = int(rng.integers(n_min, p.max_atoms_asymmetric + 1))
        room = p.max_atoms_cell
        used_points: set[int] = set()
        plan: list[int] = []
        for _ in range(n_sites):
            usable = [k for k, t in enumerate(group.special)
                      if t.multiplicity <= room and not (t.dim == 0 and k in used_points)]
            general_fits = group.order <= room
            special = bool(usable) and (not general_fits or rng.random() < p.special_position_probability)
            if special:
                k = usable[int(rng.integers(len(usable)))]
                plan.append(k)
                room -= group.special[k].multiplicity
                if group.special[k].dim == 0:
                    used_points.add(k)
            elif general_fits:
                plan.append(-1)
                room -= group.order
            else:
                break
        if not plan:
            smallest = min([group.order] + [t.multiplicity for t in group.special])
            raise XrdframeError(f"random_structures: max_atoms_cell={p.max_atoms_cell} is below the smallest "
                                f"multiplicity ({smallest}) of space group {group.number}")
        return plan

    def _attempt(self, rng: np.random.Generator, group: _Group,
                 n_min: int) -> tuple[Structure, np.ndarray, int, int] | str:
        p = self.params
        plan = self._plan(rng, group, n_min)
        mult = [group.order if k < 0 else group.special[k].multiplicity for k in plan]
        n_atoms = sum(mult)
        volume = n_atoms * rng.uniform(*p.volume_per_atom)
        cell = _scaled_cell(_draw_shape(rng, group.system), volume)
        geometry = _Geometry(cell, p.min_distance)
        if not geometry.lattice_ok:
            self.stats.placement_failures += 1
            return "placement"
        placed = np.zeros((0, 3))
        site_of_atom: list[int] = []
        # the most constrained sites first: points, lines, planes, then general positions
        order = sorted(range(len(plan)), key=lambda i: group.special[plan[i]].dim if plan[i] >= 0 else 3)
        for site in order:
            k, m = plan[site], mult[site]
            t = group.special[k] if k >= 0 else None
            batch = 1 if t is not None and t.dim == 0 else _BATCH
            for _ in range(1 if batch == 1 else _BATCHES):
                self.stats.placement_tries += batch
                x = rng.random((batch, 3)) if t is None else t.origin + rng.random((batch, t.dim)) @ t.basis.T
                images = np.einsum("mij,bj->bmi", group.rot, x) + group.tran  # (batch, |G|, 3); [:, 0] is x
                keys = _keys(images)
                same = keys == keys[:, :1]  # x itself, by its site symmetry
                ordered = np.sort(keys, axis=1)
                distinct = 1 + np.count_nonzero(np.diff(ordered, axis=1), axis=1)
                others = np.concatenate([images, np.broadcast_to(placed, (batch, *placed.shape))], axis=1)
                mask = np.concatenate([same, np.zeros((batch, len(placed)), bool)], axis=1)
                good = (distinct == m) & (geometry.shortest2(x, others, mask) >= geometry.min2)
                if good.any():
                    b = int(np.argmax(good))
                    _, first = np.unique(keys[b], return_index=True)
                    placed = np.concatenate([placed, images[b, np.sort(first)]])
                    site_of_atom += [site] * m
                    break
                self.stats.placement_rejections += batch
            else:
                self.stats.placement_failures += 1
                return "placement"
        fract = np.mod(placed, 1.0)
        fract[fract >= 1.0] = 0.0
        atom_site = np.array(site_of_atom)
        species = self._species(rng, len(plan))  # an index into self.elements per site
        b_site = rng.uniform(*p.b_iso, len(plan))
        if _has_extra_translation(fract, species[atom_site], group.centring):
            self.stats.extra_translation += 1
            return "translation"
        # checked with one B for all atoms: spglib then tells sites apart by element only (the stricter test)
        structure = Structure(cell=cell, space_group=group.number, fract=fract,
                              elements=self.elements[species[atom_site]].tolist(),
                              occupancy=np.ones(n_atoms), b_iso=np.zeros(n_atoms))
        if spglib_space_group(structure, p.symprec) != group.number:
            self.stats.spglib_mismatch += 1
            return "spglib"
        return structure, b_site[atom_site], sum(k >= 0 for k in plan), len(plan)

    def _species(self, rng: np.random.Generator, n_sites: int) -> np.ndarray:
        """An element (index into self.elements) for each site: 1-4 distinct elements, each used at least once."""
        k_max = min(n_sites, len(self.elements), len(_SPECIES_COUNT_P))
        cdf = np.cumsum(_SPECIES_COUNT_P[:k_max])
        k = 1 + int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        k = min(k, k_max)
        # k distinct elements with probabilities by weight: the Gumbel top-k trick
        chosen = np.argsort(self.log_element_p - np.log(-np.log(rng.random(len(self.elements)))))[-k:]
        cdf = np.cumsum(self.element_p[chosen])
        extra = chosen[np.minimum(np.searchsorted(cdf, rng.random(n_sites - k) * cdf[-1], side="right"), k - 1)]
        return rng.permutation(np.concatenate([chosen, extra]))


def _has_extra_translation(fract: np.ndarray, codes: np.ndarray, centring: np.ndarray) -> bool:
    """Whether a translation other than the group's centring maps the structure onto itself.

    Such a structure has a smaller cell than the one it would be labelled with.
    Candidates map one atom of the rarest element onto the others of that element.

    :param codes: an integer per atom, equal for atoms of one element.
    """
    counts = np.bincount(codes)
    rare = np.flatnonzero(codes == np.argmin(np.where(counts > 0, counts, len(codes) + 1)))
    tau = fract[rare[1:]] - fract[rare[0]]
    d = tau[:, None, :] - centring[None]
    tau = tau[~np.any(np.all(np.abs(d - np.rint(d)) < 1e-6, axis=2), axis=1)]
    if len(tau) == 0:
        return False
    # first the rarest element onto itself (cheap), then every atom for the candidates left
    tau = tau[np.all(np.isin(_keys(fract[rare][None] + tau[:, None, :]), _keys(fract[rare])), axis=1)]
    if len(tau) == 0:
        return False
    own = _keys(fract) * 1024 + codes
    shifted = _keys(fract[None] + tau[:, None, :]) * 1024 + codes  # (candidates, atoms)
    return bool(np.any(np.all(np.isin(shifted, own), axis=1)))
