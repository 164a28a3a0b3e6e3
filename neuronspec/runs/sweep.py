"""``neuronspec sweep``: millions of seeded cases through an implementation and the batch path.

A sweep of N cases is a sequence of chunks; chunk ``i`` holds the same cases for every
implementation and every run with the same seed (``cases.chunks.chunk_cases``).  Each chunk goes
through the implementation (its batch callable, or the step callable case by case) and through
``reference.batch`` (exact values, bounds, verdict); only statistics leave a chunk, so memory
stays flat as N grows.  Chunks spread over processes (``campaign``).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from reference.batch import (BINARY64, NEAR, OK, OUT_OF_DOMAIN, ROWS, check_batch, screen_batch,
                             work_for)
from reference.bounds import get_model
from reference.formats import Format, float_hex, get_format
from reference.step import INPUTS, REQUIRED

from ..artefacts import records
from ..cases.chunks import chunk_cases
from ..errors import ImplementationError, LoadError, UsageError
from ..findings import replay_command
from ..implementations import load
from .campaign import run_chunks
from .tally import KEEP, QuantityTally

__all__ = ["SweepResult", "run_chunk", "sweep", "render", "record", "CHUNK"]

CHUNK = 1 << 18  # ~40 MB of arrays per chunk; large enough that per-chunk costs vanish
#: Why a value failed, by batch status.
WHY = {1: "outside its bound", 4: "not finite", 5: "not a value of the format"}


@dataclass
class SweepResult:
    impl: str
    fmt: str
    model: str
    seed: int
    cases: int = 0
    chunks: int = 0
    unchecked: int = 0  # cases where the implementation raised an overflow error, allowed
    quantities: dict = field(default_factory=dict)
    first_violations: list = field(default_factory=list)
    seconds: dict = field(default_factory=lambda: {"cases": 0.0, "implementation": 0.0,
                                                   "reference": 0.0})
    wall: float = 0.0
    workers: int = 1
    path: str = ""

    def tally(self, q: str) -> QuantityTally:
        return self.quantities.setdefault(q, QuantityTally())

    def merge(self, other: "SweepResult") -> None:
        self.cases += other.cases
        self.chunks += other.chunks
        self.unchecked += other.unchecked
        for q, t in other.quantities.items():
            self.tally(q).merge(t)
        self.first_violations = (self.first_violations + other.first_violations)[:KEEP]
        for k, v in other.seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        self.path = self.path or other.path

    @property
    def violations(self) -> int:
        return sum(t.violations for t in self.quantities.values())

    def as_dict(self) -> dict:
        return {"impl": self.impl, "format": self.fmt, "model": self.model, "seed": self.seed,
                "cases": self.cases, "chunks": self.chunks, "unchecked": self.unchecked,
                "violations": self.violations,
                "quantities": {q: t.as_dict() for q, t in self.quantities.items()},
                "first_violations": self.first_violations, "seconds": self.seconds,
                "wall_seconds": self.wall, "workers": self.workers, "path": self.path}


def _outputs(impl, fmt: Format, cols: dict, scalar: bool) -> tuple[dict, np.ndarray]:
    """The implementation's arrays, and a mask of cases where it raised an overflow error."""
    n = len(cols["w"])
    if not scalar:
        return impl.run_batch(fmt.name, cols), np.zeros(n, dtype=bool)
    out = {q: np.full(n, np.nan) for q in ROWS}
    raised = np.zeros(n, dtype=bool)
    rows = zip(*(cols[k].tolist() for k in INPUTS))
    for i, case in enumerate(rows):
        try:
            values = impl(fmt.name, case)
        except ImplementationError as exc:
            if exc.overflow:
                raised[i] = True
                continue
            raise
        for q, v in values.items():
            out[q][i] = v
    if np.isnan(out["dL_dy"]).all():
        del out["dL_dy"]
    return out, raised


def _case_record(cols: dict, i: int) -> list[str]:
    return [float_hex(float(cols[k][i])) for k in INPUTS]


def _regime_at(slices, i: int) -> str:
    return next(r for r, a, b in slices if a <= i < b)


def run_chunk(impl, fmt: "Format | str", seed: int, index: int, n: int, model: str = "ieee",
              scalar: bool = False, engine: str = "auto") -> SweepResult:
    """Chunk ``index`` (n cases) of a sweep: statistics only."""
    fmt = get_format(fmt)
    result = SweepResult(impl.name, fmt.name, get_model(model).name, seed, cases=n, chunks=1)
    t0 = time.perf_counter()
    cols, slices = chunk_cases(fmt, seed, index, n)
    t1 = time.perf_counter()
    outputs, raised = _outputs(impl, fmt, cols, scalar)
    t2 = time.perf_counter()
    if raised.any():  # allowed only where some quantity is outside the bounded domain
        outputs = {q: np.where(raised, np.nan, v) for q, v in outputs.items()}
    names = tuple(q for q in ROWS if q in outputs)
    screened = None
    if engine != "numpy" and work_for(fmt) is BINARY64 and not raised.any():
        screened = _screen(fmt, model, cols, outputs, names)
    if screened is not None:
        result.path = "compiled"
        _tally_screened(result, impl, fmt, model, cols, slices, *screened)
    else:
        result.path = "numpy"
        _tally_all(result, impl, fmt, model, cols, outputs, names, slices, raised)
    t3 = time.perf_counter()
    result.seconds = {"cases": t1 - t0, "implementation": t2 - t1, "reference": t3 - t2}
    return result


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


def _tally_all(result, impl, fmt, model, cols, outputs, names, slices, raised) -> None:
    """The full verdict on every value (numpy path, or where the implementation raised)."""
    verdict = check_batch(fmt, cols, outputs, model, engine="numpy")
    ood_any = np.logical_or.reduce([verdict.out_of_domain[q] for q in names])
    # an overflow error raised on a case partly outside the domain is allowed: unchecked
    allowed = raised & ood_any
    result.unchecked += int(allowed.sum())
    for q in names:
        t = result.tally(q)
        status = verdict.status[q]
        ood = status == OUT_OF_DOMAIN
        bad = verdict.violation[q] & ~allowed
        ratio = np.where(allowed | ood, np.nan, verdict.ratio[q])
        t.checked += int((~ood & ~allowed).sum())
        t.out_of_domain += int(ood.sum())
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
                    attention) -> None:
    """The full judgement for the values that need it and for each quantity's largest
    estimate; the estimates (upper bounds of error/bound) clear every other value."""
    n = block.shape[1]
    rows = set(np.flatnonzero(attention).tolist())
    for k in range(len(names)):
        for _, a, b in slices:
            if b > a:
                rows.add(a + int(np.argmax(estimate[k, a:b])))
    idx = np.array(sorted(rows), dtype=np.int64)
    sub_cols = {k: np.ascontiguousarray(cols[k][idx]) for k in INPUTS}
    verdict = check_batch(fmt, sub_cols, dict(zip(names, block[:, idx])), model)
    regime_of = np.searchsorted(np.array([b for _, _, b in slices]), idx, side="right")
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
        ood = int(np.count_nonzero(estimate[k] < 0))
        t.out_of_domain += ood
        t.checked += n - ood
        t.violations += bad
        # the largest ratio: exact on the judged cases, which include each largest estimate
        in_domain = estimate[k][idx] >= 0
        best_j = -1
        for g, (regime, a, b) in enumerate(slices):
            sel = np.flatnonzero(in_domain & (regime_of == g))
            if len(sel) == 0:
                continue
            j = int(sel[np.argmax(r_k[sel])])
            t.by_regime[regime] = max(t.by_regime.get(regime, 0.0), float(r_k[j]))
            if best_j < 0 or r_k[j] > r_k[best_j]:
                best_j = j
        if best_j >= 0 and (t.worst is None or r_k[best_j] > t.max_ratio):
            i, r = int(idx[best_j]), float(r_k[best_j])
            t.max_ratio, t.worst = r, _worst(cols, slices, i, r, block[k, i])
    if twin:  # the same values against the same bound: the same statistics
        result.quantities["dL_dy"] = copy.deepcopy(result.tally("dL_db"))


# ---- the run: chunks over processes ------------------------------------------------------

_WORKER: dict = {}


def _init_worker(spec: "str | None", threads: int, impl=None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _WORKER["impl"] = impl if impl is not None else load(spec)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _work(task: tuple) -> SweepResult:
    fmt, seed, index, n, model, scalar = task
    return run_chunk(_WORKER["impl"], fmt, seed, index, n, model, scalar)


def sweep(spec: str, fmt: "Format | str", cases: int, seed: int = 0, workers: int = 1,
          model: str = "ieee", scalar: bool = False, chunk: int = CHUNK,
          progress: Optional[Callable[[SweepResult, float], None]] = None) -> SweepResult:
    """Sweep ``cases`` cases of ``fmt`` through implementation ``spec`` (one thread per
    worker).  ``scalar``: call the step callable per case even if a batch one exists."""
    fmt = get_format(fmt)
    impl = load(spec)
    try:
        work_for(fmt)
    except RuntimeError as exc:  # no extended precision on this platform
        if not scalar:
            raise UsageError(str(exc)) from None
    if not scalar and impl.batch is None:
        scalar = True
    if scalar and chunk == CHUNK:
        chunk = 1 << 13  # the scalar path is ~1000x slower: report progress more often
    tasks = [(fmt.name, seed, index, min(chunk, cases - start), model, scalar)
             for index, start in enumerate(range(0, cases, chunk))]
    total = SweepResult(impl.name, fmt.name, get_model(model).name, seed, workers=workers)
    start = time.perf_counter()
    # one worker: this process, with the implementation already loaded
    init: tuple[Any, ...] = (spec, 1) if workers > 1 else (spec, 1, impl)
    try:
        for r in run_chunks(_work, tasks, workers=workers, initializer=_init_worker,
                            initargs=init):
            total.merge(r)
            if progress is not None:
                progress(total, time.perf_counter() - start)
    except NotImplementedError as exc:
        raise UsageError(f"{impl.name} does not support {fmt.name}: "
                         f"{exc or 'NotImplementedError'}") from None
    total.wall = time.perf_counter() - start
    if total.path == "":
        raise LoadError("no cases were run")
    return total


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
    entry["seconds"] = {k: round(v, 1) for k, v in entry["seconds"].items()}
    entry["wall_seconds"] = round(entry["wall_seconds"], 1)
    key = f"{result.impl}/{result.fmt}"
    records.update("sweeps", path, lambda old: dict(old, runs={**old.get("runs", {}),
                                                               key: entry}))


def render(result: SweepResult, command: str = "") -> str:
    """The terminal summary of a sweep (<= 100 columns)."""
    rate = result.cases / result.wall if result.wall else 0.0
    lines = [f"neuronspec sweep: {result.impl} in {result.fmt}, model {result.model}: "
             f"{result.cases:,} cases, seed {result.seed}",
             f"  {result.workers} worker(s), {result.path} reference path, {result.wall:.1f} s: "
             f"{rate:,.0f} cases/s ({rate / max(result.workers, 1):,.0f} per worker)"]
    per = {k: v / result.cases * 1e9 for k, v in result.seconds.items()} if result.cases else {}
    if per:
        lines.append("  time per case: " + ", ".join(f"{k} {v:.0f} ns" for k, v in per.items()))
    lines.append(f"  {'quantity':8} {'checked':>13} {'outside':>13} {'violations':>11} "
                 f"{'max err/bound':>14}  regime")
    for q, t in result.quantities.items():
        worst = t.worst or {}
        lines.append(f"  {q:8} {t.checked:>13,} {t.out_of_domain:>13,} {t.violations:>11,} "
                     f"{t.max_ratio:>14.6f}  {worst.get('regime', '')}")
        if worst.get("case"):
            lines.append(f"    worst (w,b,x,t,lr): {','.join(worst['case'])}")
    if result.unchecked:
        lines.append(f"  {result.unchecked:,} cases unchecked: the implementation raised an "
                     "overflow error where a quantity is outside the bounded domain (allowed)")
    lines.append(f"  violations: {result.violations}")
    for v in result.first_violations:
        lines.append(f"  {v['quantity']} {v['why']} ({v['regime']}): observed {v['observed']!r}, "
                     f"error/bound {v['ratio']:.4g}")
        lines.append(f"    replay: {v['replay']}")
    if command:
        lines.append(f"  command: {command}")
    return "\n".join(lines)
