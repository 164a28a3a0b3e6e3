"""Language-neutral test vectors (Wycheproof-shaped) and the verification of any program's
results against them.

``spec/vectors/<format>.json`` holds, per case: a stable ``tcId``, a comment, flags with
written reasons, the inputs in hex and exact decimal, and per quantity the exact value, the
correctly rounded value and the ``ieee`` bound (or the reason it is outside the bounded domain).
Edge cases come first (ids 1-999, append-only); fixed-seed random cases from every regime follow
(ids from 1000).  ``neuronspec vectors write`` regenerates the files; a test fails when they are
stale.  The format of the files and the flags with their reasons are defined by
``spec/vectors/schema.json``; the vectors and the schema ship inside the package
(``neuronspec.data``), so the commands find them from any directory.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from reference.batch.kernel import cache_dir
from reference.bounds import IEEE, OutOfDomain, case_bounds
from reference.exact import exact_step
from reference.formats import (FORMATS, Format, as_float, exact_decimal, exact_hex, float_hex,
                               parse_exact, parse_hex)
from reference.judge import NONNEGATIVE, judge
from reference.legal import legal_values
from reference.rounded import VARIANTS, evaluate_variants, fl_add, fl_mul
from reference.step import INPUTS, QUANTITIES, REQUIRED, SEED_EXAMPLE, Case

from .. import __version__, data
from ..cases.regimes import CAMPAIGN_REGIMES, regime_cases
from ..errors import DataError, ImplementationError, UsageError

__all__ = ["flags", "generate", "write", "load", "verify", "verified", "stale",
           "run_implementation", "vector_case", "load_results", "bounded_words",
           "dump_vectors", "hex_order", "observed_value", "write_files", "stale_files",
           "read_vector_file", "match_schema"]

RANDOM_SEED = 20261126
RANDOM_PER_REGIME = 40


def _schema() -> dict:
    """The vectors' schema: the source of their format and of the flags' reasons."""
    return json.loads((data.vectors() / "schema.json").read_text(encoding="utf-8"))


def flags() -> dict[str, str]:
    """Every flag a vector may carry, with its written reason (from the vectors' schema)."""
    items = _schema()["properties"]["testGroups"]["items"]["properties"]["tests"]["items"]
    return {f["const"]: f["description"] for f in items["properties"]["flags"]["items"]["oneOf"]}


def _edge_cases(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    """(comment, flags, case) of the edge-case catalogue; append only (ids are positions)."""
    P = fmt.parse
    tiny, small, big = fmt.smallest_subnormal, fmt.smallest_normal, fmt.largest_finite
    seed = tuple(P(SEED_EXAMPLE[k]) for k in INPUTS)
    out: list[tuple[str, list[str], tuple]] = [
        ("the seed example", ["SeedExample"], seed),
        ("all inputs zero", ["SignedZero", "LrZero"], (0.0, 0.0, 0.0, 0.0, 0.0)),
        ("negative zeros: y = -0, r = +0", ["SignedZero"], (-0.0, -0.0, 1.0, -0.0, 1.0)),
        ("lr = 0 leaves w and b unchanged", ["LrZero"], (seed[0], seed[1], seed[2], seed[3], 0.0)),
        ("t = fl(w*x + b) exactly: r = 0", ["Cancellation"],
         (seed[0], seed[1], seed[2], fl_add(fmt, fl_mul(fmt, seed[0], seed[2]), seed[1]), seed[4])),
        ("t one ulp above fl(w*x + b)", ["Cancellation"],
         (P("1.5"), P("-0.1"), P("0.7"), fmt.next_up(fl_add(fmt, fl_mul(fmt, P("1.5"), P("0.7")),
                                                          P("-0.1"))), P("0.25"))),
        ("b = -w*x exactly: y = 0", ["CancellationWxB", "ExactProduct"],
         (P("1.5"), P("-3"), P("2"), P("0.25"), P("0.125"))),
        ("b one ulp from -fl(w*x)", ["CancellationWxB"],
         (P("1.1"), fmt.next_up(-fl_mul(fmt, P("1.1"), P("1.3"))), P("1.3"), P("0.5"), P("0.5"))),
        ("smallest subnormal inputs", ["Subnormal"], (tiny, tiny, tiny, -tiny, tiny)),
        ("w*x underflows to the subnormal range", ["Subnormal"],
         (fmt.round(math.sqrt(small) * 0.75), 0.0, fmt.round(math.sqrt(small) * 0.5), 0.0,
          P("0.5"))),
        ("r subnormal: b and t straddle zero by a subnormal", ["Subnormal"],
         (0.0, 3 * tiny, P("1"), -2 * tiny, P("1"))),
        ("w*x exactly halfway between two values: ties to even", ["TieToEven"],
         (fmt.next_up(1.0), fmt.next_up(1.0), P("1"), P("0"), P("0.5"))),
        ("exactly representable product", ["ExactProduct"], (P("0.5"), P("0.25"), P("2"), P("1"), P("0.5"))),
        ("lr*(x^2+1) = 2: the loss is unchanged", ["Overshoot", "ExactProduct"],
         (P("0.5"), P("0.25"), P("1"), P("2"), P("1"))),
        ("lr*(x^2+1) = 1: the step lands on the minimum", ["Overshoot", "ExactProduct"],
         (P("0.5"), P("0.25"), P("1"), P("2"), P("0.5"))),
        ("tiny lr: the update rounds back", ["LrTiny"], (P("0.75"), P("-0.5"), P("1.5"), P("1"), tiny)),
        ("w*x near the largest finite value, inside the domain", ["OverflowAdjacent"],
         (fmt.round(math.sqrt(big) * 0.9), -fmt.round(big * 0.5), fmt.round(math.sqrt(big) * 0.9),
          -fmt.round(big * 0.25), 0.0)),
        ("w*x overflows: out of the bounded domain", ["OutOfDomain"], (big, 0.0, P("2"), 0.0, P("0.5"))),
        ("the loss overflows, y and the gradients do not", ["OutOfDomain"],
         (0.0, fmt.round(big * 0.25), P("1"), -fmt.round(big * 0.125), 0.0)),
    ]
    out += _fma_sensitive(fmt)
    return out


def _fma_sensitive(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    """The first fixed-seed cases where fused and two-rounding evaluations differ."""
    rng = np.random.default_rng(7)
    found: dict[str, tuple] = {}
    names = {"fused-forward": ("y", "FmaSensitive"), "fused-update": ("w_new", "FmaSensitiveUpdate")}
    for case in regime_cases(fmt, "cancel-wx-b", rng, 400) + regime_cases(fmt, "lr-range", rng, 400):
        res = evaluate_variants(fmt, *case, [VARIANTS["canonical"], VARIANTS["fused-forward"],
                                             VARIANTS["fused-update"]])
        bounds = case_bounds(fmt, case)
        for variant, (q, flag) in names.items():
            if variant in found or isinstance(bounds[q], OutOfDomain):
                continue
            if res[variant][q] != res["canonical"][q]:
                found[variant] = case
        if len(found) == len(names):
            break
    return [(f"{v}: {names[v][0]} differs from two roundings", [names[v][1]], c)
            for v, c in found.items()]


def _random_cases(fmt: Format) -> list[tuple[str, list[str], tuple]]:
    out = []
    for i, regime in enumerate(CAMPAIGN_REGIMES):
        rng = np.random.default_rng([RANDOM_SEED, fmt.p, i])
        for case in regime_cases(fmt, regime, rng, RANDOM_PER_REGIME):
            out.append((f"random, regime {regime}", ["Random"], case))
    return out


def _test(fmt: Format, tc_id: int, comment: str, flags: list[str], case: tuple) -> dict:
    inputs = dict(zip(INPUTS, case))
    exact = exact_step(*case).as_fractions()
    bounds = case_bounds(fmt, inputs, IEEE)
    legal = legal_values(fmt, case, IEEE)
    expected = {}
    flags = list(flags)
    for q in QUANTITIES:
        e = exact[q]
        entry = {"exact": exact_decimal(e, 100000), "exactHex": exact_hex(e),
                 "rounded": float_hex(fmt.round(e)),
                 "legal": sorted({float_hex(v) for v in legal.of(q)}, key=hex_order)}
        b = bounds[q]
        if isinstance(b, OutOfDomain):
            entry["outOfDomain"] = b.reason
            if "OutOfDomain" not in flags:
                flags.append("OutOfDomain")
            b = b.bound  # held by the finite results all the same
        if b is not None:
            entry["bound"] = exact_hex(Fraction(b))
            entry["boundUlps"] = round(as_float(Fraction(b) / fmt.ulp(e)), 6)
        expected[q] = entry
    if any(v != 0.0 and abs(v) < fmt.smallest_normal for v in case) and "Subnormal" not in flags:
        flags.append("Subnormal")
    return {"tcId": tc_id, "comment": comment, "flags": flags,
            "inputs": {k: {"hex": float_hex(v), "decimal": exact_decimal(v, 100000)}
                       for k, v in inputs.items()},
            "expected": expected}


def hex_order(text: str) -> tuple:
    """Legal values in numeric order (NaN last), for a stable file."""
    if text == "nan":
        return (1, 0.0)
    return (0, float.fromhex(text) if "0x" in text else float(text))


def generate(fmt_name: str) -> dict:
    """The vector file of one format (deterministic)."""
    fmt = FORMATS[fmt_name]
    tests = [_test(fmt, i + 1, c, f, case) for i, (c, f, case) in enumerate(_edge_cases(fmt))]
    tests += [_test(fmt, 1000 + i, c, f, case) for i, (c, f, case) in enumerate(_random_cases(fmt))]
    used = sorted({f for t in tests for f in t["flags"]})
    reasons = flags()
    return {
        "algorithm": "neuronspec: one SGD step of y = w*x + b, L = (y - t)^2 / 2",
        "generatedBy": "neuronspec vectors",
        "generatorVersion": __version__,
        "schema": "schema.json",
        "format": fmt_name,
        "precision": fmt.p, "emin": fmt.emin, "emax": fmt.emax,
        "model": IEEE.name,
        "numberOfTests": len(tests),
        "notes": {f: reasons[f] for f in used},
        "header": ["Each quantity's 'exact' value is the exact result on the binary inputs (a "
                   "finite decimal); 'rounded' is it correctly rounded to the format; 'bound' is "
                   "an upper bound on |computed - exact| for every evaluation the ieee model "
                   "admits (spec/tolerances.md); 'legal' lists every value those evaluations "
                   "give, bit for bit. At the bounded level a result conforms when it is a "
                   "value of the format and |computed - exact| <= bound; at the exact level, "
                   "when it is one of 'legal'. Where 'outOfDomain' says an admitted evaluation "
                   "may overflow, a finite result is held to the bound and a non-finite one "
                   "must be one of 'legal'."],
        "testGroups": [{"format": fmt_name, "tests": tests}],
    }


def dump_vectors(content: dict) -> str:
    return json.dumps(content, indent=1, ensure_ascii=False) + "\n"


def write(directory: "Path | None" = None, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write the vector files (default: the shipped ones, ``spec/vectors`` in a checkout)."""
    return write_files(Path(str(directory or data.vectors())), formats, generate, "the vectors")


def write_files(directory: Path, formats: Iterable[str], make: Callable[[str], dict],
                what: str) -> list[Path]:
    """Write ``make(format)`` as ``<format>.json`` into ``directory`` for each format (the
    one-step vectors, the run vectors); a usage error where the folder is not writable."""
    paths = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in formats:
            path = directory / f"{name}.json"
            path.write_text(dump_vectors(make(name)), encoding="utf-8")
            paths.append(path)
    except OSError as exc:
        raise UsageError(f"cannot write {what} into {directory} ({exc.strerror or exc}); "
                         "choose a writable --dir") from None
    return paths


def stale(directory: Any = None, formats: Iterable[str] = FORMATS) -> list[str]:
    """Files that differ from what ``write`` would produce."""
    return stale_files(directory or data.vectors(), formats, generate)


def stale_files(directory: Path, formats: Iterable[str], make: Callable[[str], dict]
                ) -> list[str]:
    """The files ``<format>.json`` in ``directory`` that differ from ``make(format)``."""
    out = []
    for name in formats:
        path = directory / f"{name}.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != dump_vectors(make(name)):
            out.append(str(path))
    return out


def read_vector_file(path: Path, schema: str, kind: str, regenerate: str) -> dict:
    """A vector file's content, checked against its schema (``schema``: its path under the
    shipped data, e.g. ``vectors/schema.json``); a one-line DataError naming ``kind`` and the
    command that regenerates it otherwise."""
    import jsonschema

    try:
        text = path.read_text(encoding="utf-8")
        content = json.loads(text)
        match_schema(content, text, schema)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a {kind} file ({exc}); regenerate it with "
                        f"`{regenerate}`") from None
    except jsonschema.ValidationError as exc:
        raise DataError(f"{path} does not match the {kind}s' schema: {exc.message} (at "
                        f"{'/'.join(map(str, exc.absolute_path))})") from None
    return content


def load(directory: Any = None) -> dict[str, dict]:
    """format -> {tcId -> test} for every vector file in ``directory`` (default: the shipped
    vectors), each checked against the vectors' schema."""
    directory = directory or data.vectors()
    out = {}
    for name in FORMATS:
        path = directory / f"{name}.json"
        if not path.is_file():
            continue
        content = read_vector_file(path, "vectors/schema.json", "vector",
                                   "neuronspec vectors write")
        tests = {}
        for t in (t for g in content["testGroups"] for t in g["tests"]):
            _check_test(FORMATS[name], t, path)
            tests[t["tcId"]] = t
        out[name] = tests
    if not out:
        raise DataError(f"no vector files in {directory}; run `neuronspec vectors write` or "
                        "pass --vectors with a folder that holds them")
    return out


def match_schema(content: dict, text: str, schema: str = "vectors/schema.json") -> None:
    """Raises jsonschema's ValidationError unless the vector file ``content`` (read from
    ``text``) matches ``schema`` (a path under the shipped data).  Where these very bytes
    matched this schema under this jsonschema before, a marker in the cache directory
    (``validated/`` of ``reference.batch.kernel.cache_dir``, named by the hash of all three)
    says so: validating the shipped vectors took 0.8 s of every command that loads them, the
    same answer each time."""
    key = hashlib.sha256()
    for part in (text, data.root().joinpath(*schema.split("/")).read_text(encoding="utf-8"),
                 importlib.metadata.version("jsonschema")):
        key.update(part.encode("utf-8") + b"\0")
    marker = cache_dir() / "validated" / f"vectors-{key.hexdigest()}"
    if marker.is_file():
        return
    data.validate(content, schema)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:  # (no writable cache directory: validated again next time)
        pass


def _check_test(fmt: Format, test: Mapping, path: Path) -> None:
    """What the schema cannot say: each input is a value of the format, written twice alike,
    and every number is of a sane size (parsed bounded: an absurd exponent is refused)."""
    where = f"{path}: tcId {test['tcId']}"
    try:
        for k in INPUTS:
            text = test["inputs"][k]
            q = parse_hex(text["hex"])
            if "decimal" in text and parse_exact(text["decimal"]) != q:
                raise ValueError(f"input {k}: hex and decimal differ")
            v = float.fromhex(text["hex"])
            if Fraction(v) != q or not fmt.contains(v):
                raise ValueError(f"input {k} = {text['hex']} is not a {fmt.name} value")
        for q, entry in test["expected"].items():
            parse_hex(entry["exactHex"])
            if "bound" in entry:
                parse_hex(entry["bound"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: {exc}; regenerate the vectors with `neuronspec vectors "
                        "write`") from None


def vector_case(test: Mapping) -> Case:
    """The inputs of a vector as a case."""
    return Case(*(float.fromhex(test["inputs"][k]["hex"]) for k in INPUTS))


def load_results(path: Path) -> list[dict]:
    """The results in a file written by ``neuronspec vectors run`` (or any program that follows
    spec/schemas/results.schema.json)."""
    import jsonschema

    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise DataError(f"{path} is not a results file ({exc}); it holds a JSON list, or an "
                        "object with 'results': [{format, tcId, outputs}, ...]") from None
    try:
        data.validate(content, "results.schema.json")
    except jsonschema.ValidationError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "the top level"
        raise DataError(f"{path} is not a results file: {exc.message} at {where} (a JSON list, "
                        "or an object with 'results': [{format, tcId, outputs}, ...])") from None
    return content["results"] if isinstance(content, dict) else content


def observed_value(text, fmt: Format) -> "float | str":
    """A result value as a float of the format, or a string saying why it is not one."""
    if not isinstance(text, str):
        return f"{text!r} is not a string"
    s = text.strip().lower()
    if s.lstrip("+-") in ("inf", "infinity", "nan"):
        return float(s)
    try:
        q = parse_exact(text)
    except ValueError as exc:
        return str(exc)
    r = fmt.round(q)
    if not math.isfinite(r) or Fraction(r) != q:
        return f"{text!r} is not a {fmt.name} value"
    return -0.0 if r == 0 and s.startswith("-") else r


def _malformed(entry: object) -> str:
    """Why a result entry does not follow the results schema ('' when it does)."""
    import jsonschema

    try:
        data.validate(entry, "results.schema.json", "result")
    except jsonschema.ValidationError as exc:
        at = "/".join(map(str, exc.absolute_path))
        return f"{exc.message}{' at ' + at if at else ''}"
    return ""


def bounded_words(fmt: Format, q: str, v: float, exp: dict) -> str:
    """Why ``v`` fails the bounded level for a vector's expected entry ('' if it does not)."""
    legal = exp.get("legal")
    if not math.isfinite(v):
        if "outOfDomain" in exp and (legal is None or float_hex(v) in legal):
            return ""  # an overflow an admitted evaluation gives
        return ("is not finite" if "outOfDomain" not in exp else
                "is not an overflow an admitted evaluation gives")
    if "bound" not in exp:
        return ""  # (vectors written before bounds were given where overflow is possible)
    j = judge(fmt, q, v, parse_hex(exp["exactHex"]), parse_hex(exp["bound"]))
    if j.violation:
        times = "> 1e300" if j.ratio > 1e300 else f"{j.ratio:.3g}"
        return f"is off by {times} times its bound (exact {exact_decimal(j.exact, 25)})"
    if v == 0 and legal is not None:  # the sign of a zero, where IEEE 754 fixes it
        zeros = {t for t in legal if t in ("0x0p+0", "-0x0p+0")}
        if (q in NONNEGATIVE and math.copysign(1.0, v) < 0) or \
                (zeros and float_hex(v) not in zeros):
            return "is a zero of the wrong sign"
    return ""


def verify(results: list, vectors: dict[str, dict], level: str = "exact") -> dict:
    """Check results ({format, tcId, outputs}) against the vectors, at both levels (``level``
    decides which failures the summary lists first).  Every vector of a format that has results
    needs exactly one; a format declared unsupported needs none.  A summary: counts (checked,
    passed and failed at the bounded level, unexplained at the exact level, unknown ids,
    duplicates, missing, malformed), the formats not run, and the failures."""
    summary = {"checked": 0, "passed": 0, "failed": 0, "unexplained": 0, "unknown": 0,
               "duplicates": 0, "missing": 0, "malformed": 0, "failures": [],
               "unsupported": {}, "level": level}
    seen: set = set()
    formats_run: set = set()

    def fail(kind: str, fmt_name, tc, reason: str, comment: str = "") -> None:
        summary[kind] += 1
        entry = {"format": fmt_name, "tcId": tc, "reason": reason}
        if comment:
            entry["comment"] = comment
        summary["failures"].append(entry)

    for r in results:
        why = _malformed(r)
        if why:
            fail("malformed", r.get("format") if isinstance(r, dict) else None,
                 r.get("tcId") if isinstance(r, dict) else None, f"malformed entry: {why}")
            continue
        fmt_name, tc = r["format"], r.get("tcId")
        if "unsupported" in r:
            summary["unsupported"][fmt_name] = r["unsupported"]
            continue
        test = vectors.get(fmt_name, {}).get(tc)
        if test is None:
            fail("unknown", fmt_name, tc, "no such test (check format and tcId)")
            continue
        formats_run.add(fmt_name)
        if (fmt_name, tc) in seen:
            fail("duplicates", fmt_name, tc, "a second result for this test")
            continue
        seen.add((fmt_name, tc))
        fmt = FORMATS[fmt_name]
        outputs = r.get("outputs") or {}
        ood = any("outOfDomain" in test["expected"][q] for q in REQUIRED)
        if "error" in r and ood:  # failing where a quantity may overflow is allowed
            summary["checked"] += 1
            summary["passed"] += 1
            continue
        reasons = [f"the program reported an error: {r['error'][:200]}"] if "error" in r else []
        unexplained = []
        for q in REQUIRED:
            exp = test["expected"][q]
            if q not in outputs:
                reasons.append(f"{q} missing")
                continue
            v = observed_value(outputs[q], fmt)
            if isinstance(v, str):
                reasons.append(f"{q}: {v}")
                continue
            legal = exp.get("legal")
            if legal is not None and float_hex(v) not in legal:
                unexplained.append(f"{q} = {outputs[q]} is not what an admitted evaluation "
                                   f"gives ({', '.join(legal[:3])}"
                                   + (", ..." if len(legal) > 3 else "") + ")")
            why = bounded_words(fmt, q, v, exp)
            if why:
                reasons.append(f"{q} = {outputs[q]} {why}")
        summary["checked"] += 1
        if reasons:
            fail("failed", fmt_name, tc, "; ".join(reasons), test["comment"])
        else:
            summary["passed"] += 1
        if unexplained and level == "exact" and not reasons:
            fail("unexplained", fmt_name, tc, "; ".join(unexplained), test["comment"])
        elif unexplained:
            summary["unexplained"] += 1
    for fmt_name in sorted(formats_run):
        absent = sorted(set(vectors[fmt_name]) - {tc for f, tc in seen if f == fmt_name})
        for tc in absent:
            fail("missing", fmt_name, tc, "no result for this test")
    summary["notRun"] = sorted(set(vectors) - formats_run)
    return summary


def verified(summary: dict) -> int:
    """The exit status of a verification: 0 every result passed (at the summary's level) and
    nothing was missing, duplicated, malformed or unknown; 1 otherwise; 2 when nothing could be
    checked."""
    if not summary["checked"] and not any(summary[k] for k in ("failed", "unknown",
                                                                "duplicates", "malformed")):
        return 2
    kinds = ("failed", "unknown", "duplicates", "missing", "malformed") \
        + (("unexplained",) if summary.get("level", "exact") == "exact" else ())
    return 1 if sum(summary[k] for k in kinds) else 0


def run_implementation(impl, vectors: dict[str, dict], formats: Iterable[str]) -> list[dict]:
    """An implementation's results on the vectors, in the verify format (a format it does
    not support gets one entry saying so)."""
    out = []
    for fmt_name in formats:
        for tc, test in vectors.get(fmt_name, {}).items():
            try:
                res = impl(fmt_name, vector_case(test))
            except NotImplementedError as exc:
                out = [r for r in out if r["format"] != fmt_name]
                out.append({"format": fmt_name,
                            "unsupported": str(exc)[:200] or "NotImplementedError"})
                break
            except ImplementationError as exc:
                out.append({"format": fmt_name, "tcId": tc, "error": str(exc)})
                continue
            out.append({"format": fmt_name, "tcId": tc,
                        "outputs": {q: float_hex(v) for q, v in res.items()}})
    return out
