"""Extinction group from the indexed lines of a powder pattern: which reflection classes are systematically missing.

Given the conventional cell of an indexing solution, its Bravais lattice and the observed lines (Q = 1/d^2,
Angstrom^-2), every extinction group of that lattice (:func:`xrdframe.symmetry.extinction_groups`) is scored by how
well its allowed reflections account for the observed lines:

* the reflections hkl of the cell up to the largest observed Q (plus the tolerance) are generated once; one of each
  Friedel pair, grouped into *positions* (reflections of exactly equal Q, e.g. hkl and khl in a tetragonal cell);
* a reflection is allowed by a group when it is not systematically absent in the group's lowest-numbered member
  (gemmi's ``GroupOps.systematic_absences``, International Tables vol. A (2016), 1.6.4), in the group's standard
  setting; absence masks are computed once per space group on an hkl box and cached;
* allowed positions closer than the tolerance are chained into *clusters* (lines that cannot be told apart);
* the likelihood of the observed line list under a group has two factors (a documented model):

  - *detection*: each cluster of allowed positions in the observed range is either seen (an observed line within
    the tolerance) or missing. A missing cluster is evidence against the group, weak where many allowed lines are
    missing anyway (weak reflections at high angle, large cells) and strong where almost all are seen. With
    ``p_miss=None`` (default) the probability of missing a line is unknown and fitted per Q bin: the range is cut
    at quantiles of the observed lines into ``detection_bins`` bins (default 3) and each bin contributes the
    beta-binomial marginal ``log B(n_seen + 1, n_missing + 1)`` (uniform prior on the detection probability).
    With a number ``p_miss`` each cluster contributes ``log(1 - p_miss)`` if seen and ``log(p_miss)`` if missing;
  - *explanation*: each observed line within the tolerance of no allowed position (an impurity or spurious peak)
    costs ``log(p_spurious)``, default 0.02: strong evidence against the group.

  A group with more absences that explains the same lines has fewer missing clusters, so the likelihood prefers
  it (Occam); groups that the data cannot tell apart (their differing reflections all overlap allowed ones) tie,
  and ties are ordered by fewer allowed positions, then id;
* probabilities are the normalised likelihoods (uniform prior unless ``prior`` is given); a candidate is
  ``consistent`` when it leaves no more lines unexplained than the group of the lattice without conditions.

Settings. The cell's axes are those of the indexing solution, not necessarily the setting of a group's symbol:
orthorhombic groups are tried in the six axis permutations (only those that keep the lattice's centring: the
C-centred face of an oC cell), monoclinic P groups in the six cell choices that differ modulo 2 in the (a, c) net
(the glide c, a or n and the a/c exchange), monoclinic C groups in the two choices that keep C-centring (c and
a + c); each candidate reports the best setting as the change of basis P, (a', b', c') = (a, b, c) P, indices
h' = h P, and the cell in that setting. Other systems use the conventional setting as given (hR: obverse,
hexagonal axes; monoclinic: unique axis b).

This is the role of ExtSym (Markvardsen, David, Johnson & Shankland (2001), Acta Cryst. A57, 47), without its
intensity model: intensities are not used, so a group is judged only by which positions carry a line.

>>> import numpy as np
>>> from xrdframe.lattice import q_values, q_coefficients
>>> cell = (5.4309, 5.4309, 5.4309, 90, 90, 90)   # Si, Fd-3m: lines 111 220 311 400 331 422 333/511 440 531 620
>>> hkl = np.array([[1, 1, 1], [2, 2, 0], [3, 1, 1], [4, 0, 0], [3, 3, 1], [4, 2, 2], [5, 1, 1], [4, 4, 0],
...                 [5, 3, 1], [6, 2, 0]])
>>> best = rank_extinction_groups(cell, "cF", q_values(hkl, q_coefficients(cell)), 1e-4)[0]
>>> best.space_groups, best.symbol
((203, 227), 'hkl: h+k, h+l, k+l=2n; 0kl: k+l=4n and k, l=2n')
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import attrs
import gemmi
import numpy as np
from scipy.special import gammaln

from xrdframe.lattice import Cell, bravais_lattice_of, q_coefficients, q_values, transform_cell
from xrdframe.symmetry import ExtinctionGroup, extinction_groups
from xrdframe_ntreor.refine import centring_mask

__all__ = ["ExtinctionCandidate", "candidate_groups", "rank_extinction_groups", "systematically_absent"]

#: Default probability that an observed line belongs to no allowed reflection (impurity, spurious peak).
P_SPURIOUS = 0.02
_BOX_STEP = 8  # absence masks are cached on boxes |h|, |k|, |l| <= a multiple of this


@attrs.frozen(eq=False)
class ExtinctionCandidate:
    """One extinction group scored against the observed lines.

    :ivar extinction_group: id, 0-100 (:func:`xrdframe.symmetry.extinction_groups`).
    :ivar symbol: its reflection conditions, in the setting of its lowest-numbered space group.
    :ivar space_groups: the space groups of the group.
    :ivar log_likelihood: natural log of the likelihood of the line list (module docstring).
    :ivar probability: normalised likelihood among the candidates (times ``prior``), 0-1.
    :ivar crystal_system: the group's crystal system.
    :ivar setting: change of basis P from the input cell to the setting the symbol applies to,
        (a', b', c') = (a, b, c) P; integer 3x3.
    :ivar setting_cell: the input cell expressed in that setting.
    :ivar n_allowed: allowed positions (distinct Q) in the observed range.
    :ivar n_seen: clusters of allowed positions in the observed range with an observed line.
    :ivar n_missing: clusters of allowed positions in the observed range with no observed line.
    :ivar n_unexplained: observed lines with no allowed position within the tolerance.
    :ivar consistent: no more lines unexplained than by the lattice's group without conditions.
    """

    extinction_group: int
    symbol: str
    space_groups: tuple[int, ...]
    log_likelihood: float
    probability: float
    crystal_system: str
    setting: np.ndarray = attrs.field(repr=False)
    setting_cell: Cell
    n_allowed: int
    n_seen: int
    n_missing: int
    n_unexplained: int
    consistent: bool

    @property
    def axes(self) -> str:
        """The setting's basis vectors in terms of the input's, e.g. ``'b, c, a'`` or ``'a, b, a+c'``."""
        return ", ".join(_vector_text(self.setting[:, j]) for j in range(3))


def _vector_text(column: np.ndarray) -> str:
    text = ""
    for coefficient, letter in zip(column, "abc", strict=True):
        c = int(coefficient)
        if c:
            sign = "-" if c < 0 else ("+" if text else "")
            text += sign + ("" if abs(c) == 1 else str(abs(c))) + letter
    return text or "0"


@functools.cache
def candidate_groups(bravais_lattice: str) -> tuple[ExtinctionGroup, ...]:
    """The extinction groups whose space groups have Bravais lattice ``bravais_lattice`` (hP: trigonal P and
    hexagonal groups; hR: the rhombohedral groups), by id.

    >>> [g.id for g in candidate_groups("mC")], [g.symbol for g in candidate_groups("hR")]
    ([3, 5], ['hkil: -h+k+l=3n', 'hkil: -h+k+l=3n; h-h0l: h+l=3n and l=2n'])
    """
    groups = tuple(g for g in extinction_groups() if bravais_lattice_of(g.space_groups[0]) == bravais_lattice)
    if not groups:
        raise ValueError(f"unknown Bravais lattice {bravais_lattice!r}")
    return groups


@functools.cache
def _absence_box(space_group: int, half_width: int) -> np.ndarray:
    """Systematic absences of a space group (standard setting) on the box |h|, |k|, |l| <= half_width, as a flat
    boolean array indexed by ((h + w) s + (k + w)) s + (l + w), s = 2w + 1."""
    r = np.arange(-half_width, half_width + 1, dtype=np.int32)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    ops = gemmi.find_spacegroup_by_number(space_group).operations()
    return np.asarray(ops.systematic_absences(hkl), dtype=bool)


def systematically_absent(space_group: int, hkl: np.ndarray) -> np.ndarray:
    """Whether each reflection ``hkl`` (n, 3) is systematically absent in ``space_group`` (standard setting:
    gemmi's ``find_spacegroup_by_number``; hR on hexagonal axes); looked up in a cached box.

    >>> systematically_absent(14, np.array([[0, 1, 0], [0, 2, 0], [1, 0, 1], [1, 0, 2]])).tolist()
    [True, False, True, False]
    """
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    if hkl.size == 0:
        return np.zeros(0, dtype=bool)
    need = int(np.abs(hkl).max())
    width = max(_BOX_STEP, -(-need // _BOX_STEP) * _BOX_STEP)
    if width > 3 * _BOX_STEP:  # long axes (indices over 24): ask gemmi directly, about 0.1 ms per 1000 hkl
        ops = gemmi.find_spacegroup_by_number(space_group).operations()
        return np.asarray(ops.systematic_absences(hkl.astype(np.int32)), dtype=bool)
    side = 2 * width + 1
    index = ((hkl[:, 0] + width) * side + (hkl[:, 1] + width)) * side + (hkl[:, 2] + width)
    return _absence_box(space_group, width)[index]


def _perm(p: Sequence[int]) -> np.ndarray:
    m = np.zeros((3, 3), dtype=np.int64)
    for j, i in enumerate(p):
        m[i, j] = 1
    return m


def _net(t: Sequence[Sequence[int]]) -> np.ndarray:
    """The 3x3 change of basis acting on the (a, c) net with the 2x2 matrix t (b unchanged)."""
    m = np.eye(3, dtype=np.int64)
    m[np.ix_([0, 2], [0, 2])] = np.array(t)
    return m


_ORTHORHOMBIC_SETTINGS = tuple(_perm(p) for p in ((0, 1, 2), (1, 2, 0), (2, 0, 1), (1, 0, 2), (0, 2, 1), (2, 1, 0)))
# GL(2, Z/2) lifted: (a, c) -> (a, c), (c, a), (a, a+c), (a+c, c), (c, a+c), (a+c, a); columns are new vectors
_MONOCLINIC_P_SETTINGS = tuple(_net(t) for t in (((1, 0), (0, 1)), ((0, 1), (1, 0)), ((1, 1), (0, 1)),
                                                 ((1, 0), (1, 1)), ((0, 1), (1, 1)), ((1, 1), (1, 0))))
_MONOCLINIC_C_SETTINGS = (_net(((1, 0), (0, 1))), _net(((1, 1), (0, 1))))  # (a, c) and (a, a+c): a' = a mod 2


def _settings(bravais_lattice: str) -> tuple[np.ndarray, ...]:
    if bravais_lattice[0] == "o":
        return _ORTHORHOMBIC_SETTINGS
    if bravais_lattice == "mP":
        return _MONOCLINIC_P_SETTINGS
    if bravais_lattice == "mC":
        return _MONOCLINIC_C_SETTINGS
    return (np.eye(3, dtype=np.int64),)


@functools.cache
def _lattice_letter(bravais_lattice: str) -> str:
    return "R" if bravais_lattice == "hR" else bravais_lattice[1]


def _reflections(cell: Cell, q_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """hkl (one of each Friedel pair, 000 excluded) with 0 < Q <= q_hi, and their Q, sorted by Q."""
    a, b, c = cell[:3]
    limits = [int(np.floor(x * np.sqrt(q_hi))) + 1 for x in (a, b, c)]  # |h| <= a |d*|
    ranges = [np.arange(-n, n + 1) for n in limits]
    hkl = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]  # noqa: E741 (Miller indices)
    half = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))
    hkl = hkl[half]
    q = q_values(hkl, q_coefficients(cell))
    keep = q <= q_hi
    order = np.argsort(q[keep], kind="stable")
    return hkl[keep][order], q[keep][order]


def _previous_index(mask: np.ndarray) -> np.ndarray:
    """For each column j, the largest column index i < j with mask[:, i] True, or -1 (per row)."""
    n = mask.shape[1]
    idx = np.where(mask, np.arange(n), -1)
    last = np.maximum.accumulate(idx, axis=1) if n else idx
    return np.concatenate([np.full((mask.shape[0], 1), -1), last[:, :-1]], axis=1)[:, :n]


def rank_extinction_groups(
    cell: Sequence[float],
    bravais_lattice: str,
    q_obs: Sequence[float] | np.ndarray,
    tolerance: float | Sequence[float] | np.ndarray,
    *,
    q_min: float = 0.0,
    p_miss: float | None = None,
    detection_bins: int = 3,
    p_spurious: float = P_SPURIOUS,
    prior: Mapping[int, float] | None = None,
) -> list[ExtinctionCandidate]:
    """Rank the extinction groups of ``bravais_lattice`` by the likelihood of the observed lines (module docstring).

    :param cell: conventional cell ``(a, b, c, alpha, beta, gamma)`` of the lattice (Angstrom, degrees; monoclinic
        unique axis b, hR on hexagonal axes, obverse), as from :func:`xrdframe.lattice.lattice_symmetry`.
    :param bravais_lattice: Pearson symbol (aP mP mC oP oC oI oF tP tI hR hP cP cI cF); oC cells C-centred.
    :param q_obs: observed line positions Q = 1/d^2, Angstrom^-2 (any order).
    :param tolerance: largest |Q_obs - Q_calc| for a match, Angstrom^-2; a scalar or one value per line (it grows
        with angle for a fixed 2theta tolerance: dQ = 2 sin(2theta) d2theta / lambda^2, d2theta in radians).
    :param q_min: lowest Q of the observed range (the pattern's start); allowed lines below are not counted missing.
    :param p_miss: probability that an allowed line (cluster) is absent from the list although allowed; None
        (default) fits it per Q bin (beta-binomial marginal, module docstring).
    :param detection_bins: number of Q bins for the fitted detection probability.
    :param p_spurious: probability that an observed line is explained by no allowed reflection.
    :param prior: optional prior weight per extinction-group id (missing ids weigh 0; default uniform).
    :returns: candidates, most likely first (ties: fewer allowed positions first, then id).
    """
    cell_t = transform_cell(cell, np.eye(3))  # validates the cell
    q_all = np.asarray(q_obs, dtype=float).ravel()
    tol_all = np.abs(np.broadcast_to(np.asarray(tolerance, dtype=float), q_all.shape))
    valid = np.isfinite(q_all) & (q_all > 0) & np.isfinite(tol_all)
    order = np.argsort(q_all[valid], kind="stable")
    q, tol = q_all[valid][order], tol_all[valid][order]
    groups = candidate_groups(bravais_lattice)
    if len(q) == 0:
        raise ValueError("no observed lines (finite, positive Q)")
    q_hi = float(q[-1] + tol[-1])
    hkl, q_calc = _reflections(cell_t, q_hi)
    # positions: reflections of equal Q (to 1e-9 relative), the unit a line is made of
    new = np.concatenate([[True], np.diff(q_calc) > 1e-9 * q_calc[1:]]) if len(q_calc) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    pos_q = q_calc[starts] if len(q_calc) else np.zeros(0)
    pos_tol = np.interp(pos_q, q, tol)
    in_range = pos_q >= q_min
    near = np.abs(q[:, None] - pos_q[None, :]) <= tol[:, None]  # (lines, positions)
    pos_seen = near.any(axis=0)
    letter = _lattice_letter(bravais_lattice)
    lattice_ok = centring_mask(hkl, letter)

    rows: list[tuple[ExtinctionGroup, np.ndarray]] = []
    masks = []
    for group in groups:
        seen_masks: set[bytes] = set()
        for setting in _settings(bravais_lattice):
            allowed = ~systematically_absent(group.space_groups[0], hkl @ setting)
            if np.any(allowed & ~lattice_ok):  # this setting breaks the lattice's centring
                continue
            key = np.packbits(allowed).tobytes()
            if key in seen_masks:
                continue
            seen_masks.add(key)
            rows.append((group, setting))
            masks.append(allowed)
    if not rows:
        raise ValueError(f"no extinction group of {bravais_lattice} is compatible with the lattice centring")
    allowed = np.array(masks)  # (m, reflections)
    if len(starts):
        allowed_pos = np.add.reduceat(allowed.astype(np.int32), starts, axis=1) > 0  # (m, positions)
    else:
        allowed_pos = np.zeros((len(masks), 0), dtype=bool)
    # clusters: chains of allowed positions closer than the tolerance
    prev = _previous_index(allowed_pos)
    prev_q = np.where(prev >= 0, pos_q[np.maximum(prev, 0)], -np.inf)
    start = allowed_pos & (pos_q[None, :] - prev_q > pos_tol[None, :])
    label = np.cumsum(start, axis=1)  # cluster number (from 1) of each allowed position
    seen = allowed_pos & pos_seen[None, :]
    n_labels = int(label.max(initial=0)) + 1
    flat = (np.arange(len(rows))[:, None] * n_labels + label)[seen]
    cluster_seen = np.bincount(flat, minlength=len(rows) * n_labels).reshape(len(rows), n_labels) > 0
    start_seen = start & np.take_along_axis(cluster_seen, label, axis=1)
    counted = start & in_range[None, :]  # clusters counted where they begin
    # detection bins: the observed range cut at quantiles of the observed lines
    edges = np.quantile(q, np.linspace(0, 1, max(int(detection_bins), 1) + 1)[1:-1]) if len(q) > 1 else []
    bins = np.searchsorted(np.asarray(edges), pos_q, side="right")
    n_bins = len(edges) + 1
    seen_by_bin = np.stack([(counted & start_seen & (bins == b)[None, :]).sum(axis=1) for b in range(n_bins)], 1)
    all_by_bin = np.stack([(counted & (bins == b)[None, :]).sum(axis=1) for b in range(n_bins)], 1)
    missing_by_bin = all_by_bin - seen_by_bin
    n_seen = seen_by_bin.sum(axis=1)
    n_missing = missing_by_bin.sum(axis=1)
    if p_miss is None:  # beta-binomial: detection probability unknown in each bin, uniform prior
        log_detect = (gammaln(seen_by_bin + 1) + gammaln(missing_by_bin + 1) - gammaln(all_by_bin + 2)).sum(axis=1)
    else:
        log_detect = n_seen * np.log1p(-p_miss) + n_missing * np.log(p_miss)
    explained = (allowed_pos.astype(np.float32) @ near.T.astype(np.float32)) > 0  # (m, lines)
    n_unexplained = (~explained).sum(axis=1)
    n_allowed = (allowed_pos & counted).sum(axis=1)
    log_l = log_detect + n_unexplained * np.log(p_spurious)
    if prior is not None:
        weights = np.array([float(prior.get(g.id, 0.0)) for g, _ in rows])
        with np.errstate(divide="ignore"):
            log_post = log_l + np.log(weights)
    else:
        log_post = log_l.astype(float)

    # the best setting of each group
    best: dict[int, int] = {}
    for i, (group, _) in enumerate(rows):
        j = best.get(group.id)
        if j is None or (log_post[i], -n_allowed[i]) > (log_post[j], -n_allowed[j]):
            best[group.id] = i
    chosen = sorted(best.values(), key=lambda i: (-log_post[i], n_allowed[i], rows[i][0].id))
    finite = np.array([log_post[i] for i in chosen])
    top = finite.max() if np.isfinite(finite).any() else 0.0
    weights = np.exp(finite - top) if np.isfinite(top) else np.zeros(len(chosen))
    probabilities = weights / weights.sum() if weights.sum() > 0 else weights
    least = int(min(n_unexplained[i] for i in chosen))
    out = []
    for i, p in zip(chosen, probabilities, strict=True):
        group, setting = rows[i]
        out.append(ExtinctionCandidate(
            extinction_group=group.id, symbol=group.symbol, space_groups=group.space_groups,
            log_likelihood=float(log_l[i]), probability=float(p), crystal_system=group.crystal_system,
            setting=setting, setting_cell=transform_cell(cell_t, setting), n_allowed=int(n_allowed[i]),
            n_seen=int(n_seen[i]), n_missing=int(n_missing[i]), n_unexplained=int(n_unexplained[i]),
            consistent=bool(n_unexplained[i] <= least)))
    return out
