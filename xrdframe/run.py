"""Running validated pipelines: contexts, progress, stage skipping and provenance.

Every run writes into its output directory the resolved spec
(``spec.resolved.yaml``: every default filled in) and ``versions.json`` (xrdframe
and every plugin). A stage of a pipeline writes, last and atomically,
``.xrdframe-stage.json`` holding a content hash of its configuration and inputs;
a later run skips the stage while that hash is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import yaml

from xrdframe.component import ComponentRef
from xrdframe.errors import XrdframeError
from xrdframe.files import write_json_atomic, write_text_atomic
from xrdframe.spec.pipeline import Pipeline, Stage
from xrdframe.spec.validation import unstructure

__all__ = ["Progress", "RunContext", "run_pipeline", "stage_fingerprint", "STAGE_MARKER"]

log = logging.getLogger("xrdframe")
T = TypeVar("T")
STAGE_MARKER = ".xrdframe-stage.json"


class Progress:
    """Progress of ``total`` units on stderr: count, rate and time left, at most every 2 s."""

    def __init__(self, total: int | None, desc: str, stage: str, quiet: bool = False, every: float = 2.0) -> None:
        self.total, self.desc, self.stage, self.quiet, self.every = total, desc, stage, quiet, every
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if not self.quiet and now - self.last >= self.every:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"[{self.stage}] {self.desc} {self.done}"
        if self.total:
            text += f"/{self.total} ({100.0 * self.done / self.total:.0f}%)"
        text += f", {rate:.1f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", {_duration((self.total - self.done) / rate)} left"
        return text

    def close(self) -> None:
        if not self.quiet and time.monotonic() - self.start >= self.every:
            print(f"[{self.stage}] {self.desc} done: {self.done} in {_duration(time.monotonic() - self.start)}",
                  file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@attrs.define
class RunContext:
    """What a task's ``run`` receives.

    :ivar output: the directory receiving every artifact (created).
    :ivar seed: the stage's seed; derive every random generator from it.
    :ivar stage: the stage name (the task name for a single-task spec).
    :ivar log: a logger for progress and notes.
    """

    output: Path
    seed: int
    stage: str
    log: logging.Logger = log
    quiet: bool = False

    def progress(self, items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
        """Yield ``items``, reporting count, rate and time left on stderr at most every 2 s."""
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        bar = self.progress_bar(total, desc)
        for item in items:
            yield item
            bar.advance()
        bar.close()

    def progress_bar(self, total: int | None, desc: str = "") -> Progress:
        """A :class:`Progress` to advance by hand (e.g. as worker processes finish)."""
        return Progress(total, desc, self.stage, self.quiet)


def _resolved_stage(stage: Stage) -> dict[str, Any]:
    body = unstructure(stage.task.params)
    return {"xrdframe": 1, "task": stage.task.name, "seed": stage.seed, "output": str(stage.output), **body}


def _path_digest(value: str) -> str | None:
    """A digest of the files a path names (sizes and modification times), or None."""
    path = Path(value)
    try:
        if not path.exists():
            return None
    except OSError:
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f.name == STAGE_MARKER:
            continue
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _providers(value: Any) -> Iterator[str]:
    """Entry-point names of the plugins providing every component referenced in ``value``."""
    if isinstance(value, ComponentRef):
        yield value.provider
        yield from _providers(value.params)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _providers(getattr(value, field.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _providers(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _providers(item)


def stage_fingerprint(stage: Stage, registry: Any, upstream: dict[str, str]) -> str:
    """Content hash of a stage: its resolved configuration, the versions of xrdframe
    and of the plugins whose components it uses, the hashes of the stages it reads,
    and the files it names (sizes and modification times)."""
    resolved = _resolved_stage(stage)
    resolved.pop("output", None)
    inputs = {s: _path_digest(s) for s in sorted(set(_strings(resolved))) if len(s) < 4096 and s not in {".", ".."}}
    inputs = {k: v for k, v in inputs.items() if v is not None}
    versions = registry.versions()
    used = set(_providers(stage.task))
    payload = {
        "config": resolved,
        "versions": {"xrdframe": versions["xrdframe"],
                     "plugins": {k: v for k, v in versions["plugins"].items() if k in used}},
        "upstream": {name: upstream.get(name) for name in stage.depends_on},
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_pipeline(pipeline: Pipeline, registry: Any, *, quiet: bool = False, force: bool = False) -> list[str]:
    """Run every stage in order; return the names of the stages that ran.

    A pipeline stage whose fingerprint matches its completion marker is skipped
    (unless ``force``). A single-task spec always runs.

    :raises XrdframeError: a stage failed (the message names it).
    """
    ran: list[str] = []
    done: dict[str, str] = {}
    for stage in pipeline.stages:
        fingerprint = stage_fingerprint(stage, registry, done)
        marker = stage.output / STAGE_MARKER
        if pipeline.is_pipeline and not force and _completed(marker) == fingerprint:
            if not quiet:
                print(f"[{stage.name}] unchanged since it completed; skipped ({stage.output})", file=sys.stderr)
            done[stage.name] = fingerprint
            continue
        marker.unlink(missing_ok=True)
        stage.output.mkdir(parents=True, exist_ok=True)
        write_text_atomic(stage.output / "spec.resolved.yaml",
                          yaml.safe_dump(_resolved_stage(stage), sort_keys=False))
        write_json_atomic(stage.output / "versions.json", registry.versions())
        if not quiet:
            print(f"[{stage.name}] running task {stage.task.name!r} -> {stage.output}", file=sys.stderr)
        context = RunContext(output=stage.output, seed=stage.seed, stage=stage.name, quiet=quiet)
        task = stage.task.build()
        start = time.monotonic()
        try:
            task.run(context)
        except XrdframeError as exc:
            raise XrdframeError(f"stage {stage.name!r} (task {stage.task.name!r}) failed: {exc}") from exc
        seconds = time.monotonic() - start
        write_json_atomic(marker, {"fingerprint": fingerprint, "task": stage.task.name,
                                   "seconds": round(seconds, 3),
                                   "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if not quiet:
            print(f"[{stage.name}] done in {seconds:.1f} s", file=sys.stderr)
        done[stage.name] = fingerprint
        ran.append(stage.name)
    if pipeline.is_pipeline:
        write_text_atomic(pipeline.output / "spec.resolved.yaml", yaml.safe_dump(
            {"xrdframe": 1, "output": str(pipeline.output),
             "stages": {s.name: _resolved_stage(s) for s in pipeline.stages}}, sort_keys=False))
        write_json_atomic(pipeline.output / "versions.json", registry.versions())
    return ran


def _completed(marker: Path) -> str | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
