"""The ``neuronspec`` command."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .formats import FORMATS

__all__ = ["main"]


def _formats(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(bad) or repr(text)}; use a comma-separated list of "
            + ", ".join(FORMATS)
        )
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuronspec",
        description="Exact reference and conformance checks for one gradient-descent step of "
        "a single neuron (y = w*x + b, L = (y - t)^2 / 2).",
    )
    parser.add_argument("--version", action="version", version=f"neuronspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ex = sub.add_parser("example", help="the seed example: exact values, bundled implementations, "
                        "errors in ulps (the default command)")
    ex.add_argument("--dtype", type=_formats, default=None,
                    help="comma-separated formats (default: float64,float32, the seed's)")
    sd = sub.add_parser("soundness", help="measure soundness and tightness of the bounds on "
                        "many exact-arithmetic cases (slow: run it behind a marker, not in CI)")
    sd.add_argument("--dtype", type=_formats, default=list(FORMATS), help="comma-separated formats")
    sd.add_argument("--cases", type=_positive, default=1_000_000, help="cases per format")
    sd.add_argument("--seed", type=int, default=20261126)
    sd.add_argument("--workers", type=_positive, default=os.cpu_count() or 1)
    sd.add_argument("--torch-cases", type=int, default=None,
                    help="cases for the torch implementations (default: all for float32, a "
                    "tenth for the other formats)")
    sd.add_argument("--output", default="spec/data/soundness.json",
                    help="JSON file to merge the results into (per format)")
    sd.add_argument("--append", action="store_true",
                    help="add this run's cases to the recorded ones (use another --seed)")
    ck = sub.add_parser("check", help="check implementations: property suite, test vectors, "
                        "fingerprint and report (exit 0 conformant, 1 not, 2 usage error)")
    ck.add_argument("impl", nargs="*", help="bundled name, module:callable or "
                    "path/to/file.py:callable (default: the bundled implementations)")
    ck.add_argument("--cmd", action="append", default=[], metavar="COMMAND",
                    help="a program speaking the process protocol (spec/protocol.md); repeatable")
    ck.add_argument("--dtype", type=_formats, default=None, help="comma-separated formats")
    ck.add_argument("--examples", type=_nonnegative, default=200,
                    help="hypothesis examples per format (default 200)")
    ck.add_argument("--seed", type=int, default=0)
    ck.add_argument("--model", default="ieee", help="tolerance model (ieee, strict, ieee+ftz, "
                    "ieee+lr-binary64, ...)")
    ck.add_argument("--vectors", default="spec/vectors", help="vector directory ('' for none)")
    ck.add_argument("--timeout", type=float, default=10.0,
                    help="seconds a --cmd process may take per case")
    ck.add_argument("--json", metavar="FILE", help="write the report as JSON")
    ck.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    vc = sub.add_parser("vectors", help="write the test vectors (spec/vectors), check them, "
                        "run an implementation on them or verify results")
    vc.add_argument("action", nargs="?", default="write", choices=["write", "check", "run", "verify"])
    vc.add_argument("target", nargs="?", help="run: an implementation; verify: a results file")
    vc.add_argument("--dir", default="spec/vectors")
    vc.add_argument("--output", help="run: where to write the results (default: stdout)")
    rp = sub.add_parser("replay", help="run one case on an implementation and show every "
                        "quantity against its exact value and bound")
    rp.add_argument("impl", nargs="?", help="bundled name, module:callable or "
                    "path/to/file.py:callable")
    rp.add_argument("--cmd", help="a program speaking the process protocol, instead of IMPL")
    rp.add_argument("--dtype", type=_one_format, required=True)
    rp.add_argument("--case", required=True, help="w,b,x,t,lr as hex or decimal literals")
    rp.add_argument("--model", default="ieee")
    sw = sub.add_parser("sweep", help="stream many seeded cases through an implementation "
                        "(batch callable where offered) and the batch reference")
    sw.add_argument("impl", help="bundled name, module:callable or path/to/file.py:callable")
    sw.add_argument("--dtype", type=_one_format, required=True)
    sw.add_argument("--cases", type=_positive, default=1_000_000, help="e.g. 1e8")
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--workers", type=_positive, default=1, help="processes (one core each)")
    sw.add_argument("--model", default="ieee", choices=["ieee", "strict"])
    sw.add_argument("--scalar", action="store_true",
                    help="call the step callable case by case even if a batch one exists")
    sw.add_argument("--chunk", type=_positive, default=None, help="cases per chunk")
    sw.add_argument("--json", metavar="FILE", help="write the result as JSON")
    sw.add_argument("--record", metavar="FILE", nargs="?", const="spec/data/sweeps.json",
                    help="merge the result into FILE (default spec/data/sweeps.json), from "
                    "which spec/tolerances.md's sweep table is rendered")
    cc = sub.add_parser("crosscheck", help="compare the batch verdict with the scalar (mpmath) "
                        "one, case by case, on outputs placed around the bounds")
    cc.add_argument("--dtype", type=_formats, default=list(FORMATS))
    cc.add_argument("--cases", type=_positive, default=10_000, help="cases per format")
    cc.add_argument("--seed", type=int, default=0)
    cc.add_argument("--workers", type=_positive, default=1)
    cc.add_argument("--record", metavar="FILE", nargs="?", const="spec/data/crosscheck.json",
                    help="write the counts to FILE (default spec/data/crosscheck.json)")
    pl = sub.add_parser("plots", help="draw spec/plots/<format>.png: error/bound against "
                        "conditioning, with assert_close's defaults for comparison")
    pl.add_argument("--dtype", type=_formats, default=list(FORMATS))
    pl.add_argument("--dir", default="spec/plots")
    pl.add_argument("--check", action="store_true",
                    help="exit 1 if a committed picture's data digest is stale (no drawing)")
    tb = sub.add_parser("tables", help="write spec/tolerances.md from the recorded measurement")
    tb.add_argument("--data", default="spec/data/soundness.json")
    tb.add_argument("--output", default="spec/tolerances.md")
    tb.add_argument("--check", action="store_true",
                    help="exit 1 if the output file differs from what would be written")
    return parser


def _one_format(text: str) -> str:
    names = _formats(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError(f"give one format, not {text!r}")
    return names[0]


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            try:  # 1e8, 2.5e6: whole numbers in scientific notation
                f = float(text)
                if not f.is_integer():
                    raise ValueError
                value = int(f)
            except (ValueError, OverflowError):
                raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


_nonnegative = _int_at_least(0)
_positive = _int_at_least(1)


def main(argv: "list[str] | None" = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


def _main(argv: "list[str] | None" = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command or "example"
    if command == "example":
        from .seed import render_seed, seed_sections

        print(render_seed(seed_sections(getattr(args, "dtype", None))))
        return 0
    if command == "soundness":
        return _soundness(args)
    if command == "tables":
        return _tables(args)
    if command == "replay":
        return _replay(args)
    if command == "check":
        return _check(args)
    if command == "vectors":
        return _vectors(args)
    if command == "sweep":
        return _sweep(args, argv)
    if command == "crosscheck":
        return _crosscheck(args, argv)
    if command == "plots":
        return _plots(args)
    parser.error(f"unknown command {command!r}")  # pragma: no cover - argparse rejects first
    return 2


def _replay(args) -> int:
    from .bounds import get_model
    from .formats import get_format
    from .impls import LoadError, load
    from .replay import replay

    fmt = get_format(args.dtype)
    parts = [p.strip() for p in args.case.split(",")]
    if len(parts) != 5:
        print(f"neuronspec replay: --case needs 5 values w,b,x,t,lr, got {len(parts)}",
              file=sys.stderr)
        return 2
    try:
        case = tuple(fmt.parse(p) for p in parts)
        for name, v in zip("w b x t lr".split(), case):
            fmt.check(v, name)
        model = get_model(args.model)
        if bool(args.cmd) == bool(args.impl):
            raise ValueError("give either IMPL or --cmd COMMAND")
        if args.cmd:
            from .process import ProcessImplementation

            impl = ProcessImplementation(args.cmd)
        else:
            impl = load(args.impl)
    except (ValueError, LoadError) as exc:
        print(f"neuronspec replay: {exc}", file=sys.stderr)
        return 2
    text, ok = replay(impl, fmt, case, model)
    print(text)
    return 0 if ok else 1


def _check(args) -> int:
    import json
    from pathlib import Path

    from .bounds import get_model
    from .bundled import BUNDLED
    from .conformance import check
    from .impls import LoadError, load
    from .process import ProcessImplementation
    from .report import render_markdown, render_text

    vectors = None
    if args.vectors:
        from .vectors import load as load_vectors

        try:
            vectors = load_vectors(Path(args.vectors))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            print(f"neuronspec check: {exc}", file=sys.stderr)
            return 2
    try:
        model = get_model(args.model)
        impls = [load(spec) for spec in args.impl]
        impls += [ProcessImplementation(cmd, timeout=args.timeout) for cmd in args.cmd]
        if not impls:
            impls = []
            for name in BUNDLED:
                try:
                    impls.append(load(name))
                except LoadError as exc:
                    print(f"neuronspec check: skipping {name}: {exc}", file=sys.stderr)
    except (ValueError, LoadError) as exc:
        print(f"neuronspec check: {exc}", file=sys.stderr)
        return 2

    def progress(what: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rchecking {what} ...".ljust(60))
            sys.stderr.flush()

    report = check(impls, formats=args.dtype, model=model, examples=args.examples,
                   seed=args.seed, vectors=vectors, progress=progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")
    print(render_text(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(report))
    return 0 if report["conformant"] else 1


def _vectors(args) -> int:
    import json
    from pathlib import Path

    from . import vectors as V

    directory = Path(args.dir)
    if args.action == "write":
        for path in V.write(directory):
            print(f"neuronspec vectors: wrote {path}")
        return 0
    if args.action == "check":
        stale = V.stale(directory)
        if stale:
            print(f"neuronspec vectors: stale: {', '.join(stale)}; regenerate with "
                  "`neuronspec vectors`", file=sys.stderr)
            return 1
        print("neuronspec vectors: up to date")
        return 0
    if not args.target:
        print(f"neuronspec vectors {args.action}: give "
              f"{'an implementation' if args.action == 'run' else 'a results file'}",
              file=sys.stderr)
        return 2
    try:
        vectors = V.load(directory)
    except FileNotFoundError as exc:
        print(f"neuronspec vectors: {exc}", file=sys.stderr)
        return 2
    if args.action == "run":
        from .impls import LoadError, load

        try:
            impl = load(args.target)
        except LoadError as exc:
            print(f"neuronspec vectors run: {exc}", file=sys.stderr)
            return 2
        results = V.run_implementation(impl, vectors, list(vectors))
        text = json.dumps({"implementation": impl.name, "results": results}, indent=1) + "\n"
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    try:
        data = json.loads(Path(args.target).read_text())
        results = data["results"] if isinstance(data, dict) else data
        if not isinstance(results, list):
            raise KeyError
    except FileNotFoundError:
        print(f"neuronspec vectors verify: no file {args.target}", file=sys.stderr)
        return 2
    except (json.JSONDecodeError, KeyError, TypeError):
        print(f"neuronspec vectors verify: {args.target} is not a results file (a JSON list, "
              "or an object with 'results': [{format, tcId, outputs}, ...])", file=sys.stderr)
        return 2
    summary = V.verify(results, vectors)
    for f in summary["failures"][:20]:
        print(f"FAIL {f['format']} tcId {f['tcId']}: {f['reason']}")
    print(f"neuronspec vectors verify: {summary['checked']} checked, {summary['passed']} passed, "
          f"{summary['failed']} failed, {summary['unknown']} unknown ids, "
          f"{summary['notRun']} vectors not run")
    return 0 if summary["failed"] == 0 and summary["unknown"] == 0 else 1


def _tables(args) -> int:
    from pathlib import Path

    from .tables import load_data, load_extra, render

    try:
        text = render(load_data(Path(args.data)), load_extra(Path(args.data).parent))
    except (FileNotFoundError, ValueError) as exc:
        print(f"neuronspec tables: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if args.check:
        current = out.read_text() if out.exists() else None
        if current != text:
            print(f"neuronspec tables: {out} is stale; regenerate it with `neuronspec tables`",
                  file=sys.stderr)
            return 1
        print(f"neuronspec tables: {out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"neuronspec tables: wrote {out}")
    return 0


def _merge_format(old: dict, new: dict) -> dict:
    """Two soundness runs of one format as one: counts add, maxima are kept."""
    from .soundness import _tally_from

    merged = _tally_from(old)
    merged.merge(_tally_from(new))
    out = merged.as_dict()
    out["cases"] = old["cases"] + new["cases"]
    out["passes"] = old.get("passes", []) + new.get("passes", [])
    return out


def _soundness(args) -> int:
    import json
    from pathlib import Path

    from .soundness import soundness_report

    torch_cases = {}
    for name in args.dtype:
        if args.torch_cases is not None:
            torch_cases[name] = min(args.torch_cases, args.cases)
        else:
            torch_cases[name] = args.cases if name == "float32" else args.cases // 10
    argv = ["neuronspec", "soundness", "--dtype", ",".join(args.dtype), "--cases",
            str(args.cases), "--seed", str(args.seed)]
    if args.torch_cases is not None:
        argv += ["--torch-cases", str(args.torch_cases)]
    if args.append:
        argv.append("--append")
    report = soundness_report(args.dtype, args.cases, args.seed, args.workers, torch_cases)
    report["command"] = " ".join(argv)
    path = Path(args.output)
    old = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            print(f"neuronspec: {path} is not valid JSON; remove it or choose another --output",
                  file=sys.stderr)
            return 2
    formats = dict(old.get("formats", {}))
    runs = dict(old.get("runs", {}))
    for name, new in report["formats"].items():
        this_run = {k: report[k] for k in report if k != "formats"}
        if args.append and name in formats:
            formats[name] = _merge_format(formats[name], new)
            previous = runs.get(name, {})
            runs[name] = dict(this_run, command=f"{previous.get('command', '?')}; then "
                                                 f"{report['command']}")
        else:
            formats[name] = new
            runs[name] = this_run
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"formats": formats, "runs": runs}, indent=1, sort_keys=True) + "\n")
    bad = sum(st["violations"] for f in report["formats"].values()
              for subject, qs in f["subjects"].items() for st in qs.values())
    print(f"neuronspec soundness: {bad} violations; results in {path}")
    return 1 if bad else 0


def _command_line(argv: "list[str] | None") -> str:
    import shlex

    return "neuronspec " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                              else sys.argv[1:]))


def _sweep(args, argv) -> int:
    import json
    from pathlib import Path

    from .impls import ImplementationError, LoadError
    from .sweep import CHUNK, record, render, sweep

    def show(total, elapsed):
        rate = total.cases / elapsed if elapsed else 0.0
        left = (args.cases - total.cases) / rate if rate else 0.0
        print(f"\r  {total.cases:,}/{args.cases:,} cases  {rate / 1e6:.2f}M/s  "
              f"{left:.0f}s left  violations {total.violations}   ", end="",
              file=sys.stderr, flush=True)

    progress = show if sys.stderr.isatty() else None
    try:
        result = sweep(args.impl, args.dtype, args.cases, args.seed, args.workers, args.model,
                       args.scalar, args.chunk or CHUNK, progress)
    except (LoadError, ImplementationError, NotImplementedError, RuntimeError,
            ValueError) as exc:
        if progress is not None:
            print(file=sys.stderr)
        print(f"neuronspec sweep: {exc}", file=sys.stderr)
        return 2
    if progress is not None:
        print(file=sys.stderr)
    command = _command_line(argv)
    print(render(result, command))
    if args.json:
        Path(args.json).write_text(json.dumps(dict(result.as_dict(), command=command), indent=1)
                                   + "\n")
    if args.record:
        record(result, command, Path(args.record))
        print(f"recorded in {args.record}")
    return 1 if result.violations else 0


def _plots(args) -> int:
    from pathlib import Path

    from .impls import LoadError
    from .plots import digest, plot_data, png_text, write_plot

    stale = []
    for name in args.dtype:
        path = Path(args.dir) / f"{name}.png"
        try:
            data = plot_data(name)
        except LoadError as exc:
            print(f"neuronspec plots: {name}: {exc}", file=sys.stderr)
            return 2
        if args.check:
            try:
                text = png_text(path).get("Description", "")
            except (FileNotFoundError, ValueError) as exc:
                text = str(exc)
            if digest(data) not in text:
                stale.append(str(path))
            continue
        try:
            write_plot(data, path)
        except RuntimeError as exc:
            print(f"neuronspec plots: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {path}")
    if stale:
        print(f"neuronspec plots: stale: {', '.join(stale)}; rerun `neuronspec plots` and commit",
              file=sys.stderr)
        return 1
    return 0


def _crosscheck(args, argv) -> int:
    import json
    from pathlib import Path

    from .crosscheck import crosscheck

    command = _command_line(argv)
    results = {}
    for name in args.dtype:
        counts = crosscheck(name, args.cases, args.seed, args.workers)
        results[name] = counts
        print(f"{name:9} {counts['cases']:>10,} cases  {counts['checked']:>11,} values checked  "
              f"{counts['violations']:>10,} violations  {counts['out_of_domain']:>10,} outside "
              f"the domain  {counts['resolved']:>7,} by the scalar path  "
              f"disagreements {counts['disagreements']}")
        for example in counts["examples"]:
            print(f"  disagreement: {example}")
    if args.record:
        Path(args.record).parent.mkdir(parents=True, exist_ok=True)
        Path(args.record).write_text(json.dumps({"command": command, "formats": results},
                                                indent=1, sort_keys=True) + "\n")
    return 1 if any(c["disagreements"] for c in results.values()) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
