"""``neuronspec sweep``: millions of seeded cases through an implementation and the batch path.

A sweep of N cases is a sequence of chunks; chunk ``i`` holds the same cases for every
implementation and every run with the same seed (``cases.chunks.chunk_cases``).  Each chunk goes
through the implementation (its batch callable, or the step callable case by case) and through
``reference.batch`` (exact values, bounds, verdict); only statistics leave a chunk, so memory
stays flat as N grows.  Chunks spread over processes (``campaign``).
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from reference.batch import (BINARY64, NEAR, OK, OUT_OF_DOMAIN, ROWS, check_batch, screen_batch,
                             work_for)
from reference.batch.chain import check_model
from reference.batch.judgement import NONNEGATIVE
from reference.batch.explain_kernel import explain_compiled
from reference.batch.legal import zero_signs_batch
from reference.batch.domain import domain_screen
from reference.batch.verdict import may_overflow, overflow_origins
from reference.bounds import DOMAIN_SECTION, get_model, overflow_words
from reference.formats import Format, float_hex, get_format
from reference.legal import legal_values
from reference.step import INPUTS, NODES, REQUIRED

from ..artefacts import records
from ..cases.chunks import chunk_cases
from ..cases.exhaustive import Exhaustive
from ..errors import ImplementationError, Interrupted, LoadError, UsageError, WorkerDied
from ..findings import replay_command
from ..implementations import load
from ..properties import PROBE, declinable
from .campaign import CHUNK_TIMEOUT, MAX_FAILURES, Campaign, ChunkFailed
from .fpenv import checker_environment
from .reductions import nonfinite_counts, regime_reductions
from .tally import KEEP, RATIOS_EVERY, QuantityTally

__all__ = ["SweepResult", "Sweeper", "run_chunk", "sweep", "planned_cases", "render", "record",
           "CHUNK", "RATIOS_EVERY", "keep_freed_memory"]

CHUNK = 1 << 20  # ~150 MB of arrays per chunk; large enough that per-chunk costs vanish
# (at 1 << 18 they were a tenth of a narrow format's time)
#: Chunks per Dask task at most (a task costs a few milliseconds of scheduling).
GROUP = 4
#: Cases from which a sweep compiles the exact level's kernel if numba's cache lacks it (3 to
#: 25 s, which it saves back by then); smaller sweeps use it once it is compiled.
COMPILE_PAYS = 5_000_000
#: Seconds an implementation's import and first call may take before it counts as failing
#: to load.
LOAD_TIMEOUT = 300.0
#: Requests sent to a protocol process at once in a scalar sweep (their responses must fit in
#: a pipe's buffer while the requests are written: 64 of them do).
WINDOW = 64
#: Why a value failed, by batch status.
WHY = {1: "outside its bound", 4: "not finite", 5: "not a value of the format",
       6: "a zero of the wrong sign (-0 where the value is never negative)"}


@dataclass
class SweepResult:
    impl: str
    fmt: str
    model: str
    seed: int
    cases: int = 0
    chunks: int = 0
    unchecked: int = 0  # cases where the implementation raised an overflow error, allowed
    failed: int = 0  # cases the implementation failed on outright (raised, crashed, garbage)
    declined: dict = field(default_factory=dict)  # why -> cases it declined where it may
    quantities: dict = field(default_factory=dict)
    first_violations: list = field(default_factory=list)
    #: per stage; "exact_level" is the part of "reference" the exact level took
    seconds: dict = field(default_factory=lambda: {"cases": 0.0, "implementation": 0.0,
                                                   "reference": 0.0, "exact_level": 0.0})
    wall: float = 0.0  # the chunks' time: from the first chunk sent to the last one back
    startup: float = 0.0  # starting the workers, loading the implementation, its first answer
    workers: int = 1
    path: str = ""
    stopped: str = ""  # why the sweep stopped before its last chunk
    interrupted: str = ""  # the signal that stopped it
    exhaustive: Optional[dict] = None  # an exhaustive sweep's space (``Exhaustive.describe``)
    engine: str = ""  # what ran the chunks
    #: a sweep of steps of runs (``run_sweep``): the option set's SPEC ("" for every option
    #: off); None for a sweep of the plain step
    options: Optional[str] = None
    #: a sweep of whole runs: their length K (0: steps from drawn states); the steps not judged
    #: (after a state that is not finite or not a value of its format: spec/neuron.md 8.4),
    #: and the runs whose judging stopped so before their last step
    run_steps: int = 0
    unjudged: int = 0
    stopped_runs: int = 0

    def tally(self, q: str) -> QuantityTally:
        return self.quantities.setdefault(q, QuantityTally())

    def merge(self, other: "SweepResult") -> None:
        self.cases += other.cases
        self.chunks += other.chunks
        self.unchecked += other.unchecked
        self.failed += other.failed
        self.unjudged += other.unjudged
        self.stopped_runs += other.stopped_runs
        for why, k in other.declined.items():
            self.declined[why] = self.declined.get(why, 0) + k
        for q, t in other.quantities.items():
            self.tally(q).merge(t)
        self.first_violations = (self.first_violations + other.first_violations)[:KEEP]
        for k, v in other.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        self.path = self.path or other.path

    @property
    def violations(self) -> int:
        """Values outside their bound (or not finite, or not in the format), and cases the
        implementation failed on outright: the failures of the bounded level."""
        return sum(t.violations for t in self.quantities.values()) + self.failed

    @property
    def unexplained(self) -> int:
        """Values no admitted evaluation gives, and cases the implementation failed on
        outright: the failures of the exact level."""
        return sum(t.unexplained for t in self.quantities.values()) + self.failed

    def failures(self, level: str) -> int:
        """The failures of a level (``reference.judge.LEVELS``)."""
        return self.unexplained if level == "exact" else self.violations

    def as_dict(self) -> dict:
        out = {"impl": self.impl, "format": self.fmt, "model": self.model, "seed": self.seed,
               "cases": self.cases, "chunks": self.chunks, "unchecked": self.unchecked,
               "failed": self.failed, "declined": self.declined,
               "violations": self.violations,
               "unexplained": self.unexplained,
               "quantities": {q: t.as_dict() for q, t in self.quantities.items()},
               "first_violations": self.first_violations, "seconds": self.seconds,
               "wall_seconds": self.wall, "startup_seconds": self.startup,
               "workers": self.workers, "path": self.path}
        if self.options is not None:
            out["options"] = self.options
        if self.run_steps:
            out.update(run_steps=self.run_steps, unjudged=self.unjudged,
                       stopped_runs=self.stopped_runs)
        out.update({k: v for k, v in (("stopped", self.stopped),
                                      ("interrupted", self.interrupted),
                                      ("exhaustive", self.exhaustive)) if v})
        return out


def _outputs(impl, fmt: Format, cols: dict, scalar: bool
             ) -> tuple[dict, np.ndarray, dict[int, str], dict[int, str]]:
    """The implementation's arrays; a mask of the cases where it raised an overflow error (a
    quantity may be outside the domain there); the cases it failed on outright, with why; the
    cases it declined where it may (a negative or subnormal lr), with why."""
    n = len(cols["w"])
    if not scalar:
        out = impl.run_batch(fmt.name, cols)
        declined, failed = {}, {}
        if out.declined is not None:
            for i in np.flatnonzero(out.declined).tolist():
                case = tuple(float(cols[k][i]) for k in INPUTS)
                why = declinable(fmt, case)
                if why:
                    declined[i] = why
                else:
                    failed[i] = ("declined a case of a format it supports whose learning rate "
                                 "is neither negative nor subnormal")
        return out, np.zeros(n, dtype=bool), failed, declined
    out = {q: np.full(n, np.nan) for q in ROWS}
    raised = np.zeros(n, dtype=bool)
    failed: dict[int, str] = {}
    declined: dict[int, str] = {}
    rows = list(zip(*(cols[k].tolist() for k in INPUTS)))
    prefetch = getattr(impl, "prefetch", None)
    for i, case in enumerate(rows):
        if prefetch is not None and i % WINDOW == 0:  # a process: a window of requests at once
            prefetch(fmt.name, rows[i:i + WINDOW])
        try:
            values = impl(fmt.name, case)
        except NotImplementedError as exc:
            why = declinable(fmt, case)
            if why:
                declined[i] = why
            else:
                failed[i] = (f"raised NotImplementedError on a case of {fmt.name}, a format it "
                             f"supports ({exc or 'no message'})")
            continue
        except ImplementationError as exc:
            if exc.overflow:
                raised[i] = True
            else:
                failed[i] = str(exc)
            continue
        for q, v in values.items():
            out[q][i] = v
    if np.isnan(out["dL_dy"]).all():
        del out["dL_dy"]
    return out, raised, failed, declined


def _case_record(cols: dict, i: int) -> list[str]:
    return [float_hex(float(cols[k][i])) for k in INPUTS]


def _regime_at(slices, i: int) -> str:
    return next(r for r, a, b in slices if a <= i < b)


def run_chunk(impl, fmt: "Format | str", seed: int, index: int, n: int, model: str = "ieee",
              scalar: bool = False, engine: str = "auto",
              source: "Exhaustive | None" = None, why: bool = False,
              ratios_every: int = RATIOS_EVERY) -> SweepResult:
    """Chunk ``index`` (n cases) of a sweep: statistics only.  ``source``: the cases of an
    exhaustive sweep (else the seeded campaign's); ``why``: count the values outside the
    bounded domain per reason (the first node that may overflow; it costs the bound chain
    once more on those cases); ``ratios_every``: the error/bound is computed for every
    K-th case and the cases the exact level leaves (in float64 also those its magnitude
    screen leaves; 1: every case; :func:`_tally_explained`)."""
    fmt = get_format(fmt)
    result = SweepResult(impl.name, fmt.name, get_model(model).name, seed, cases=n, chunks=1)
    t0 = time.perf_counter()
    with checker_environment():  # (the checker's arithmetic in its own environment, not
        # one the implementation left: ``fpenv``)
        cols, slices = source.chunk(index, n) if source is not None else \
            chunk_cases(fmt, seed, index, n)
    t1 = time.perf_counter()
    outputs, raised, failed, declined = _outputs(impl, fmt, cols, scalar)
    t2 = time.perf_counter()
    with checker_environment():
        t3, t4 = _judge_chunk(result, impl, fmt, model, engine, cols, slices, outputs, raised,
                              failed, declined, why, ratios_every)
        t5 = time.perf_counter()
    result.seconds = {"cases": t1 - t0, "implementation": t2 - t1, "reference": t5 - t2,
                      "exact_level": (t3 - t2) + (t5 - t4)}
    return result


def _judge_chunk(result, impl, fmt, model, engine, cols, slices, outputs, raised, failed,
                 declined, why, ratios_every) -> tuple[float, float]:
    """Both levels' verdicts on a chunk's outputs, tallied into ``result``; returns the times
    the exact level's first part ended and its second began (``run_chunk``'s stages)."""
    for i, reason in failed.items():  # each a finding: not judged further
        raised[i] = True
        result.failed += 1
        _record_violation(result, impl, fmt, model, cols, slices, "-", i, math.nan,
                          math.inf, reason)
    for i, reason in declined.items():  # a reported skip: not judged
        raised[i] = True
        result.declined[reason] = result.declined.get(reason, 0) + 1
    failed = {**failed, **{i: "declined" for i in declined}}
    if raised.any():  # allowed only where some quantity is outside the bounded domain
        outputs = {q: np.where(raised, np.nan, v) for q, v in outputs.items()}
    names = tuple(q for q in ROWS if q in outputs)
    explained = _explain(fmt, model, cols, names, outputs, raised, engine)
    t3 = time.perf_counter()
    screened = None
    if ratios_every == 1 and engine != "numpy" and fmt.p < 53 and not raised.any():
        screened = _screen(fmt, model, cols, outputs, names)  # (binary64 work)
    if screened is not None:
        result.path = "compiled"
        ood = _tally_screened(result, impl, fmt, model, cols, slices, *screened, masks=why)
    elif ratios_every > 1:
        result.path = f"exact level (the bound chain on 1 case in {ratios_every})"
        _tally_explained(result, impl, fmt, model, cols, outputs, names, slices, raised,
                         failed, explained, ratios_every, engine, why)
        why = False  # (said there)
    else:
        result.path = "numpy"
        ood = _tally_all(result, impl, fmt, model, cols, outputs, names, slices, raised, failed)
    if why:
        _out_of_domain_why(result, fmt, model, cols, ood)
    t4 = time.perf_counter()
    _exact_level(result, impl, fmt, model, cols, slices, names, outputs, explained)
    return t3, t4


def _explain(fmt, model, cols, names, outputs, raised, engine: str = "auto"):
    """Which admitted evaluation gives each value bit for bit (``legal.Explained``; -1:
    none, and for the cases the implementation raised on or declined), with ``others``
    listing the cases where some value is not the first evaluation's."""
    block = getattr(outputs, "block", None)
    if block is None or tuple(outputs) != names:
        block = np.stack([np.asarray(outputs[q], dtype=np.float64) for q in names])
    valid = ~raised
    if raised.any():  # cases the implementation raised on or declined: nothing to explain
        keep = np.flatnonzero(valid)
        sub = {k: np.asarray(cols[k])[keep] for k in INPUTS}
        explained = explain_compiled(fmt, sub, names, block[:, keep], model, engine)
        which_all = np.full((len(names), len(valid)), -1, dtype=np.int16)
        which_all[:, keep] = explained.which
        explained.which, explained.others = which_all, None
    else:
        explained = explain_compiled(fmt, cols, names, block, model, engine)
    if explained.others is None:
        explained.others = np.flatnonzero(valid & (explained.which != 0).any(axis=0))
    explained.block, explained.valid = block, valid
    return explained


def _exact_level(result, impl, fmt, model, cols, slices, names, outputs, explained) -> None:
    """The exact level: each value an admitted evaluation gives bit for bit (tallied per
    evaluation), or not (tallied, the first ones with the nearest legal value).  Where IEEE 754
    fixes more than a magnitude, an unexplained value fails the bounded level too: a non-finite
    value where an admitted evaluation may overflow (none gives this one), and a zero within
    its bound whose sign no admitted evaluation gives (where one gives a zero)."""
    block, others = explained.block, explained.others
    # only the cases where some value is not the first evaluation's are looked at one by one
    which = explained.which[:, others]
    first = int(np.count_nonzero(explained.valid)) - len(others)  # all the first's
    for j, q in enumerate(names):
        t = result.tally(q)
        row = which[j]
        counts = np.bincount(row[row >= 0], minlength=len(explained.variants))
        counts[0] += first
        t.explained_by({explained.variants[k].name: c
                        for k, c in enumerate(counts.tolist()) if c})
        missing = others[row < 0]
        if len(missing):
            _late_bounded(result, impl, fmt, model, cols, slices, q, block[j], missing)
        records = []
        for i in missing[:KEEP].tolist():
            case = tuple(float(cols[k][i]) for k in INPUTS)
            e = legal_values(fmt, case, model).explain(q, float(block[j, i]))
            records.append(_unexplained_record(impl, fmt, model, cols, slices, q, i, e))
        t.not_explained(len(missing), records)


def _late_bounded(result, impl, fmt, model, cols, slices, q, row, missing) -> None:
    """The bounded level's verdict on unexplained values that only the legal values decide:
    a non-finite value where an admitted evaluation may overflow, a zero of a sign IEEE 754
    fixes otherwise (the loss's -0 is the kernel's: counted already)."""
    values = row[missing]
    special = missing[~np.isfinite(values) | ((values == 0) & (q not in NONNEGATIVE))]
    if len(special) == 0:
        return
    sub = {k: np.ascontiguousarray(np.asarray(cols[k])[special]) for k in INPUTS}
    v = row[special]
    ood = may_overflow(fmt, sub, q, model)
    bad = ~np.isfinite(v) & ood
    why = np.where(bad, "a non-finite value where an admitted evaluation may overflow, but not "
                   "one it gives", "")
    zero = np.isfinite(v) & (v == 0)
    if zero.any():
        within = check_batch(fmt, {k: a[zero] for k, a in sub.items()}, {q: v[zero]},
                             model).status[q] == OK
        plus, minus = zero_signs_batch(fmt, {k: a[zero] for k, a in sub.items()}, q, model)
        negative = np.signbit(v[zero])
        wrong = within & np.where(negative, plus & ~minus, minus & ~plus)
        idx = np.flatnonzero(zero)[wrong]
        bad[idx] = True
        why[idx] = "a zero of the wrong sign (every admitted evaluation giving a zero gives " \
                   "the other)"
    t = result.tally(q)
    for k in np.flatnonzero(bad).tolist():
        t.violations += 1
        _record_violation(result, impl, fmt, model, cols, slices, q, int(special[k]),
                          float(v[k]), math.inf, str(why[k]))


def _unexplained_record(impl, fmt, model, cols, slices, q, i, e) -> dict:
    case = tuple(float(cols[k][i]) for k in INPUTS)
    nearest = "no finite legal value" if e.nearest is None else (
        f"nearest legal {float_hex(e.nearest)} ({', '.join(e.nearest_variants[:3])}), "
        f"{e.ulps:.3g} ulps away")
    return {"quantity": q, "regime": _regime_at(slices, i), "case": _case_record(cols, i),
            "observed": float_hex(float(e.observed)),
            "why": f"no admitted evaluation gives this value; {nearest}",
            "replay": replay_command(impl, fmt, case, get_model(model))}


def _record_violation(result, impl, fmt, model, cols, slices, q, i, observed, ratio, why):
    if len(result.first_violations) >= KEEP:
        return
    case = tuple(float(cols[k][i]) for k in INPUTS)
    result.first_violations.append({
        "quantity": q, "regime": _regime_at(slices, i), "case": _case_record(cols, i),
        "observed": float(observed), "ratio": ratio, "why": why,
        "replay": replay_command(impl, fmt, case, get_model(model))})


def _worst(cols, slices, i, ratio, observed) -> dict:
    return {"ratio": ratio, "regime": _regime_at(slices, i), "case": _case_record(cols, i),
            "observed": float_hex(float(observed))}


def _out_of_domain_why(result: SweepResult, fmt: Format, model: str, cols: dict,
                       ood: "dict[str, np.ndarray]") -> None:
    """Say why the values outside the bounded domain are (``ood``: their masks, per
    quantity): the first node on the way to each that may overflow."""
    either = np.logical_or.reduce(list(ood.values())) if ood else None
    if either is None or not either.any():
        return
    idx = np.flatnonzero(either)
    origins = overflow_origins(fmt, {k: np.asarray(cols[k])[idx] for k in INPUTS}, model)
    for q, mask in ood.items():
        t = result.tally(q)
        counts = np.bincount(origins[q][mask[idx]].astype(np.int64) + 1,
                             minlength=len(NODES) + 1)
        for k in np.flatnonzero(counts[1:]).tolist():
            t.outside_because(overflow_words(k), int(counts[k + 1]))


def _tally_all(result, impl, fmt, model, cols, outputs, names, slices, raised,
               failed_cases=()) -> "dict[str, np.ndarray]":
    """The full verdict on every value (numpy path, or where the implementation raised);
    returns the masks of the values outside the bounded domain."""
    verdict = check_batch(fmt, cols, outputs, model, engine="numpy")
    ood_any = np.logical_or.reduce([verdict.out_of_domain[q] for q in names])
    # an overflow error raised on a case partly outside the domain is allowed: unchecked
    # (a case failed on outright is not judged: it was counted as a failure)
    failed = np.zeros(len(raised), dtype=bool)
    failed[list(failed_cases)] = True
    allowed = (raised & ood_any) | failed
    result.unchecked += int((allowed & ~failed).sum())
    out_of_domain = {}
    for q in names:
        t = result.tally(q)
        status = verdict.status[q]
        ood = status == OUT_OF_DOMAIN
        bad = verdict.violation[q] & ~allowed
        ratio = np.where(allowed | ood, np.nan, verdict.ratio[q])
        t.checked += int((~ood & ~allowed).sum())
        t.out_of_domain += int(ood.sum())
        out_of_domain[q] = ood
        t.violations += int(bad.sum())
        t.resolved += verdict.resolved_by.get(q, 0)
        for regime, a, b in slices:
            part = ratio[a:b]
            if np.isfinite(part).any() or np.isinf(part).any():
                t.by_regime[regime] = max(t.by_regime.get(regime, 0.0), float(np.nanmax(part)))
        if not np.all(np.isnan(ratio)):
            i = int(np.nanargmax(ratio))
            if t.worst is None or ratio[i] > t.max_ratio:
                t.max_ratio, t.worst = float(ratio[i]), _worst(cols, slices, i, float(ratio[i]),
                                                               outputs[q][i])
        for i in np.flatnonzero(bad)[:KEEP]:
            _record_violation(result, impl, fmt, model, cols, slices, q, int(i), outputs[q][i],
                              float(verdict.ratio[q][i]), WHY[int(status[i])])
    return out_of_domain


def _tally_explained(result, impl, fmt, model, cols, outputs, names, slices, raised, failed,
                     explained, every: int, engine: str, why: bool) -> None:
    """The verdict without the bound chain on every case.  A value an admitted evaluation
    gives bit for bit is within its bound: that is the soundness theorem of spec/tolerances.md
    2.5 (measured: ``neuronspec soundness``), and a finite one is within it even where another
    evaluation may overflow.  So the chain runs only on the cases that need it -- those with a
    value no admitted evaluation gives, those the implementation raised on or failed, and
    (float64) those with a non-finite value where the magnitude screen
    (``reference.batch.domain``) says no admitted evaluation overflows (or, to say ``why``,
    does not say which does) -- and on every ``every``-th case, for the error/bound
    statistics (``measured``): in the narrow formats through the compiled screen
    (``_tally_screened``).  Of the other values, a finite one counts as checked, and a
    non-finite one as outside the bounded domain: an admitted evaluation giving it overflows,
    so the chain flags it (the same theorem)."""
    n = len(raised)
    block = explained.block
    wrong = explained.others[(explained.which[:, explained.others] < 0).any(axis=0)]
    judged = np.zeros(n, dtype=bool)
    judged[::every] = True
    judged[wrong] = True
    judged |= raised
    origin = None
    if fmt.p == 53:  # the magnitude screen: float64's chain costs 6 µs a case
        origin = domain_screen(fmt, cols, engine)
        for j, q in enumerate(names):  # a non-finite value the screen says cannot overflow;
            # or, to say why, one whose overflow it does not place
            judged |= ~np.isfinite(block[j]) & ((origin[q] < 0) if why else (origin[q] == -1))
    idx = np.flatnonzero(judged)
    sub_cols = {k: np.ascontiguousarray(np.asarray(cols[k])[idx]) for k in INPUTS}
    sub_outputs = {q: np.asarray(outputs[q])[idx] for q in names}
    ends = np.searchsorted(idx, [b for _, _, b in slices])
    starts = np.concatenate([[0], ends[:-1]])
    sub_slices = [(r, int(a), int(b)) for (r, _, _), a, b in zip(slices, starts, ends)]
    sub_failed = np.searchsorted(idx, sorted(failed)).tolist()
    before = {q: result.tally(q).checked for q in names}
    screened = None
    if engine != "numpy" and fmt.p < 53 and not raised[idx].any():  # (binary64 work)
        screened = _screen(fmt, model, sub_cols, sub_outputs, names)
    if screened is not None:
        ood_sub = _tally_screened(result, impl, fmt, model, sub_cols, sub_slices, *screened,
                                  masks=why)
    else:
        ood_sub = _tally_all(result, impl, fmt, model, sub_cols, sub_outputs, names,
                             sub_slices, raised[idx], sub_failed)
    if why:
        _out_of_domain_why(result, fmt, model, sub_cols, ood_sub)
    outside = nonfinite_counts(block, judged)  # per quantity, of the cases not judged
    rest = n - len(idx)
    masks = {}
    for j, q in enumerate(names):
        t = result.tally(q)
        t.measured = (t.measured or 0) + t.checked - before[q]  # the chain's, each measured
        t.checked += rest - int(outside[j])
        t.out_of_domain += int(outside[j])
        if why and outside[j]:
            mask = ~judged & ~np.isfinite(block[j])
            if origin is None:
                masks[q] = mask
                continue
            counts = np.bincount(origin[q][mask].astype(np.int64), minlength=len(NODES))
            for k in np.flatnonzero(counts).tolist():
                t.outside_because(overflow_words(k), int(counts[k]))
    if masks:  # (narrow formats: no magnitude screen, the chain's own origins)
        _out_of_domain_why(result, fmt, model, cols, masks)


def _screen(fmt, model, cols, outputs, names):
    """Compiled screening: estimates for every value, the mask of cases needing the full
    judgement (None without the compiled kernel)."""
    block = getattr(outputs, "block", None)
    if block is None or tuple(outputs) != names:
        block = np.stack([outputs[q] for q in names])
    # dL_dy is dL_db's node: when the two rows are equal bit for bit, judge one of them
    twin = "dL_dy" in names and np.array_equal(block[names.index("dL_dy")].view(np.uint64),
                                                block[names.index("dL_db")].view(np.uint64))
    if twin:
        names, block = REQUIRED, block[:len(REQUIRED)]
    screened = screen_batch(fmt, cols, block, model)
    if screened is None:
        return None
    return names, block, twin, *screened


def _tally_screened(result, impl, fmt, model, cols, slices, names, block, twin, estimate,
                    attention, masks: bool = True) -> "dict[str, np.ndarray]":
    """The full judgement for the values that need it and for each quantity's largest
    estimate; the estimates (upper bounds of error/bound) clear every other value.  Returns
    the masks of the values outside the bounded domain (``masks``; else no mask)."""
    n = block.shape[1]
    argmax, below = regime_reductions(estimate, slices)
    stops = np.array([b for _, _, b in slices], dtype=np.int64)
    rows = set(np.flatnonzero(attention != 0).tolist())  # (a bool array: 10x numpy's uint8)
    rows.update(argmax[argmax >= 0].tolist())
    idx = np.array(sorted(rows), dtype=np.int64)
    sub_cols = {k: np.ascontiguousarray(cols[k][idx]) for k in INPUTS}
    verdict = check_batch(fmt, sub_cols, dict(zip(names, block[:, idx])), model)
    regime_of = np.searchsorted(stops, idx, side="right")
    out_of_domain = {}
    for k, q in enumerate(names):
        t = result.tally(q)
        status, r_k = verdict.status[q], verdict.ratio[q]
        t.resolved += verdict.resolved_by.get(q, 0)
        bad = 0
        for j in np.flatnonzero((status != OK) & (status != OUT_OF_DOMAIN)).tolist():
            st = int(status[j])
            assert st != NEAR, "the judge decides every undecided value"
            bad += 1
            i = int(idx[j])
            _record_violation(result, impl, fmt, model, cols, slices, q, i, block[k, i],
                              float(r_k[j]), WHY[st])
        if masks:
            out_of_domain[q] = estimate[k] < 0
        ood = int(below[k])
        t.out_of_domain += ood
        t.checked += n - ood
        t.violations += bad
        # the largest ratio: exact on the judged cases, which include each largest estimate
        # (the values needing attention and the largest estimates: a few hundred a chunk, a
        # loop over them costs less than numpy calls per regime)
        ratios = r_k.tolist()
        first_max = {}  # regime -> its judged case of largest ratio (numpy's argmax: the
        # first one; a NaN is larger than any number)
        for j, (g, inside) in enumerate(zip(regime_of.tolist(), (estimate[k][idx] >= 0).tolist())):
            if inside:
                top = first_max.get(g)
                if top is None or ratios[j] > ratios[top] or (
                        ratios[j] != ratios[j] and ratios[top] == ratios[top]):
                    first_max[g] = j
        best_j = -1
        for g in sorted(first_max):
            j = first_max[g]
            regime = slices[g][0]
            t.by_regime[regime] = max(t.by_regime.get(regime, 0.0), ratios[j])
            if best_j < 0 or ratios[j] > ratios[best_j]:
                best_j = j
        if best_j >= 0 and (t.worst is None or r_k[best_j] > t.max_ratio):
            i, r = int(idx[best_j]), float(r_k[best_j])
            t.max_ratio, t.worst = r, _worst(cols, slices, i, r, block[k, i])
    if twin:  # the same values against the same bound: the same statistics
        result.quantities["dL_dy"] = copy.deepcopy(result.tally("dL_db"))
        if masks:
            out_of_domain["dL_dy"] = out_of_domain["dL_db"]
    return out_of_domain


# ---- the run: chunks over supervised processes -------------------------------------------

_WORKER: dict = {}


def _init_worker(spec: str, model: str, threads: int,
                 warm: "tuple[str, int] | tuple[str, int, bool] | None") -> None:
    """A worker: load the implementation (its failure is said by the first task) and warm the
    reference for ``warm`` = (format, chunk size[, compile]) if given (its compiled kernels
    load, and its arrays are first allocated, here: in the start-up time, not in the first
    chunks'; ``compile``, for large sweeps: compile the exact level's kernel if numba's cache
    lacks it, and fault in the heap a chunk uses)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    kept = keep_freed_memory()
    try:
        _WORKER["impl"] = load(spec)
    except LoadError as exc:
        _WORKER["error"] = str(exc)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if warm is not None:
        _warm_reference(get_format(warm[0]), model, *warm[1:])
        if kept and len(warm) > 2 and warm[2]:  # a large sweep: its chunks' memory, now
            _fault_in_heap(warm[1] * HEAP_PER_CASE)


def keep_freed_memory() -> bool:
    """Every chunk allocates and frees the same large arrays (~600 MB): glibc's malloc hands
    them back to the system and the next chunk pays a page fault per 4 KiB of them (a quarter
    of the batch reference's time).  Kept in the process instead, they are reused; memory stays
    flat, at one chunk's worth.  Whether it could (glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its own policy
        return False
    mallopt(_M_MMAP_THRESHOLD, 1 << 28)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    return True


#: Bytes of heap per case that a large sweep's workers fault in at start-up: what a chunk
#: allocates beyond the warm-up's arrays (the implementation's arrays and temporaries; measured
#: on torch_autograd: 250 leaves no fault in the first chunk, the worker at ~630 MiB).
HEAP_PER_CASE = 256


def _fault_in_heap(size: int) -> None:
    """Grow the heap by ``size`` bytes, touched, and free it again (kept: ``keep_freed_memory``):
    the first chunk's arrays then land on pages already mapped (on this virtual machine a
    first touch costs ~10 µs a page: 0.2 s in the first chunk of 2**20 cases)."""
    block = 1 << 26  # (below the mmap threshold: from the heap, kept when freed)
    pieces = [np.ones(block // 8) for _ in range(-(-size // block))]
    del pieces


#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _warm_reference(fmt: Format, model: str, n: int, compile: bool = False) -> None:
    try:
        work = work_for(fmt)
    except RuntimeError:  # float64 without extended precision: the scaled numpy path
        work = None
    cols, _ = chunk_cases(fmt, 0, 0, n)
    block = np.zeros((len(REQUIRED), n))
    if work is BINARY64:
        screened = screen_batch(fmt, cols, block, model)
        if screened is not None:  # the tally's compiled pass, loaded here too
            regime_reductions(screened[0], [("", 0, n)])
    few = {k: v[:64] for k, v in cols.items()}
    check_batch(fmt, few, dict(zip(REQUIRED, block[:, :64])), model)
    explain_compiled(fmt, few, REQUIRED, block[:, :64], model,  # zeros: every loop runs
                     "compiled" if compile else "auto")
    nonfinite_counts(block[:, :64], np.zeros(64, dtype=bool))  # (the explained path's count)


def _loaded() -> "LoadError | None":
    return LoadError(_WORKER["error"]) if "error" in _WORKER else None


def _describe(_: object) -> dict:
    """The implementation's name and whether it offers a batch callable, learnt in a worker
    (its module may exit, crash or hang on import: the checker never imports it)."""
    if "error" in _WORKER:
        return {"error": _WORKER["error"]}
    impl = _WORKER["impl"]
    return {"name": impl.name, "batch": impl.batch is not None,
            "from_batch": getattr(impl, "from_batch", None) is not None,
            "run_batch": getattr(impl, "run_batch_form", None) is not None,
            "runs": getattr(impl, "runner", None) is not None}


def _supports(task: tuple) -> str:
    """Why the implementation does not support the format ('' if it does): its answer to one
    case, in a worker (a crash there is the chunks' to report)."""
    fmt, scalar = task
    impl = _WORKER["impl"]
    try:
        if scalar:
            impl(fmt, PROBE)
        else:
            impl.run_batch(fmt, {k: np.array([v]) for k, v in zip(INPUTS, PROBE)})
    except NotImplementedError as exc:
        return f"{impl.name} does not support {fmt}: {exc or 'NotImplementedError'}"
    except ImplementationError:
        pass  # the chunks report it, with the cases
    return ""


def _work(task: tuple) -> SweepResult:
    fmt, seed, index, n, model, scalar, name, source, why, every = task
    if "error" in _WORKER:
        raise _loaded()
    try:
        return run_chunk(_WORKER["impl"], fmt, seed, index, n, model, scalar, source=source,
                         why=why, ratios_every=every)
    except (ImplementationError, NotImplementedError) as exc:
        return _failed_chunk(task, str(exc) or type(exc).__name__)


def _step_work(task: tuple) -> SweepResult:
    """A chunk of a sweep of steps of runs (``run_sweep.run_step_chunk``), or of whole runs of
    ``steps`` steps (``run_sweep.run_whole_chunk``: ``n`` steps, ``n // steps`` runs)."""
    fmt, seed, index, n, model, spec, options, options_spec, steps = task
    if "error" in _WORKER:
        raise _loaded()
    from .run_sweep import run_step_chunk, run_whole_chunk

    result = SweepResult(spec, fmt, get_model(model).name, seed, cases=n, chunks=1,
                         path="batch runs" if steps else "batch steps of runs",
                         options=options_spec, run_steps=steps)
    try:
        if steps:
            run_whole_chunk(result, _WORKER["impl"], fmt, options, options_spec, seed, index,
                            n // steps, steps, model)
        else:
            run_step_chunk(result, _WORKER["impl"], fmt, options, options_spec, seed, index, n,
                           model)
    except NotImplementedError as exc:  # the option set or the format declined (R4): a skip
        why = f"the implementation declines them: {exc or 'NotImplementedError'}"
        return SweepResult(spec, fmt, get_model(model).name, seed, cases=n, chunks=1,
                           declined={why: n}, options=options_spec, run_steps=steps)
    except ImplementationError as exc:
        return _failed_step_chunk(task, str(exc) or type(exc).__name__)
    return result


def _failed_step_chunk(task: tuple, why: str) -> SweepResult:
    """A chunk of a sweep of steps of runs the implementation failed as a whole (it raised or
    returned garbage, its worker died or hung): every step of it counts as failed."""
    from .run_sweep import chunk_replay_command

    fmt, seed, index, n, model, spec, _, options_spec, steps = task
    model = get_model(model).name
    failed = SweepResult(spec, fmt, model, seed, cases=n, chunks=1, failed=n,
                         options=options_spec, run_steps=steps)
    size = f"{n // steps:,} runs of {steps} steps" if steps else f"{n:,} steps"
    failed.first_violations.append({
        "quantity": "-", "regime": "-", "chunk": index, "case": [], "observed": math.nan,
        "ratio": math.inf, "why": f"chunk {index} ({size}): {why}",
        "replay": chunk_replay_command(spec, fmt, options_spec, seed, index,
                                       n // steps if steps else n, model, steps)})
    return failed


def _probe_failed(total: SweepResult, spec: str, fmt: Format, model: str, why: str) -> None:
    """The implementation crashed or hung on the first case it was given (``PROBE``): that case
    is the finding, and the sweep goes no further (every chunk would do the same)."""
    total.cases = total.failed = 1
    total.stopped = f"the implementation failed on its first case: {why}"
    total.first_violations.append({
        "quantity": "-", "regime": "-", "case": [float_hex(v) for v in PROBE],
        "observed": math.nan, "ratio": math.inf, "why": f"the first case: {why}",
        "replay": replay_command(spec, fmt, PROBE, get_model(model))})


def _failed_chunk(task: tuple, why: str) -> SweepResult:
    """A chunk the implementation failed on as a whole (its batch raised or returned garbage,
    or its worker died or hung): every case of it counts as failed."""
    fmt, seed, index, n, model, scalar, spec, source, _, every = task
    result = SweepResult(spec, fmt, get_model(model).name, seed, cases=n, chunks=1, failed=n)
    result.first_violations.append({
        "quantity": "-", "regime": "-", "chunk": index, "case": [], "observed": math.nan,
        "ratio": math.inf, "why": f"chunk {index} ({n:,} cases): {why}",
        "replay": f"neuronspec sweep {shlex.quote(spec)} --dtype {fmt} "
                  + (source.options() if source is not None else f"--seed {seed}")
                  + f" --cases {n} --chunk {n} --first-chunk {index}"
                  + (" --scalar" if scalar else "") + (f" --model {model}" if model != "ieee"
                                                      else "")
                  + (f" --ratios-every {every}" if every != RATIOS_EVERY else "")})
    return result


class Sweeper:
    """Sweeps of one implementation, kept ready for several formats.

    ``spec`` names a Python implementation: it is loaded in ``workers`` supervised worker
    processes (nothing it does can end or stall the sweep; ``timeout``: seconds a chunk may
    take).  ``impl``, an implementation object that supervises itself (a protocol process),
    runs here instead, chunk after chunk.  ``warm``: (format, chunk size) to warm the workers'
    reference for, within their start-up."""

    def __init__(self, spec: str, model: str = "ieee", workers: int = 1, *,
                 impl: Any = None, timeout: float = CHUNK_TIMEOUT,
                 warm: "tuple[str, int] | None" = None, scheduler: "str | None" = None,
                 local: bool = False) -> None:
        self.spec, self.model, self.workers, self.timeout = spec, model, workers, timeout
        self.began: "float | None" = time.perf_counter()  # until the first run
        self._impl = impl
        self._campaign = None if impl is not None else \
            Campaign(workers, _init_worker, (spec, model, 1, warm), scheduler, local)
        #: What runs the chunks, in one line; the Dask dashboard's address, if any.
        self.engine = "this process" if impl is not None else self._campaign.engine
        self.dashboard = None if impl is not None else self._campaign.dashboard
        if self._campaign is not None:
            self.workers = self._campaign.threads
        self._about: Optional[dict] = None

    def __enter__(self) -> "Sweeper":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._campaign is not None:
            self._campaign.close()

    def _map(self, work: Callable, tasks, timeout: float, group: int = 1):
        if self._campaign is None:  # the implementation supervises itself: run here
            _WORKER["impl"] = self._impl
            _WORKER.pop("error", None)
            return map(work, tasks)
        return self._campaign.map(work, tasks, timeout=timeout, group=group)

    def about(self) -> dict:
        """The implementation's name and whether it offers a batch callable (LoadError if it
        cannot be loaded)."""
        if self._about is None:
            (about,) = self._map(_describe, [None], LOAD_TIMEOUT)
            if isinstance(about, ChunkFailed):
                raise LoadError(f"cannot load implementation {self.spec!r}: importing it, "
                                f"{about.why}")
            if "error" in about:
                raise LoadError(about["error"])
            self._about = about
        return self._about

    def run(self, fmt: "Format | str", cases: "int | None", seed: int = 0,
            scalar: bool = False, chunk: int = CHUNK,
            progress: Optional[Callable[[SweepResult, float], None]] = None,
            first_chunk: int = 0, source: "Exhaustive | None" = None,
            why: bool = False, ratios_every: int = RATIOS_EVERY) -> SweepResult:
        """Sweep ``cases`` cases of ``fmt``: ``scalar``: call the step callable per case even
        if a batch one exists; ``first_chunk``: start at that chunk (to replay a failed one);
        ``source``: an exhaustive sweep's cases (``cases`` None: all of them from
        ``first_chunk`` on); ``why``: say why values are outside the bounded domain;
        ``ratios_every``: the error/bound for every K-th case (``run_chunk``)."""
        # the first run's start-up includes starting the workers; a later one's is its own
        since, self.began = self.began, None
        since = since if since is not None else time.perf_counter()
        fmt, model, timeout = get_format(fmt), self.model, self.timeout
        try:  # (float64 without x87 extended precision: the scaled arithmetic, still batch)
            check_model(get_model(model), fmt)
        except ValueError as exc:  # a model the batch reference does not cover
            raise UsageError(str(exc)) from None
        total = SweepResult(self.spec, fmt.name, get_model(model).name, seed,
                            workers=self.workers, engine=self.engine)
        about = self.about()
        total.impl = about["name"]
        if scalar and chunk == CHUNK:
            chunk = 1 << 13  # the scalar path is ~1000x slower: report progress more often
        if not about["batch"] and not scalar:
            scalar = True
            chunk = 1 << 13 if chunk == CHUNK else chunk
        (unsupported,) = self._map(_supports, [(fmt.name, scalar)], timeout)
        if isinstance(unsupported, str) and unsupported:  # nothing to check: said, exit 2
            raise UsageError(unsupported)
        if isinstance(unsupported, ChunkFailed):  # its first case crashed or hung: a finding
            _probe_failed(total, self.spec, fmt, model, unsupported.why)
            return total
        if source is not None:
            total.exhaustive = source.describe()
        cases = planned_cases(cases, source, first_chunk, chunk)
        tasks = ((fmt.name, seed, index, min(chunk, cases - (index - first_chunk) * chunk),
                  model, scalar, self.spec, source, why, ratios_every)
                 for index in range(first_chunk, first_chunk + -(-cases // chunk)))
        start = time.perf_counter()
        total.startup = start - since
        in_a_row = 0  # chunks failed as a whole, one after the other
        try:
            # a few chunks per task where every worker still gets several tasks
            group = 1 if scalar else max(1, min(GROUP, -(-cases // chunk) // (4 * self.workers)))
            for r in self._map(_work, tasks, timeout, group):
                if isinstance(r, ChunkFailed):
                    r = _failed_chunk(r.task, r.why)
                total.merge(r)
                if progress is not None:
                    progress(total, time.perf_counter() - start)
                in_a_row = in_a_row + 1 if r.failed == r.cases else 0
                if in_a_row >= MAX_FAILURES:  # every chunk would: say so, stop
                    total.stopped = (f"{MAX_FAILURES} chunks in a row failed; last: "
                                     f"{r.first_violations[0]['why']}")
                    break
        except WorkerDied as exc:
            total.stopped = str(exc)
        except Interrupted as exc:
            total.interrupted = exc.signal_name
        total.wall = time.perf_counter() - start
        if total.path == "" and not (total.failed or total.stopped or total.interrupted):
            raise LoadError("no cases were run")
        return total


def run_steps(sweeper: "Sweeper", fmt: "Format | str", cases: int, seed: int, options: dict,
              options_spec: str, chunk: int = 0, first_chunk: int = 0,
              progress: Optional[Callable[[SweepResult, float], None]] = None,
              steps: int = 0) -> SweepResult:
    """A sweep of ``cases`` steps of runs with ``options`` (the R1 mapping of the format; its
    SPEC ``options_spec``) from drawn states, through the implementation's
    ``step_from_batch`` (spec/protocol.md R4), in the sweeper's workers; with ``steps``, of
    whole runs of that many steps (``cases`` and ``chunk`` rounded up to whole runs), through
    its ``step_run_batch`` (or its run callable)."""
    from .run_sweep import STEP_CHUNK

    fmt = get_format(fmt)
    chunk = chunk or STEP_CHUNK
    if steps:
        chunk, cases = (-(-v // steps) * steps for v in (chunk, cases))
    total = SweepResult(sweeper.spec, fmt.name, get_model(sweeper.model).name, seed,
                        workers=sweeper.workers, engine=sweeper.engine, options=options_spec,
                        run_steps=steps)
    total.impl = sweeper.about()["name"]
    tasks = ((fmt.name, seed, index, min(chunk, cases - (index - first_chunk) * chunk),
              sweeper.model, sweeper.spec, options, options_spec, steps)
             for index in range(first_chunk, first_chunk + -(-cases // chunk)))
    start = time.perf_counter()
    since, sweeper.began = sweeper.began, None  # (the first run's start-up: the workers')
    total.startup = start - (since if since is not None else start)
    try:
        for r in sweeper._map(_step_work, tasks, sweeper.timeout):
            if isinstance(r, ChunkFailed):  # its worker died or hung: every step failed
                r = _failed_step_chunk(r.task, r.why)
            total.merge(r)
            if progress is not None:
                progress(total, time.perf_counter() - start)
    except WorkerDied as exc:
        total.stopped = str(exc)
    except Interrupted as exc:
        total.interrupted = exc.signal_name
    total.wall = time.perf_counter() - start
    return total


def planned_cases(cases: "int | None", source: "Exhaustive | None", first_chunk: int,
                  chunk: int) -> int:
    """The cases a sweep runs: ``cases``, but no more than an exhaustive ``source`` has left
    from ``first_chunk`` on (all of them where ``cases`` is None)."""
    if source is None:
        return cases or 0
    left = max(0, source.cases - first_chunk * chunk)
    return left if cases is None else min(cases, left)


def sweep(spec: str, fmt: "Format | str", cases: "int | None", seed: int = 0, workers: int = 1,
          model: str = "ieee", scalar: bool = False, chunk: int = CHUNK,
          progress: Optional[Callable[[SweepResult, float], None]] = None,
          timeout: float = CHUNK_TIMEOUT, first_chunk: int = 0,
          scheduler: "str | None" = None,
          started: Optional[Callable[["Sweeper"], None]] = None,
          source: "Exhaustive | None" = None,
          ratios_every: int = RATIOS_EVERY) -> SweepResult:
    """Sweep ``cases`` cases of ``fmt`` through implementation ``spec`` in supervised worker
    processes (one thread each): nothing the implementation does can end or stall the sweep.
    ``scalar``: call the step callable per case even if a batch one exists; ``timeout``:
    seconds a chunk may take; ``first_chunk``: start at that chunk (to replay a failed one);
    ``scheduler``: a Dask scheduler's address (else ``$NEURONSPEC_SCHEDULER``, else an embedded
    cluster of ``workers``); ``started(sweeper)`` is called once its workers are up;
    ``source``: the cases of an exhaustive sweep (``cases`` None: all of them);
    ``ratios_every``: the error/bound for every K-th case (``run_chunk``)."""
    fmt = get_format(fmt)
    planned = planned_cases(cases, source, first_chunk, chunk)
    warm = (fmt.name, max(64, min(1 << 13 if scalar and chunk == CHUNK else chunk, planned)),
            not scalar and planned >= COMPILE_PAYS)
    with Sweeper(spec, model, workers, timeout=timeout, warm=warm,
                 scheduler=scheduler) as sweeper:
        if started is not None:
            started(sweeper)
        return sweeper.run(fmt, cases, seed, scalar, chunk, progress, first_chunk, source,
                           ratios_every=ratios_every)


def record(result: SweepResult, command: str, path) -> None:
    """Merge ``result`` into the sweeps record (key implementation/format)."""
    from importlib import metadata

    versions = {"numpy": np.__version__}
    for package in ["numba"] + (["torch"] if "torch" in result.impl else []):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    entry = result.as_dict()
    entry.pop("first_violations")
    entry["command"] = command
    entry["cases_per_second"] = round(result.cases / result.wall) if result.wall else None
    entry["machine"] = records.machine()
    entry["versions"] = versions
    entry["engine"] = result.engine
    entry["seconds"] = {k: round(v, 1) for k, v in entry["seconds"].items()}
    entry["wall_seconds"] = round(entry["wall_seconds"], 1)
    entry["startup_seconds"] = round(entry["startup_seconds"], 1)
    key = f"{result.impl}/{result.fmt}"
    if result.options is not None:  # a sweep of steps of runs, per option set
        key += f"/run:{result.options or 'plain'}"
    if result.run_steps:  # ... of whole runs
        key += f"/runs-of-{result.run_steps}"
    if result.exhaustive:  # beside the seeded sweep of the same implementation and format
        key += "/exhaustive-" + ",".join(result.exhaustive["exhaustive"])
    records.update("sweeps", path, lambda old: dict(old, runs={**old.get("runs", {}),
                                                               key: entry}))


def render(result: SweepResult, command: str = "") -> str:
    """The terminal summary of a sweep (<= 100 columns)."""
    rate = result.cases / result.wall if result.wall else 0.0
    space = f"seed {result.seed}"
    if result.exhaustive:
        e = result.exhaustive
        space = (f"exhaustive over ({', '.join(e['exhaustive'])}): {e['values']:,} values each, "
                 f"{len(e['points'])} point(s) of grid {e['grid']!r} for the other inputs")
    what = "cases" if result.options is None else \
        f"steps from drawn states of runs with {result.options or 'every option off'}"
    if result.run_steps:
        what = (f"steps of {result.cases // result.run_steps:,} runs of {result.run_steps} steps "
                f"with {result.options or 'every option off'}")
    lines = [f"neuronspec sweep: {result.impl} in {result.fmt}, model {result.model}: "
             f"{result.cases:,} {what}, {space}"]
    if result.path:  # some chunk was judged
        lines.append(f"  {result.engine or f'{result.workers} worker(s)'}; "
                     f"{result.path} reference path,")
        unit = "cases" if result.options is None else "steps"
        lines.append(f"  {result.wall:.1f} s: {rate:,.0f} {unit}/s "
                     f"({rate / max(result.workers, 1):,.0f} per worker; start-up "
                     f"{result.startup:.1f} s before)")
    per = {k: v / result.cases * 1e9 for k, v in result.seconds.items()} \
        if result.cases and result.path else {}
    if per:
        exact = per.pop("exact_level", None)
        lines.append("  time per case: " + ", ".join(f"{k} {v:.0f} ns" for k, v in per.items())
                     + (f" (the exact level {exact:.0f} ns of it)" if exact is not None else ""))
    lines.append(f"  {'quantity':8} {'checked':>13} {'outside':>11} {'violations':>10} "
                 f"{'unexplained':>11} {'max err/bound':>13}  regime")
    for q, t in result.quantities.items():
        worst = t.worst or {}
        lines.append(f"  {q:8} {t.checked:>13,} {t.out_of_domain:>11,} {t.violations:>10,} "
                     f"{t.unexplained:>11,} {t.max_ratio:>13.6f}  {worst.get('regime', '')}")
        if worst.get("case"):
            inputs = "w,b,x,t,lr" if result.options is None else "w,b,buf_w,buf_b,x,t,lr"
            lines.append(f"    worst ({inputs}): {','.join(worst['case'])}")
        if t.by_variant:
            top = sorted(t.by_variant.items(), key=lambda kv: -kv[1])
            lines.append("    explained by: " + ", ".join(
                f"{name} {count:,}" for name, count in top[:4])
                + (f" (+{len(top) - 4} more)" if len(top) > 4 else ""))
    measured = [t.measured for t in result.quantities.values() if t.measured is not None]
    if measured:
        checked = max(t.checked for t in result.quantities.values())
        lines.append(f"  max err/bound: measured on {min(measured):,} to {max(measured):,} values "
                     f"per quantity (of up to {checked:,} checked); every other value is an "
                     "admitted")
        lines.append("    evaluation's bit for bit, within its bound by the soundness theorem "
                     "(--ratios-every 1: measure each)")
    if any(t.out_of_domain for t in result.quantities.values()):
        lines.append("  outside: values outside the bounded domain, where an admitted evaluation "
                     "overflows")
        lines.append(f"    (no bound; {DOMAIN_SECTION}); `neuronspec check` names the operation "
                     "per value")
    if result.unchecked:
        lines.append(f"  {result.unchecked:,} cases unchecked: the implementation raised an "
                     "overflow error where a quantity is outside the bounded domain (allowed)")
    if result.failed:
        lines.append(f"  {result.failed:,} cases failed outright: the implementation raised, "
                     "crashed, hung or returned garbage on them")
    if result.unjudged:
        lines.append(f"  {result.unjudged:,} steps not judged: {result.stopped_runs:,} runs "
                     "reported a state that is not finite or not a value of its format, and a")
        lines.append("    run is judged up to that step (spec/neuron.md 8.4)")
    for why, k in result.declined.items():
        lines.append(f"  {k:,} {'cases' if result.options is None else 'steps'} declined (a "
                     f"reported skip, not checked): {why}")
    lines.append(f"  violations (bounded level): {result.violations:,}; unexplained values "
                 f"(exact level): {result.unexplained:,}")
    for q, t in result.quantities.items():
        for u in t.first_unexplained[:2]:
            lines.append(f"  {q} = {u['observed']} ({u['regime']}): {u['why']}")
            lines.append(f"    replay: {u['replay']}")
    for v in result.first_violations:
        if v["quantity"] == "-":  # a case or a chunk the implementation failed on outright
            lines.append(f"  failed: {v['why']}")
        else:
            lines.append(f"  {v['quantity']} {v['why']} ({v['regime']}): observed "
                         f"{v['observed']!r}, error/bound {v['ratio']:.4g}")
        lines.append(f"    replay: {v['replay']}")
        if v.get("replay_chunk"):
            lines.append(f"    its chunk: {v['replay_chunk']}")
    if result.stopped:
        lines.append(f"  stopped early: {result.stopped}")
    if result.interrupted:
        lines.append(f"  interrupted by {result.interrupted}: the figures above cover the "
                     "chunks done before")
    if command:
        lines.append(f"  command: {command}")
    return "\n".join(lines)
