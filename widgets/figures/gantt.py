"""The stage Gantt of one order: per stay in a stage, the waiting (entered -> started) and
the work (started -> completed) as two bars of their own colour, the stage's planned
budget (the flow's budget with the custom buffer and rush factor) as an outline from
the entry, the hand-off evidence the order carries, and the gates it had to pass.

``gantt_rows`` numbers the stays (rework is a row of its own, "Packing (2)");
``gantt_marks`` places evidence and gates on them; ``gantt_figure`` draws them. All
three are pure: data in, figure out, no store and no server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme

WAITING = palette.SKY_BLUE
WORK = palette.BLUE
BUDGET = palette.GREY
EVIDENCE = palette.BLUISH_GREEN
GateState = Literal["passed", "late", "missing"]
GATE_COLOUR: dict[GateState, str] = {"passed": palette.GOOD, "late": palette.WARN, "missing": palette.BAD}
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class GanttRow:
    """One stay of the order in a stage; ``visit`` counts the stays in that stage (2 = rework)."""

    label: str
    stage: str
    seq: int
    visit: int
    entered_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    budget_h: float | None


@dataclass(frozen=True)
class GanttMark:
    """Evidence uploaded, or a gate the stay had to pass, on the row ``seq``."""

    seq: int
    at: datetime
    kind: Literal["evidence", "gate"]
    what: str                         # the evidence kind
    state: GateState = "passed"       # gates only


def gantt_rows(visits: Sequence[Any], *, budgets_h: Mapping[str, float],
               labels: Mapping[str, str]) -> list[GanttRow]:
    """Rows from stage visits (objects with ``seq, stage, entered_at, started_at,
    completed_at``), oldest first; a stage's second stay is labelled "<stage> (2)"."""
    seen: dict[str, int] = {}
    rows: list[GanttRow] = []
    for v in sorted(visits, key=lambda v: v.seq):
        n = seen[v.stage] = seen.get(v.stage, 0) + 1
        name = labels.get(v.stage, v.stage)
        rows.append(GanttRow(
            label=name if n == 1 else f"{name} ({n})", stage=v.stage, seq=v.seq, visit=n,
            entered_at=v.entered_at, started_at=v.started_at, completed_at=v.completed_at,
            budget_h=budgets_h.get(v.stage),
        ))
    return rows


def gantt_marks(rows: Sequence[GanttRow], *, evidence: Sequence[tuple[str, str, datetime]],
                gates: Mapping[str, Sequence[tuple[str, str]]]) -> list[GanttMark]:
    """Evidence ``(stage, kind, at)`` on the stay of its stage it was uploaded in (the
    last one entered by then), and for each stay of a gated stage (``gates``: stage ->
    ``[(kind, from_stage)]``) the gate at its entry: passed (the evidence was there),
    late (it came afterwards) or missing."""
    marks: list[GanttMark] = []
    for stage, kind, at in sorted(evidence, key=lambda e: e[2]):
        stays = [r for r in rows if r.stage == stage]
        if not stays:
            continue
        before = [r for r in stays if r.entered_at <= at]
        marks.append(GanttMark(seq=(before[-1] if before else stays[0]).seq, at=at, kind="evidence",
                               what=kind))
    for r in rows:
        for kind, from_stage in gates.get(r.stage, ()):
            times = [at for s, k, at in evidence if s == from_stage and k == kind]
            state: GateState = ("missing" if not times
                                else "passed" if min(times) <= r.entered_at else "late")
            marks.append(GanttMark(seq=r.seq, at=r.entered_at, kind="gate", what=kind, state=state))
    return marks


def _local(moment: datetime, zone: ZoneInfo) -> str:
    # Plotly draws naive times as they are: give it the wall-clock time of TOWER_TZ.
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def _hours(a: datetime, b: datetime) -> float:
    return (b - a) / timedelta(hours=1)


def _span(label: str, start: datetime, end: datetime, zone: ZoneInfo) -> tuple[str, str, float, str, str]:
    shown = f"{start.astimezone(zone):%m-%d %H:%M} → {end.astimezone(zone):%m-%d %H:%M}"
    return (label, _local(start, zone), (end - start) / timedelta(milliseconds=1),
            f"{_hours(start, end):.1f}", shown)


def gantt_figure(rows: Sequence[GanttRow], *, marks: Sequence[GanttMark] = (), now: datetime,
                 promised_at: datetime | None = None, zone: ZoneInfo, lang: Lang,
                 theme: Theme, title: str = "") -> go.Figure:
    """The Gantt: budget outlines, waiting and work bars, evidence and gate marks,
    and lines at now and at the promise. Open stays run to ``now``."""
    fig = go.Figure()
    order = [r.label for r in rows]
    by_seq = {r.seq: r for r in rows}
    fmt = "%Y-%m-%d %H:%M"

    budget = [(r.label, _local(r.entered_at, zone), r.budget_h * HOUR_MS, f"{r.budget_h:g}",
               _over(r, now))
              for r in rows if r.budget_h is not None]
    if budget:
        fig.add_trace(go.Bar(
            name=t("orders.gantt.budget", lang), orientation="h", y=[b[0] for b in budget],
            base=[b[1] for b in budget], x=[b[2] for b in budget], width=0.8,
            marker={"color": "rgba(0,0,0,0)", "line": {"color": BUDGET, "width": 2}},
            customdata=[[b[3], b[4]] for b in budget],
            hovertemplate="%{y}<br>" + t("orders.gantt.budget", lang) + ": %{customdata[0]} h"
                          "%{customdata[1]}<extra></extra>",
        ))
    waiting = [_span(r.label, r.entered_at, r.started_at or _end(r, now), zone) for r in rows]
    work = [_span(r.label, r.started_at, r.completed_at or now, zone) for r in rows
            if r.started_at is not None]
    for name, spans, colour in ((t("orders.gantt.waiting", lang), waiting, WAITING),
                                (t("orders.gantt.work", lang), work, WORK)):
        if not spans:
            continue
        fig.add_trace(go.Bar(
            name=name, orientation="h", y=[s[0] for s in spans], base=[s[1] for s in spans],
            x=[s[2] for s in spans], width=0.45, marker={"color": colour},
            customdata=[[s[3], s[4]] for s in spans],
            hovertemplate="%{y}<br>" + name + ": %{customdata[0]} h<br>%{customdata[1]}<extra></extra>",
        ))
    evidence = [m for m in marks if m.kind == "evidence" and m.seq in by_seq]
    if evidence:
        fig.add_trace(go.Scatter(
            name=t("orders.gantt.evidence", lang), mode="markers", y=[by_seq[m.seq].label for m in evidence],
            x=[_local(m.at, zone) for m in evidence], text=[m.what for m in evidence],
            marker={"symbol": "star", "size": 14, "color": EVIDENCE, "line": {"width": 1, "color": "#000"}},
            hovertemplate="%{y}<br>" + t("orders.gantt.evidence", lang) + ": %{text}<br>%{x|" + fmt + "}"
                          "<extra></extra>",
        ))
    for state in ("passed", "late", "missing"):
        gates = [m for m in marks if m.kind == "gate" and m.state == state and m.seq in by_seq]
        if not gates:
            continue
        name = t(f"orders.gantt.gate_{state}", lang)
        fig.add_trace(go.Scatter(
            name=name, mode="markers", y=[by_seq[m.seq].label for m in gates],
            x=[_local(m.at, zone) for m in gates], text=[m.what for m in gates],
            marker={"symbol": "diamond" if state == "passed" else "diamond-x", "size": 13,
                    "color": GATE_COLOUR[state], "line": {"width": 1, "color": "#000"}},
            hovertemplate="%{y}<br>" + name + ": %{text}<extra></extra>",
        ))
    layout = palette.figure_layout(theme)
    fig.update_layout(
        **{**layout, "margin": {"l": 8, "r": 16, "t": 56 if title else 28, "b": 8}},
        barmode="overlay", bargap=0.2,
        title={"text": title, "x": 0, "xanchor": "left"} if title else None,
        legend={"orientation": "h", "y": -0.04, "yanchor": "top", "x": 0},
        height=110 + 40 * max(len(rows), 2),
        hovermode="closest",
    )
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=order, autorange="reversed",
                     automargin=True)
    fig.update_xaxes(type="date", automargin=True)
    lines = [(now, t("orders.gantt.now", lang), palette.GREY)]
    if promised_at is not None:
        lines.append((promised_at, t("orders.gantt.promised", lang), palette.VERMILION))
    for moment, text, colour in lines if rows else []:
        x = _local(moment, zone)
        fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper",
                      line={"color": colour, "width": 1.5, "dash": "dot"})
        fig.add_annotation(x=x, y=1, xref="x", yref="paper", text=text, showarrow=False,
                           yanchor="bottom", font={"size": 11, "color": colour})
    if not rows:
        fig.add_annotation(text=t("orders.gantt.empty", lang), showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"size": 14})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    return fig


def _end(row: GanttRow, now: datetime) -> datetime:
    return row.completed_at or now


def _over(row: GanttRow, now: datetime) -> str:
    """The hover note of a stay over its budget (" · +N h"), else an empty string."""
    if row.budget_h is None:
        return ""
    took = _hours(row.entered_at, row.completed_at or now)
    return f" · +{took - row.budget_h:.1f} h" if took > row.budget_h else ""


def is_over_budget(row: GanttRow, now: datetime) -> bool:
    """The stay took (or has taken so far) longer than its budget."""
    return row.budget_h is not None and _hours(row.entered_at, row.completed_at or now) > row.budget_h
