"""Every screen in headless Chromium: loads clean in English, Chinese and kiosk mode,
fetches nothing from outside, keeps its view across navigation and rotation, and tells
the truth about freshness (the STALE banner comes and goes with the feed and the server).

Screenshots of each page go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers import free_port as _free_port
from tests.servers import running
from tests.test_pages import browser, requested_hosts  # noqa: F401  (fixture)
from tower.settings import DEFAULT_DATA_DIR, ROOT
from widgets.view import PAGE_PATHS

pytestmark = pytest.mark.browser

SHOTS = ROOT / "artifacts" / "screenshots"
REFRESH_S = 1
UNREACHABLE_S = 3
STALE_S = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped configuration with a fast page timer, for tests that wait on it."""
    folder = tmp_path_factory.mktemp("data")
    for path in DEFAULT_DATA_DIR.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    text = (folder / "screens.toml").read_text(encoding="utf-8")
    text = text.replace("refresh_s = 5", f"refresh_s = {REFRESH_S}")
    text = text.replace("unreachable_after_s = 15", f"unreachable_after_s = {UNREACHABLE_S}")
    (folder / "screens.toml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `tower serve` on an empty store, with a short stale limit; (url, env)."""
    db = tmp_path_factory.mktemp("db") / "pages.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(data_dir), "TOWER_STALE_AFTER_S": str(STALE_S)}
    port = _free_port()
    with running(env, port):
        yield f"http://127.0.0.1:{port}", env


# Generous: the CI machine is shared, and a page under load can take seconds to paint.
def wait_for(check: Callable[[], Any], timeout: float = 40, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def by_id(driver: Any, ident: str) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, ident)
    return found[0] if found else None


def severe_console_entries(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def text_of(driver: Any, ident: str) -> str:
    """The element's text, or "" while it is not (or no longer) on the page."""
    from selenium.common.exceptions import StaleElementReferenceException

    element = by_id(driver, ident)
    try:
        return str(element.text) if element is not None else ""
    except StaleElementReferenceException:  # redrawn between finding and reading
        return ""


def page_ready(driver: Any, name: str) -> bool:
    """The page's own content has rendered and the freshness line has an answer."""
    from selenium.webdriver.common.by import By

    # Every page's components carry its page-prefixed ids (widgets/ids.py); the overview
    # is ready when its tiles are there.
    if name == "overview":
        marker = by_id(driver, "overview-kpi-in_flight")
    else:
        found = driver.find_elements(By.CSS_SELECTOR, f"#_pages_content [id^='{name}-']")
        marker = found[0] if found else None
    fresh = by_id(driver, "shell-freshness")
    return bool(marker is not None and fresh is not None and fresh.text not in ("", "…"))


def stale_banner_up(driver: Any) -> bool:
    banner = by_id(driver, "shell-stale")
    return bool(banner is not None and banner.is_displayed())


def post_events(base: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    req = urllib.request.Request(base + "/api/v1/events", data=orjson.dumps(events),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = orjson.loads(resp.read())
    return answer


def order_created(order_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": f"{order_id}-created-{at.timestamp()}", "type": "order.created",
            "occurred_at": at.isoformat(), "source": "test", "order_id": order_id,
            "payload": {"flow": "ecommerce", "promised_at": (at + timedelta(days=2)).isoformat(),
                        "priority": "normal"}}


MODES = {
    "en": "?lang=en",
    "zh-CN": "?lang=zh-CN",
    "kiosk": "?kiosk=1&lang=zh-CN",
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_page_loads_clean_and_offline(browser: Any, site: tuple[str, dict[str, str]],  # noqa: F811
                                            mode: str) -> None:
    base, _ = site
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGE_PATHS.items():
        browser.get(base + path + MODES[mode])
        wait_for(lambda n=name: page_ready(browser, n), what=f"{name} in {mode}")
        assert browser.title == "Order Tower"
        html_el = browser.find_element("tag name", "html")
        if mode == "kiosk":
            assert "tower-kiosk" in (html_el.get_attribute("class") or "")
            assert html_el.get_attribute("data-bs-theme") == "dark"
            nav = by_id(browser, "shell-nav")
            assert nav is None or not nav.is_displayed()
            assert by_id(browser, "shell-freshness").is_displayed()
        else:
            link = wait_for(lambda n=name: by_id(browser, f"shell-link-{n}"), what="nav link")
            expected = {"en": "Overview", "zh-CN": "总览"}[mode]
            assert by_id(browser, "shell-link-overview").text == expected
            assert "active" in (link.get_attribute("class") or "")
            assert html_el.get_attribute("lang") == mode
        if mode != "en":
            assert "更新" in browser.page_source or "尚无事件" in browser.page_source
        browser.save_screenshot(str(SHOTS / f"{mode}-{name}.png"))
        errors = severe_console_entries(browser)
        assert errors == [], f"{name} ({mode}): {errors}"
    assert requested_hosts(browser) == {"127.0.0.1"}


def test_navigation_and_language_switch_keep_the_view(browser: Any,  # noqa: F811
                                                       site: tuple[str, dict[str, str]]) -> None:
    base, _ = site
    browser.get(base + "/?lang=zh-CN&theme=dark")
    wait_for(lambda: page_ready(browser, "overview"), what="overview")
    wait_for(lambda: by_id(browser, "shell-link-network"), what="nav").click()
    wait_for(lambda: page_ready(browser, "network"), what="network page")
    assert browser.current_url.endswith("/network?lang=zh-CN&theme=dark")
    wait_for(lambda: text_of(browser, "network-heatmap-title").startswith("中转枢纽"), what="Chinese page")
    by_id(browser, "shell-lang-en").click()
    wait_for(lambda: (by_id(browser, "shell-link-overview") or by_id(browser, "shell-nav")).text
             .startswith("Overview") if by_id(browser, "shell-link-overview") else False,
             what="English navigation")
    assert "lang=en" in browser.current_url and "/network" in browser.current_url
    wait_for(lambda: text_of(browser, "network-heatmap-title").startswith("Transit hubs"),
             what="English page")
    html_el = browser.find_element("tag name", "html")
    assert html_el.get_attribute("data-bs-theme") == "dark"
    assert severe_console_entries(browser) == []


def test_wall_screen_rotates_through_the_chosen_pages(browser: Any,  # noqa: F811
                                                        site: tuple[str, dict[str, str]]) -> None:
    base, _ = site
    browser.get(base + "/?kiosk=1&rotate=10&pages=overview,emergency-room")
    wait_for(lambda: page_ready(browser, "overview"), what="overview")
    wait_for(lambda: "/emergency-room?" in browser.current_url, timeout=30, what="rotation")
    assert "kiosk=1" in browser.current_url and "rotate=10" in browser.current_url
    wait_for(lambda: page_ready(browser, "emergency-room"), what="emergency room")
    wait_for(lambda: browser.current_url.split("?")[0].endswith(":" + base.rsplit(":", 1)[1] + "/"),
             timeout=30, what="back to the overview")
    assert severe_console_entries(browser) == []


def test_stale_banner_follows_the_feed(browser: Any, site: tuple[str, dict[str, str]]) -> None:  # noqa: F811
    base, _ = site
    banner_up = lambda: stale_banner_up(browser)  # noqa: E731
    browser.get(base + "/")
    wait_for(lambda: page_ready(browser, "overview"), what="overview")
    post_events(base, [order_created("fresh-1", datetime.now(UTC))])
    wait_for(lambda: not banner_up(), what="banner gone after an event")
    assert by_id(browser, "shell-freshness").text.startswith("updated")
    # The feed stops: after STALE_S seconds without events the banner comes up.
    text = wait_for(lambda: banner_up() and by_id(browser, "shell-stale").text, timeout=STALE_S + 30,
                    what="stale banner")
    assert text.startswith("STALE")
    # The feed resumes: the banner goes by itself.
    post_events(base, [order_created("fresh-2", datetime.now(UTC))])
    wait_for(lambda: not banner_up(), what="banner gone after the feed resumed")


def test_stale_banner_when_the_server_is_unreachable(browser: Any, data_dir: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'restart.db'}", "REDIS_URL": "", "TOWER_API_TOKEN": "",
           "TOWER_DATA_DIR": str(data_dir), "TOWER_STALE_AFTER_S": "3600"}
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    banner_up = lambda: stale_banner_up(browser)  # noqa: E731
    with running(env, port):
        post_events(base, [order_created("live-1", datetime.now(UTC))])
        browser.get(base + "/orders")
        wait_for(lambda: page_ready(browser, "orders"), what="orders page")
        wait_for(lambda: not banner_up(), what="fresh page")
    # Server down: the browser raises the banner itself.
    text = wait_for(lambda: banner_up() and by_id(browser, "shell-stale").text,
                    timeout=UNREACHABLE_S + 30, what="unreachable banner")
    assert "server" in text
    # Server back (a restart on the same port and store): the banner goes by itself.
    with running(env, port):
        wait_for(lambda: not banner_up(), timeout=40, what="banner gone after restart")


def test_overview_shows_orders_funnel_and_exception_ticker(browser: Any,  # noqa: F811
                                                           site: tuple[str, dict[str, str]]) -> None:
    from sqlalchemy import insert

    from tests.test_overview_store import _exception
    from tower.store.engine import make_engine
    from tower.store.tables import ExceptionRow

    base, env = site
    now = datetime.now(UTC)
    answer = post_events(base, [
        order_created("shown-1", now - timedelta(minutes=3)),
        {"event_id": "shown-1-picking", "type": "stage.entered", "occurred_at": now.isoformat(),
         "source": "test", "order_id": "shown-1", "payload": {"stage": "picking"}},
    ])
    assert answer["accepted"] == 2
    engine = make_engine(env["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(insert(ExceptionRow), [
            {**_exception("page-e1", tier="L2", status="triggered", opened=now,
                          respond_by=now + timedelta(minutes=25)), "title": "Parcel lost at HUB-SH"}])
    engine.dispose()
    browser.get(base + "/?lang=en")
    wait_for(lambda: page_ready(browser, "overview"), what="overview")
    wait_for(lambda: [*text_of(browser, "overview-kpi-in_flight").split("\n"), "", ""][1] not in ("", "0"),
             what="an order in flight")
    ticker = wait_for(lambda: "Parcel lost at HUB-SH" in text_of(browser, "overview-ticker")
                      and text_of(browser, "overview-ticker"), what="ticker")
    assert "L2" in ticker and "triggered" in ticker
    urgent = text_of(browser, "overview-kpi-urgent")
    assert "in 2" in urgent and "Parcel lost" in urgent
    wait_for(lambda: "L2 1" in text_of(browser, "overview-kpi-open_exceptions"), what="exceptions tile")
    wait_for(lambda: browser.find_elements("css selector", ".tower-funnel g.trace path"), what="funnel bars")
    browser.save_screenshot(str(SHOTS / "data-overview.png"))
    assert severe_console_entries(browser) == []
