"""Bad input: any message text round-trips byte for byte, and every malformed setting gets one clear message.

Part 1 (property-based, hypothesis): records with generated text (any Unicode scalar value, NUL,
lone ``\\r``, ``\\r\\n``, U+2028, a leading BOM, RTL marks, combining characters, ZWJ emoji, quotes,
delimiters, formula starts, kilobytes of it) go through the real pipeline: the OVH emulator over
HTTP, ``run_archive`` into a fresh directory, ``retrieve`` back out; every field must come back
equal, and its CSV encoding must be in the output bytes as is. A record the API sends with a lone
surrogate is reported as malformed and skipped, never half-written.

Part 2 (a table): each malformed setting, wherever it is written (environment, TOML file, secret
file), makes ``sms-archiver archive`` (or ``run``) exit 2 with a short message naming the setting as
its environment variable, and never a traceback.
"""

from __future__ import annotations

import concurrent.futures
import csv
import datetime as dt
import gzip
import io
import itertools
import logging
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from archiver.actions.archive import run_archive
from archiver.actions.retrieve import OutputFormat, month_range, run_retrieve
from archiver.actions.verify import run_verify
from archiver.cli import main
from archiver.config import ArchiveSettings, Settings, load_settings
from archiver.emulator import EmulatorServer
from archiver.reader import archived_months, iter_records, list_parts
from archiver.records import COLUMNS
from archiver.source import OvhSource
from archiver.store import LocalStore
from archiver.store.state import load_state
from tests.integration.helpers import (
    CREDENTIALS,
    SERVICE,
    api_truth,
    cli_env,
    local_storage_env,
    make_emulator,
    run_cli,
)

# ================================================================================================
# Part 1: message text round-trips through archive and retrieve
# ================================================================================================

_IDS = itertools.count(40_000_000_000, 7)
_SERVICES = itertools.count(1)

# Pieces a generic text strategy rarely produces on its own.
SPECIALS = (
    "\x00",
    "\r",
    "\n",
    "\r\n",
    "\n\r",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "\x0c",
    "\x1e",
    "\ufeff",
    "\u200e",  # LRM
    "\u200f",  # RLM
    "\u202e",  # RLO
    "\u2066",  # LRI
    "e\u0301",  # e + combining acute
    "\u0301\u0302\u0303",  # combining marks with no base
    "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family, ZWJ sequence
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\U0001f1eb\U0001f1f7",  # regional indicators FR
    "שלום",
    "مرحبا",
    '"',
    '""',
    ";",
    ",",
    "\t",
    "|",
    "'",
    "\\",
    " ",
    "=",
    "+",
    "-",
    "@",
    '=HYPERLINK("http://example.invalid","x")',
    "+33 6 12 34 56 78",
    "-1+2",
    "@SUM(A1:A2)",
    "\U0010ffff",
    "\ufffe",
    "\uffff",
    "\x7f",
    "\ud7ff",
    "\ue000",
)

# Every Unicode scalar value (surrogates excluded: JSON in UTF-8 cannot carry a lone one).
_ANY_CHAR = st.characters(exclude_categories=["Cs"])
_PIECE = st.one_of(st.text(alphabet=_ANY_CHAR, max_size=24), st.sampled_from(SPECIALS))
_SHORT = st.lists(_PIECE, max_size=8).map("".join)
_LONG = st.builds(
    lambda seed, size: (seed * (size // len(seed) + 1))[:size],
    st.lists(_PIECE, min_size=1, max_size=5).map(lambda text: "".join(text) or "x"),
    st.integers(1_000, 6_000),
)
MESSAGES = st.one_of(_SHORT, _SHORT, _SHORT, _LONG, st.sampled_from(SPECIALS))
SHORT_TEXT = st.one_of(st.text(alphabet=_ANY_CHAR, max_size=20), st.sampled_from(SPECIALS))
TAGS = st.one_of(st.none(), SHORT_TEXT)
# Any delimiter the settings accept (no letter or digit), biased to the usual ones.
DELIMITERS = st.one_of(
    st.sampled_from([";", ";", ",", "\t", "|"]),
    # (letters and digits are refused: they could occur in the header, where readers find the delimiter)
    st.characters(
        exclude_categories=["Cs", "Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No"], exclude_characters='"\r\n'
    ),
)
# Creation times: 2 h to 60 h ago, inside the lookback, so the second cycle lists the first's records too.
AGES = st.integers(2 * 3600, 60 * 3600)


@dataclass(frozen=True)
class Sms:
    message: str
    sender: str
    tag: str | None
    age_seconds: int
    receiver: str = "+33600000000"


@dataclass(frozen=True)
class Case:
    outgoing: list[Sms]
    incoming: list[Sms]
    delimiter: str = ";"
    gzip_parts: bool = False
    gzip_output: bool = False
    split: int = 0  # records before this index are archived by a first cycle, the rest by a second


OUTGOING_SMS = st.builds(Sms, MESSAGES, SHORT_TEXT, TAGS, AGES, SHORT_TEXT)
INCOMING_SMS = st.builds(Sms, MESSAGES, SHORT_TEXT, TAGS, AGES)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    outgoing = draw(st.lists(OUTGOING_SMS, min_size=1, max_size=4))
    incoming = draw(st.lists(INCOMING_SMS, max_size=2))
    return Case(
        outgoing,
        incoming,
        delimiter=draw(DELIMITERS),
        gzip_parts=draw(st.booleans()),
        gzip_output=draw(st.booleans()),
        split=draw(st.integers(0, len(outgoing))),
    )


def api_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def outgoing_json(sms_id: int, sms: Sms, now: dt.datetime) -> dict[str, Any]:
    created = now - dt.timedelta(seconds=sms.age_seconds)
    return {
        "id": sms_id,
        "creationDatetime": api_time(created),
        "sentAt": api_time(created + dt.timedelta(seconds=3)),
        "deliveredAt": api_time(created + dt.timedelta(seconds=9)),
        "sender": sms.sender,
        "receiver": sms.receiver,
        "message": sms.message,
        "messageLength": len(sms.message),
        "numberOfSms": 1 + len(sms.message) // 160,
        "credits": 1.0,
        "ptt": 4,
        "deliveryReceipt": 1,
        "differedDelivery": 0,
        "tag": sms.tag,
        "tariffCode": "FR",
        "batchID": None,
        "messageID": None,
    }


def incoming_json(sms_id: int, sms: Sms, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": sms_id,
        "creationDatetime": api_time(now - dt.timedelta(seconds=sms.age_seconds)),
        "credits": 0.0,
        "message": sms.message,
        "sender": sms.sender,
        "tag": sms.tag,
    }


def csv_field(value: str, delimiter: str) -> bytes:
    """How the archive's dialect writes a non-empty ``value`` as a field (quoted or not, quotes doubled)."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([value])
    return text.getvalue().removesuffix("\r\n").encode("utf-8")


def parse_csv(data: bytes, delimiter: str) -> list[list[str]]:
    text = data.decode("utf-8")  # strict: invalid UTF-8 fails here
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True))


@dataclass
class RoundTrip:
    emulator: EmulatorServer
    settings: Settings
    source: OvhSource


@pytest.fixture(scope="module")
def roundtrip() -> Iterator[RoundTrip]:
    """One emulator (no data: each example adds its own service) and one OVH source for the module."""
    with EmulatorServer(**CREDENTIALS) as emulator:
        env = cli_env(emulator, {"SMS_ARCHIVER_STORAGE__URL": "file:///nonexistent-sms-archiver-roundtrip"})
        with pytest.MonkeyPatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("SMS_ARCHIVER_")]:
                patch.delenv(key)
            for key, value in env.items():
                if key.startswith("SMS_ARCHIVER_"):
                    patch.setenv(key, value)
            base = load_settings()
        source = OvhSource(base.ovh)
        try:
            yield RoundTrip(emulator, base, source)
        finally:
            source.close()


def settings_for(base: Settings, service: str, **archive: Any) -> Settings:
    """The module's settings for one service, with archive settings validated as a user's would be."""
    return base.model_copy(
        update={
            "ovh": base.ovh.model_copy(update={"services": [service]}),
            "archive": ArchiveSettings.model_validate(archive),
        }
    )


def months_of(ages: list[int], now: dt.datetime) -> list[tuple[int, int]]:
    moments = [(now - dt.timedelta(seconds=age)).astimezone(dt.UTC) for age in ages]
    return month_range(
        (min(moments).year, min(moments).month) if moments else (now.year, now.month),
        (max(moments).year, max(moments).month) if moments else (now.year, now.month),
    )


def retrieve_bytes(
    store: LocalStore, service: str, direction: str, months: list[tuple[int, int]], fmt: OutputFormat
) -> bytes:
    output = io.BytesIO()
    run_retrieve(store, service, direction, months, output, fmt)  # type: ignore[arg-type]
    data = output.getvalue()
    return gzip.decompress(data) if fmt.gzip else data


def check_output(data: bytes, direction: str, expected: Mapping[int, dict[str, str | None]], delimiter: str) -> None:
    assert not data.startswith(b"\xef\xbb\xbf"), "a BOM without --excel"
    rows = parse_csv(data, delimiter)
    columns = COLUMNS[direction]
    assert tuple(rows[0]) == columns
    got = {int(row[0]): dict(zip(columns, row, strict=True)) for row in rows[1:]}
    assert sorted(got) == sorted(expected), "rows lost or doubled"
    for sms_id, fields in expected.items():
        for column, value in fields.items():
            original = "" if value is None else value
            assert got[sms_id][column] == original, (
                f"{direction} {sms_id} {column}: {got[sms_id][column]!r} != {original!r}"
            )
            # The bytes in the output are the field's own UTF-8, quoted as RFC 4180 says, nothing else.
            assert not original or csv_field(original, delimiter) in data, (
                f"{direction} {sms_id} {column}: bytes not found as written"
            )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
@example(
    case=Case(
        outgoing=[
            Sms(
                "\ufeffBOM first, then NUL \x00 and a lone \r and \r\n and \u2028 end",
                "\ufeffSender",
                "\u200ftag",
                7200,
            ),
            Sms('=cmd|" /C calc"!A0;"quoted";\t+@-', "=1+1", "-", 7300),
            Sms("e\u0301\u0301 " + SPECIALS[18] * 50 + " \u202eRTL\u202c", "@sender", None, 9000),
            Sms(('long \r\n"; ' + SPECIALS[19] + "\x00") * 400, "S", "t", 10_000),
        ],
        incoming=[Sms("\r", "\n", "", 8000), Sms("", "+33612345678", "=tag", 8100)],
        delimiter=";",
        split=2,
    )
)
@example(case=Case([Sms("a\x00b;c,d\te|f", "x", "y", 7200)], [Sms("\x00", "\x00", "\x00", 7300)], delimiter="\x00"))
@example(case=Case([Sms("tab\tin\ttext", "\t", "\t", 7200)], [], delimiter="\t", gzip_parts=True, gzip_output=True))
def test_any_text_round_trips_through_archive_and_retrieve(roundtrip: RoundTrip, case: Case) -> None:
    emulator = roundtrip.emulator
    service = f"sms-rt{next(_SERVICES):05d}-1"
    emulator.add_service(service)
    now = dt.datetime.now(dt.UTC)
    expected: dict[str, dict[int, dict[str, str | None]]] = {"outgoing": {}, "incoming": {}}
    batches: list[list[tuple[str, dict[str, Any]]]] = [[], []]
    for index, sms in enumerate(case.outgoing):
        sms_id = next(_IDS)
        batches[index >= case.split].append(("outgoing", outgoing_json(sms_id, sms, now)))
        expected["outgoing"][sms_id] = {
            "message": sms.message,
            "sender": sms.sender,
            "receiver": sms.receiver,
            "tag": sms.tag,
        }
    for sms in case.incoming:
        sms_id = next(_IDS)
        batches[0].append(("incoming", incoming_json(sms_id, sms, now)))
        expected["incoming"][sms_id] = {"message": sms.message, "sender": sms.sender, "tag": sms.tag}

    settings_ = settings_for(roundtrip.settings, service, delimiter=case.delimiter, gzip=case.gzip_parts)
    directory = Path(tempfile.mkdtemp(prefix="sms-archiver-roundtrip-"))
    try:
        store = LocalStore(directory)
        # Two cycles: a day may then hold two parts, which retrieve merges instead of copying bytes.
        for batch in batches:
            for direction, record in batch:
                (emulator.add_outgoing if direction == "outgoing" else emulator.add_incoming)(service, record)
            reports = run_archive(settings_, roundtrip.source, store)
            assert sum(report.malformed for report in reports) == 0
        months = months_of([sms.age_seconds for sms in case.outgoing + case.incoming], now)
        # What verify re-reads (checksums, row counts, strict CSV) holds.
        problems = [problem for check in run_verify(settings_, store, service=service) for problem in check.problems]
        assert not problems

        for direction, rows in expected.items():
            # Every reader of the archive sees the original text.
            archived = {
                record.id: record
                for year, month in archived_months(store, service, direction)  # type: ignore[arg-type]
                for record in iter_records(store, service, direction, year, month)  # type: ignore[arg-type]
            }
            assert sorted(archived) == sorted(rows)
            for sms_id, fields in rows.items():
                for column, value in fields.items():
                    assert archived[sms_id].get(column) == ("" if value is None else value)
            # And so does retrieve, by the byte-copy path and by the row-by-row path (a filter that keeps all).
            plain = OutputFormat(delimiter=case.delimiter, gzip=case.gzip_output)
            check_output(retrieve_bytes(store, service, direction, months, plain), direction, rows, case.delimiter)
            if rows:
                first = next(iter(rows.values()))
                same_sender = {key: value for key, value in rows.items() if value["sender"] == first["sender"]}
                filtered = OutputFormat(
                    delimiter=case.delimiter, gzip=case.gzip_output, filters={"sender": str(first["sender"])}
                )
                check_output(
                    retrieve_bytes(store, service, direction, months, filtered), direction, same_sender, case.delimiter
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- a lone surrogate from the API --------------------------------------------------------------


def _corrupt_with_surrogates(roundtrip: RoundTrip, *, max_retries: int) -> tuple[str, Settings, dict[int, str], int]:
    """A service with three good outgoing records and one whose message holds a lone surrogate."""
    service = f"sms-rt{next(_SERVICES):05d}-1"
    now = dt.datetime.now(dt.UTC)
    good = {}
    for age, text in ((7200, "before \U0001f600"), (7300, "also fine \r\n"), (7500, "after")):
        sms_id = next(_IDS)
        roundtrip.emulator.add_outgoing(service, outgoing_json(sms_id, Sms(text, "s", "t", age), now))
        good[sms_id] = text
    bad_id = next(_IDS)
    record = outgoing_json(bad_id, Sms("half \ud83d of an emoji", "s", "t", 7400), now)
    roundtrip.emulator.add_outgoing(service, {**record, "message": "placeholder"})
    roundtrip.emulator.corrupt_record(service, "outgoing", bad_id, record)
    settings_ = settings_for(roundtrip.settings, service, directions="outgoing")
    settings_ = settings_.model_copy(update={"ovh": settings_.ovh.model_copy(update={"max_retries": max_retries})})
    return service, settings_, good, bad_id


def _check_surrogate_skipped(
    roundtrip: RoundTrip, service: str, settings_: Settings, good: dict[int, str], bad_id: int
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="sms-archiver-surrogate-"))
    try:
        store = LocalStore(directory)
        source = OvhSource(settings_.ovh)  # its own: max_retries differs from the module's
        try:
            with structlog.testing.capture_logs() as logs:
                reports = run_archive(settings_, source, store)
        finally:
            source.close()
        assert sum(report.malformed for report in reports) == 1
        events = [event for event in logs if event["event"] == "record_malformed"]
        assert [event["sms_id"] for event in events] == [bad_id]
        assert "surrogate" in events[0]["reason"]
        # The others are archived; the bad one is in no part, not even partly; every byte is valid UTF-8.
        archived = {
            record.id: record.get("message")
            for year, month in archived_months(store, service, "outgoing")
            for record in iter_records(store, service, "outgoing", year, month)
        }
        assert archived == good
        for stored in list_parts(store, service, "outgoing"):
            data = store.get(stored.info.key)
            data.decode("utf-8")
            assert str(bad_id).encode() not in data
            assert b"half" not in data
        # It is retried by the next cycle, not forgotten.
        assert bad_id in load_state(store, service, "outgoing").retry
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_lone_surrogate_from_the_api_is_reported_and_skipped(roundtrip: RoundTrip) -> None:
    service, settings_, good, bad_id = _corrupt_with_surrogates(roundtrip, max_retries=0)
    _check_surrogate_skipped(roundtrip, service, settings_, good, bad_id)


def test_lone_surrogate_escaped_in_json_is_reported_and_skipped(
    roundtrip: RoundTrip, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with the emulator answering as a JSON server must: ``\\ud83d`` as an escape sequence."""
    monkeypatch.setattr(roundtrip.emulator.faults, "json_ascii_only", True)
    service, settings_, good, bad_id = _corrupt_with_surrogates(roundtrip, max_retries=0)
    _check_surrogate_skipped(roundtrip, service, settings_, good, bad_id)


# -- --excel and --neutralize-formulas through the CLI -------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list: = + - @, and tab and CR


def test_excel_and_neutralize_formulas_through_the_cli(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    texts = [
        "=1+1",
        "+33612345678",
        "-2",
        "@SUM(A1)",
        "\t=tab first",
        "\rcr first",
        "plain",
        " =space first",
        "'already quoted",
        "x=1",
        "",
        "\ufeff=bom first",
        "\U0001f600 emoji",
    ]
    with EmulatorServer(**CREDENTIALS) as emulator:
        for index, text in enumerate(texts):
            sms = Sms(text, texts[-1 - index], texts[(index + 3) % len(texts)], 3 * 3600 + index, receiver=text or "+1")
            emulator.add_outgoing(SERVICE, outgoing_json(next(_IDS), sms, now))
            emulator.add_incoming(SERVICE, incoming_json(next(_IDS), sms, now))
        storage = local_storage_env(tmp_path / "archive")
        env = cli_env(emulator, storage)
        archived = run_cli("archive", env=env)
        assert archived.code == 0, archived.stderr
        truth = api_truth(emulator)

    month = (now - dt.timedelta(seconds=3 * 3600)).strftime("%Y-%m")
    last = (now - dt.timedelta(seconds=3 * 3600 - len(texts))).strftime("%Y-%m")
    for direction in ("outgoing", "incoming"):
        columns = COLUMNS[direction]
        for flags in (["--excel", "--neutralize-formulas"], ["--excel"], []):
            target = tmp_path / f"{direction}-{len(flags)}.csv"
            result = run_cli(
                "retrieve",
                "--month",
                month,
                "--until-month",
                last,
                "--direction",
                direction,
                *flags,
                "-o",
                str(target),
                env=env,
            )
            assert result.code == 0, result.stderr
            data = target.read_bytes()
            if "--excel" in flags:
                assert data.startswith(b"\xef\xbb\xbf")
                data = data[3:]
            else:
                assert not data.startswith(b"\xef\xbb\xbf")
            rows = parse_csv(data, ";")
            assert tuple(rows[0]) == columns
            got = {int(row[0]): tuple(row) for row in rows[1:]}
            assert sorted(got) == sorted(truth[direction])
            for sms_id, fields in truth[direction].items():
                if "--neutralize-formulas" in flags:
                    wanted = tuple("'" + value if value.startswith(FORMULA_STARTS) else value for value in fields)
                else:
                    wanted = fields
                assert got[sms_id] == wanted, (direction, flags, sms_id)


# ================================================================================================
# Part 2: malformed configuration values, each with one clear message
# ================================================================================================


@dataclass(frozen=True)
class Bad:
    """One malformed setting: what to set, how to run, which setting the message must name."""

    id: str
    names: str  # the setting the message must name: its environment variable, or "{config}: [section] key"
    env: dict[str, str] = field(default_factory=dict)
    toml: str | bytes | None = None  # written to a file and passed as SMS_ARCHIVER_CONFIG
    secret_files: dict[str, bytes] | None = None  # written to a directory passed as SMS_ARCHIVER_SECRETS_DIR
    args: tuple[str, ...] = ("archive",)
    also: tuple[str, ...] = ()  # further text the message must contain


def _env(name: str, value: str, **more: str) -> dict[str, str]:
    return {f"SMS_ARCHIVER_{name}": value, **{f"SMS_ARCHIVER_{key}": val for key, val in more.items()}}


BAD_VALUES: list[Bad] = [
    # --- ovh
    Bad("endpoint-unknown-name", "SMS_ARCHIVER_OVH__ENDPOINT", _env("OVH__ENDPOINT", "ovh-mars")),
    Bad("endpoint-url-no-version", "SMS_ARCHIVER_OVH__ENDPOINT", _env("OVH__ENDPOINT", "https://eu.api.ovh.com/")),
    Bad("endpoint-ftp", "SMS_ARCHIVER_OVH__ENDPOINT", _env("OVH__ENDPOINT", "ftp://eu.api.ovh.com/1.0")),
    Bad(
        "endpoint-no-host",
        "SMS_ARCHIVER_OVH__ENDPOINT",
        _env("OVH__ENDPOINT", "http:///1.0"),
    ),
    Bad("rate-zero", "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND", _env("OVH__MAX_REQUESTS_PER_SECOND", "0")),
    Bad("rate-word", "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND", _env("OVH__MAX_REQUESTS_PER_SECOND", "fast")),
    Bad("rate-nan", "SMS_ARCHIVER_OVH__MAX_REQUESTS_PER_SECOND", _env("OVH__MAX_REQUESTS_PER_SECOND", "nan")),
    Bad("concurrency-word", "SMS_ARCHIVER_OVH__CONCURRENCY", _env("OVH__CONCURRENCY", "many")),
    Bad("concurrency-zero", "SMS_ARCHIVER_OVH__CONCURRENCY", _env("OVH__CONCURRENCY", "0")),
    Bad("concurrency-too-high", "SMS_ARCHIVER_OVH__CONCURRENCY", _env("OVH__CONCURRENCY", "65")),
    Bad("concurrency-float", "SMS_ARCHIVER_OVH__CONCURRENCY", _env("OVH__CONCURRENCY", "3.5")),
    Bad("fetch-enum", "SMS_ARCHIVER_OVH__FETCH", _env("OVH__FETCH", "all")),
    Bad("batch-size-high", "SMS_ARCHIVER_OVH__BATCH_SIZE", _env("OVH__BATCH_SIZE", "501")),
    Bad("ovh-timeout-zero", "SMS_ARCHIVER_OVH__TIMEOUT_SECONDS", _env("OVH__TIMEOUT_SECONDS", "0")),
    Bad("ovh-timeout-nan", "SMS_ARCHIVER_OVH__TIMEOUT_SECONDS", _env("OVH__TIMEOUT_SECONDS", "nan")),
    Bad(
        "ovh-timeout-inf",
        "SMS_ARCHIVER_OVH__TIMEOUT_SECONDS",
        _env("OVH__TIMEOUT_SECONDS", "inf"),
    ),
    Bad("retries-negative", "SMS_ARCHIVER_OVH__MAX_RETRIES", _env("OVH__MAX_RETRIES", "-1")),
    Bad("api-timezone", "SMS_ARCHIVER_OVH__API_TIMEZONE", _env("OVH__API_TIMEZONE", "Mars/Olympus")),
    Bad("services-bad-json", "SMS_ARCHIVER_OVH__SERVICES", _env("OVH__SERVICES", '["a",')),
    Bad("services-numbers", "SMS_ARCHIVER_OVH__SERVICES", _env("OVH__SERVICES", "[1, 2]")),
    Bad(
        "services-object",
        "SMS_ARCHIVER_OVH__SERVICES",
        _env("OVH__SERVICES", '{"a": 1}'),
    ),
    Bad(
        "services-path",
        "SMS_ARCHIVER_OVH__SERVICES",
        _env("OVH__SERVICES", "../etc"),
    ),
    Bad("keys-and-oauth", "SMS_ARCHIVER_OVH", _env("OVH__CLIENT_ID", "client"), also=("CLIENT_ID",)),
    Bad("secret-missing", "SMS_ARCHIVER_OVH", _env("OVH__APPLICATION_SECRET", ""), also=("APPLICATION_SECRET",)),
    # --- archive
    Bad("directions-enum", "SMS_ARCHIVER_ARCHIVE__DIRECTIONS", _env("ARCHIVE__DIRECTIONS", "sideways")),
    Bad("directions-empty", "SMS_ARCHIVER_ARCHIVE__DIRECTIONS", _env("ARCHIVE__DIRECTIONS", "")),
    Bad("directions-bad-json", "SMS_ARCHIVER_ARCHIVE__DIRECTIONS", _env("ARCHIVE__DIRECTIONS", "[1")),
    Bad("start-month-13", "SMS_ARCHIVER_ARCHIVE__START", _env("ARCHIVE__START", "2024-13-01")),
    Bad("start-feb-30", "SMS_ARCHIVER_ARCHIVE__START", _env("ARCHIVE__START", "2024-02-30")),
    Bad("start-word", "SMS_ARCHIVER_ARCHIVE__START", _env("ARCHIVE__START", "yesterday")),
    Bad("settle-negative", "SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS", _env("ARCHIVE__SETTLE_SECONDS", "-1")),
    Bad(
        "settle-huge",
        "SMS_ARCHIVER_ARCHIVE__SETTLE_SECONDS",
        _env("ARCHIVE__SETTLE_SECONDS", "99999999999"),
    ),
    Bad("timezone-unknown", "SMS_ARCHIVER_ARCHIVE__TIMEZONE", _env("ARCHIVE__TIMEZONE", "Mars/Olympus")),
    Bad("timezone-path", "SMS_ARCHIVER_ARCHIVE__TIMEZONE", _env("ARCHIVE__TIMEZONE", "../../etc/passwd")),
    Bad("lookback-negative", "SMS_ARCHIVER_ARCHIVE__LOOKBACK_HOURS", _env("ARCHIVE__LOOKBACK_HOURS", "-1")),
    Bad("lookback-nan", "SMS_ARCHIVER_ARCHIVE__LOOKBACK_HOURS", _env("ARCHIVE__LOOKBACK_HOURS", "nan")),
    Bad(
        "lookback-inf",
        "SMS_ARCHIVER_ARCHIVE__LOOKBACK_HOURS",
        _env("ARCHIVE__LOOKBACK_HOURS", "inf"),
    ),
    Bad("gzip-word", "SMS_ARCHIVER_ARCHIVE__GZIP", _env("ARCHIVE__GZIP", "maybe")),
    Bad("delimiter-two", "SMS_ARCHIVER_ARCHIVE__DELIMITER", _env("ARCHIVE__DELIMITER", ";;")),
    Bad("delimiter-empty", "SMS_ARCHIVER_ARCHIVE__DELIMITER", _env("ARCHIVE__DELIMITER", "")),
    Bad("delimiter-quote", "SMS_ARCHIVER_ARCHIVE__DELIMITER", _env("ARCHIVE__DELIMITER", '"')),
    Bad("delimiter-newline", "SMS_ARCHIVER_ARCHIVE__DELIMITER", _env("ARCHIVE__DELIMITER", "\n")),
    Bad(
        "delimiter-letter-of-header",
        "SMS_ARCHIVER_ARCHIVE__DELIMITER",
        _env("ARCHIVE__DELIMITER", "d"),
    ),
    Bad("chunk-small", "SMS_ARCHIVER_ARCHIVE__CHUNK_SIZE", _env("ARCHIVE__CHUNK_SIZE", "5")),
    # --- storage
    Bad("storage-url-http", "SMS_ARCHIVER_STORAGE__URL", _env("STORAGE__URL", "http://bucket/prefix")),
    Bad("storage-url-no-bucket", "SMS_ARCHIVER_STORAGE__URL", _env("STORAGE__URL", "s3:///prefix")),
    Bad("storage-url-relative", "SMS_ARCHIVER_STORAGE__URL", _env("STORAGE__URL", "file://relative/dir")),
    Bad("storage-url-empty", "SMS_ARCHIVER_STORAGE__URL", _env("STORAGE__URL", "")),
    Bad(
        "storage-bucket-name",
        "SMS_ARCHIVER_STORAGE__URL",
        _env("STORAGE__URL", "s3://Bad_Bucket!/x", STORAGE__ENDPOINT_URL="http://127.0.0.1:9"),
    ),
    Bad(
        "storage-endpoint-not-url",
        "SMS_ARCHIVER_STORAGE__ENDPOINT_URL",
        _env("STORAGE__URL", "s3://bucket-name/prefix", STORAGE__ENDPOINT_URL="not a url"),
    ),
    Bad(
        "storage-endpoint-bad-ipv6",
        "SMS_ARCHIVER_STORAGE__ENDPOINT_URL",
        _env("STORAGE__URL", "s3://bucket-name/prefix", STORAGE__ENDPOINT_URL="http://[::1"),
    ),
    Bad(
        "storage-endpoint-ftp",
        "SMS_ARCHIVER_STORAGE__ENDPOINT_URL",
        _env("STORAGE__URL", "s3://bucket-name/prefix", STORAGE__ENDPOINT_URL="ftp://127.0.0.1:9"),
    ),
    Bad(
        "storage-region",
        "SMS_ARCHIVER_STORAGE__REGION",
        _env(
            "STORAGE__URL",
            "s3://bucket-name/prefix",
            STORAGE__ENDPOINT_URL="http://127.0.0.1:9",
            STORAGE__REGION="not a region!",
        ),
    ),
    Bad("storage-addressing", "SMS_ARCHIVER_STORAGE__ADDRESSING_STYLE", _env("STORAGE__ADDRESSING_STYLE", "sideways")),
    Bad("storage-checksums", "SMS_ARCHIVER_STORAGE__CHECKSUMS", _env("STORAGE__CHECKSUMS", "always")),
    Bad("storage-conditional", "SMS_ARCHIVER_STORAGE__CONDITIONAL_WRITES", _env("STORAGE__CONDITIONAL_WRITES", "yes")),
    Bad("storage-attempts", "SMS_ARCHIVER_STORAGE__MAX_ATTEMPTS", _env("STORAGE__MAX_ATTEMPTS", "0")),
    Bad("storage-lock-mode", "SMS_ARCHIVER_STORAGE__OBJECT_LOCK_MODE", _env("STORAGE__OBJECT_LOCK_MODE", "governance")),
    Bad("storage-lock-days", "SMS_ARCHIVER_STORAGE__OBJECT_LOCK_DAYS", _env("STORAGE__OBJECT_LOCK_DAYS", "-1")),
    Bad(
        "storage-half-key-pair",
        "SMS_ARCHIVER_STORAGE",
        _env("STORAGE__ACCESS_KEY_ID", "AKID"),
        also=("SECRET_ACCESS_KEY",),
    ),
    # --- lease, retention, schedule, metrics, ping, daemon, log
    Bad("lease-ttl-low", "SMS_ARCHIVER_LEASE__TTL_SECONDS", _env("LEASE__TTL_SECONDS", "10")),
    Bad("lease-wait-negative", "SMS_ARCHIVER_LEASE__WAIT_SECONDS", _env("LEASE__WAIT_SECONDS", "-1")),
    Bad(
        "lease-ttl-huge",
        "SMS_ARCHIVER_LEASE__TTL_SECONDS",
        _env("LEASE__TTL_SECONDS", "99999999999999999999"),
    ),
    Bad(
        "retention-no-policy", "SMS_ARCHIVER_RETENTION", _env("RETENTION__ENABLED", "true"), also=("DELETE_AFTER_DAYS",)
    ),
    Bad("retention-days-zero", "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS", _env("RETENTION__DELETE_AFTER_DAYS", "0")),
    Bad(
        "retention-days-float", "SMS_ARCHIVER_RETENTION__DELETE_AFTER_DAYS", _env("RETENTION__DELETE_AFTER_DAYS", "1.5")
    ),
    Bad(
        "retention-cap-zero",
        "SMS_ARCHIVER_RETENTION__MAX_DELETIONS_PER_RUN",
        _env("RETENTION__MAX_DELETIONS_PER_RUN", "0"),
    ),
    Bad("retention-directions", "SMS_ARCHIVER_RETENTION__DIRECTIONS", _env("RETENTION__DIRECTIONS", "up")),
    Bad("schedule-15x", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "15x")),
    Bad("schedule-three-fields", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "* * *")),
    Bad("schedule-hour-25", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "0 25 * * *")),
    Bad("schedule-too-short", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "5s")),
    Bad(
        "schedule-huge",
        "SMS_ARCHIVER_SCHEDULE__ARCHIVE",
        _env("SCHEDULE__ARCHIVE", "99999999999999999999w"),
    ),
    Bad("schedule-compact-day-32", "SMS_ARCHIVER_SCHEDULE__COMPACT", _env("SCHEDULE__COMPACT", "0 0 32 * *")),
    Bad("schedule-verify-word", "SMS_ARCHIVER_SCHEDULE__VERIFY", _env("SCHEDULE__VERIFY", "sometimes")),
    Bad("schedule-retention-year", "SMS_ARCHIVER_SCHEDULE__RETENTION", _env("SCHEDULE__RETENTION", "1y")),
    Bad(
        "schedule-misfire-zero",
        "SMS_ARCHIVER_SCHEDULE__MISFIRE_GRACE_SECONDS",
        _env("SCHEDULE__MISFIRE_GRACE_SECONDS", "0"),
    ),
    Bad("metrics-no-port", "SMS_ARCHIVER_METRICS__LISTEN", _env("METRICS__LISTEN", "localhost")),
    Bad("metrics-port-range", "SMS_ARCHIVER_METRICS__LISTEN", _env("METRICS__LISTEN", "127.0.0.1:99999")),
    Bad("metrics-max-age", "SMS_ARCHIVER_METRICS__MAX_AGE_SECONDS", _env("METRICS__MAX_AGE_SECONDS", "1")),
    Bad("ping-timeout", "SMS_ARCHIVER_PING__TIMEOUT_SECONDS", _env("PING__TIMEOUT_SECONDS", "0")),
    Bad(
        "ping-url-not-url",
        "SMS_ARCHIVER_PING__URL",
        _env("PING__URL", "not a url"),
    ),
    Bad("shutdown-zero", "SMS_ARCHIVER_DAEMON__SHUTDOWN_SECONDS", _env("DAEMON__SHUTDOWN_SECONDS", "0")),
    Bad("log-level", "SMS_ARCHIVER_LOG__LEVEL", _env("LOG__LEVEL", "verbose")),
    Bad("log-format", "SMS_ARCHIVER_LOG__FORMAT", _env("LOG__FORMAT", "xml")),
    # --- names that are not settings
    Bad("unknown-field", "SMS_ARCHIVER_OVH__SERVICEZ", _env("OVH__SERVICEZ", "x")),
    Bad(
        "unknown-section",
        "SMS_ARCHIVER_FOO__BAR",
        _env("FOO__BAR", "1"),
    ),
    Bad(
        "single-underscore",
        "SMS_ARCHIVER_OVH_CONCURRENCY",
        _env("OVH_CONCURRENCY", "3"),
    ),
    Bad("section-not-object", "SMS_ARCHIVER_ARCHIVE", _env("ARCHIVE", "1")),
    Bad(
        "section-bad-json",
        "SMS_ARCHIVER_OVH",
        _env("OVH", "{not json"),
    ),
    # --- the TOML file
    Bad("toml-syntax", "{config}", toml="[ovh\nconcurrency = 3\n", also=("not valid TOML", "line 1")),
    Bad(
        "toml-not-utf8",
        "{config}",
        toml=b"\xff\xfe = 1\n",
    ),
    Bad("toml-wrong-type", "{config}: [lease] ttl_seconds", toml='[lease]\nttl_seconds = "long"\n'),
    Bad("toml-wrong-list", "{config}: [archive] directions", toml="[archive]\ndirections = 3\n"),
    Bad("toml-schedule-int", "{config}: [schedule] compact", toml="[schedule]\ncompact = 15\n"),
    Bad("toml-section-scalar", "{config}: lease:", toml="lease = 3\n"),
    Bad("toml-unknown-section", "{config}: [foo]: unknown setting", toml="[foo]\nbar = 1\n"),
    Bad("toml-unknown-key", "{config}: [archive] gzipped: unknown setting", toml="[archive]\ngzipped = true\n"),
    Bad(
        "toml-missing",
        "SMS_ARCHIVER_CONFIG",
        _env("CONFIG", "/nonexistent/sms-archiver/config.toml"),
        also=("does not exist",),
    ),
    Bad(
        "toml-missing-option",
        "--config",
        args=("--config", "/nonexistent/sms-archiver/config.toml", "archive"),
        also=("does not exist",),
    ),
    Bad("toml-directory", "configuration file /", _env("CONFIG", "/"), also=("cannot be read",)),
    # --- secret files
    Bad("secret-file-number", "SMS_ARCHIVER_OVH__CONCURRENCY", secret_files={"ovh__concurrency": b"many\n"}),
    Bad(
        "secret-file-env-name",
        "SMS_ARCHIVER_LEASE__TTL_SECONDS",
        secret_files={"SMS_ARCHIVER_LEASE__TTL_SECONDS": b"x"},
    ),
    Bad("secret-file-enum", "SMS_ARCHIVER_OVH__FETCH", secret_files={"ovh__fetch": b"everything"}),
    Bad(
        "secret-file-not-utf8",
        "SMS_ARCHIVER_OVH__CONCURRENCY",
        secret_files={"ovh__concurrency": b"\xff\xfe"},
    ),
]


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    api_calls: int = 0  # requests the emulator answered while the command ran


# S3 cases point at a closed loopback port; boto3 must find no real credentials nor ask a metadata service.
_OFFLINE = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/sms-archiver-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/sms-archiver-tests/aws-credentials",
    # A case the settings wrongly accept fails fast instead of retrying against a closed port.
    "SMS_ARCHIVER_OVH__MAX_RETRIES": "0",
    "SMS_ARCHIVER_STORAGE__MAX_ATTEMPTS": "1",
}


def _prepare(bad: Bad, emulator: EmulatorServer, root: Path) -> tuple[dict[str, str], str]:
    """The command's environment (files written), and the text that stands for ``{config}`` in ``names``."""
    directory = root / bad.id
    directory.mkdir()
    env = cli_env(emulator, local_storage_env(directory / "archive"), **{**_OFFLINE, **bad.env})
    config = ""
    if bad.toml is not None:
        path = directory / "config.toml"
        path.write_bytes(bad.toml if isinstance(bad.toml, bytes) else bad.toml.encode())
        env["SMS_ARCHIVER_CONFIG"] = config = str(path)
    if bad.secret_files is not None:
        secrets = directory / "secrets"
        secrets.mkdir()
        for name, content in bad.secret_files.items():
            (secrets / name).write_bytes(content)
        env["SMS_ARCHIVER_SECRETS_DIR"] = str(secrets)
    return env, config


def check_one_clear_message(outcome: Outcome, bad: Bad, config: str = "") -> None:
    stderr = outcome.stderr
    assert "Traceback" not in stderr, stderr
    assert outcome.code == 2, f"exit {outcome.code}:\n{stderr}"
    # The person reads the lines that are not JSON log events.
    human = "\n".join(line for line in stderr.splitlines() if not line.startswith("{"))
    names = bad.names.replace("{config}", config)
    assert names in human, f"{names} not named:\n{stderr}"
    for text in bad.also:
        assert text in human, f"{text!r} not said:\n{stderr}"
    assert len(human.splitlines()) <= 4, f"too long:\n{stderr}"
    assert len(stderr.splitlines()) <= 6 and len(stderr) < 2500, f"too long:\n{stderr}"
    assert outcome.stdout == ""
    for secret in CREDENTIALS.values():
        assert secret not in stderr


def _params(cases: list[Bad]) -> list[Any]:
    return [pytest.param(bad, id=bad.id) for bad in cases]


# -- every case, through the CLI's entry point in this process (a process each would take a minute) --


@pytest.fixture(scope="module")
def table_emulator() -> Iterator[EmulatorServer]:
    with make_emulator(outgoing=10, incoming=3, days=5) as emulator:
        yield emulator


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """``main`` configures structlog and logging for the process: put both back afterwards."""
    saved = structlog.get_config()
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        structlog.contextvars.clear_contextvars()
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)


def run_main(bad: Bad, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Outcome:
    """``sms-archiver ARGS`` as ``python -m archiver`` runs it, in this process; an escaping exception = a traceback."""
    for key in [key for key in os.environ if key.startswith(("SMS_ARCHIVER_", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("SMS_ARCHIVER_", "AWS_")):
            monkeypatch.setenv(key, value)
    crash = ""
    try:
        code = main(list(bad.args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except Exception:
        code, crash = 1, traceback.format_exc()
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err + crash)


@pytest.mark.usefixtures("isolated_logging")
@pytest.mark.parametrize("bad", _params(BAD_VALUES))
def test_malformed_setting_gives_one_clear_message(
    bad: Bad, table_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env, config = _prepare(bad, table_emulator, tmp_path)
    check_one_clear_message(run_main(bad, env, monkeypatch, capsys), bad, config)


# -- a sample of them as real processes, and the daemon: it must refuse before any network activity --

SUBPROCESS_SAMPLE = (
    "concurrency-word",
    "fetch-enum",
    "storage-url-http",
    "schedule-hour-25",
    "unknown-field",
    "keys-and-oauth",
    "toml-syntax",
    "toml-wrong-type",
    "toml-missing-option",
    "secret-file-number",
)
RUN_SCHEDULES = [
    Bad("run-15x", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "15x"), args=("run",)),
    Bad("run-three-fields", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "* * *"), args=("run",)),
    Bad("run-hour-25", "SMS_ARCHIVER_SCHEDULE__ARCHIVE", _env("SCHEDULE__ARCHIVE", "0 25 * * *"), args=("run",)),
    Bad("run-verify", "SMS_ARCHIVER_SCHEDULE__VERIFY", _env("SCHEDULE__VERIFY", "0 0 * * 8"), args=("run",)),
    Bad("run-toml", "{config}: [schedule] archive", toml='[schedule]\narchive = "every 15 minutes"\n', args=("run",)),
    Bad("run-metrics", "SMS_ARCHIVER_METRICS__LISTEN", _env("METRICS__LISTEN", "127.0.0.1:http"), args=("run",)),
]
_BY_ID = {bad.id: bad for bad in BAD_VALUES + RUN_SCHEDULES}
_RUNS = tuple(bad.id for bad in RUN_SCHEDULES)


def _run_process(bad: Bad, root: Path) -> tuple[Outcome, str]:
    # Its own emulator: any request it answers was made by this command.
    with make_emulator(outgoing=5, incoming=1, days=2) as emulator:
        env, config = _prepare(bad, emulator, root)
        result = run_cli(*bad.args, env=env, timeout=90)
        return Outcome(result.code, result.stdout, result.stderr, emulator.stats.total), config


@pytest.fixture(scope="module")
def process_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Outcome, str]]:
    root = tmp_path_factory.mktemp("bad-config-processes")
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_run_process, _BY_ID[name], root) for name in (*SUBPROCESS_SAMPLE, *_RUNS)}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", [*SUBPROCESS_SAMPLE, *_RUNS])
def test_malformed_setting_in_a_real_process(name: str, process_outcomes: dict[str, tuple[Outcome, str]]) -> None:
    bad = _BY_ID[name]
    outcome, config = process_outcomes[name]
    check_one_clear_message(outcome, bad, config)
    assert outcome.api_calls == 0, "OVH was called although a setting is wrong"


def test_every_bad_value_case_is_distinct() -> None:
    names = [bad.id for bad in BAD_VALUES + RUN_SCHEDULES]
    assert len(names) == len(set(names))
