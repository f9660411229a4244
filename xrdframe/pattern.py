"""Measured data: a powder profile (:class:`Pattern`) and a list of observed peaks (:class:`ObservedPeaks`).

Readers (pure I/O):

* :func:`read_pattern` -- a measured profile from two-column text (``.xy``, ``.xye``, ``.csv``, ``.txt``,
  ``.dat``), PANalytical ``.xrdml``, GSAS ``.fxye``/``.gsa``/``.gss``/``.raw`` (CONST banks, STD/ESD/FXYE data)
  or powder CIF (``_pd_meas_*``/``_pd_proc_*`` loops);
* :func:`read_peak_list` -- a peak list CSV whose header starts ``two_theta`` (optional ``intensity``,
  ``sigma`` columns);
* :func:`is_peak_list` -- whether a file is such a peak list.

The wavelength comes from the ``wavelength`` argument, else from the file (a comment such as
``# wavelength: 1.5406`` or ``lambda=1.5406``, the XRDML ``usedWavelength``, the CIF
``_diffrn_radiation_wavelength``, a GSAS instrument parameter file next to the data), else from an
``index.csv`` in the same folder listing the file in its ``path`` column (CONTRACT.md section 6), else it is
``None``: there is never a silent Cu default. Every problem with a file raises :class:`PatternError`, whose
message names the file (and the line when there is one) and what was expected.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = "\\n".join(f"{10 + 0.02 * i:.2f} {100 + i}" for i in range(20))
>>> _ = (folder / "a.xy").write_text("# wavelength: 1.5406\\n" + rows + "\\n")
>>> p = read_pattern(folder / "a.xy")
>>> p.wavelength, p.two_theta.size, float(p.two_theta[1])
(1.5406, 20, 10.02)
"""

from __future__ import annotations

import csv
import functools
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from xrdframe.errors import XrdframeError

__all__ = [
    "ObservedPeaks",
    "Pattern",
    "PatternError",
    "is_peak_list",
    "read_pattern",
    "read_peak_list",
]


def _array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=float)


def _optional_array(value: object) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=float)


@attrs.frozen(eq=False)
class Pattern:
    """A powder diffraction profile on a 2theta grid.

    :ivar two_theta: scattering angles, degrees, strictly increasing.
    :ivar intensity: counts (or arbitrary units) at each angle.
    :ivar wavelength: the (K-alpha1) wavelength, Angstrom; ``None`` when neither the file nor the caller gives it.
    :ivar source: where the pattern came from (a path), if anywhere.
    :ivar metadata: anything else the reader found (for example ``{'kalpha2': 1.54443, 'kalpha_ratio': 0.5}``).
    """

    two_theta: np.ndarray = attrs.field(converter=_array)
    intensity: np.ndarray = attrs.field(converter=_array)
    wavelength: float | None = None
    source: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def __len__(self) -> int:
        """Number of points."""
        return int(self.two_theta.shape[0])


@attrs.frozen(eq=False)
class ObservedPeaks:
    """Observed peak positions (picked from a profile, or read from a peak-list file), sorted by two_theta.

    :ivar two_theta: peak positions (K-alpha1), degrees.
    :ivar intensity: integrated intensities (arbitrary units), or ``None`` when unknown.
    :ivar wavelength: Angstrom; ``None`` when unknown.
    :ivar sigma: standard uncertainty of each position, degrees, or ``None`` when unknown.
    :ivar source: where the peaks came from (a path), if anywhere.
    :ivar note: what the picker did that a user should know (for example K-alpha2 stripped).
    """

    two_theta: np.ndarray = attrs.field(converter=_array)
    intensity: np.ndarray | None = attrs.field(default=None, converter=_optional_array)
    wavelength: float | None = None
    sigma: np.ndarray | None = attrs.field(default=None, converter=_optional_array)
    source: str | None = None
    note: str = ""

    def __len__(self) -> int:
        return int(self.two_theta.shape[0])


class PatternError(XrdframeError, ValueError):
    """A measured-pattern or peak-list file cannot be read; the message names the file, the line and what was
    expected.

    :ivar path: the file.
    :ivar line: 1-based line number, or ``None``.
    """

    def __init__(self, path: str | os.PathLike[str] | None, message: str, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        where = self.path or "<pattern>"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {message}")


#: Fewest points a profile may have.
MIN_POINTS = 10
_COMMENT = ("#", "!", ";")
_TEXT_SUFFIXES = {".xy", ".xye", ".csv", ".txt", ".dat", ".asc", ".tsv", ""}
_GSAS_SUFFIXES = {".fxye", ".gsa", ".gss", ".gsas", ".raw"}
_NUMBER = r"([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)"
_WAVELENGTH_RE = re.compile(r"(?:wavelength|lambda|lam1|lam|kalpha1|k-alpha1|ka1|alpha1)\b\s*(?:\(?\s*A\s*\)?)?"
                            r"\s*[:=]?\s*" + _NUMBER, re.IGNORECASE)
_KALPHA2_RE = re.compile(r"(?:kalpha2|k-alpha2|ka2|alpha2|lam2|lambda2)\b\s*[:=]?\s*" + _NUMBER, re.IGNORECASE)
_RATIO_RE = re.compile(r"(?:ratio|I\(L2\)/I\(L1\))\s*[:=]?\s*" + _NUMBER, re.IGNORECASE)
_SIGMA_NAMES = ("sigma", "esd", "err", "error", "unc", "uncertainty", "sd", "std", "e")


# ------------------------------------------------------------------------------------------------ helpers


def _read_text(path: Path) -> str:
    """The file's text; :class:`PatternError` when it is missing, a folder, binary or unreadable."""
    if not path.exists():
        raise PatternError(path, "file not found")
    if path.is_dir():
        raise PatternError(path, "is a folder, expected a pattern file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PatternError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise PatternError(path, "the file is empty")
    if b"\x00" in raw[:4096]:
        raise PatternError(path, "binary file, expected text (two columns: 2theta in degrees, intensity)")
    return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def _wavelength_from_text(text: str) -> float | None:
    match = _WAVELENGTH_RE.search(text)
    if match is None:
        return None
    value = float(match.group(1))
    return value if 0.01 < value < 100.0 else None


def _float_or_none(value: object) -> float | None:
    try:
        out = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out > 0 else None


@functools.lru_cache(maxsize=64)
def _index_rows(index: str, mtime: float) -> dict[str, dict[str, str]]:
    """Rows of a labelled-set ``index.csv`` by resolved file path (cached per modification time)."""
    folder = Path(index).parent
    rows: dict[str, dict[str, str]] = {}
    with open(index, newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("path") or "").strip()
            if name:
                rows[os.path.normcase(str((folder / name).resolve()))] = dict(row)
    return rows


def index_row(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The row of the ``index.csv`` next to ``path`` that lists it in its ``path`` column, or ``None``."""
    path = Path(path)
    index = path.parent / "index.csv"
    if not index.is_file() or path.name == "index.csv":
        return None
    try:
        rows = _index_rows(str(index), index.stat().st_mtime)
    except (OSError, csv.Error, UnicodeError):
        return None
    return rows.get(os.path.normcase(str(path.resolve())))


def _resolve_wavelength(path: Path, argument: float | None, from_file: float | None,
                        metadata: dict[str, Any]) -> float | None:
    """Argument, else file, else ``index.csv``, else ``None``; records where it came from in ``metadata``."""
    if argument is not None:
        value = _float_or_none(argument)
        if value is None:
            raise PatternError(path, f"wavelength must be a positive number of Angstrom, got {argument!r}")
        metadata["wavelength_source"] = "argument"
        return value
    if from_file is not None:
        metadata["wavelength_source"] = "file"
        return float(from_file)
    row = index_row(path)
    if row is not None:
        value = _float_or_none(row.get("wavelength"))
        if value is not None:
            metadata["wavelength_source"] = "index.csv"
            return value
    return None


def _check_profile(path: Path, two_theta: np.ndarray, intensity: np.ndarray, lines: np.ndarray | None,
                   what: str = "line") -> None:
    """Point count, finite values, 0 <= 2theta < 180, strictly increasing 2theta; errors name the line."""

    def where(i: int) -> int | None:
        return None if lines is None else int(lines[i])

    def label(i: int) -> str:
        return "" if lines is not None else f"point {i + 1}: "

    n = two_theta.size
    if n < MIN_POINTS:
        raise PatternError(path, f"only {n} data point{'s' if n != 1 else ''}, expected at least {MIN_POINTS} "
                                 "(2theta, intensity)")
    bad = np.flatnonzero(~np.isfinite(two_theta))
    if bad.size:
        raise PatternError(path, f"{label(bad[0])}2theta is {two_theta[bad[0]]}, expected a finite angle in degrees",
                           where(bad[0]))
    bad = np.flatnonzero(~np.isfinite(intensity))
    if bad.size:
        raise PatternError(path, f"{label(bad[0])}intensity is {intensity[bad[0]]} at 2theta = "
                                 f"{two_theta[bad[0]]:g}, expected a finite number ({bad.size} such point"
                                 f"{'s' if bad.size != 1 else ''} in the file)", where(bad[0]))
    bad = np.flatnonzero((two_theta < 0) | (two_theta >= 180))
    if bad.size:
        raise PatternError(path, f"{label(bad[0])}2theta = {two_theta[bad[0]]:g}, expected 0 <= 2theta < 180 degrees",
                           where(bad[0]))
    step = np.diff(two_theta)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = bad[0] + 1
        kind = "is repeated" if step[bad[0]] == 0 else f"decreases (from {two_theta[i - 1]:g})"
        raise PatternError(path, f"{label(i)}2theta = {two_theta[i]:g} {kind}; expected strictly increasing 2theta",
                           where(i))


# ------------------------------------------------------------------------------------------- two-column text


def _split(line: str, sep: str | None) -> list[str]:
    if sep is None:
        return line.split()
    return [t.strip() for t in line.split(sep) if t.strip()] if sep != "," else [t.strip() for t in line.split(",")]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _columns(path: Path, tokens: list[list[str]], lines: np.ndarray, column: int, name: str) -> np.ndarray:
    """One numeric column; on a bad value, a :class:`PatternError` naming the line."""
    try:
        return np.array([row[column] for row in tokens], dtype=float)
    except (ValueError, IndexError):
        for row, line in zip(tokens, lines, strict=True):
            value = row[column] if column < len(row) else ""
            if not _is_number(value):
                shown = value if value else "nothing"
                raise PatternError(path, f"{shown!r} in the {name} column, expected a number", int(line)) from None
        raise


def _content_lines(text: str, comments: list[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) of the non-blank, non-comment lines; comments go to ``comments``."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(_COMMENT):
            comments.append(stripped.lstrip("#!; "))
        elif stripped:
            yield number, stripped


def _read_text_pattern(path: Path, wavelength: float | None) -> Pattern:
    comments: list[str] = []
    data: list[str] = []
    numbers: list[int] = []
    header: str | None = None
    for number, stripped in _content_lines(_read_text(path), comments):
        if not data and not _looks_numeric(stripped):  # header rows before the first data row
            if header is None:
                header = stripped
            comments.append(stripped)
            continue
        data.append(stripped)
        numbers.append(number)
    if not data:
        raise PatternError(path, "no numeric data found; expected two columns (2theta in degrees, intensity)")
    first = data[0]
    decimal_comma = False
    if ";" in first:
        sep: str | None = ";"
        decimal_comma = "," in first
    elif "," in first:
        sep = ","
    elif "\t" in first:
        sep = "\t"
    else:
        sep = None
    if decimal_comma:
        data = [d.replace(",", ".") for d in data]
    tokens = [_split(d, sep) for d in data]
    lines = np.asarray(numbers)
    widths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    short = np.flatnonzero(widths < 2)
    if short.size:
        i = short[0]
        raise PatternError(path, f"{data[i][:40]!r} has {widths[i]} column, expected two columns "
                                 "(2theta in degrees, intensity)", int(lines[i]))
    two_theta = _columns(path, tokens, lines, 0, "2theta")
    intensity = _columns(path, tokens, lines, 1, "intensity")
    metadata: dict[str, Any] = {"format": "xy"}
    if header is not None:
        metadata["header"] = header
    names = [t.strip().lower() for t in _split(header, sep)] if header is not None else []
    third_is_sigma = path.suffix.lower() == ".xye" or (len(names) >= 3 and names[2].split("(")[0].strip(
        " _") in _SIGMA_NAMES)
    if int(widths.min()) >= 3 and third_is_sigma:
        metadata["sigma"] = _columns(path, tokens, lines, 2, "sigma")
    if comments:
        metadata["comments"] = comments[:50]
    comment_text = "\n".join(comments)
    from_file = _wavelength_from_text(comment_text)
    kalpha2 = _KALPHA2_RE.search(comment_text)
    if kalpha2:
        metadata["kalpha2"] = float(kalpha2.group(1))
    _check_profile(path, two_theta, intensity, lines)
    value = _resolve_wavelength(path, wavelength, from_file, metadata)
    return Pattern(two_theta, intensity, value, str(path), metadata)


def _looks_numeric(line: str) -> bool:
    token = re.split(r"[\s,;]+", line.strip(), maxsplit=1)[0]
    return _is_number(token)


# ------------------------------------------------------------------------------------------------- XRDML


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_xrdml(path: Path, wavelength: float | None) -> Pattern:
    """PANalytical XRDML (XML): the first scan's 2Theta positions and counts/intensities, wavelengths from
    ``usedWavelength`` (K-alpha1, K-alpha2, their ratio)."""
    import xml.etree.ElementTree as ET

    text = _read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise PatternError(path, f"not well-formed XML ({exc.msg if hasattr(exc, 'msg') else exc}); the file may be "
                                 "truncated; expected a complete PANalytical .xrdml file", line) from None
    elements = {}
    for element in root.iter():
        elements.setdefault(_local(element.tag), []).append(element)
    metadata: dict[str, Any] = {"format": "xrdml"}
    from_file = None
    used = elements.get("usedWavelength", [])
    if used:
        values = {_local(child.tag): child.text for child in used[0]}
        from_file = _float_or_none(values.get("kAlpha1"))
        k2 = _float_or_none(values.get("kAlpha2"))
        ratio = _float_or_none(values.get("ratioKAlpha2KAlpha1"))
        intended = used[0].get("intended", "")
        metadata["intended_wavelength"] = intended
        if k2 is not None:
            metadata["kalpha2"] = k2
        if ratio is not None:
            metadata["kalpha_ratio"] = ratio
        metadata["kalpha2_present"] = intended.replace(" ", "").lower() not in ("k-alpha1", "kalpha1")
        if from_file is None:
            from_file = _float_or_none(values.get("kAlpha"))
    scans = elements.get("scan", [])
    if not scans:
        raise PatternError(path, "no <scan> element; expected an XRDML file with a measured scan")
    metadata["n_scans"] = len(scans)
    scan = scans[0]
    points = next((e for e in scan.iter() if _local(e.tag) == "dataPoints"), None)
    if points is None:
        raise PatternError(path, "the scan has no <dataPoints>; the file may be truncated")
    counts_text = None
    positions = None
    for child in points:
        name = _local(child.tag)
        if name in ("counts", "intensities") and counts_text is None:
            counts_text = child.text or ""
            metadata["intensity_unit"] = child.get("unit", "counts")
        elif name == "positions" and child.get("axis", "").lower() in ("2theta", "2-theta", "2θ"):
            positions = child
    if counts_text is None:
        raise PatternError(path, "the scan has no <counts> or <intensities>")
    try:
        intensity = np.array(counts_text.split(), dtype=float)
    except ValueError:
        bad = next(t for t in counts_text.split() if not _is_number(t))
        raise PatternError(path, f"{bad!r} among the counts, expected numbers") from None
    if positions is None:
        raise PatternError(path, "the scan has no <positions axis=\"2Theta\">")
    values = {_local(c.tag): c.text or "" for c in positions}
    if "listPositions" in values:
        try:
            two_theta = np.array(values["listPositions"].split(), dtype=float)
        except ValueError:
            raise PatternError(path, "<listPositions> holds a non-number, expected 2theta values in degrees") from None
        if two_theta.size != intensity.size:
            raise PatternError(path, f"{two_theta.size} 2Theta positions but {intensity.size} counts; the file may "
                                     "be truncated")
    else:
        try:
            start_value, end_value = float(values["startPosition"]), float(values.get("endPosition") or "nan")
        except (KeyError, ValueError):
            raise PatternError(path, "2Theta <positions> need <startPosition> and <endPosition> or "
                                     "<listPositions>") from None
        if not (math.isfinite(start_value) and math.isfinite(end_value)):
            raise PatternError(path, "2Theta <startPosition>/<endPosition> are not numbers")
        two_theta = np.linspace(start_value, end_value, intensity.size)
    if intensity.size and intensity.size == two_theta.size and two_theta[0] > two_theta[-1]:
        two_theta, intensity = two_theta[::-1].copy(), intensity[::-1].copy()
    _check_profile(path, two_theta, intensity, None)
    value = _resolve_wavelength(path, wavelength, from_file, metadata)
    return Pattern(two_theta, intensity, value, str(path), metadata)


# -------------------------------------------------------------------------------------------------- GSAS


def _instrument_parameters(path: Path, title_lines: list[str]) -> dict[str, float]:
    """Wavelengths (and zero) from a GSAS-II ``.instprm`` or GSAS ``.prm`` next to the data file."""
    candidates = [path.with_suffix(s) for s in (".instprm", ".prm", ".PRM", ".ins", ".INS")]
    for line in title_lines:
        match = re.search(r"instrument parameter(?: file)?\s*[:=]?\s*(\S+)", line, re.IGNORECASE)
        if match:
            candidates.insert(0, path.parent / Path(match.group(1)).name)
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            text = candidate.read_text(errors="replace")
        except OSError:
            continue
        out: dict[str, float] = {"file": 0.0}
        if candidate.suffix.lower() == ".instprm":
            for line in text.splitlines():
                key, _, value = line.partition(":")
                number = _float_or_none(value.split(",")[0]) if value else None
                key = key.strip()
                if key in ("Lam", "Lam1") and number:
                    out["wavelength"] = number
                elif key == "Lam2" and number:
                    out["kalpha2"] = number
                elif key == "I(L2)/I(L1)" and number is not None:
                    out["kalpha_ratio"] = number
        else:
            for line in text.splitlines():
                if re.match(r"INS\s+\d+\s*ICONS\b", line):
                    lam1, lam2, ratio = _icons(line)
                    if lam1:
                        out["wavelength"] = lam1
                    if lam2:
                        out["kalpha2"] = lam2
                        if ratio:
                            out["kalpha_ratio"] = ratio
        if "wavelength" in out:
            out.pop("file")
            return out
    return {}


def _icons(line: str) -> tuple[float | None, float | None, float | None]:
    """Lambda1, lambda2 and the K-alpha2/K-alpha1 ratio of a GSAS ``INS  n ICONS`` record.

    The record is fixed-format after its 12-character key (GSAS manual; GSAS-II ``GetPowderIparm``): LAM1 in
    columns 1-10, LAM2 11-20, ZERO 21-30, POLA 41-50, IPOLA 51-55, KRATIO 56-65. Records written with other
    widths are read as whitespace-separated fields in the same order (LAM1 LAM2 ZERO 0 POLA IPOLA KRATIO).

    >>> _icons("INS  1 ICONS  1.540500  1.544300       0.0         0       0.7    0       0.5")
    (1.5405, 1.5443, 0.5)
    >>> _icons("INS  1 ICONS 0.7093 0 0")
    (0.7093, None, None)
    """
    value = line[12:].rstrip()
    columns = [value[0:10], value[10:20], value[55:65]]
    try:
        lam1, lam2 = float(columns[0]), float(columns[1] or 0)
        ratio = float(columns[2]) if columns[2].strip() else None
    except ValueError:
        fields = value.split()
        lam1 = _float_or_none(fields[0]) if fields else None
        lam2 = _float_or_none(fields[1]) if len(fields) > 1 else None
        ratio = _float_or_none(fields[6]) if len(fields) > 6 else None
    return (_float_or_none(lam1), _float_or_none(lam2), _float_or_none(ratio))


def _fixed(line: str, width: int) -> list[str]:
    line = line.rstrip("\r\n")
    return [line[i:i + width] for i in range(0, len(line), width)]


def _read_gsas(path: Path, wavelength: float | None) -> Pattern:
    """GSAS powder data: the first constant-wavelength bank (``BANK n nchan nrec CONST|CONS start step ... TYPE``,
    start and step in centidegrees; TYPE STD, ESD or FXYE with x in centidegrees)."""
    text = _read_text(path)
    lines = text.splitlines()
    bank_at = next((i for i, line in enumerate(lines) if line.startswith("BANK")), None)
    if bank_at is None:
        raise PatternError(path, "no BANK line; expected a GSAS powder data file (title, then 'BANK 1 nchan nrec "
                                 "CONST start step 0 0 FXYE|STD|ESD')")
    fields = lines[bank_at].split()
    number = bank_at + 1
    if len(fields) < 5:
        raise PatternError(path, f"BANK line {lines[bank_at].strip()!r}: expected 'BANK n nchan nrec BINTYP ...'",
                           number)
    try:
        nchan = int(fields[2])
    except ValueError:
        raise PatternError(path, f"BANK line: nchan {fields[2]!r} is not an integer", number) from None
    bintyp = fields[4].upper()
    kind = fields[-1].upper() if fields[-1].upper() in ("STD", "ESD", "ALT", "FXYE", "FXY") else "STD"
    if bintyp not in ("CONST", "CONS"):
        raise PatternError(path, f"BANK binning {bintyp!r} is not supported; expected CONST or CONS "
                                 "(constant-wavelength 2theta steps; RALF/SLOG/TIME_MAP are time-of-flight)", number)
    body = []
    body_numbers = []
    for i in range(bank_at + 1, len(lines)):
        if lines[i].startswith("BANK"):
            break
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            body.append(lines[i])
            body_numbers.append(i + 1)
    metadata: dict[str, Any] = {"format": f"gsas-{kind.lower()}", "title": lines[0].strip()}
    if kind in ("FXYE", "FXY"):
        rows = [line.split() for line in body]
        nums = np.asarray(body_numbers)
        two_theta = _columns(path, rows, nums, 0, "2theta") / 100.0
        intensity = _columns(path, rows, nums, 1, "intensity")
        if rows and kind == "FXYE" and min(map(len, rows)) >= 3:
            metadata["sigma"] = _columns(path, rows, nums, 2, "sigma")
        lines_of_points: np.ndarray | None = nums
    else:
        try:
            start, step = float(fields[5]), float(fields[6])
        except (IndexError, ValueError):
            raise PatternError(path, "BANK line: expected the start and step (centidegrees) after CONST",
                               number) from None
        values: list[float] = []
        sigmas: list[float] = []
        for line, line_number in zip(body, body_numbers, strict=True):
            if kind == "STD":
                for item in _fixed(line, 8):
                    if not item.strip():
                        continue
                    count, value = item[:2].strip(), item[2:].strip()
                    try:
                        values.append(float(value))
                        sigmas.append(math.sqrt(abs(float(value)) / (int(count) if count else 1)))
                    except (ValueError, ZeroDivisionError):
                        raise PatternError(path, f"{item.strip()!r} is not an STD item (I2 count, F6 intensity)",
                                           line_number) from None
            else:  # ESD: intensity and esd pairs, 8 characters each
                items = [x for x in _fixed(line, 8) if x.strip()]
                try:
                    pairs = [float(x) for x in items]
                except ValueError:
                    try:
                        pairs = [float(x) for x in line.split()]
                    except ValueError:
                        raise PatternError(path, "expected ESD items (intensity, esd; 8 characters each)",
                                           line_number) from None
                values += pairs[0::2]
                sigmas += pairs[1::2]
            if len(values) >= nchan:
                break
        if len(values) < nchan:
            raise PatternError(path, f"BANK line says {nchan} points, the file holds {len(values)}; the file may be "
                                     "truncated", body_numbers[-1] if body_numbers else number)
        intensity = np.asarray(values[:nchan])
        metadata["sigma"] = np.asarray(sigmas[:nchan])
        two_theta = (start + step * np.arange(nchan)) / 100.0
        lines_of_points = None
    instrument = _instrument_parameters(path, lines[:bank_at])
    for key in ("kalpha2", "kalpha_ratio"):
        if key in instrument:
            metadata[key] = instrument[key]
    if "kalpha2" in instrument:
        metadata["kalpha2_present"] = True
    _check_profile(path, two_theta, intensity, lines_of_points)
    value = _resolve_wavelength(path, wavelength, instrument.get("wavelength"), metadata)
    return Pattern(two_theta, intensity, value, str(path), metadata)


# ------------------------------------------------------------------------------------------------ powder CIF

_CIF_TWO_THETA = ("_pd_meas_2theta_scan", "_pd_proc_2theta_corrected", "_pd_meas_angle_2theta",
                  "_pd_meas.2theta_scan", "_pd_proc.2theta_corrected")
_CIF_INTENSITY = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total",
                  "_pd_proc_intensity_net", "_pd_meas_intensity_net", "_pd_meas_counts_net",
                  "_pd_meas.counts_total", "_pd_meas.intensity_total", "_pd_proc.intensity_total",
                  "_pd_proc.intensity_net")
_CIF_WAVELENGTH = ("_diffrn_radiation_wavelength", "_diffrn_radiation_wavelength.wavelength", "_pd_proc_wavelength",
                   "_diffrn_radiation_wavelength_value")


def _cif_numbers(path: Path, values: list[str], tag: str) -> np.ndarray:
    import gemmi

    out = np.array([gemmi.cif.as_number(v) for v in values], dtype=float)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise PatternError(path, f"{tag}: value {bad[0] + 1} is {values[bad[0]]!r}, expected a number")
    return out


def _read_pd_cif(path: Path, wavelength: float | None) -> Pattern:
    """Powder CIF (``_pd_meas_*``/``_pd_proc_*`` loops), through gemmi's CIF parser; the first data block with a
    profile, the wavelength from ``_diffrn_radiation_wavelength`` (any block)."""
    import gemmi

    _read_text(path)
    try:
        document = gemmi.cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        message = str(exc)
        match = re.search(r":(\d+)", message)
        raise PatternError(path, f"not a readable CIF ({message.split(': ', 1)[-1]})",
                           int(match.group(1)) if match else None) from None
    found = None
    blocks_with_profiles = 0
    for block in document:
        tag_x = next((t for t in _CIF_TWO_THETA if block.find_values(t)), None)
        tag_y = next((t for t in _CIF_INTENSITY if block.find_values(t)), None)
        has_range = block.find_value("_pd_meas_2theta_range_min") is not None
        if tag_y and (tag_x or has_range):
            blocks_with_profiles += 1
            if found is None:
                found = (block, tag_x, tag_y)
    if found is None:
        raise PatternError(path, "no powder profile: expected a loop with _pd_meas_2theta_scan (or "
                                 "_pd_proc_2theta_corrected, or _pd_meas_2theta_range_*) and _pd_meas_counts_total "
                                 "(or _pd_meas_intensity_*, _pd_proc_intensity_*)")
    block, tag_x, tag_y = found
    intensity = _cif_numbers(path, list(block.find_values(tag_y)), tag_y)
    if tag_x:
        two_theta = _cif_numbers(path, list(block.find_values(tag_x)), tag_x)
        if two_theta.size != intensity.size:
            raise PatternError(path, f"{tag_x} has {two_theta.size} values but {tag_y} {intensity.size}")
    else:
        lo, hi, inc = (gemmi.cif.as_number(block.find_value(f"_pd_meas_2theta_range_{k}") or "?")
                       for k in ("min", "max", "inc"))
        if not all(map(math.isfinite, (lo, hi, inc))) or inc <= 0:
            raise PatternError(path, "_pd_meas_2theta_range_min/max/inc must be numbers with inc > 0")
        two_theta = lo + inc * np.arange(intensity.size)
    metadata: dict[str, Any] = {"format": "pdcif", "block": block.name, "intensity_tag": tag_y,
                                "n_profiles": blocks_with_profiles}
    from_file = None
    for candidate in [block, *document]:
        for tag in _CIF_WAVELENGTH:
            values = [gemmi.cif.as_number(v) for v in candidate.find_values(tag)]
            values = [v for v in values if math.isfinite(v) and v > 0]
            if values:
                from_file = values[0]
                if len(values) > 1:
                    metadata["kalpha2"] = values[1]
                    weights = [gemmi.cif.as_number(v) for v in candidate.find_values("_diffrn_radiation_wavelength_wt")]
                    if len(weights) > 1 and weights[0] > 0:
                        metadata["kalpha_ratio"] = weights[1] / weights[0]
                    metadata["kalpha2_present"] = True
                break
        if from_file is not None:
            break
    if two_theta.size and two_theta[0] > two_theta[-1]:
        two_theta, intensity = two_theta[::-1].copy(), intensity[::-1].copy()
    _check_profile(path, two_theta, intensity, None)
    value = _resolve_wavelength(path, wavelength, from_file, metadata)
    return Pattern(two_theta, intensity, value, str(path), metadata)


# --------------------------------------------------------------------------------------------- public readers


def read_pattern(path: str | os.PathLike[str], wavelength: float | None = None) -> Pattern:
    """A measured powder profile, by file extension.

    :param path: ``.xy``/``.xye``/``.csv``/``.txt``/``.dat`` (two columns: 2theta in degrees, intensity; a third
        column of ``.xye`` is the sigma, kept in ``metadata['sigma']``), ``.xrdml``, ``.fxye``/``.gsa``/``.gss``/
        ``.raw`` (GSAS) or ``.cif`` (powder CIF).
    :param wavelength: Angstrom; overrides what the file says.
    :returns: a :class:`Pattern`; ``wavelength`` is ``None`` when neither the argument, the file nor an
        ``index.csv`` next to it gives one. ``metadata['wavelength_source']`` says where it came from.
    :raises PatternError: for a missing, empty, truncated or malformed file (message: file, line, what was expected).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".xrdml":
            return _read_xrdml(path, wavelength)
        if suffix in _GSAS_SUFFIXES:
            if suffix == ".raw" and path.is_file():
                with open(path, "rb") as handle:
                    magic = handle.read(8)
                if magic.startswith(b"RAW"):
                    raise PatternError(path, "a Bruker DIFFRAC .raw (binary) file, which xrdframe does not read "
                                             "(no maintained reader package for it exists for Python 3.11); export "
                                             "the scan as .xy or .xrdml")
            return _read_gsas(path, wavelength)
        if suffix in (".cif", ".mmcif", ".pdcif"):
            return _read_pd_cif(path, wavelength)
        return _read_text_pattern(path, wavelength)
    except PatternError:
        raise
    except (ValueError, IndexError, KeyError, UnicodeError, OSError, MemoryError) as exc:  # never a traceback
        raise PatternError(path, f"cannot be read as a {suffix or 'text'} pattern ({type(exc).__name__}: {exc})") \
            from None


def _first_line(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                stripped = line.strip().lstrip("\ufeff")
                if stripped and not stripped.startswith(_COMMENT):
                    return stripped
    except OSError:
        return None
    return None


#: A file with at least this many rows on an even 2theta grid is a profile, whatever its header says.
_PROFILE_ROWS = 200


def _evenly_stepped(path: Path) -> bool:
    """Whether the file's first column holds at least :data:`_PROFILE_ROWS` values on an even grid (a profile)."""
    values: list[float] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                token = re.split(r"[\s,;]+", line.strip(), maxsplit=1)[0]
                if _is_number(token):
                    values.append(float(token))
                if len(values) > 4 * _PROFILE_ROWS:
                    break
    except OSError:
        return False
    if len(values) < _PROFILE_ROWS:
        return False
    steps = np.diff(np.asarray(values))
    return bool(np.all(steps > 0) and np.std(steps) <= 0.01 * np.mean(steps))


def is_peak_list(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a peak-list CSV: its first non-comment line is a header whose first column is
    ``two_theta`` -- unless the rows are a profile (hundreds of points on an even 2theta grid: a measured
    pattern exported with a ``two_theta,intensity`` header)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() in (".xrdml", ".cif"):
        return False
    first = _first_line(path)
    if first is None or re.split(r"[\s,;]+", first.strip(), maxsplit=1)[0].lower() != "two_theta":
        return False
    return not _evenly_stepped(path)


def read_peak_list(path: str | os.PathLike[str], wavelength: float | None = None) -> ObservedPeaks:
    """A peak list: a CSV whose header starts ``two_theta`` (degrees), with optional ``intensity`` and ``sigma``
    (degrees, the position's standard uncertainty) columns; ``#`` comment lines may give the wavelength.

    Same wavelength rules as :func:`read_pattern`. Peaks come back sorted by two_theta.

    :raises PatternError: on a missing file, a wrong header, a non-numeric value, or 2theta outside [0, 180).
    """
    path = Path(path)
    comments: list[str] = []
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    for number, stripped in _content_lines(_read_text(path), comments):
        if header is None:
            header = [h.strip().lower() for h in stripped.split(",")]
            if header[0] != "two_theta":
                raise PatternError(path, f"header {stripped[:60]!r}: expected a CSV header starting 'two_theta' "
                                         "(optional columns intensity, sigma)", number)
            continue
        rows.append((number, [t.strip() for t in stripped.split(",")]))
    if header is None:
        raise PatternError(path, "no header; expected a CSV header starting 'two_theta'")
    if not rows:
        raise PatternError(path, "no peaks below the header; expected rows of two_theta[,intensity]")
    lines = np.array([n for n, _ in rows])
    tokens = [t for _, t in rows]
    columns: dict[str, np.ndarray] = {}
    for name in ("two_theta", "intensity", "sigma"):
        if name in header:
            columns[name] = _columns(path, tokens, lines, header.index(name), name)
    two_theta = columns["two_theta"]
    for name, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise PatternError(path, f"{name} is {values[bad[0]]}, expected a finite number", int(lines[bad[0]]))
    bad = np.flatnonzero((two_theta <= 0) | (two_theta >= 180))
    if bad.size:
        raise PatternError(path, f"two_theta = {two_theta[bad[0]]:g}, expected 0 < two_theta < 180 degrees",
                           int(lines[bad[0]]))
    order = np.argsort(two_theta, kind="stable")
    metadata: dict[str, Any] = {}
    value = _resolve_wavelength(path, wavelength, _wavelength_from_text("\n".join(comments)), metadata)
    return ObservedPeaks(two_theta[order],
                         columns["intensity"][order] if "intensity" in columns else None,
                         value,
                         columns["sigma"][order] if "sigma" in columns else None,
                         str(path),
                         "" if not metadata else f"wavelength from {metadata['wavelength_source']}")
