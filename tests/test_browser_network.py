"""`/network` in headless Chromium on a fed server: the heatmap, the offline hub map and
the stuck-parcel list in English, Chinese and kiosk mode, with no console error and no
request leaving 127.0.0.1 (the map's outline is shipped, nothing is fetched); the hub
filter by click. Screenshots go to ``artifacts/screenshots/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import _free_port
from tests.test_pages import browser, requested_hosts  # noqa: F401  (fixture)
from tests.test_pages_shell import SHOTS, by_id, post_events, running, severe_console_entries, wait_for
from tower.settings import DEFAULT_DATA_DIR

pytestmark = pytest.mark.browser

H = timedelta(hours=1)


def _order(order_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": f"{order_id}-created", "type": "order.created", "occurred_at": at.isoformat(),
            "source": "test", "order_id": order_id,
            "payload": {"flow": "ecommerce", "promised_at": (at + 72 * H).isoformat(), "priority": "normal"}}


def _scan(order_id: str, parcel: str, hub: str, status: str, at: datetime) -> dict[str, Any]:
    return {"event_id": f"{parcel}-{hub}-{status}", "type": "parcel.scanned", "occurred_at": at.isoformat(),
            "source": "carrier", "order_id": order_id,
            "payload": {"parcel_id": parcel, "status": status, "hub_id": hub, "carrier": "sf"}}


def network_events(now: datetime) -> list[dict[str, Any]]:
    start = now - 50 * H
    events = [_order(f"SO-{i}", start) for i in range(1, 6)]
    events.append({"event_id": "SO-1-tracking", "type": "tracking.assigned", "source": "wms",
                   "occurred_at": (now - 31 * H).isoformat(), "order_id": "SO-1",
                   "payload": {"carrier": "sf", "tracking_number": "SF-1", "parcel_id": "P-1"}})
    events += [
        _scan("SO-1", "P-1", "hub-shanghai", "arrived_hub", now - 30 * H),       # stuck
        _scan("SO-2", "P-2", "hub-shanghai", "arrived_hub", now - 10 * H),
        _scan("SO-2", "P-2", "hub-shanghai", "departed_hub", now - 8 * H),
        _scan("SO-2", "P-2", "hub-wuhan", "arrived_hub", now - 5 * H),           # lane, load
        _scan("SO-3", "P-3", "hub-wuhan", "arrived_hub", now - 40 * H),
        _scan("SO-3", "P-3", "hub-wuhan", "departed_hub", now - 3 * H),          # retained
        _scan("SO-4", "P-4", "hub-lhasa", "arrived_hub", now - 2 * H),           # no coordinates
        _scan("SO-5", "P-5", "hub-beijing", "arrived_hub", now - 28 * H),        # stuck
    ]
    return events


@pytest.fixture(scope="module")
def fed_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("data")
    for path in DEFAULT_DATA_DIR.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    text = (folder / "screens.toml").read_text(encoding="utf-8").replace("refresh_s = 5", "refresh_s = 2")
    (folder / "screens.toml").write_text(text, encoding="utf-8")
    db: Path = tmp_path_factory.mktemp("db") / "network.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(folder), "TOWER_STALE_AFTER_S": "86400"}
    port = _free_port()
    with running(env, port):
        base = f"http://127.0.0.1:{port}"
        answer = post_events(base, network_events(datetime.now(UTC)))
        assert answer["rejected"] == [] and answer["accepted"] == 14
        yield base


def graph_types(driver: Any, ident: str) -> list[str] | None:
    types: list[str] | None = driver.execute_script(
        "const g = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return g && g.data ? g.data.map(d => d.type || 'scatter') : null;", f"#{ident}")
    return types


def stuck_rows(driver: Any) -> list[str]:
    # Read in one script: the table is re-rendered under the test's feet.
    rows: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#network-stuck-table tbody tr'), r => r.innerText);")
    return rows


def network_ready(driver: Any) -> bool:
    heat = graph_types(driver, "network-heatmap") or []
    hubs = graph_types(driver, "network-map") or []
    return "heatmap" in heat and len(hubs) >= 3 and len(stuck_rows(driver)) == 2


MODES = {"en": "?lang=en", "zh-CN": "?lang=zh-CN", "kiosk": "?kiosk=1&lang=zh-CN"}


@pytest.mark.parametrize("mode", list(MODES))
def test_network_page_loads_with_data_offline(browser: Any, fed_site: str, mode: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.get(fed_site + "/network" + MODES[mode])
    wait_for(lambda: network_ready(browser), timeout=90, what=f"network page in {mode}")
    rows = stuck_rows(browser)
    assert rows[0].startswith("P-5") and rows[1].startswith("P-1")   # Beijing before Shanghai (by id)
    assert "SO-1" in rows[1]   # the order holding the parcel (its tracking number)
    missing = wait_for(lambda: by_id(browser, "network-no-coords-list"), what="no-coordinates list")
    assert missing.text == "hub-lhasa"
    title = by_id(browser, "network-heatmap-title").text
    map_title = by_id(browser, "network-map-title").text
    if mode == "en":
        assert title.startswith("Transit hubs by hour") and "Beijing" in rows[0]
        assert map_title.startswith("Hub map")
    else:
        assert "热力图" in title and "北京" in rows[0] and "枢纽地图" in map_title
    controls = browser.find_elements("css selector", ".network-controls")
    if mode == "kiosk":
        assert not controls[0].is_displayed()
        html_el = browser.find_element("tag name", "html")
        assert "tower-kiosk" in (html_el.get_attribute("class") or "")
    else:
        assert controls[0].is_displayed()
    # The map is drawn from shipped data: an outline shape and the hub traces, no geo.
    shapes = browser.execute_script(
        "const g = document.querySelector('#network-map .js-plotly-plot');"
        "return g.layout.shapes.length;")
    assert shapes == 1
    assert not {"scattergeo", "scattermap", "scattermapbox"} & set(graph_types(browser, "network-map") or [])
    browser.set_window_size(1280, 1500)
    browser.save_screenshot(str(SHOTS / f"{mode}-network-data.png"))
    assert severe_console_entries(browser) == []
    assert requested_hosts(browser) == {"127.0.0.1"}


def click(driver: Any, element: Any) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def test_measure_window_and_hub_filter_by_click(browser: Any, fed_site: str) -> None:  # noqa: F811
    browser.set_window_size(1280, 1500)
    browser.get(fed_site + "/network?lang=en")
    wait_for(lambda: network_ready(browser), timeout=90, what="network page")
    # Arrivals over the last 48 h: the title follows.
    browser.find_element("xpath", "//div[@id='network-measure']//label[.='Arrivals']").click()
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, "network-window")).select_by_value("48")
    wait_for(lambda: by_id(browser, "network-heatmap-title").text.startswith(
        "Transit hubs by hour — Arrivals, last 48 h"), what="arrivals heatmap title")
    # One hub: only its stuck parcels.
    button = wait_for(lambda: browser.find_elements(
        "xpath", "//div[@id='network-hub-filter']//button[starts-with(., 'Shanghai')]"), what="hub button")
    click(browser, button[0])
    wait_for(lambda: [r[:3] for r in stuck_rows(browser)] == ["P-1"], what="Shanghai only")
    every = wait_for(lambda: browser.find_elements(
        "xpath", "//div[@id='network-hub-filter']//button[starts-with(., 'All hubs')]"), what="all button")
    click(browser, every[0])
    wait_for(lambda: len(stuck_rows(browser)) == 2, what="every hub again")
    browser.save_screenshot(str(SHOTS / "en-network-filtered.png"))
    assert severe_console_entries(browser) == []
    assert requested_hosts(browser) == {"127.0.0.1"}
