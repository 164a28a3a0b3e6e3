"""``spec/tolerances.md``: the derivation of the bounds, their parameters per format, and the
measured soundness, tightness, peer comparison, sweeps and CUDA run, rendered from the records
in ``spec/data`` (``soundness.json``, ``sweeps.json``, ``crosscheck.json``, ``cuda.json``).

The prose lives in the Jinja2 template ``spec/templates/tolerances.md.j2`` (shipped in the
package, see :func:`neuronspec.data.template`); this module only gathers the data and formats
numbers and table cells for it.  Nothing here is measured: the numbers come from the records
that ``neuronspec soundness``, ``sweep``, ``crosscheck`` and ``benchmarks/gpu_sweep.py`` write,
so the document can be regenerated (and checked for staleness) in milliseconds.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Optional

import jinja2

from reference.bounds import MODELS, step_bounds
from reference.exact import exact_step
from reference.formats import FORMATS, Format, float_hex
from reference.step import INPUTS, QUANTITIES, REQUIRED, SEED_EXAMPLE

from .. import data
from ..cases.regimes import CAMPAIGN_REGIMES, REGIMES as ALL_REGIMES
from ..fingerprint import CANDIDATES
from . import records
from .peers import MUTANTS, PEER_TOLERANCES

REGIMES = {name: ALL_REGIMES[name] for name in CAMPAIGN_REGIMES}

__all__ = ["render", "load_records", "run_soundness_context", "DEFAULT_OUTPUT", "TABLES_COMMAND"]

DEFAULT_OUTPUT = Path("spec/tolerances.md")
TABLES_COMMAND = "neuronspec tables"
TEMPLATE = "tolerances.md.j2"

TIGHTNESS_TARGET = 0.5
#: The order of the model subjects in table 4.1 (implementations follow, by name).
SUBJECT_ORDER = ("ieee", "strict", "ieee+ftz", "ieee+lr-binary64", "ieee+wide")
#: The schemes of section 5 and the regimes its three tables cover (None: all of them).
PEER_SCHEMES = ("neuronspec", *PEER_TOLERANCES)
PEER_REGIMES = (None, "generic", "cancel-y-t")
SWEEP_IMPLS = ("numpy", "torch_autograd", "torch_sgd", "manual")
#: The seed example of section 3 is shown in float32.
EXAMPLE_FORMAT = "float32"


def load_records(directory: Path) -> dict:
    """The records behind the document: soundness (required), sweeps, crosscheck, cuda,
    run_soundness."""
    return {kind: records.load(kind, records.path_of(kind, directory),
                               required=kind == "soundness") for kind in records.KINDS}


def render(recs: dict) -> str:
    """The whole of ``spec/tolerances.md`` from the records (see :func:`load_records`)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(data.template(TEMPLATE)).render(_context(recs))


# -- number and cell formatting ---------------------------------------------------------------

def _pow2(q: Fraction) -> str:
    n, d = q.numerator, q.denominator
    if n == 1 and d & (d - 1) == 0:
        return f"2^-{d.bit_length() - 1}"
    if d == 1 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return str(q)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _ratio(x: float) -> str:
    return "inf" if x == float("inf") else f"{x:.3f}"


def _pct(k: int, n: int) -> str:
    return "n/a" if n == 0 else f"{100 * k / n:.1f}% ({k:,})"


# -- the template's context -------------------------------------------------------------------

def _context(recs: dict) -> dict:
    soundness = recs["soundness"]
    return {
        "command": TABLES_COMMAND,
        "models": [(name, m.describe()) for name, m in MODELS.items()],
        "formats": [_format_params(f) for f in FORMATS.values()],
        "quantities": REQUIRED,
        "regimes": list(REGIMES),
        "mutants": list(MUTANTS),
        "candidates": CANDIDATES,
        "sweep_quantities": REQUIRED,
        "target": TIGHTNESS_TARGET,
        "example": _example(),
        "soundness": _soundness(soundness),
        "peers": _peers(soundness),
        "crosscheck": _crosscheck(recs.get("crosscheck")),
        "sweeps": _sweeps((recs.get("sweeps") or {}).get("runs", {})),
        "cuda": _cuda(recs.get("cuda")),
        "run_soundness": run_soundness_context(recs.get("run_soundness")),
    }


def run_soundness_context(rec: "Optional[dict]") -> "Optional[dict]":
    """The run bounds per format and option set (``neuronspec soundness --runs``)."""
    if not rec:
        return None
    from ..cases.options import CONVENTIONS, DEFAULT_SETS, convention_of

    order = {s.spec() or "(none)": i for i, s in enumerate(DEFAULT_SETS)}

    def rows_of(formats: dict, model: str = "ieee") -> list[dict]:
        rows = []
        for name in FORMATS:
            sets = formats.get(name) or {}
            # torch's sets in their order, then each other convention's (spec/neuron.md 8.6)
            for spec in sorted(sets, key=lambda k: (CONVENTIONS.index(convention_of(k)),
                                                    order.get(k, len(order)), k)):
                r, buffered = sets[spec], spec.startswith("momentum")
                worst = r["worst"]
                rows.append({"format": name, "model": model, "options": spec,
                             "cases": f"{r['cases']:,}", "distinct": f"{r['values']:,}",
                             "violations": r["violations"],
                             **{q: _ratio(worst.get(q, 0.0)) if buffered or q.endswith("_new")
                                else "-" for q in ("w_new", "b_new", "buf_w", "buf_b")}})
        return rows

    rows = rows_of(rec["formats"])
    # the models that widen the domain or the evaluations (--model), each recorded apart
    models = rec.get("models", {})
    model_rows = [row for m in sorted(models) for row in rows_of(models[m]["formats"], m)]
    # (one command per format and model: written once, with the format as F)
    model_commands = sorted({re.sub(r"--dtype \S+", "--dtype F", run["command"])
                             for m in models.values() for run in m["runs"].values()})
    model_seconds = sum({run["command"]: run.get("seconds", 0.0) for m in models.values()
                         for run in m["runs"].values()}.values())
    commands = sorted({run["command"] for run in rec["runs"].values()})
    # (the formats of one command share its time: counted once per command)
    seconds = sum({run["command"]: run.get("seconds", 0.0)
                   for run in rec["runs"].values()}.values())
    steps = sum(r["cases"] for sets in rec["formats"].values() for r in sets.values())
    return {"rows": rows, "commands": commands, "seconds": f"{seconds:.0f}",
            "steps": f"{steps:,}",
            "violations": sum(r["violations"] for sets in rec["formats"].values()
                              for r in sets.values()),
            "model_rows": model_rows, "model_commands": model_commands,
            "model_seconds": f"{model_seconds:.0f}",
            "model_violations": sum(r["violations"] for m in models.values()
                                    for sets in m["formats"].values() for r in sets.values())}


def _format_params(f: Format) -> dict:
    return {"name": f.name, "p": f.p, "emin": f.emin, "emax": f.emax, "u": _pow2(f.u),
            "eta": _pow2(f.eta), "smallest_normal": float_hex(f.smallest_normal),
            "largest_finite": float_hex(f.largest_finite), "largest_finite_g": _g(f.largest_finite),
            "ieee_wide": MODELS["ieee"].wide(f), "strict_wide": MODELS["strict"].wide(f)}


def _example() -> dict:
    fmt = FORMATS[EXAMPLE_FORMAT]
    inputs = {k: fmt.parse(v) for k, v in SEED_EXAMPLE.items()}
    bounds = {q: Fraction(b) for q, b in step_bounds(fmt, **inputs).items()}
    exact = exact_step(**inputs).as_fractions()
    ulps = {q: float(bounds[q] / fmt.ulp(exact[q])) for q in QUANTITIES}
    return {"rows": [{"quantity": q, "bound": _g(float(bounds[q])), "ulps": f"{ulps[q]:.2f}"}
                     for q in QUANTITIES],
            "dL_db_ulps": f"{ulps['dL_db']:.2f}"}


def _subject_order(subject: str) -> tuple:
    order = SUBJECT_ORDER
    return (order.index(subject) if subject in order else len(order), subject)


def _soundness(rec: dict) -> "Optional[dict]":
    """Sections 4.0 to 4.4, or None when no format has been measured."""
    formats = rec.get("formats", {})
    if not formats:
        return None
    runs = rec.get("runs", {})
    tolerance_rows = []
    for fname, f in FORMATS.items():
        qs = formats.get(fname, {}).get("subjects", {}).get("ieee", {})
        for q in REQUIRED:
            st = qs.get(q)
            tolerance_rows.append({"format": fname, "quantity": q, "u": _pow2(f.u),
                                   "eta": _pow2(f.eta),
                                   "worst": _ratio(st["max_ratio"]) if st else "-",
                                   "cases": f"{st['checked']:,}" if st else "-"})
    subject_rows, low = [], []
    for fname in FORMATS:
        if fname not in formats:
            continue
        subjects = formats[fname]["subjects"]
        for subject in sorted(subjects, key=_subject_order):
            qs = subjects[subject]
            present = [q for q in REQUIRED if q in qs]
            for q in present:
                if subject == "ieee" and qs[q]["max_ratio"] < TIGHTNESS_TARGET:
                    low.append(f"{fname} {q} ({_ratio(qs[q]['max_ratio'])})")
            subject_rows.append({
                "format": fname, "subject": subject,
                "checked": f"{max((qs[q]['checked'] for q in present), default=0):,}",
                "out_of_domain": f"{max((qs[q]['out_of_domain'] for q in present), default=0):,}",
                "violations": sum(st["violations"] for st in qs.values()),
                "cells": [_ratio(qs[q]["max_ratio"]) if q in qs else "-" for q in REQUIRED],
            })
    ieee = {fname: formats[fname]["subjects"]["ieee"] for fname in FORMATS
            if fname in formats and "ieee" in formats[fname]["subjects"]}
    regime_rows, worst_rows = [], []
    for fname, qs in ieee.items():
        for q in REQUIRED:
            br = qs.get(q, {}).get("by_regime", {})
            regime_rows.append({"format": fname, "quantity": q,
                                "cells": [_ratio(br[r]) if r in br else "-" for r in REGIMES]})
    for fname, qs in ieee.items():
        for q in REQUIRED:
            wc = qs.get(q, {}).get("worst")
            if wc:
                worst_rows.append({"format": fname, "quantity": q, "ratio": _ratio(wc["ratio"]),
                                   **{k: wc[k] for k in ("source", "regime", *INPUTS)}})
    return {
        "regimes": [(name, " ".join(r.doc.split()).rstrip(".")) for name, r in REGIMES.items()],
        "commands": sorted({r.get("command", "?") for r in runs.values()}),
        "tolerance_rows": tolerance_rows,
        "tightness_rows": _tightness_rows(formats),
        "subject_rows": subject_rows,
        "regime_rows": regime_rows,
        "worst_rows": worst_rows,
        "low": low,
        "errors": [e for f in formats.values() for e in f.get("errors", [])][:10],
        "passes": [{"format": fname, "name": p["pass"], "cases": f"{p['cases']:,}",
                    "seconds": f"{p['seconds']:,}"}
                   for fname in FORMATS for p in formats.get(fname, {}).get("passes", [])],
    }


def _quantile(hist: dict, share: float, scale: int = records.OCTAVE_BINS) -> "float | None":
    """The log2 of the value below which ``share`` of a log2 histogram lies (bins of a quarter
    binade: the lower edge of the bin holding the quantile; ``scale=1``: keys that are plain
    counts, and the count itself), or None for an empty histogram.
    A log2, since a ratio can pass binary64's range (a bound of 2^-1074 over an error of
    2^-4000)."""
    total = sum(hist.values())
    if not total:
        return None
    seen = 0
    for key in sorted(hist, key=int):
        seen += hist[key]
        if seen >= share * total:
            return int(key) / scale
    return None


def _big(log2: "float | None") -> str:
    """A power of two given by its log2: decimal up to a million, ``2^k`` above."""
    if log2 is None:
        return "-"
    return f"{2.0 ** log2:.3g}" if log2 < math.log2(1e6) else f"2^{log2:.0f}"


def _count(log2: "float | None") -> str:
    """The smallest count in a quarter-binade bin given by its lower edge's log2."""
    if log2 is None:
        return "-"
    return f"{math.ceil(2.0 ** log2 - 1e-9):,}" if log2 < math.log2(1e6) else f"2^{log2:.0f}"


def _tightness_rows(formats: dict) -> list[dict]:
    """Section 4.5: per format and quantity, the bound over the largest legal error (median,
    90th and 99th percentile, over the cases where some legal value is inexact), the share of
    cases where every legal value is exact, where the exact level is stricter than the bound,
    and the median number of format values the bound's interval holds against legal ones."""
    rows = []
    for fname in FORMATS:
        tight = formats.get(fname, {}).get("tightness", {})
        for q in REQUIRED:
            t = tight.get(q)
            if not t or not t["cases"]:
                continue
            n = t["cases"]
            rows.append({"format": fname, "quantity": q, "cases": f"{n:,}",
                         "median": _big(_quantile(t["ratio"], 0.5)),
                         "p90": _big(_quantile(t["ratio"], 0.9)),
                         "p99": _big(_quantile(t["ratio"], 0.99)),
                         "exact": f"{100 * t['exact'] / n:.1f}%",
                         "stricter": f"{100 * t['stricter'] / n:.1f}%",
                         "interval_values": _count(_quantile(t["values"], 0.5)),
                         "interval_values_p90": _count(_quantile(t["values"], 0.9)),
                         "legal": f"{_quantile(t['legal'], 0.5, scale=1):.0f}"})
    return rows


def _peers(rec: dict) -> dict:
    """Section 5: the peers' default tolerances and each scheme's rates per format."""
    formats = rec.get("formats", {})
    tools = [{"name": tool, "tolerances": [(f"{tol[f][0]:g}", f"{tol[f][1]:g}") for f in FORMATS]}
             for tool, tol in PEER_TOLERANCES.items()]
    rates = []
    for regime_filter in PEER_REGIMES:
        rows = []
        for fname in FORMATS:
            comp = formats.get(fname, {}).get("compare", {})
            for scheme in PEER_SCHEMES:
                cases = false_rejections = 0
                mutants = {m: [0, 0] for m in MUTANTS}
                for key, d in comp.items():
                    s, _, regime = key.partition("|")
                    if s != scheme or (regime_filter and regime != regime_filter):
                        continue
                    cases += d["cases"]
                    false_rejections += d["false_rejections"]
                    for m, md in d["mutants"].items():
                        mutants[m][0] += md["cases"]
                        mutants[m][1] += md["missed"]
                if cases:
                    rows.append({"format": fname, "scheme": scheme, "cases": f"{cases:,}",
                                 "false_rejections": _pct(false_rejections, cases),
                                 "cells": [_pct(missed, n) for n, missed in mutants.values()]})
        rates.append({"regime": regime_filter, "rows": rows})
    return {"tools": tools, "rates": rates}


def _crosscheck(cross: "Optional[dict]") -> "Optional[dict]":
    """Section 6.1, or None when no cross-check is recorded."""
    if not cross:
        return None
    rows = []
    for name in FORMATS:
        c = cross.get("formats", {}).get(name)
        if c:
            rows.append({"format": name, "disagreements": c["disagreements"],
                         **{k: f"{c[k]:,}" for k in ("cases", "checked", "violations",
                                                     "out_of_domain", "resolved")}})
    return {"command": cross.get("command", "neuronspec crosscheck"), "rows": rows}


def _sweeps(runs: dict) -> list:
    """The recorded sweeps of section 6.2, by format, then implementation."""
    def order(key):
        r = runs[key]
        return (list(FORMATS).index(r["format"]),
                SWEEP_IMPLS.index(r["impl"]) if r["impl"] in SWEEP_IMPLS else 99, key)

    out = []
    for key in sorted(runs, key=order):
        r = runs[key]
        cells = []
        for q in REQUIRED:
            t = r["quantities"].get(q)
            measured = "" if not t or t.get("measured") is None else \
                f"; {t['measured']:.3g} measured"
            cells.append(f"{t['max_ratio']:.6f} ({t['checked']:.3g}{measured})" if t else "-")
        space = r.get("exhaustive")
        impl = r["impl"] if "options" not in r else \
            f"{r['impl']}, steps of runs with {r['options'] or 'every option off'}"
        if r.get("run_steps"):
            impl = (f"{r['impl']}, whole runs of {r['run_steps']} steps with "
                    f"{r['options'] or 'every option off'}"
                    + (f" ({r['unjudged']:,} steps after a non-finite state not judged)"
                       if r.get("unjudged") else ""))
        out.append({"impl": impl, "format": r["format"], "cases": f"{r['cases']:,}",
                    "exhaustive": space and {
                        "over": ", ".join(space["exhaustive"]), "count": f"{space['values']:,}",
                        "grid": space["grid"],
                        "points": ["; ".join(f"{k} = {v}" for k, v in p.items())
                                   for p in space["points"]]},
                    "cells": cells, "violations": f"{r['violations']:,}",
                    "unexplained": f"{r['unexplained']:,}" if "unexplained" in r else "-",
                    "rate": f"{r['cases_per_second']:,}" if r.get("cases_per_second") else "-",
                    "workers": r["workers"],
                    "command": r["command"], "path": r["path"],
                    "wall_seconds": r["wall_seconds"], "machine": r["machine"],
                    "versions": [f"{k} {v}" for k, v in r["versions"].items()],
                    "unchecked": f"{r['unchecked']:,}" if r.get("unchecked") else None})
    return out


def _cuda(cuda: "Optional[dict]") -> "Optional[dict]":
    """Section 6.3, or None when no CUDA run is recorded."""
    if not cuda:
        return None

    def order(key):
        impl, fmt = key.split("/")
        return (impl, list(FORMATS).index(fmt))

    sweeps = []
    for key in sorted(cuda.get("sweeps", {}), key=order):
        r = cuda["sweeps"][key]
        sweeps.append({"impl": r["impl"], "format": r["format"], "cases": f"{r['cases']:,}",
                       "violations": r["violations"],
                       "cells": [f"{r['quantities'][q]['max_ratio']:.6f}"
                                 for q in REQUIRED]})
    fingerprints = []
    for key in sorted(cuda.get("fingerprints", {}), key=order):
        impl, fmt = key.split("/")
        for q, e in cuda["fingerprints"][key].items():
            shares = [e.get(c) for c in CANDIDATES]
            fingerprints.append({
                "impl": impl, "format": fmt, "quantity": q,
                "informative": f"{e['informative']:,}",
                "cells": ["-" if v is None else f"{v:.4f}" for v in shares],
                "best": [c for c, v in zip(CANDIDATES, shares) if v is not None and v >= 0.999],
            })
    one = cuda.get("one_core")
    return {
        **{k: cuda[k] for k in ("device", "torch", "cuda", "numpy", "cpus")},
        "sweeps": sweeps,
        "fingerprints": fingerprints,
        "one_core": one and {"impl": one["impl"], "format": one["format"],
                             "cases": f"{one['cases']:,}", "rate": f"{one['rate']:,.0f}",
                             "cpu": cuda["cpu"]},
    }
