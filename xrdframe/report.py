"""The report of an evaluation: ``report.md`` with the comparison table, and its PNG figures.

:func:`write_report` writes, into an evaluation's output folder:

* ``report.md``: the comparison table (indexers by test sets: crystal system, extinction group and space
  group accuracy, as the paper's results section), a detail table per test set (lattice RMSE, seconds per
  pattern, failures), accuracy per crystal system, the skipped files and the failures;
* ``figures/confusion_<test_set>.png``: crystal-system confusion matrices, one panel per indexer;
* ``figures/accuracy_by_crystal_system_<test_set>.png``: accuracy per true crystal system and indexer;
* ``figures/patterns_<test_set>.png``: a few patterns with the peak positions of each indexer's predicted cell
  (and of the reference cell, when known) as ticks.

Figures are drawn with matplotlib's Agg backend (no display needed); every file is written atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xrdframe.files import atomic_path, write_text_atomic
from xrdframe.lattice import centring_mask
from xrdframe.metrics import LABELS, Outcome

__all__ = ["peak_positions", "write_report"]

_SHORT = {"triclinic": "tric", "monoclinic": "mono", "orthorhombic": "orth", "tetragonal": "tetr",
          "trigonal": "trig", "hexagonal": "hex", "cubic": "cub", "none": "none"}


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "unnamed"


def peak_positions(cell: Sequence[float], wavelength: float, two_theta_range: tuple[float, float] = (0.0, 120.0),
                   centring: str = "P", max_index: int = 12) -> np.ndarray:
    """Distinct 2theta (degrees) of the reflections of a cell allowed by its lattice centring, in a range.

    >>> [round(float(x), 2) for x in peak_positions((4.0, 4.0, 4.0, 90, 90, 90), 1.5406, (0, 50), "I")]
    [31.61, 45.31]
    """
    from xrdframe.lattice import q_coefficients, q_values

    r = np.arange(-max_index, max_index + 1)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    hkl = hkl[centring_mask(hkl, centring)]
    q = q_values(hkl, q_coefficients(cell))
    s = wavelength * np.sqrt(np.clip(q, 0, None)) / 2.0
    s = s[(s > 0) & (s < 1)]
    two_theta = np.degrees(2.0 * np.arcsin(s))
    two_theta = two_theta[(two_theta >= two_theta_range[0]) & (two_theta <= two_theta_range[1])]
    return np.unique(np.round(two_theta, 4))


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _fixed(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |",
            *("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows)]


def _comparison(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    sets = list(metrics)
    indexers = list(dict.fromkeys(ix for per_set in metrics.values() for ix in per_set))
    header = ["indexer", *(f"{s} {k}" for s in sets for k in ("CS", "EG", "SG"))]
    rows = []
    for ix in indexers:
        row = [ix]
        for s in sets:
            m = metrics[s].get(ix, {})
            row += [_percent(m.get(f"{label}_accuracy")) for label in LABELS]
        rows.append(row)
    return _table(header, rows)


def _details(per_set: Mapping[str, Mapping[str, Any]]) -> list[str]:
    header = ["indexer", "n", "CS %", "EG %", "SG %", "top-3 CS %", "SG outside CS %", "n cell",
              "RMSE a,b,c (Å)", "RMSE angles (°)", "< 0.1 Å %", "< 0.1° %", "s / pattern", "no answer", "failed",
              "skipped files"]
    rows = []
    for ix, m in per_set.items():
        top = (m.get("top_k_accuracy") or {}).get("crystal_system") or {}
        rows.append([ix, str(m.get("n", 0)), *(_percent(m.get(f"{label}_accuracy")) for label in LABELS),
                     _percent(top.get("3")), _percent(m.get("space_group_outside_crystal_system")),
                     str(m.get("n_lattice", 0)), _fixed(m.get("lattice_rmse_length_mean")),
                     _fixed(m.get("lattice_rmse_angle_mean")),
                     _percent(m.get("lattice_rmse_length_share_below_0.1")),
                     _percent(m.get("lattice_rmse_angle_share_below_0.1")),
                     _fixed(m.get("seconds_per_pattern"), 3), str(m.get("n_no_answer", 0)),
                     str(m.get("n_failed", 0)), str(m.get("n_skipped_files", 0))])
    return _table(header, rows)


def _by_system(per_set: Mapping[str, Mapping[str, Any]]) -> list[str]:
    from xrdframe.symmetry import CRYSTAL_SYSTEMS

    counts = {}
    for m in per_set.values():
        for system, entry in (m.get("per_class_accuracy") or {}).get("crystal_system", {}).items():
            counts[system] = max(counts.get(system, 0), entry.get("n", 0))
    systems = [s for s in CRYSTAL_SYSTEMS if counts.get(s)]
    if not systems:
        return []
    header = ["indexer", *(f"{s} (n={counts[s]})" for s in systems)]
    rows = [[ix, *(_percent(((m.get("per_class_accuracy") or {}).get("crystal_system", {}).get(s) or {})
                            .get("accuracy")) for s in systems)] for ix, m in per_set.items()]
    return _table(header, rows)


def write_report(output: Path, metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 runs: Mapping[str, Mapping[str, Sequence[Outcome]]], sets: Mapping[str, Sequence[Any]], *,
                 seed: int = 0, figures: bool = True, examples: int = 3,
                 indexer_names: Mapping[str, str] | None = None,
                 set_names: Mapping[str, str] | None = None) -> Path:
    """Write ``report.md`` (and, with ``figures``, ``figures/*.png``) into ``output``; return the report's path.

    :param metrics: ``metrics.json``'s content.
    :param runs: outcomes per test set and indexer, in the order of the test set's readable patterns.
    :param sets: the :class:`~xrdframe.sources.LabelledPattern` items of each test set (unreadable ones included).
    """
    output = Path(output)
    indexer_names = indexer_names or {}
    set_names = set_names or {}
    lines = ["# Evaluation report", "",
             f"Seed {seed}. Test sets: " + ", ".join(
                 f"**{s}** ({set_names.get(s, '?')}, {sum(1 for i in items if i.data is not None)} patterns"
                 + (f", {n_bad} unreadable" if (n_bad := sum(1 for i in items if i.data is None)) else "") + ")"
                 for s, items in sets.items()) + ". Indexers: " + ", ".join(
                 f"**{ix}** ({name})" for ix, name in indexer_names.items()) + ".", "",
             "## Comparison", "",
             "Accuracy (%) of the crystal system (CS), extinction group (EG) and space group (SG); – where the "
             "indexer does not predict the label or the test set has no such labels. Definitions: "
             "docs/evaluation.md.", "", *_comparison(metrics), ""]
    drawn: dict[str, list[str]] = {}
    if figures:
        drawn = _figures(output, metrics, runs, sets, examples)
    for s, per_set in metrics.items():
        lines += [f"## Test set `{s}`", "", *_details(per_set), ""]
        by_system = _by_system(per_set)
        if by_system:
            lines += ["Accuracy (%) by true crystal system:", "", *by_system, ""]
        for name in drawn.get(s, []):
            lines += [f"![{name}](figures/{name})", ""]
        errors = [f"- {ix}: {m['error']}" for ix, m in per_set.items() if m.get("error")]
        if errors:
            lines += ["Indexers that could not be built:", "", *errors, ""]
        failures = [(ix, o) for ix, outcomes in runs.get(s, {}).items() for o in outcomes if o.status == "failed"]
        if failures and not errors:
            lines += [f"Failures ({len(failures)}; all in the predictions CSVs, status `failed`):", ""]
            lines += [f"- {ix} on `{o.id}`: {o.reason}" for ix, o in failures[:10]]
            lines += ["- ..." if len(failures) > 10 else "", ""]
        bad = [i for i in sets.get(s, []) if i.data is None]
        if bad:
            lines += [f"Skipped files ({len(bad)}; also in skipped.csv):", ""]
            lines += [f"- `{i.id}`: {i.error}" for i in bad] + [""]
    lines += ["## Files", "",
              "- `metrics.json`: every metric, per test set and indexer",
              "- `predictions/<test set>/<indexer>.csv`: one row per pattern (predicted and true labels, status)",
              "- `skipped.csv`: the files that could not be read, and why", ""]
    path = output / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path


# ---------------------------------------------------------------------------------------------------- figures


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _figures(output: Path, metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
             runs: Mapping[str, Mapping[str, Sequence[Outcome]]], sets: Mapping[str, Sequence[Any]],
             examples: int) -> dict[str, list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    folder = output / "figures"
    drawn: dict[str, list[str]] = {}
    for s, per_set in metrics.items():
        names = []
        if any(m.get("n_labelled") for m in per_set.values()):
            names.append(_confusion_figure(folder, s, per_set))
            names.append(_system_figure(folder, s, per_set))
        name = _pattern_figure(folder, s, runs.get(s, {}), sets.get(s, []), examples)
        if name:
            names.append(name)
        drawn[s] = names
    return drawn


def _confusion_figure(folder: Path, s: str, per_set: Mapping[str, Mapping[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    n = len(per_set)
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 4.2 * n + 0.5), 4.4), squeeze=False)
    for ax, (ix, m) in zip(axes[0], per_set.items(), strict=True):
        cm = m["confusion_matrix"]["crystal_system"]
        counts = np.asarray(cm["counts"], dtype=float)
        rows = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(cm["predicted"])), [_SHORT.get(x, x) for x in cm["predicted"]], rotation=45,
                      fontsize=7)
        ax.set_yticks(range(len(cm["true"])), [_SHORT.get(x, x) for x in cm["true"]], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{ix}: {_percent(m.get('crystal_system_accuracy'))} %", fontsize=9)
    fig.suptitle(f"{s}: crystal-system confusion\n(counts; colour: share of the true class)", fontsize=9)
    fig.tight_layout()
    name = f"confusion_{_safe(s)}.png"
    _save(fig, folder / name)
    return name


def _system_figure(folder: Path, s: str, per_set: Mapping[str, Mapping[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    from xrdframe.symmetry import CRYSTAL_SYSTEMS

    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / max(1, len(per_set))
    x = np.arange(len(CRYSTAL_SYSTEMS))
    for k, (ix, m) in enumerate(per_set.items()):
        per_class = (m.get("per_class_accuracy") or {}).get("crystal_system", {})
        values = [(per_class.get(c) or {}).get("accuracy") for c in CRYSTAL_SYSTEMS]
        ax.bar(x + (k - (len(per_set) - 1) / 2) * width, [0 if v is None else 100 * v for v in values], width,
               label=ix)
    counts = [max(((m.get("per_class_accuracy") or {}).get("crystal_system", {}).get(c) or {}).get("n", 0)
                  for m in per_set.values()) for c in CRYSTAL_SYSTEMS]
    ax.set_xticks(x, [f"{c}\n(n={n})" for c, n in zip(CRYSTAL_SYSTEMS, counts, strict=True)], fontsize=7)
    ax.set_ylabel("accuracy (%)", fontsize=8)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    ax.set_title(f"{s}: crystal-system accuracy by true crystal system", fontsize=9)
    fig.tight_layout()
    name = f"accuracy_by_crystal_system_{_safe(s)}.png"
    _save(fig, folder / name)
    return name


def _pattern_figure(folder: Path, s: str, runs: Mapping[str, Sequence[Outcome]], items: Sequence[Any],
                    examples: int) -> str | None:
    import matplotlib.pyplot as plt

    from xrdframe.pattern import Pattern
    from xrdframe.symmetry import symmetry_labels

    usable = [item for item in items if item.data is not None]
    by_index = {ix: list(outcomes) for ix, outcomes in runs.items()}
    drawable = [k for k, item in enumerate(usable) if isinstance(item.data, Pattern) and item.data.wavelength
                and any(k < len(o) and o[k].cell is not None for o in by_index.values())]
    if not drawable:
        return None
    # spread over the set (the first, the last and evenly between)
    chosen = sorted({drawable[int(round(j))] for j in np.linspace(0, len(drawable) - 1, min(examples, len(drawable)))})
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 2.6 * len(chosen)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, k in zip(axes[:, 0], chosen, strict=True):
        item = usable[k]
        pattern = item.data
        x, y = np.asarray(pattern.two_theta), np.asarray(pattern.intensity, dtype=float)
        span = (float(x.min()), float(x.max()))
        top = float(np.nanmax(y)) if y.size and np.nanmax(y) > 0 else 1.0
        ax.plot(x, y / top, lw=0.6, color="0.3")
        rows = []
        if item.cell is not None:
            centring = symmetry_labels(int(item.space_group)).centring if item.space_group else "P"
            rows.append(("reference", item.cell, centring, "black"))
        for j, (ix, outcomes) in enumerate(by_index.items()):
            if k < len(outcomes) and outcomes[k].cell is not None:
                o = outcomes[k]
                rows.append((f"{ix}: {o.predicted.get('crystal_system') or '?'}", o.cell, o.centring,
                             colours[j % len(colours)]))
        for r, (label, cell, centring, colour) in enumerate(rows):
            try:
                ticks = peak_positions(cell, float(pattern.wavelength), span, centring)
            except (ValueError, np.linalg.LinAlgError):
                continue
            level = -0.08 - 0.1 * r
            ax.vlines(ticks, level - 0.04, level + 0.04, color=colour, lw=0.7, label=label)
        ax.set_ylim(-0.12 - 0.1 * len(rows), 1.05)
        ax.set_xlim(*span)
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="upper right")
        truth = f"space group {item.space_group}" if item.space_group else "no reference"
        ax.set_title(f"{item.id} ({truth}), wavelength {pattern.wavelength:.4f} Å", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("2θ (deg)")
    fig.tight_layout()
    name = f"patterns_{_safe(s)}.png"
    _save(fig, folder / name)
    return name
