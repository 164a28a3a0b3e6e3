"""The ``neuronspec`` command: parse the arguments, dispatch to a run, print what it returns.

Every handler only parses and dispatches.  Errors a user can fix derive from
``neuronspec.errors.NeuronspecError``; :func:`main` catches them in one place and exits 2 with
their one line.  Exit status: 0 checked and conformant (or done), 1 wrong (violations,
non-conformance, stale files), 2 not checked (usage error, unloadable implementation, bad data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from reference.bounds import MODELS, get_model
from reference.judge import LEVELS
from reference.formats import FORMATS
from reference.optim import CONVENTION_NAMES as CONVENTION_CHOICES
from reference.step import INPUTS

from . import __version__
from .errors import Interrupted, NeuronspecError, UsageError
from .implementations.process import DEFAULT_TIMEOUT
from .runs.campaign import CHUNK_TIMEOUT
from .runs.tally import RATIOS_EVERY

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``neuronspec check: error: ...`` and the way to help."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---- argument types ---------------------------------------------------------------------------

def _formats(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(bad) or repr(text)}; use a comma-separated list of "
            + ", ".join(FORMATS))
    return names


def _one_format(text: str) -> str:
    names = _formats(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError(f"give one format, not {text!r}")
    return names[0]


#: What --level means (spec/neuron.md section 7).
LEVEL_HELP = ("which level of the verdict sets the exit status: exact (default: every value is "
              "bit for bit what an evaluation the model admits gives) or bounded (every value "
              "is within its derived bound); both are reported")


def _model(choices: "tuple[str, ...] | None" = None) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            name = get_model(text).name
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if choices and name not in choices:
            raise argparse.ArgumentTypeError(f"{name}: this command covers the models "
                                             f"{', '.join(choices)}")
        return name

    return parse


def _int_at_least(minimum: int) -> Callable[[str], int]:
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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


_nonnegative = _int_at_least(0)
_positive = _int_at_least(1)

SCHEDULER_HELP = ("run on the Dask cluster whose scheduler is at ADDRESS (tcp://HOST:PORT, or "
                  "the file of dask scheduler --scheduler-file; default $NEURONSPEC_SCHEDULER, "
                  "else an embedded local cluster of --workers workers)")
IMPL_HELP = "bundled name, module:callable or path/to/file.py:callable"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neuronspec",
        description="Exact reference and conformance checks for one gradient-descent step of "
        "a single neuron (y = w*x + b, L = (y - t)^2 / 2).")
    parser.add_argument("--version", action="version", version=f"neuronspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    ex = sub.add_parser("example", help="the seed example: exact values, bundled implementations, "
                        "errors in ulps (the default command)")
    ex.add_argument("--dtype", type=_formats, default=None,
                    help="comma-separated formats (default: float64,float32, the seed's)")
    ck = sub.add_parser("check", help="check implementations: property suite, test vectors, "
                        "fingerprint and report (exit 0 conformant, 1 not, 2 usage error)")
    ck.add_argument("impl", nargs="*", help=f"{IMPL_HELP} (default: the bundled implementations)")
    ck.add_argument("--cmd", action="append", default=[], metavar="COMMAND",
                    help="a program speaking the process protocol (spec/protocol.md); repeatable")
    ck.add_argument("--dtype", type=_formats, default=None, help="comma-separated formats")
    ck.add_argument("--examples", type=_nonnegative, default=200,
                    help="hypothesis examples per format (default 200)")
    ck.add_argument("--seed", type=_nonnegative, default=0)
    ck.add_argument("--level", choices=LEVELS, default="exact", help=LEVEL_HELP)
    ck.add_argument("--sweep", type=_nonnegative, default=100_000, metavar="N",
                    help="cases of the seeded sweep phase per format, through the batch path "
                    "(default 100000; 0: none)")
    ck.add_argument("--model", type=_model(), default="ieee",
                    help=f"tolerance model ({', '.join(MODELS)})")
    ck.add_argument("--vectors", default=None, metavar="DIR",
                    help="vector folder (default: the vectors shipped with neuronspec; '' for "
                    "none)")
    ck.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                    help=f"seconds an implementation may take per case (default "
                    f"{DEFAULT_TIMEOUT:g}); every implementation runs supervised, in its own "
                    "process")
    ck.add_argument("--run", action="store_true",
                    help="check runs of SGD with options too (spec/neuron.md 8): each step "
                         "judged from the implementation's reported state")
    ck.add_argument("--options", action="append", default=[], metavar="SPEC",
                    help="an option set of the runs, e.g. momentum=0.9,dampening=0.1 or "
                         "momentum=0.9,nesterov,weight_decay=1e-4 (repeatable; implies --run; "
                         "default: a set covering every option)")
    ck.add_argument("--steps", type=_positive, default=8, help="steps per run (default 8)")
    ck.add_argument("--runs", type=_positive, default=6, metavar="N",
                    help="runs per format and option set (default 6)")
    ck.add_argument("--convention", default=None, choices=CONVENTION_CHOICES,
                    help="the declared convention of the runs (spec/neuron.md 8.6; default "
                         "torch): keras reports its velocity, optax its trace (with the weight "
                         "decay before it, or after it: optax-decay-after); implies --run")
    ck.add_argument("--buffer-format", default=None, metavar="FORMAT",
                    help="the declared format of the momentum buffers (default: the parameter "
                         "format), e.g. float32 buffers with float16 parameters")
    ck.add_argument("--json", metavar="FILE", help="write the report as JSON")
    ck.add_argument("--markdown", metavar="FILE", help="write the report as Markdown")
    ck.add_argument("--junit", metavar="FILE", help="write the report as JUnit XML (a test "
                    "case per implementation, format and quantity) for CI test reporters")
    ck.add_argument("--summary", metavar="FILE", help="write the one-line summary (the last "
                    "line printed) for a pull-request comment")
    ck.add_argument("--html", metavar="FILE", help="write the report as one self-contained "
                    "HTML page (tables, fingerprint, failures, plots)")
    vc = sub.add_parser("vectors", help="write the test vectors, check them, run an "
                        "implementation on them or verify results")
    vc.add_argument("action", nargs="?", default="write",
                    choices=["write", "check", "run", "verify"])
    vc.add_argument("target", nargs="?", help="run: an implementation; verify: a results file")
    vc.add_argument("--dir", default=None,
                    help="vector folder (default: the vectors shipped with neuronspec, which in "
                    "a checkout are spec/vectors)")
    vc.add_argument("--output", help="run: where to write the results (default: stdout)")
    vc.add_argument("--level", choices=LEVELS, default="exact", help="verify: " + LEVEL_HELP)
    vc.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                    help="run: seconds the implementation may take per case")
    vc.add_argument("--sgd", action="store_true",
                    help="the run vectors of SGD with options (spec/protocol.md R6; --dir then "
                    "names their folder, default spec/vectors/sgd): write, check, run an "
                    "implementation's step_run and step_from (in this process), verify (also "
                    "chosen by a results file that says \"vectors\": \"sgd\")")
    rp = sub.add_parser("replay", help="run one case on an implementation and show every "
                        "quantity against its exact value and bound")
    rp.add_argument("impl", nargs="?", help=IMPL_HELP)
    rp.add_argument("--cmd", help="a program speaking the process protocol, instead of IMPL")
    rp.add_argument("--dtype", type=_one_format, required=True)
    rp.add_argument("--case", default=None, help="w,b,x,t,lr as hex or decimal literals")
    rp.add_argument("--options", default=None, metavar="SPEC",
                    help="replay a run of SGD with these options (with --init and --data)")
    rp.add_argument("--init", default=None, metavar="W0,B0", help="a run's initial parameters")
    rp.add_argument("--data", default=None, metavar="X,T,LR;...", help="a run's steps")
    rp.add_argument("--from-state", default=None, metavar="W,B,BUF_W,BUF_B",
                    help="one step of a run from this state (buffers 'none' for no buffer), "
                         "with --options and --case=x,t,lr, through the implementation's "
                         "step_from")
    rp.add_argument("--model", type=_model(), default="ieee")
    rp.add_argument("--level", choices=LEVELS, default="exact", help=LEVEL_HELP)
    rp.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                    help="seconds the implementation may take per call")
    sd = sub.add_parser("soundness", help="measure soundness and tightness of the bounds on "
                        "many exact-arithmetic cases (slow: run it behind a marker, not in CI)")
    sd.add_argument("--dtype", type=_formats, default=list(FORMATS), help="comma-separated formats")
    # 1,000,008 = 9 regimes x 111,112: every regime gets the same share (the recorded run)
    sd.add_argument("--cases", type=_positive, default=1_000_008, help="cases per format")
    sd.add_argument("--seed", type=_nonnegative, default=20261126)
    sd.add_argument("--workers", type=_positive, default=os.cpu_count() or 1)
    sd.add_argument("--scheduler", metavar="ADDRESS", default=None, help=SCHEDULER_HELP)
    sd.add_argument("--torch-cases", type=_nonnegative, default=None,
                    help="cases for the torch implementations (default: all for float32, a "
                    "tenth for the other formats)")
    sd.add_argument("--output", default=None,
                    help="JSON record to merge the results into (per format; default "
                         "spec/data/soundness.json, or spec/data/run_soundness.json with --runs)")
    sd.add_argument("--runs", action="store_true",
                    help="the bounds of a step of a run of SGD with options (spec/tolerances.md "
                         "2.8) instead: --cases steps per format and option set, every legal "
                         "evaluation judged")
    sd.add_argument("--convention", default="torch", choices=CONVENTION_CHOICES,
                    help="with --runs: the convention of the option sets (spec/neuron.md 8.6; "
                         "default torch)")
    sd.add_argument("--options", action="append", default=[], metavar="SPEC",
                    help="with --runs: measure these option sets (repeatable; values rounded "
                         "to binary64 under hyper-binary64; default: the convention's default "
                         "sets)")
    sd.add_argument("--append", action="store_true",
                    help="add this run's cases to the recorded ones (use another --seed)")
    sd.add_argument("--model", type=_model(), default="ieee",
                    help="with --runs: the model the bounds and legal evaluations are of "
                         "(e.g. ieee+hyper-binary64; recorded apart from ieee's)")
    sw = sub.add_parser("sweep", help="stream many seeded cases through an implementation "
                        "(batch callable where offered) and the batch reference")
    sw.add_argument("impl", help=IMPL_HELP)
    sw.add_argument("--dtype", type=_one_format, required=True)
    sw.add_argument("--cases", type=_positive, default=None,
                    help="e.g. 1e8 (default 1e6; with --exhaustive, every case)")
    sw.add_argument("--seed", type=_nonnegative, default=0)
    sw.add_argument("--workers", type=_positive, default=1, help="processes (one core each)")
    sw.add_argument("--scheduler", metavar="ADDRESS", default=None, help=SCHEDULER_HELP)
    sw.add_argument("--model", type=_model(), default="ieee",
                    help="tolerance model (the batch path covers ieee and strict, with +wide "
                    "except in float64)")
    sw.add_argument("--level", choices=LEVELS, default="exact", help=LEVEL_HELP)
    sw.add_argument("--scalar", action="store_true",
                    help="call the step callable case by case even if a batch one exists")
    sw.add_argument("--chunk", type=_positive, default=None, help="cases per chunk")
    sw.add_argument("--first-chunk", type=_nonnegative, default=0,
                    help="start at this chunk (a failed chunk's replay command sets it)")
    sw.add_argument("--ratios-every", metavar="K", type=_positive, default=RATIOS_EVERY,
                    help=f"compute the error/bound of every K-th case (and of every "
                    f"case the exact level leaves); the exact level decides the others' "
                    f"values, within their bounds by the soundness theorem (default "
                    f"{RATIOS_EVERY}; 1: every case, the bound chain on each)")
    sw.add_argument("--timeout", type=_seconds, default=CHUNK_TIMEOUT,
                    help=f"seconds a chunk may take before it counts as hung (default "
                    f"{CHUNK_TIMEOUT:g})")
    sw.add_argument("--exhaustive", metavar="A,B", default=None,
                    help="every pair of finite values of inputs A and B (float16, bfloat16), "
                    "e.g. w,x; the other inputs from --grid, or --fix")
    sw.add_argument("--fix", metavar="NAME=VALUE,...", default=None,
                    help="with --exhaustive: fix other inputs, e.g. b=0,t=1,lr=0x1.9ap-4")
    sw.add_argument("--grid", default=None,
                    help="with --exhaustive: the named grid of the other inputs "
                    "(default, small)")
    sw.add_argument("--run", action="store_true",
                    help="sweep steps of runs of SGD with options instead (spec/neuron.md 8): "
                         "each step from a drawn state, through the implementation's "
                         "step_from_batch (spec/protocol.md R4)")
    sw.add_argument("--options", action="append", default=[], metavar="SPEC",
                    help="with --run: an option set, e.g. momentum=0.9,nesterov (repeatable: "
                         "one sweep each; implies --run; default: the convention's default "
                         "sets, cases.options.default_sets)")
    sw.add_argument("--buffer-format", default=None, metavar="FORMAT",
                    help="with --run: the declared format of the momentum buffers")
    sw.add_argument("--steps", type=_positive, default=None, metavar="K",
                    help="with --run: sweep whole runs of K steps instead, through the "
                         "implementation's step_run_batch (else its step_run, run by run), "
                         "each step judged from the state it reported before (--cases counts "
                         "steps)")
    sw.add_argument("--convention", default=None, choices=CONVENTION_CHOICES,
                    help="with --run: the declared convention (spec/neuron.md 8.6; default "
                         "torch; implies --run)")
    sw.add_argument("--json", metavar="FILE", help="write the result as JSON")
    sw.add_argument("--record", metavar="FILE", nargs="?", const="spec/data/sweeps.json",
                    help="merge the result into FILE (default spec/data/sweeps.json), from "
                    "which spec/tolerances.md's sweep table is rendered")
    cc = sub.add_parser("crosscheck", help="compare the batch verdict with the scalar (mpmath) "
                        "one, case by case, on outputs placed around the bounds")
    cc.add_argument("--dtype", type=_formats, default=list(FORMATS))
    cc.add_argument("--cases", type=_positive, default=10_000, help="cases per format")
    cc.add_argument("--seed", type=_nonnegative, default=0)
    cc.add_argument("--workers", type=_positive, default=1)
    cc.add_argument("--scheduler", metavar="ADDRESS", default=None, help=SCHEDULER_HELP)
    cc.add_argument("--record", metavar="FILE", nargs="?", const="spec/data/crosscheck.json",
                    help="write the counts to FILE (default spec/data/crosscheck.json)")
    pl = sub.add_parser("plots", help="draw spec/plots/<format>.png: error/bound against "
                        "conditioning, with assert_close's defaults for comparison")
    pl.add_argument("--dtype", type=_formats, default=list(FORMATS))
    pl.add_argument("--dir", default="spec/plots")
    pl.add_argument("--check", action="store_true",
                    help="exit 1 if a committed picture's data digest is stale (no drawing)")
    tb = sub.add_parser("tables", help="write spec/tolerances.md from the recorded measurements")
    tb.add_argument("--data", default="spec/data", help="the folder of the records")
    tb.add_argument("--output", default="spec/tolerances.md")
    tb.add_argument("--check", action="store_true",
                    help="exit 1 if the output file differs from what would be written")
    return parser


# ---- the handlers -------------------------------------------------------------------------------

def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc}); choose a writable "
                         "path") from None


def _writable(*paths: "str | None") -> None:
    """Refuse, before a run, an output path the run could not write at its end."""
    for path in paths:
        if not path:
            continue
        p = Path(path)
        folder = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise UsageError(f"{path} is a folder; give a file name")
        if not folder.is_dir():
            raise UsageError(f"cannot write {path}: no folder {folder}")
        if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
            raise UsageError(f"cannot write {path}: permission denied; choose a writable path")


def _encodable(text: str, stream: Any) -> bool:
    """Whether ``stream`` can write ``text`` (a terminal in a narrow encoding cannot show ✓)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _command_line(argv: "list[str] | None") -> str:
    return "neuronspec " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                              else sys.argv[1:]))


def _stale(what: str, how: str) -> int:
    print(f"neuronspec: stale: {what}; regenerate with `{how}` and commit", file=sys.stderr)
    return 1


def _example(args, argv) -> int:
    from .runs.example import example_sections, render_example

    print(render_example(example_sections(args.dtype)))
    return 0


def _implementations(specs: list[str], commands: list[str], timeout: float,
                     meanwhile: Callable[[], Any] = lambda: None,
                     runs: bool = False) -> tuple[list, Any]:
    """Every implementation under test, each in its own supervised process, and what
    ``meanwhile()`` returns: it runs while the processes load (they load at once)."""
    from .implementations import BUNDLED, supervised
    from .implementations.process import ProcessImplementation

    impls = [supervised(spec, timeout, wait=False, runs=runs) for spec in specs]
    impls += [ProcessImplementation(cmd, timeout=timeout, runs=runs) for cmd in commands]
    bundled = not impls
    if bundled:
        for name in BUNDLED:
            try:
                impls.append(supervised(name, timeout, wait=False, runs=runs))
            except NeuronspecError as exc:
                print(f"neuronspec check: skipping {name}: {exc}", file=sys.stderr)
    extra = meanwhile()
    ready = []
    for impl in impls:
        try:
            impl.wait_ready()
        except NeuronspecError as exc:
            if not bundled:
                raise
            print(f"neuronspec check: skipping {impl.name}: {exc}", file=sys.stderr)
            continue
        ready.append(impl)
    return ready, extra


def _vector_set(directory: "str | None"):
    from .runs import vectors

    if directory == "":
        return None
    return vectors.load(Path(directory) if directory else None)


def _check(args, argv) -> int:
    from .artefacts import jsontext
    from .artefacts.html import render_html
    from .artefacts.junit import render_junit
    from .artefacts.report import render_markdown, render_text, summary_line
    from .runs.check import CONFORMANT, NON_CONFORMANT, check

    _writable(args.json, args.markdown, args.junit, args.summary, args.html)
    option_sets = _run_options(args)
    runs = args.run or bool(option_sets)
    impls, vectors = _implementations(args.impl, args.cmd, args.timeout,
                                      meanwhile=lambda: _vector_set(args.vectors), runs=runs)

    def progress(what: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rchecking {what} ...".ljust(60))
            sys.stderr.flush()

    report = check(impls, formats=args.dtype, model=args.model, examples=args.examples,
                   seed=args.seed, vectors=vectors, progress=progress, level=args.level,
                   sweep=args.sweep, sweep_timeout=max(30.0, 10 * args.timeout))
    if runs and "interrupted" not in report:
        _run_phase(report, impls, args, option_sets or None, progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")
    print(render_text(report))
    if runs:
        from .runs.sgd import format_runs

        for entry in report.get("runs", []):
            print("\n".join(format_runs(entry["results"], entry["implementation"])))
    summary = summary_line(report)
    print(summary if _encodable(summary, sys.stdout) else summary_line(report, ascii=True))
    if args.json:
        _write(args.json, jsontext.dumps(report, indent=1) + "\n")
    if args.markdown:
        _write(args.markdown, render_markdown(report))
    if args.junit:
        _write(args.junit, render_junit(report))
    if args.summary:
        _write(args.summary, summary + "\n")
    if args.html:
        _write(args.html, render_html(report))
    if "interrupted" in report:
        return _signal_status(report["interrupted"])
    return {CONFORMANT: 0, NON_CONFORMANT: 1}.get(report["verdict"], 2)


def _run_options(args) -> list:
    """The option sets named by ``--options``, under ``--convention`` (a usage error for a bad
    SPEC, a set outside the convention's domain or an unchecked declaration); empty where none
    is named and no convention declared (the default sets)."""
    from .cases.options import check_sets, declared_sets

    if args.buffer_format is not None and args.buffer_format not in FORMATS:
        raise UsageError(f"--buffer-format: unknown format {args.buffer_format!r}; choose one of "
                         f"{', '.join(FORMATS)}")
    if not args.options and args.convention is None:
        return []
    try:
        sets = declared_sets(args.options, args.convention)
        check_sets(sets, args.dtype or list(FORMATS), args.model, args.buffer_format)
        return sets
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _run_phase(report: dict, impls: list, args, option_sets, progress) -> None:
    """Runs of SGD with options on each implementation: ``report["runs"]``, and the verdict
    and the statuses combined with the one-step check's."""
    from .artefacts import jsontext
    from .data import validate
    from .runs.check import CONFORMANT, VALIDATE, overall
    from .runs.sgd import check_runs

    formats = args.dtype or list(FORMATS)
    entries, verdicts = [], [report["verdict"]]
    for impl in impls:
        results = check_runs(impl, formats, option_sets, runs=args.runs, steps=args.steps,
                             seed=args.seed, model=args.model, progress=progress,
                             buffer_format=args.buffer_format, level=args.level)
        for r in results:
            if r.unsupported and r.unsupported.startswith("offers no step_run"):
                r.unsupported = "offers no step_run (spec/protocol.md R2)"
        verdict = overall([r.verdict for r in results])
        verdicts.append(verdict)
        entries.append({"implementation": impl.name, "verdict": verdict,
                        "results": [r.as_dict() for r in results]})
    report["runs"] = entries
    report["verdict"] = overall(verdicts)
    report["conformant"] = report["verdict"] == CONFORMANT
    report["settings"]["runs"] = {"runs": args.runs, "steps": args.steps,
                                  "bufferFormat": args.buffer_format,
                                  "convention": args.convention or "torch",
                                  "options": [s.spec() for s in option_sets] if option_sets
                                  else "default"}
    if os.environ.get(VALIDATE):  # (as check() validates its own part)
        validate(jsontext.standard(report), "report.schema.json")


def _vectors(args, argv) -> int:
    """``neuronspec vectors ACTION``: the one-step vectors, or with ``--sgd`` (or a results
    file that says ``"vectors": "sgd"``) the run vectors (spec/protocol.md R6)."""
    from .runs import sgd_vectors as S
    from .runs import vectors as V

    directory = Path(args.dir) if args.dir else None
    sgd = args.sgd or bool(args.action == "verify" and args.target
                           and S.results_kind(Path(args.target)) == "sgd")
    M, flag = (S, " --sgd") if sgd else (V, "")
    if args.action == "write":
        for path in M.write(directory):
            print(f"neuronspec vectors: wrote {path}")
        return 0
    if args.action == "check":
        stale = M.stale(directory)
        if stale:
            return _stale(", ".join(stale), S.GENERATED_BY if sgd else "neuronspec vectors write")
        print(f"neuronspec vectors: {'the run vectors are ' if sgd else ''}up to date")
        return 0
    if not args.target:
        raise UsageError(f"give {'an implementation' if args.action == 'run' else 'a results file'}"
                         f": neuronspec vectors {args.action} TARGET{flag}")
    vectors = M.load(directory)
    if args.action == "run":
        from .implementations import supervised

        _writable(args.output)
        impl = supervised(args.target, args.timeout, runs=sgd)  # (runs: protocol version 2)
        try:
            results = M.run_implementation(impl, vectors, list(vectors))
        finally:
            impl.close()
        if sgd and results and all(r.get("unsupported", "").startswith("offers no step_")
                                   for r in results):
            raise UsageError(f"{impl.name} offers neither step_run nor step_from "
                             "(spec/protocol.md R2, R3): nothing to run on the run vectors")
        head = {"vectors": "sgd"} if sgd else {}
        text = json.dumps({**head, "implementation": impl.name, "results": results},
                          indent=1) + "\n"
        if args.output:
            _write(args.output, text)
        else:
            sys.stdout.write(text)
        return 0
    return (_verify_sgd_vectors if sgd else _verify_vectors)(args, vectors)


def _verify_vectors(args, vectors) -> int:
    """``neuronspec vectors verify RESULTS``: the one-step vectors' verdict."""
    from .runs import vectors as V

    summary = V.verify(V.load_results(Path(args.target)), vectors, args.level)
    for f in summary["failures"][:20]:
        print(f"FAIL {f['format']} tcId {f['tcId']}: {f['reason']}")
    if len(summary["failures"]) > 20:
        print(f"... and {len(summary['failures']) - 20} more")
    print(f"neuronspec vectors verify: {summary['checked']} checked, {summary['passed']} passed, "
          f"{summary['failed']} failed (bounded level), {summary['unexplained']} with values no "
          f"admitted evaluation gives (exact level), {summary['missing']} missing, "
          f"{summary['duplicates']} duplicates, {summary['unknown']} unknown ids, "
          f"{summary['malformed']} malformed; level {summary['level']} decides")
    for fmt_name in summary["notRun"]:
        why = summary["unsupported"].get(fmt_name)
        print(f"  {fmt_name}: not run" + (f" (unsupported: {why})" if why else ""))
    status = V.verified(summary)
    if status == 2:
        print("neuronspec vectors verify: nothing was checked: the results hold no result of a "
              "vector", file=sys.stderr)
    return status


def _verify_sgd_vectors(args, vectors) -> int:
    """``neuronspec vectors verify RESULTS --sgd``: the run vectors' verdict."""
    from .runs import sgd_vectors as S
    from .runs import vectors as V

    summary = S.verify(V.load_results(Path(args.target)), vectors, args.level)
    for f in summary["failures"][:20]:
        print(f"FAIL {f['name']}: {f['reason']}" + (f" [{f['comment']}]" if f.get("comment")
                                                   else ""))
    if len(summary["failures"]) > 20:
        print(f"... and {len(summary['failures']) - 20} more")
    print(f"neuronspec vectors verify --sgd: {summary['checked']} tests checked "
          f"({summary['stepsByVector']} steps judged by the vectors, "
          f"{summary['stepsByReference']} from the reported state), {summary['passed']} passed, "
          f"{summary['failed']} failed (bounded level), {summary['unexplained']} with values no "
          f"admitted evaluation gives (exact level), {summary['missing']} missing, "
          f"{summary['duplicates']} duplicates, {summary['unknown']} unknown ids, "
          f"{summary['malformed']} malformed; level {summary['level']} decides")
    for fmt_name, reasons in sorted(summary["unsupported"].items()):
        for reason, n in reasons.items():
            print(f"  {fmt_name}: {n} tests not checked ({reason})")
    for fmt_name in summary["notRun"]:
        print(f"  {fmt_name}: not run")
    status = V.verified(summary)
    if status == 2:
        print("neuronspec vectors verify --sgd: nothing was checked: the results hold no result "
              "of a run vector", file=sys.stderr)
    return status


def _replay(args, argv) -> int:
    from reference.formats import get_format

    from .implementations import supervised
    from .implementations.process import ProcessImplementation
    from .runs.replay import replay

    fmt = get_format(args.dtype)
    if args.from_state is not None:
        return _replay_from_state(args, fmt)
    if args.options is not None or args.init is not None or args.data is not None:
        return _replay_run(args, fmt)
    if args.case is None:
        raise UsageError("give --case w,b,x,t,lr (or --options, --init and --data for a run)")
    case = _values(args.case, INPUTS, fmt, "--case")
    if bool(args.cmd) == bool(args.impl):
        raise UsageError("give either IMPL or --cmd COMMAND")
    impl = (ProcessImplementation(args.cmd, timeout=args.timeout) if args.cmd
            else supervised(args.impl, args.timeout))
    try:
        text, status = replay(impl, fmt, tuple(case), get_model(args.model), args.level)
    finally:
        impl.close()
    print(text)
    return status


def _values(text: str, names: tuple, fmt, what: str) -> list[float]:
    """Comma-separated literals, each exact first (an absurd exponent is refused there), then
    rounded to ``fmt``; a usage error naming ``what`` and the value."""
    from reference.formats import parse_exact

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(names):
        raise UsageError(f"{what} needs {len(names)} values {','.join(names)}, got {len(parts)}")
    out = []
    for name, part in zip(names, parts):
        try:
            value = fmt.round(parse_exact(part))
        except (ValueError, ZeroDivisionError) as exc:
            raise UsageError(f"{what}: {name}: {exc}") from None
        if not math.isfinite(value):
            raise UsageError(f"{what}: {name} = {part!r} is not a finite {fmt.name} value")
        out.append(-0.0 if value == 0 and part.startswith("-") else value)
    return out


def _step_values(text: str, fmt, model: str, what: str) -> tuple[float, float, float]:
    """A step's ``x,t,lr`` (:func:`_values`; lr a binary64 value under lr-binary64)."""
    from reference.formats import FLOAT64

    # (in the format first: an lr it overflows cannot be used there, under any model)
    x, t, lr = _values(text, ("x", "t", "lr"), fmt, what)
    if get_model(model).lr_binary64:
        lr = _values(text.split(",", 2)[-1], ("lr",), FLOAT64, what)[0]
    return x, t, lr


def _replay_run(args, fmt) -> int:
    """``neuronspec replay IMPL --dtype F --options SPEC --init=w0,b0 --data='x,t,lr;...'``:
    the run on the implementation alone, every step judged from its reported state."""
    from reference.optim_judge import judge_run

    from .cases.options import parse_spec, reference_options
    from .implementations import supervised
    from .implementations.process import ProcessImplementation
    from .runs.sgd import collect_run

    if args.init is None or args.data is None:
        raise UsageError("a run needs --init=w0,b0 and --data='x,t,lr;x,t,lr;...'")
    try:
        options = parse_spec(args.options or "").for_format(
            fmt, hyper=get_model(args.model).hyper_binary64)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    w0, b0 = _values(args.init, ("w0", "b0"), fmt, "--init")
    data = [_step_values(step, fmt, args.model, f"--data step {k}")
            for k, step in enumerate(args.data.split(";"), 1) if step.strip()]
    if not data:
        raise UsageError("--data holds no step")
    if bool(args.cmd) == bool(args.impl):
        raise UsageError("give either IMPL or --cmd COMMAND")
    impl = (ProcessImplementation(args.cmd, timeout=args.timeout, runs=True) if args.cmd
            else supervised(args.impl, args.timeout, runs=True))
    try:
        reported, error = collect_run(impl, fmt.name, w0, b0, data, options)
    except NotImplementedError as exc:
        print(f"{impl.name} does not support this run: {exc}")
        return 2
    finally:
        impl.close()
    verdict = judge_run(fmt, w0, b0, data[:len(reported)], reference_options(options),
                        reported, get_model(args.model), exact_level=True)
    print(f"{impl.name}, {fmt.name}, options {args.options or '(none)'}: "
          f"{len(data)} steps from w0={w0!r}, b0={b0!r}")
    for k, (step, explained) in enumerate(zip(verdict.steps, verdict.explained), 1):
        x, t, lr = data[k - 1]
        print(f"step {k} (x={x!r}, t={t!r}, lr={lr!r}):")
        for q, j in step.items():
            mark = "ok" if j.ok else ("FAIL" if j.violation else "outside the domain")
            legal = (" = " + ", ".join(explained[q][:2])) if explained.get(q) else (
                " (no legal evaluation gives it)" if j.ok else "")
            print(f"  {q:6} {j.observed!r:>26}  exact {float(j.exact)!r:>26}  "
                  f"err/bound {j.ratio:.3g}  {mark}{legal}")
    if verdict.stopped:
        print(f"judging stopped {verdict.stopped}")
    if error is not None:
        print(f"the run ended at step {error.step}: {error}")
    failure = verdict.first_failure()
    if failure is not None:
        k, j = failure
        print(f"FAIL: step {k}, {j.quantity}: {j.why}")
        return 1
    if error is not None and not error.overflow:
        return 1
    return 0


def _replay_from_state(args, fmt) -> int:
    """``neuronspec replay IMPL --dtype F --options SPEC --from-state=w,b,buf_w,buf_b
    --case=x,t,lr``: one step of a run from a given state, through ``step_from`` (R3)."""
    from reference.optim import State
    from reference.optim_judge import judge_sgd_step
    from reference.optim_rounded import sgd_legal

    from .cases.options import parse_spec, reference_options
    from .implementations import supervised
    from .implementations.process import ProcessImplementation

    if args.case is None:
        raise UsageError("a step from a state needs --case=x,t,lr")
    try:
        options = parse_spec(args.options or "").for_format(
            fmt, hyper=get_model(args.model).hyper_binary64)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    parts = [p.strip() for p in args.from_state.split(",")]
    if len(parts) != 4:
        raise UsageError(f"--from-state needs 4 values w,b,buf_w,buf_b, got {len(parts)}")
    w, b = _values(",".join(parts[:2]), ("w", "b"), fmt, "--from-state")
    bufs = [None if p.lower() == "none" else _values(p, (name,), fmt, "--from-state")[0]
            for p, name in zip(parts[2:], ("buf_w", "buf_b"))]
    x, t, lr = _step_values(args.case, fmt, args.model, "--case")
    if bool(args.cmd) == bool(args.impl):
        raise UsageError("give either IMPL or --cmd COMMAND")
    impl = (ProcessImplementation(args.cmd, timeout=args.timeout, runs=True) if args.cmd
            else supervised(args.impl, args.timeout, runs=True))
    state = {"w": w, "b": b, "buf_w": bufs[0], "buf_b": bufs[1]}
    try:
        out = impl.step_from_state(fmt.name, state, x, t, lr, options)
    except NotImplementedError as exc:
        print(f"{impl.name} does not support this step: {exc}")
        return 2
    except NeuronspecError as exc:
        print(f"FAIL: {exc}")
        return 1
    finally:
        impl.close()
    reference = reference_options(options)
    start = State(w, b, *bufs)
    try:
        legal = sgd_legal(fmt, start, x, t, lr, reference, get_model(args.model))
        step = judge_sgd_step(fmt, start, x, t, lr, reference, out, get_model(args.model),
                              legal=legal)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"{impl.name}, {fmt.name}, options {args.options or '(none)'}: one step from w={w!r}, "
          f"b={b!r}, buf_w={bufs[0]!r}, buf_b={bufs[1]!r} with x={x!r}, t={t!r}, lr={lr!r}")
    for q, j in step.items():
        names = legal.explain(q, j.observed).variants if q in legal.values else ()
        mark = "ok" if j.ok else ("FAIL" if j.violation else "outside the domain")
        print(f"  {q:6} {j.observed!r:>26}  exact {float(j.exact)!r:>26}  err/bound "
              f"{j.ratio:.3g}  {mark}" + (" = " + ", ".join(names[:2]) if names else ""))
    bad = next((j for j in step.values() if j.violation), None)
    if bad is not None:
        print(f"FAIL: {bad.quantity}: {bad.why}")
        return 1
    return 0


def _soundness(args, argv) -> int:
    from .artefacts import records
    from .runs.soundness import record, soundness_report

    if args.runs:
        return _soundness_runs(args)
    if args.model != "ieee" or args.options:
        raise UsageError("--model and --options apply to --runs (the one-step measurement "
                         "covers every model)")
    args.output = args.output or "spec/data/soundness.json"
    records.prepare("soundness", Path(args.output))
    torch_cases = {name: (min(args.torch_cases, args.cases) if args.torch_cases is not None
                          else args.cases if name == "float32" else args.cases // 10)
                   for name in args.dtype}
    command = ["neuronspec", "soundness", "--dtype", ",".join(args.dtype), "--cases",
               str(args.cases), "--seed", str(args.seed)]
    if args.torch_cases is not None:
        command += ["--torch-cases", str(args.torch_cases)]
    if args.append:
        command.append("--append")
    report = soundness_report(args.dtype, args.cases, args.seed, args.workers, torch_cases,
                              scheduler=args.scheduler, started=_announce("soundness"))
    report["command"] = " ".join(command)
    record(report, Path(args.output), args.append)
    bad = sum(st["violations"] for f in report["formats"].values()
              for qs in f["subjects"].values() for st in qs.values())
    print(f"neuronspec soundness: {bad} violations; results in {args.output}")
    return 1 if bad else 0


def _soundness_runs(args) -> int:
    """``neuronspec soundness --runs``: the run bounds per format and option set."""
    from .artefacts import records
    from .runs import run_soundness

    if args.append or args.torch_cases is not None:
        raise UsageError("--append and --torch-cases apply to the one-step measurement, not to "
                         "--runs")
    from .cases.options import check_sets, declared_sets

    try:  # (torch's default sets: None, recorded by index as before)
        sets = declared_sets(args.options, args.convention) \
            if args.options or args.convention != "torch" else []
        check_sets(sets, args.dtype, args.model)  # (a value a format overflows: a usage error)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    output = Path(args.output or "spec/data/run_soundness.json")
    records.prepare("run_soundness", output)
    report = run_soundness.soundness_runs_report(args.dtype, args.cases, args.seed,
                                                 args.workers, args.scheduler,
                                                 sets=sets or None, convention=args.convention,
                                                 model=args.model)
    run_soundness.record(report, output)
    bad = sum(r["violations"] for sets in report["formats"].values() for r in sets.values())
    for name, sets in report["formats"].items():
        for spec, r in sets.items():
            if r["first"]:
                print(f"VIOLATION {name} {spec}: {r['first']}")
    print(f"neuronspec soundness --runs: {bad} violations in "
          f"{sum(r['values'] for sets in report['formats'].values() for r in sets.values()):,} "
          f"values of legal evaluations ({report['seconds']} s); results in {output}")
    return 1 if bad else 0


def _sweep(args, argv) -> int:
    from .artefacts import jsontext, records
    from .cases.exhaustive import Exhaustive
    from .runs.sweep import CHUNK, planned_cases, record, render, sweep

    _writable(args.json)
    if args.record:
        records.prepare("sweeps", Path(args.record))
    source = None
    if args.exhaustive is not None:
        source = Exhaustive.parse(args.dtype, args.exhaustive, args.fix, args.grid)
        if args.scalar:
            raise UsageError("--exhaustive runs the batch callable: drop --scalar")
    elif args.fix is not None or args.grid is not None:
        raise UsageError("--fix and --grid go with --exhaustive A,B (e.g. --exhaustive w,x)")
    if args.run or args.options or args.buffer_format or args.steps or args.convention:
        if source is not None or args.scalar:
            raise UsageError("--run sweeps steps from drawn states through step_from_batch: "
                             "drop --exhaustive and --scalar")
        return _sweep_runs(args, argv)
    chunk = args.chunk or CHUNK
    cases = args.cases if args.cases is not None or source is not None else 1_000_000
    expected = planned_cases(cases, source, args.first_chunk, chunk)

    started = _announce("sweep")

    def show(total, elapsed):
        rate = total.cases / elapsed if elapsed else 0.0
        left = (expected - total.cases) / rate if rate else 0.0
        share = total.cases / expected if expected else 1.0
        bar = "#" * int(20 * share) + "-" * (20 - int(20 * share))
        print(f"\r  [{bar}] {total.cases:,}/{expected:,} cases  {rate / 1e6:.2f}M/s  "
              f"ETA {_duration(left)}  violations {total.violations}   ", end="",
              file=sys.stderr, flush=True)

    progress = show if sys.stderr.isatty() else None
    try:
        result = sweep(args.impl, args.dtype, cases, args.seed, args.workers, args.model,
                       args.scalar, chunk, progress, args.timeout, args.first_chunk,
                       scheduler=args.scheduler, started=started, source=source,
                       ratios_every=args.ratios_every)
    finally:
        if progress is not None:
            print(file=sys.stderr)
    command = _command_line(argv)
    print(render(result, command))
    if args.json:
        _write(args.json, jsontext.dumps(dict(result.as_dict(), command=command), indent=1)
               + "\n")
    complete = not (result.stopped or result.interrupted) and args.first_chunk == 0
    if args.record and complete:
        record(result, command, Path(args.record))
        print(f"recorded in {args.record}")
    elif args.record:
        print(f"not recorded in {args.record}: the sweep did not run from its first chunk to "
              "its last")
    if result.interrupted:
        return _signal_status(result.interrupted)
    return 1 if result.failures(args.level) or result.stopped else 0


def _sweep_runs(args, argv) -> int:
    """``neuronspec sweep IMPL --run``: per option set, a sweep of steps of runs."""
    import argparse

    from .artefacts import jsontext
    from .cases.options import DEFAULT_SETS
    from .runs.sweep import Sweeper, record, render, run_steps

    from dataclasses import replace

    from reference.batch.chain import check_model

    shim = argparse.Namespace(convention=args.convention, buffer_format=args.buffer_format,
                              options=args.options, dtype=[args.dtype], model=args.model)
    sets = _run_options(shim) or list(DEFAULT_SETS)
    try:  # (the batch reference: a run's lr-binary64 is its optimiser's, which it covers)
        check_model(replace(get_model(args.model), lr_binary64=False), FORMATS[args.dtype])
    except ValueError as exc:
        raise UsageError(f"{exc}; `neuronspec check --run` checks runs under it") from None
    cases = args.cases if args.cases is not None else 1_000_000
    command = _command_line(argv)
    results, status = [], 0
    with Sweeper(args.impl, args.model, args.workers, timeout=args.timeout,
                 scheduler=args.scheduler) as sweeper:
        _announce("sweep")(sweeper)
        about = sweeper.about()
        if args.steps and not (about.get("run_batch") or about.get("runs")):
            raise UsageError(f"{args.impl} offers no step_run_batch and no step_run "
                             f"(spec/protocol.md R2, R4): a sweep of whole runs needs one")
        if not args.steps and not about.get("from_batch"):
            raise UsageError(f"{args.impl} offers no step_from_batch (spec/protocol.md R4): a "
                             f"sweep of steps of runs needs it; `neuronspec check --run` checks "
                             f"its runs (or sweep whole runs: --steps K)")
        for option_set in sets:
            options = option_set.for_format(args.dtype, args.buffer_format,
                                            get_model(args.model).hyper_binary64)
            result = run_steps(sweeper, args.dtype, cases, args.seed, options,
                               option_set.spec(), args.chunk or 0, args.first_chunk,
                               steps=args.steps or 0)
            print(render(result, command))
            results.append(result)
            declined = sum(result.declined.values()) == result.cases
            if args.record and not (result.stopped or result.interrupted or declined) \
                    and args.first_chunk == 0:
                record(result, command, Path(args.record))
            if result.interrupted:
                return _signal_status(result.interrupted)
            if result.failures(args.level) or result.stopped:
                status = 1
            elif declined and status == 0:  # nothing of this option set was checked
                status = 2
    if args.json:
        _write(args.json, jsontext.dumps([dict(r.as_dict(), command=command) for r in results],
                                         indent=1) + "\n")
    if args.record:
        print(f"recorded in {args.record}")
    return status


def _announce(command: str):
    """What a campaign says once its workers are up, on standard error: what runs the chunks
    (on a terminal, or where it is news: a cluster, or no Dask), the Dask dashboard's
    address where there is one."""
    def started(campaign) -> None:
        if sys.stderr.isatty() or "embedded" not in campaign.engine:
            print(f"neuronspec {command}: chunks on {campaign.engine}", file=sys.stderr)
        if campaign.dashboard:
            print(f"neuronspec {command}: Dask dashboard at {campaign.dashboard}",
                  file=sys.stderr)
    return started


def _duration(seconds: float) -> str:
    """12s, 3m05s, 2h07m: an ETA at a glance."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _crosscheck(args, argv) -> int:
    from .artefacts import records
    from .runs.crosscheck import crosscheck

    if args.record:
        records.prepare("crosscheck", Path(args.record))
    results = {}
    for name in args.dtype:
        counts = crosscheck(name, args.cases, args.seed, args.workers,
                            scheduler=args.scheduler, started=_announce("crosscheck"))
        results[name] = counts
        print(f"{name:9} {counts['cases']:>10,} cases  {counts['checked']:>11,} values checked  "
              f"{counts['violations']:>10,} violations  {counts['out_of_domain']:>10,} outside "
              f"the domain  {counts['resolved']:>7,} by the scalar path  "
              f"disagreements {counts['disagreements']}")
        for example in counts["examples"]:
            print(f"  disagreement: {example}")
    if args.record:
        records.write("crosscheck", {"command": _command_line(argv), "formats": results,
                                     "machine": records.machine()}, Path(args.record))
    return 1 if any(c["disagreements"] for c in results.values()) else 0


def _plots(args, argv) -> int:
    from .artefacts.plots import digest, plot_data, png_text, write_plot

    stale = []
    for name in args.dtype:
        path = Path(args.dir) / f"{name}.png"
        data = plot_data(name)
        if args.check:
            try:
                text = png_text(path).get("Description", "")
            except (FileNotFoundError, ValueError) as exc:
                text = str(exc)
            if digest(data) not in text:
                stale.append(str(path))
            continue
        write_plot(data, path)
        print(f"wrote {path}")
    if stale:
        return _stale(", ".join(stale), "neuronspec plots")
    return 0


def _tables(args, argv) -> int:
    from .artefacts.tables import load_records, render

    text = render(load_records(Path(args.data)))
    out = Path(args.output)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != text:
            return _stale(str(out), "neuronspec tables")
        print(f"neuronspec tables: {out} is up to date")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(str(out), text)
    print(f"neuronspec tables: wrote {out}")
    return 0


HANDLERS = {"example": _example, "check": _check, "vectors": _vectors, "replay": _replay,
            "soundness": _soundness, "sweep": _sweep, "crosscheck": _crosscheck,
            "plots": _plots, "tables": _tables}


def _signal_status(name: str) -> int:
    return 128 + int(getattr(signal, name, signal.SIGINT))


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signal.Signals(signum).name, 128 + signum)


def main(argv: "Optional[list[str]]" = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit status.

    SIGINT and SIGTERM stop the run: what it found so far is reported, marked interrupted,
    every child process is ended, and the status is 130 or 143."""
    args = _parser().parse_args(argv)
    command = args.command or "example"
    if args.command is None:
        args.dtype = None
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return HANDLERS[command](args, argv)
    except NeuronspecError as exc:
        print(f"neuronspec {command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0
    except Interrupted as exc:
        print(f"neuronspec {command}: {exc}", file=sys.stderr)
        return exc.status
    finally:
        from .implementations.process import stop_all

        stop_all()
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
