"""The reciprocal metric of each crystal system as a few free Q coefficients.

Q(hkl) = 1/d^2 = h^2 A + k^2 B + l^2 C + hk D + hl E + kl F (Angstrom^-2, see :mod:`xrdframe.lattice`).
Each crystal system fixes some of the six coefficients; the remaining ``p`` free parameters ``x`` enter Q
linearly, Q(hkl) = terms(hkl) . x, which makes every trial cell the solution of a small linear system:

============ ===================== ========================================
system       x                     terms(hkl)
============ ===================== ========================================
cubic        (A,)                  (h^2 + k^2 + l^2,)
tetragonal   (A, C)                (h^2 + k^2, l^2)
hexagonal    (A, C), A = 4/(3a^2)  (h^2 + hk + k^2, l^2)  (also trigonal)
orthorhombic (A, B, C)             (h^2, k^2, l^2)
monoclinic   (A, B, C, E), b axis  (h^2, k^2, l^2, hl)
triclinic    (A, B, C, D, E, F)    (h^2, k^2, l^2, hk, hl, kl)
============ ===================== ========================================

>>> MetricSystem.get("hexagonal").coefficients(np.array([[0.1, 0.02]])).round(3).tolist()
[[0.1, 0.1, 0.02, 0.1, 0.0, 0.0]]
"""

from __future__ import annotations

from functools import cache

import attrs
import numpy as np

from xrdframe.lattice import centring_mask

__all__ = ["SYSTEMS", "MetricSystem", "terms6", "hkl_half_space"]

#: Crystal systems in the classical search order (highest metric symmetry first).
SYSTEMS = ("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic", "triclinic")

_N_PARAMS = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "orthorhombic": 3, "monoclinic": 4, "triclinic": 6}


def terms6(hkl: np.ndarray) -> np.ndarray:
    """(h^2, k^2, l^2, hk, hl, kl) of reflections ``hkl`` (shape (..., 3)); shape (..., 6)."""
    hkl = np.asarray(hkl, dtype=float)
    h, k, l = hkl[..., 0], hkl[..., 1], hkl[..., 2]  # noqa: E741 (Miller indices)
    return np.stack([h * h, k * k, l * l, h * k, h * l, k * l], axis=-1)


def hkl_half_space(h_max: int, k_max: int, l_max: int) -> np.ndarray:
    """All hkl with |h| <= h_max, |k| <= k_max, |l| <= l_max in one half of reciprocal space (000 excluded):
    one of each Friedel pair hkl / -h-k-l, shape (n, 3), int."""
    grid = np.meshgrid(np.arange(-h_max, h_max + 1), np.arange(-k_max, k_max + 1), np.arange(-l_max, l_max + 1),
                       indexing="ij")
    hkl = np.stack([g.ravel() for g in grid], axis=1)
    first = np.where(hkl[:, 0] != 0, hkl[:, 0], np.where(hkl[:, 1] != 0, hkl[:, 1], hkl[:, 2]))
    return hkl[first > 0]


@attrs.frozen
class MetricSystem:
    """A crystal system's free Q coefficients.

    :ivar name: one of :data:`SYSTEMS`.
    :ivar n_params: number of free coefficients ``p``.
    """

    name: str
    n_params: int

    @staticmethod
    @cache
    def get(name: str) -> MetricSystem:
        """The system called ``name`` (``'trigonal'`` is ``'hexagonal'``)."""
        name = "hexagonal" if name == "trigonal" else name
        if name not in _N_PARAMS:
            raise ValueError(f"unknown crystal system {name!r}; expected one of {SYSTEMS}")
        return MetricSystem(name, _N_PARAMS[name])

    def terms(self, hkl: np.ndarray) -> np.ndarray:
        """Design rows: Q(hkl) = terms(hkl) @ x; shape (..., p)."""
        t = terms6(hkl)
        h2, k2, l2, hk, hl = t[..., 0], t[..., 1], t[..., 2], t[..., 3], t[..., 4]
        if self.name == "cubic":
            return (h2 + k2 + l2)[..., None]
        if self.name == "tetragonal":
            return np.stack([h2 + k2, l2], axis=-1)
        if self.name == "hexagonal":
            return np.stack([h2 + hk + k2, l2], axis=-1)
        if self.name == "orthorhombic":
            return t[..., :3]
        if self.name == "monoclinic":
            return np.stack([h2, k2, l2, hl], axis=-1)
        return t

    def coefficients(self, x: np.ndarray) -> np.ndarray:
        """The six Q coefficients (A, B, C, D, E, F) of free parameters ``x`` (shape (n, p)); shape (n, 6)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        out = np.zeros((x.shape[0], 6))
        if self.name == "cubic":
            out[:, :3] = x[:, :1]
        elif self.name == "tetragonal":
            out[:, 0] = out[:, 1] = x[:, 0]
            out[:, 2] = x[:, 1]
        elif self.name == "hexagonal":
            out[:, 0] = out[:, 1] = out[:, 3] = x[:, 0]
            out[:, 2] = x[:, 1]
        elif self.name == "orthorhombic":
            out[:, :3] = x
        elif self.name == "monoclinic":
            out[:, :3] = x[:, :3]
            out[:, 4] = x[:, 3]
        else:
            out[:] = x
        return out

    def parameters(self, coefficients: np.ndarray) -> np.ndarray:
        """The free parameters of six Q coefficients (shape (6,) or (n, 6)) that belong to this system."""
        c = np.atleast_2d(np.asarray(coefficients, dtype=float))
        index = {"cubic": [0], "tetragonal": [0, 2], "hexagonal": [0, 2], "orthorhombic": [0, 1, 2],
                 "monoclinic": [0, 1, 2, 4], "triclinic": [0, 1, 2, 3, 4, 5]}[self.name]
        return c[:, index]

    @cache  # noqa: B019 - a handful of (system, limit, centring) keys, instances are cached singletons
    def index_table(self, limit: int, centring: str = "P") -> tuple[np.ndarray, np.ndarray]:
        """Representative hkl (shape (m, 3)) with |h|, |k|, |l| <= ``limit``, one per distinct row of
        :meth:`terms`, and those rows (shape (m, p)), sorted by the sum of squared indices. With a ``centring``
        (:func:`xrdframe.lattice.centring_mask`), the rows of which at least one reflection is allowed: the
        hexagonal rows of hkl and khl then hold R lattices in both the obverse and the reverse setting.

        >>> len(MetricSystem.get("cubic").index_table(2)[1]), len(MetricSystem.get("cubic").index_table(2, "F")[1])
        (9, 4)
        """
        hkl = hkl_half_space(limit, limit, limit)
        if centring != "P":
            hkl = hkl[centring_mask(hkl, centring)]
        hkl = hkl[np.argsort((hkl**2).sum(axis=1), kind="stable")]
        rows, first = np.unique(self.terms(hkl), axis=0, return_index=True)
        first = np.sort(first)
        return hkl[first], self.terms(hkl[first])
