"""``neuronspec check --run``: runs of SGD with options (spec/neuron.md 8, spec/protocol.md R2,
R5, R7) on an implementation, each step judged against the exact step from the state the
implementation reported after the step before (``reference.optim_judge``).

Per format and option set the check draws ``runs`` seeded runs of ``steps`` steps (moderate
values, and y close to t), passes them in sequence through the same implementation (so state
leaking from one run into the next fails the later run's step 1: property ``run-independent``),
repeats the first run at the end and requires the same bits (``run-stateless``), and tallies per
quantity the worst error/bound and the share of values a legal evaluation gives bit for bit.
Each failure names its run, its first failing step and quantity, the reported state it was
judged from, and the command that replays the run.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence


from reference.bounds import OutOfDomain
from reference.formats import Format, as_float, float_hex, get_format
from reference.judge import OUTSIDE_BOUND
from reference.model import Model, get_model
from reference.optim import STEP_QUANTITIES, State
from reference.optim_bounds import check_run_model
from reference.optim_judge import judge_run

from ..cases.options import DEFAULT_SETS, OptionSet, reference_options
from ..cases.runs import binary64_rates, draw_runs, draw_states
from ..errors import ImplementationError, ProcessGaveUp
from ..findings import replay_words

__all__ = ["RunResult", "check_runs", "collect_run", "format_runs",
           "run_replay_command", "from_state_replay_command", "QUANTITIES"]

#: The quantities tallied, in report order.
QUANTITIES = STEP_QUANTITIES
#: Failures kept per format and option set.
KEEP = 5


@dataclass
class QuantityFigures:
    values: int = 0  # values judged by their bound (outside the bounded domain: not counted)
    failed: int = 0  # of them, the violations
    explained: int = 0  # of them, the ones a legal evaluation gives bit for bit
    worst: float = 0.0  # the largest finite error/bound among them


@dataclass
class RunResult:
    """One format and option set of one implementation."""

    fmt: str
    spec: str  # the SPEC naming the option set ('' for every option off)
    options: dict
    runs: int = 0
    steps: int = 0  # steps judged
    unsupported: str = ""  # why the option set is not supported ('' if it is)
    stopped: int = 0  # runs whose judging stopped early (a state not finite)
    failures: list = field(default_factory=list)
    failed_runs: int = 0
    quantities: dict = field(default_factory=lambda: {q: QuantityFigures() for q in QUANTITIES})
    stateless: "bool | None" = None  # the repeated run gave the same bits (None: not tried)
    #: the fingerprint: the legal evaluations that give every value of every judged step (None:
    #: no value yet), so which fusion and constants the implementation's form uses
    consistent: "set | None" = None
    distance: float = 0.0  # largest |w^ - w*| or |b^ - b*| at the last judged step, in ulps
    #: the largest distance / its propagated bound (neuron.md 8.5) over the steps that have
    #: one, and how many steps have one
    distance_over_bound: float = 0.0
    distance_bounded: int = 0
    level: str = "exact"  # which level decides the verdict (both are reported)
    unexplained: int = 0  # values within their bounds that no legal evaluation gives
    #: property step-from (R3): steps from drawn states judged, or why none was
    from_states: int = 0
    from_state_unchecked: str = ""
    failed_from_states: int = 0

    @property
    def verdict(self) -> str:
        if self.failed_runs or self.failed_from_states or self.stateless is False or (
                self.level == "exact" and self.unexplained):
            return "non-conformant"
        return "not checked" if self.unsupported or not self.steps else "conformant"

    def as_dict(self) -> dict:
        return {"format": self.fmt, "options": self.spec or "(none)",
                "values": {k: (float_hex(v) if isinstance(v, float) else v)
                           for k, v in self.options.items()},
                "verdict": self.verdict, "runs": self.runs, "stepsJudged": self.steps,
                "unsupported": self.unsupported or None,
                "stoppedEarly": self.stopped, "failedRuns": self.failed_runs,
                "runStateless": self.stateless, "worstDistanceUlps": self.distance,
                "level": self.level, "unexplained": self.unexplained,
                "stepsFromStates": self.from_states,
                "failedStepsFromStates": self.failed_from_states,
                "stepFromNotChecked": self.from_state_unchecked or None,
                "distanceBounded": self.distance_bounded,
                "worstDistanceOverBound": self.distance_over_bound,
                "evaluations": sorted(self.consistent or (), key=lambda n: (len(n), n)),
                "quantities": {q: {"values": f.values, "failed": f.failed,
                                   "explained": f.explained, "worstErrorOverBound": f.worst}
                               for q, f in self.quantities.items()},
                "failures": self.failures}


def run_replay_command(impl: Any, fmt: Format, options: str, w0: float, b0: float,
                       data: Sequence[tuple[float, float, float]], model: Model) -> str:
    """The command that replays one run on ``impl`` alone (spec/protocol.md R7)."""
    return replay_words(impl, fmt, f"--options={shlex.quote(options or 'momentum=0')} "
                        f"--init={float_hex(w0)},{float_hex(b0)} --data=" + shlex.quote(
                            ";".join(",".join(float_hex(v) for v in d) for d in data)), model)


def from_state_replay_command(impl: Any, fmt: Format, options: str, state: State,
                              step: tuple[float, float, float], model: Model) -> str:
    """The command that replays one step from a state through ``step_from`` (R3, R7)."""
    values = [state.w, state.b, state.buf_w, state.buf_b]
    return replay_words(impl, fmt, f"--options={shlex.quote(options or 'momentum=0')} "
                        "--from-state=" + ",".join("none" if v is None else float_hex(float(v))
                                                   for v in values)
                        + " --case=" + ",".join(float_hex(v) for v in step), model)


def _offers_step_from(impl, fmt: Format, state: State, step: tuple, options: dict) -> bool:
    """Whether the implementation answers a step from ``state`` (the failing one): then a
    failure's replay command is that one step (R7)."""
    try:
        impl.step_from_state(fmt.name, {"w": state.w, "b": state.b, "buf_w": state.buf_w,
                                        "buf_b": state.buf_b}, *step, options)
    except (NotImplementedError, ImplementationError, ProcessGaveUp):
        return False
    return True


def collect_run(impl, fmt: str, w0, b0, data, options
                ) -> tuple[list, "ImplementationError | None"]:
    """The steps a run reported, and the error that ended it early (None: every step)."""
    steps: list = []
    try:
        for out in impl.run(fmt, w0, b0, data, options):
            steps.append(out)
    except ImplementationError as exc:
        return steps, exc
    return steps, None


def _bits(steps: list) -> list:
    return [{q: (None if v is None else float(v).hex()) for q, v in s.items()} for s in steps]


def check_runs(impl, formats: Sequence[str], option_sets: "Sequence[OptionSet] | None" = None,
               *, runs: int = 6, steps: int = 8, seed: int = 0, model: "Model | str" = "ieee",
               progress: "Callable[[str], None] | None" = None,
               buffer_format: "str | None" = None, level: str = "exact") -> list[RunResult]:
    """Run and judge ``runs`` runs of ``steps`` steps per format and option set (default:
    ``cases.options.DEFAULT_SETS``) on ``impl`` (an Implementation or a supervised process).
    ``level``: exact (a value no legal evaluation gives fails, as in the one-step check) or
    bounded (within the bounds)."""
    results = []
    for fmt_name in formats:
        fmt = get_format(fmt_name)
        m = check_run_model(get_model(model), fmt)
        for index, option_set in enumerate(option_sets or DEFAULT_SETS):
            if progress:
                progress(f"{impl.name} {fmt.name} runs {option_set.spec() or '(no options)'}")
            options = option_set.for_format(fmt, buffer_format, m.hyper_binary64)
            result = RunResult(fmt.name, option_set.spec(), options, level=level)
            results.append(result)
            drawn = draw_runs(fmt, seed, runs, steps, index)
            if m.lr_binary64:  # (binary64 learning rates, as the model lets them be)
                drawn = [(w0, b0, [(x, t, float(lr)) for (x, t, _), lr in zip(data, binary64_rates(
                    [lr for *_, lr in data], (seed, index, r)))])
                         for r, (w0, b0, data) in enumerate(drawn)]
            try:
                _check_set(impl, fmt, m, options, result, drawn, (seed, index))
            except ProcessGaveUp as exc:  # it fails every call: a failure, and the end
                result.failed_runs += 1
                result.failures.append({"step": 1, "quantity": "-", "why": str(exc),
                                        "state": {}, "inputs": None, "replay": ""})
                return results
    return results


def _check_set(impl, fmt: Format, model: Model, options: dict, result: RunResult,
               drawn: list, seed: tuple[int, int] = (0, 0)) -> None:
    reference = reference_options(options)
    first_bits = None
    for r, (w0, b0, data) in enumerate(drawn):
        try:
            reported, error = collect_run(impl, fmt.name, w0, b0, data, options)
        except NotImplementedError as exc:
            if r == 0:
                result.unsupported = str(exc) or "declined"
                return
            _fail(result, impl, fmt, model, w0, b0, data, 1, "-", "declined an option set it "
                  f"accepted before: {exc}", State(w0, b0))
            continue
        result.runs += 1
        if r == 0:
            first_bits = _bits(reported)
        verdict = judge_run(fmt, w0, b0, data[:len(reported)], reference, reported, model,
                            exact_level=True)
        result.steps += len(verdict.steps)
        result.stopped += bool(verdict.stopped)
        for k, (step, explained) in enumerate(zip(verdict.steps, verdict.explained), 1):
            for q, j in step.items():
                names = explained.get(q) or ()
                if _tally(result, q, j, names):
                    _fail(result, impl, fmt, model, w0, b0, data, k, q, _unexplained_words(j),
                          _state_before(w0, b0, reported, k), j, counted=False)
                if q in result.quantities and (j.ok or j.violation):
                    result.consistent = set(names) if result.consistent is None else \
                        result.consistent & set(names)
        failure = verdict.first_failure()
        if failure is not None:
            k, j = failure
            state = _state_before(w0, b0, reported, k)
            _fail(result, impl, fmt, model, w0, b0, data, k, j.quantity,
                  _judgement_words(j), state, j)
        elif error is not None and not verdict.stopped:
            k = error.step or len(reported) + 1
            allowed = error.overflow and _outside(fmt, model, reference, w0, b0, data,
                                                  reported, k)
            if not allowed:
                _fail(result, impl, fmt, model, w0, b0, data, k, "-", str(error),
                      _state_before(w0, b0, reported, k))
        for distance, bound in zip(verdict.distance, verdict.distance_bound):
            if bound is not None:
                result.distance_bounded += 1
                far = max(distance.values())
                ratio = float(far / bound) if bound else (0.0 if far == 0 else math.inf)
                result.distance_over_bound = max(result.distance_over_bound, ratio)
        if verdict.distance:
            last = verdict.distance[-1]
            ulp = max(fmt.ulp(float(reported[len(verdict.distance) - 1][q]))
                      for q in ("w_new", "b_new"))
            result.distance = max(result.distance, float(max(last.values()) / ulp))
    if first_bits is not None and result.runs:  # run-stateless: the first run once more
        w0, b0, data = drawn[0]
        try:
            again, _ = collect_run(impl, fmt.name, w0, b0, data, options)
        except NotImplementedError:
            again = None
        result.stateless = again is not None and _bits(again) == first_bits
        if not result.stateless:
            _fail(result, impl, fmt, model, w0, b0, data, 1, "-",
                  "run-stateless: the same run, repeated after the others, gave other values",
                  State(w0, b0))
    if result.runs:
        _check_from_states(impl, fmt, model, options, reference, result, len(drawn), seed)


def _check_from_states(impl, fmt: Format, model: Model, options: dict, reference,
                       result: RunResult, count: int, seed: tuple[int, int]) -> None:
    """The property step-from: steps from drawn states through ``step_from``, each judged
    against the exact step from that state; an implementation without it is said not checked
    (never a pass)."""
    from reference.optim_judge import judge_sgd_step
    from reference.optim_rounded import sgd_legal

    for k, (state, step) in enumerate(draw_states(fmt, seed, count, options)):
        if model.lr_binary64:  # (a binary64 rate, as the run's steps have)
            step = step[:2] + (float(binary64_rates([step[2]], (*seed, k))[0]),)
        given = {"w": state.w, "b": state.b, "buf_w": state.buf_w, "buf_b": state.buf_b}
        try:
            out = impl.step_from_state(fmt.name, given, *step, options)
        except NotImplementedError as exc:
            result.from_state_unchecked = str(exc) or "declined"
            return
        except ImplementationError as exc:
            _fail(result, impl, fmt, model, state.w, state.b, [step], 1, "-",
                  f"step-from: {exc}", state, replay=from_state_replay_command(
                      impl, fmt, result.spec, state, step, model))
            continue
        legal = sgd_legal(fmt, state, *step, reference, model)
        verdict = judge_sgd_step(fmt, state, *step, reference, out, model, legal=legal)
        result.from_states += 1
        for q, j in verdict.items():
            names = legal.explain(q, j.observed).variants if q in legal.values else ()
            if _tally(result, q, j, names):
                _fail(result, impl, fmt, model, state.w, state.b, [step], 1, q,
                      "step-from: " + _unexplained_words(j), state, j, counted=False,
                      replay=from_state_replay_command(impl, fmt, result.spec, state, step,
                                                       model))
        bad = next((j for j in verdict.values() if j.violation), None)
        if bad is not None:
            _fail(result, impl, fmt, model, state.w, state.b, [step], 1, bad.quantity,
                  "step-from: " + _judgement_words(bad), state, bad,
                  replay=from_state_replay_command(impl, fmt, result.spec, state, step, model))


def _tally(result: RunResult, q: str, j, names: Sequence[str]) -> bool:
    """Count one judged value (``names``: the legal evaluations giving it); True where it is
    the first value within its bound that none gives, at the exact level: to be recorded."""
    f = result.quantities.get(q)
    if f is None or not (j.ok or j.violation):
        return False  # (outside the bounded domain: not judged by a bound)
    f.values += 1
    f.failed += j.violation
    f.explained += bool(names)
    if math.isfinite(j.ratio):  # (failing values count too, as in the one-step report)
        f.worst = max(f.worst, j.ratio)
    if j.ok and not names:
        result.unexplained += 1
        return result.level == "exact" and result.unexplained == 1
    return False


def _unexplained_words(j) -> str:
    return (f"{j.quantity} = {float_hex(j.observed)}: no legal evaluation gives this value "
            "(exact level; within its bound)")


def _outside(fmt, model, reference, w0, b0, data, reported, k) -> bool:
    """Whether step k from the reported state is outside the bounded domain (an overflow
    error is then allowed)."""
    from reference.optim_bounds import sgd_bounds

    state = _state_before(w0, b0, reported, k)
    x, t, lr = data[k - 1]
    bounds = sgd_bounds(fmt, state, x, t, lr, reference, model)
    return any(isinstance(b, OutOfDomain) for b in bounds.values())


def _state_before(w0, b0, reported, k: int) -> State:
    if k <= 1:
        return State(w0, b0)
    s = reported[k - 2]
    return State(s["w_new"], s["b_new"], s["buf_w"], s["buf_b"])


def _judgement_words(j) -> str:
    words = f"{j.quantity} {j.why}"
    if j.why == OUTSIDE_BOUND and math.isfinite(j.ratio):
        words += f": error = {j.ratio:.3g} x bound"
    return words


def _fail(result: RunResult, impl, fmt: Format, model: Model, w0, b0, data, k: int, q: str,
          why: str, state: State, j: Optional[Any] = None, replay: str = "",
          counted: bool = True) -> None:
    """Count a failure (of a run, or with ``replay``, of a step from a drawn state; not
    ``counted``: an unexplained value, counted apart) and keep its record (the first few)."""
    if not counted:
        pass
    elif replay:
        result.failed_from_states += 1
    else:
        result.failed_runs += 1
    if len(result.failures) >= KEEP:
        return
    record = {"step": k, "quantity": q, "why": why,
              "state": {n: (None if v is None else float_hex(float(v)))
                        for n, v in (("w", state.w), ("b", state.b), ("buf_w", state.buf_w),
                                     ("buf_b", state.buf_b))},
              "inputs": dict(zip(("x", "t", "lr"), (float_hex(v) for v in data[k - 1])))
              if 0 < k <= len(data) else None,
              "replay": run_replay_command(impl, fmt, result.spec, w0, b0, data[:max(k, 1)],
                                           model)}
    if replay:  # (a step from a drawn state: that one step)
        record["replay"] = replay
    elif k > 1 and k <= len(data) and _offers_step_from(impl, fmt, state, data[k - 1],
                                                         result.options):
        record["replayRun"] = record["replay"]
        record["replay"] = from_state_replay_command(impl, fmt, result.spec, state,
                                                     data[k - 1], model)
    if j is not None:
        record.update(observed=float_hex(j.observed) if math.isfinite(j.observed)
                      else str(j.observed), exact=f"{as_float(j.exact):.17g}",
                      bound=None if isinstance(j.bound, OutOfDomain) or j.bound is None
                      else float(f"{float(j.bound):.6g}"),
                      errorOverBound=j.ratio if math.isfinite(j.ratio) else "inf")
    result.failures.append(record)


def format_runs(results: Sequence[dict], name: str) -> list[str]:
    """The terminal lines of the run phase of one implementation (``RunResult.as_dict``s)."""
    if not results:
        return []
    lines = ["", f"Runs of SGD with options, {name}: each step judged against the exact step "
             "from the state the implementation reported"]
    lines.append(f"  {'format':9} {'options':60} {'runs':>5} {'steps':>6} {'failed':>6} "
                 f"{'err/bound':>9} {'exact':>7}  verdict")
    for r in results:
        spec = r["options"]
        if r["unsupported"]:
            lines.append(f"  {r['format']:9} {spec:60} not checked: {r['unsupported']}")
            continue
        figures = r["quantities"].values()
        values = sum(f["values"] for f in figures)
        explained = sum(f["explained"] for f in figures)
        worst = max(f["worstErrorOverBound"] for f in figures)
        share = f"{100 * explained / values:.1f}%" if values else "-"
        lines.append(f"  {r['format']:9} {spec:60} {r['runs']:5d} {r['stepsJudged']:6d} "
                     f"{r['failedRuns']:6d} {worst:9.3g} {share:>7}  {r['verdict']}")
    for r in results:
        names = r["evaluations"]
        if names and r["verdict"] == "conformant":
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            lines.append(f"  {r['format']} {r['options']}: every value is that of the "
                         f"evaluation {names[0]}{more}")
        if r["stepFromNotChecked"]:
            lines.append(f"  {r['format']} {r['options']}: steps from drawn states not checked: "
                         f"{r['stepFromNotChecked']}")
        if r["distanceBounded"]:
            lines.append(f"  {r['format']} {r['options']}: distance from the exact trajectory "
                         f"at most {r['worstDistanceOverBound']:.3g} of its propagated bound "
                         f"(spec/neuron.md 8.5) over the {r['distanceBounded']} steps that have "
                         f"one")
        if r["stepsJudged"] and not names and not r["failures"] and r["verdict"] == "conformant":
            lines.append(f"  {r['format']} {r['options']}: no one legal evaluation gives "
                         f"every value (each is some evaluation's, or within its bound)")
    for r in results:
        for f in r["failures"]:
            lines.append(f"  FAIL {r['format']} {r['options']}: step {f['step']}: {f['why']}")
            state = ", ".join(f"{k}={v}" for k, v in f["state"].items())
            if state:
                lines.append(f"       from the reported state {state}")
            if f.get("inputs"):
                lines.append("       with " + ", ".join(f"{k}={v}" for k, v in
                                                       f["inputs"].items()))
            if "observed" in f:
                lines.append(f"       observed {f['observed']}, exact {f['exact']}, bound "
                             f"{f['bound']}")
            if f["replay"]:
                lines.append(f"       replay: {f['replay']}")
    return lines
