"""``neuronspec soundness --runs``: the bounds of a step of a run (spec/tolerances.md 2.8)
measured per format and option set, on every legal evaluation (``reference.optim_rounded``).

Each case is one step of a run of the option set from a drawn state: moderate values, t close to
w*x + b (cancellation), or values at the bottom of the format; a first step (no buffer) or a
later one (buffers drawn too).  Every distinct value a legal evaluation gives is judged against
its bound: a violation is a bound that is not sound.  The record (``spec/data/
run_soundness.json``) keeps, per format and option set, the steps, the values judged, the
violations and the worst error/bound per quantity; ``spec/tolerances.md`` 2.8 renders it.
Chunks run through the campaign engine (local workers or a Dask scheduler).
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from reference.formats import Format, get_format
from reference.judge import judge
from reference.optim import State, exact_sgd_step
from reference.optim_bounds import RUN_QUANTITIES, buffer_format, sgd_bounds
from reference.optim_rounded import sgd_legal

from ..artefacts import records
from ..cases.options import DEFAULT_SETS, reference_options
from ..cases.runs import STEP_REGIMES, draw_step
from .campaign import completed, run_chunks

__all__ = ["judge_legal_values", "run_chunk", "soundness_runs_report",
           "record", "COMMAND"]

COMMAND = "neuronspec soundness --runs"
CHUNK = 500


def judge_legal_values(fmt: Format, state: State, x: float, t: float, lr: float,
                       options: Any, worst: dict) -> tuple[int, int, int, "str | None"]:
    """Every distinct value a legal evaluation of one step gives, judged against its bound
    (the buffers as values of the buffer format); ``worst`` (quantity -> error/bound) grows.
    Returns (values judged, violations, values outside the bounded domain, the first
    violation in words or None)."""
    bounds = sgd_bounds(fmt, state, x, t, lr, options)
    exact = dict(exact_sgd_step(state, x, t, lr, options))
    exact["dL_dy"] = exact["dL_db"]
    legal = sgd_legal(fmt, state, x, t, lr, options)
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


def run_chunk(spec: dict) -> dict:
    """One chunk: ``cases`` steps of one format and option set (by index in DEFAULT_SETS)."""
    fmt = get_format(spec["format"])
    option_set = DEFAULT_SETS[spec["set"]]
    options = option_set.for_format(fmt)
    reference = reference_options(options)
    rng = np.random.default_rng([spec["seed"], spec["set"], spec["chunk"], 22])
    worst = {q: 0.0 for q in RUN_QUANTITIES}
    values = violations = outside = 0
    first: "str | None" = None
    for i in range(spec["cases"]):
        state, (x, t, lr) = draw_step(fmt, options, rng, STEP_REGIMES[i % len(STEP_REGIMES)])
        n, bad, out, why = judge_legal_values(fmt, state, x, t, lr, reference, worst)
        values, violations, outside = values + n, violations + bad, outside + out
        first = first or why
    return {"cases": spec["cases"], "values": values, "violations": violations,
            "outside": outside, "worst": worst, "first": first}


def _specs(formats: list[str], cases: int, seed: int) -> Iterator[dict]:
    for name in formats:
        for index in range(len(DEFAULT_SETS)):
            for chunk, start in enumerate(range(0, cases, CHUNK)):
                yield {"format": name, "set": index, "seed": seed, "chunk": chunk,
                       "cases": min(CHUNK, cases - start)}


def soundness_runs_report(formats: list[str], cases: int, seed: int, workers: int = 1,
                          scheduler: "str | None" = None, progress=None) -> dict:
    """``cases`` steps per format and option set of ``DEFAULT_SETS``, merged per pair."""
    started = time.perf_counter()
    merged: dict[str, dict[str, dict]] = {}
    specs = list(_specs(formats, cases, seed))
    parts = completed(run_chunks(run_chunk, specs, workers=workers,
                                 in_process=workers <= 1, scheduler=scheduler))
    for k, (spec, part) in enumerate(zip(specs, parts)):
        key = DEFAULT_SETS[spec["set"]].spec() or "(none)"
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
    return {"formats": merged, "command": command, "seed": seed,
            "seconds": round(time.perf_counter() - started, 1),
            "machine": records.machine()}


def record(report: dict, path: Any) -> None:
    """Write the report into its record, per format (a format measured again replaces its
    entry)."""
    def change(old: dict) -> dict:
        formats = dict(old.get("formats", {}))
        runs = dict(old.get("runs", {}))
        for name, sets in report["formats"].items():
            formats[name] = sets
            runs[name] = {"command": report["command"], "seconds": report["seconds"],
                          "machine": report["machine"]}
        return {"formats": formats, "runs": runs}

    records.update("run_soundness", path, change)
