"""``neuronspec soundness``: soundness and tightness of the bounds, measured -- the exact
reference against every evaluation variant (and the bundled implementations) on regime-drawn
cases.

For each case the exact values (mpmath), the a-priori bounds of the declared model and every
bit-exact evaluation variant the model admits are computed; each distinct computed value is
judged (``reference.judge``: exactly, in integer arithmetic).  Zero violations is the only pass;
the largest error/bound ratio per quantity is the bound's measured tightness.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
import time
from typing import Iterable

import numpy as np

from reference.bounds import IEEE, MODELS, OutOfDomain, case_bounds
from reference.exact import exact_step
from reference.formats import FORMATS, Format, as_float, float_hex
from reference.judge import OUT_OF_DOMAIN, judge
from reference.legal import from_results, value_key
from reference.rounded import admitted, evaluate_variants
from reference.step import INPUTS, REQUIRED

from ..artefacts import records
from ..artefacts.records import octave_bin
from ..artefacts.peers import MUTANTS, PEER_TOLERANCES, peer_accepts
from ..cases.regimes import CAMPAIGN_REGIMES, regime_cases
from ..errors import ImplementationError, LoadError
from ..implementations import load
from .campaign import completed, run_chunks
from .tally import QuantityTally

__all__ = ["SoundnessTally", "check_values", "run_chunk", "run", "soundness_report",
           "merge_format", "record"]

#: The peer comparison runs on one chunk in this many (its rates need far fewer cases).
COMPARE_EVERY = 10

#: The other models (strict, ftz, lr-binary64) are checked on one chunk in this many: the
#: million-case claim is about the default model; the others get a quarter of the cases.
OPTIONS_EVERY = 4

#: Regimes whose cases also check the flush-to-zero and binary64-lr options.
FTZ_REGIMES = ("generic", "tiny")
LR64_REGIMES = ("generic", "lr-range")


class SoundnessTally:
    """Tallies keyed by (subject, quantity) -- a subject is a model's variants or an
    implementation -- with the cases per regime, implementation errors and the peer comparison."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[str, QuantityTally]] = {}
        self.regimes: dict[str, int] = {}
        self.errors: list[str] = []
        # "scheme|regime" -> {"cases", "false_rejections", "mutants": {name: {"cases", "missed"}}}
        self.compare: dict[str, dict] = {}
        # quantity -> the case-by-case tightness of the ieee bound (see ``tightness``)
        self.tight: dict[str, dict] = {}

    def get(self, subject: str, quantity: str) -> QuantityTally:
        return self.stats.setdefault(subject, {}).setdefault(quantity, QuantityTally())

    def merge(self, other: "SoundnessTally") -> None:
        for q, d in other.tight.items():
            mine = self.tight.setdefault(q, _empty_tight())
            for key in ("cases", "exact", "stricter"):
                mine[key] += d[key]
            for key in ("ratio", "values", "legal"):
                for k, n in d[key].items():
                    mine[key][k] = mine[key].get(k, 0) + n
        for subject, qs in other.stats.items():
            for q, s in qs.items():
                self.get(subject, q).merge(s)
        for k, v in other.regimes.items():
            self.regimes[k] = self.regimes.get(k, 0) + v
        self.errors = (self.errors + other.errors)[:20]
        for scheme, d in other.compare.items():
            mine = self.compare.setdefault(scheme, {"cases": 0, "false_rejections": 0, "mutants": {}})
            mine["cases"] += d["cases"]
            mine["false_rejections"] += d["false_rejections"]
            for m, md in d["mutants"].items():
                mm = mine["mutants"].setdefault(m, {"cases": 0, "missed": 0})
                mm["cases"] += md["cases"]
                mm["missed"] += md["missed"]

    def as_dict(self) -> dict:
        return {"regimes": self.regimes, "errors": self.errors, "compare": self.compare,
                "tightness": self.tight,
                "subjects": {s: {q: st.as_dict() for q, st in qs.items()}
                             for s, qs in self.stats.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "SoundnessTally":
        t = cls()
        t.regimes = dict(d["regimes"])
        t.tight = {q: {k: (dict(v) if isinstance(v, dict) else v) for k, v in dt.items()}
                   for q, dt in d.get("tightness", {}).items()}
        t.errors = list(d["errors"])
        t.compare = d["compare"]
        t.stats = {subject: {q: QuantityTally.from_dict(s) for q, s in qs.items()}
                   for subject, qs in d["subjects"].items()}
        return t


def _empty_tight() -> dict:
    return {"cases": 0, "exact": 0, "stricter": 0, "ratio": {}, "values": {}, "legal": {}}


def _ordinal(fmt: Format, v: float) -> int:
    """The rank of a finite value of ``fmt`` among its values (0 for both zeros)."""
    a = abs(Fraction(v))
    if a < fmt.smallest_normal:
        k = int(a / fmt.smallest_subnormal_exact)
    else:
        e = fmt.exponent(a)
        m = int(a / Fraction(2) ** (e - fmt.p + 1))
        k = (e - fmt.emin) * (1 << (fmt.p - 1)) + m
    return -k if v < 0 else k


def tightness(tally: SoundnessTally, fmt: Format, exact: dict, bounds: dict,
              results: dict) -> None:
    """The case-by-case tightness of the bound against the legal set (``results``: every
    evaluation the model admits): per quantity, the bound over the largest legal error (log2
    histogram; "exact" where every legal value is exact), how many values of the format the
    bound's interval holds (log2 histogram) against how many are legal, and whether the exact
    level is stricter here (the interval holds a value just outside the legal hull)."""
    for q in REQUIRED:
        bound = bounds[q]
        if isinstance(bound, OutOfDomain):
            continue
        legal = {value_key(out[q]): out[q] for out in results.values()}
        finite = [v for v in legal.values() if math.isfinite(v)]
        if not finite:
            continue
        t = tally.tight.setdefault(q, _empty_tight())
        t["cases"] += 1
        e, b = exact[q], Fraction(bound)
        worst = max(abs(Fraction(v) - e) for v in finite)
        if worst == 0:
            t["exact"] += 1
        else:
            key = octave_bin(max(b / worst, Fraction(1)))
            t["ratio"][key] = t["ratio"].get(key, 0) + 1
        lo, hi = fmt.round(e - b), fmt.round(e + b)  # the interval's values of the format
        if math.isfinite(lo) and Fraction(lo) < e - b:
            lo = fmt.next_up(lo)
        if math.isfinite(hi) and Fraction(hi) > e + b:
            hi = fmt.next_down(hi)
        if math.isfinite(lo) and math.isfinite(hi) and hi >= lo:
            count = _ordinal(fmt, hi) - _ordinal(fmt, lo) + 1
            key = octave_bin(Fraction(count))
            t["values"][key] = t["values"].get(key, 0) + 1
        n = str(len({v for v in finite}))
        t["legal"][n] = t["legal"].get(n, 0) + 1
        below, above = fmt.next_down(min(finite)), fmt.next_up(max(finite))
        if any(math.isfinite(v) and abs(Fraction(v) - e) <= b for v in (below, above)):
            t["stricter"] += 1


def _case_text(case, regime: str) -> dict:
    return {"regime": regime, **{k: float_hex(v) for k, v in zip(INPUTS, case)}}


def check_values(tally: SoundnessTally, subject: str, fmt: Format, case, regime: str, exact,
                 bounds, computed_sets: "dict[str, dict[float, str]]", legal=None) -> None:
    """Judge each distinct computed value (value -> the first source giving it).  Where an
    admitted evaluation may overflow, finite values are held to the bound all the same and
    non-finite ones judged against ``legal`` (None: the values are the admitted evaluations'
    own, so their overflows are admitted by definition)."""
    for q, values in computed_sets.items():
        st = tally.get(subject, q)
        bound = bounds[q]
        ood = isinstance(bound, OutOfDomain)
        if ood:
            st.out_of_domain += 1
        else:
            st.checked += 1
        for value, source in values.items():
            if legal is not None:  # an implementation: the exact level too
                e = legal.explain(q, value)
                if e.explained:
                    st.explained_by({e.variants[0]: 1})
                else:
                    st.not_explained(1, [{"computed": float_hex(value), "ulps": e.ulps,
                                          **_case_text(case, regime)}])
            if ood and not math.isfinite(value) and legal is None:
                continue
            j = judge(fmt, q, value, exact[q], bound, legal)
            if j.verdict == OUT_OF_DOMAIN:
                continue
            st.saw(j.ratio, regime, lambda: {
                "ratio": j.ratio, "source": source, "bound": as_float(j.bound),
                "computed": float_hex(value), **_case_text(case, regime)})
            if j.violation:
                st.violated(lambda: {"ratio": j.ratio, "source": source,
                                     "computed": float_hex(value), **_case_text(case, regime)})


def _distinct(results: "dict[str, dict[str, float]]") -> "dict[str, dict[float, str]]":
    """Per quantity: each distinct value (bitwise; NaNs together) -> the first variant giving it."""
    out: dict[str, dict] = {q: {} for q in REQUIRED}
    seen: dict[str, set] = {q: set() for q in REQUIRED}
    for name, res in results.items():
        for q in REQUIRED:
            v = res[q]
            key = (v, math.copysign(1.0, v)) if v == v else "nan"
            if key not in seen[q]:
                seen[q].add(key)
                out[q][v] = name
    return out


def _load_impls(names: Iterable[str]) -> dict:
    impls = {}
    for name in names:
        try:
            impls[name] = load(name)
        except LoadError:  # an optional dependency (torch) is not installed
            continue
    return impls


def run_chunk(spec: dict) -> dict:
    """One chunk of a soundness run (picklable in and out, for worker processes).

    spec: format, regime, seed, chunk, cases, variants (bool), impls (list of names),
    options (bool: also check the ftz and lr-binary64 models).
    """
    fmt: Format = FORMATS[spec["format"]]
    regime = spec["regime"]
    rng = np.random.default_rng([spec["seed"], spec["chunk"], fmt.p,
                                 CAMPAIGN_REGIMES.index(regime)])
    cases = regime_cases(fmt, regime, rng, spec["cases"])
    tally = SoundnessTally()
    tally.regimes[regime] = len(cases)
    ieee_variants = admitted(fmt, IEEE)
    strict_names = {v.name for v in admitted(fmt, MODELS["strict"])}
    ftz_variants = [v for v in admitted(fmt, MODELS["ieee+ftz"]) if v.ftz]
    lr64_variants = admitted(fmt, MODELS["ieee+lr-binary64"], lr_in_format=False)
    ieee_names = {v.name for v in ieee_variants}
    wide_variants = [v for v in admitted(fmt, MODELS["ieee+wide"]) if v.name not in ieee_names]
    impls = _load_impls(spec.get("impls", ()))
    for case in cases:
        inputs = dict(zip(INPUTS, case))
        ratios = exact_step(*case).as_fractions()
        bounds = case_bounds(fmt, inputs, IEEE)
        if spec.get("variants", True):
            results = evaluate_variants(fmt, *case, ieee_variants)
            check_values(tally, "ieee", fmt, case, regime, ratios, bounds, _distinct(results))
            tightness(tally, fmt, ratios, bounds, results)
            if spec["chunk"] % OPTIONS_EVERY == 0:
                strict = {k: v for k, v in results.items() if k in strict_names}
                check_values(tally, "strict", fmt, case, regime, ratios,
                             case_bounds(fmt, inputs, MODELS["strict"]), _distinct(strict))
                if wide_variants:  # work in the next wider format, declared
                    wide = dict(results, **evaluate_variants(fmt, *case, wide_variants))
                    check_values(tally, "ieee+wide", fmt, case, regime, ratios,
                                 case_bounds(fmt, inputs, MODELS["ieee+wide"]), _distinct(wide))
            if (spec.get("compare") and spec["chunk"] % COMPARE_EVERY == 0
                    and all(not isinstance(bounds[q], OutOfDomain) for q in REQUIRED)):
                compare_schemes(tally, fmt, case, regime, ratios, bounds, results)
        # the legal values of the case (the implementations' exact level), once per case
        legal = from_results(fmt, IEEE, case, results) \
            if impls and spec.get("variants", True) else None
        for name, impl in impls.items():
            try:
                out = impl(fmt.name, case)
            except NotImplementedError:
                continue
            except ImplementationError as exc:
                # CPython's float ** raises OverflowError instead of returning inf: allowed
                # where some quantity is outside the bounded domain, a finding elsewhere
                if exc.overflow and not all(not isinstance(bounds[q], OutOfDomain)
                                            for q in REQUIRED):
                    tally.get(f"impl:{name}{spec.get('suffix', '')}",
                              "raised outside domain").checked += 1
                else:  # an implementation that raises is a finding, not a crash
                    tally.errors.append(f"{exc} on {tuple(case)}")
                continue
            values = {q: {out[q]: name} for q in REQUIRED}
            check_values(tally, f"impl:{name}{spec.get('suffix', '')}", fmt, case, regime,
                         ratios, bounds, values, legal)
        if not (spec.get("options") and spec.get("variants", True)
                and spec["chunk"] % OPTIONS_EVERY == 0):
            continue
        if regime in FTZ_REGIMES:
            ftz_bounds = case_bounds(fmt, inputs, MODELS["ieee+ftz"])
            results = evaluate_variants(fmt, *case, ftz_variants)
            check_values(tally, "ieee+ftz", fmt, case, regime, ratios, ftz_bounds,
                         _distinct(results))
        if regime in LR64_REGIMES and fmt.p < 53:  # lr as a binary64 value next to the format's
            # a binary64 lr with random low bits near the case's lr: rounding it to the
            # format moves it by up to half an ulp of the format
            lr64 = (case[4] or fmt.smallest_normal) * float(rng.uniform(0.75, 1.5))
            if not math.isfinite(fmt.round(lr64)):
                continue
            case64 = tuple(case[:4]) + (lr64,)
            inputs64 = dict(inputs, lr=lr64)
            ratios64 = exact_step(*case64).as_fractions()
            b64 = case_bounds(fmt, inputs64, MODELS["ieee+lr-binary64"])
            results = evaluate_variants(fmt, *case64, lr64_variants)
            check_values(tally, "ieee+lr-binary64", fmt, case64, regime, ratios64, b64,
                         _distinct(results))
    return tally.as_dict()


def compare_schemes(tally: SoundnessTally, fmt: Format, case, regime: str, exact, bounds,
                    results) -> None:
    """Verdicts of neuronspec's bounds and of peers' default tolerances on one in-domain case:
    does a scheme reject any correct (admitted) result?  does it accept a wrong one?"""
    expected = {q: float(exact[q]) for q in REQUIRED}

    def accepts(scheme: str, out: dict) -> bool:
        for q in REQUIRED:
            if scheme == "neuronspec":
                if judge(fmt, q, out[q], exact[q], bounds[q]).violation:
                    return False
            elif not peer_accepts(scheme, fmt, out[q], expected[q]):
                return False
        return True

    wrong = {}
    for name, make in MUTANTS.items():
        m = make(fmt, case, results["canonical"])
        if m is not None:
            wrong[name] = m
    for scheme in ("neuronspec", *PEER_TOLERANCES):
        d = tally.compare.setdefault(f"{scheme}|{regime}",
                                     {"cases": 0, "false_rejections": 0, "mutants": {}})
        d["cases"] += 1
        if not all(accepts(scheme, out) for out in results.values()):
            d["false_rejections"] += 1
        for name, out in wrong.items():
            md = d["mutants"].setdefault(name, {"cases": 0, "missed": 0})
            md["cases"] += 1
            md["missed"] += accepts(scheme, out)


def _init_worker(env: dict) -> None:
    os.environ.update(env)


def run(fmt_name: str, cases: int, seed: int = 0, workers: int = 1, chunk: int = 2000,
        impls: Iterable[str] = (), variants: bool = True, options: bool = True,
        compare: bool = True, env: "dict | None" = None, suffix: str = "",
        progress=None, scheduler: "str | None" = None, started=None) -> dict:
    """Run ``cases`` cases of ``fmt_name``, spread evenly over the campaign regimes, in
    ``workers`` processes (fresh ones where ``env`` must be set before torch loads), or on the
    Dask cluster at ``scheduler``; returns the merged tally as a dict plus timing."""
    per_regime = max(1, cases // len(CAMPAIGN_REGIMES))
    per_chunk = [min(chunk, per_regime - done) for done in range(0, per_regime, chunk)]
    specs = ({"format": fmt_name, "regime": regime, "seed": seed, "chunk": k, "cases": n,
              "impls": list(impls), "variants": variants, "options": options,
              "compare": compare, "suffix": suffix}
             for regime in CAMPAIGN_REGIMES for k, n in enumerate(per_chunk))  # (streamed)
    count = len(CAMPAIGN_REGIMES) * len(per_chunk)
    total = SoundnessTally()
    start = time.perf_counter()
    # One process and nothing to set before torch loads: run here; else in fresh workers.
    parts = completed(run_chunks(run_chunk, specs, workers=workers, initializer=_init_worker,
                                 initargs=(env or {},), in_process=workers <= 1 and not env,
                                 scheduler=scheduler, started=started))
    for i, d in enumerate(parts):
        total.merge(SoundnessTally.from_dict(d))
        if progress:
            progress(i + 1, count)
    out = total.as_dict()
    out["seconds"] = time.perf_counter() - start
    out["cases"] = sum(total.regimes.values())
    return out


def merge_format(old: dict, new: dict) -> dict:
    """Two soundness runs of one format as one: counts add, maxima are kept."""
    merged = SoundnessTally.from_dict(old)
    merged.merge(SoundnessTally.from_dict(new))
    out = merged.as_dict()
    out["cases"] = old["cases"] + new["cases"]
    out["passes"] = old.get("passes", []) + new.get("passes", [])
    return out


TORCH_IMPLS = ("torch_sgd", "torch_autograd")


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def soundness_report(formats: list[str], cases: int, seed: int, workers: int,
                     torch_cases: "dict[str, int]", stream=None,
                     scheduler: "str | None" = None, started=None) -> dict:
    """The full soundness run behind ``neuronspec soundness``: per format, every admitted
    variant and the bundled implementations on ``cases`` cases; torch on ``torch_cases[fmt]``
    of the same cases, and float32 torch again under ATEN_CPU_CAPABILITY=default."""
    import platform
    import sys

    import mpmath

    from .. import __version__

    stream = stream or sys.stderr
    has_torch = torch_available()
    report: dict = {"suite_version": __version__, "seed": seed, "cases_per_format": cases,
                    "platform": f"{platform.machine()} {platform.python_implementation()} "
                                f"{platform.python_version()}",
                    "versions": {"numpy": np.__version__, "mpmath": mpmath.__version__},
                    "formats": {}}
    if has_torch:
        import torch

        report["versions"]["torch"] = torch.__version__
        report["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    for name in formats:
        passes = []
        base_impls = [i for i in ("manual", "numpy") if i != "manual" or name == "float64"]
        m = torch_cases.get(name, 0) if has_torch else 0
        plan = [("variants and implementations", cases,
                 base_impls + (list(TORCH_IMPLS) if m >= cases else []), True, None, "")]
        if 0 < m < cases:
            plan.append(("torch (default dispatch)", m, list(TORCH_IMPLS), False, None, ""))
        if m and name == "float32":
            plan.append(("torch with ATEN_CPU_CAPABILITY=default", m, list(TORCH_IMPLS), False,
                         {"ATEN_CPU_CAPABILITY": "default"}, "@ATEN_CPU_CAPABILITY=default"))
        merged: "SoundnessTally | None" = None
        info: dict = {}
        for label, n, impls, variants, env, suffix in plan:
            start = time.perf_counter()

            def progress(done, total, label=label):
                if stream.isatty() or done == total or done % max(1, total // 10) == 0:
                    end = "\n" if done == total or not stream.isatty() else "\r"
                    stream.write(f"{name}: {label}: {done}/{total} chunks, "
                                 f"{time.perf_counter() - start:.0f} s{end}")
                    stream.flush()

            out = run(name, n, seed=seed, workers=workers, impls=impls, variants=variants,
                      options=variants, compare=variants, env=env, suffix=suffix,
                      progress=progress, scheduler=scheduler, started=started)
            passes.append({"pass": label, "cases": out["cases"],
                           "seconds": round(out["seconds"], 1)})
            t = SoundnessTally.from_dict(out)
            if merged is None:
                merged, info = t, {"cases": out["cases"], "regimes": out["regimes"]}
            else:
                merged.stats.update({k: v for k, v in t.stats.items()})
                merged.errors += t.errors
        d = merged.as_dict()
        d.update(info)
        d["passes"] = passes
        report["formats"][name] = d
    return report


def record(report: dict, path, append: bool) -> None:
    """Merge a soundness report into its record, per format (``append``: add this run's cases
    to the recorded ones instead of replacing them)."""
    this_run = {k: report[k] for k in report if k != "formats"}

    def change(old: dict) -> dict:
        formats, runs = dict(old.get("formats", {})), dict(old.get("runs", {}))
        for name, new in report["formats"].items():
            if append and name in formats:
                formats[name] = merge_format(formats[name], new)
                previous = runs.get(name, {})
                runs[name] = dict(this_run, command=f"{previous.get('command', '?')}; then "
                                                     f"{report['command']}")
            else:
                formats[name], runs[name] = new, this_run
        return {"formats": formats, "runs": runs}

    records.update("soundness", path, change)
