"""``preview``: one structure through the augmentation operators one at a time, as a figure.

Like the paper's Figure 2: the first panel shows the ideal peaks binned on the
grid, each further panel adds the next operator (in the order the chain runs
them), so a user sees what each operator does to a real pattern.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from xrdframe.augmentation import AugmentationChain, PeakBatch, TwoThetaGrid
from xrdframe.component import AugmentationRef, param
from xrdframe.dataset import write_csv_atomic
from xrdframe.diffraction import simulate_peaks
from xrdframe.files import atomic_path
from xrdframe.run import RunContext
from xrdframe.structure import read_structure
from xrdframe.validators import positive, two_theta_range

__all__ = ["Preview", "PreviewParams"]


@attrs.frozen
class PreviewParams:
    structure: Path = param(doc="a crystal structure (CIF) to simulate")
    augmentations: list[AugmentationRef] = param(factory=list, doc="operators, applied cumulatively")
    wavelength: float = param(1.5406, doc="wavelength of the simulated peaks and of the grid", unit="Angstrom",
                              validator=positive)
    two_theta: tuple[float, float] = param((0.0, 120.0), doc="[start, stop] of the grid", unit="deg",
                                           validator=two_theta_range)
    step: float = param(0.02, doc="bin width of the grid", unit="deg", validator=positive)


class Preview:
    """Write ``preview.png`` (one panel per operator) and ``preview.csv`` (the profiles)."""

    def __init__(self, params: PreviewParams) -> None:
        self.params = params

    def run(self, context: RunContext) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import torch

        p = self.params
        structure = read_structure(p.structure)
        grid = TwoThetaGrid(p.two_theta[0], p.two_theta[1], p.step)
        peaks = simulate_peaks(structure, p.wavelength, p.two_theta)
        batch = PeakBatch.from_peak_lists([peaks], cells=[structure.cell])
        operators = [ref.build() for ref in p.augmentations]
        ordered = AugmentationChain(operators, grid, p.wavelength)
        steps = [("ideal peaks (binned)", AugmentationChain([], grid, p.wavelength))]
        sequence = [*ordered.peak_ops, *([ordered.render] if ordered.render else []), *ordered.profile_ops]
        names = {id(op): ref.name for op, ref in zip(operators, p.augmentations, strict=True)}
        for k in range(1, len(sequence) + 1):
            steps.append((f"+ {names[id(sequence[k - 1])]}", AugmentationChain(sequence[:k], grid, p.wavelength)))
        x = grid.centers().numpy()
        profiles = []
        for _, chain in steps:
            generator = torch.Generator().manual_seed(context.seed)  # the same draws for every prefix
            profiles.append(chain(batch, generator).intensity[0].double().numpy())
        fig, axes = plt.subplots(len(steps), 1, figsize=(9, 1.6 * len(steps) + 0.6), sharex=True, squeeze=False)
        for ax, (title, _), y in zip(axes[:, 0], steps, profiles, strict=True):
            ax.plot(x, y, lw=0.7, color="tab:blue")
            ax.set_ylabel("I", fontsize=8)
            ax.set_title(title, fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel(f"2theta (deg), wavelength {p.wavelength:.4f} A")
        fig.suptitle(f"{structure.name} (space group {structure.space_group})", fontsize=10)
        fig.tight_layout()
        with atomic_path(context.output / "preview.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        header = ["two_theta", *(f"step{k}" for k in range(len(steps)))]
        rows = np.column_stack([x, *profiles])
        write_csv_atomic(context.output / "preview.csv", header, [[f"{v:.6g}" for v in row] for row in rows])
        context.log.info("[%s] preview of %d operators -> %s", context.stage, len(sequence),
                         context.output / "preview.png")
