"""Higher metric symmetry hidden in a low-symmetry cell: lattice two-fold axes (Le Page's method via gemmi).

A triclinic or monoclinic search can return a cell whose lattice has more symmetry (for example a primitive
cell of a C-centred monoclinic lattice). The lattice two-fold axes of the Niggli-reduced primitive cell
(``gemmi.find_lattice_2fold_ops``, obliquity in degrees) tell: one axis -> monoclinic, three mutually
perpendicular -> orthorhombic. The cell rebuilt on those axes is the start of a refinement in that system.

>>> [(system, sorted(round(x, 3) for x in cell[:3])) for system, cell in higher_metric_cells((5, 6, 7, 90, 90, 90))]
[('orthorhombic', [5.0, 6.0, 7.0])]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import gemmi
import numpy as np

__all__ = ["lattice_twofold_axes", "higher_metric_cells"]

Cell = tuple[float, float, float, float, float, float]


def _metric(cell: Sequence[float]) -> np.ndarray:
    return np.array(gemmi.UnitCell(*cell).metric_tensor().as_mat33().tolist())


def _cell(metric: np.ndarray) -> Cell:
    a, b, c = np.sqrt(np.diag(metric))
    alpha = np.degrees(np.arccos(metric[1, 2] / (b * c)))
    beta = np.degrees(np.arccos(metric[0, 2] / (a * c)))
    gamma = np.degrees(np.arccos(metric[0, 1] / (a * b)))
    return (float(a), float(b), float(c), float(alpha), float(beta), float(gamma))


def lattice_twofold_axes(cell: Sequence[float], centring: str = "P",
                         max_obliquity: float = 0.1) -> tuple[Cell, list[np.ndarray]]:
    """The Niggli-reduced primitive cell of a lattice and its two-fold axes (integer direct-lattice vectors in
    that cell) with obliquity up to ``max_obliquity`` degrees."""
    gv = gemmi.GruberVector(gemmi.UnitCell(*cell), centring)
    gv.niggli_reduce()
    reduced = gv.get_cell()
    axes = []
    for op, _ in gemmi.find_lattice_2fold_ops(reduced, max_obliquity):
        rot = np.array(op.rot, dtype=float) / gemmi.Op.DEN
        _, _, vt = np.linalg.svd(rot - np.eye(3))
        u = vt[-1] / np.abs(vt[-1]).max()
        u = np.round(u * 12)
        u = (u / np.gcd.reduce(np.abs(u).astype(np.int64))).astype(np.int64)
        axes.append(u)
    return tuple(reduced.parameters), axes  # type: ignore[return-value]


def _shortest_perpendicular(metric: np.ndarray, axis: np.ndarray, limit: int = 4) -> list[np.ndarray]:
    """Two shortest non-collinear lattice vectors perpendicular to ``axis``, shortest first."""
    grid = np.array(list(itertools.product(range(-limit, limit + 1), repeat=3)))
    grid = grid[np.any(grid != 0, axis=1)]
    length2 = np.einsum("ni,ij,nj->n", grid, metric, grid)
    dot = grid @ metric @ axis
    scale = np.sqrt(length2 * float(axis @ metric @ axis))
    perpendicular = grid[np.abs(dot) <= 0.01 * scale]
    perpendicular = perpendicular[np.argsort(np.einsum("ni,ij,nj->n", perpendicular, metric, perpendicular),
                                             kind="stable")]
    if len(perpendicular) == 0:
        return []
    first = perpendicular[0]
    for v in perpendicular[1:]:
        if np.any(np.cross(first, v) != 0):
            return [first, v]
    return []


def higher_metric_cells(cell: Sequence[float], centring: str = "P", max_obliquity: float = 0.1
                        ) -> list[tuple[str, Cell]]:
    """Cells on the lattice two-fold axes: ``[('monoclinic', cell)]`` (b on the axis) for one axis,
    ``[('orthorhombic', cell)]`` for three mutually perpendicular axes, else ``[]`` (none, or the higher systems
    that the search tries first anyway)."""
    reduced, axes = lattice_twofold_axes(cell, centring, max_obliquity)
    metric = _metric(reduced)
    if len(axes) == 1:
        plane = _shortest_perpendicular(metric, axes[0])
        if len(plane) < 2:
            return []
        basis = np.array([plane[0], axes[0], plane[1]], dtype=float)  # rows: a, b (unique), c
        return [("monoclinic", _cell(basis @ metric @ basis.T))]
    if len(axes) == 3:
        basis = np.array(axes, dtype=float)
        cross = basis @ metric @ basis.T
        norms = np.sqrt(np.diag(cross))
        if np.all(np.abs(cross - np.diag(np.diag(cross))) <= 0.01 * np.outer(norms, norms)):
            return [("orthorhombic", _cell(cross))]
    return []
