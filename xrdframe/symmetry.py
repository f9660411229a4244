"""Symmetry labels of the 230 space groups: crystal system and extinction group.

A powder pattern shows the lattice (crystal system, cell) and the systematic
absences, but not the full space group: space groups that differ only in
symmetry elements without translations give the same absences. The labels a
powder method can predict are therefore

* the **crystal system**, by space-group number (contract section 3):
  triclinic 1-2, monoclinic 3-15, orthorhombic 16-74, tetragonal 75-142,
  trigonal 143-167 (rhombohedral groups included), hexagonal 168-194,
  cubic 195-230;
* the **extinction group**: two space groups share one if and only if they have
  the same crystal system and the same set of systematically absent
  reflections, counted as the same in the orthorhombic system when the sets
  match under a permutation of the axes (a powder pattern cannot tell a, b
  and c apart). There are exactly 101.

Nothing is typed in by hand: the absent reflections come from gemmi's
space-group tables (``GroupOps.systematic_absences``). A reflection h is
absent when an operation ``(R, t)`` of the group fixes it (``hR = h``) while
``h.t`` is not an integer (centring translations included); see International
Tables for Crystallography vol. A (2016), ch. 1.6. The conditions only
involve the intrinsic (screw, glide, centring) translations, whose
denominators are 2, 3, 4 or 6, so they depend on hkl modulo 12 and on which
special subspace (0kl, hhl, 00l, ...) hkl lies in: the box ``|h|, |k|, |l| <=
12`` holds every case, and a test checks that a smaller and a larger box give
the same 101 groups.

``gemmi.find_spacegroup_by_number(n)`` gives the standard setting the contract
asks for: monoclinic unique axis b and cell choice 1 (qualifier ``b`` or
``b1``), rhombohedral groups on hexagonal axes (obverse, extension ``H``, whose
short name gemmi spells ``H3`` etc.; here ``R3``) and, for the 24 groups with
two origins, origin choice 1 (absences do not depend on the origin).

Ids 0-100 are stable: groups are numbered in the order (crystal system,
smallest space-group number of the group). Each group has a readable symbol,
its reflection conditions in the style of the space-group tables of
International Tables vol. A: for each class of reflections (hkl,
0kl, hhl, 00l, ...; on hexagonal axes hkil, hh-2hl, h-h0l, 000l) the simplest
condition that gives exactly its present members, listed only when it is not
implied by the conditions of more general classes and their symmetry
equivalents (``0kl`` stands for h0l too in tetragonal groups, and for all
three in cubic ones). Orthorhombic symbols are given in the setting of the
group's lowest-numbered member.

How the conditions are found: the generic members of a class (those whose
stabilizer in the lattice point group is exactly the class's) are sampled at
every residue of their free indices modulo 12; their present set is a lattice.
It is described modulus by modulus (2, 3, 4, 6, 12) by the fewest, simplest
linear congruences (coefficients -2..2, plus the face-centring triple), then
congruences of one form are merged (``l=2n`` and ``l=3n`` give ``l=6n``) and
those implied by a single other one dropped (``l=2n`` beside ``2h+l=4n``). The
conditions of all listed classes, applied with the symmetry of the absent set,
must reproduce the absent set over the whole box exactly, or the computation
fails.

>>> symmetry_labels(62).crystal_system
'orthorhombic'
>>> symmetry_labels(33).extinction_group == symmetry_labels(62).extinction_group
True
>>> symmetry_labels(14).extinction_symbol
'h0l: l=2n; 0k0: k=2n'
>>> symmetry_labels(225).extinction_symbol
'hkl: h+k, h+l, k+l=2n'
>>> symmetry_labels(167).symbol, symmetry_labels(167).extinction_symbol
('R-3c', 'hkil: -h+k+l=3n; h-h0l: h+l=3n and l=2n')
>>> len(extinction_groups())
101
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
from collections.abc import Sequence

import attrs
import gemmi
import numpy as np

__all__ = [
    "CRYSTAL_SYSTEMS",
    "ExtinctionGroup",
    "SymmetryLabels",
    "all_symmetry_labels",
    "crystal_system",
    "extinction_group_of",
    "extinction_groups",
    "space_groups_by_crystal_system",
    "symmetry_labels",
]

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic",
)
# last space-group number of each crystal system (International Tables vol. A, Table 2.1.2.1)
_SYSTEM_LAST = (2, 15, 74, 142, 167, 194, 230)

# Half-width of the hkl box the absences are computed on; 12 = lcm of the translation denominators.
_BOX = 12
# The lattice point group (holohedry) of each system, taken from a symmorphic group's operations;
# trigonal uses 6/mmm too: it contains both -3m1 and -31m and the rhombohedral lattice's -3m.
_HOLOHEDRY_GROUP = {"triclinic": 2, "monoclinic": 10, "orthorhombic": 47, "tetragonal": 123,
                    "trigonal": 191, "hexagonal": 191, "cubic": 221}


@attrs.frozen
class ExtinctionGroup:
    """Space groups of one crystal system that a powder pattern cannot tell apart by absences."""

    id: int
    crystal_system: str
    symbol: str  # reflection conditions, e.g. 'h0l: l=2n; 0k0: k=2n', or 'none'
    space_groups: tuple[int, ...]


@attrs.frozen
class SymmetryLabels:
    """The labels of one space group (standard setting, see the module docstring).

    ``extinction_symbol`` is the symbol of the whole extinction group; for orthorhombic groups it is written
    in the setting of the group's lowest-numbered member, which can be a permutation of this group's axes
    (Cmca, 64, shares the group of Aba2, 41, and shows its A-centred conditions).
    """

    space_group: int
    symbol: str  # Hermann-Mauguin short symbol, e.g. 'P21/c', 'R-3c'
    crystal_system: str
    laue_class: str  # e.g. '2/m', '-3m'
    centring: str  # lattice letter: P A B C I F R
    extinction_group: int  # 0-100
    extinction_symbol: str


def _check_number(space_group: object) -> int:
    if isinstance(space_group, bool) or not isinstance(space_group, numbers.Integral) \
            or not 1 <= int(space_group) <= 230:
        raise ValueError(f"space group must be an integer from 1 to 230, got {space_group!r}")
    return int(space_group)


def crystal_system(space_group: int) -> str:
    """The crystal system of a space group, by its number.

    >>> crystal_system(14), crystal_system(166), crystal_system(194)
    ('monoclinic', 'trigonal', 'hexagonal')
    """
    number = _check_number(space_group)
    return next(name for name, last in zip(CRYSTAL_SYSTEMS, _SYSTEM_LAST, strict=True) if number <= last)


@functools.cache
def _spacegroup(number: int) -> gemmi.SpaceGroup:
    return gemmi.find_spacegroup_by_number(number)


def _short_symbol(sg: gemmi.SpaceGroup) -> str:
    name = sg.short_name()
    return "R" + name[1:] if sg.ext == "H" else name  # gemmi writes R3:H as 'H3'


@functools.cache
def _box(half_width: int) -> np.ndarray:
    """All hkl with ``|h|, |k|, |l| <= half_width`` as an (n, 3) int32 array, h slowest."""
    r = np.arange(-half_width, half_width + 1, dtype=np.int32)
    return np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)


@functools.cache
def _absences(half_width: int) -> dict[int, np.ndarray]:
    """Space-group number -> boolean mask of systematically absent reflections over the box."""
    hkl = _box(half_width)
    return {n: np.asarray(_spacegroup(n).operations().systematic_absences(hkl), dtype=bool) for n in range(1, 231)}


def _partition(half_width: int = _BOX) -> tuple[tuple[int, ...], ...]:
    """Space groups grouped by (crystal system, absent set; orthorhombic modulo axis permutations).

    Groups are ordered by (crystal system, smallest member), which defines the ids.
    """
    side = 2 * half_width + 1
    members: dict[tuple[str, bytes], list[int]] = {}
    for n, absent in _absences(half_width).items():
        system = crystal_system(n)
        cube = absent.reshape(side, side, side)
        if system == "orthorhombic":  # permuting the axes permutes h, k, l: transpose the cube
            key = min(np.packbits(cube.transpose(p)).tobytes() for p in itertools.permutations(range(3)))
        else:
            key = np.packbits(cube).tobytes()
        members.setdefault((system, key), []).append(n)
    return tuple(sorted((tuple(sorted(g)) for g in members.values()),
                        key=lambda g: (CRYSTAL_SYSTEMS.index(crystal_system(g[0])), g[0])))


# ---------------------------------------------------------------------------------------------
# Reflection conditions: a readable symbol for an absent set.

@attrs.frozen
class _Class:
    """A class of reflections: the hkl spanned by the rows of ``basis``, with free indices ``free``."""

    name: str
    basis: tuple[tuple[int, int, int], ...]  # one row per free index, e.g. hhl: (1, 1, 0), (0, 0, 1)
    free: tuple[int, ...]  # positions (0=h, 1=k, 2=l) whose values are the free indices

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple("hkl"[i] for i in self.free)

    def params(self, hkl: np.ndarray) -> np.ndarray:
        return hkl[:, list(self.free)]

    def contains(self, hkl: np.ndarray) -> np.ndarray:
        spanned = self.params(hkl) @ np.array(self.basis, dtype=hkl.dtype)
        return (spanned[:, 0] == hkl[:, 0]) & (spanned[:, 1] == hkl[:, 1]) & (spanned[:, 2] == hkl[:, 2])


def _cls(name: str, *basis: tuple[int, int, int]) -> _Class:
    free = tuple(next(i for i, x in enumerate(row) if x) for row in basis)
    return _Class(name, basis, free)


_HKL = _cls("hkl", (1, 0, 0), (0, 1, 0), (0, 0, 1))
_ORTHO_CLASSES = (
    _HKL, _cls("0kl", (0, 1, 0), (0, 0, 1)), _cls("h0l", (1, 0, 0), (0, 0, 1)), _cls("hk0", (1, 0, 0), (0, 1, 0)),
    _cls("h00", (1, 0, 0)), _cls("0k0", (0, 1, 0)), _cls("00l", (0, 0, 1)),
)
_HEX_CLASSES = (  # International Tables names on hexagonal axes (i = -h-k); conditions use h, k, l
    _cls("hkil", (1, 0, 0), (0, 1, 0), (0, 0, 1)), _cls("hki0", (1, 0, 0), (0, 1, 0)),
    _cls("hh-2hl", (1, 1, 0), (0, 0, 1)), _cls("h-h0l", (1, -1, 0), (0, 0, 1)),
    _cls("000l", (0, 0, 1)), _cls("h-h00", (1, -1, 0)), _cls("hh-2h0", (1, 1, 0)),
)
# Ordered from general to special; a listed condition holds on its whole class and its symmetry images.
_CLASSES: dict[str, tuple[_Class, ...]] = {
    "triclinic": (_HKL,),
    "monoclinic": (_HKL, _cls("h0l", (1, 0, 0), (0, 0, 1)), _cls("0kl", (0, 1, 0), (0, 0, 1)),
                   _cls("hk0", (1, 0, 0), (0, 1, 0)), _cls("0k0", (0, 1, 0)), _cls("h00", (1, 0, 0)),
                   _cls("00l", (0, 0, 1))),
    "orthorhombic": _ORTHO_CLASSES,
    "tetragonal": (_HKL, _cls("hk0", (1, 0, 0), (0, 1, 0)), _cls("0kl", (0, 1, 0), (0, 0, 1)),
                   _cls("hhl", (1, 1, 0), (0, 0, 1)), _cls("00l", (0, 0, 1)), _cls("h00", (1, 0, 0)),
                   _cls("hh0", (1, 1, 0))),
    "trigonal": _HEX_CLASSES,
    "hexagonal": _HEX_CLASSES,
    "cubic": (_HKL, _cls("0kl", (0, 1, 0), (0, 0, 1)), _cls("hhl", (1, 1, 0), (0, 0, 1)), _cls("h00", (1, 0, 0)),
              _cls("hh0", (1, 1, 0))),
}

_MODULI = (2, 3, 4, 6, 12)  # the conditions of the 230 groups need no others
_PERIOD = 12
_SAMPLE_OFFSET = (1, 3, 6)  # multiples of 12 added to the free indices to sample generic members


@attrs.frozen
class _Atom:
    """``f = 0 mod modulus`` for every linear form f in ``forms`` (coefficients on the free indices)."""

    forms: tuple[tuple[int, ...], ...]
    modulus: int

    def holds(self, values: np.ndarray) -> np.ndarray:
        return np.all([values @ np.array(f) % self.modulus == 0 for f in self.forms], axis=0)

    @property
    def cost(self) -> tuple[int, int, int, int]:
        flat = [c for f in self.forms for c in f]
        return (sum(c != 0 for c in flat), sum(abs(c) for c in flat), sum(c < 0 for c in flat), self.modulus)


def _form_text(form: tuple[int, ...], letters: Sequence[str]) -> str:
    text = ""
    for c, letter in zip(form, letters, strict=True):
        if c:
            sign = "-" if c < 0 else ("+" if text else "")
            text += sign + ("" if abs(c) == 1 else str(abs(c))) + letter
    return text


def _condition_text(atoms: Sequence[_Atom], letters: Sequence[str]) -> str:
    """International Tables style: ``k+l=4n and k, l=2n``."""
    parts = []
    for modulus in sorted({a.modulus for a in atoms}, reverse=True):
        group = sorted((a for a in atoms if a.modulus == modulus),
                       key=lambda a: (a.cost, [-(c != 0) for c in a.forms[0]]))
        forms = [_form_text(f, letters) for a in group for f in a.forms]
        parts.append(f"{', '.join(forms)}={modulus}n")
    return " and ".join(parts)


@functools.cache
def _residues(dim: int) -> np.ndarray:
    """Every residue vector modulo 12 in ``dim`` dimensions, (12**dim, dim)."""
    return np.array(list(itertools.product(range(_PERIOD), repeat=dim)), dtype=np.int64)


@functools.cache
def _candidates(dim: int, modulus: int) -> tuple[_Atom, ...]:
    """Atoms modulo ``modulus`` with coefficients -2..2, the simplest of each distinct residue set first."""
    atoms = [_Atom((f,), modulus) for f in itertools.product(range(-2, 3), repeat=dim) if any(f)]
    if dim == 3 and modulus == 2:  # face centring, written as International Tables do
        atoms.append(_Atom(((1, 1, 0), (1, 0, 1), (0, 1, 1)), 2))
    best: dict[bytes, _Atom] = {}
    residues = _residues(dim)
    for atom in sorted(atoms, key=lambda a: a.cost):
        mask = atom.holds(residues)
        if not mask.all():
            best.setdefault(np.packbits(mask).tobytes(), atom)
    return tuple(best.values())


def _simplest_condition(cls: _Class, present: np.ndarray) -> list[_Atom]:
    """The simplest conjunction of atoms true exactly on the ``present`` residues (free indices mod 12) of a class.

    Built modulus by modulus (2, 3, 4, 6, 12), each step adding the fewest, simplest atoms that describe the
    present set modulo the lcm so far; then atoms of one form are merged (l=2n and l=3n: l=6n) and atoms implied
    by another single atom dropped (l=2n next to 2h+l=4n), which gives International Tables' wording.
    """
    dim = len(cls.free)
    residues = _residues(dim)
    weights = _PERIOD ** np.arange(dim - 1, -1, -1)
    current = np.ones(len(residues), dtype=bool)
    chosen: list[_Atom] = []
    period = 1
    for modulus in _MODULI:
        period = math.lcm(period, modulus)
        reduced = residues % period @ weights
        present_mod = np.isin(reduced, reduced[present])
        if np.array_equal(current, present_mod):
            continue
        candidates = [(a, a.holds(residues)) for a in _candidates(dim, modulus)]
        candidates = [(a, m) for a, m in candidates if m[present].all()]
        found = None
        for size in (1, 2, 3):
            for combo in itertools.combinations(candidates, size):
                mask = current.copy()
                for _, m in combo:
                    mask &= m
                if np.array_equal(mask, present_mod):
                    cost = tuple(map(sum, zip(*(a.cost for a, _ in combo), strict=True)))
                    if found is None or cost < found[0]:
                        found = (cost, combo)
            if found:
                break
        if found is None:
            raise RuntimeError(f"{cls.name}: no condition modulo {modulus} describes the present reflections")
        for atom, mask in found[1]:
            chosen.append(atom)
            current &= mask
    if not np.array_equal(current, present):
        raise RuntimeError(f"{cls.name}: the conditions found do not reproduce the present reflections")
    merged: dict[tuple[tuple[int, ...], ...], _Atom] = {}
    for atom in chosen:
        old = merged.get(atom.forms)
        merged[atom.forms] = atom if old is None else _Atom(atom.forms, math.lcm(old.modulus, atom.modulus))
    atoms = list(merged.values())
    masks = [a.holds(residues) for a in atoms]
    keep = [a for i, a in enumerate(atoms)
            if not any(j != i and (masks[j] <= masks[i]).all() for j in range(len(atoms)))]
    return keep


@attrs.frozen(eq=False)
class _ClassGeometry:
    """Where one class of reflections lies in the box, computed once per crystal system."""

    cls: _Class
    stabilizer: int  # bit i: holohedry rotation i fixes every member of the class
    generic: np.ndarray  # box mask of the generic members (stabilizer exactly the class's)
    members: np.ndarray  # box indices of all members, special ones included
    sample: np.ndarray  # one generic member per residue class of the free indices modulo 12, (12**d, 3)


@attrs.frozen(eq=False)
class _Geometry:
    rotations: tuple[np.ndarray, ...]  # the holohedry; reflections transform as h -> h R
    images: tuple[tuple[np.ndarray, np.ndarray], ...]  # per rotation: box indices whose image is in the box, and
    # the box indices of those images
    classes: tuple[_ClassGeometry, ...]


def _stabilizer(hkl: np.ndarray, rotations: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(hkl), dtype=np.int64)
    for i, rot in enumerate(rotations):
        image = hkl @ rot
        fixed = (image[:, 0] == hkl[:, 0]) & (image[:, 1] == hkl[:, 1]) & (image[:, 2] == hkl[:, 2])
        out |= fixed.astype(np.int64) << i
    return out


@functools.cache
def _geometry(system: str, half_width: int) -> _Geometry:
    ops = _spacegroup(_HOLOHEDRY_GROUP[system]).operations().sym_ops
    rotations = tuple(np.array(op.rot, dtype=np.int64) // gemmi.Op.DEN for op in ops)
    hkl = _box(half_width).astype(np.int64)
    side = 2 * half_width + 1
    images = []
    for image in (hkl @ rot for rot in rotations):
        inside = np.flatnonzero(np.abs(image).max(axis=1) <= half_width)
        images.append((inside, (image[inside] + half_width) @ np.array([side * side, side, 1])))
    stabilizer = _stabilizer(hkl, rotations)
    classes = []
    for cls in _CLASSES[system]:
        basis = np.array(cls.basis, dtype=np.int64)
        dim = len(cls.free)
        cls_stabilizer = int(np.bitwise_and.reduce(_stabilizer(basis, rotations)))  # fixing the whole class
        generic = cls.contains(hkl) & (stabilizer == cls_stabilizer) & hkl.any(axis=1)
        # e.g. hhl: (h, l) = (r1 + 12, r2 + 36) with r the residues: away from every special subspace
        sample = (_residues(dim) + _PERIOD * np.array(_SAMPLE_OFFSET[:dim])) @ basis
        if not np.all(_stabilizer(sample, rotations) == cls_stabilizer):
            raise RuntimeError(f"{cls.name}: sample reflections are not generic members of the class")
        classes.append(_ClassGeometry(cls, cls_stabilizer, generic, np.flatnonzero(cls.contains(hkl)),
                                      sample.astype(np.int32)))
    return _Geometry(rotations, tuple(images), tuple(classes))


def _extinction_symbol(number: int, half_width: int) -> str:
    """The reflection conditions of one space group's absent set (see the module docstring)."""
    system = crystal_system(number)
    ops = _spacegroup(number).operations()
    absent = _absences(half_width)[number]
    present = ~absent
    hkl = _box(half_width).astype(np.int64)
    geometry = _geometry("hexagonal" if system == "trigonal" else system, half_width)
    # the symmetry of the absent set itself: a condition on one class then holds on the class's images
    rotations = np.array([rot for rot, (inside, image) in zip(geometry.rotations, geometry.images, strict=True)
                          if np.array_equal(absent[inside], absent[image])])
    side = 2 * half_width + 1
    allowed = np.ones(len(hkl), dtype=bool)
    parts = []
    for geo in geometry.classes:
        cls, generic = geo.cls, geo.generic
        if np.array_equal(allowed[generic], present[generic]):
            continue  # nothing new, or implied by more general classes
        sample_present = ~np.asarray(ops.systematic_absences(geo.sample), dtype=bool)
        atoms = _simplest_condition(cls, sample_present)
        violating = hkl[geo.members[~_holds_all(atoms, cls.params(hkl[geo.members]))]]
        # a symmetry image of a violating member is absent too: mark the images inside the box (the set of
        # hkl obeying a condition on all hkl is a lattice that the symmetry maps onto itself: no images needed)
        images = violating if len(cls.free) == 3 else np.matmul(violating[None], rotations).reshape(-1, 3)
        images = images[np.abs(images).max(axis=1) <= half_width]
        allowed[(images + half_width) @ np.array([side * side, side, 1])] = False
        if not np.array_equal(allowed[generic], present[generic]):
            raise RuntimeError(f"{cls.name}: conditions derived from the residues disagree with the box")
        parts.append(f"{cls.name}: {_condition_text(atoms, cls.letters)}")
    if not np.array_equal(allowed, present):
        raise RuntimeError(f"the {system} reflection classes do not describe every absence of space group {number}")
    return "; ".join(parts) if parts else "none"


def _holds_all(atoms: Sequence[_Atom], values: np.ndarray) -> np.ndarray:
    return np.all([a.holds(values) for a in atoms], axis=0)


@functools.cache
def _extinction_groups(half_width: int = _BOX) -> tuple[ExtinctionGroup, ...]:
    groups = []
    for i, members in enumerate(_partition(half_width)):
        system = crystal_system(members[0])
        groups.append(ExtinctionGroup(i, system, _extinction_symbol(members[0], half_width),
                                      members))
    return tuple(groups)


@functools.cache
def _group_ids(half_width: int = _BOX) -> dict[int, int]:
    return {n: i for i, members in enumerate(_partition(half_width)) for n in members}


def extinction_group_of(space_group: int) -> int:
    """The extinction-group id (0-100) of a space group, without building the readable symbols.

    >>> extinction_group_of(62) == extinction_group_of(33) == symmetry_labels(62).extinction_group
    True
    """
    return _group_ids()[_check_number(space_group)]


def extinction_groups() -> list[ExtinctionGroup]:
    """The 101 extinction groups, by id (ordered by crystal system, then smallest space-group number).

    >>> extinction_groups()[0]
    ExtinctionGroup(id=0, crystal_system='triclinic', symbol='none', space_groups=(1, 2))
    """
    return list(_extinction_groups())


@functools.cache
def _all_labels() -> tuple[SymmetryLabels, ...]:
    group_of = {n: g for g in _extinction_groups() for n in g.space_groups}
    labels = []
    for n in range(1, 231):
        sg = _spacegroup(n)
        group = group_of[n]
        labels.append(SymmetryLabels(space_group=n, symbol=_short_symbol(sg), crystal_system=crystal_system(n),
                                     laue_class=sg.laue_str(), centring=sg.centring_type(),
                                     extinction_group=group.id, extinction_symbol=group.symbol))
    return tuple(labels)


def symmetry_labels(space_group: int) -> SymmetryLabels:
    """Crystal system, extinction group and symbol of a space group (1-230, standard setting).

    >>> symmetry_labels(14)
    SymmetryLabels(space_group=14, symbol='P21/c', crystal_system='monoclinic', laue_class='2/m', centring='P', \
extinction_group=6, extinction_symbol='h0l: l=2n; 0k0: k=2n')
    """
    return _all_labels()[_check_number(space_group) - 1]


def all_symmetry_labels() -> list[SymmetryLabels]:
    """The labels of the 230 space groups, in order of number."""
    return list(_all_labels())


def space_groups_by_crystal_system() -> dict[str, tuple[int, ...]]:
    """Space-group numbers of each crystal system, in the order of :data:`CRYSTAL_SYSTEMS`.

    >>> {k: len(v) for k, v in space_groups_by_crystal_system().items()}
    {'triclinic': 2, 'monoclinic': 13, 'orthorhombic': 59, 'tetragonal': 68, 'trigonal': 25, 'hexagonal': 27, \
'cubic': 36}
    """
    first = (1, *(last + 1 for last in _SYSTEM_LAST[:-1]))
    return {name: tuple(range(lo, hi + 1)) for name, lo, hi in zip(CRYSTAL_SYSTEMS, first, _SYSTEM_LAST, strict=True)}
