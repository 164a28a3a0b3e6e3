"""The ``neuronspec check`` report as one self-contained HTML page (``--html FILE``).

No network: inline CSS and inline SVG only, no script, and a Content-Security-Policy that
forbids loading anything.  Everything that comes from the implementation under test (its name,
origin, version, messages, reasons, replay commands) is escaped with ``html.escape``.
"""

from __future__ import annotations

import html
import math
import signal

from reference.step import REQUIRED

from .peers import DEFAULT_PEER, PEER_TOLERANCES
from .report import (LEGEND, exact_share, explained_words, level_words, ratio_text, share,
                     sweep_words, ulps_text, unchecked_reasons, unchecked_words,
                     verdict_words)
from .svg import Panel, log_scatter

__all__ = ["render_html", "exit_status"]

#: exit status, verdict, meaning (spec/report.md)
EXIT_STATUSES = ((0, "conformant", "every implementation checked and conformant"),
                 (1, "non-conformant", "some implementation failed a property, or behaves "
                  "outside the model"),
                 (2, "not checked", "a usage error, or an implementation that could not be "
                  "loaded or checked"))

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; padding: 16px 24px 48px; max-width: 1240px; color: #1b1b1b; }
h1 { font-size: 22px; margin: 8px 0 12px; } h2 { font-size: 19px; margin: 32px 0 4px; }
h3 { font-size: 16px; margin: 24px 0 6px; border-bottom: 1px solid #ddd; }
h4 { font-size: 14px; margin: 14px 0 4px; }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
              margin: 0 0 8px; }
dl.settings dt { color: #555; } dl.settings dd { margin: 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d4d4d4; padding: 3px 8px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.n { text-align: right; white-space: nowrap; }
table.summary { font-size: 13px; } tr.first > td { border-top: 2px solid #999; }
.why { font-size: 12px; } td.why { max-width: 30em; } p.legend { font-size: 12.5px; }
.nw { white-space: nowrap; }
.badge { display: inline-block; padding: 0 8px; border-radius: 4px; font-weight: 600;
         white-space: nowrap;
         color: #fff; background: #777; }
.s-conformant { background: #1a7f37; } .s-non-conformant { background: #c62828; }
.s-not-checked, .s-unsupported { background: #777; }
.bad { color: #b00020; font-weight: 600; }
ul.exit { list-style: none; padding: 0; margin: 4px 0; }
ul.exit li.this { font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: 8px 10px; overflow-x: auto;
      margin: 4px 0 8px; font-size: 12.5px; }
pre.replay code { user-select: all; }
details { margin: 6px 0; } summary { cursor: pointer; }
figure { margin: 8px 0 16px; } svg.plot { max-width: 100%; height: auto; }
figcaption { color: #444; max-width: 1160px; }
.note { color: #555; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _count(n: object) -> str:
    return f"{n:,}" if isinstance(n, int) else _e(n)


def exit_status(report: dict) -> int:
    """The exit status ``neuronspec check`` gives for this report."""
    if report.get("interrupted"):
        return 128 + int(getattr(signal, report["interrupted"], signal.SIGINT))
    return {"conformant": 0, "non-conformant": 1}.get(report.get("verdict", ""), 2)


def _status_class(status: str) -> str:
    known = {"conformant", "non-conformant", "not checked", "unsupported"}
    return "s-" + status.replace(" ", "-") if status in known else ""


def _badge(status: str) -> str:
    return f'<span class="badge {_status_class(status)}">{_e(status)}</span>'


def _value(v: object) -> float:
    """A number of the report: a float, or a string the JSON form writes ("inf", "nan")."""
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _header(report: dict) -> str:
    s = report.get("settings", {})
    names = ", ".join(_e(i.get("name", "?")) for i in report.get("implementations", []))
    status = exit_status(report)
    rows = [("implementations", names or "none"),
            ("verdict", _badge(report.get("verdict", "not checked"))
             + (f" interrupted by {_e(report['interrupted'])}"
                if report.get("interrupted") else "")),
            ("suite", f"neuronspec {_e(report.get('suiteVersion', '?'))}"),
            ("model", _e(s.get("model", "?"))),
            ("level", f"{_e(s.get('level', 'bounded'))} (the level that sets the status)"),
            ("formats", _e(", ".join(s.get("formats", [])))),
            ("cases", f"{_e(s.get('examples', '?'))} hypothesis examples per format, "
                      f"{_e(s.get('vectors', '?'))} vectors, a sweep of "
                      f"{_e(s.get('sweep', 0))} cases per format"),
            ("seed", _e(s.get("seed", "?"))),
            ("platform", _e(report.get("platform", "?"))),
            ("duration", f"{_e(report.get('seconds', '?'))} s")]
    exits = "".join(
        f'<li class="{"this" if code == status else ""}">{code}: {verdict} ({meaning})'
        + (" \u2190 this run" if code == status else "") + "</li>"
        for code, verdict, meaning in EXIT_STATUSES)
    if status > 2:
        exits += (f'<li class="this">{status}: stopped by {_e(report["interrupted"])}; the '
                  "report shows what was checked before \u2190 this run</li>")
    return ("<header>\n"
            f"<h1>neuronspec check: {_badge(report.get('verdict', 'not checked'))}</h1>\n"
            '<dl class="settings">'
            + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
            + f'<dt>exit status</dt><dd><ul class="exit">{exits}</ul></dd></dl>\n</header>')


def _unchecked(st: dict) -> str:
    """The values left unchecked, with why (as ``unchecked_words`` counts them)."""
    n = st.get("outOfDomain", 0)
    why = unchecked_reasons(st)
    suffix = " may overflow"
    if why and all(k.endswith(suffix) for k in why):  # "may overflow: r*r 12, w*x 3"
        words = "may overflow: " + ", ".join(f'<span class="nw">{_e(k[:-len(suffix)])} '
                                             f"{_count(v)}</span>" for k, v in why.items())
    else:
        words = "; ".join(f'<span class="nw">{_e(k)} {_count(v)}</span>'
                          for k, v in why.items())
    return _count(n) + (f'<br><span class="why">{words}</span>' if words and n else "")


def _ratio_cell(st: dict) -> str:
    if "worstErrorOverBound" not in st:
        return '<td class="n">\u2013</td>'
    bad = not (_value(st["worstErrorOverBound"]) <= 1)
    return f'<td class="n{" bad" if bad else ""}">{_e(ratio_text(st))}</td>'


def _ulps_cell(st: dict) -> str:
    values = st.get("ulpsOfScaleValues")
    title = f' title="over {_count(values)} values with a normal scale"' if values else ""
    return f'<td class="n"{title}>{_e(ulps_text(st))}</td>'


def _rounded_cell(st: dict) -> str:
    part, whole = st.get("correctlyRounded", 0), st.get("caseByCase", 0)
    of = f'<br><span class="why">{_count(part)} of {_count(whole)}</span>' if whole else ""
    return f'<td class="n">{_e(share(part, whole))}{of}</td>'


def _format_rows(i: int, fmt: str, r: dict, width: int) -> list[str]:
    """The summary's rows of one format (its cells after the implementation's)."""
    status = r.get("status", "not checked")
    quantities = r.get("quantities") or {}
    names = [q for q in REQUIRED if q in quantities]
    if status == "unsupported" or not names:
        return [f"<td>{_e(fmt)}</td><td>{_badge(status)}</td>"
                f'<td colspan="{width - 3}">{_e(r.get("reason", ""))}</td>']
    levels = set((r.get("levels") or {}).values())
    words = [f"{_count(r.get('cases', 0))} cases"]
    words += [_e(level_words(r))] if len(levels) > 1 else []
    words += [f'<span class="why">declined: {_e(n)} cases with {_e(why)}</span>'
              for why, n in (r.get("declined") or {}).items()]
    span = f' rowspan="{len(names)}"'
    lead = (f'<td{span}><a href="#impl-{i}-{_e(fmt)}">{_e(fmt)}</a></td>'
            f"<td{span}>{_badge(status)}<br>{'<br>'.join(words)}</td>")
    rows = []
    for k, q in enumerate(names):
        st = quantities[q]
        failed, unexplained = st.get("failures", 0), st.get("unexplained", 0)
        cells = [f"<td>{_e(q)}</td>", f'<td class="n">{_count(st.get("checked", 0))}</td>',
                 f'<td class="why">{_unchecked(st)}</td>',
                 f'<td class="n{" bad" if failed else ""}">{_count(failed)}</td>',
                 f'<td class="n{" bad" if unexplained else ""}">{_count(unexplained)}</td>',
                 _ratio_cell(st), _ulps_cell(st), _rounded_cell(st),
                 f'<td class="n">{_e(exact_share(st))}</td>']
        rows.append((lead if k == 0 else "") + "".join(cells))
    return rows


def _summary(report: dict) -> str:
    """One table: per implementation, format and quantity, the counts and the worst errors."""
    impls = report.get("implementations", [])
    heads = ["implementation", "format", "status", "quantity", "checked", "unchecked (why)",
             "failed", "unexplained", "err/bound", "ulps of scale", "rounded", "exact"]
    out = ['<table class="summary" id="summary">', "<thead><tr>"
           + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead>"]
    for i, impl in enumerate(impls):
        groups = [_format_rows(i, fmt, r, len(heads))
                  for fmt, r in (impl.get("formats") or {}).items()]
        if not groups:
            groups = [[f'<td colspan="{len(heads) - 1}">'
                       f'{_badge(impl.get("verdict", "not checked"))} '
                       f'{_e(impl.get("error") or "no format checked")}</td>']]
        span = sum(len(g) for g in groups)
        out.append("<tbody>")
        for g, rows in enumerate(groups):
            for k, row in enumerate(rows):
                lead = (f'<td rowspan="{span}"><a href="#impl-{i}">{_e(impl.get("name", "?"))}'
                        "</a></td>") if g == 0 and k == 0 else ""
                first = ' class="first"' if k == 0 else ""
                out.append(f"<tr{first}>{lead}{row}</tr>")
        out.append("</tbody>")
    out.append("</table>")
    out.append(f'<p class="note legend">{_e(LEGEND)}</p>')
    return "\n".join(out)


def _plot(ident: str, fmt: str, plot: dict) -> str:
    """The figure of one format: error/bound and error/peer tolerance against kappa."""
    points = plot.get("points") or {}
    names = [q for q in REQUIRED if points.get(q)] + [q for q in points
                                                      if q not in REQUIRED and points[q]]
    if not names:
        return '<p class="note">No plot: no value was checked case by case.</p>'
    peer = str(plot.get("peer") or DEFAULT_PEER)
    tol = plot.get("peerTolerance") or {}
    default = PEER_TOLERANCES.get(peer, {}).get(fmt, (math.nan, math.nan))
    rtol, atol = tol.get("rtol", default[0]), tol.get("atol", default[1])
    rows = {q: [(_value(p[0]), _value(p[1]), _value(p[2])) for p in points[q] if len(p) >= 3]
            for q in names}
    bound = [[(k, b) for k, b, _ in rows[q]] for q in names]
    other = [[(k, t) for k, _, t in rows[q]] for q in names]
    total = sum(len(v) for v in rows.values())
    over_b = sum(b > 1 for v in rows.values() for _, b, _ in v)
    over_p = sum(t > 1 for v in rows.values() for _, _, t in v)
    rejected_in_bound = sum(t > 1 >= b for v in rows.values() for _, b, t in v)
    accepted_outside = sum(b > 1 >= t for v in rows.values() for _, b, t in v)
    zeros = any(b == 0 or t == 0 for v in rows.values() for _, b, t in v)
    infinite = any(k == math.inf for v in rows.values() for k, _, _ in v)
    svg = log_scatter(
        [Panel(f"error / neuronspec's bound: {over_b:,} of {total:,} above 1",
               "error / bound", "bound", bound),
         Panel(f"error / {peer} tolerance: {over_p:,} of {total:,} above 1",
               "error / (atol + rtol\u00b7|exact|)", "tolerance", other)],
        names, x_title="conditioning \u03ba = scale / |exact value|",
        label=f"{fmt}: error over bound and over {peer}'s tolerance against conditioning",
        ident=ident,
        line_note="1: the error equals the bound (left), the tolerance (right)")
    ep = _e(peer)
    caption = (
        f"Each mark is one value of {_e(fmt)} the run checked case by case ({total:,} values): "
        "its error divided by neuronspec's bound (left; above the dashed line: outside the "
        f"bound, a failure) and by the default tolerance of {ep}, atol + rtol\u00b7|exact| "
        f"with rtol = {_e(rtol)}, atol = {_e(atol)} (right; above the line "
        "that tool would reject the value), against the conditioning \u03ba = scale/|exact| "
        "(scale: the step evaluated on absolute values)."
        + ("  Marks on the bottom edge are exact results (error 0)." if zeros else "")
        + ("  Marks on the right edge have an exact value of 0 (\u03ba infinite)."
           if infinite else "")
        + f"  <strong>{rejected_in_bound:,}</strong> values within neuronspec's bound "
        f"would be rejected by {ep}; <strong>{accepted_outside:,}</strong> outside the bound "
        "would be accepted by it.")
    return (f"<figure>\n{svg}\n<figcaption>{caption}</figcaption>\n</figure>"
            + _peer_table(plot.get("peers") or {}))


def _peer_table(peers: dict) -> str:
    """Each peer tool's default tolerance on the same values: what it would reject that the
    bound admits, and what it would accept that the bound does not."""
    if not peers:
        return ""
    rows = [f"<tr><td>{_e(tool)}</td><td class=\"n\">{_e(p.get('rtol'))}</td>"
            f"<td class=\"n\">{_e(p.get('atol'))}</td>"
            f"<td class=\"n\">{int(p.get('rejectedWithinBound', 0)):,}</td>"
            f"<td class=\"n\">{int(p.get('acceptedOutsideBound', 0)):,}</td>"
            f"<td class=\"n\">{int(p.get('values', 0)):,}</td></tr>"
            for tool, p in peers.items()]
    return ('<table class="peers"><thead><tr><th>default tolerance of</th><th>rtol</th>'
            "<th>atol</th><th>rejects, within the bound</th><th>accepts, outside the bound"
            "</th><th>of values</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _format(i: int, fmt: str, r: dict) -> str:
    status = r.get("status", "not checked")
    out = [f'<section class="format" id="impl-{i}-{_e(fmt)}">',
           f"<h3>{_e(fmt)}: {_badge(status)}</h3>"]
    if status == "unsupported":
        out += [f"<p>unsupported: {_e(r.get('reason', ''))}</p>", "</section>"]
        return "\n".join(out)
    facts = [f"{_e(level_words(r))}, {_count(r.get('cases', 0))} cases "
             f"({_count(r.get('vectorCases', 0))} vectors)"
             + (f": {_e(r['reason'])}" if r.get("reason") else ""),
             _e(explained_words(dict(r, quantities=r.get("quantities") or {}))),
             _e(unchecked_words(r)) if all(q in (r.get("quantities") or {})
                                            for q in REQUIRED) else "",
             _e(sweep_words(r.get("sweep") or {}))]
    facts += [f"declined (a reported skip, not checked): {_e(n)} cases with {_e(why)}"
              for why, n in (r.get("declined") or {}).items()]
    facts += [f"property {_e(p)}: {_e(n)} failing cases"
              for p, n in (r.get("propertyFailures") or {}).items()]
    out.append("<ul>" + "".join(f"<li>{f}</li>" for f in facts if f) + "</ul>")
    out.append("<h4>Fingerprint</h4>")
    fingerprint = r.get("fingerprint") or {}
    if fingerprint:
        out.append('<table class="fingerprint"><thead><tr><th>dimension</th><th>the '
                   "implementation's evaluation</th></tr></thead><tbody>"
                   + "".join(f"<tr><td>{_e(g)}</td><td>{_e(fp.get('words', ''))}</td></tr>"
                             for g, fp in fingerprint.items()) + "</tbody></table>")
    else:
        out.append('<p class="note">not determined</p>')
    outside = r.get("behaviourOutsideModel") or []
    out.append("<h4>Behaviour outside the model</h4>"
               + ("<ul>" + "".join(f"<li>{_e(w)}</li>" for w in outside) + "</ul>"
                  if outside else '<p class="note">none seen</p>'))
    failures = r.get("failures") or []
    if failures:
        out.append(f"<h4>First failures ({len(failures)})</h4>")
        for k, fail in enumerate(failures):
            out.append(f"<details{' open' if k == 0 else ''}><summary>{_e(fail.get('property'))}"
                       f" failed on {_e(fail.get('quantity') or 'a case')}"
                       + (f" ({_e(fail['regime'])} case)" if fail.get("regime") else "")
                       + f"</summary>\n<pre class=\"message\">{_e(fail.get('message', ''))}</pre>")
            if fail.get("replay"):
                out.append(f'replay:<pre class="replay"><code>{_e(fail["replay"])}</code></pre>')
            out.append("</details>")
    findings = (r.get("sweep") or {}).get("findings") or []
    if findings:
        out.append(f"<h4>Sweep findings ({len(findings)})</h4>")
        for f in findings:
            out.append(f"<p>{_e(f.get('quantity', ''))} {_e(f.get('why', ''))}</p>"
                       f'<pre class="replay"><code>{_e(f.get("replay", ""))}</code></pre>')
    out.append("<h4>Error against conditioning</h4>")
    if r.get("plot"):
        out.append(_plot(f"i{i}-{fmt}", fmt, r["plot"]))
    else:
        out.append('<p class="note">No plot: the report carries no case-by-case errors for '
                   "this format.</p>")
    out.append("</section>")
    return "\n".join(out)


def _implementation(i: int, impl: dict) -> str:
    out = [f'<section class="impl" id="impl-{i}">',
           f"<h2>{_e(impl.get('name', '?'))} {_badge(impl.get('verdict', 'not checked'))}</h2>",
           f'<p class="origin">{_e(impl.get("origin", ""))}; {_e(impl.get("version", ""))}</p>']
    if impl.get("error"):
        out.append(f'<p class="bad">stopped: {_e(impl["error"])}</p>')
    out += [_format(i, fmt, r) for fmt, r in (impl.get("formats") or {}).items()]
    out.append("</section>")
    return "\n".join(out)


def _runs(entry: dict) -> str:
    """``--run``: the runs of SGD with options of one implementation, a row per format and
    option set, then the first failures with their replay commands."""
    out = ['<section class="impl">',
           f"<h2>{_e(entry['implementation'])}: runs of SGD with options "
           f"{_badge(entry['verdict'])}</h2>",
           "<p>Each step judged against the exact step from the state the implementation "
           "reported (spec/neuron.md 8.4).</p>",
           "<table><thead><tr><th>format</th><th>options</th><th>runs</th><th>steps</th>"
           "<th>failed runs</th><th>err/bound</th><th>form (fingerprint)</th><th>verdict</th>"
           "</tr></thead><tbody>"]
    for r in entry["results"]:
        figures = r["quantities"].values()
        worst = max((f["worstErrorOverBound"] for f in figures), default=0.0)
        form = r["evaluations"][0] if r["evaluations"] else (r["unsupported"] or "")
        out.append(f"<tr><td>{_e(r['format'])}</td><td>{_e(r['options'])}</td>"
                   f"<td>{r['runs']}</td><td>{r['stepsJudged']}</td><td>{r['failedRuns']}</td>"
                   f"<td>{worst:.3g}</td><td>{_e(form)}</td><td>{_badge(r['verdict'])}</td></tr>")
    out.append("</tbody></table>")
    for r in entry["results"]:
        for f in r["failures"][:3]:
            out.append(f'<p class="bad">{_e(r["format"])} {_e(r["options"])}: step {f["step"]}: '
                       f"{_e(f['why'])}</p><pre>{_e(f['replay'])}</pre>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: dict) -> str:
    """The report (the dict of ``spec/report.md``) as one HTML page that loads nothing."""
    title = f"neuronspec check: {verdict_words(report)}"
    body = [_header(report), "<h2>Summary</h2>", _summary(report)]
    body += [_implementation(i, impl) for i, impl in enumerate(report.get("implementations", []))]
    body += [_runs(entry) for entry in report.get("runs", [])]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="neuronspec {_e(report.get("suiteVersion", ""))}">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
