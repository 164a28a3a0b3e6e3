"""``neuronspec soundness --runs``: the bounds of a step of a run (spec/tolerances.md 2.8)
measured per format and option set, on every legal evaluation (``reference.optim_rounded``).

Each case is one step of a run of the option set from a drawn state: moderate values, t close to
w*x + b (cancellation), or values at the bottom of the format; a first step (no buffer) or a
later one (buffers drawn too).  Every distinct value a legal evaluation gives is judged against
its bound: a violation is a bound that is not sound.  The record (``spec/data/
run_soundness.json``) keeps, per format and option set, the steps, the values judged, the
violations and the worst error/bound per quantity; ``spec/tolerances.md`` 2.8 renders it.
Under another model than ``ieee`` (``--model``, e.g. ``ieee+hyper-binary64`` with binary64
option values from ``--options``), the record keeps the figures apart, under ``models``.
Chunks run through the campaign engine (local workers or a Dask scheduler).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator

import numpy as np

from reference.formats import Format, get_format
from reference.judge import judge
from reference.model import get_model
from reference.optim import State, exact_sgd_step
from reference.optim_bounds import RUN_QUANTITIES, buffer_format, sgd_bounds
from reference.optim_judge import judge_values_of_step
from reference.optim_rounded import sgd_legal

from ..artefacts import records
from ..cases.options import (DEFAULT_SETS, OptionSet, convention_of, default_sets,
                             parse_spec, reference_options)
from ..cases.runs import binary64_rates, draw_step_arrays, state_at, step_at
from .campaign import completed, run_chunks

__all__ = ["judge_legal_values", "run_chunk", "soundness_runs_report",
           "record", "COMMAND"]

COMMAND = "neuronspec soundness --runs"
#: Steps per chunk (each chunk draws its steps from its own seed), and chunks per batch task.
CHUNK = 500
GROUP = 64
#: The formats whose steps the batch path judges (float64 needs x87 long double: else scalar).
BATCH_FORMATS = ("float16", "bfloat16", "float32", "float64")


def judge_legal_values(fmt: Format, state: State, x: float, t: float, lr: float,
                       options: Any, worst: dict, model: str = "ieee"
                       ) -> tuple[int, int, int, "str | None"]:
    """Every distinct value a legal evaluation of one step gives under ``model``, judged
    against its bound (the buffers as values of the buffer format); ``worst`` (quantity ->
    error/bound) grows.
    Returns (values judged, violations, values outside the bounded domain, the first
    violation in words or None)."""
    bounds = sgd_bounds(fmt, state, x, t, lr, options, model)
    exact = dict(exact_sgd_step(state, x, t, lr, options))
    exact["dL_dy"] = exact["dL_db"]
    legal = sgd_legal(fmt, state, x, t, lr, options, model)
    buffer = buffer_format(fmt, options)
    values = violations = outside = 0
    first = None
    for q, found in legal.values.items():
        for value, names in found.values():
            j = judge(buffer if q.startswith("buf_") else fmt, q, value, exact[q], bounds[q],
                      legal)
            values += 1
            if j.violation:
                violations += 1
                if first is None:
                    first = (f"{q} of {names[0]} from {state} with x={x!r}, t={t!r}, "
                             f"lr={lr!r}: {j.why}")
            elif j.ok:
                worst[q] = max(worst.get(q, 0.0), j.ratio)
            else:
                outside += 1
    return values, violations, outside, first


def _option_set(spec: dict) -> OptionSet:
    """The option set of a task: its SPEC (``options``), or its index in DEFAULT_SETS."""
    return parse_spec(spec["options"]) if "options" in spec else DEFAULT_SETS[spec["set"]]


def _options(fmt: Format, spec: dict) -> tuple[dict, str]:
    """The options mapping of a task in ``fmt`` (binary64 values under hyper-binary64), and its
    model."""
    model = spec.get("model", "ieee")
    return _option_set(spec).for_format(fmt, hyper=get_model(model).hyper_binary64), model


def _draw(fmt: Format, options: dict, spec: dict, chunk: int, cases: int) -> dict:
    """The steps of chunk ``chunk`` of a format and option set, as columns: ``cases`` steps
    of ``cases.runs.draw_step_arrays`` from the chunk's own seed, later steps (with buffers) in
    three chunks of four where the options keep buffers (the batch path judges the same
    steps, chunk by chunk)."""
    cols, _, _ = draw_step_arrays(fmt, options, (spec["seed"], spec["set"]), chunk, cases,
                                  later=chunk % 4 != 0)
    if get_model(spec.get("model", "ieee")).lr_binary64:  # (binary64 rates, as it allows)
        cols["lr"] = binary64_rates(cols["lr"], (spec["seed"], spec["set"], chunk))
    return cols


def run_chunk(spec: dict) -> dict:
    """One chunk: ``cases`` steps of one format and option set (``options``, its SPEC, or
    ``set``, its index in DEFAULT_SETS; ``set`` seeds the draw), each judged on the scalar
    path; a spec with ``chunks`` (several chunks' (index, cases)) goes through the batch path
    instead (:func:`run_batch`), judging the same steps."""
    if "chunks" in spec:
        return run_batch(spec)
    fmt = get_format(spec["format"])
    options, model = _options(fmt, spec)
    reference = reference_options(options)
    worst = {q: 0.0 for q in RUN_QUANTITIES}
    values = violations = outside = 0
    first: "str | None" = None
    cols = _draw(fmt, options, spec, spec["chunk"], spec["cases"])
    for j in range(spec["cases"]):
        n, bad, out, why = judge_legal_values(fmt, state_at(cols, j), *step_at(cols, j),
                                              reference, worst, model)
        values, violations, outside = values + n, violations + bad, outside + out
        first = first or why
    return {"cases": spec["cases"], "values": values, "violations": violations,
            "outside": outside, "worst": worst, "first": first}


def run_batch(spec: dict) -> dict:
    """Several chunks' steps judged on arrays: bounds from ``reference.batch.optim_chain``,
    the legal evaluations from ``reference.batch.optim_legal``, each distinct value judged by
    ``reference.batch.judgement``.  A value too close to its bound for the arrays is judged
    against the step's exact bound, and a step with an evaluation the arrays cannot guarantee
    on the scalar path.  The same figures as :func:`run_chunk` on each chunk."""
    fmt = get_format(spec["format"])
    options, model = _options(fmt, spec)
    reference = reference_options(options)
    tally = {"cases": sum(cases for _, cases in spec["chunks"]), "values": 0, "violations": 0,
             "outside": 0, "worst": {q: 0.0 for q in RUN_QUANTITIES}, "first": None}
    parts = [_draw(fmt, options, spec, chunk, cases) for chunk, cases in spec["chunks"]]
    for later in (False, True):  # first steps, then later ones (buffers for all or none)
        group = [p for p in parts if (p["buf_w"] is not None) == later]
        if group:
            _judge_batch(fmt, {k: None if group[0][k] is None else
                               np.concatenate([p[k] for p in group]) for k in group[0]},
                         reference, tally, model)
    return tally


def _judge_batch(fmt: Format, cols: dict, options: Any, tally: dict, model: str = "ieee"
                 ) -> None:
    """Every distinct value of every legal evaluation of the steps ``cols`` (all first steps,
    or all later ones) judged against its bound, into ``tally``."""
    from reference.batch import ArrayOps, Pair, work_for
    from reference.batch.judgement import (BEYOND, NEAR, NOT_FINITE, NOT_IN_FORMAT, OK,
                                           OUT_OF_DOMAIN, WRONG_ZERO, judge_values)
    from reference.batch.optim_chain import batch_sgd_bounds
    from reference.batch.optim_legal import sgd_evaluations_batch
    from reference.judge import NONNEGATIVE

    bounds = batch_sgd_bounds(fmt, cols, options, model)
    evaluations, undecided = sgd_evaluations_batch(fmt, cols, options, model)
    scalar = np.asarray(undecided, dtype=bool)  # steps the arrays cannot guarantee
    work = work_for(fmt)
    results = []
    for q, rb in bounds.items():
        if rb is None:
            continue
        # (evaluations that share a node share its array: each array once)
        block = np.stack([np.asarray(a, dtype=np.float64) for a in
                          {id(v[q]): v[q] for v in evaluations.values()}.values()])
        bits = np.where(np.isnan(block), np.nan, block).view(np.uint64)
        order = np.sort(bits, axis=0)  # distinct values per step: the first of each run
        distinct = np.ones(block.shape, dtype=bool)
        distinct[1:] = order[1:] != order[:-1]
        rows, cols_ = np.nonzero(distinct)  # each distinct value once, with its step
        values = order.view(np.float64)[rows, cols_]
        at = lambda a: np.broadcast_to(a, (len(rb.bound),))[cols_]  # noqa: E731
        with np.errstate(invalid="ignore", over="ignore"):
            status, ratio = judge_values(  # (the values in the work type, as the pairs are)
                ArrayOps, rb.fmt, work, values.astype(work.dtype),
                Pair(at(rb.pair.hi), at(rb.pair.lo), at(rb.pair.delta)), at(rb.bound),
                at(rb.out_of_domain), at(rb.low), at(rb.high), nonnegative=q in NONNEGATIVE)
        status = np.array(np.broadcast_to(status, values.shape))
        ratio = np.array(np.broadcast_to(ratio, values.shape), dtype=np.float64)
        results.append((q, cols_, status, ratio, values))
    # values too close to their bound for the arrays (legal values often attain it): each
    # judged against the step's exact bound (reference.optim_bounds), as the scalar path does
    near: dict[int, dict[str, list]] = {}  # step -> quantity -> (entry, value)
    for q, steps_of, status, ratio, values in results:
        for e in np.flatnonzero((status == NEAR) & ~scalar[steps_of]).tolist():
            near.setdefault(int(steps_of[e]), {}).setdefault(q, []).append((e, values[e]))
    decided = {q: (status, ratio) for q, _, status, ratio, _ in results}
    for j, per in near.items():
        judged = judge_values_of_step(fmt, state_at(cols, j), *step_at(cols, j), options,
                                      {q: [v for _, v in entries] for q, entries in per.items()},
                                      model)
        for q, entries in per.items():
            status, ratio = decided[q]
            for (e, _), one in zip(entries, judged[q]):
                status[e] = BEYOND if one.violation else OK if one.ok else OUT_OF_DOMAIN
                ratio[e] = one.ratio
    for q, steps_of, status, ratio, _ in results:
        judged = ~scalar[steps_of]
        bad = judged & np.isin(status, (BEYOND, NOT_FINITE, NOT_IN_FORMAT, WRONG_ZERO))
        outside = judged & (status == OUT_OF_DOMAIN)
        ok = judged & ~bad & ~outside
        tally["values"] += int(judged.sum())
        tally["violations"] += int(bad.sum())
        tally["outside"] += int(outside.sum())
        if ok.any():
            tally["worst"][q] = max(tally["worst"][q], float(ratio[ok].max()))
        if bad.any() and tally["first"] is None:
            e = int(np.flatnonzero(bad)[0])
            j = int(steps_of[e])
            state, (x, t, lr) = state_at(cols, j), step_at(cols, j)
            tally["first"] = (f"{q} = {float(values[e])!r} from {state} with x={x!r}, "
                              f"t={t!r}, lr={lr!r}: a legal value outside its bound (batch "
                              f"status {int(status[e])})")
    for j in np.flatnonzero(scalar).tolist():
        n, bad, out, why = judge_legal_values(fmt, state_at(cols, j), *step_at(cols, j),
                                              options, tally["worst"], model)
        tally["values"] += n
        tally["violations"] += bad
        tally["outside"] += out
        tally["first"] = tally["first"] or why


def _specs(formats: list[str], cases: int, seed: int, batch: bool,
           sets: "list[OptionSet] | None", model: str = "ieee") -> Iterator[dict]:
    """The campaign's tasks: per format and option set, chunks of ``CHUNK`` steps; on the
    batch path (``BATCH_FORMATS``), ``GROUP`` chunks a task.  ``sets``: the option sets
    (None: DEFAULT_SETS, named by index as recorded)."""
    for name in formats:
        for index in range(len(sets) if sets is not None else len(DEFAULT_SETS)):
            chunks = [(chunk, min(CHUNK, cases - start))
                      for chunk, start in enumerate(range(0, cases, CHUNK))]
            base = {"format": name, "set": index, "seed": seed}
            if model != "ieee":
                base["model"] = model
            if sets is not None:
                base["options"] = sets[index].spec()
            if batch and name in BATCH_FORMATS:
                for g in range(0, len(chunks), GROUP):
                    yield dict(base, chunks=chunks[g:g + GROUP])
            else:
                for chunk, n in chunks:
                    yield dict(base, chunk=chunk, cases=n)


def soundness_runs_report(formats: list[str], cases: int, seed: int, workers: int = 1,
                          scheduler: "str | None" = None, progress=None,
                          batch: bool = True, sets: "list[OptionSet] | None" = None,
                          convention: str = "torch", model: str = "ieee") -> dict:
    """``cases`` steps per format and option set (``sets``, all of ``convention``; None:
    ``DEFAULT_SETS``) under ``model``, merged per pair (``batch``: on the batch path; the same
    steps and figures)."""
    started = time.perf_counter()
    merged: dict[str, dict[str, dict]] = {}
    # (flush-to-zero: the scalar path's alone)
    specs = list(_specs(formats, cases, seed, batch and not get_model(model).ftz, sets, model))
    parts = completed(run_chunks(run_chunk, specs, workers=workers,
                                 in_process=workers <= 1, scheduler=scheduler))
    for k, (spec, part) in enumerate(zip(specs, parts)):
        key = _option_set(spec).spec() or "(none)"
        into = merged.setdefault(spec["format"], {}).setdefault(key, {
            "cases": 0, "values": 0, "violations": 0, "outside": 0,
            "worst": {q: 0.0 for q in RUN_QUANTITIES}, "first": None})
        for field in ("cases", "values", "violations", "outside"):
            into[field] += part[field]
        into["worst"] = {q: max(into["worst"][q], part["worst"][q]) for q in RUN_QUANTITIES}
        into["first"] = into["first"] or part["first"]
        if progress:
            progress(k + 1, len(specs))
    command = f"{COMMAND} --dtype {','.join(formats)} --cases {cases} --seed {seed}"
    if convention != "torch":
        command += f" --convention {convention}"
    if model != "ieee":
        command += f" --model {model}"
    if sets is not None and [s.spec() for s in sets] != [s.spec() for s in
                                                         default_sets(convention)]:
        command += "".join(f" --options {_bare(s)}" for s in sets)
    return {"formats": merged, "command": command, "seed": seed, "convention": convention,
            "model": model,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": records.machine()}


def _bare(option_set: OptionSet) -> str:
    """The SPEC of a set without its convention (the command names it once), quoted where
    empty."""
    return dataclasses.replace(option_set, convention="torch").spec() or "''"


def record(report: dict, path: Any) -> None:
    """Write the report into its record, per format and convention (a format measured again
    under a convention replaces that convention's entries; the other conventions' stay);
    under a model other than ieee, into ``models`` per model, format and option set (an
    option set measured again replaces its entry)."""
    convention = report.get("convention", "torch")

    def change(old: dict) -> dict:
        formats = dict(old.get("formats", {}))
        runs = dict(old.get("runs", {}))
        models = dict(old.get("models", {}))
        model = report.get("model", "ieee")
        if model != "ieee":
            entry = models.setdefault(model, {"formats": {}, "runs": {}})
            for name, sets in report["formats"].items():
                entry["formats"][name] = dict(entry["formats"].get(name, {}), **sets)
                for spec in sets:
                    entry["runs"][f"{name} {spec}"] = {
                        "command": report["command"], "seconds": report["seconds"],
                        "machine": report["machine"]}
            return dict({"formats": formats, "runs": runs}, models=models)
        for name, sets in report["formats"].items():
            kept = {k: v for k, v in formats.get(name, {}).items()
                    if convention_of(k) != convention}
            formats[name] = dict(kept, **sets)
            runs[name if convention == "torch" else f"{name} {convention}"] = {
                "command": report["command"], "seconds": report["seconds"],
                "machine": report["machine"]}
        return dict({"formats": formats, "runs": runs}, **({"models": models} if models else {}))

    records.update("run_soundness", path, change)
