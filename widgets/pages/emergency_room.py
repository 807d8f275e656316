"""`/emergency-room`: the triage queue of escalated exceptions, with live countdowns.

The queue comes from :func:`tower.exceptions.queue.emergency_room` (L3 first, then by
time left). The server refreshes it on the shell's timer and re-sends a part only when
its data changed (a hash per part in the page's ``sent`` store); the countdowns tick
every second in the browser (``assets/emergency_room.js``) from each deadline and the
tower's clock (its "now" and rate, sent with every refresh: the demo's clock runs 60x).

Moves (acknowledge, assign, handling step, snooze, resolve, raise an L3 by hand) go
through :mod:`tower.exceptions.store`, one transaction each, as the HTTP API does; a
move the lifecycle refuses or a wrong field is a message on the page, never a crash.
Buttons and keys both set the page's ``intent`` store (a delegated click handler in
the browser), so a queue of 200 rows carries no pattern-matching inputs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy.exc import SQLAlchemyError

from tower.clock import Clock
from tower.exceptions import queue, store
from tower.exceptions.policy import PolicyConfigError, ResponsePolicy
from tower.exceptions.store import InvalidInput, RootCause, TransitionError, Trigger
from tower.runtime import Tower
from widgets import context
from widgets.context import Screens
from widgets.i18n import CATALOGUE, Lang, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.parts import digest
from widgets.view import TRUE, View

log = logging.getLogger(__name__)

NAME = "emergency-room"
ids = PageIds(NAME)
S: Final = "emergency-room."          # prefix of this page's strings
QUEUE_LIMIT: Final = 200              # rows of the queue (the API's default page)
TIMELINE_LIMIT: Final = 200           # timeline entries in the detail panel
MAX_HOURS: Final = 24 * 31            # longest snooze or next update (as the API)
MAX_WHYS: Final = 5
DEFAULT_ACTOR: Final = "operator"
ALL_TEAMS: Final = "*"                # the team filter's "every team"
ROW_ACTIONS: Final = ("ack", "assign", "step", "snooze", "resolve")
FORM_ACTIONS: Final = ("assign", "step", "snooze", "resolve", "raise")
# Field lengths as the HTTP API accepts them (tower/web/api_exceptions.py).
MAX_TEXT: Final = 4000
MAX_NAME: Final = 128
MAX_TITLE: Final = 500
MAX_ID: Final = 64


def s(key: str, lang: Lang, **values: object) -> str:
    """A string of this page."""
    return t(S + key, lang, **values)


def label(kind: str, ident: str, lang: Lang) -> str:
    """A configured id (team, root cause, timeline action) in ``lang``; the id itself if unnamed."""
    return CATALOGUE[lang].get(f"{S}{kind}.{ident}", ident)


def status_label(status: str, lang: Lang) -> str:
    return CATALOGUE[lang].get(f"status.{status}", status)


def policy_of(screens: Screens) -> ResponsePolicy:
    """The response policy (teams, root causes) of ``data/rules.toml``, as the tower read it."""
    return screens.tower.response_policy


def clock_rate(clock: Clock) -> float:
    """How many tower seconds pass per wall second (a ScaledClock's rate, 0 when paused)."""
    if getattr(clock, "paused", False):
        return 0.0
    return float(getattr(clock, "rate", 1.0))


# --- countdowns --------------------------------------------------------------------------

def countdown_words(lang: Lang) -> dict[str, str]:
    """The countdown templates the browser fills every second (``{t}`` is h:mm:ss)."""
    return {k: s(k, lang) for k in ("left", "overdue", "update_in", "update_late")}


def deadline_of(item: Mapping[str, Any]) -> tuple[str | None, str]:
    """(deadline ISO, kind) a queue item counts down to.

    An unacknowledged exception counts down to its response deadline ("respond"); an
    acknowledged one to its next promised update ("update"), when a handling step set
    one; else nothing ("none").
    """
    if item.get("respond_by") and item.get("status") == "triggered":
        return str(item["respond_by"]), "respond"
    if item.get("next_update_at"):
        return str(item["next_update_at"]), "update"
    return None, "none"


# --- reading -----------------------------------------------------------------------------

def gather(screens: Screens, *, team: str | None = None) -> dict[str, Any]:
    """The queue as plain data, with the tower's now and clock rate."""
    tower = screens.tower
    now = tower.clock.now()
    with tower.engine.connect() as conn:
        items = queue.emergency_room(conn, now=now, team=team, limit=QUEUE_LIMIT,
                                     exclude_rules=policy_of(screens).improvement_rules)
    return {"now": now.isoformat(), "rate": clock_rate(tower.clock), "items": items}


def attrs(**values: object) -> dict[str, Any]:
    """HTML attributes Dash passes through (``data-*``, ``aria-*``): ``er_ex`` -> ``data-er-ex``."""
    return {("aria-" + k[5:] if k.startswith("aria_") else "data-" + k.replace("_", "-")): v
            for k, v in values.items() if v is not None}


def summary(items: Sequence[Mapping[str, Any]], lang: Lang) -> str:
    return s("summary", lang, n=len(items), overdue=sum(1 for i in items if i.get("overdue")),
             l3=sum(1 for i in items if i["tier"] == "L3"), l2=sum(1 for i in items if i["tier"] == "L2"))


def local(value: str | datetime | None, zone: ZoneInfo, fmt: str = "%m-%d %H:%M") -> str:
    """A stored time (UTC) in the tower's zone; empty for none."""
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(zone).strftime(fmt)


def order_href(order_id: str, view_query: str) -> str:
    """The order's page, keeping the view (language, theme, kiosk)."""
    return f"/orders{view_query}&order={quote(order_id, safe='')}"


# --- the queue ---------------------------------------------------------------------------
# The rows go to the browser as plain data that assets/emergency_room.js draws (and
# re-draws only where a row changed): 200 rows of Dash components cost the server far
# more than the 100 ms a refresh may take. Nothing in a row changes with time alone, so
# an unchanged queue is not re-sent; the countdowns are the browser's.

KEYS: Final = {"ack": "a", "assign": "t", "step": "s", "snooze": "z", "resolve": "r", "open": "Enter"}


def action_button(action: str, ex_id: str, lang: Lang) -> Any:
    """A move's button (the detail panel's; the queue's are drawn by the browser alike)."""
    tone = "btn-primary" if action == "ack" else "btn-outline-secondary"
    return html.Button(s(f"act.{action}", lang), type="button", className=f"btn btn-sm {tone}",
                       title=f"{s(f'act.{action}', lang)} ({KEYS[action]})",
                       **attrs(er_action=action, er_ex=ex_id))


def row_data(item: Mapping[str, Any], *, lang: Lang, zone: ZoneInfo, kiosk: bool,
             view_query: str) -> dict[str, Any]:
    """One exception of the queue as the browser draws it: tier, deadline, what and where."""
    deadline, kind = deadline_of(item)
    meta: list[Any] = [status_label(str(item["status"]), lang)]
    if item.get("order_id"):
        order = s("order", lang, id=item["order_id"])
        href = order_href(str(item["order_id"]), view_query)
        meta.append(order if kiosk else {"text": order, "href": href})
        if item.get("promised_at"):
            meta.append(s("promised", lang, at=local(item["promised_at"], zone)))
    if item.get("parcel_id"):
        meta.append(s("parcel", lang, id=item["parcel_id"]))
    if item.get("hub_id"):
        meta.append(s("hub", lang, id=item["hub_id"]))
    meta.append(s("team", lang, team=label("team", str(item["team"]), lang)))
    meta.append(s("assignee", lang, name=item["assignee"]) if item.get("assignee") else s("unassigned", lang))
    if (item.get("count") or 1) > 1:
        meta.append(s("seen", lang, n=item["count"]))
    if item.get("grouped"):
        meta.append(s("grouped", lang, n=item["grouped"]))
    if item.get("escalations"):
        meta.append(s("escalated", lang, n=item["escalations"]))
    step = None
    if item.get("handling_step"):
        step = s("step", lang, step=item["handling_step"])
        if item.get("next_update_at"):
            step += " · " + s("next_update", lang, at=local(item["next_update_at"], zone))
    return {"id": str(item["id"]), "tier": str(item["tier"]), "status": str(item["status"]),
            "title": str(item["title"]), "hp": bool(item.get("high_priority")), "meta": meta, "step": step,
            "deadline": deadline, "kind": kind, "text": s("no_deadline", lang) if deadline is None else "",
            "ack": item["status"] == "triggered"}


def queue_data(items: Sequence[Mapping[str, Any]], *, lang: Lang, zone: ZoneInfo, kiosk: bool,
               view_query: str) -> dict[str, Any]:
    """The whole queue for the browser: rows (each with a version), labels, the empty line."""
    rows = [row_data(i, lang=lang, zone=zone, kiosk=kiosk, view_query=view_query) for i in items]
    for r in rows:
        r["v"] = digest(r)
    return {"rows": rows, "kiosk": kiosk, "empty": s("empty", lang),
            "labels": {a: s(f"act.{a}", lang) for a in (*ROW_ACTIONS, "open")}, "keys": KEYS,
            "countdown_label": s("countdown_label", lang), "hp": s("high_priority", lang)}


# --- forms -------------------------------------------------------------------------------

def _field(name: str) -> dict[str, Any]:
    return ids.match("field", name=name)


def _labelled(text: str, control: Any) -> Any:
    return html.Label([html.Span(text, className="form-label d-block mb-1"), control],
                      className="d-block mb-2")


def _text(name: str, text: str, *, value: str | None = None, max_length: int = MAX_NAME,
          placeholder: str | None = None) -> Any:
    return _labelled(text, dbc.Input(id=_field(name), type="text", value=value, maxLength=max_length,
                                     placeholder=placeholder, autoComplete="off"))


def _hours(name: str, text: str, *, value: float | None = None) -> Any:
    return _labelled(text, dbc.Input(id=_field(name), type="number", value=value, min=0, max=MAX_HOURS,
                                     step="any"))


def _select(name: str, text: str, options: Sequence[tuple[str, str]], *, value: str | None,
            lang: Lang) -> Any:
    # dbc.Select draws its own empty option (value "") for the placeholder.
    return _labelled(text, dbc.Select(id=_field(name), options=[{"label": shown, "value": v}
                                                                for v, shown in options],
                                      value=value or "", placeholder=s("f.choose", lang)))


def _note(lang: Lang) -> Any:
    return _labelled(s("f.note", lang), dbc.Textarea(id=_field("note"), maxLength=MAX_TEXT, rows=2))


def form_fields(action: str, *, lang: Lang, policy: ResponsePolicy,
                exception: Mapping[str, Any] | None) -> list[Any]:
    """The fields of one move's form (ids ``{"kind": "field", "name": ...}``)."""
    teams = [(team, label("team", team, lang)) for team in policy.teams]
    about = ([html.P(s("f.about", lang, id=exception["id"], title=exception["title"]),
                     className="er-about text-body-secondary")] if exception is not None else [])
    if action == "assign":
        current = str(exception["team"]) if exception is not None else None
        return [*about, _select("team", s("f.team", lang), teams, value=current, lang=lang),
                _text("assignee", s("f.assignee", lang),
                      value=exception["assignee"] if exception is not None else None), _note(lang)]
    if action == "step":
        return [*about, _text("step", s("f.step", lang), max_length=MAX_TITLE,
                              placeholder=s("f.step_placeholder", lang)),
                _hours("next_h", s("f.next_h", lang), value=2), _note(lang)]
    if action == "snooze":
        return [*about, _hours("hours", s("f.hours", lang), value=1), _note(lang)]
    if action == "resolve":
        causes = [(c, label("cause", c, lang)) for c in policy.root_causes]
        return [*about, _select("cause", s("f.cause", lang), causes, value=None, lang=lang),
                _note(lang),
                html.Fieldset([html.Legend(s("f.whys", lang), className="fs-6"),
                               *[dbc.Input(id=_field(f"why{n}"), type="text", maxLength=MAX_TEXT,
                                           placeholder=s("f.why", lang, n=n), className="mb-1",
                                           autoComplete="off")
                                 for n in range(1, MAX_WHYS + 1)]], className="mb-2"),
                dbc.Row([dbc.Col(_text("supplier", s("f.supplier", lang)), md=4),
                         dbc.Col(_text("carrier", s("f.carrier", lang)), md=4),
                         dbc.Col(_text("hub", s("f.hub", lang)), md=4)])]
    if action == "raise":
        return [_text("title", s("f.title", lang), max_length=MAX_TITLE),
                _select("team", s("f.team", lang), teams, value=policy.management_team, lang=lang),
                _text("order", s("f.order", lang), max_length=MAX_ID),
                dbc.Checkbox(id=_field("high"), label=s("f.high", lang), value=False, className="mb-2"),
                _note(lang)]
    raise ValueError(f"no form for {action!r}")


# --- moves -------------------------------------------------------------------------------

class FormError(ValueError):
    """A field of the form the move cannot use; the message is for the person."""


@dataclass(frozen=True)
class Outcome:
    """What a move did: ``ok``, the message to show, the exception it touched."""

    ok: bool
    message: str
    exception_id: str | None = None


def _clean(fields: Mapping[str, Any], name: str, limit: int = MAX_NAME) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    text = str(value).strip()[:limit]
    return text or None


def _required(fields: Mapping[str, Any], name: str, shown: str, lang: Lang, limit: int = MAX_NAME) -> str:
    value = _clean(fields, name, limit)
    if value is None:
        raise FormError(s("err.missing", lang, field=shown))
    return value


def _hours_of(fields: Mapping[str, Any], name: str, shown: str, lang: Lang, *,
              required: bool) -> float | None:
    value = fields.get(name)
    if value in (None, ""):
        if required:
            raise FormError(s("err.missing", lang, field=shown))
        return None
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise FormError(s("err.hours", lang, field=shown, max=MAX_HOURS)) from None
    if not 0 < hours <= MAX_HOURS:
        raise FormError(s("err.hours", lang, field=shown, max=MAX_HOURS))
    return hours


def clean_actor(actor: object) -> str:
    """The "acting as" name kept in the browser; ``operator`` when empty."""
    text = str(actor).strip()[:MAX_NAME] if isinstance(actor, str) else ""
    return text or DEFAULT_ACTOR


def perform(tower: Tower, policy: ResponsePolicy, action: str, exception_id: str | None,
            fields: Mapping[str, Any], *, actor: str, lang: Lang, zone: ZoneInfo) -> Outcome:
    """Run one move in one transaction, on the tower's clock; refusals become messages."""
    try:
        return _perform(tower, policy, action, exception_id, fields, actor=clean_actor(actor),
                        lang=lang, zone=zone)
    except FormError as exc:
        return Outcome(False, str(exc), exception_id)
    except TransitionError as exc:
        return Outcome(False, s("err.refused", lang, reason=exc.reason), exception_id)
    except InvalidInput as exc:
        return Outcome(False, s("err.invalid", lang, reason=str(exc)), exception_id)
    except store.ExceptionNotFound:
        return Outcome(False, s("err.not_found", lang), exception_id)
    except SQLAlchemyError as exc:
        log.exception("emergency room: %s of %s failed", action, exception_id)
        return Outcome(False, s("err.invalid", lang, reason=type(exc).__name__), exception_id)


def _perform(tower: Tower, policy: ResponsePolicy, action: str, ex_id: str | None,
             fields: Mapping[str, Any], *, actor: str, lang: Lang, zone: ZoneInfo) -> Outcome:
    note = _clean(fields, "note", MAX_TEXT)
    if action == "raise":
        return _raise(tower, policy, fields, actor=actor, note=note, lang=lang)
    if ex_id is None:
        raise store.ExceptionNotFound("no exception given")
    # Parse the form before the transaction: a wrong field touches nothing.
    if action == "assign":
        team = _required(fields, "team", s("f.team", lang), lang, 48)
        assignee = _clean(fields, "assignee")
    elif action == "step":
        step = _required(fields, "step", s("f.step", lang), lang, MAX_TITLE)
        next_h = _hours_of(fields, "next_h", s("f.next_h", lang), lang, required=False)
    elif action == "snooze":
        hours = _hours_of(fields, "hours", s("f.hours", lang), lang, required=True) or 0.0
    elif action == "resolve":
        cause = RootCause(
            cause=_required(fields, "cause", s("f.cause", lang), lang, 64), note=note,
            whys=tuple(w for w in (_clean(fields, f"why{n}", MAX_TEXT) for n in range(1, MAX_WHYS + 1)) if w),
            supplier=_clean(fields, "supplier"), carrier=_clean(fields, "carrier"), hub=_clean(fields, "hub"))
    elif action != "ack":
        raise FormError(f"unknown move {action!r}")
    with tower.engine.begin() as conn:
        now = tower.clock.now()
        if action == "ack":
            row = store.acknowledge(conn, ex_id, actor=actor, now=now, note=note)
            message = s("ok.ack", lang, title=row["title"])
        elif action == "assign":
            row = store.assign(conn, ex_id, team=team, assignee=assignee, actor=actor, now=now,
                               policy=policy, note=note)
            message = s("ok.assign", lang, team=label("team", team, lang), title=row["title"])
        elif action == "step":
            row = store.comment(conn, ex_id, note=note or step, step=step, next_update_h=next_h,
                                actor=actor, now=now)
            message = s("ok.step", lang, title=row["title"])
        elif action == "snooze":
            until = now + timedelta(hours=hours)
            row = store.snooze(conn, ex_id, until=until, actor=actor, now=now, note=note)
            message = s("ok.snooze", lang, at=local(until, zone), title=row["title"])
        else:
            row = store.resolve(conn, ex_id, cause=cause, actor=actor, now=now, policy=policy)
            message = s("ok.resolve", lang, cause=label("cause", cause.cause, lang), title=row["title"])
    return Outcome(True, message, ex_id)


def _raise(tower: Tower, policy: ResponsePolicy, fields: Mapping[str, Any], *, actor: str,
           note: str | None, lang: Lang) -> Outcome:
    title = _required(fields, "title", s("f.title", lang), lang, MAX_TITLE)
    team = _required(fields, "team", s("f.team", lang), lang, 48)
    if team not in policy.teams:
        raise InvalidInput(f"team: {team!r} is not a team (known: {', '.join(policy.teams)})")
    order_id = _clean(fields, "order", MAX_ID)
    # As the API: about an order, one open exception per order; else a scope of its own.
    scope = f"order:{order_id}" if order_id else f"manual:{uuid.uuid4().hex[:12]}"
    with tower.engine.begin() as conn:
        now = tower.clock.now()
        trigger = Trigger(rule="manual", scope_key=scope, tier="L3", team=team, title=title,
                          condition_since=now, order_id=order_id, high_priority=bool(fields.get("high")))
        raised = store.raise_or_bump(conn, trigger, now=now, policy=policy, raised_by=actor, note=note)
    key = "ok.raise" if raised.created else "ok.raise_bumped"
    return Outcome(True, s(key, lang, id=raised.id, title=title), raised.id)


# --- the detail panel --------------------------------------------------------------------

def _pair(key: str, value: Any, lang: Lang) -> list[Any]:
    return [html.Dt(s(f"detail.{key}", lang), className="col-5"), html.Dd(value, className="col-7 mb-1")]


def detail_panel(exception: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], *, more: bool,
                 lang: Lang, zone: ZoneInfo, view_query: str) -> Any:
    """The exception's fields, its order link and its timeline (who, when, what, note)."""
    ex_id = str(exception["id"])
    when = "%Y-%m-%d %H:%M"
    rows: list[Any] = []
    rows += _pair("status", status_label(str(exception["status"]), lang), lang)
    rows += _pair("tier", exception["tier"], lang)
    rule = str(exception["rule"])
    rows += _pair("rule", s("rule.manual", lang) if rule == "manual" else rule, lang)
    rows += _pair("team", label("team", str(exception["team"]), lang), lang)
    rows += _pair("assignee", exception.get("assignee") or s("unassigned", lang), lang)
    if exception.get("order_id"):
        order_id = str(exception["order_id"])
        rows += _pair("order", dcc.Link(order_id, href=order_href(order_id, view_query),
                                        id=ids("detail-order")), lang)
    for key in ("parcel", "hub"):
        if exception.get(f"{key}_id"):
            rows += _pair(key, exception[f"{key}_id"], lang)
    for key, column in (("opened", "opened_at"), ("respond_by", "respond_by"),
                        ("acknowledged", "acknowledged_at"), ("snoozed_until", "snoozed_until"),
                        ("resolved", "resolved_at")):
        if exception.get(column):
            rows += _pair(key, local(exception[column], zone, when), lang)
    if exception.get("handling_step"):
        rows += _pair("step", exception["handling_step"], lang)
    if exception.get("next_update_at"):
        rows += _pair("next_update", local(exception["next_update_at"], zone, when), lang)
    cause = exception.get("root_cause") or None
    if cause:
        rows += _pair("cause", label("cause", str(cause.get("cause")), lang), lang)
        whys = [w for w in cause.get("whys") or [] if w]
        if whys:
            rows += _pair("whys", html.Ol([html.Li(w) for w in whys], className="mb-0 ps-3"), lang)
    rows += _pair("raised_by", exception.get("raised_by") or "", lang)
    rows += _pair("count", str(exception.get("count", 1)), lang)
    timeline = html.Table(className="table table-sm er-timeline mb-0", children=[
        html.Thead(html.Tr([html.Th(s(f"detail.{k}", lang)) for k in ("when", "who", "what", "note")])),
        html.Tbody([
            html.Tr([html.Td(local(e["at"], zone, when), className="text-nowrap"), html.Td(e["actor"]),
                     html.Td(label("tl", str(e["action"]), lang)), html.Td(e.get("note") or "")])
            for e in entries
        ]),
    ])
    actions = [] if exception["status"] not in ("triggered", "acknowledged") else [
        action_button(a, ex_id, lang) for a in ROW_ACTIONS
        if a != "ack" or exception["status"] == "triggered"]
    return html.Div(className="er-detail", **attrs(er_ex=ex_id), children=[
        html.Div(className="d-flex align-items-start gap-2", children=[
            html.Span(str(exception["tier"]), className=f"tower-tier tower-tier-{exception['tier']}"),
            html.H2(str(exception["title"]), className="h5 flex-grow-1 mb-1", id=ids("detail-title")),
            html.Button("×", type="button", className="btn-close", title=s("act.close", lang) + " (Esc)",
                        **attrs(er_action="close", aria_label=s("act.close", lang))),
        ]),
        html.Div(ex_id, className="text-body-secondary small mb-2"),
        html.Div(actions, className="er-actions mb-2"),
        html.Dl(rows, className="row small mb-2"),
        html.H3(s("detail.timeline", lang), className="h6"),
        html.Div(timeline, className="er-timeline-wrap"),
        html.P(s("detail.timeline_more", lang, n=TIMELINE_LIMIT), className="small text-body-secondary")
        if more else None,
    ])


def read_detail(tower: Tower, exception_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], bool] | None:
    """The exception (JSON values) and the first timeline entries; None if unknown."""
    with tower.engine.connect() as conn:
        row = store.get_exception(conn, exception_id)
        if row is None:
            return None
        entries = store.timeline(conn, exception_id, limit=TIMELINE_LIMIT + 1)
    return store.to_json(row), entries[:TIMELINE_LIMIT], len(entries) > TIMELINE_LIMIT


# --- layout ------------------------------------------------------------------------------

def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           team: str | None = None, **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    is_kiosk = str(kiosk).lower() in TRUE
    view_query = View.from_query({"lang": code, "theme": theme or "", "kiosk": kiosk or ""}).query()
    try:
        policy: ResponsePolicy | None = policy_of(screens)
    except PolicyConfigError as exc:
        log.error("emergency room: %s", exc)
        policy = None
    teams = policy.teams if policy is not None else ()
    chosen = team if team in teams else ALL_TEAMS
    view = {"lang": code, "kiosk": is_kiosk, "query": view_query}
    toolbar = html.Div(className="er-toolbar", hidden=is_kiosk, children=[
        html.Label(className="er-control", children=[
            html.Span(s("team_filter", code), className="form-label d-block mb-1"),
            dbc.Select(id=ids("team"), value=chosen, size="sm",
                       options=[{"label": s("all_teams", code), "value": ALL_TEAMS}]
                       + [{"label": label("team", x, code), "value": x} for x in teams]),
        ]),
        html.Label(className="er-control", title=s("actor_help", code), children=[
            html.Span(s("actor", code), className="form-label d-block mb-1"),
            dbc.Input(id=ids("actor-input"), type="text", size="sm", maxLength=MAX_NAME,
                      placeholder=DEFAULT_ACTOR, autoComplete="off"),
        ]),
        html.Button(s("raise", code), type="button", id=ids("raise"), className="btn btn-danger btn-sm",
                    title=s("raise", code) + " (n)", **attrs(er_action="raise")),
        html.Div(s("keys", code), className="er-keys small text-body-secondary", id=ids("keys")),
    ])
    return html.Div(id=ids("root"), className="er er-kiosk" if is_kiosk else "er", children=[
        dcc.Store(id=ids("view"), data=view),
        dcc.Store(id=ids("sent"), data={}),
        dcc.Store(id=ids("clock")),
        dcc.Store(id=ids("rows")),
        html.Div(id=ids("drawn"), hidden=True),
        dcc.Store(id=ids("intent")),
        dcc.Store(id=ids("changed"), data=0),
        dcc.Store(id=ids("selected")),
        dcc.Store(id=ids("target")),
        dcc.Store(id=ids("detail-sent")),
        dcc.Store(id=ids("actor"), storage_type="local", data=DEFAULT_ACTOR),
        html.Div(id=ids("ticked"), hidden=True),
        html.Div(className="er-head", children=[
            html.H1(s("title", code), className="h3 mb-0"),
            html.Span(id=ids("summary"), className="er-summary", role="status"),
        ]),
        toolbar,
        html.Div(id=ids("feedback"), className="er-feedback", role="status", **attrs(aria_live="polite")),
        dbc.Row(className="g-3", children=[
            dbc.Col(html.Div(id=ids("queue"), className="er-queue", role="list"),
                    lg=12 if is_kiosk else 8),
            dbc.Col(html.Div(id=ids("detail"), className="er-detail-box"), lg=4,
                    className="er-detail-col", style={"display": "none"} if is_kiosk else None),
        ]),
        dbc.Modal(id=ids("modal"), is_open=False, centered=True, keyboard=True, size="lg", children=[
            dbc.ModalHeader(dbc.ModalTitle(id=ids("modal-title")), close_button=True),
            dbc.ModalBody([html.Div(id=ids("form")),
                           html.Div(id=ids("form-error"), className="text-danger", role="alert")]),
            dbc.ModalFooter([
                dbc.Button(s("form.cancel", code), id=ids("cancel"), color="secondary", outline=True),
                dbc.Button(s("form.submit", code), id=ids("submit"), color="primary"),
            ]),
        ]),
    ])


def _feedback(outcome: Outcome) -> Any:
    return dbc.Alert(outcome.message, color="success" if outcome.ok else "danger", dismissable=True,
                     duration=8000 if outcome.ok else None, className="py-2 mb-2",
                     id=ids("feedback-alert"))


def refresh(screens: Screens, *, team: str | None, view: Mapping[str, Any],
            sent: Mapping[str, str] | None) -> tuple[Any, ...]:
    """The queue, its summary line and the tower's clock; a part is sent only when it
    changed (its hash kept in ``sent``). Returns (rows, summary, clock, sent)."""
    lang = normalise_lang(view.get("lang"))
    kiosk = bool(view.get("kiosk"))
    hashes = dict(sent or {})
    try:
        data = gather(screens, team=None if team in (None, "", ALL_TEAMS) else team)
    except PolicyConfigError as exc:
        return {"rows": [], "empty": s("err.policy", lang, reason=str(exc))}, "", no_update, hashes
    items = data["items"]
    clock = {"now": data["now"], "rate": data["rate"], "words": countdown_words(lang)}
    rows = queue_data(items, lang=lang, zone=screens.settings.zone, kiosk=kiosk,
                      view_query=str(view.get("query") or "?lang=" + lang))
    parts: dict[str, Any] = {"rows": rows, "summary": summary(items, lang)}
    out: dict[str, Any] = {}
    for part, value in parts.items():
        key = digest(value)
        out[part] = no_update if hashes.get(part) == key else value
        hashes[part] = key
    return out["rows"], out["summary"], clock, hashes


def desk(screens: Screens, *, trigger: object, intent: Mapping[str, Any] | None,
         target: Mapping[str, Any] | None, fields: Mapping[str, Any], actor: str | None,
         view: Mapping[str, Any], changed: int | None) -> tuple[Any, ...]:
    """The triage desk: what a button, key, form submit or cancel does.

    Returns (modal open, modal title, form, target, form error, feedback, changed,
    selected); ``no_update`` where nothing changes. ``changed`` goes up after each
    move so the queue and the detail refresh at once.
    """
    tower, zone = screens.tower, screens.settings.zone
    lang = normalise_lang(view.get("lang"))
    keep: list[Any] = [no_update] * 8
    if view.get("kiosk"):
        return tuple(keep)
    if trigger == ids("cancel"):
        return False, *keep[1:]
    if trigger == ids("submit"):
        if not target:
            return tuple(keep)
        action = str(target["action"])
        outcome = perform(tower, policy_of(screens), action, target.get("ex"), fields,
                          actor=clean_actor(actor), lang=lang, zone=zone)
        if not outcome.ok:
            return *keep[:4], outcome.message, *keep[5:]
        selected = outcome.exception_id if action == "raise" else no_update
        return False, no_update, no_update, None, "", _feedback(outcome), (changed or 0) + 1, selected
    if not isinstance(intent, Mapping):
        return tuple(keep)
    action, ex_id = str(intent.get("action")), intent.get("ex")
    if action == "open" and ex_id:
        return *keep[:7], str(ex_id)
    if action == "close":
        return *keep[:7], None
    if action == "ack" and ex_id:
        outcome = perform(tower, policy_of(screens), "ack", str(ex_id), {}, actor=clean_actor(actor),
                          lang=lang, zone=zone)
        return *keep[:5], _feedback(outcome), (changed or 0) + 1, no_update
    if action not in FORM_ACTIONS or (action != "raise" and not ex_id):
        return tuple(keep)
    exception = None
    if action != "raise":
        found = read_detail(tower, str(ex_id))
        if found is None:
            return *keep[:5], _feedback(Outcome(False, s("err.not_found", lang))), *keep[6:]
        exception = found[0]
    form = form_fields(action, lang=lang, policy=policy_of(screens), exception=exception)
    return True, s(f"form.{action}", lang), form, {"action": action, "ex": ex_id}, "", *keep[5:]


# --- callbacks ---------------------------------------------------------------------------

def register_callbacks(app: Dash, screens: Screens) -> None:
    tower, zone = screens.tower, screens.settings.zone

    @app.callback(
        Output(ids("rows"), "data"),
        Output(ids("summary"), "children"),
        Output(ids("clock"), "data"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(ids("changed"), "data"),
        Input(ids("team"), "value"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
    )
    def _refresh(_n: int | None, _changed: int | None, team: str | None, view: dict[str, Any],
                 sent: dict[str, str] | None) -> tuple[Any, ...]:
        return refresh(screens, team=team, view=view, sent=sent)

    @app.callback(
        Output(ids("detail"), "children"),
        Output(ids("detail-sent"), "data"),
        Input(ids("selected"), "data"),
        Input(ids("changed"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        State(ids("view"), "data"),
        State(ids("detail-sent"), "data"),
    )
    def _detail(selected: str | None, _changed: int | None, _n: int | None, view: dict[str, Any],
                sent: str | None) -> tuple[Any, Any]:
        lang = normalise_lang(view.get("lang"))
        if view.get("kiosk"):
            return no_update, no_update
        found = read_detail(tower, selected) if selected else None
        key = digest([found, lang])
        if key == sent:
            return no_update, no_update
        if found is None:
            return html.P(s("detail.pick", lang), className="text-body-secondary er-detail-empty"), key
        exception, entries, more = found
        return detail_panel(exception, entries, more=more, lang=lang, zone=zone,
                            view_query=str(view.get("query") or "?lang=" + lang)), key

    @app.callback(
        Output(ids("modal"), "is_open"),
        Output(ids("modal-title"), "children"),
        Output(ids("form"), "children"),
        Output(ids("target"), "data"),
        Output(ids("form-error"), "children"),
        Output(ids("feedback"), "children"),
        Output(ids("changed"), "data"),
        Output(ids("selected"), "data"),
        Input(ids("intent"), "data"),
        Input(ids("submit"), "n_clicks"),
        Input(ids("cancel"), "n_clicks"),
        State(ids("target"), "data"),
        State(ids.match("field", name=ALL), "value"),
        State(ids.match("field", name=ALL), "id"),
        State(ids("actor"), "data"),
        State(ids("view"), "data"),
        State(ids("changed"), "data"),
        prevent_initial_call=True,
    )
    def _desk(intent: dict[str, Any] | None, _submit: int | None, _cancel: int | None,
              target: dict[str, Any] | None, values: list[Any], field_ids: list[dict[str, str]],
              actor: str | None, view: dict[str, Any], changed: int | None) -> tuple[Any, ...]:
        fields = {f["name"]: v for f, v in zip(field_ids, values, strict=False)}
        return desk(screens, trigger=ctx.triggered_id, intent=intent, target=target, fields=fields,
                    actor=actor, view=view, changed=changed)

    # In the browser: the countdowns follow the tower's clock; the "acting as" name is
    # kept in localStorage.
    app.clientside_callback(
        ClientsideFunction("emergencyRoom", "draw"),
        Output(ids("drawn"), "children"),
        Input(ids("rows"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("emergencyRoom", "clock"),
        Output(ids("ticked"), "children"),
        Input(ids("clock"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("emergencyRoom", "actor"),
        Output(ids("actor-input"), "value"),
        Output(ids("actor"), "data"),
        Input(ids("actor-input"), "value"),
        Input(ids("actor"), "data"),
    )
