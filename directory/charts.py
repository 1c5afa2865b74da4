"""Small charts drawn as SVG on the server (no JavaScript, nothing loaded from elsewhere): a
sparkline, a line chart of one or more series over shared x labels, and a bar chart. Pure
functions: numbers in, an SVG string out, every text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Colours that stay apart for the colour-blind (Okabe-Ito), in the order series get them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = "font-family=\"sans-serif\" font-size=\"11\""


@dataclass(frozen=True)
class Series:
    """One line of a line chart: a name and one value (or None: no data) per x label."""

    name: str
    values: Sequence[float | None]


def _fmt(number: float) -> str:
    text = f"{number:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_value(value: float) -> str:
    """1234 -> '1,234', 1250000 -> '1.25M', 0.5 -> '0.5'."""
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.3g}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.1f}"


def _scale(low: float, high: float, top: float, bottom: float):
    span = high - low or 1.0
    return lambda v: bottom - (v - low) / span * (bottom - top)


def _open(width: int, height: int, label: str, css_class: str) -> list[str]:
    label = escape(label)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(css_class)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{label}" preserveAspectRatio="xMinYMid meet">',
        f"<title>{label}</title>",
    ]


def _empty(width: int, height: int, label: str, css_class: str, text: str) -> str:
    parts = _open(width, height, label, css_class)
    parts.append(
        f'<text x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle" dominant-baseline="middle" '
        f'fill="#767676" {FONT}>{escape(text)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _polyline(run: list[tuple[float, float]], colour: str, width: float) -> str:
    coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in run)
    if len(run) == 1:
        x, y = run[0]
        return f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{width + 0.5:g}" fill="{colour}"/>'
    return (
        f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="{width:g}" '
        f'stroke-linejoin="round" stroke-linecap="round"/>'
    )


def sparkline(values: Sequence[float | None], *, label: str, width: int = 120, height: int = 28) -> str:
    """A small line of `values` (None: no data that day), its last known value marked."""
    known = [v for v in values if v is not None]
    if not known:
        return _empty(width, height, label, "sparkline", "no data")
    pad = 3
    low, high = min(known), max(known)
    if low == high:
        low, high = low - 1, high + 1
    y = _scale(low, high, pad, height - pad)
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    # Days without a value are skipped: the line joins the known ones (the count held in between).
    points = [(pad + i * step, y(v)) for i, v in enumerate(values) if v is not None]
    parts = _open(width, height, label, "sparkline")
    if len(points) > 1:
        parts.append(_polyline(points, PALETTE[0], 1.5))
    last = points[-1]
    parts.append(f'<circle cx="{_fmt(last[0])}" cy="{_fmt(last[1])}" r="2" fill="{PALETTE[0]}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _axes(parts: list[str], *, left: int, right: int, top: int, bottom: int, low: float, high: float) -> None:
    y = _scale(low, high, top, bottom)
    for value in (low, (low + high) / 2, high):
        at = _fmt(y(value))
        parts.append(f'<line x1="{left}" x2="{right}" y1="{at}" y2="{at}" stroke="#ddd" stroke-width="1"/>')
        parts.append(
            f'<text x="{left - 4}" y="{at}" text-anchor="end" dominant-baseline="middle" fill="#555" {FONT}>'
            f"{escape(format_value(value))}</text>"
        )


def _x_labels(parts: list[str], labels: Sequence[str], xs: Sequence[float], baseline: float, every: int) -> None:
    last = len(labels) - 1
    for i, (text, x) in enumerate(zip(labels, xs, strict=True)):
        if i == last or (i % every == 0 and last - i >= every):
            # The first and last labels sit inside the box, not half outside it.
            anchor = "start" if i == 0 and len(labels) > 1 else "end" if i == last and last else "middle"
            parts.append(
                f'<text x="{_fmt(x)}" y="{_fmt(baseline + 14)}" text-anchor="{anchor}" fill="#555" {FONT}>'
                f"{escape(text)}</text>"
            )


def line_chart(
    series: Sequence[Series], x_labels: Sequence[str], *, label: str, width: int = 420, height: int = 180,
) -> str:
    """Lines over shared x labels (an x without a value is skipped, the line joins its neighbours), a
    legend under the plot, y from 0 (or the lowest value) to the highest."""
    known = [v for s in series for v in s.values if v is not None]
    if not known or not x_labels:
        return _empty(width, height, label, "chart", "no data yet")
    legend_rows = (len(series) + 2) // 3
    left, right, top = 44, width - 10, 10
    bottom = height - 22 - 16 * legend_rows
    low = min(0.0, min(known))
    high = max(known) if max(known) > low else low + 1
    y = _scale(low, high, top, bottom)
    step = (right - left) / max(len(x_labels) - 1, 1)
    xs = [left + i * step for i in range(len(x_labels))]
    parts = _open(width, height, label, "chart")
    _axes(parts, left=left, right=right, top=top, bottom=bottom, low=low, high=high)
    _x_labels(parts, x_labels, xs, bottom, max(1, len(x_labels) // 5))
    for n, one in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        points = [(xs[i], y(v)) for i, v in enumerate(one.values) if v is not None]
        parts.append(f'<g class="series"><title>{escape(one.name)}</title>')
        if points:
            parts.append(_polyline(points, colour, 2))
        parts.append("</g>")
        row, col = divmod(n, 3)
        lx, ly = left + col * (right - left) / 3, bottom + 30 + row * 16
        parts.append(f'<rect x="{_fmt(lx)}" y="{_fmt(ly - 8)}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{_fmt(lx + 14)}" y="{_fmt(ly + 1)}" fill="#333" {FONT}>{escape(one.name[:24])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[tuple[str, float]], *, label: str, unit: str = "", width: int = 420, height: int = 180,
    colours: Sequence[str] | None = None, tips: Sequence[str] | None = None,
) -> str:
    """One bar per (x label, value); `colours` (one per bar) marks some bars apart, e.g. failed runs;
    `tips` (one per bar) names a bar on hover instead of its x label."""
    if not bars:
        return _empty(width, height, label, "chart", "no data yet")
    left, right, top, bottom = 44, width - 10, 10, height - 22
    high = max(value for _, value in bars) or 1.0
    y = _scale(0.0, high, top, bottom)
    slot = (right - left) / len(bars)
    gap = min(2.0, slot * 0.2)
    parts = _open(width, height, label, "chart")
    _axes(parts, left=left, right=right, top=top, bottom=bottom, low=0.0, high=high)
    xs = []
    for i, (text, value) in enumerate(bars):
        x = left + i * slot + gap / 2
        xs.append(x + (slot - gap) / 2)
        colour = colours[i] if colours else PALETTE[0]
        top_y = y(value)
        parts.append(
            f'<rect x="{_fmt(x)}" y="{_fmt(top_y)}" width="{_fmt(max(slot - gap, 0.5))}" '
            f'height="{_fmt(bottom - top_y)}" fill="{escape(colour)}">'
            f"<title>{escape(tips[i] if tips else text)}: {escape(format_value(value))}{escape(unit)}</title></rect>"
        )
    _x_labels(parts, [text for text, _ in bars], xs, bottom, max(1, len(bars) // 5))
    parts.append("</svg>")
    return "".join(parts)
