"""Inline SVG scatter plots on log-log axes, for the HTML report (no plotting library).

One figure holds side-by-side panels sharing their axes' ranges and one legend: a series
(a quantity) keeps its colour and marker in every panel.  Values a log axis cannot show are
drawn on a band at the panel's edge: ``y == 0`` on the bottom edge, ``x`` or ``y`` infinite on
the right or top edge.  Marks on the same pixel in the same series and panel are drawn once,
and a series is one path whose vertices carry its marker, so a figure of thousands of values
stays small.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Panel", "log_scatter", "COLOURS"]

#: Okabe-Ito: told apart by readers with a colour-vision deficiency, and in grey.
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")

PANEL_W, PLOT_W = 580, 488   # a panel, and its plot area (left margin 74, right 18)
LEFT, TOP = 74, 78           # the plot area's corner in a panel (legend and title above)
PLOT_H, HEIGHT = 330, 470
BAND = 18                    # the edge bands for 0 and infinity


@dataclass(frozen=True)
class Panel:
    """One panel: its title, its y axis's title, the label of the line at y = 1, and per
    series its (x, y) points (x > 0 or infinite, y >= 0 or infinite)."""
    title: str
    y_title: str
    line_label: str
    series: Sequence[Sequence[tuple[float, float]]]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076"
                             "\u2077\u2078\u2079")


def _decade(k: int) -> str:
    return {0: "1", 1: "10"}.get(k, "10" + str(k).translate(_SUPERSCRIPT))


#: series i's marker (drawn around 0, 0), cycling through six shapes
_SHAPES = ('<circle r="2.7"/>', '<rect x="-2.3" y="-2.3" width="4.6" height="4.6"/>',
           '<path d="M0-3.2 2.9 2H-2.9z"/>', '<path d="M0 3.2 2.9-2H-2.9z"/>',
           '<path d="M0-3.4 3.4 0 0 3.4-3.4 0z"/>',
           '<path d="M-2.6-2.6 2.6 2.6M-2.6 2.6 2.6-2.6" fill="none" stroke-width="1.5"/>')


def _markers(prefix: str, n: int) -> str:
    out = []
    for i in range(n):
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<marker id="{prefix}-m{i}" viewBox="-5 -5 10 10" markerWidth="10" '
                   'markerHeight="10" markerUnits="userSpaceOnUse" overflow="visible">'
                   f'<g fill="{colour}" fill-opacity="0.6" stroke="{colour}" '
                   f'stroke-width="0">{_SHAPES[i % len(_SHAPES)]}</g></marker>')
    return "<defs>" + "".join(out) + "</defs>"


def _uses(prefix: str, i: int) -> str:
    """A path's attributes that draw series i's marker at each of its vertices, and nothing
    between them."""
    m = f"url(#{prefix}-m{i})"
    return f'fill="none" stroke="none" marker-start="{m}" marker-mid="{m}" marker-end="{m}"'


#: The lowest decade a y axis shows: a value 1e-300 of the bound is, to the reader, 0 (drawn
#: in the bottom band with the zeros), and the band near 1 keeps its room.
FLOOR = -12


def _decades(values: list[float], around_one: bool, floor: "int | None" = None
             ) -> tuple[int, int]:
    """The decades the values span (with ``around_one``: and 0.1 to 10, so that a line at 1
    is never on the frame), from ``floor`` at the lowest."""
    finite = [v for v in values if 0 < v < math.inf]
    if around_one:
        finite += [0.1, 10.0]
    if not finite:
        return 0, 1
    lo, hi = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
    if floor is not None:
        lo = max(lo, floor)
    return lo, max(hi, lo + 1)


class _Axes:
    """Maps values to a panel's pixels, with the edge bands where they are needed."""

    def __init__(self, xs: tuple[int, int], ys: tuple[int, int], inf_x: bool, zero_y: bool,
                 inf_y: bool):
        self.xs, self.ys = xs, ys
        self.x0, self.x1 = LEFT, LEFT + PLOT_W - (BAND if inf_x else 0)
        self.y0 = TOP + PLOT_H - (BAND if zero_y else 0)  # the log axis's bottom
        self.y1 = TOP + (BAND if inf_y else 0)
        self.inf_x, self.zero_y, self.inf_y = inf_x, zero_y, inf_y

    def x(self, v: float) -> float:
        if v == math.inf:
            return LEFT + PLOT_W - BAND / 2
        lo, hi = self.xs
        return self.x0 + (math.log10(v) - lo) / (hi - lo) * (self.x1 - self.x0)

    def y(self, v: float) -> float:
        if v == 0 or (v < 10.0 ** self.ys[0] and self.zero_y):
            return TOP + PLOT_H - BAND / 2
        if v == math.inf:
            return TOP + BAND / 2
        lo, hi = self.ys
        return self.y0 - (math.log10(v) - lo) / (hi - lo) * (self.y0 - self.y1)


def _ticks(lo: int, hi: int) -> range:
    """Labelled decades: at most 9, multiples of the step (so 1 is one where it is shown)."""
    step = max(1, math.ceil((hi - lo) / 8))
    return range(-(-lo // step) * step, hi + 1, step)


def _frame(ax: _Axes, panel: Panel, x_title: str) -> list[str]:
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="#fff" '
           'stroke="#888"/>']
    for k in range(ax.xs[0], ax.xs[1] + 1):
        x = _n(ax.x(10.0 ** k))
        out.append(f'<path d="M{x} {TOP}V{TOP + PLOT_H}" stroke="#e4e4e4"/>')
    for k in range(ax.ys[0], ax.ys[1] + 1):
        y = _n(ax.y(10.0 ** k))
        out.append(f'<path d="M{LEFT} {y}H{LEFT + PLOT_W}" stroke="#e4e4e4"/>')
    for k in _ticks(*ax.xs):  # the last one clear of the infinity band's label
        x = _n(ax.x(10.0 ** k))
        anchor = "end" if ax.inf_x and k == ax.xs[1] else "middle"
        out.append(f'<path d="M{x} {TOP + PLOT_H}v5" stroke="#444"/>'
                   f'<text x="{x}" y="{TOP + PLOT_H + 18}" text-anchor="{anchor}">'
                   f'{_decade(k)}</text>')
    for k in _ticks(*ax.ys):  # the first and last clear of the bands' labels
        y = _n(ax.y(10.0 ** k))
        dy = {ax.ys[0]: 0.1 if ax.zero_y else 0.35,
              ax.ys[1]: 0.75 if ax.inf_y else 0.35}.get(k, 0.35)
        out.append(f'<path d="M{LEFT - 5} {y}h5" stroke="#444"/>'
                   f'<text x="{LEFT - 8}" y="{y}" dy="{dy}em" text-anchor="end">'
                   f'{_decade(k)}</text>')
    bottom, right = TOP + PLOT_H, LEFT + PLOT_W
    if ax.zero_y:
        out.append(f'<path d="M{LEFT} {ax.y0}H{right}" stroke="#aaa" stroke-dasharray="2 3"/>'
                   f'<text x="{LEFT - 8}" y="{_n(ax.y(0))}" dy="0.5em" '
                   'text-anchor="end">0</text>')
    if ax.inf_y:
        out.append(f'<path d="M{LEFT} {ax.y1}H{right}" stroke="#aaa" stroke-dasharray="2 3"/>'
                   f'<text x="{LEFT - 8}" y="{_n(ax.y(math.inf))}" dy="0.35em" '
                   'text-anchor="end">\u221e</text>')
    if ax.inf_x:
        out.append(f'<path d="M{ax.x1} {TOP}V{bottom}" stroke="#aaa" stroke-dasharray="2 3"/>'
                   f'<text x="{_n(ax.x(math.inf))}" y="{bottom + 18}" '
                   'text-anchor="middle">\u221e</text>')
    one = _n(ax.y(1.0))
    out.append(f'<path d="M{LEFT} {one}H{right}" stroke="#c00" stroke-width="1.5" '
               f'stroke-dasharray="7 4"/>'
               f'<text x="{ax.x1 - 4}" y="{one}" dy="-0.45em" text-anchor="end" fill="#c00">'
               f'{_e(panel.line_label)}</text>')
    out.append(f'<text x="{LEFT + PLOT_W / 2}" y="{bottom + 40}" text-anchor="middle">'
               f'{_e(x_title)}</text>'
               f'<text transform="translate(16 {TOP + PLOT_H / 2}) rotate(-90)" '
               f'text-anchor="middle">{_e(panel.y_title)}</text>'
               f'<text x="{LEFT}" y="{TOP - 8}" font-weight="bold">{_e(panel.title)}</text>')
    return out


def _marks(ax: _Axes, series: Sequence[Sequence[tuple[float, float]]],
           prefix: str) -> list[str]:
    """One path a series: its points, on a whole-pixel grid, each drawn once, as vertices
    joined by relative moves (a few bytes each) that carry the series' marker."""
    out = []
    for i, points in enumerate(series):
        grid = sorted({(round(ax.x(x)), round(ax.y(y))) for x, y in points
                       if x > 0 and y >= 0})  # not NaN, and on the axes
        if not grid:
            continue
        (x0, y0), steps = grid[0], []
        for (xa, ya), (xb, yb) in zip(grid, grid[1:]):
            steps.append(f"{xb - xa} {yb - ya}")
        d = f"M{x0} {y0}" + ("l" + " ".join(steps) if steps else "")
        out.append(f'<path class="series-{i}" {_uses(prefix, i)} d="{d}"/>')
    return out


def _legend(names: Sequence[str], counts: Sequence[int], notes: Sequence[str],
            prefix: str) -> list[str]:
    out, x = [], LEFT
    for i, (name, count) in enumerate(zip(names, counts)):
        out.append(f'<path {_uses(prefix, i)} d="M{x} 16h0"/>'
                   f'<text x="{x + 9}" y="16" dy="0.35em">{_e(name)} ({count:,})</text>')
        x += 30 + 7 * len(f"{name} ({count:,})")
    out.append(f'<path d="M{LEFT - 8} 40h22" stroke="#c00" stroke-width="1.5" '
               'stroke-dasharray="7 4"/>')
    text = _e("\u2003\u00b7\u2003".join(notes))
    out.append(f'<text x="{LEFT + 20}" y="40" dy="0.35em">{text}</text>')
    return out


def log_scatter(panels: Sequence[Panel], names: Sequence[str], *, x_title: str, label: str,
                ident: str = "plot", line_note: str = "1: the limit") -> str:
    """One ``<svg>`` element: the panels side by side on shared log-log ranges, a dashed line
    at y = 1 in each, and a legend naming each series with its count of points, the line
    (``line_note``) and the edge bands in use.  ``ident`` makes the ids of its markers unique
    in the page: one a figure."""
    prefix = "".join(c if c.isalnum() else "-" for c in ident)
    xs = [x for p in panels for s in p.series for x, _ in s]
    ys = [y for p in panels for s in p.series for _, y in s]
    inf_x, inf_y = math.inf in xs, math.inf in ys
    below = any(0 < y < 10.0 ** FLOOR for y in ys)
    zero_y = 0 in ys or below
    ax = _Axes(_decades(xs, False), _decades(ys, True, FLOOR), inf_x, zero_y, inf_y)
    width = PANEL_W * len(panels)
    notes = [line_note]
    if zero_y:
        notes.append("bottom edge (0): error 0, the exact value returned"
                     + (f", or below 1e{FLOOR}" if below else ""))
    if inf_x:
        notes.append("right edge (\u221e): exact value 0")
    if inf_y:
        notes.append("top edge (\u221e): infinite")
    counts = [max((len(p.series[i]) for p in panels if i < len(p.series)), default=0)
              for i in range(len(names))]
    out = [f'<svg class="plot" viewBox="0 0 {width} {HEIGHT}" width="{width}" '
           f'height="{HEIGHT}" role="img" aria-label="{_e(label)}" font-size="12" '
           'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">',
           f"<title>{_e(label)}</title>", _markers(prefix, len(names))]
    out += _legend(names, counts, notes, prefix)
    for j, panel in enumerate(panels):
        out.append(f'<g transform="translate({j * PANEL_W} 0)">')
        out += _frame(ax, panel, x_title)
        out += _marks(ax, panel.series, prefix)
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)
