"""Response measures of the emergency room and the root-cause figures.

- **MTTA** (mean time to acknowledge): ``acknowledged_at - opened_at`` over the
  acknowledged exceptions.
- **MTTR** (mean time to resolve): ``resolved_at - opened_at`` over the resolved (and
  closed) ones.
- **answered in time**: of the exceptions with a response deadline (L2/L3, not
  grouped) that are answered or already due, the share whose first response
  (acknowledged, resolved or cancelled, whichever came first) came by the deadline
  without an escalation.

Over the exceptions opened in ``[since, until)``, per tier, per team and overall. The
root-cause figures (top causes, suppliers, carriers, hubs) are over the exceptions
resolved in the window. Aggregated in SQL: the read is bounded whatever the window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, case, func, literal, or_, select

from tower.exceptions.store import EXCEPTIONS

TOP_CAUSES: Final = 3
SCORECARD_ROWS: Final = 20


@dataclass
class _Sums:
    opened: int = 0
    acknowledged: int = 0
    ack_s: float = 0.0
    resolved: int = 0
    resolve_s: float = 0.0
    due: int = 0
    in_time: int = 0

    def add(self, other: _Sums) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_json(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "acknowledged": self.acknowledged,
            "mtta_s": round(self.ack_s / self.acknowledged, 1) if self.acknowledged else None,
            "resolved": self.resolved,
            "mttr_s": round(self.resolve_s / self.resolved, 1) if self.resolved else None,
            "due": self.due,
            "answered_in_time": self.in_time,
            "answered_in_time_share": round(self.in_time / self.due, 4) if self.due else None,
        }


def _seconds(conn: Connection, later: Any, earlier: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def measures(conn: Connection, *, since: datetime, until: datetime, now: datetime) -> dict[str, Any]:
    """MTTA, MTTR and the share answered in time, per tier, per team and overall."""
    ex = EXCEPTIONS
    first_response = func.coalesce(ex.c.acknowledged_at, ex.c.resolved_at, ex.c.cancelled_at)
    has_deadline = and_(ex.c.respond_by.is_not(None), ex.c.parent_id.is_(None))
    due = case((and_(has_deadline, or_(first_response.is_not(None), ex.c.escalations > 0,
                                       ex.c.respond_by < now)), 1), else_=0)
    in_time = case((and_(has_deadline, ex.c.escalations == 0, first_response.is_not(None),
                         first_response <= ex.c.respond_by), 1), else_=0)
    acked = ex.c.acknowledged_at.is_not(None)
    resolved = ex.c.resolved_at.is_not(None)
    zero = literal(0.0)
    query = (
        select(ex.c.tier, ex.c.team, func.count(),
               func.sum(case((acked, 1), else_=0)),
               func.sum(case((acked, _seconds(conn, ex.c.acknowledged_at, ex.c.opened_at)), else_=zero)),
               func.sum(case((resolved, 1), else_=0)),
               func.sum(case((resolved, _seconds(conn, ex.c.resolved_at, ex.c.opened_at)), else_=zero)),
               func.sum(due), func.sum(in_time))
        .where(ex.c.opened_at >= since, ex.c.opened_at < until)
        .group_by(ex.c.tier, ex.c.team)
    )
    overall = _Sums()
    by_tier: dict[str, _Sums] = defaultdict(_Sums)
    by_team: dict[str, _Sums] = defaultdict(_Sums)
    for tier, team, n, n_ack, ack_s, n_res, res_s, n_due, n_in_time in conn.execute(query):
        sums = _Sums(opened=int(n), acknowledged=int(n_ack or 0), ack_s=float(ack_s or 0),
                     resolved=int(n_res or 0), resolve_s=float(res_s or 0), due=int(n_due or 0),
                     in_time=int(n_in_time or 0))
        for bucket in (overall, by_tier[tier], by_team[team]):
            bucket.add(sums)
    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "overall": overall.as_json(),
        "by_tier": {k: v.as_json() for k, v in sorted(by_tier.items())},
        "by_team": {k: v.as_json() for k, v in sorted(by_team.items())},
        **root_causes(conn, since=since, until=until),
    }


def root_causes(conn: Connection, *, since: datetime, until: datetime) -> dict[str, Any]:
    """Causes of the exceptions resolved in the window, and who was involved."""
    ex = EXCEPTIONS
    window = and_(ex.c.resolved_at >= since, ex.c.resolved_at < until, ex.c.root_cause.is_not(None))

    def counted(key: str, limit: int | None) -> list[tuple[str, int]]:
        value = ex.c.root_cause[key].as_string()
        query = (select(value, func.count()).where(window, value.is_not(None))
                 .group_by(value).order_by(func.count().desc(), value))
        if limit is not None:
            query = query.limit(limit)
        return [(str(v), int(n)) for v, n in conn.execute(query)]

    causes = counted("cause", None)  # one row per category: bounded by the configured list
    total = sum(n for _, n in causes)
    return {
        "causes": _shares(causes, total),
        "top_causes": _shares(causes[:TOP_CAUSES], total),
        "suppliers": [{"supplier": k, "exceptions": n} for k, n in counted("supplier", SCORECARD_ROWS)],
        "carriers": [{"carrier": k, "exceptions": n} for k, n in counted("carrier", SCORECARD_ROWS)],
        "hubs": [{"hub": k, "exceptions": n} for k, n in counted("hub", SCORECARD_ROWS)],
    }


def _shares(rows: Iterable[tuple[str, int]], total: int) -> list[dict[str, Any]]:
    return [{"cause": k, "n": n, "share": round(n / total, 4) if total else 0.0} for k, n in rows]
