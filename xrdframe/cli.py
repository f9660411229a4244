"""The ``xrdframe`` command line.

Exit codes: 0 success; 2 invalid input (a spec, a file, an argument; every
problem listed, no traceback); 1 runtime failure (one clear message; the full
traceback with ``-v``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from xrdframe.component import KINDS
from xrdframe.errors import SpecError, XrdframeError, did_you_mean

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_RUNTIME, EXIT_INVALID = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors, as the contract wants
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from xrdframe import __version__

    parser = _Parser(prog="xrdframe", description="Crystal symmetry and unit cells from powder diffraction.")
    parser.add_argument("--version", action="version", version=f"xrdframe {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="more output; tracebacks on failure")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="validate a spec, then run it")
    p.add_argument("spec", help="pipeline spec (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the spec, e.g. --set seed=3 (repeatable)")
    p.add_argument("--force", action="store_true", help="re-run stages even when unchanged")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("check", help="validate a spec without running it")
    p.add_argument("spec", help="pipeline spec (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the spec before validating (repeatable)")
    p.set_defaults(handler=_cmd_check)

    p = sub.add_parser("plugins", help="list plugins and the components they provide")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_plugins)

    p = sub.add_parser("describe", help="show a component's parameters")
    p.add_argument("kind", help=f"component kind: {', '.join(KINDS)}")
    p.add_argument("name", help="component name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_describe)

    p = sub.add_parser("reference", help="the spec reference of xrdframe's built-in components, as Markdown")
    p.add_argument("--all", action="store_true", help="include the components of every installed plugin")
    p.set_defaults(handler=_cmd_reference)

    p = sub.add_parser("symmetry", help="the 230 space groups with crystal system and extinction group, as CSV")
    p.set_defaults(handler=_cmd_symmetry)

    p = sub.add_parser("peaks", help="simulated powder peak list of a CIF as CSV")
    p.add_argument("structure", help="crystal structure (CIF)")
    p.add_argument("--wavelength", type=_positive_float, default=1.5406, help="Angstrom (default 1.5406, Cu Ka1)")
    p.add_argument("--two-theta-max", type=_positive_float, default=120.0, help="degrees (default 120)")
    p.add_argument("--two-theta-min", type=float, default=0.0, help="degrees (default 0)")
    p.set_defaults(handler=_cmd_peaks)

    p = sub.add_parser("index", help="index one measured pattern or peak list: ranked cells and symmetry")
    p.add_argument("file", help="a measured profile (.xy, .xye, .csv, .xrdml, .gsa/.fxye, powder CIF) or a peak "
                                "list (CSV whose header starts 'two_theta', optional 'intensity')")
    p.add_argument("--wavelength", type=_positive_float, default=None,
                   help="Angstrom; needed when neither the file nor an index.csv beside it gives it")
    p.add_argument("--indexer", default="ntreor", help="indexer component (default ntreor)")
    p.add_argument("--top", type=int, default=5, help="candidates shown in the table (default 5; --json: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cmd_index)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_INVALID
    except XrdframeError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"xrdframe: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except BrokenPipeError:  # output piped into a command that stopped reading (e.g. head)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except KeyboardInterrupt:
        print("xrdframe: interrupted; finished stages are kept, re-run to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear message unless -v
        if args.verbose:
            traceback.print_exc()
        print(f"xrdframe: error: {type(exc).__name__}: {exc} (run with -v for the traceback)", file=sys.stderr)
        return EXIT_RUNTIME


def _cmd_check(args: argparse.Namespace) -> int:
    from xrdframe.spec.pipeline import load_pipeline

    pipeline = load_pipeline(args.spec, args.overrides)
    if not args.quiet:
        names = ", ".join(f"{s.name} ({s.task.name})" for s in pipeline.stages)
        print(f"{args.spec}: valid; stages: {names}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from xrdframe.plugin.manager import get_registry
    from xrdframe.run import run_pipeline
    from xrdframe.spec.pipeline import load_pipeline

    pipeline = load_pipeline(args.spec, args.overrides)
    run_pipeline(pipeline, get_registry(), quiet=args.quiet, force=args.force)
    if not args.quiet:
        print(f"done: outputs in {pipeline.output}")
    return EXIT_OK


def _cmd_plugins(args: argparse.Namespace) -> int:
    from xrdframe.plugin.manager import get_registry

    registry = get_registry()
    plugins = [p.as_dict() for _, p in sorted(registry.plugins.items())]
    conflicts = {kind: {name: [p.name for p in infos] for name, infos in table.items()}
                 for kind, table in registry.conflicts().items()}
    if args.json:
        print(json.dumps({"plugins": plugins, "kinds": list(KINDS),
                          "components": {k: registry.names(k) for k in KINDS},
                          "conflicts": conflicts}, indent=2))
        return EXIT_OK
    for p in plugins:
        dist = f"{p['distribution']} {p['version']}" if p["distribution"] else "(no distribution)"
        print(f"{p['name']}  [{p['status']}]  {dist}")
        if p["error"]:
            print(f"    error: {p['error']}")
        for kind, names in sorted(p["components"].items()):
            print(f"    {kind}: {', '.join(names)}")
    for kind, table in conflicts.items():
        for name, providers in table.items():
            print(f"conflict: {kind} {name!r} provided by {' and '.join(providers)} (unusable)")
    return EXIT_OK


def _cmd_describe(args: argparse.Namespace) -> int:
    from xrdframe.plugin.manager import get_registry

    registry = get_registry()
    if args.kind not in KINDS:
        print(f"xrdframe: error: unknown component kind {args.kind!r}{did_you_mean(args.kind, KINDS)}; "
              f"kinds: {', '.join(KINDS)}", file=sys.stderr)
        return EXIT_INVALID
    try:
        registered = registry.lookup(args.kind, args.name)
    except LookupError as exc:
        print(f"xrdframe: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    comp = registered.component
    from xrdframe.spec.reference import parameter_rows

    params = [{k: v for k, v in row.items() if k != "nested"} for row in parameter_rows(comp.params)]
    doc = inspect.cleandoc(comp.factory.__doc__ or "")
    info = {"kind": args.kind, "name": comp.name, "summary": comp.summary, "plugin": registered.plugin.name,
            "distribution": registered.plugin.distribution, "version": registered.plugin.version,
            "requires": list(comp.requires), "params": params, "doc": doc}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    print(f"{args.kind} {comp.name}: {comp.summary}")
    print(f"  from plugin {registered.plugin.name} ({registered.plugin.distribution} {registered.plugin.version})")
    if comp.requires:
        print(f"  requires: {', '.join(comp.requires)}")
    if not params:
        print("  parameters: none")
    else:
        print("  parameters:")
        for p in params:
            default_text = "required" if p["required"] else f"default {json.dumps(p['default'], default=str)}"
            if p["default"] is None and not p["required"] and "." not in p["type"] and p["type"][0].isupper():
                default_text = "fields below"
            unit = f" [{p['unit']}]" if p["unit"] else ""
            print(f"    {p['name']}: {p['type']}, {default_text}{unit}")
            if p["doc"]:
                print(f"        {p['doc']}")
    if doc:
        print()
        print("\n".join("  " + line for line in doc.splitlines()))
    return EXIT_OK


def _cmd_reference(args: argparse.Namespace) -> int:
    from xrdframe.plugin.manager import get_registry
    from xrdframe.spec.reference import reference_markdown

    sys.stdout.write(reference_markdown(get_registry(), distribution=None if args.all else "xrdframe"))
    return EXIT_OK


def _cmd_symmetry(args: argparse.Namespace) -> int:
    import csv

    from xrdframe.symmetry import all_symmetry_labels

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["space_group", "symbol", "crystal_system", "extinction_group", "extinction_symbol"])
    for label in all_symmetry_labels():
        writer.writerow([label.space_group, label.symbol, label.crystal_system, label.extinction_group,
                         label.extinction_symbol])
    return EXIT_OK


def _cmd_peaks(args: argparse.Namespace) -> int:
    import csv

    from xrdframe.diffraction import simulate_peaks
    from xrdframe.structure import StructureError, read_structure

    try:
        structure = read_structure(args.structure)
        peaks = simulate_peaks(structure, args.wavelength, (args.two_theta_min, args.two_theta_max))
    except (StructureError, XrdframeError) as exc:
        print(f"xrdframe: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["two_theta", "d", "h", "k", "l", "multiplicity", "intensity"])
    for tt, d, hkl, m, i in zip(peaks.two_theta, peaks.d, peaks.hkl, peaks.multiplicity, peaks.intensity,
                                strict=True):
        writer.writerow([f"{tt:.4f}", f"{d:.5f}", *(int(x) for x in hkl), int(m), f"{i:.3f}"])
    return EXIT_OK


def _finite(value: Any) -> Any:
    """JSON has no inf or NaN: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _cmd_index(args: argparse.Namespace) -> int:
    from xrdframe.api import create
    from xrdframe.pattern import ObservedPeaks, PatternError, is_peak_list, read_pattern, read_peak_list

    try:
        data = (read_peak_list if is_peak_list(args.file) else read_pattern)(args.file, args.wavelength)
    except (PatternError, OSError) as exc:
        print(f"xrdframe: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if data.wavelength is None:
        print(f"xrdframe: error: {args.file}: the wavelength is not in the file nor in an index.csv beside it; "
              "give --wavelength (Angstrom)", file=sys.stderr)
        return EXIT_INVALID
    indexer = create("indexer", args.indexer)
    prediction = indexer.predict(data)
    candidates = [c.to_dict() for c in prediction.candidates]
    if args.json:
        out = {"file": str(args.file), "indexer": args.indexer, "wavelength": data.wavelength,
               "crystal_system": prediction.crystal_system, "extinction_group": prediction.extinction_group,
               "space_group": prediction.space_group, "reason": prediction.reason,
               "seconds": round(prediction.seconds, 3), "candidates": candidates}
        print(json.dumps(_finite(out), indent=2))
        return EXIT_OK
    print(f"{args.file}: {len(data)} {'peaks' if isinstance(data, ObservedPeaks) else 'points'}, wavelength "
          f"{data.wavelength} A, indexer {args.indexer}, {prediction.seconds:.2f} s")
    if prediction.crystal_system is not None:
        labels = [f"crystal system {prediction.crystal_system}"]
        if prediction.extinction_group is not None:
            labels.append(f"extinction group {prediction.extinction_group}")
        if prediction.space_group is not None:
            labels.append(f"space group {prediction.space_group}")
        print("prediction: " + ", ".join(labels))
    if not candidates:
        if prediction.reason:
            print(f"no cell candidates: {prediction.reason}")
        elif prediction.crystal_system is not None:
            print(f"no cell candidates: indexer {args.indexer} predicts symmetry, not a cell")
        else:
            print("no cell candidates: nothing indexed")
        return EXIT_OK
    header = (f"{'#':>2} {'system':<12} {'lattice':<7} {'a':>8} {'b':>8} {'c':>8} {'alpha':>7} {'beta':>7} "
              f"{'gamma':>7} {'volume':>9} {'M20':>7} {'F_N':>7} {'lines':>7}  extinction group")
    print(header)
    for rank, c in enumerate(candidates[:max(args.top, 1)], 1):
        m20 = "inf" if c["m20"] is None or not math.isfinite(c["m20"]) else f"{c['m20']:.1f}"
        f_n = "inf" if c["f_n"] is None or not math.isfinite(c["f_n"]) else f"{c['f_n']:.1f}"
        group = "" if c["extinction_symbol"] is None else f"{c['extinction_group']}: {c['extinction_symbol']}"
        if c.get("symbol_centring"):  # the symbol is written for a setting that centres another face
            group = f"{group} ({c['symbol_centring']} setting)"
        print(f"{rank:>2} {c['crystal_system']:<12} {c['bravais_lattice']:<7} {c['a']:>8.4f} {c['b']:>8.4f} "
              f"{c['c']:>8.4f} {c['alpha']:>7.2f} {c['beta']:>7.2f} {c['gamma']:>7.2f} {c['volume']:>9.2f} "
              f"{m20:>7} {f_n:>7} {c['lines_indexed']:>3}/{c['lines_total']:<3}  {group}")
    if len(candidates) > args.top:
        print(f"({len(candidates) - args.top} more: --top N or --json)")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
