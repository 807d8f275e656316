"""`/orders` in headless Chromium on a fed `tower serve`: the grid loads its rows from the
server (infinite row model), the filters narrow it, clicking a row shows the order's
Gantt and timeline and makes the URL its permalink; English, Chinese, dark and kiosk,
without console errors or requests to any other host. Screenshots in artifacts/."""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.factories import order_stream
from tests.test_cli import _free_port
from tests.test_pages import browser, requested_hosts  # noqa: F401  (fixture)
from tests.test_pages_shell import (  # noqa: F401  (data_dir is a fixture)
    SHOTS,
    by_id,
    data_dir,
    post_events,
    running,
    severe_console_entries,
    wait_for,
)
from tower.flows import load_flows
from tower.settings import DEFAULT_DATA_DIR

pytestmark = pytest.mark.browser

N = 24
MANUFACTURING = {f"o{i:03d}" for i in range(N) if i % 3 == 2}


def _events() -> list[dict[str, Any]]:
    flows = load_flows(DEFAULT_DATA_DIR / "flows.toml")
    rng = random.Random(5)
    start = datetime.now(UTC) - timedelta(days=5)
    events: list[dict[str, Any]] = []
    for i in range(N):
        evs = order_stream(flows, order_id=f"o{i:03d}", rng=rng,
                           flow="manufacturing" if f"o{i:03d}" in MANUFACTURING else "ecommerce",
                           start=start + timedelta(minutes=11 * i), deliver=i % 4 != 0)
        evs[0]["payload"]["customer_id"] = f"c{i % 3}"
        events += evs
    return events


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[str]:  # noqa: F811
    """A real `tower serve` on its own SQLite file, fed N orders through the API."""
    db = tmp_path_factory.mktemp("db") / "orders.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(data_dir)}
    port = _free_port()
    with running(env, port):
        base = f"http://127.0.0.1:{port}"
        answer = post_events(base, _events())
        assert answer["rejected"] == [], answer["rejected"][:3]

        def projected() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/api/v1/orders/o{N - 1:03d}", timeout=5) as resp:
                    return bool(resp.status == 200)
            except urllib.error.HTTPError:
                return False
        wait_for(projected, timeout=60, what="the fed orders projected")
        yield base


def _rows(driver: Any) -> list[str]:
    """The order ids the grid has loaded from the server (its row nodes, rendered or not)."""
    ids = driver.execute_script(
        "var api = null;"
        "try { api = dash_ag_grid.getApi('orders-grid'); } catch (e) { return []; }"
        "var ids = [];"
        "api.forEachNode(function (n) { if (n.data) { ids.push(n.data.order_id); } });"
        "return ids;")
    return sorted(set(ids or []))


def _select(driver: Any, ident: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(wait_for(lambda: by_id(driver, ident), what=ident)).select_by_value(value)


def _clean(driver: Any, shot: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"orders-{shot}.png"))
    assert severe_console_entries(driver) == []


def _detail_shown(driver: Any, order_id: str, title: str) -> bool:
    from selenium.webdriver.common.by import By

    heading = by_id(driver, "orders-title")
    bars = driver.find_elements(By.CSS_SELECTOR, "#orders-gantt .barlayer .point")
    events = driver.find_elements(By.CSS_SELECTOR, "#orders-events li")
    return bool(heading is not None and heading.text == title.format(order=order_id)
                and len(bars) > 0 and len(events) > 5)


def test_list_filters_and_detail(browser: Any, fed: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.set_window_size(1400, 1100)
    browser.get(fed + "/orders?lang=en")
    wait_for(lambda: len(_rows(browser)) == N, timeout=60, what="all rows from the server")
    wait_for(lambda: by_id(browser, "orders-count").text == f"{N} orders", what="the count")
    assert "LATE" in browser.find_element(By.ID, "orders-grid").text  # undelivered past promise
    _clean(browser, "en-list")

    _select(browser, "orders-f-flow", "manufacturing")
    wait_for(lambda: set(_rows(browser)) == MANUFACTURING, what="the flow filter")
    wait_for(lambda: by_id(browser, "orders-count").text == f"{len(MANUFACTURING)} orders",
             what="the filtered count")
    _select(browser, "orders-f-hub", "hub-sha")
    wait_for(lambda: 0 < len(_rows(browser)) < len(MANUFACTURING), what="the hub filter")
    by_id(browser, "orders-clear").click()
    wait_for(lambda: len(_rows(browser)) == N, what="filters cleared")

    target = sorted(MANUFACTURING)[0]
    cell = wait_for(lambda: browser.find_elements(
        By.CSS_SELECTOR, f'#orders-grid .ag-row[row-id="{target}"] .ag-cell'), what="the row")
    cell[0].click()
    wait_for(lambda: _detail_shown(browser, target, "Order {order}"), timeout=60, what="Gantt and timeline")
    assert f"order={target}" in browser.current_url
    page = by_id(browser, "orders-detail").text
    assert "Stage completed" in page and "Hand-off evidence" in page
    legend = browser.find_element(By.ID, "orders-gantt").text
    assert "Waiting" in legend and "Work" in legend and "Planned budget" in legend
    _clean(browser, "en-detail")
    assert requested_hosts(browser) == {"127.0.0.1"}


@pytest.mark.parametrize(("mode", "query", "title"), [
    ("zh-CN", "?lang=zh-CN", "订单 {order}"),
    ("dark", "?lang=en&theme=dark", "Order {order}"),
    ("kiosk", "?kiosk=1&lang=zh-CN", "订单 {order}"),
])
def test_permalink_in_every_view(browser: Any, fed: str, mode: str, query: str,  # noqa: F811
                                 title: str) -> None:
    browser.set_window_size(1400, 1100)
    browser.get(f"{fed}/orders{query}&order=o004")
    wait_for(lambda: _detail_shown(browser, "o004", title), timeout=60, what=f"detail in {mode}")
    wait_for(lambda: len(_rows(browser)) == N, timeout=60, what="rows")
    filters = browser.find_elements("css selector", ".orders-filters")
    if mode == "kiosk":
        assert "tower-kiosk" in (browser.find_element("tag name", "html").get_attribute("class") or "")
        assert not filters[0].is_displayed()
    else:
        assert filters[0].is_displayed()
    if mode != "dark":
        text = by_id(browser, "orders-detail").text
        assert "进入阶段" in text and "阶段甘特图" in text
        assert by_id(browser, "orders-count").text == f"{N} 个订单"
    time.sleep(1)  # a refresh tick or two: nothing may break on them
    _clean(browser, mode)
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_unknown_order_says_so(browser: Any, fed: str) -> None:  # noqa: F811
    browser.get(f"{fed}/orders?lang=en&order=nope")
    wait_for(lambda: "Order nope is not known" in (by_id(browser, "orders-detail").text
                                                    if by_id(browser, "orders-detail") else ""),
             what="the unknown order note")
    assert severe_console_entries(browser) == []
