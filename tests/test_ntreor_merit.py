"""de Wolff's M_N and Smith-Snyder's F_N of the ntreor plugin against small examples worked out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import xrdframe_ntreor  # noqa: F401
except ImportError:  # the editable install predates the plugin package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from xrdframe_ntreor.merit import f_n, m20, n_possible  # noqa: E402

# A primitive cubic cell with A = 1/a^2 = 0.01 A^-2 (a = 10 A): Q(hkl) = 0.01 (h^2 + k^2 + l^2).
# N = h^2 + k^2 + l^2 takes the values 1 2 3 4 5 6 8 9 10 ... (7 is not a sum of three squares).
Q_POSSIBLE = 0.01 * np.array([1, 2, 3, 4, 5, 6, 8, 9, 10])
Q_OBS = np.array([0.0101, 0.0199, 0.0300, 0.0402, 0.0500, 0.0598])


def test_n_possible_counts_distinct_lines_up_to_the_limit() -> None:
    # 300 and 221 both have N = 9: one line; up to Q = 0.09 there are N = 1 2 3 4 5 6 8 9 -> 8 lines
    q = 0.01 * np.array([1, 2, 3, 4, 5, 6, 8, 9, 9, 10])
    assert n_possible(q, 0.09) == 8
    assert n_possible(q, 0.0899) == 7
    assert n_possible(np.array([]), 1.0) == 0


def test_m20_hand_computed() -> None:
    # First five lines (n=5): Q_5 = 0.0500
    # |dQ| = |0.0101-0.01|, |0.0199-0.02|, |0.0300-0.03|, |0.0402-0.04|, |0.0500-0.05|
    #      = 0.0001, 0.0001, 0, 0.0002, 0        -> mean 0.0004 / 5 = 0.00008
    # N_possible(Q <= 0.05) = 5 (N = 1..5)
    # M_5 = 0.05 / (2 * 0.00008 * 5) = 0.05 / 0.0008 = 62.5
    assert m20(Q_OBS, Q_POSSIBLE, n=5) == pytest.approx(62.5)
    # All six lines: Q_6 = 0.0598, mean |dQ| = (0.0004 + 0.0002) / 6 = 0.0001, N_possible(Q <= 0.0598) = 5
    # (N = 6 at Q = 0.06 lies above the observed 0.0598); M_6 = 0.0598 / (2 * 0.0001 * 5) = 59.8
    assert m20(Q_OBS, Q_POSSIBLE, n=20) == pytest.approx(59.8)


def test_m20_with_assigned_q_and_unindexed_lines() -> None:
    # Explicit calculated values give the same answer as the nearest-line default.
    q_calc = 0.01 * np.array([1, 2, 3, 4, 5, 6])
    assert m20(Q_OBS, Q_POSSIBLE, q_calc=q_calc, n=5) == pytest.approx(62.5)
    # Marking line 4 (Q = 0.0402) unindexed: the first five indexed lines are 1 2 3 5 6,
    # Q_N = 0.0598, mean |dQ| = (0.0001 + 0.0001 + 0 + 0 + 0.0002) / 5 = 0.00008, N_possible = 5
    # M_5 = 0.0598 / (2 * 0.00008 * 5) = 74.75
    indexed = np.array([True, True, True, False, True, True])
    assert m20(Q_OBS, Q_POSSIBLE, n=5, indexed=indexed) == pytest.approx(74.75)
    assert m20(Q_OBS, Q_POSSIBLE, indexed=np.zeros(6, dtype=bool)) == 0.0


def test_m20_favours_the_lattice_with_fewer_possible_lines() -> None:
    # A body-centred cell (h+k+l even: N = 2 4 6 8 10 ...) indexing the same lines has half the possible lines.
    q_obs = np.array([0.0201, 0.0399, 0.0600, 0.0802])
    primitive = m20(q_obs, Q_POSSIBLE)  # N_possible(<= 0.0802) = 7 (1 2 3 4 5 6 8)
    centred = m20(q_obs, 0.01 * np.array([2, 4, 6, 8, 10]))  # N_possible = 4
    # both: Q_4 = 0.0802, mean |dQ| = (0.0001 + 0.0001 + 0 + 0.0002) / 4 = 0.0001
    assert primitive == pytest.approx(0.0802 / (2 * 0.0001 * 7))
    assert centred == pytest.approx(0.0802 / (2 * 0.0001 * 4))  # 200.5
    assert centred > primitive


def test_f_n_hand_computed() -> None:
    # 2theta observed 10.01 20.00 30.02, calculated possible 10 20 25 30 35
    # |d2theta| = 0.01, 0, 0.02 -> mean 0.01; N_possible(2theta <= 30.02) = 4 (10 20 25 30)
    # F_3 = 3 / (0.01 * 4) = 75, usually quoted as F_3 = 75.0 (0.010, 4)
    tt_obs = np.array([10.01, 20.0, 30.02])
    assert f_n(tt_obs, np.array([10.0, 20.0, 25.0, 30.0, 35.0])) == pytest.approx(75.0)
    assert f_n(tt_obs, np.array([10.0, 20.0, 25.0, 30.0, 35.0]), n=2) == pytest.approx(2 / (0.005 * 2))
    assert f_n(np.array([10.0, 20.0]), np.array([10.0, 20.0])) == float("inf")


def test_a_perfect_fit_gives_a_finite_m20_that_prefers_fewer_possible_lines() -> None:
    # exact lines of a cubic P cell (A = 0.01): the mean deviation is floored at Q_RESOLUTION * Q_N, so that
    # M20 = 1 / (2 Q_RESOLUTION N_possible), and rounding noise (1e-17) cannot reorder two exact cells
    from xrdframe_ntreor.merit import Q_RESOLUTION

    q_obs = 0.01 * np.array([1.0, 2.0, 3.0, 4.0])
    rounded = q_obs * (1 + 1e-15 * np.array([1, -1, 1, -1]))  # rounding-level deviations, about 1e-17
    primitive = m20(q_obs, 0.01 * np.array([1, 2, 3, 4, 5]))  # N_possible = 4
    assert primitive == pytest.approx(1 / (2 * Q_RESOLUTION * 4))
    assert m20(rounded, 0.01 * np.array([1, 2, 3, 4, 5])) == pytest.approx(primitive, rel=1e-12)
    supercell = m20(rounded, 0.0025 * np.arange(1, 21))  # a doubled cell: N_possible = 16
    assert supercell == pytest.approx(1 / (2 * Q_RESOLUTION * 16))
