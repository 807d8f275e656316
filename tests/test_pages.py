"""Pages in headless Chromium: the app renders, updates, and fetches nothing from outside."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import IN_CI
from tests.test_cli import env, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        message = "chromium/chromedriver not installed (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(message + " (CI=true: browser tests must not skip)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,800")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)
    driver.set_page_load_timeout(90)  # a shared, loaded machine can be slow
    try:
        yield driver
    finally:
        driver.quit()


def requested_hosts(driver: Any) -> set[str]:
    hosts = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith("http"):
                hosts.add(urlparse(url).hostname or "")
    return hosts


def test_home_page_renders_and_stays_offline(browser: Any, server: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.title == "Order Tower"
    deadline = time.monotonic() + 20
    status = ""
    while time.monotonic() < deadline:
        found = browser.find_elements(By.ID, "shell-freshness")
        status = found[0].text if found else ""
        if status and status != "…":
            break
        time.sleep(0.3)
    assert status == "no events yet" or status.startswith("updated")
    assert requested_hosts(browser) == {"127.0.0.1"}
