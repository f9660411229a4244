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

from collections.abc import Sequence

import numpy as np

__all__ = ["q_coefficients", "cell_from_q_coefficients", "q_values", "cell_volume", "two_theta_to_q",
           "q_to_two_theta"]

Cell = tuple[float, float, float, float, float, float]


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
    h, k, l = (np.asarray(hkl, dtype=float)[..., i] for i in range(3))
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
