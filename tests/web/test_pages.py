"""The pages over HTTP, and ``sms-archiver web`` as a user starts it."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import urllib.parse

from tests.web.conftest import SERVICES, Archive, get


def _rows(page: str) -> list[str]:
    """The SMS links of a history page, in order."""
    return re.findall(r'<td class="date"><a href="(/sms/[^"]+)"', page)


def test_history_pages_newest_first_and_the_date_header_flips_the_order(archive: Archive, web: str) -> None:
    first = get(f"{web}/?limit=20").text
    links = _rows(first)
    assert len(links) == 20
    flip = re.search(r'id="sort-date" href="([^"]+)"', first)
    assert flip is not None
    oldest = get(web + html.unescape(flip[1])).text
    back = re.search(r'id="sort-date" href="([^"]+)"', oldest)
    assert back is not None and "order=asc" not in html.unescape(back[1])
    assert set(_rows(oldest)).isdisjoint(links)  # 20 oldest of 480, not the newest
    # Next page by the cursor, to the end: every SMS once.
    seen: list[str] = []
    url = f"{web}/?limit=100"
    for _page in range(20):
        page = get(url).text
        seen.extend(_rows(page))
        following = re.search(r'id="next" href="([^"]+)"', page)
        if following is None:
            break
        url = web + html.unescape(following[1])
    assert len(seen) == len(set(seen)) == len(archive.truth)


def test_history_shows_zone_status_description_and_filters_in_links(archive: Archive, web: str) -> None:
    query = urllib.parse.urlencode({"service": SERVICES[0], "receiver": archive.receiver, "limit": "5"})
    page = get(f"{web}/?{query}").text
    assert "Date (Europe/Paris)" in page
    assert "Delivered" in page or "Success" in page or "retrying" in page or "Accepted" in page
    download = re.search(r'id="download" href="([^"]+)"', page)
    assert download is not None
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(html.unescape(download[1])).query)
    assert params == {"service": [SERVICES[0]], "receiver": [archive.receiver]}
    # the form holds the filters (bookmarkable: the same parameters as the API)
    assert f'name="receiver" value="{archive.receiver}"' in page


def test_one_sms_page_shows_every_version(archive: Archive, web: str) -> None:
    page = get(f"{web}/sms/{SERVICES[0]}/outgoing/{archive.twice}").text
    versions = page.split("<h2>Archived versions</h2>")[1]
    assert versions.count("<tr>") == 1 + 2  # the header row and two versions
    assert "current" in versions and "Delivered" in versions


def test_overview_draws_months_and_days_and_lists_the_months(archive: Archive, web: str) -> None:
    page = get(f"{web}/overview?service={SERVICES[0]}").text
    assert page.count("<svg") == 2
    total = sum(1 for key in archive.truth if key[0] == SERVICES[0])
    assert f"{total} SMS for these filters" in page
    titles = re.findall(r"<title>(\d{4}-\d{2}): (\d+) (\w+)</title>", page)
    assert sum(int(count) for _month, count, _state in titles) == total
    assert {state for _m, _c, state in titles} <= {"delivered", "failed", "pending", "received"}
    assert "received" in {state for _m, _c, state in titles}
    assert page.count("<tr><td>sms-web00001-1</td>") >= 2  # months table rows


def test_the_web_command_prints_its_url_and_serves(archive: Archive) -> None:
    env = {**archive.env, "SMS_ARCHIVER_WEB__CACHE_DIR": str(archive.directory.parent / "cli-cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "archiver", "web", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded by the test timeout; the command prints it first
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        answer = get(match[1] + "api/sms?limit=3")
        assert answer.status == 200 and len(answer.json()["items"]) == 3
        process.terminate()  # SIGTERM, as systemd or docker stop sends: a clean stop
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
