"""Charts as inline SVG strings, drawn on the server (no script, no CDN): horizontal bars,
paired bars (A against B), a timeline of intervals and a step line (a burn-down).

Every text is escaped; numbers come in as ints or Decimals and only their ratios are drawn, so a
chart never decides a figure — the tables next to it carry the exact amounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape

PALETTE = (
    "#2563eb",
    "#16a34a",
    "#ea580c",
    "#9333ea",
    "#0891b2",
    "#dc2626",
    "#ca8a04",
    "#4b5563",
)
CLOUD_COLOURS = {
    "azure": "#0078d4",
    "aws": "#ff9900",
    "gcp": "#34a853",
    "oci": "#c74634",
    "coreweave": "#6d28d9",
    "nebius": "#0f766e",
    "lambda": "#7c3aed",
}
FONT = "font-family='Inter, system-ui, sans-serif' font-size='12'"


def colour_of(name: str, index: int) -> str:
    return CLOUD_COLOURS.get(name, PALETTE[index % len(PALETTE)])


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: Decimal | int
    note: str = ""
    colour: str | None = None


def bars(items: Sequence[Bar], *, width: int = 640, title: str = "", label_w: int = 150) -> str:
    """Horizontal bars, longest = full width, with the label (``label_w`` wide) left and the
    note right."""
    row_h, note_w = 26, 240
    height = max(1, len(items)) * row_h + 8
    top = max((Decimal(i.value) for i in items), default=Decimal(0))
    span = width - label_w - note_w
    parts = [
        f"<svg role='img' aria-label='{escape(title)}' viewBox='0 0 {width} {height}' "
        f"width='100%' class='chart' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for index, item in enumerate(items):
        y = index * row_h + 4
        share = Decimal(item.value) / top if top > 0 else Decimal(0)
        length = max(2, int(share * span)) if Decimal(item.value) > 0 else 0
        colour = item.colour or colour_of(item.label, index)
        parts.append(
            f"<text x='{label_w - 8}' y='{y + 16}' text-anchor='end' {FONT} fill='#334155'>"
            f"{escape(item.label)}</text>"
            f"<rect x='{label_w}' y='{y + 3}' width='{length}' height='{row_h - 8}' rx='3' "
            f"fill='{colour}'><title>{escape(item.label)}: {escape(item.note)}</title></rect>"
            f"<text x='{label_w + length + 6}' y='{y + 16}' {FONT} fill='#0f172a'>"
            f"{escape(item.note)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def paired_bars(
    rows: Sequence[tuple[str, Decimal, Decimal]],
    *,
    names: tuple[str, str] = ("A", "B"),
    width: int = 560,
    unit: str = "%",
) -> str:
    """Two bars per row (A above B), on a common scale, with a legend."""
    row_h, label_w = 40, 110
    height = len(rows) * row_h + 34
    top = max((max(a, b) for _, a, b in rows), default=Decimal(0))
    span = width - label_w - 70
    colours = ("#2563eb", "#db2777")
    parts = [
        f"<svg role='img' aria-label='A against B' viewBox='0 0 {width} {height}' width='100%' "
        "class='chart' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for index, name in enumerate(names):
        x = label_w + index * 210
        parts.append(
            f"<rect x='{x}' y='4' width='12' height='12' rx='2' fill='{colours[index]}'/>"
            f"<text x='{x + 18}' y='14' {FONT} fill='#334155'>{escape(name)}</text>"
        )
    for index, (label, a, b) in enumerate(rows):
        y = 28 + index * row_h
        parts.append(
            f"<text x='{label_w - 8}' y='{y + 20}' text-anchor='end' {FONT} fill='#334155'>"
            f"{escape(label)}</text>"
        )
        for offset, (value, colour) in enumerate(((a, colours[0]), (b, colours[1]))):
            length = int(value / top * span) if top > 0 else 0
            yy = y + offset * 16
            parts.append(
                f"<rect x='{label_w}' y='{yy + 2}' width='{max(length, 1)}' height='13' rx='2' "
                f"fill='{colour}'/><text x='{label_w + length + 6}' y='{yy + 13}' {FONT} "
                f"fill='#0f172a'>{escape(str(value))}{escape(unit)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Span:
    label: str
    start: datetime
    end: datetime | None
    note: str = ""
    href: str = ""
    active: bool = False


def timeline(spans: Sequence[Span], *, now: datetime, width: int = 900) -> str:
    """Intervals on one time axis (one row each), with year ticks; an open end runs to ``now``."""
    if not spans:
        return ""
    row_h, left, right = 34, 200, 20
    first = min(s.start for s in spans)
    last = max([now, *(s.end for s in spans if s.end is not None)])
    total = (last - first).total_seconds() or 1.0
    axis = width - left - right
    height = len(spans) * row_h + 30

    def x_of(moment: datetime) -> int:
        return left + int((moment - first).total_seconds() / total * axis)

    parts = [
        f"<svg role='img' aria-label='contract versions over time' viewBox='0 0 {width} "
        f"{height}' width='100%' class='chart' xmlns='http://www.w3.org/2000/svg'>"
    ]
    for year in range(first.year + 1, last.year + 1):
        tick = first.replace(year=year, month=1, day=1, hour=0, minute=0, second=0)
        x = x_of(tick)
        parts.append(
            f"<line x1='{x}' y1='0' x2='{x}' y2='{height - 18}' stroke='#e2e8f0'/>"
            f"<text x='{x}' y='{height - 4}' text-anchor='middle' {FONT} fill='#64748b'>"
            f"{year}</text>"
        )
    for index, span in enumerate(spans):
        y = index * row_h + 4
        x0, x1 = x_of(span.start), x_of(span.end or now)
        colour = "#2563eb" if span.active else PALETTE[index % len(PALETTE)]
        bar = (
            f"<rect x='{x0}' y='{y + 4}' width='{max(3, x1 - x0)}' height='{row_h - 12}' "
            f"rx='4' fill='{colour}' opacity='{1 if span.active else 0.8}'>"
            f"<title>{escape(span.label)}: {escape(span.note)}</title></rect>"
        )
        if span.href:
            bar = f"<a href='{escape(span.href)}'>{bar}</a>"
        parts.append(
            f"<text x='{left - 8}' y='{y + 20}' text-anchor='end' {FONT} fill='#0f172a' "
            f"font-weight='{600 if span.active else 400}'>{escape(span.label)}</text>{bar}"
        )
    parts.append("</svg>")
    return "".join(parts)


def step_line(
    points: Sequence[tuple[str, Decimal]],
    *,
    ceiling: Decimal | None = None,
    width: int = 640,
    height: int = 220,
    label: str = "",
) -> str:
    """A cumulative amount per period as a stepped area, with an optional ceiling line."""
    if not points:
        return ""
    left, bottom, top_pad = 70, 28, 12
    top = max([*(v for _, v in points), ceiling or Decimal(0)]) or Decimal(1)
    plot_w, plot_h = width - left - 16, height - bottom - top_pad
    step = plot_w / max(1, len(points))

    def y_of(value: Decimal) -> float:
        return top_pad + plot_h - float(value / top) * plot_h

    path = [f"M{left},{top_pad + plot_h}"]
    for index, (_, value) in enumerate(points):
        x0, x1 = left + index * step, left + (index + 1) * step
        path.append(f"L{x0:.1f},{y_of(value):.1f} L{x1:.1f},{y_of(value):.1f}")
    path.append(f"L{left + len(points) * step:.1f},{top_pad + plot_h} Z")
    parts = [
        f"<svg role='img' aria-label='{escape(label)}' viewBox='0 0 {width} {height}' "
        "width='100%' class='chart' xmlns='http://www.w3.org/2000/svg'>",
        f"<path d='{' '.join(path)}' fill='#bfdbfe' stroke='#2563eb' stroke-width='2'/>",
        f"<line x1='{left}' y1='{top_pad + plot_h}' x2='{width - 16}' y2='{top_pad + plot_h}' "
        "stroke='#94a3b8'/>",
    ]
    if ceiling is not None and ceiling > 0:
        y = y_of(ceiling)
        parts.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{width - 16}' y2='{y:.1f}' stroke='#dc2626' "
            f"stroke-dasharray='6 4'/><text x='{width - 18}' y='{y - 4:.1f}' text-anchor='end' "
            f"{FONT} fill='#dc2626'>commitment</text>"
        )
    for index, (name, value) in enumerate(points):
        x = left + index * step + step / 2
        parts.append(
            f"<text x='{x:.1f}' y='{height - 8}' text-anchor='middle' {FONT} fill='#64748b'>"
            f"{escape(name)}</text><title>{escape(name)}: {value}</title>"
        )
    parts.append(
        f"<text x='{left - 6}' y='{top_pad + 10}' text-anchor='end' {FONT} fill='#64748b'>"
        f"{escape(_short(top))}</text>"
        f"<text x='{left - 6}' y='{top_pad + plot_h}' text-anchor='end' {FONT} "
        "fill='#64748b'>0</text></svg>"
    )
    return "".join(parts)


def _short(value: Decimal) -> str:
    for size, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(1000), "k")):
        if abs(value) >= size:
            return f"${value / size:.1f}{suffix}"
    return f"${value:.0f}"
