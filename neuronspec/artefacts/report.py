"""Rendering a ``neuronspec check`` report: a terminal table (at most 100 columns) and
Markdown for a pull request.  The JSON form is the report dict itself (``spec/report.md``)."""

from __future__ import annotations

import re
import textwrap

from reference.bounds import DOMAIN_SECTION
from reference.step import REQUIRED

__all__ = ["render_text", "render_markdown", "md", "code_block", "ratio_text", "share",
           "unchecked_words", "LEGEND"]

#: What the figures of a quantity's row mean (printed under the tables).
LEGEND = ("err/bound: the largest |computed - exact| / bound, at most 1; * marks a value that "
          "is the exact value correctly rounded, + one an admitted evaluation gives bit for bit: "
          "a ratio of 1 there is the bound attained by a legal result, not a near miss; "
          "ulps of scale: the largest error in ulps of the scale the bound "
          "is built on (the step on |inputs|; values where no scale on the way is subnormal; "
          "spec/report.md); rounded: values that are the "
          "exact value correctly rounded (case by case); exact: values an admitted evaluation "
          "gives bit for bit (the exact level)")


def _f(x, digits=3) -> str:
    if isinstance(x, str):
        return x
    return f"{x:.{digits}g}"


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
    p = 100 * part / whole
    return f"{min(p, 99.9):.1f}%" if part else "0%"


def _ulps(st: dict) -> str:
    v = st.get("worstUlpsOfScale")
    return "-" if v is None or not st.get("ulpsOfScaleValues") else f"{v:.3g}"


def _exact_share(st: dict) -> str:
    return share(st.get("explained", 0), st.get("explained", 0) + st.get("unexplained", 0))


def unchecked_words(r: dict) -> str:
    """Why the format's unchecked values are unchecked: per reason, the values per quantity."""
    by: dict = {}
    for q in REQUIRED:
        st = r["quantities"][q]
        known = 0
        for why, n in st.get("outOfDomainWhy", {}).items():
            by.setdefault(why, {})[q] = n
            known += n
        if st["outOfDomain"] > known:  # counted by a run that did not say why
            by.setdefault("an admitted evaluation may overflow", {})[q] = \
                st["outOfDomain"] - known
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
            f"{st.get('unexplained', 0):>11,} {ratio_text(st):>10} {_ulps(st):>13} "
            f"{share(st.get('correctlyRounded', 0), st.get('caseByCase', 0)):>8} "
            f"{_exact_share(st):>7}")


def _verdict(report: dict) -> str:
    verdict = report.get("verdict") or ("conformant" if report["conformant"]
                                        else "non-conformant")
    return verdict + (f" (interrupted by {report['interrupted']})"
                      if report.get("interrupted") else "")


def _levels(r: dict) -> str:
    """A format's status with the other level's, where they differ."""
    levels = r.get("levels") or {}
    if len(set(levels.values())) <= 1:
        return r["status"] + (" at both levels" if levels else "")
    return f"{r['status']} (bounded level: {levels['bounded']}, exact level: {levels['exact']})"


def _explained(r: dict) -> str:
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


def _sweep_words(sweep: dict) -> str:
    if not sweep:
        return "sweep phase: none"
    if "skipped" in sweep:
        return f"sweep phase: skipped ({sweep['skipped']})"
    return (f"sweep phase: {sweep['cases']:,} cases ({sweep['path']} reference, "
            f"{sweep['seconds']} s): {sweep['violations']} failures at the bounded level, "
            f"{sweep['unexplained']} at the exact level"
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
            out.append(textwrap.fill(f"-- {fmt}: {_levels(r)}, {r['cases']} cases "
                                     f"({r['vectorCases']} vectors)"
                                     + (f": {r['reason']}" if r["reason"] else ""),
                                     width=100, subsequent_indent="   "))
            out.append(_HEAD)
            out += [_row(q, r["quantities"][q]) for q in REQUIRED]
            if unchecked_words(r):
                out.append(_wrap(unchecked_words(r)))
            out.append(_wrap(_explained(r)))
            for why, n in r.get("declined", {}).items():
                out.append(_wrap(f"declined (a reported skip, not checked): {n} cases with {why}"))
            out.append(_wrap(_sweep_words(r.get("sweep") or {})))
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
            f"verdict: {_verdict(report).upper()} ({report['seconds']} s)"]
    return "\n".join(out)


def render_markdown(report: dict) -> str:
    """Markdown for a pull request; everything that comes from the implementation under test
    is escaped (it cannot add headings, links or HTML, nor close a code block)."""
    s = report["settings"]
    out = [f"## neuronspec check: {md(_verdict(report))}",
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
                lead = f"| {fmt} | {md(_levels(r))} | {r['cases']} " if i == 0 else "| | | "
                out.append(f"{lead}| {q} | {st['checked']} | {st['outOfDomain']} | "
                           f"{st['failures']} | {st.get('unexplained', 0)} | "
                           f"{md(ratio_text(st))} | {_ulps(st)} | "
                           f"{share(st.get('correctlyRounded', 0), st.get('caseByCase', 0))} | "
                           f"{_exact_share(st)} |")
        out += ["", md(LEGEND), ""]
        for fmt, r in impl["formats"].items():
            if r["status"] == "unsupported":
                continue
            lines = [f"- **{md(g)}**: {md(fp['words'])}" for g, fp in r["fingerprint"].items()]
            lines.append(f"- {md(_explained(r))}")
            if unchecked_words(r):
                lines.append(f"- {md(unchecked_words(r))}")
            lines.append(f"- {md(_sweep_words(r.get('sweep') or {}))}")
            lines += [f"- declined (not checked): {n} cases with {md(why)}"
                      for why, n in r.get("declined", {}).items()]
            lines += [f"- **outside the model**: {md(w)}" for w in r["behaviourOutsideModel"]]
            if lines:
                out += [f"Fingerprint, {fmt}:", ""] + lines + [""]
            for fail in r["failures"][:3]:
                out += [f"<details><summary>{fmt}: {md(fail['property'])} failed on "
                        f"{md(fail['quantity'] or 'a case')}</summary>", ""]
                out += code_block(fail["message"]) + ["</details>", ""]
    return "\n".join(out) + "\n"
