"""``neuronspec sweep IMPL --run``: millions of steps of runs of SGD with options, each from a
drawn state, through the implementation's ``step_from_batch`` (spec/protocol.md R4) and the
batch reference.

A step of a run is judged against the exact step from the state it starts from (spec/neuron.md
8.4), so a sweep of steps from drawn states (``cases.runs.draw_step_arrays``: the regimes of the
soundness measurement; first steps in even chunks, later steps with buffers in odd ones) checks
every node of the optimiser the way a run does.  Each chunk goes through the implementation and
through ``reference.batch``: exact values and bounds (``optim_chain``), the bounded verdict
(``judgement``), and the exact level (``optim_legal``: is each value bit for bit one of the
step's legal evaluations?).  A value too close to its bound for the arrays is within it when a
legal evaluation gives it (the soundness of spec/tolerances.md 2.8, measured on 4.3e8 values);
any other such value is judged against the step's exact bound (``reference.optim_judge``).
Only statistics leave a chunk (``sweep.SweepResult``), so memory stays flat.
"""

from __future__ import annotations

import math
import shlex
import time
from typing import Any

import numpy as np

from reference.batch import ArrayOps
from reference.batch.arith import round_array, work_for
from reference.batch.judgement import (BEYOND, NEAR, NOT_FINITE, NOT_IN_FORMAT, OK,
                                       OUT_OF_DOMAIN, WRONG_ZERO, judge_values)
from reference.batch.legal import same_bits
from reference.batch.optim_chain import batch_sgd_bounds
from reference.batch.optim_legal import sgd_evaluations_batch
from reference.formats import float_hex, get_format
from reference.judge import NONNEGATIVE
from reference.model import get_model
from reference.optim_judge import judge_values_of_step
from reference.optim import BUFFERS, STATE_QUANTITIES
from reference.optim_rounded import sgd_evaluations

from ..cases.options import reference_options
from ..cases.runs import draw_run_arrays, draw_step_arrays, state_at, step_at
from .fpenv import checker_environment
from .sgd import from_state_replay_command
from .tally import KEEP

__all__ = ["run_step_chunk", "run_whole_chunk", "judge_steps", "STEP_CHUNK"]

#: Steps per chunk (the reference's arrays for all legal evaluations: ~100 MB).
STEP_CHUNK = 1 << 15
#: Why a value failed, by batch status.
WHY = {BEYOND: "outside its bound", NOT_FINITE: "not finite",
       NOT_IN_FORMAT: "not a value of its format",
       WRONG_ZERO: "a zero of the wrong sign (-0 where the value is never negative)"}
_BAD = (BEYOND, NOT_FINITE, NOT_IN_FORMAT, WRONG_ZERO)


def chunk_replay_command(spec: str, fmt: str, options: str, seed: int, index: int, n: int,
                         model: str = "ieee", steps: int = 0) -> str:
    """The command that sweeps chunk ``index`` of ``n`` steps again, alone (``spec``: the
    implementation as named; ``options``: the option set's SPEC); of ``n`` whole runs of
    ``steps`` steps where ``steps`` is given."""
    size = n * steps if steps else n
    words = [f"neuronspec sweep {shlex.quote(spec)} --dtype {fmt} --run "
             f"--options={shlex.quote(options or 'momentum=0')} --seed {seed} --cases {size} "
             f"--chunk {size} --first-chunk {index}" + (f" --steps {steps}" if steps else "")]
    if model != "ieee":
        words.append(f"--model {model}")
    return " ".join(words)


def run_step_chunk(result: Any, impl: Any, fmt: Any, options: dict, spec: str, seed: int,
                   index: int, n: int, model: str = "ieee") -> None:
    """Chunk ``index`` (n steps) of a sweep of steps from drawn states, tallied into
    ``result`` (a ``sweep.SweepResult``); ``options``: the R1 mapping of the format, ``spec``
    its SPEC (for replay commands)."""
    fmt, model_ = get_format(fmt), get_model(model)
    t0 = time.perf_counter()
    with checker_environment():  # (not one the implementation left: ``fpenv``)
        cols, _, slices = draw_step_arrays(fmt, options, seed, index, n)
    t1 = time.perf_counter()
    out = impl.steps_from_batch(fmt.name, cols, options)
    t2 = time.perf_counter()
    chunk = chunk_replay_command(getattr(impl, "spec", "") or impl.name, fmt.name, spec, seed,
                                 index, n, model_.name)
    with checker_environment():
        judge_steps(result, impl, fmt, model_, options, spec, cols, out, slices,
                    lambda j: {"replay_chunk": chunk})
    _timed(result, {"cases": t1 - t0, "implementation": t2 - t1})


def run_whole_chunk(result: Any, impl: Any, fmt: Any, options: dict, spec: str, seed: int,
                    index: int, n: int, steps: int, model: str = "ieee") -> None:
    """Chunk ``index`` of a sweep of whole runs (``n`` runs of ``steps`` steps, drawn by
    ``cases.runs.draw_run_arrays``) through the implementation's ``step_run_batch`` (or its
    run callable, run by run: spec/protocol.md R4), tallied into ``result``.  Each step is
    judged from the state the implementation reported before it (spec/neuron.md 8.4): the
    first steps from (w0, b0) and no buffer, the others from the reported ``w_new``, ``b_new``,
    ``buf_w``, ``buf_b`` of the step before; a run is judged up to its first state that is not
    finite or not a value of its format, and no further (``result.unjudged`` counts the steps
    left)."""
    fmt, model_ = get_format(fmt), get_model(model)
    t0 = time.perf_counter()
    with checker_environment():  # (not one the implementation left: ``fpenv``)
        w0, b0, data, slices = draw_run_arrays(fmt, seed, index, n, steps)
    t1 = time.perf_counter()
    out = impl.runs_batch(fmt.name, w0, b0, data, options)
    t2 = time.perf_counter()
    with checker_environment():
        _judge_runs(result, impl, fmt, model_, options, spec, seed, index, n, steps, w0, b0,
                    data, slices, out)
    _timed(result, {"cases": t1 - t0, "implementation": t2 - t1})


def _judge_runs(result: Any, impl: Any, fmt: Any, model_: Any, options: dict, spec: str,
                seed: int, index: int, n: int, steps: int, w0: np.ndarray, b0: np.ndarray,
                data: dict, slices: list, out: dict) -> None:
    """:func:`run_whole_chunk`'s judgement of the runs the implementation reported."""
    buffered = options["momentum"] != 0
    alive = _judged_steps(fmt, get_format(options["buffer_format"]), out, buffered)
    chunk = chunk_replay_command(getattr(impl, "spec", "") or impl.name, fmt.name, spec, seed,
                                 index, n, model_.name, steps)
    first = {"w": w0, "b": b0, "buf_w": None, "buf_b": None,
             **{k: data[k][0] for k in ("x", "t", "lr")}}
    judge_steps(result, impl, fmt, model_, options, spec, first,
                {q: None if v is None else v[0] for q, v in out.items()}, slices,
                lambda j: {"replay_chunk": chunk, "run": j, "step": 1})
    # the later steps that are judged, regime by regime: (k, j) = step k + 1 of run j
    at, later = [], []
    for regime, a, b in slices:
        k, j = np.nonzero(alive[1:, a:b])
        at.append((k + 1, j + a))
        later.append((regime, len(k)))
    ks, js = (np.concatenate([p[i] for p in at]) for i in range(2))
    if len(ks):
        bufs = {q: out[q][ks - 1, js] if buffered and out[q] is not None else None
                for q in BUFFERS}
        cols = {"w": out["w_new"][ks - 1, js], "b": out["b_new"][ks - 1, js], **bufs,
                **{k: data[k][ks, js] for k in ("x", "t", "lr")}}
        bounds, start = [], 0
        for regime, m in later:
            bounds.append((regime, start, start + m))
            start += m
        judge_steps(result, impl, fmt, model_, options, spec, cols,
                    {q: None if v is None else v[ks, js] for q, v in out.items()}, bounds,
                    lambda i: {"replay_chunk": chunk, "run": int(js[i]), "step": int(ks[i]) + 1})
    result.unjudged += int(alive.size - np.count_nonzero(alive))
    result.stopped_runs += int(np.count_nonzero(~alive[-1]))


def _judged_steps(fmt: Any, buffer: Any, out: dict, buffered: bool) -> np.ndarray:
    """(K, n): whether step k + 1 of run j is judged: every state the run reported before it
    is finite and a value of its format (spec/neuron.md 8.4), and a buffer is reported where
    the options keep one (without it no later step has a state to start from)."""
    valid = np.ones(out["w_new"].shape, dtype=bool)
    for q in STATE_QUANTITIES:
        v = out[q]
        if v is None:
            valid &= not buffered  # (a buffer where none is kept: its step fails, not the rest)
            continue
        with np.errstate(all="ignore"):
            valid &= np.isfinite(v) & same_bits(round_array(buffer if q in BUFFERS else fmt, v),
                                                v)
    alive = np.ones_like(valid)
    alive[1:] = np.logical_and.accumulate(valid[:-1], axis=0)
    return alive


def _timed(result: Any, seconds: dict) -> None:
    for k, v in seconds.items():
        result.seconds[k] = result.seconds.get(k, 0.0) + v


def judge_steps(result: Any, impl: Any, fmt: Any, model_: Any, options: dict, spec: str,
                cols: dict, out: dict, slices: list, extra: Any) -> None:
    """Judge ``n`` steps of runs, each from its state (``cols``: w, b, buf_w, buf_b, x, t,
    lr), on what the implementation reported (``out``), at both levels, into ``result``;
    ``slices``: (regime, start, stop); ``extra(j)``: what a failure record of step ``j`` adds
    (its chunk's replay command, its run and step)."""
    n = len(cols["w"])
    reference = reference_options(options)
    work = work_for(fmt)
    t2 = time.perf_counter()
    with np.errstate(all="ignore"):
        bounds = batch_sgd_bounds(fmt, cols, reference, model_)
        t3 = time.perf_counter()
        evaluations, undecided = sgd_evaluations_batch(fmt, cols, reference, model_)
    names = list(evaluations)
    regime_at = np.empty(n, dtype=object)
    for regime, a, b in slices:
        regime_at[a:b] = regime

    def record(q: str, j: int, observed: float, ratio: float, why: str) -> dict:
        state, step = state_at(cols, j), step_at(cols, j)
        return {"quantity": q, "regime": regime_at[j],
                "case": [float_hex(v) if v is not None else "none"
                         for v in (state.w, state.b, state.buf_w, state.buf_b, *step)],
                "observed": observed, "ratio": ratio, "why": why,
                "replay": from_state_replay_command(impl, fmt, spec, state, step, model_),
                # the step among its chunk's (a defect may need the others: a vector kernel)
                **extra(j)}

    scalar_cache: dict[int, Any] = {}
    scalar_evaluations: dict[int, Any] = {}

    def scalar_judgement(j: int) -> dict:
        """The step's values against its exact bounds (a value too close to its bound)."""
        if j not in scalar_cache:
            scalar_cache[j] = judge_values_of_step(
                fmt, state_at(cols, j), *step_at(cols, j), reference,
                {q: [float(v[j])] for q, v in out.items() if v is not None and q in bounds},
                model_)
        return scalar_cache[j]

    for q, rb in bounds.items():
        c = out.get(q)
        if c is None and not q.startswith("buf_"):  # (dL_dy is optional)
            continue
        t = result.tally(q)
        if rb is None or c is None:  # a buffer where none is kept, or none where one is
            if (rb is None) != (c is None):
                t.violations += n
                if len(result.first_violations) < KEEP:
                    result.first_violations.append(record(
                        q, 0, math.nan, math.inf, "a buffer where the options keep none"
                        if rb is None else "no buffer where the options keep one"))
            continue
        with np.errstate(all="ignore"):
            status, ratio = judge_values(ArrayOps, rb.fmt, work, c.astype(work.dtype),
                                         rb.pair, rb.bound,
                                         rb.out_of_domain, rb.low, rb.high,
                                         nonnegative=q in NONNEGATIVE)
        status = np.array(np.broadcast_to(status, (n,)), dtype=np.int8)
        ratio = np.array(np.broadcast_to(ratio, (n,)), dtype=np.float64)
        # the exact level: the first legal evaluation giving each value, bit for bit
        which = np.full(n, -1, dtype=np.int32)
        for k, name in enumerate(names):
            v = evaluations[name][q]
            if v is None:
                continue
            hit = (which < 0) & same_bits(c, v) & ~undecided
            which[hit] = k
        for j in np.flatnonzero(undecided).tolist():  # (cases the arrays cannot guarantee)
            if j not in scalar_evaluations:
                scalar_evaluations[j] = sgd_evaluations(fmt, state_at(cols, j), *step_at(cols, j),
                                                        reference, model_)
            found = scalar_evaluations[j]
            for k, name in enumerate(names):
                v = found[name][q]
                if v is not None and same_bits(np.array([c[j]]), np.array([v]))[0]:
                    which[j] = k
                    break
        # too close to the bound for the arrays: a legal evaluation's value is within it (the
        # soundness of spec/tolerances.md 2.8, measured: its ratio is the arrays', at most
        # 2^-36 below the exact one); any other value is judged against the exact bound
        near = status == NEAR
        status[near & (which >= 0)] = OK
        undecided_near = np.flatnonzero(near & (which < 0)).tolist()
        for j in undecided_near:
            (judged,) = scalar_judgement(j)[q]
            status[j] = BEYOND if judged.violation else OK
            ratio[j] = judged.ratio
        t.resolved += len(undecided_near)
        ood = status == OUT_OF_DOMAIN
        # a non-finite value outside the domain that no legal evaluation gives: not an overflow
        fake = ood & (which < 0)
        status[fake] = NOT_FINITE
        ood &= ~fake
        bad = np.isin(status, _BAD)
        t.checked += int(np.count_nonzero(~ood))
        t.out_of_domain += int(np.count_nonzero(ood))
        t.violations += int(np.count_nonzero(bad))
        for j in np.flatnonzero(bad)[:KEEP].tolist():
            if len(result.first_violations) < KEEP:
                why = WHY[int(status[j])] if not fake[j] else \
                    "a non-finite value where an admitted evaluation may overflow, but not " \
                    "one it gives"
                result.first_violations.append(record(q, j, float(c[j]), float(ratio[j]), why))
        fine = ~ood & ~bad
        for regime, a, b in slices:
            part = np.where(fine[a:b], ratio[a:b], -1.0)
            if b > a and part.max() >= 0:
                j = a + int(np.argmax(part))
                t.saw(float(ratio[j]), regime, lambda j=j: {
                    "ratio": float(ratio[j]), "regime": regime,
                    "case": record(q, j, 0.0, 0.0, "")["case"],
                    "observed": float_hex(float(c[j]))})
        counts = np.bincount(which[which >= 0], minlength=len(names))
        t.explained_by({names[k]: int(m) for k, m in enumerate(counts) if m})
        missing = np.flatnonzero(which < 0)
        t.not_explained(len(missing), [
            dict(record(q, j, float(c[j]), math.nan, "no legal evaluation gives this value"),
                 observed=float_hex(float(c[j]))) for j in missing[:KEEP].tolist()])
    t4 = time.perf_counter()
    _timed(result, {"reference": t4 - t2, "exact_level": t4 - t3})
