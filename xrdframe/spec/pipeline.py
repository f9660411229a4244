"""Pipeline specs: the top level of a YAML spec, stages, references and overrides.

A spec is either one task::

    xrdframe: 1
    task: simulate
    seed: 0
    output: runs/sim
    structures: {name: cif_dir, params: {path: examples/structures}}

or a pipeline of ``stages`` run in order, each a task spec of its own whose
``seed`` and ``output`` default to the top level's (``OUTPUT/STAGE``); a stage
refers to an earlier stage's output directory as ``${stages.NAME.output}``.
Relative paths are relative to the working directory.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from xrdframe.component import TaskRef
from xrdframe.errors import Problem, SpecError, did_you_mean
from xrdframe.spec.validation import kind_of, structure, using_registry
from xrdframe.spec.yaml_source import SpecSource, load_spec_file, parse_scalar

__all__ = ["SCHEMA_VERSION", "Stage", "Pipeline", "validate_spec", "load_pipeline", "apply_overrides"]

SCHEMA_VERSION = 1
_TOP_KEYS = ("xrdframe", "task", "seed", "output")
_PIPELINE_KEYS = ("xrdframe", "seed", "output", "stages")
_REF = re.compile(r"\$\{([^}]*)\}")
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@attrs.frozen
class Stage:
    """One validated task: what runs, with which seed, writing where."""

    name: str
    task: TaskRef
    seed: int
    output: Path
    depends_on: tuple[str, ...] = ()


@attrs.frozen
class Pipeline:
    """A validated spec: its stages in order (one stage for a single-task spec)."""

    stages: tuple[Stage, ...]
    is_pipeline: bool
    output: Path
    raw: Mapping[str, Any]
    source: str | None = None


def load_pipeline(path: str | Path, overrides: Iterable[str] = (), registry: Any = None) -> Pipeline:
    """Read, override and validate the spec at ``path``.

    :raises SpecError: with every problem found.
    """
    source = load_spec_file(path)
    apply_overrides(source, overrides)
    return validate_spec(source, registry=registry)


def apply_overrides(source: SpecSource, overrides: Iterable[str]) -> None:
    """Apply ``--set a.b=value`` overrides to ``source`` in place.

    The value is typed like the key it replaces: a string key keeps the text as
    it is; otherwise (and for new keys) the text is read as a YAML scalar, so
    ``seed=3`` is an integer and ``augment=false`` a boolean.
    """
    problems: list[Problem] = []
    for text in overrides:
        key, sep, raw = text.partition("=")
        location = f"--set {text}"
        if not sep or not key.strip():
            problems.append(Problem((), f"override {text!r} is not of the form a.b=value", location))
            continue
        parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
        if source.data is None:
            source.data = {}
        node = source.data
        ok = True
        for i, part in enumerate(parts[:-1]):
            nxt = _child(node, part)
            if nxt is _MISSING:
                if isinstance(node, dict):
                    node[part] = {}
                    nxt = node[part]
                else:
                    problems.append(Problem(tuple(parts[: i + 1]), "cannot set: no such key or index", location))
                    ok = False
                    break
            node = nxt
        if not ok:
            continue
        last = parts[-1]
        current = _child(node, last)
        if isinstance(current, str):
            value: Any = raw
        else:
            try:
                value = parse_scalar(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            problems.append(Problem(tuple(parts), "cannot set: no such key or index", location))
            continue
        source.locations[tuple(parts)] = location
    source.problems.extend(problems)


_MISSING = object()


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part, node.get(str(part), _MISSING))
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return _MISSING


def validate_spec(source: SpecSource, registry: Any = None) -> Pipeline:
    """Validate a whole spec before anything runs.

    :raises SpecError: every problem at once, each with its path and location.
    """
    if registry is None:
        from xrdframe.plugin.manager import get_registry

        registry = get_registry()
    problems: list[Problem] = list(source.problems)
    data = source.data
    with using_registry(registry):
        if not isinstance(data, Mapping):
            problems.append(Problem((), f"a spec must be a mapping of keys, got {type(data).__name__}"))
            pipeline = None
        elif "stages" in data:
            pipeline = _validate_pipeline(data, registry, problems)
        else:
            pipeline = _validate_single(data, registry, problems)
    if problems:
        located = [attrs.evolve(p, location=p.location or source.locate(p.path)) for p in problems]
        raise SpecError(located, source=source.name)
    assert pipeline is not None
    return attrs.evolve(pipeline, source=source.name)


def _check_version(data: Mapping[str, Any], problems: list[Problem]) -> None:
    if "xrdframe" not in data:
        problems.append(Problem(("xrdframe",), f"required key is missing (the schema version, {SCHEMA_VERSION})"))
    elif data["xrdframe"] != SCHEMA_VERSION or isinstance(data["xrdframe"], bool):
        problems.append(Problem(("xrdframe",), f"unsupported schema version {data['xrdframe']!r}; "
                                               f"this xrdframe reads version {SCHEMA_VERSION}"))


def _seed(data: Mapping[str, Any], path: tuple, default: int | None, problems: list[Problem]) -> int:
    if "seed" not in data:
        return 0 if default is None else default
    seed = data["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(Problem(path + ("seed",), f"expected an integer, got {seed!r} ({kind_of(seed)})"))
        return 0
    if seed < 0:
        problems.append(Problem(path + ("seed",), f"expected an integer >= 0, got {seed}"))
    return seed


def _output(data: Mapping[str, Any], path: tuple, default: Path | None, problems: list[Problem]) -> Path:
    if "output" not in data:
        if default is None:
            problems.append(Problem(path + ("output",), "required key is missing (the output directory)"))
            return Path(".")
        return default
    out = data["output"]
    if not isinstance(out, str) or not out.strip():
        problems.append(Problem(path + ("output",), f"expected a directory path (string), got {out!r} "
                                                    f"({kind_of(out)})"))
        return Path(".")
    return Path(out)


def _task(data: Mapping[str, Any], path: tuple, registry: Any, allowed_top: Iterable[str],
          problems: list[Problem]) -> TaskRef | None:
    if "task" not in data:
        tasks = ", ".join(registry.names("task")) or "none installed"
        problems.append(Problem(path + ("task",), f"required key is missing (one of: {tasks})"))
        return None
    name = data["task"]
    if not isinstance(name, str):
        problems.append(Problem(path + ("task",), f"expected a task name (string), got {name!r}"))
        return None
    try:
        registered = registry.lookup("task", name)
    except LookupError as exc:
        problems.append(Problem(path + ("task",), str(exc)))
        return None
    task_keys = {k: v for k, v in data.items() if k not in allowed_top}
    params_cls = registered.component.params
    params, found = structure(task_keys, params_cls, path)
    for p in found:
        if p.message.startswith("unknown key") and len(p.path) == len(path) + 1:
            # the task's own keys and the spec's top-level keys are both allowed here
            keys = sorted({*allowed_top, *(f.name for f in attrs.fields(params_cls))})
            key = str(p.path[-1])
            p = attrs.evolve(p, message=f"unknown key {key!r} for task {name!r}{did_you_mean(key, keys)}; "
                                        f"allowed keys: {', '.join(keys)}")
        problems.append(p)
    if params is None:
        return None
    return TaskRef(name=name, params=params, component=registered.component, provider=registered.plugin.name)


def _validate_single(data: Mapping[str, Any], registry: Any, problems: list[Problem]) -> Pipeline | None:
    _check_version(data, problems)
    seed = _seed(data, (), None, problems)
    output = _output(data, (), None, problems)
    unresolved = [m for m in _REF.findall(yaml.safe_dump(dict(data)))]
    if unresolved:
        problems.append(Problem((), f"${{{unresolved[0]}}} can only be used inside stages of a pipeline"))
    task = _task(data, (), registry, _TOP_KEYS, problems)
    if task is None:
        return None
    stage = Stage(name=task.name, task=task, seed=seed, output=output)
    return Pipeline(stages=(stage,), is_pipeline=False, output=output, raw=copy.deepcopy(dict(data)))


def _validate_pipeline(data: Mapping[str, Any], registry: Any, problems: list[Problem]) -> Pipeline | None:
    _check_version(data, problems)
    for key in data:
        if key not in _PIPELINE_KEYS:
            problems.append(Problem((key,), f"unknown key {key!r} at the top of a pipeline"
                                            f"{did_you_mean(str(key), _PIPELINE_KEYS)}; allowed keys: "
                                            f"{', '.join(_PIPELINE_KEYS)} (task keys belong inside a stage)"))
    seed = _seed(data, (), None, problems)
    output = _output(data, (), None, problems)
    stages_raw = data["stages"]
    if not isinstance(stages_raw, Mapping) or not stages_raw:
        problems.append(Problem(("stages",), "expected a mapping of stage names to task specs"))
        return None
    outputs: dict[str, Path] = {}
    stages: list[Stage] = []
    resolved_raw: dict[str, Any] = {}
    ok = True
    for name, raw in stages_raw.items():
        path = ("stages", name)
        if not isinstance(name, str) or not _STAGE_NAME.match(name):
            problems.append(Problem(path, "a stage name is letters, digits, '_', '-' or '.'"))
            ok = False
            continue
        if not isinstance(raw, Mapping):
            problems.append(Problem(path, f"expected a task spec (mapping), got {type(raw).__name__}"))
            ok = False
            continue
        if "xrdframe" in raw:
            _check_version(raw, problems)
        stage_seed = _seed(raw, path, seed, problems)
        stage_output = _output(raw, path, output / name, problems)
        outputs[name] = stage_output
        resolved, deps = _resolve_refs(raw, path, name, outputs, problems)
        resolved_raw[name] = resolved
        task = _task(resolved, path, registry, (*_TOP_KEYS,), problems)
        if task is None:
            ok = False
            continue
        stages.append(Stage(name=name, task=task, seed=stage_seed, output=stage_output, depends_on=tuple(deps)))
    if not ok or problems:
        return None
    raw_all = copy.deepcopy(dict(data))
    raw_all["stages"] = resolved_raw
    return Pipeline(stages=tuple(stages), is_pipeline=True, output=output, raw=raw_all)


def _resolve_refs(value: Any, path: tuple, stage: str, outputs: Mapping[str, Path],
                  problems: list[Problem], deps: list[str] | None = None) -> tuple[Any, list[str]]:
    """Replace ``${stages.NAME.output}`` by earlier stages' output directories."""
    if deps is None:
        deps = []
    if isinstance(value, Mapping):
        return {k: _resolve_refs(v, path + (k,), stage, outputs, problems, deps)[0] for k, v in value.items()}, deps
    if isinstance(value, list):
        return [_resolve_refs(v, path + (i,), stage, outputs, problems, deps)[0] for i, v in enumerate(value)], deps
    if not isinstance(value, str) or "${" not in value:
        return value, deps

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        parts = expr.split(".")
        if len(parts) != 3 or parts[0] != "stages" or parts[2] != "output":
            problems.append(Problem(path, f"cannot resolve ${{{expr}}}: references have the form "
                                          "${stages.NAME.output}"))
            return match.group(0)
        ref = parts[1]
        earlier = [n for n in outputs if n != stage]
        if ref == stage or ref not in earlier:
            problems.append(Problem(path, f"cannot resolve ${{{expr}}}: {ref!r} is not an earlier stage"
                                          f"{did_you_mean(ref, earlier)}; earlier stages: "
                                          f"{', '.join(earlier) or 'none'}"))
            return match.group(0)
        if ref not in deps:
            deps.append(ref)
        return str(outputs[ref])

    return _REF.sub(replace, value), deps
