"""A real browser (headless Chromium from Debian, driven by Selenium) on the history browser.

Screenshots of each page are kept under the test's temporary directory; with
``SMS_ARCHIVER_SCREENSHOTS=DIR`` the history page's is also written there (``docs/screenshots`` for
the README: ``SMS_ARCHIVER_SCREENSHOTS=docs/screenshots pytest tests/web/test_browser.py``).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import HTML_MESSAGES, SERVICES, Archive, get
from tests.web.test_delete import SERVICE, _deleting

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; CI installs them)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path))
    target = os.environ.get("SMS_ARCHIVER_SCREENSHOTS")
    if target and name == "history":
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / "history.png")
    return path


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no alert() ran


def test_history_filter_one_sms_and_download_in_a_real_browser(
    archive: Archive, web: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(web + "/")
    assert browser.title.startswith("History")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.history tbody tr")
    assert len(rows) == 100
    _shot(browser, tmp_path, "history")

    # Filter by a receiver with the form: the URL holds the filter, every row has it.
    field = browser.find_element(By.NAME, "receiver")
    field.send_keys(archive.receiver)
    browser.find_element(By.ID, "apply").click()
    _wait(lambda: "receiver=" in browser.current_url)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)
    assert query == {"receiver": [archive.receiver]}  # empty fields stay out of the URL (app.js)
    cells = [
        row.find_elements(By.TAG_NAME, "td")[4].text
        for row in browser.find_elements(By.CSS_SELECTOR, "table.history tbody tr")
    ]
    expected = sum(1 for row in archive.truth.values() if row.get("receiver") == archive.receiver)
    assert cells == [archive.receiver] * expected
    _shot(browser, tmp_path, "history-receiver")

    # Download the CSV of the current filters.
    browser.get(web + "/?" + urllib.parse.urlencode({"service": SERVICES[0], "receiver": archive.receiver}))
    link = browser.find_element(By.ID, "download")
    href = link.get_attribute("href")
    link.click()
    downloaded = _wait(lambda: [p for p in browser.downloads.glob("*.csv") if p.stat().st_size])
    assert downloaded[0].read_bytes() == get(href).body

    # An SMS whose message is HTML: shown as text, nothing ran.
    browser.get(web + "/?" + urllib.parse.urlencode({"service": SERVICES[0], "q": "onerror"}))
    _no_alert(browser)
    browser.find_element(By.CSS_SELECTOR, "table.history tbody tr td.date a").click()
    _wait(lambda: "/sms/" in browser.current_url)
    _no_alert(browser)
    shown = browser.find_element(By.ID, "message").text
    assert shown in HTML_MESSAGES[1:]
    assert browser.execute_script("return window.xssRan === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#message img, #message b, main script")
    _shot(browser, tmp_path, "sms")

    browser.get(f"{web}/sms/{SERVICES[0]}/outgoing/{archive.html_ids[0]}")
    _no_alert(browser)
    assert browser.find_element(By.ID, "message").text == HTML_MESSAGES[0]

    browser.get(web + "/overview")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart rect")) > 10
    _shot(browser, tmp_path, "overview")


def test_tick_review_confirm_deletes_at_ovh_in_a_real_browser(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    # The user named by a trusted proxy's header (the browser adds it to every request): the form's POST
    # goes through the CSRF token and the Origin check as a user's click would.
    auth = {"trusted_user_header": "X-Remote-User", "trusted_proxies": ["127.0.0.1/32"]}
    for deleting in _deleting(tmp_path, **auth):
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-Remote-User": "carol"}})
        chosen = deleting.final_ids[-1]
        browser.get(deleting.url + "/")
        browser.find_element(By.CSS_SELECTOR, f'input[type=checkbox][value="{SERVICE}/outgoing/{chosen}"]').click()
        browser.find_element(By.ID, "delete-selected").click()
        _wait(lambda: browser.current_url.endswith("/delete/review"))
        assert browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{chosen}"] td.action').text == "would be deleted"
        assert deleting.emulator.deleted == []
        _shot(browser, tmp_path, "delete-review")
        browser.find_element(By.ID, "confirm-delete").click()
        _wait(lambda: browser.current_url.endswith("/delete/confirm"))
        assert browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{chosen}"] td.action').text == "deleted"
        assert deleting.emulator.deleted == [(SERVICE, "outgoing", chosen)]
        _shot(browser, tmp_path, "delete-result")


def _wait(condition: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.1)
    return value
