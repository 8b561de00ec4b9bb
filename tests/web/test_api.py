"""The JSON API and the CSV download over HTTP, against an archive the real pipeline wrote."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from archiver.records import COLUMNS
from tests.integration.helpers import PARIS, run_cli
from tests.web.conftest import SERVICES, Archive, get, paris_day


def _all(web: str, **params: str) -> list[dict[str, str]]:
    """Every item for the filters, page after page by the cursor (bounded)."""
    items: list[dict[str, str]] = []
    query = dict(params)
    for _page in range(1000):
        answer = get(f"{web}/api/sms?{urllib.parse.urlencode(query)}")
        assert answer.status == 200, answer.text
        body = answer.json()
        items.extend(body["items"])
        if body["next"] is None:
            return items
        query["after"] = body["next"]
    raise AssertionError("paging did not end")


def _key(item: dict[str, str]) -> tuple[str, str, int]:
    return item["service"], item["direction"], int(item["id"])


def _expected(archive: Archive, keep: Any) -> set[tuple[str, str, int]]:
    return {key for key, row in archive.truth.items() if keep(key, row)}


def test_paging_to_the_end_gives_every_sms_once_equal_to_the_api(archive: Archive, web: str) -> None:
    items = _all(web, limit="37")
    keys = [_key(item) for item in items]
    assert len(keys) == len(set(keys)), "an SMS came twice"
    assert set(keys) == set(archive.truth)
    for item in items:
        service, direction, sms_id = _key(item)
        # the contract's CSV columns, with the CSV's own string values, plus service and direction
        assert list(item) == ["service", "direction", *COLUMNS[direction]]
        assert {column: item[column] for column in COLUMNS[direction]} == archive.truth[(service, direction, sms_id)]
    instants = [(dt.datetime.fromisoformat(item["date"]), int(item["id"])) for item in items]
    assert instants == sorted(instants, reverse=True), "newest first"


def test_ascending_order_pages_the_same_sms_the_other_way(archive: Archive, web: str) -> None:
    descending = [_key(item) for item in _all(web, limit="1000")]
    ascending = [_key(item) for item in _all(web, order="asc", limit="29")]
    assert ascending == descending[::-1]


def test_the_newest_version_of_an_sms_archived_twice_is_the_one_listed(archive: Archive, web: str) -> None:
    key = (SERVICES[0], "outgoing", archive.twice)
    listed = [item for item in _all(web, service=SERVICES[0], limit="1000") if _key(item) == key]
    assert len(listed) == 1
    assert listed[0]["ptt"] == "4" and listed[0]["deliveredAt"]


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"service": SERVICES[1]}, lambda key, row: key[0] == SERVICES[1]),
        ({"direction": "incoming"}, lambda key, row: key[1] == "incoming"),
        ({"tag": "promo;vip"}, lambda key, row: row["tag"] == "promo;vip"),
        ({"ptt": "4"}, lambda key, row: row.get("ptt") == "4"),
        (
            {"sender": "DrMartin", "direction": "outgoing"},
            lambda key, row: key[1] == "outgoing" and row["sender"] == "DrMartin",
        ),
        # words, in any case, each present somewhere in the message
        (
            {"q": "VOTRE  colis"},
            lambda key, row: "votre" in row["message"].casefold() and "colis" in row["message"].casefold(),
        ),
        ({"q": "été"}, lambda key, row: "été" in row["message"].casefold()),
    ],
)
def test_filters_give_exactly_the_matching_sms(archive: Archive, web: str, params: dict[str, str], keep: Any) -> None:
    expected = _expected(archive, keep)
    assert expected, "the sample data should hold some"
    assert {_key(item) for item in _all(web, limit="1000", **params)} == expected


def test_receiver_filter(archive: Archive, web: str) -> None:
    expected = _expected(archive, lambda key, row: row.get("receiver") == archive.receiver)
    assert len(expected) >= 2
    assert {_key(item) for item in _all(web, receiver=archive.receiver, limit="1")} == expected


def test_day_range_is_from_inclusive_to_exclusive_in_the_archive_zone(archive: Archive, web: str) -> None:
    days = sorted({paris_day(row) for row in archive.truth.values()})
    since, until = days[len(days) // 3], days[2 * len(days) // 3]
    expected = _expected(archive, lambda key, row: since <= paris_day(row) < until)
    found = {_key(item) for item in _all(web, **{"from": since.isoformat(), "to": until.isoformat(), "limit": "50"})}
    assert found == expected
    # the edge days: SMS of ``since`` in, SMS of ``until`` out
    assert any(paris_day(archive.truth[key]) == since for key in found)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("from=2024-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2024-03-02&to=2024-03-01", "to"),
        ("order=up", "order"),
        ("direction=sideways", "direction"),
        ("ptt=delivered", "ptt"),
        ("after=not-a-cursor", "after"),
        ("after=" + "A" * 40, "after"),
        ("service=sms-nope-1", "service"),
        ("colour=red", "colour"),
        ("q=" + "x" * 300, "q"),
    ],
)
def test_a_bad_parameter_gets_400_naming_it(web: str, query: str, name: str) -> None:
    for path in ("/api/sms", "/export.csv", "/", "/overview"):
        answer = get(f"{web}{path}?{query}")
        assert answer.status == 400, (path, answer.status)
        assert name in answer.text
        if path.startswith("/api/"):
            assert answer.json()["parameter"] == name


def test_unknown_service_direction_or_id_gets_404(archive: Archive, web: str) -> None:
    some = next(iter(archive.truth))
    assert get(f"{web}/api/sms/sms-nope-1/outgoing/{some[2]}").status == 404
    assert get(f"{web}/api/sms/{SERVICES[0]}/sideways/{some[2]}").status == 404
    assert get(f"{web}/api/sms/{SERVICES[0]}/outgoing/1").status == 404
    assert get(f"{web}/api/sms/{SERVICES[0]}/outgoing/abc").status == 400
    assert get(f"{web}/sms/{SERVICES[0]}/outgoing/1").status == 404


def test_one_sms_has_every_archived_version_and_its_part(archive: Archive, web: str) -> None:
    answer = get(f"{web}/api/sms/{SERVICES[0]}/outgoing/{archive.twice}")
    assert answer.status == 200
    body = answer.json()
    versions = body["versions"]
    assert len(versions) == 2
    assert [version["fields"]["ptt"] for version in versions] == [versions[0]["fields"]["ptt"], "4"]
    assert versions[0]["fields"]["ptt"] in ("1", "2", "3")
    assert [version["current"] for version in versions] == [False, True]
    assert versions[0]["archived_at"] < versions[1]["archived_at"]
    for version in versions:
        assert (archive.directory / version["part"]).is_file()
    truth = archive.truth[(SERVICES[0], "outgoing", archive.twice)]
    assert {column: body["item"][column] for column in COLUMNS["outgoing"]} == truth
    assert versions[1]["fields"] == truth


def test_months_api_is_what_months_says(archive: Archive, web: str) -> None:
    result = run_cli("months", "--json", env=archive.env)
    assert result.code == 0, result.stderr
    assert get(f"{web}/api/months").json() == json.loads(result.stdout)


# -- CSV download -------------------------------------------------------------------------------


def _months(archive: Archive) -> list[str]:
    return sorted({paris_day(row).strftime("%Y-%m") for row in archive.truth.values()})


def _month_bounds(month: str) -> dict[str, str]:
    year, number = int(month[:4]), int(month[5:])
    end = dt.date(year + (number == 12), number % 12 + 1, 1)
    return {"from": f"{month}-01", "to": end.isoformat()}


@pytest.mark.parametrize("direction", ["outgoing", "incoming"])
def test_csv_download_of_a_month_is_the_bytes_of_retrieve(archive: Archive, web: str, direction: str) -> None:
    for month in _months(archive):
        expected = _retrieve_bytes(archive, "--month", month, "--service", SERVICES[0], "--direction", direction)
        params = {"service": SERVICES[0], "direction": direction, **_month_bounds(month)}
        answer = get(f"{web}/export.csv?{urllib.parse.urlencode(params)}")
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.body == expected


def test_csv_download_with_filters_and_excel_is_the_bytes_of_retrieve(archive: Archive, web: str) -> None:
    month = _months(archive)[-2]
    expected = _retrieve_bytes(
        archive, "--month", month, "--service", SERVICES[0], "--receiver", archive.receiver, "--excel"
    )
    params = {"service": SERVICES[0], "receiver": archive.receiver, "excel": "1", **_month_bounds(month)}
    answer = get(f"{web}/export.csv?{urllib.parse.urlencode(params)}")
    assert answer.body == expected
    assert answer.body.startswith(b"\xef\xbb\xbf")


def _retrieve_bytes(archive: Archive, *args: str) -> bytes:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "archiver", "retrieve", *args, "-o", "-"],
        env=archive.env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return completed.stdout


def test_csv_download_of_days_and_words_is_retrieves_rows_that_match(archive: Archive, web: str) -> None:
    """Filters retrieve does not have: its month's rows that match, byte for byte, in its order."""
    month = _months(archive)[-2]
    whole = _retrieve_bytes(archive, "--month", month, "--service", SERVICES[0])
    records = list(csv.reader(io.StringIO(whole.decode("utf-8"), newline=""), delimiter=";"))
    header, rows = records[0], records[1:]
    since = dt.date.fromisoformat(f"{month}-10")
    until = dt.date.fromisoformat(f"{month}-20")
    kept = [
        row
        for row in rows
        if since <= dt.datetime.fromisoformat(row[1]).astimezone(PARIS).date() < until and "votre" in row[8].casefold()
    ]
    assert kept
    expected = io.StringIO(newline="")
    csv.writer(expected, delimiter=";", lineterminator="\r\n").writerows([header, *kept])
    params = {"service": SERVICES[0], "from": since.isoformat(), "to": until.isoformat(), "q": "Votre"}
    answer = get(f"{web}/export.csv?{urllib.parse.urlencode(params)}")
    assert answer.status == 200
    assert answer.body == expected.getvalue().encode("utf-8")
    # and every one of those lines is, byte for byte, a line of retrieve's output
    for line in answer.body.split(b"\r\n")[1:]:
        if line and b'"' not in line:
            assert line in whole


def test_csv_download_needs_a_service_when_there_are_several(web: str) -> None:
    answer = get(f"{web}/export.csv")
    assert answer.status == 400
    assert answer.json()["parameter"] == "service"


def test_a_store_that_cannot_be_read_gets_503_and_a_log_line(archive: Archive, tmp_path: Path) -> None:
    import structlog

    from archiver.errors import StorageError
    from archiver.store import open_store
    from archiver.web.serve import WebServer, build_context
    from tests.integration.helpers import StoreWrapper
    from tests.web.conftest import web_settings

    class Unreachable(StoreWrapper):
        def list(self, prefix: str) -> Any:
            raise StorageError("the S3 endpoint does not answer (injected)")

    settings = web_settings(archive.directory, tmp_path / "cache")
    store = Unreachable(open_store(settings.storage))
    server = WebServer(build_context(settings, store, min_refresh_seconds=0), "127.0.0.1", 0).start()  # type: ignore[arg-type]
    try:
        with structlog.testing.capture_logs() as logs:
            answer = get(server.url + "api/sms")
        assert answer.status == 503
        assert "does not answer" in answer.text
        assert answer.headers["content-security-policy"]
        assert [line["status"] for line in logs if line["event"] == "web_request"] == [503]
    finally:
        server.stop()
