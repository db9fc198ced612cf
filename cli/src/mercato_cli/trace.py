"""`mercato trace`: find traces in the platform's span files and draw one as a waterfall."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime

from chassis.tracing import SpanRecord, TraceSummary, ordered, waterfall_json

# The span tree and its JSON live in the chassis (the console draws them too).
__all__ = ["ordered", "pick", "render_list", "render_waterfall", "waterfall_json"]

_COLOURS = (36, 33, 35, 32, 34, 91, 96, 93, 95, 92)
_RED = 31


def pick(
    summaries: Sequence[TraceSummary],
    *,
    last: int,
    slowest: bool,
    errors: bool,
    service: str | None,
) -> list[TraceSummary]:
    """The traces a listing shows: newest first, or slowest first with `slowest`."""
    chosen = [
        summary
        for summary in summaries
        if (not errors or summary.errors) and (service is None or service in summary.services)
    ]
    if slowest:
        chosen.sort(key=lambda summary: summary.duration_ms, reverse=True)
    else:
        chosen.sort(key=lambda summary: summary.start, reverse=True)
    return chosen[:last] if last > 0 else chosen


def render_list(summaries: Sequence[TraceSummary]) -> str:
    if not summaries:
        return "no traces found"
    lines = [f"{'trace id':32}  {'started (UTC)':23}  {'duration':>10}  spans  errors  root"]
    for summary in summaries:
        lines.append(
            f"{summary.trace_id:32}  {_when(summary.start):23}  "
            f"{_ms(summary.duration_ms):>10}  {summary.spans:>5}  {summary.errors:>6}  "
            f"{summary.root_service}: {summary.root}  [{', '.join(summary.services)}]"
        )
    return "\n".join(lines)


def render_waterfall(spans: Sequence[SpanRecord], *, colour: bool, width: int | None = None) -> str:
    """The trace as a tree of spans with a bar per span on a shared time axis."""
    if not spans:
        return "no such trace"
    start = min(span.start for span in spans)
    end = max(span.end for span in spans)
    total = max(end - start, 1)
    columns = width or shutil.get_terminal_size((160, 40)).columns
    rows = ordered(spans)
    services = list(dict.fromkeys(span.service for _, span in rows))
    palette = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(services)}
    service_width = max(len(name) for name in services)
    # One space per level: a checkout nests twenty deep, and the names must stay readable.
    name_width = min(80, max(len(" " * depth + span.name) for depth, span in rows))
    bar_width = max(10, columns - service_width - name_width - 10 - 8 - 6)
    errors = sum(1 for span in spans if span.status == "error")
    header = (
        f"trace {spans[0].trace_id} · {_when(start)} UTC · {_ms(total / 1e6)} · "
        f"{len(spans)} spans · {len(services)} services · {errors} errors"
    )
    lines = [header]
    for depth, span in rows:
        label = (" " * depth + span.name)[:name_width]
        offset = min(bar_width - 1, int((span.start - start) / total * bar_width))
        length = min(max(1, round((span.end - span.start) / total * bar_width)), bar_width - offset)
        blocks = "█" * length
        status = "ERROR" if span.status == "error" else ""
        service = span.service.ljust(service_width)
        if colour:
            service = f"\x1b[{palette[span.service]}m{service}\x1b[0m"
            blocks = f"\x1b[{_RED if status else palette[span.service]}m{blocks}\x1b[0m"
            status = f"\x1b[{_RED}m{status}\x1b[0m" if status else ""
        bar = " " * offset + blocks + " " * max(0, bar_width - offset - length)
        lines.append(
            f"{service}  {label.ljust(name_width)}  {_ms(span.duration_ms):>10}  |{bar}| {status}"
        )
        if span.error:
            note = f"{' ' * service_width}  {' ' * (depth + 1)}↳ {span.error}"
            lines.append(f"\x1b[{_RED}m{note}\x1b[0m" if colour else note)
    return "\n".join(line.rstrip() for line in lines)


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10_000 else f"{value / 1000:.2f} s"


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
