"""Figures of merit of an indexing: de Wolff's M_N and Smith & Snyder's F_N.

*M_N* (de Wolff, P. M. (1968). J. Appl. Cryst. 1, 108-113)::

    M_N = Q_N / (2 <|Q_obs - Q_calc|> N_possible(Q_N))

with Q = 1/d^2 (Angstrom^-2), Q_N the Q of the N-th observed (indexed) line, the mean deviation taken over
those N lines and N_possible the number of distinct calculated Q values up to Q_N. N = 20 gives M20.

*F_N* (Smith, G. S. & Snyder, R. L. (1979). J. Appl. Cryst. 12, 60-65)::

    F_N = N / (<|2theta_obs - 2theta_calc|> N_possible(2theta_N))

in degrees, usually quoted as ``F_N(<|delta 2theta|>, N_possible)``.

"Possible" lines are the distinct calculated positions allowed by the lattice (centring absences removed):
the caller passes exactly those. Coincident calculated lines (same Q within a relative 1e-7, for example
cubic 300 and 221) count once.

>>> q_possible = 0.01 * np.array([1, 2, 3, 4, 5, 6, 8])   # a primitive cubic cell, A = 0.01 A^-2
>>> round(m20(np.array([0.0101, 0.0199, 0.03, 0.0402, 0.05]), q_possible), 3)
62.5
"""

from __future__ import annotations

import numpy as np

__all__ = ["n_possible", "m20", "f_n"]

#: Calculated values closer than this relative difference are one line.
COINCIDENCE = 1e-7

#: Smallest mean |Q_obs - Q_calc| of :func:`m20`, relative to Q_N: far below any measured precision (0.001 deg
#: at 2theta = 30 deg is 7e-5 in Q), far above the rounding of refined Q values in double precision.
Q_RESOLUTION = 1e-9


def n_possible(calc_possible: np.ndarray, upper: float) -> int:
    """Number of distinct values of ``calc_possible`` (Q or 2theta) not above ``upper``."""
    values = np.sort(np.asarray(calc_possible, dtype=float).ravel())
    values = values[np.isfinite(values) & (values <= upper * (1 + COINCIDENCE))]
    if values.size == 0:
        return 0
    distinct = np.diff(values) > COINCIDENCE * np.maximum(np.abs(values[1:]), 1e-300)
    return int(1 + np.count_nonzero(distinct))


def _first_n(obs: np.ndarray, calc: np.ndarray | None, possible: np.ndarray, n: int,
             indexed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    obs = np.asarray(obs, dtype=float).ravel()
    possible = np.asarray(possible, dtype=float).ravel()
    if calc is None:  # nearest possible line
        sorted_possible = np.sort(possible)
        i = np.clip(np.searchsorted(sorted_possible, obs), 1, max(sorted_possible.size - 1, 1))
        lo, hi = sorted_possible[i - 1], sorted_possible[np.minimum(i, sorted_possible.size - 1)]
        calc = np.where(np.abs(obs - lo) <= np.abs(obs - hi), lo, hi)
    calc = np.asarray(calc, dtype=float).ravel()
    mask = np.ones(obs.shape, dtype=bool) if indexed is None else np.asarray(indexed, dtype=bool).ravel()
    order = np.argsort(obs, kind="stable")
    chosen = order[mask[order]][:n]
    return obs[chosen], calc[chosen]


def m20(q_obs: np.ndarray, q_calc_possible: np.ndarray, *, q_calc: np.ndarray | None = None, n: int = 20,
        indexed: np.ndarray | None = None) -> float:
    """de Wolff's M_N over the first ``n`` indexed observed lines.

    :param q_obs: observed Q = 1/d^2, Angstrom^-2.
    :param q_calc_possible: every calculated Q allowed by the lattice (any order; coincident ones count once).
    :param q_calc: the calculated Q assigned to each observed line; default the nearest possible line.
    :param n: N (20 for M20; fewer when fewer lines are indexed).
    :param indexed: mask of the observed lines that are indexed (default all); unindexed lines are skipped.
    :returns: M_N, or 0 when nothing is indexed. The mean deviation is taken as at least
        :data:`Q_RESOLUTION` times Q_N, the floating-point noise of refined Q values, so that a perfect fit gives
        a finite M_N that still prefers the cell with fewer possible lines (exact lines otherwise give M_N of
        1e14 and more from rounding noise alone, in an order that changed between two environments).
    """
    obs, calc = _first_n(q_obs, q_calc, q_calc_possible, n, indexed)
    if obs.size == 0:
        return 0.0
    q_n = float(obs.max())
    n_poss = max(n_possible(q_calc_possible, q_n), 1)
    eps = max(float(np.mean(np.abs(obs - calc))), Q_RESOLUTION * q_n)
    return q_n / (2.0 * eps * n_poss)


def f_n(two_theta_obs: np.ndarray, two_theta_calc_possible: np.ndarray, *, two_theta_calc: np.ndarray | None = None,
        n: int = 20, indexed: np.ndarray | None = None) -> float:
    """Smith & Snyder's F_N over the first ``n`` indexed observed lines (angles in degrees 2theta).

    Arguments as in :func:`m20`, with 2theta (degrees) instead of Q.

    >>> round(f_n(np.array([10.01, 20.0, 30.02]), np.array([10.0, 20.0, 25.0, 30.0])), 3)
    75.0
    """
    obs, calc = _first_n(two_theta_obs, two_theta_calc, two_theta_calc_possible, n, indexed)
    if obs.size == 0:
        return 0.0
    n_poss = max(n_possible(two_theta_calc_possible, float(obs.max())), 1)
    eps = float(np.mean(np.abs(obs - calc)))
    return float("inf") if eps == 0 else obs.size / (eps * n_poss)
