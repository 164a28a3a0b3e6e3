"""The judgement of a run of SGD with options (spec/neuron.md 8.4): each step against the exact
step from the state the implementation reported after the step before, with the bounds of
``optim_bounds`` and, where IEEE 754 fixes more than a magnitude, the legal values of
``optim_rounded``; and the run's distance from the exact trajectory (8.5), a figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Mapping, Optional, Sequence

from .bounds import OutOfDomain
from .formats import Format, get_format, to_fraction
from .judge import VIOLATION, Judgement, judge
from .legal import Legal
from .model import Model
from .optim import Options, State, exact_sgd_step, exact_trajectory
from .optim_bounds import RUN_QUANTITIES, buffer_format, check_run_model, sgd_bounds
from .optim_rounded import sgd_legal

__all__ = ["judge_sgd_step", "judge_run", "RunVerdict", "NO_BUFFER", "BUFFER_MISSING",
           "NOT_FINITE_STATE"]

#: Why a reported buffer fails where the options say whether there is one.
NO_BUFFER = "a buffer where the options keep none (momentum is 0)"
BUFFER_MISSING = "no buffer, where momentum keeps one"
#: Why judging a run stops before its last step.
NOT_FINITE_STATE = "the reported state is not finite: the next step would start outside the domain"


def judge_sgd_step(fmt: "Format | str", state: State, x: float, t: float, lr: float,
                   options: Options, outputs: Mapping[str, Any], model: "Model | str" = "ieee",
                   *, legal: "Legal | None" = None,
                   bounds: "Mapping[str, Any] | None" = None,
                   exact: "Mapping[str, Any] | None" = None) -> dict[str, Judgement]:
    """The bounded-level verdict on each quantity one step of a run reported (the keys of
    :data:`optim.STEP_QUANTITIES`, and dL_dy where present), against the exact step from
    ``state``, the state the implementation reported after the step before (neuron.md 8.4);
    ``legal``, ``bounds`` and ``exact`` may be passed in where the caller has them."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    B = buffer_format(fmt, options)  # (the buffers are values of the buffer format)
    if bounds is None:
        bounds = sgd_bounds(fmt, state, x, t, lr, options, model)
    if exact is None:
        exact = exact_sgd_step(state, x, t, lr, options)
    exact = dict(exact, dL_dy=exact["dL_db"])
    out: dict[str, Judgement] = {}
    needed = False
    for q in RUN_QUANTITIES:
        if q == "dL_dy" and q not in outputs:
            continue
        observed = outputs.get(q)
        if q.startswith("buf_") and (observed is None) != (bounds[q] is None):
            why = BUFFER_MISSING if observed is None else NO_BUFFER
            value = math.nan if observed is None else float(observed)
            out[q] = Judgement(q, value, exact[q] or Fraction(0), bounds[q], VIOLATION, why,
                               math.inf)
            continue
        if observed is None:
            continue  # (no buffer, as there should be none)
        value = float(observed)
        needed |= value == 0 or (isinstance(bounds[q], OutOfDomain) and not math.isfinite(value))
    if needed and legal is None:
        legal = sgd_legal(fmt, state, x, t, lr, options, model)
    for q in RUN_QUANTITIES:
        if q in out or (q == "dL_dy" and q not in outputs) or outputs.get(q) is None:
            continue
        out[q] = judge(B if q.startswith("buf_") else fmt, q, float(outputs[q]), exact[q],
                       bounds[q], legal)
    return out


def judge_values_of_step(fmt: "Format | str", state: State, x: float, t: float, lr: float,
                         options: Options, values: Mapping[str, list],
                         model: "Model | str" = "ieee") -> dict[str, list[Judgement]]:
    """Finite values of quantities of one step of a run (``values``: quantity -> values, any
    number each) judged against the step's exact values and bounds: what a batch path asks
    of a value too close to its bound for its arrays to decide."""
    fmt = get_format(fmt)
    B = buffer_format(fmt, options)
    bounds = sgd_bounds(fmt, state, x, t, lr, options, model)
    exact = dict(exact_sgd_step(state, x, t, lr, options))
    exact["dL_dy"] = exact["dL_db"]
    return {q: [judge(B if q.startswith("buf_") else fmt, q, float(v), exact[q], bounds[q])
                for v in vs] for q, vs in values.items()}


@dataclass
class RunVerdict:
    """A run judged step by step: per step, the judgements of its quantities (and, where asked,
    the exact level's explanation of each value); ``stopped``: why judging stopped before the
    last step ('' when every step was judged); ``distance``: per judged step, |reported -
    exact trajectory| of w_new and b_new (neuron.md 8.5, a figure, not a verdict), and
    ``distance_bound`` its propagated bound where 8.5 gives one."""

    steps: list[dict[str, Judgement]] = field(default_factory=list)
    explained: list[dict[str, tuple[str, ...]]] = field(default_factory=list)
    stopped: str = ""
    distance: list[dict[str, Fraction]] = field(default_factory=list)
    #: per judged step, the propagated bound of the distance (neuron.md 8.5), where it holds:
    #: no momentum, minimising, 0 <= lr_k*(x_k^2 + 1 + wd) <= 2 and every step so far within
    #: its bounds; None elsewhere
    distance_bound: list[Optional[Fraction]] = field(default_factory=list)

    def first_failure(self) -> "tuple[int, Judgement] | None":
        """(step number, from 1; the first failing judgement of it), or None."""
        for k, step in enumerate(self.steps, 1):
            for j in step.values():
                if j.violation:
                    return k, j
        return None

    @property
    def ok(self) -> bool:
        return self.first_failure() is None


def judge_run(fmt: "Format | str", w0: float, b0: float,
              data: Sequence[tuple[float, float, float]], options: Options,
              reported: Iterable[Mapping[str, Any]], model: "Model | str" = "ieee",
              *, exact_level: bool = False) -> RunVerdict:
    """Judge the steps an implementation ``reported`` for the run (w0, b0, data, options):
    step k against the exact step from the state it reported after step k - 1 (neuron.md 8.4).
    Judging stops after a step whose reported state is not finite or not a value of its
    format (the next step would start outside the domain)."""
    fmt = get_format(fmt)
    model = check_run_model(model, fmt, options)
    verdict = RunVerdict()
    state = State(w0, b0)
    trajectory = exact_trajectory(w0, b0, data, options)
    propagated: "Fraction | None" = Fraction(0) if _contracting_options(options) else None
    for k, ((x, t, lr), out) in enumerate(zip(data, reported)):
        legal = sgd_legal(fmt, state, x, t, lr, options, model) if exact_level else None
        step = judge_sgd_step(fmt, state, x, t, lr, options, out, model, legal=legal)
        verdict.steps.append(step)
        if legal is not None:
            verdict.explained.append({q: legal.explain(q, j.observed).variants
                                      for q, j in step.items() if q in legal.values})
        new = {q: out.get(q) for q in ("w_new", "b_new", "buf_w", "buf_b")}
        why = _unusable(fmt, buffer_format(fmt, options), new, step)
        if why:
            if k + 1 < len(data):
                verdict.stopped = f"after step {k + 1}: {why}"
            return verdict
        verdict.distance.append({q: abs(to_fraction(float(new[q])) - trajectory[k][q])
                                 for q in ("w_new", "b_new")})
        propagated = _propagate(propagated, step, x, lr, options)
        verdict.distance_bound.append(propagated)
        state = State(float(new["w_new"]), float(new["b_new"]),
                      None if new["buf_w"] is None else float(new["buf_w"]),
                      None if new["buf_b"] is None else float(new["buf_b"]))
    return verdict


def _contracting_options(options: Options) -> bool:
    """Options under which neuron.md 8.5 proves the distance bound (no momentum, minimising)."""
    return not options.buffered and not options.maximize


def _propagate(bound: "Fraction | None", step: Mapping[str, Judgement], x: float, lr: float,
               options: Options) -> "Fraction | None":
    """The propagated bound after one more step (neuron.md 8.5): the sum of the steps'
    bounds of w_new and b_new, while every map A_k has norm <= 1 (0 <= lr_k*(x_k^2 + 1 + wd)
    <= 2) and every step passed at the bounded level; None once either fails."""
    if bound is None or not all(j.ok for j in step.values()):
        return None
    rate = to_fraction(float(lr))
    spread = rate * (to_fraction(float(x)) ** 2 + 1 + to_fraction(float(options.weight_decay)))
    if rate < 0 or spread > 2:
        return None
    terms = [step[q].bound for q in ("w_new", "b_new")]
    if not all(isinstance(t, Fraction) for t in terms):
        return None
    return bound + sum(terms)


def _unusable(fmt: Format, buffer: Format, new: Mapping[str, Any],
              step: Mapping[str, Judgement]) -> str:
    """Why the state a step reported cannot start the next step ('' if it can)."""
    values = {q: float(v) for q, v in new.items() if v is not None}
    if not all(math.isfinite(v) for v in values.values()):
        return NOT_FINITE_STATE
    if not all((buffer if q.startswith("buf_") else fmt).contains(v) for q, v in values.items()):
        return "the reported state is not a value of its format"
    if any(j.why in (NO_BUFFER, BUFFER_MISSING) for j in step.values()):
        return "the reported buffers do not match the options"
    return ""
