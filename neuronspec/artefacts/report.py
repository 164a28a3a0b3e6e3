"""Rendering a ``neuronspec check`` report: a terminal table (at most 100 columns), Markdown
for a pull request and a one-line summary for a pull-request comment or a CI log; what failed
where, read once for the summary and the JUnit XML (:func:`outcomes`).  The JSON form is the
report dict itself (``spec/report.md``)."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Iterator, Optional

from reference.bounds import DOMAIN_SECTION, get_model
from reference.step import REQUIRED

__all__ = ["render_text", "render_markdown", "md", "code_block", "ratio_text", "share",
           "unchecked_words", "unchecked_reasons", "ulps_text", "exact_share", "verdict_words",
           "level_words",
           "explained_words", "sweep_words", "LEGEND", "Outcome", "outcomes", "summary_line",
           "NOT_REACHED"]

#: What the figures of a quantity's row mean (printed under the tables).
LEGEND = ("err/bound: the largest |computed - exact| / bound, at most 1; * marks a value that "
          "is the exact value correctly rounded, + one an admitted evaluation gives bit for bit: "
          "a ratio of 1 there is the bound attained by a legal result, not a near miss; "
          "ulps of scale: the largest error in ulps of the scale the bound "
          "is built on (the step on |inputs|; values where no scale on the way is subnormal; "
          "spec/report.md); rounded: values that are the "
          "exact value correctly rounded (case by case); exact: values an admitted evaluation "
          "gives bit for bit (the exact level)")


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="   ", subsequent_indent="      ")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md(text: object) -> str:
    """Text from outside (an implementation's name, origin, messages) as inert Markdown: one
    line, punctuation escaped, no HTML."""
    one_line = " ".join(str(text).split())
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str) -> list[str]:
    """A fenced code block that no text inside can close: the fence is longer than any run of
    backticks in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text, fence]


def ratio_text(st: dict) -> str:
    """The largest error/bound of a quantity in words: never "inf"."""
    r = st["worstErrorOverBound"]
    if isinstance(r, str):  # inf: a value that failed (not finite, or an error over 0)
        return "failed" if r == "inf" else "-"
    return f"{r:.3g}" + ("*" if st.get("worstIsCorrectlyRounded") else
                         "+" if st.get("worstEvaluation") else "")


def share(part: int, whole: int) -> str:
    """A share in percent that reads 100% only when it is all (and 0% only when none)."""
    if whole == 0:
        return "-"
    if part == whole:
        return "100%"
    if part == 0:
        return "0%"
    p = 100 * part / whole
    return "<0.1%" if p < 0.1 else f"{min(p, 99.9):.1f}%"


def ulps_text(st: dict) -> str:
    """The largest error in ulps of the scale, "-" where no value had a normal scale."""
    v = st.get("worstUlpsOfScale")
    return "-" if v is None or not st.get("ulpsOfScaleValues") else f"{v:.3g}"


def exact_share(st: dict) -> str:
    """The share of values an admitted evaluation gives bit for bit."""
    return share(st.get("explained", 0), st.get("explained", 0) + st.get("unexplained", 0))


def unchecked_reasons(st: dict) -> dict:
    """Why a quantity's unchecked values are unchecked: reason -> values (those a run counted
    without saying why under a general reason)."""
    why = {k: v for k, v in (st.get("outOfDomainWhy") or {}).items() if isinstance(v, int)}
    n, known = st.get("outOfDomain", 0), sum(why.values())
    if isinstance(n, int) and n > known:  # counted by a run that did not say why
        why["an admitted evaluation may overflow"] = n - known
    return why


def unchecked_words(r: dict) -> str:
    """Why the format's unchecked values are unchecked: per reason, the values per quantity."""
    by: dict = {}
    for q in REQUIRED:
        for why, n in unchecked_reasons(r["quantities"][q]).items():
            by.setdefault(why, {})[q] = n
    if not by:
        return ""
    parts = [f"{why}: {sum(qs.values()):,} ("
             + ", ".join(f"{q} {n:,}" for q, n in qs.items()) + ")"
             for why, qs in sorted(by.items(), key=lambda kv: -sum(kv[1].values()))]
    return (f"unchecked: outside the bounded domain, where an admitted evaluation overflows "
            f"(no bound; {DOMAIN_SECTION}): " + "; ".join(parts))


_HEAD = (f"   {'quantity':<8} {'checked':>9} {'unchecked':>9} {'failed':>6} {'unexplained':>11} "
         f"{'err/bound':>10} {'ulps of scale':>13} {'rounded':>8} {'exact':>7}")


def _row(q: str, st: dict) -> str:
    return (f"   {q:<8} {st['checked']:>9,} {st['outOfDomain']:>9,} {st['failures']:>6,} "
            f"{st.get('unexplained', 0):>11,} {ratio_text(st):>10} {ulps_text(st):>13} "
            f"{share(st.get('correctlyRounded', 0), st.get('caseByCase', 0)):>8} "
            f"{exact_share(st):>7}")


def verdict_words(report: dict) -> str:
    """The run's verdict, with the signal that interrupted it."""
    verdict = report.get("verdict") or ("conformant" if report["conformant"]
                                        else "non-conformant")
    return verdict + (f" (interrupted by {report['interrupted']})"
                      if report.get("interrupted") else "")


def level_words(r: dict) -> str:
    """A format's status with the other level's, where they differ."""
    levels = r.get("levels") or {}
    if len(set(levels.values())) <= 1:
        return r["status"] + (" at both levels" if levels else "")
    return f"{r['status']} (bounded level: {levels['bounded']}, exact level: {levels['exact']})"


def explained_words(r: dict) -> str:
    """The exact level of a format in words: values explained, by which evaluations."""
    by: dict = {}
    for st in r["quantities"].values():
        for name, count in st.get("explainedBy", {}).items():
            by[name] = by.get(name, 0) + count
    explained = sum(st.get("explained", 0) for st in r["quantities"].values())
    top = sorted(by.items(), key=lambda kv: -kv[1])
    words = ", ".join(f"{name} {count:,}" for name, count in top[:4]) \
        + (f", +{len(top) - 4} more" if len(top) > 4 else "")
    return (f"exact level: {explained:,} values explained" + (f" ({words})" if words else "")
            + f", {r.get('unexplained', 0):,} unexplained")


def sweep_words(sweep: dict) -> str:
    """A format's sweep phase in one sentence."""
    if not sweep:
        return "sweep phase: none"
    if "skipped" in sweep:
        return f"sweep phase: skipped ({sweep['skipped']})"
    return (f"sweep phase: {sweep['cases']:,} cases ({sweep['path']} reference, "
            f"{sweep['seconds']} s): {sweep['violations']} failures at the bounded level, "
            f"{sweep['unexplained']} at the exact level"
            + (f"; {sweep['unchecked']:,} cases unchecked: the implementation raised an "
               "overflow error where a quantity is outside the bounded domain (allowed)"
               if sweep.get("unchecked") else "")
            + (f"; stopped: {sweep['stopped']}" if sweep.get("stopped") else ""))


def render_text(report: dict) -> str:
    s = report["settings"]
    out = [textwrap.fill(f"neuronspec {report['suiteVersion']} check: model {s['model']}, "
                         f"level {s.get('level', 'bounded')}, {s['examples']} hypothesis "
                         f"examples per format and {s['vectors']} vectors, seed {s['seed']}",
                         width=100, subsequent_indent="   "),
           f"platform: {report['platform']}"]
    for impl in report["implementations"]:
        out += ["", f"== {impl['name']} ({impl['origin']}; {impl['version']}): "
                    f"{impl['verdict'].upper()}"]
        if impl["error"]:
            out.append(f"   stopped: {impl['error']}")
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                out.append(f"-- {fmt}: unsupported ({r['reason'][:70]})")
                continue
            out.append(textwrap.fill(f"-- {fmt}: {level_words(r)}, {r['cases']} cases "
                                     f"({r['vectorCases']} vectors)"
                                     + (f": {r['reason']}" if r["reason"] else ""),
                                     width=100, subsequent_indent="   "))
            out.append(_HEAD)
            out += [_row(q, r["quantities"][q]) for q in REQUIRED]
            if unchecked_words(r):
                out.append(_wrap(unchecked_words(r)))
            out.append(_wrap(explained_words(r)))
            for why, n in r.get("declined", {}).items():
                out.append(_wrap(f"declined (a reported skip, not checked): {n} cases with {why}"))
            out.append(_wrap(sweep_words(r.get("sweep") or {})))
            for f in (r.get("sweep") or {}).get("findings", [])[:2]:
                out.append(_wrap(f"sweep: {f['quantity']} {f['why']}"))
                out.append(f"      replay: {f['replay']}")  # one line: it is copied as it is
            for prop, n in r["propertyFailures"].items():
                out.append(f"   property {prop}: {n} failing cases")
            for g, fp in r["fingerprint"].items():
                out.append(_wrap(f"fingerprint {g}: {fp['words']}"))
            for words in r["behaviourOutsideModel"]:
                out.append(_wrap(f"outside the model: {words}"))
            for fail in r["failures"][:3]:
                out.append("   " + fail["message"].replace("\n", "\n   "))
    out += ["", textwrap.fill(LEGEND, width=100), "",
            f"verdict: {verdict_words(report).upper()} ({report['seconds']} s)"]
    return "\n".join(out)


def render_markdown(report: dict) -> str:
    """Markdown for a pull request; everything that comes from the implementation under test
    is escaped (it cannot add headings, links or HTML, nor close a code block)."""
    s = report["settings"]
    out = [f"## neuronspec check: {md(verdict_words(report))}",
           "", f"Suite {report['suiteVersion']}, model `{s['model']}`, level "
           f"`{s.get('level', 'bounded')}`, {s['examples']} hypothesis "
           f"examples per format and {s['vectors']} vectors, seed {s['seed']}; "
           f"{md(report['platform'])}.", ""]
    for impl in report["implementations"]:
        out += [f"### {md(impl['name'])}: {impl['verdict']}", "",
                f"{md(impl['origin'])} ({md(impl['version'])})", ""]
        if impl["error"]:
            out += [f"Stopped: {md(impl['error'])}", ""]
        out += ["| format | status | cases | quantity | checked | unchecked | failed | "
                "unexplained | err/bound | ulps of scale | rounded | exact |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                out.append(f"| {fmt} | unsupported: {md(r['reason'])[:120]} "
                           "| | | | | | | | | | |")
                continue
            for i, q in enumerate(REQUIRED):
                st = r["quantities"][q]
                lead = f"| {fmt} | {md(level_words(r))} | {r['cases']:,} " if i == 0 else "| | | "
                out.append(f"{lead}| {q} | {st['checked']:,} | {st['outOfDomain']:,} | "
                           f"{st['failures']:,} | {st.get('unexplained', 0):,} | "
                           f"{md(ratio_text(st))} | {ulps_text(st)} | "
                           f"{share(st.get('correctlyRounded', 0), st.get('caseByCase', 0))} | "
                           f"{exact_share(st)} |")
        out += ["", md(LEGEND), ""]
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                continue
            lines = [f"- **{md(g)}**: {md(fp['words'])}" for g, fp in r["fingerprint"].items()]
            lines.append(f"- {md(explained_words(r))}")
            if unchecked_words(r):
                lines.append(f"- {md(unchecked_words(r))}")
            lines.append(f"- {md(sweep_words(r.get('sweep') or {}))}")
            lines += [f"- declined (not checked): {n} cases with {md(why)}"
                      for why, n in r.get("declined", {}).items()]
            lines += [f"- **outside the model**: {md(w)}" for w in r["behaviourOutsideModel"]]
            if lines:
                out += [f"Fingerprint, {fmt}:", ""] + lines + [""]
            for fail in r["failures"][:3]:
                out += [f"<details><summary>{fmt}: {md(fail['property'])} failed on "
                        f"{md(fail['quantity'] or 'a case')}</summary>", ""]
                out += code_block(fail["message"]) + ["</details>", ""]
    out += _markdown_runs(report)
    return "\n".join(out) + "\n"


def _markdown_runs(report: dict) -> list[str]:
    """The runs of SGD with options (``--run``): a table per implementation, the fingerprint
    of each form, the first failures with their replay commands."""
    out: list[str] = []
    for entry in report.get("runs", []):
        out += [f"### {md(entry['implementation'])}: runs of SGD with options, "
                f"{entry['verdict']}", "",
                "Each step judged against the exact step from the state the implementation "
                "reported (spec/neuron.md 8.4).", "",
                "| format | options | runs | steps | failed runs | err/bound | exact | verdict |",
                "|---|---|---|---|---|---|---|---|"]
        for r in entry["results"]:
            if r["unsupported"]:
                out.append(f"| {r['format']} | {md(r['options'])} | not checked: "
                           f"{md(r['unsupported'])[:120]} | | | | | |")
                continue
            figures = r["quantities"].values()
            values = sum(f["values"] for f in figures)
            out.append(f"| {r['format']} | {md(r['options'])} | {r['runs']} | "
                       f"{r['stepsJudged']} | {r['failedRuns']} | "
                       f"{max(f['worstErrorOverBound'] for f in figures):.3g} | "
                       f"{share(sum(f['explained'] for f in figures), values)} | "
                       f"{r['verdict']} |")
        out.append("")
        for r in entry["results"]:
            if r["evaluations"] and r["verdict"] == "conformant":
                out.append(f"- {r['format']} {md(r['options'])}: every value is that of the "
                           f"evaluation {md(r['evaluations'][0])}")
            for f in r["failures"][:3]:
                out += [f"<details><summary>{r['format']} {md(r['options'])}: step {f['step']}, "
                        f"{md(f['quantity'])}</summary>", ""]
                out += code_block("\n".join([f["why"], "from the reported state " + ", ".join(
                    f"{k}={v}" for k, v in f["state"].items()), "replay: " + f["replay"]]))
                out += ["</details>", ""]
        out.append("")
    return out


# ---- what failed where: the one-line summary and the JUnit XML read the report through this ----

#: The status of a format the run did not reach (it stopped or was interrupted before it).
NOT_REACHED = "not reached"

_CHECKED = ("conformant", "non-conformant")


@dataclass
class Outcome:
    """One format of one implementation as CI shows it: what failed on each quantity, what
    failed on no single quantity (the whole step), and why the run stopped there."""

    impl: dict
    fmt: str
    status: str  # a format status (spec/report.md), or NOT_REACHED
    reason: str = ""
    #: quantity -> its failures (the bounded level)
    failures: "dict[str, int]" = field(default_factory=dict)
    #: quantity -> its values no admitted evaluation gives, where the exact level sets the
    #: status (else 0)
    unexplained: "dict[str, int]" = field(default_factory=dict)
    #: quantity (None: no quantity) -> the first failure messages, each with its replay
    messages: "dict[Optional[str], list[str]]" = field(default_factory=dict)
    #: quantity -> the error/bound of its kept failures that have one
    ratios: "dict[str, list[float]]" = field(default_factory=dict)
    case_failures: int = 0  # failures on no single quantity (a property of the whole case)
    case_properties: "list[str]" = field(default_factory=list)  # the properties of kept ones
    outside: "list[str]" = field(default_factory=list)  # outside the model, not declared
    stopped: str = ""  # why the run stopped in this format (an error, not a failure)
    interrupted: str = ""  # the signal that stopped the run in this format

    @property
    def checked(self) -> bool:
        return self.status in _CHECKED

    def failing(self, q: str) -> bool:
        return bool(self.failures.get(q) or self.unexplained.get(q))

    @property
    def step_failed(self) -> bool:
        """Something failed on no single quantity: a whole case, behaviour outside the model,
        or a non-conformance no quantity shows (a report always says where it failed)."""
        return bool(self.case_failures or self.outside or self.unfound)

    @property
    def unfound(self) -> bool:
        """Non-conformant, and no quantity, case or words outside the model say why."""
        return (self.status == "non-conformant" and not self.stopped
                and not self.case_failures and not self.outside
                and not any(self.failing(q) for q in self.failures))

    def error_over_bound(self, q: str) -> Optional[float]:
        """The largest error/bound among the kept failures on ``q``, if any has one."""
        ratios = self.ratios.get(q)
        return max(ratios) if ratios else None

    def step_words(self) -> list[str]:
        """What failed on no single quantity, in a few fixed words (nothing from the
        implementation)."""
        words = []
        if self.case_failures:
            props = ", ".join(self.case_properties)
            words.append(_count(self.case_failures, "failure") + (f": {props}" if props else ""))
        if self.outside:
            words.append("outside the model")
        if self.unfound:
            words.append("non-conformant")
        if self.stopped:
            words.append("run stopped")
        if self.interrupted:
            words.append(f"interrupted by {self.interrupted}")
        return words


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _declares_ftz(report: dict) -> bool:
    try:
        return bool(get_model(report["settings"]["model"]).ftz)
    except (KeyError, ValueError):
        return False


def _kept(r: dict, q: "str | None", exact: bool) -> "list[tuple[str, object]]":
    """The kept failures on ``q`` (None: on no quantity of the report), the sweep phase's
    findings after the others: (message, error/bound or None) each."""
    quantities = r.get("quantities", {})

    def ours(name: "str | None") -> bool:
        return name == q if q is not None else name not in quantities

    out = [(f["message"], f.get("errorOverBound")) for f in r.get("failures", [])
           if ours(f.get("quantity")) and (exact or f.get("property") != "exact-level")]
    out += [(f"sweep phase: {f['quantity']} {f['why']}\n  replay: {f['replay']}",
             f.get("errorOverBound"))
            for f in (r.get("sweep") or {}).get("findings", []) if ours(f.get("quantity"))]
    return out


def _outcome(report: dict, impl: dict, fmt: str, r: dict, last: bool) -> Outcome:
    exact = report["settings"].get("level", "bounded") == "exact"
    o = Outcome(impl, fmt, r["status"], r.get("reason", ""))
    if not o.checked:
        return o
    quantities = r["quantities"]
    for q, st in quantities.items():
        o.failures[q] = st["failures"]
        o.unexplained[q] = st.get("unexplained", 0) if exact else 0
        kept = _kept(r, q, exact)
        o.messages[q] = [m for m, _ in kept]
        o.ratios[q] = [float(v) for _, v in kept if v is not None]
    sweep = r.get("sweep") or {}
    swept = sweep.get("violations", 0) - sweep.get("failed", 0)  # in the quantities' counts
    on_quantities = sum(st["failures"] for st in quantities.values()) - swept
    o.case_failures = max(0, sum(r.get("propertyFailures", {}).values()) - on_quantities) \
        + sweep.get("failed", 0)
    o.messages[None] = [m for m, _ in _kept(r, None, exact)]
    o.case_properties = sorted({f["property"] for f in r.get("failures", [])
                                if f.get("quantity") not in quantities})
    if o.status == "non-conformant":
        ftz = _declares_ftz(report)
        o.outside = [w for w in r.get("behaviourOutsideModel", [])
                     if not (ftz and "flushes subnormal" in w)]
    stops = [f"sweep phase stopped: {sweep['stopped']}"] if sweep.get("stopped") else []
    if last and impl.get("error"):
        stops.append(f"run stopped: {impl['error']}")
    o.stopped = "; ".join(stops)
    if o.stopped:
        o.status = "non-conformant"
    return o


def outcomes(report: dict) -> Iterator[Outcome]:
    """Every format asked for, of every implementation in the report, in order; a format the
    run did not reach is NOT_REACHED.  The interrupted implementation's last format carries
    the signal."""
    formats = report["settings"].get("formats", [])
    signal = report.get("interrupted", "")
    impls = report["implementations"]
    for i, impl in enumerate(impls):
        reached = list(impl["formats"])
        stopped_in = reached[-1] if reached else None
        for fmt in dict.fromkeys(reached + [f for f in formats if f not in reached]):
            if fmt in impl["formats"]:
                o = _outcome(report, impl, fmt, impl["formats"][fmt], fmt == stopped_in)
            else:
                why = (f"interrupted by {signal}" if signal and i == len(impls) - 1
                       else "the run stopped" if impl.get("error") else "no result")
                o = Outcome(impl, fmt, NOT_REACHED, f"not checked: {why} before this format")
            if signal and i == len(impls) - 1 and fmt == (stopped_in or (formats or [fmt])[0]):
                o.interrupted = signal
            yield o


# ---- the one-line summary ------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.+-]+")
_ASCII = str.maketrans({"✓": "ok", "✗": "FAIL", "—": "-"})


def _plain(name: object, most: int = 40) -> str:
    """An implementation's name as inert text: characters that Markdown or HTML could act on
    (links, tags, mentions, line breaks) become ``_``; at most ``most`` characters."""
    text = _UNSAFE.sub("_", str(name)).strip("_") or "_"
    return text if len(text) <= most else text[:most - 3] + "..."


def _format_words(o: Outcome, most: int) -> str:
    """``float32 ✓`` or ``float32 ✗ w_new (3 failures: error/bound 4.2), +1 more``, naming at
    most ``most`` failing quantities (0: only the mark)."""
    if o.status == "conformant":
        return f"{o.fmt} ✓" + (" (interrupted)" if o.interrupted else "")
    items = []
    for q in o.failures:
        if not o.failing(q):
            continue
        n, u, ratio = o.failures[q], o.unexplained[q], o.error_over_bound(q)
        words = ", ".join(([_count(n, "failure")] if n else []) + ([f"{u:,} unexplained"]
                                                                     if u else []))
        worst = ("" if not ratio else ": an error where the bound is 0" if ratio == float("inf")
                 else f": error/bound {ratio:.3g}")
        items.append(f"{q} ({words}{worst})")
    if o.step_failed or o.stopped or o.interrupted:
        items.append(f"step ({'; '.join(o.step_words())})")
    shown = items[:most] + ([f"+{len(items) - most} more"] if len(items) > most and most else [])
    return f"{o.fmt} ✗" + (" " + ", ".join(shown) if shown else "")


def _impl_words(name: str, outs: "list[Outcome]", most: int) -> str:
    words = [_format_words(o, most) for o in outs if o.checked]
    aside = []
    for status in ("unsupported", "not checked", NOT_REACHED):
        names = [o.fmt for o in outs if o.status == status]
        if names:
            aside.append(f"{', '.join(names)} {status}")
    return " ".join([_plain(name)] + ([", ".join(words)] if words else [])
                    + ([f"({'; '.join(aside)})"] if aside else []))


def _run_words(report: dict) -> str:
    """The runs of SGD with options in a few words: each failing option set by its SPEC (the
    first three), else how many sets were checked."""
    entries = report.get("runs")
    if not entries:
        return ""
    failing = [f"{_plain(e['implementation'])} {r['format']} {r['options']} ✗" for e in entries
               for r in e["results"] if r["verdict"] == "non-conformant"]
    if failing:
        more = f" +{len(failing) - 3} more" if len(failing) > 3 else ""
        return "; runs: " + ", ".join(failing[:3]) + more
    checked = sum(r["verdict"] == "conformant" for e in entries for r in e["results"])
    total = sum(len(e["results"]) for e in entries)
    return f"; runs: {checked} of {total} option sets ✓"


def summary_line(report: dict, limit: int = 300, ascii: bool = False) -> str:
    """The run in one line of plain text for a pull-request comment or the end of a CI log:
    the verdict (which says the exit status), each implementation's formats with the failing
    quantities, the totals and the settings; at most ``limit`` characters where the detail
    can go (fewer quantities, then "+N more" implementations).  Nothing from the
    implementation but its name, made inert.  ``ascii``: without the marks ✓ ✗ —."""
    s = report["settings"]
    exact = s.get("level", "bounded") == "exact"
    by_impl: dict = {}
    for o in outcomes(report):
        by_impl.setdefault(id(o.impl), (o.impl, []))[1].append(o)
    impls = list(by_impl.values())
    failures = sum(sum(o.failures.values()) + o.case_failures for _, outs in impls for o in outs)
    unexplained = sum(sum(o.unexplained.values()) for _, outs in impls for o in outs)
    cases = sum(r.get("cases", 0) + (r.get("sweep") or {}).get("cases", 0)
                for impl, _ in impls for r in impl["formats"].values())
    head = f"neuronspec check: {verdict_words(report).upper()} — "
    runs = _run_words(report)
    tail = (runs + f"; {_count(cases, 'case')}, {_count(failures, 'failure')}"
            + (f", {unexplained:,} unexplained" if exact and unexplained else "")
            + f", model {s['model']}, level {s.get('level', 'bounded')}, {report['seconds']} s")
    line = ""
    for most in (3, 1, 0):
        parts = [_impl_words(impl["name"], outs, most) for impl, outs in impls]
        line = head + "; ".join(parts or ["no implementation"]) + tail
        if len(line) <= limit:
            break
    else:
        while len(parts) > 1 and len(line) > limit:
            parts.pop()
            more = len(impls) - len(parts)
            line = head + "; ".join(parts + [f"+{more} more"]) + tail
    line = " ".join(line.split())
    if ascii:
        line = line.translate(_ASCII).encode("ascii", "replace").decode("ascii")
    return line
