"""The emergency room in headless Chromium, served by a real `tower serve` on a seeded store:
acknowledge and resolve by clicking, the keyboard, countdowns that tick, and the page in
English, Chinese and kiosk mode without console errors or outside requests.

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
from tests.test_pages import browser, requested_hosts  # noqa: F401  (fixture)
from tests.test_pages_shell import SHOTS, by_id, data_dir, running, severe_console_entries, wait_for  # noqa: F401
from tower.exceptions import store
from tower.exceptions.policy import load_policy
from tower.exceptions.store import Trigger
from tower.store.engine import make_engine, upgrade

pytestmark = pytest.mark.browser

SEEDER = "dispatcher"  # not "system": the rule scans of the served tower leave these alone
PAGE = "/emergency-room"


def _trigger(scope: str, title: str, *, tier: str = "L2", high: bool = False) -> Trigger:
    return Trigger(rule="manual", scope_key=scope, tier=tier, team="logistics", title=title,
                   condition_since=datetime.now(UTC) - timedelta(hours=1), high_priority=high)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A served tower whose store holds a few escalated exceptions; their ids by role."""
    url = f"sqlite:///{tmp_path_factory.mktemp('er') / 'er.db'}"
    upgrade(url)
    engine = make_engine(url)
    policy = load_policy(data_dir / "rules.toml")
    now = datetime.now(UTC)
    ids: dict[str, Any] = {}
    with engine.begin() as conn:
        for role, title, tier, high in (("ack", "Parcel lost at hub SH-2", "L2", False),
                                        ("resolve", "Carrier missed the pick-up", "L2", False),
                                        ("keys", "Cold chain excursion on SO-77", "L3", True),
                                        ("tick", "Stock-out at the east warehouse", "L2", False)):
            ids[role] = store.raise_or_bump(conn, _trigger(f"test:{role}", title, tier=tier, high=high),
                                            now=now, policy=policy, raised_by=SEEDER).id
        late = store.raise_or_bump(conn, _trigger("test:late", "Customs hold on SO-12"),
                                   now=now - timedelta(hours=3), policy=policy, raised_by=SEEDER).id
        store.acknowledge(conn, late, actor=SEEDER, now=now - timedelta(hours=3))
        store.comment(conn, late, note="broker called", step="customs broker called", next_update_h=1,
                      actor=SEEDER, now=now - timedelta(hours=3))
        ids["late"] = late
    env = {"DATABASE_URL": url, "REDIS_URL": "", "TOWER_API_TOKEN": "", "TOWER_DATA_DIR": str(data_dir),
           "TOWER_STALE_AFTER_S": "3600"}
    port = _free_port()
    with running(env, port):
        yield {"base": f"http://127.0.0.1:{port}", "engine": engine, "ids": ids}
    engine.dispose()


def status_of(seeded: dict[str, Any], ex_id: str) -> Any:
    with seeded["engine"].connect() as conn:
        return store.get_exception(conn, ex_id)


def last_entry(seeded: dict[str, Any], ex_id: str) -> dict[str, Any]:
    with seeded["engine"].connect() as conn:
        return store.timeline(conn, ex_id)[-1]


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def row(driver: Any, ex_id: str) -> Any:
    found = css(driver, f'#emergency-room-queue .er-row[data-er-ex="{ex_id}"]')
    return found[0] if found else None


def row_attr(driver: Any, ex_id: str, name: str) -> str | None:
    """An attribute of a row, read in one go (rows are redrawn when they change)."""
    value = driver.execute_script(
        "var r = document.querySelector("
        "'#emergency-room-queue .er-row[data-er-ex=\"' + arguments[0] + '\"]');"
        "return r ? (arguments[1] === 'text' ? r.innerText : r.getAttribute(arguments[1])) : null;",
        ex_id, name)
    return None if value is None else str(value)


def focused_ex(driver: Any) -> str | None:
    value = driver.execute_script("var a = document.activeElement; return a && a.getAttribute('data-er-ex');")
    return None if value is None else str(value)


def queue_ready(driver: Any) -> bool:
    fresh = by_id(driver, "shell-freshness")
    return bool(css(driver, "#emergency-room-queue .er-row") and fresh is not None
                and fresh.text not in ("", "…"))


def open_page(driver: Any, base: str, query: str = "?lang=en") -> None:
    driver.get(base + PAGE + query)
    wait_for(lambda: queue_ready(driver), timeout=90, what="the emergency room queue")


def countdown_text(driver: Any, ex_id: str) -> str:
    value = driver.execute_script(
        "var c = document.querySelector('.er-row[data-er-ex=\"' + arguments[0] + '\"] .er-countdown');"
        "return c ? c.innerText : '';", ex_id)
    return str(value or "")


def test_acknowledge_and_resolve_by_clicking(browser: Any, seeded: dict[str, Any]) -> None:  # noqa: F811
    from selenium.webdriver.support.ui import Select

    ack_id, resolve_id = seeded["ids"]["ack"], seeded["ids"]["resolve"]
    open_page(browser, seeded["base"])
    # Acting as: kept in the browser, recorded in the timeline.
    actor = by_id(browser, "emergency-room-actor-input")
    actor.clear()
    actor.send_keys("alice")
    wait_for(lambda: browser.execute_script(
        "return window.localStorage.getItem('emergency-room-actor')") == '"alice"', what="actor stored")

    # Ack: one click.
    css(browser, f'[data-er-action="ack"][data-er-ex="{ack_id}"]')[0].click()
    wait_for(lambda: status_of(seeded, ack_id)["status"] == "acknowledged", what="acknowledged in the DB")
    assert last_entry(seeded, ack_id)["actor"] == "alice"
    wait_for(lambda: row_attr(browser, ack_id, "data-er-status") == "acknowledged"
             and not css(browser, f'[data-er-action="ack"][data-er-ex="{ack_id}"]'),
             what="acknowledged on the page")
    assert "acknowledged" in (row_attr(browser, ack_id, "text") or "")
    assert "Acknowledged: Parcel lost at hub SH-2" in by_id(browser, "emergency-room-feedback").text

    # Resolve: the form, a root cause, and the exception leaves the queue.
    css(browser, f'[data-er-action="resolve"][data-er-ex="{resolve_id}"]')[0].click()
    wait_for(lambda: css(browser, ".modal.show select"), what="the resolve form")
    Select(css(browser, ".modal.show select")[0]).select_by_value("carrier_delay")
    css(browser, ".modal.show textarea")[0].send_keys("truck did not come")
    css(browser, ".modal.show input[type=text]")[0].send_keys("driver off sick")
    browser.save_screenshot(str(SHOTS / "emergency-room-resolve-form.png"))
    by_id(browser, "emergency-room-submit").click()
    wait_for(lambda: status_of(seeded, resolve_id)["status"] == "resolved", what="resolved in the DB")
    cause = status_of(seeded, resolve_id)["root_cause"]
    assert cause["cause"] == "carrier_delay" and cause["note"] == "truck did not come"
    assert cause["whys"] == ["driver off sick"]
    wait_for(lambda: row(browser, resolve_id) is None and not css(browser, ".modal.show"),
             what="gone from the queue, form closed")
    assert severe_console_entries(browser) == []


def test_countdowns_tick_and_the_late_update_is_red(browser: Any, seeded: dict[str, Any]) -> None:  # noqa: F811
    tick_id, late_id = seeded["ids"]["tick"], seeded["ids"]["late"]
    open_page(browser, seeded["base"])
    first = wait_for(lambda: countdown_text(browser, tick_id), what="a countdown")
    assert first.endswith(" left")
    later = wait_for(lambda: (lambda now: now != first and now)(countdown_text(browser, tick_id)),
                     timeout=20, what="the countdown to move")
    assert later.endswith(" left") and later != first
    late = wait_for(lambda: countdown_text(browser, late_id), what="the late update")
    assert late.startswith("update late")
    assert css(browser, f'.er-row[data-er-ex="{late_id}"] .er-countdown[data-er-late="1"]')
    assert "customs broker called" in (row_attr(browser, late_id, "text") or "")


def test_keyboard_moves_acknowledges_and_opens_the_detail(browser: Any,  # noqa: F811
                                                         seeded: dict[str, Any]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    keys_id = seeded["ids"]["keys"]
    open_page(browser, seeded["base"])
    keys = ActionChains(browser)
    browser.execute_script("document.activeElement && document.activeElement.blur();")
    keys.send_keys("j").perform()  # the first row: the L3 comes first
    wait_for(lambda: focused_ex(browser) == keys_id, what="the L3 row focused")
    keys.send_keys("a").perform()
    wait_for(lambda: status_of(seeded, keys_id)["status"] == "acknowledged", what="acknowledged by key")
    wait_for(lambda: row_attr(browser, keys_id, "data-er-status") == "acknowledged"
             and focused_ex(browser) == keys_id, what="the row re-drawn, still focused")
    keys.send_keys(Keys.ENTER).perform()
    wait_for(lambda: by_id(browser, "emergency-room-detail-title") is not None
             and by_id(browser, "emergency-room-detail-title").text == "Cold chain excursion on SO-77",
             what="the detail panel")
    detail = by_id(browser, "emergency-room-detail").text
    assert "Timeline" in detail and "acknowledged" in detail and SEEDER in detail
    browser.save_screenshot(str(SHOTS / "emergency-room-detail.png"))
    keys.send_keys(Keys.ESCAPE).perform()
    wait_for(lambda: by_id(browser, "emergency-room-detail-title") is None, what="detail closed")
    assert severe_console_entries(browser) == []


MODES = {"en": "?lang=en", "zh-CN": "?lang=zh-CN&theme=dark", "kiosk": "?kiosk=1&lang=zh-CN"}


@pytest.mark.parametrize("mode", list(MODES))
def test_loads_clean_and_offline(browser: Any, seeded: dict[str, Any], mode: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    open_page(browser, seeded["base"], MODES[mode])
    time.sleep(1.5)  # a countdown tick and a refresh, so their errors would show
    summary = by_id(browser, "emergency-room-summary").text
    if mode == "en":
        assert "in the queue" in summary and css(browser, '[data-er-action="resolve"]')
        assert "Keys:" in by_id(browser, "emergency-room-keys").text
    else:
        assert "队列中" in summary
        assert "剩余" in browser.page_source or "已确认" in browser.page_source
    if mode == "kiosk":
        assert not css(browser, "#emergency-room-queue [data-er-action]")
        assert not by_id(browser, "emergency-room-raise").is_displayed()
        html_el = browser.find_element("tag name", "html")
        assert "tower-kiosk" in (html_el.get_attribute("class") or "")
    browser.save_screenshot(str(SHOTS / f"{mode}-emergency-room.png"))
    assert severe_console_entries(browser) == [], mode
    assert requested_hosts(browser) == {"127.0.0.1"}
