"""Errors users see: spec problems (exit code 2) and runtime failures (exit code 1)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import attrs

__all__ = ["Problem", "SpecError", "XrdframeError", "did_you_mean", "format_path"]


class XrdframeError(Exception):
    """A runtime failure with a message meant for the user (exit code 1)."""


def format_path(path: Sequence[str | int]) -> str:
    """Render a path of keys and indices as ``$.a.b[0].c``."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


@attrs.frozen
class Problem:
    """One problem found in a spec: where it is and what was expected."""

    path: tuple[str | int, ...]
    message: str
    location: str | None = None  # "spec.yaml, line 12" or "--set seed=abc"

    def __str__(self) -> str:
        where = format_path(self.path)
        if self.location:
            where += f" ({self.location})"
        return f"{where}: {self.message}"


class SpecError(Exception):
    """A spec (or ``create`` call) is invalid; carries every problem found."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.source}: " if self.source else ""
        count = len(self.problems)
        lines = [f"{head}invalid spec, {count} problem{'s' if count != 1 else ''}:"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choices, or an empty string."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.7)
    if not close:
        return ""
    best = difflib.SequenceMatcher(None, name, close[0]).ratio()
    close = [c for c in close if difflib.SequenceMatcher(None, name, c).ratio() >= best - 0.08]
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
