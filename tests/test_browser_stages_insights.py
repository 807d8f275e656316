"""/stages and /insights in headless Chromium, from a fed `tower serve`: orders with
stage visits and a delivered parcel posted through the API, exceptions raised and
resolved with root causes through tower.exceptions.store. Both pages load with their
data in English, Chinese and kiosk mode, with no console error and no outside request.

Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import _free_port
from tests.test_insights_figures import seed_resolved
from tests.test_pages import browser, requested_hosts  # noqa: F401  (fixture)
from tests.test_pages_shell import SHOTS, by_id, post_events, running, severe_console_entries, wait_for
from tower.settings import DEFAULT_DATA_DIR
from tower.store.engine import make_engine

pytestmark = pytest.mark.browser

H = timedelta(hours=1)


def _event(order: str, kind: str, at: datetime, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{order}-{kind}-{payload.get('stage', payload.get('status', ''))}",
            "type": kind, "occurred_at": at.isoformat(), "source": "test", "order_id": order,
            "payload": payload, **extra}


def feed(now: datetime) -> list[dict[str, Any]]:
    """Three e-commerce orders: one delivered on time by SF, one in packing, one late."""
    events: list[dict[str, Any]] = []
    for order, start, promise, stages in (
        ("BR-1", now - 30 * H, now + 20 * H, ["paid", "picking", "packing", "outbound", "transit"]),
        ("BR-2", now - 6 * H, now + 40 * H, ["paid", "picking", "packing"]),
        ("BR-3", now - 60 * H, now - 2 * H, ["paid", "picking"]),
    ):
        events.append(_event(order, "order.created", start, {"flow": "ecommerce",
                                                             "promised_at": promise.isoformat()}))
        at = start
        for i, stage in enumerate(stages):
            events.append(_event(order, "stage.entered", at, {"stage": stage}))
            events.append(_event(order, "stage.started", at + 0.5 * H, {"stage": stage}))
            if i < len(stages) - 1:
                at += (3 if stage == "picking" else 1) * H
                events.append(_event(order, "stage.completed", at, {"stage": stage}))
    events.append(_event("BR-1", "tracking.assigned", now - 26 * H,
                         {"carrier": "SF", "tracking_number": "BR-1-P"}, parcel_id="BR-1-P"))
    events.append(_event("BR-1", "parcel.scanned", now - H,
                         {"status": "delivered", "carrier": "SF", "parcel_id": "BR-1-P"}, parcel_id="BR-1-P"))
    return events


@pytest.fixture(scope="module")
def fed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("db") / "stages-insights.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(DEFAULT_DATA_DIR)}
    port = _free_port()
    with running(env, port):
        base = f"http://127.0.0.1:{port}"
        now = datetime.now(UTC)
        answer = post_events(base, feed(now))
        assert answer["rejected"] == [], answer
        engine = make_engine(env["DATABASE_URL"])
        try:
            seed_resolved(engine, now, [("packaging_shortage", None, None)] * 4
                          + [("supplier_delay", "ACME", None)] * 2 + [("carrier_delay", None, "SF")])
        finally:
            engine.dispose()
        time.sleep(1)  # the projector folds the batch a moment after the answer
        yield base


MODES = {"en": "?lang=en", "zh-CN": "?lang=zh-CN", "kiosk": "?kiosk=1&lang=zh-CN"}


def _graph_has_bars(driver: Any, graph_id: str) -> bool:
    return bool(driver.execute_script(
        "const g = document.getElementById(arguments[0]);"
        "return !!g && g.querySelectorAll('.trace.bars path, .trace.boxes path').length > 0;", graph_id))


def _shot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


@pytest.mark.parametrize("mode", list(MODES))
def test_stages_and_insights_load_with_data(browser: Any, fed_site: str, mode: str) -> None:  # noqa: F811
    base = fed_site
    browser.get(base + "/stages" + MODES[mode])
    wait_for(lambda: _graph_has_bars(browser, "stages-gantt"), timeout=90, what=f"Gantt bars ({mode})")
    wait_for(lambda: "BR-" in (by_id(browser, "stages-gantt").text or ""), timeout=40, what="order rows")
    wait_for(lambda: by_id(browser, "stages-table") is not None
             and len(by_id(browser, "stages-table").text) > 10, timeout=40, what="stage table")
    note = by_id(browser, "stages-gantt-note").text
    assert note.startswith("3 ") and ("orders" in note or "订单" in note)
    controls = by_id(browser, "stages-choice")
    assert controls.is_displayed() == (mode != "kiosk")
    if mode == "zh-CN":
        assert "拣货" in by_id(browser, "stages-table").text
    _shot(browser, f"{mode}-stages-data")
    assert severe_console_entries(browser) == []

    browser.get(base + "/insights" + MODES[mode])
    wait_for(lambda: _graph_has_bars(browser, "insights-pareto"), timeout=90, what=f"Pareto ({mode})")
    top3 = wait_for(lambda: by_id(browser, "insights-top3") and by_id(browser, "insights-top3").text,
                    timeout=40, what="top 3")
    first = top3.splitlines()[0]
    assert first == {"en": "Packaging shortage: 57% (4)"}.get(mode, "包装材料短缺：57%（4）")
    carriers = wait_for(lambda: by_id(browser, "insights-carriers").text, timeout=40, what="carriers")
    assert "SF" in carriers and "100%" in carriers
    assert "ACME" in by_id(browser, "insights-suppliers").text
    response = by_id(browser, "insights-response").text
    assert ("All" if mode == "en" else "全部") in response
    assert by_id(browser, "insights-month").is_displayed() == (mode != "kiosk")
    _shot(browser, f"{mode}-insights-data")
    assert severe_console_entries(browser) == []
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_stages_selector_switches_to_late_orders(browser: Any, fed_site: str) -> None:  # noqa: F811
    from selenium.webdriver.support.ui import Select

    browser.get(fed_site + "/stages?lang=en&theme=dark")
    wait_for(lambda: _graph_has_bars(browser, "stages-gantt"), timeout=90, what="Gantt bars")
    Select(by_id(browser, "stages-choice")).select_by_value("late")
    wait_for(lambda: by_id(browser, "stages-gantt-note").text.startswith("1 orders"), timeout=40,
             what="late orders only")
    assert "BR-3" in by_id(browser, "stages-gantt").text
    _shot(browser, "dark-stages-late")
    assert severe_console_entries(browser) == []
