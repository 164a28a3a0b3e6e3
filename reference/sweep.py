"""Sweeps: millions of seeded cases through an implementation and the batch reference.

A sweep of N cases is a sequence of chunks; chunk ``i`` holds the same cases for every
implementation and every run with the same seed (``numpy.random.default_rng([seed, i])``, the
six regimes in equal shares, lr once per block of ``regimes.LR_BLOCK`` cases).  Each chunk goes
through the implementation (its batch callable, or the step callable case by case) and through
``batch`` (exact values, bounds, verdict); only statistics leave a chunk, so memory stays flat
as N grows.  Chunks spread over processes (``workers``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from . import batch
from .bounds import get_model
from .formats import Format, float_hex, get_format
from .regimes import REGIMES, regime_arrays

__all__ = ["SweepResult", "QuantityTally", "run_chunk", "sweep", "chunk_cases", "CHUNK"]

CHUNK = 1 << 18  # ~40 MB of arrays per chunk; large enough that per-chunk costs vanish
#: First violations kept (each with its replay command).
KEEP = 5


def chunk_cases(fmt: Format, seed: int, index: int, n: int) -> tuple[dict, list[tuple[str, int, int]]]:
    """The cases of chunk ``index``: arrays w, b, x, t, lr and the regimes' slices."""
    rng = np.random.default_rng([seed, index])
    parts, slices, start = [], [], 0
    names = list(REGIMES)
    for k, regime in enumerate(names):
        size = n // len(names) + (1 if k < n % len(names) else 0)
        if size == 0:
            continue
        parts.append(regime_arrays(fmt, regime, rng, size))
        slices.append((regime, start, start + size))
        start += size
    cols = {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(batch.INPUTS)}
    return cols, slices


@dataclass
class QuantityTally:
    checked: int = 0
    out_of_domain: int = 0
    violations: int = 0
    resolved: int = 0  # values decided by the scalar path (error too close to the bound)
    max_ratio: float = 0.0
    worst: Optional[dict] = None
    by_regime: dict = field(default_factory=dict)

    def merge(self, other: "QuantityTally") -> None:
        self.checked += other.checked
        self.out_of_domain += other.out_of_domain
        self.violations += other.violations
        self.resolved += other.resolved
        if other.worst is not None and (self.worst is None or other.max_ratio > self.max_ratio):
            self.max_ratio, self.worst = other.max_ratio, other.worst
        for k, v in other.by_regime.items():
            self.by_regime[k] = max(self.by_regime.get(k, 0.0), v)

    def as_dict(self) -> dict:
        return {"checked": self.checked, "out_of_domain": self.out_of_domain,
                "violations": self.violations, "resolved": self.resolved,
                "max_ratio": self.max_ratio, "worst": self.worst, "by_regime": self.by_regime}


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
    """The implementation's arrays, and a mask of cases where it raised an ArithmeticError."""
    from .impls import ImplementationError

    n = len(cols["w"])
    if not scalar:
        return impl.run_batch(fmt.name, cols), np.zeros(n, dtype=bool)
    names = batch.QUANTITIES + ("dL_dy",)
    out = {q: np.full(n, np.nan) for q in names}
    raised = np.zeros(n, dtype=bool)
    rows = zip(*(cols[k].tolist() for k in batch.INPUTS))
    for i, case in enumerate(rows):
        try:
            values = impl(fmt.name, case)
        except ImplementationError as exc:
            if isinstance(exc.__cause__, ArithmeticError):
                raised[i] = True
                continue
            raise
        for q, v in values.items():
            out[q][i] = v
    if np.isnan(out["dL_dy"]).all():
        del out["dL_dy"]
    return out, raised


def _case_record(fmt: Format, cols: dict, i: int) -> list[str]:
    return [float_hex(float(cols[k][i])) for k in batch.INPUTS]


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
    names = batch.QUANTITIES + (("dL_dy",) if "dL_dy" in outputs else ())
    kernel = batch._kernel() if engine != "numpy" else None
    if kernel is not None and batch.work_for(fmt) is batch.BINARY64 and not raised.any():
        result.path = "compiled"
        _tally_compiled(kernel, result, impl, fmt, model, cols, outputs, names, slices)
    else:
        result.path = "numpy"
        _tally_numpy(result, impl, fmt, model, cols, outputs, names, slices, raised)
    t3 = time.perf_counter()
    result.seconds = {"cases": t1 - t0, "implementation": t2 - t1, "reference": t3 - t2}
    return result


def _record_violation(result, impl, fmt, model, cols, slices, q, i, observed, ratio, why):
    from .properties import replay_command

    if len(result.first_violations) >= KEEP:
        return
    case = tuple(float(cols[k][i]) for k in batch.INPUTS)
    regime = next(r for r, a, b in slices if a <= i < b)
    result.first_violations.append({
        "quantity": q, "regime": regime, "case": _case_record(fmt, cols, i),
        "observed": float(observed), "ratio": ratio, "why": why,
        "replay": replay_command(impl, fmt, case, get_model(model))})


def _worst(fmt, cols, slices, i, ratio, observed) -> dict:
    regime = next(r for r, a, b in slices if a <= i < b)
    return {"ratio": ratio, "regime": regime, "case": _case_record(fmt, cols, i),
            "observed": float_hex(float(observed))}


def _tally_numpy(result, impl, fmt, model, cols, outputs, names, slices, raised) -> None:
    verdict = batch.check_batch(fmt, cols, outputs, model, engine="numpy")
    # an overflow error raised on a case partly outside the domain is allowed: unchecked
    allowed = raised & np.logical_or.reduce([verdict.out_of_domain[q] for q in names])
    result.unchecked += int(allowed.sum())
    for q in names:
        t = result.tally(q)
        ood = verdict.out_of_domain[q]
        bad = verdict.violation[q] & ~allowed
        ratio = np.where(allowed | ood, np.nan, verdict.ratio[q])
        t.checked += int((~ood & ~allowed).sum())
        t.out_of_domain += int(ood.sum())
        t.violations += int(bad.sum())
        t.resolved += (verdict.resolved_by or {}).get(q, 0)
        for regime, a, b in slices:
            part = ratio[a:b]
            if np.isfinite(part).any() or np.isinf(part).any():
                t.by_regime[regime] = max(t.by_regime.get(regime, 0.0), float(np.nanmax(part)))
        if not np.all(np.isnan(ratio)):
            i = int(np.nanargmax(ratio))
            if t.worst is None or ratio[i] > t.max_ratio:
                t.max_ratio, t.worst = float(ratio[i]), _worst(fmt, cols, slices, i, float(ratio[i]),
                                                              outputs[q][i])
        for i in np.flatnonzero(bad)[:KEEP]:
            why = ("not finite" if verdict.not_finite[q][i] else "not a value of the format"
                   if verdict.not_in_format[q][i] else "outside its bound")
            _record_violation(result, impl, fmt, model, cols, slices, q, int(i), outputs[q][i],
                              float(verdict.ratio[q][i]), why)


def _tally_compiled(kernel, result, impl, fmt, model, cols, outputs, names, slices) -> None:
    """Estimates for every value (``quick_kernel``), the full judgement for the few that need
    it and for each quantity's largest estimate (``verdict_kernel``)."""
    from .batch_kernel import BEYOND, NEAR, NOT_FINITE, NOT_IN_FORMAT, OK, OUT_OF_DOMAIN

    m = get_model(model)
    args = [np.ascontiguousarray(cols[k], dtype=np.float64) for k in batch.INPUTS]
    n = len(args[0])
    block = getattr(outputs, "block", None)
    if block is None or list(outputs) != list(names):
        block = np.stack([outputs[q] for q in names])
    # dL_dy is dL_db's node: when the two rows are equal bit for bit, judge one of them
    twin = "dL_dy" in names and np.array_equal(block[names.index("dL_dy")].view(np.uint64),
                                                block[names.index("dL_db")].view(np.uint64))
    if twin:
        names = batch.QUANTITIES
        block = block[:len(names)]  # rows in the kernel's order; dL_dy was the last
    outs = block
    const = (fmt.p, fmt.emin, fmt.largest_finite, bool(m.wide_work and fmt.p < batch.WIDE_FORMAT.p),
             bool(m.pow_square))
    estimate = np.empty((len(names), n))
    attention = np.empty(n, dtype=np.uint8)
    kernel.quick_kernel(*args, outs, *const, estimate, attention)
    # the full judgement on the cases that need it, and on each quantity's largest estimates
    rows = set(np.flatnonzero(attention).tolist())
    for k in range(len(names)):
        for _, a, b in slices:
            if b > a:
                rows.add(a + int(np.argmax(estimate[k, a:b])))
    idx = np.array(sorted(rows), dtype=np.int64)
    ratio = np.empty((len(names), len(idx)))
    status = np.empty((len(names), len(idx)), dtype=np.int8)
    kernel.verdict_kernel(*(v[idx] for v in args), np.ascontiguousarray(outs[:, idx]), *const,
                          ratio, status)
    cache: dict = {}
    why = {BEYOND: "outside its bound", NOT_FINITE: "not finite",
           NOT_IN_FORMAT: "not a value of the format"}
    regime_of = np.searchsorted(np.array([b for _, _, b in slices]), idx, side="right")
    for k, q in enumerate(names):
        t = result.tally(q)
        est = estimate[k]
        r_k = ratio[k].copy()
        bad = 0
        for j in np.flatnonzero(status[k] != OK).tolist():
            i, st, r = int(idx[j]), int(status[k, j]), float(ratio[k, j])
            if st == OUT_OF_DOMAIN:
                continue
            if st == NEAR:  # within 2**-45 of the bound: the scalar path decides
                case = tuple(float(v[i]) for v in args)
                violated, r = batch._scalar_decision(fmt, case, q, float(outs[k, i]), m, cache)
                t.resolved += 1
                st = BEYOND if violated else OK
                r_k[j] = r
            if st in why:
                bad += 1
                _record_violation(result, impl, fmt, model, cols, slices, q, i, outs[k, i], r,
                                  why[st])
        ood = int(np.count_nonzero(est < 0))
        t.out_of_domain += ood
        t.checked += n - ood
        t.violations += bad
        # the largest ratio: exact on the judged cases, which include each largest estimate
        in_domain = est[idx] >= 0
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
            t.max_ratio, t.worst = r, _worst(fmt, cols, slices, i, r, outs[k, i])
    if twin:  # the same values against the same bound: the same statistics
        import copy

        result.quantities["dL_dy"] = copy.deepcopy(result.tally("dL_db"))


# ---- the run: chunks over processes ------------------------------------------------------

_WORKER: dict = {}


def _init_worker(spec: str, threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from .impls import load

    _WORKER["impl"] = load(spec)
    _limit_threads(threads)


def _limit_threads(threads: int) -> None:
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
    from .impls import LoadError, load

    fmt = get_format(fmt)
    impl = load(spec)
    if not scalar and impl.batch is None:
        scalar = True
    if scalar and chunk == CHUNK:
        chunk = 1 << 13  # the scalar path is ~1000x slower: report progress more often
    tasks = []
    for index, start in enumerate(range(0, cases, chunk)):
        tasks.append((fmt.name, seed, index, min(chunk, cases - start), model, scalar))
    total = SweepResult(impl.name, fmt.name, get_model(model).name, seed, workers=workers)
    start = time.perf_counter()
    if workers <= 1:
        _WORKER["impl"] = impl
        _limit_threads(1)
        results: Any = map(_work, tasks)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers, _init_worker, (spec, 1))
        results = pool.imap(_work, tasks)
    try:
        for r in results:
            total.merge(r)
            if progress is not None:
                progress(total, time.perf_counter() - start)
    finally:
        if workers > 1:
            pool.terminate()
    total.wall = time.perf_counter() - start
    if total.path == "":
        raise LoadError("no cases were run")
    return total


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


def record(result: SweepResult, command: str, path) -> None:
    """Merge ``result`` into the JSON file of recorded sweeps (key impl/format)."""
    import json
    import platform
    from pathlib import Path

    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    runs = data.setdefault("runs", {})
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
    entry["machine"] = f"{_cpu_name()}, {os.cpu_count()} cpus, {platform.system()} {platform.machine()}"
    entry["versions"] = versions
    entry["seconds"] = {k: round(v, 1) for k, v in entry["seconds"].items()}
    entry["wall_seconds"] = round(entry["wall_seconds"], 1)
    runs[f"{result.impl}/{result.fmt}"] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown cpu"
