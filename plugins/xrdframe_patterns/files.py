"""``pattern_files``: measured patterns from files, labelled by an ``index.csv`` or unlabelled from a glob.

An ``index.csv`` (CONTRACT.md section 6) has a ``path`` column (relative to the CSV), ``wavelength``
(Angstrom) and optional labels ``space_group`` and ``a, b, c, alpha, beta, gamma``; other columns
(``crystal_system``, ``name``, ...) are kept in :attr:`LabelledPattern.extra`. A glob (``data/lab/*.xy``) or
a folder (every pattern file in it) gives patterns without labels.

The wavelength of a pattern comes from its file, else from its index row, else from the source's
``wavelength`` parameter; else the pattern is not usable (never a silent Cu default). A file that cannot
be read is yielded with ``data=None`` and an ``error`` naming the file (and the line, where one is at
fault), so that an evaluation lists it and goes on with the others.
"""

from __future__ import annotations

import csv
import glob as globbing
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from xrdframe.component import param
from xrdframe.pattern import Pattern, PatternError, is_peak_list, read_pattern, read_peak_list
from xrdframe.sources import LabelledPattern
from xrdframe.validators import optional_positive

__all__ = ["PATTERN_SUFFIXES", "PatternFiles", "PatternFilesParams"]

#: File name endings a folder given as ``glob`` is searched for.
PATTERN_SUFFIXES = (".xy", ".xye", ".csv", ".txt", ".dat", ".xrdml", ".fxye", ".gsa", ".gss", ".gsas", ".raw",
                    ".cif")
_CELL = ("a", "b", "c", "alpha", "beta", "gamma")


@attrs.frozen
class PatternFilesParams:
    index: Path | None = param(None, doc="an index.csv (columns path, wavelength, optional space_group, a, b, c, "
                                         "alpha, beta, gamma; paths relative to the CSV)")
    glob: str | None = param(None, doc="instead of index: a glob of pattern files (data/lab/*.xy) or a folder, "
                                       "read without labels")
    wavelength: float | None = param(None, unit="Angstrom", validator=optional_positive,
                                     doc="used for the files whose file and index row give no wavelength "
                                         "(null: such a file is an error)")

    def __attrs_post_init__(self) -> None:
        if (self.index is None) == (self.glob is None):
            raise ValueError("give exactly one of 'index' (a labelled set) and 'glob' (files without labels)")


@attrs.frozen
class _Entry:
    """One file to read, with its labels (or the problem of its index row)."""

    id: str
    path: Path | None
    wavelength: float | None = None
    space_group: int | None = None
    cell: tuple[float, float, float, float, float, float] | None = None
    extra: dict[str, str] = attrs.field(factory=dict)
    where: str = ""  # 'index.csv, line N' for index rows
    error: str | None = None


def _number(text: str | None) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    return float(text)


def _index_entries(index: Path) -> list[_Entry]:
    """The rows of an index.csv; a bad row becomes an entry with an error naming the index and the line."""
    if not index.is_file():
        raise PatternError(index, "index file not found" if not index.exists() else "is not a file, expected an "
                                  "index.csv")
    folder = index.parent
    entries: list[_Entry] = []
    with open(index, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "path" not in header:
            raise PatternError(index, f"no 'path' column in the header {header}; expected columns path, wavelength "
                                      "and optionally space_group, a, b, c, alpha, beta, gamma", 1)
        reader.fieldnames = header
        previous_line = 1
        for row in reader:
            line = previous_line + 1  # the first line of this record
            previous_line = reader.line_num
            row = {k: (v or "").strip() if isinstance(v, str) else "" for k, v in row.items() if k is not None}
            if not any(row.values()):
                continue
            where = f"{index}, line {line}"
            name = row.get("path", "")
            extra = {k: v for k, v in row.items() if k not in ("path", "wavelength", "space_group", *_CELL)}
            if not name:
                entries.append(_Entry(id=f"{index.name}:{line}", path=None, where=where, extra=extra,
                                      error=f"{where}: empty 'path'"))
                continue
            problems: list[str] = []
            wavelength = None
            try:
                wavelength = _number(row.get("wavelength"))
                if wavelength is not None and not (math.isfinite(wavelength) and wavelength > 0):
                    raise ValueError
            except ValueError:
                problems.append(f"wavelength {row.get('wavelength')!r} is not a positive number of Angstrom")
                wavelength = None
            space_group = None
            if row.get("space_group"):
                try:
                    value = float(row["space_group"])
                    if not (value.is_integer() and 1 <= value <= 230):
                        raise ValueError
                    space_group = int(value)
                except ValueError:
                    problems.append(f"space_group {row['space_group']!r} is not an integer from 1 to 230")
            cell = None
            given = [k for k in _CELL if row.get(k)]
            angles = _implied_angles(space_group, row) if given and not any(row.get(k) for k in _CELL[3:]) else None
            if angles is not None:  # lengths only: the angles the crystal system fixes
                row = {**row, **dict(zip(_CELL[3:], angles, strict=True))}
            if given:
                try:
                    values = [float(row.get(k, "")) for k in _CELL]
                    if not all(math.isfinite(v) and v > 0 for v in values) or not all(v < 180 for v in values[3:]):
                        raise ValueError
                    cell = tuple(values)
                except ValueError:
                    shown = ", ".join(f"{k}={row.get(k, '')!r}" for k in _CELL)
                    problems.append(f"cell ({shown}) must be six positive numbers (Angstrom, degrees < 180), or all "
                                    "empty")
            entries.append(_Entry(id=name, path=(folder / name), wavelength=wavelength, space_group=space_group,
                                  cell=cell, extra=extra, where=where,  # type: ignore[arg-type]
                                  error=f"{where}: {'; '.join(problems)}" if problems else None))
    return entries


def _implied_angles(space_group: int | None, row: dict[str, str]) -> tuple[str, str, str] | None:
    """Cell angles fixed by the crystal system of ``space_group`` for a row giving only the lengths (orthorhombic,
    tetragonal, cubic: 90, 90, 90; hexagonal and trigonal on hexagonal axes, a = b != c: 90, 90, 120); ``None``
    when the system does not fix them (the row is then reported as incomplete)."""
    from xrdframe.symmetry import crystal_system

    if space_group is None:
        return None
    system = crystal_system(space_group)
    if system in ("orthorhombic", "tetragonal", "cubic"):
        return ("90", "90", "90")
    if system in ("hexagonal", "trigonal"):
        try:
            a, b, c = (float(row.get(k, "")) for k in _CELL[:3])
        except ValueError:
            return None
        if math.isclose(a, b, rel_tol=1e-4) and not math.isclose(a, c, rel_tol=1e-4):
            return ("90", "90", "120")
    return None


def _glob_entries(pattern: str) -> list[_Entry]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        base = path
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PATTERN_SUFFIXES
                       and p.name != "index.csv" and not p.name.startswith("."))
    else:
        base = _glob_base(pattern)
        files = sorted(Path(p) for p in globbing.glob(os.path.expanduser(pattern), recursive=True))
        files = [p for p in files if p.is_file() and p.name != "index.csv" and not p.name.startswith(".")]
    return [_Entry(id=_relative(p, base), path=p) for p in files]


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


class PatternFiles:
    """Measured patterns from an ``index.csv`` (labelled) or a glob/folder (unlabelled); see the module doc."""

    def __init__(self, params: PatternFilesParams) -> None:
        self.params = params

    def _entries(self) -> list[_Entry]:
        if self.params.index is not None:
            return _index_entries(Path(self.params.index))
        assert self.params.glob is not None
        return _glob_entries(self.params.glob)

    def count(self) -> int:
        return len(self._entries())

    def patterns(self, seed: int = 0) -> Iterator[LabelledPattern]:
        entries = self._entries()
        if self.params.glob is not None and not entries:
            raise PatternError(None, f"no pattern file matches {self.params.glob!r}")
        for entry in entries:
            yield self._read(entry)

    def _read(self, entry: _Entry) -> LabelledPattern:
        labels: dict[str, Any] = {"space_group": entry.space_group, "cell": entry.cell, "extra": dict(entry.extra)}
        if entry.error is not None or entry.path is None:
            return LabelledPattern(entry.id, None, error=entry.error or "no file", **labels)
        prefix = f"{entry.where}: " if entry.where else ""
        try:
            if is_peak_list(entry.path):
                data: Any = read_peak_list(entry.path)
            else:
                data = read_pattern(entry.path)
        except PatternError as exc:
            return LabelledPattern(entry.id, None, error=f"{prefix}{exc}", **labels)
        source = (data.metadata.get("wavelength_source") if isinstance(data, Pattern)
                  else ("file" if data.wavelength is not None else None))
        wavelength, origin = data.wavelength, source
        if source != "file":  # the index row (or the index next to the file), then the spec
            if entry.wavelength is not None:
                wavelength, origin = entry.wavelength, "index"
            elif wavelength is None and self.params.wavelength is not None:
                wavelength, origin = self.params.wavelength, "spec"
        elif entry.wavelength is not None and wavelength is not None and abs(entry.wavelength - wavelength) > 1e-3:
            labels["extra"]["wavelength_note"] = (f"file says {wavelength:g} A, index {entry.wavelength:g} A: the "
                                                  "file's value is used")
        if wavelength is None:
            return LabelledPattern(entry.id, None, error=(
                f"{prefix}{entry.path}: no wavelength: the file gives none"
                + (", the index row's 'wavelength' is empty" if entry.where else "")
                + " and the pattern source has no 'wavelength' parameter"), **labels)
        if isinstance(data, Pattern):
            metadata = {**data.metadata, "wavelength_source": origin}
            data = attrs.evolve(data, wavelength=float(wavelength), metadata=metadata)
        else:
            data = attrs.evolve(data, wavelength=float(wavelength))
        return LabelledPattern(entry.id, data, **labels)
