"""Metric functions of xrdframe.metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from xrdframe.metrics import (
    Outcome,
    accuracy,
    cell_rmse,
    confusion_matrix,
    mean_or_none,
    per_class_accuracy,
    share_below,
    share_outside_crystal_system,
    summarize,
    top_k_accuracy,
)


def test_accuracy_counts_missing_predictions_as_wrong_and_skips_unknown_truth() -> None:
    # 5 items with a true label: correct are 1st and 4th -> 2/5
    true = ["cubic", "cubic", "hexagonal", "trigonal", "monoclinic", None]
    pred = ["cubic", None, "trigonal", "trigonal", "triclinic", "cubic"]
    assert accuracy(true, pred) == pytest.approx(2 / 5)
    assert accuracy([None, None], ["cubic", None]) is None
    assert accuracy([], []) is None


def test_per_class_accuracy_by_hand() -> None:
    true = [1, 1, 1, 2, 2, 3]
    pred = [1, 1, 2, 2, None, 1]
    got = per_class_accuracy(true, pred, classes=[1, 2, 3, 4])
    assert got[1] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert got[2] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert got[3] == {"n": 1, "correct": 0, "accuracy": 0.0}
    assert got[4] == {"n": 0, "correct": 0, "accuracy": None}


def test_confusion_matrix_rows_true_columns_predicted_plus_none() -> None:
    labels = ["a", "b", "c"]
    true = ["a", "a", "b", "b", "b", "c", "z"]
    pred = ["a", "b", "b", None, "q", "a", "a"]
    assert confusion_matrix(true, pred, labels) == [[1, 1, 0, 0], [0, 1, 0, 2], [1, 0, 0, 0]]


def test_top_k_accuracy_by_hand() -> None:
    true = [3, 5, 7, 9]
    ranked = [[3, 1], [1, 5, 2], [1, 2, 3, 4, 7], []]
    got = top_k_accuracy(true, ranked, ks=(1, 2, 3, 5))
    assert got == {1: 0.25, 2: 0.5, 3: 0.5, 5: 0.75}
    assert top_k_accuracy([None], [[1]], ks=(1,)) == {1: None}


def test_share_outside_crystal_system() -> None:
    # 225 cubic (inside), 14 monoclinic predicted with 'orthorhombic' (outside), 62 orthorhombic (inside),
    # 166 trigonal predicted 'hexagonal' (outside); None ignored -> 2/4
    groups = [225, 14, 62, 166, None]
    systems = ["cubic", "orthorhombic", "orthorhombic", "hexagonal", "cubic"]
    assert share_outside_crystal_system(groups, systems) == 0.5
    assert share_outside_crystal_system([None], ["cubic"]) is None


def test_means_and_shares() -> None:
    assert mean_or_none([0.1, 0.3, None, float("nan")]) == pytest.approx(0.2)
    assert mean_or_none([None]) is None
    assert share_below([0.05, 0.1, 0.2, 0.0999], 0.1) == 0.5  # 0.1 itself is not below 0.1
    assert share_below([], 0.1) is None


def test_cell_rmse_same_lattice_other_setting() -> None:
    # orthorhombic axes permuted: the RMSE is that of the matched axes, (0.01, 0.02, 0.03) -> sqrt(14e-4 / 3)
    lengths, angles = cell_rmse((6.02, 5.01, 7.03, 90, 90, 90), (5.0, 6.0, 7.0, 90, 90, 90))
    assert lengths == pytest.approx(math.sqrt((0.01**2 + 0.02**2 + 0.03**2) / 3), abs=1e-9)
    assert angles == pytest.approx(0.0, abs=1e-9)


def test_cell_rmse_centred_and_rhombohedral_references() -> None:
    # an F-centred cubic cell against the same lattice given as its primitive rhombohedral cell, declared P
    a = 5.6402
    lengths, angles = cell_rmse((a, a, a, 90, 90, 90), (a / math.sqrt(2),) * 3 + (60.0, 60.0, 60.0), "F", "P")
    assert lengths < 0.01 and angles < 0.01
    # an R reference written on rhombohedral axes is taken as primitive; the prediction is on hexagonal axes
    hexagonal = (4.7589, 4.7589, 12.991, 90.0, 90.0, 120.0)
    a_r = math.sqrt(hexagonal[0] ** 2 / 3 + hexagonal[2] ** 2 / 9)
    alpha_r = math.degrees(2 * math.asin(3 / (2 * math.sqrt(3 + (hexagonal[2] / hexagonal[0]) ** 2))))
    lengths, angles = cell_rmse(hexagonal, (a_r, a_r, a_r, alpha_r, alpha_r, alpha_r), "R", "R")
    assert lengths < 1e-3 and angles < 1e-3


def _outcome(i: int, true_sg: int | None, status: str = "ok", **predicted: object) -> Outcome:
    from xrdframe.symmetry import symmetry_labels

    true = {}
    if true_sg is not None:
        labels = symmetry_labels(true_sg)
        true = {"crystal_system": labels.crystal_system, "extinction_group": labels.extinction_group,
                "space_group": true_sg}
    return Outcome(str(i), status=status, true=true, predicted=predicted, seconds=float(i))


def test_summarize_by_hand() -> None:
    outcomes = [
        _outcome(1, 225, crystal_system="cubic", extinction_group=85, space_group=225),  # all right
        _outcome(2, 14, crystal_system="monoclinic", extinction_group=6, space_group=13),  # CS, EG right; SG wrong
        _outcome(3, 62, crystal_system="cubic", space_group=221),  # wrong; no EG given
        _outcome(4, 62, status="failed"),  # wrong
        _outcome(5, None, crystal_system="cubic"),  # no truth: only in n
        _outcome(6, 225, status="skipped"),  # an unreadable file: not a pattern
    ]
    outcomes[0] = Outcome("1", true=outcomes[0].true, predicted=outcomes[0].predicted, seconds=1.0, rmse=(0.05, 0.0))
    outcomes[1] = Outcome("2", true=outcomes[1].true, predicted=outcomes[1].predicted, seconds=2.0, rmse=(0.3, 0.2))
    m = summarize(outcomes)
    assert m["n"] == 5 and m["n_labelled"] == 4 and m["n_skipped_files"] == 1 and m["n_failed"] == 1
    assert m["crystal_system_accuracy"] == 0.5  # 2 of 4
    assert m["extinction_group_accuracy"] == 0.5
    assert m["space_group_accuracy"] == 0.25
    assert m["lattice_rmse_length_mean"] == pytest.approx(0.175)
    assert m["lattice_rmse_angle_mean"] == pytest.approx(0.1)
    assert m["lattice_rmse_length_share_below_0.1"] == 0.5 and m["lattice_rmse_angle_share_below_0.1"] == 0.5
    assert m["seconds_per_pattern"] == pytest.approx((1 + 2 + 3 + 4 + 5) / 5)
    # space groups predicted: 225 (cubic, inside), 13 (monoclinic, inside), 221 with 'cubic' (inside)
    assert m["space_group_outside_crystal_system"] == 0.0
    assert m["top_k_accuracy"]["crystal_system"]["1"] == 0.5
    cm = m["confusion_matrix"]["crystal_system"]
    assert cm["counts"][cm["true"].index("orthorhombic")][cm["predicted"].index("cubic")] == 1
    assert cm["counts"][cm["true"].index("orthorhombic")][cm["predicted"].index("none")] == 1
    assert m["per_class_accuracy"]["crystal_system"]["orthorhombic"] == {"n": 2, "correct": 0, "accuracy": 0.0}


def test_summarize_nulls_labels_an_indexer_never_predicts() -> None:
    outcomes = [_outcome(1, 225, crystal_system="cubic"), _outcome(2, 14, crystal_system="cubic")]
    m = summarize(outcomes)
    assert m["crystal_system_accuracy"] == 0.5
    assert m["extinction_group_accuracy"] is None and m["space_group_accuracy"] is None
    assert m["lattice_rmse_length_mean"] is None and m["n_lattice"] == 0
    assert m["top_k_accuracy"]["space_group"] is None
