"""archiver/source/fetch.py: the fetch strategies and the fallback between them, over HTTP to the emulator.

The rule under test everywhere: every id asked for comes back exactly once, with the API's record, or
``GONE`` only when OVH said explicitly that it does not exist (docs/ovh-api.md, "Batch calls").
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from archiver.emulator import EmulatorServer
from archiver.errors import AuthError
from archiver.source.client import ApiClient
from archiver.source.fetch import GONE, Fetcher, says_not_found
from tests.unit.source.conftest import SERVICE, RewritingTransport, mount_transport, ovh_settings, record

BATCH_ROUTE = "/sms/{sn}/outgoing/{ids}"
ONE_ROUTE = "/sms/{sn}/outgoing/{id}"
EXISTING = list(range(1, 41))
MISSING = [1001, 1002, 1003]


@pytest.fixture
def emulator_with_records(emulator: EmulatorServer) -> EmulatorServer:
    for sms_id in EXISTING:
        emulator.add_outgoing(SERVICE, record(sms_id, minutes_ago=sms_id))
    return emulator


@pytest.fixture
def make_fetcher(emulator_with_records: EmulatorServer) -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(**overrides: Any) -> Fetcher:
        settings = ovh_settings(emulator_with_records, **overrides)
        fetcher = Fetcher(ApiClient(settings, sleep=lambda seconds: None))
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


def fetched(fetcher: Fetcher, ids: list[int]) -> dict[int, Any]:
    """Every answer by id; fails if an id comes back twice."""
    answers: dict[int, Any] = {}
    for sms_id, raw in fetcher.fetch(SERVICE, "outgoing", ids):
        assert sms_id not in answers, f"id {sms_id} answered twice"
        answers[sms_id] = raw
    return answers


def truth(emulator: EmulatorServer, ids: list[int]) -> dict[int, Any]:
    records = emulator.outgoing(SERVICE)
    return {sms_id: records.get(sms_id, GONE) for sms_id in ids}


IDS = EXISTING[:20] + MISSING + EXISTING[20:]


@pytest.mark.parametrize(
    ("strategy", "single_gets", "batch_calls", "settled_on"),
    [
        ("per-id", len(IDS), 0, "per-id"),
        ("batch", 0, 5, "batch"),  # 43 ids in batches of 10
        ("auto", 0, 5, "batch"),  # the probe is the first batch
    ],
)
def test_each_strategy_answers_every_id_once(
    make_fetcher: Callable[..., Fetcher],
    emulator_with_records: EmulatorServer,
    strategy: str,
    single_gets: int,
    batch_calls: int,
    settled_on: str,
) -> None:
    fetcher = make_fetcher(fetch=strategy, batch_size=10, concurrency=3)
    assert fetched(fetcher, IDS) == truth(emulator_with_records, IDS)
    assert emulator_with_records.stats.count("GET", ONE_ROUTE) == single_gets
    assert emulator_with_records.stats.count("GET", BATCH_ROUTE) == batch_calls
    assert fetcher.strategy == settled_on


def test_auto_is_auto_until_the_probe_answers(make_fetcher: Callable[..., Fetcher]) -> None:
    fetcher = make_fetcher(fetch="auto")
    assert fetcher.strategy == "auto"
    assert fetched(fetcher, []) == {}
    assert fetcher.strategy == "auto"  # nothing asked, nothing learnt


def test_auto_falls_back_to_per_id_when_batch_is_refused(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer
) -> None:
    emulator_with_records.faults.batch_supported = False
    fetcher = make_fetcher(fetch="auto", batch_size=10)
    with capture_logs() as logs:
        assert fetched(fetcher, IDS) == truth(emulator_with_records, IDS)
        assert fetched(fetcher, EXISTING[:15]) == truth(emulator_with_records, EXISTING[:15])
    assert fetcher.strategy == "per-id"
    assert [event["event"] for event in logs].count("batch_fetch_unavailable") == 1
    assert emulator_with_records.stats.count("GET", BATCH_ROUTE) == 1  # probed once, for the whole run


def test_a_null_batch_value_is_asked_again_never_taken_as_gone(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer
) -> None:
    emulator_with_records.faults.batch_null_rate = 1.0
    fetcher = make_fetcher(fetch="batch", batch_size=10)
    answers = fetched(fetcher, IDS)
    assert answers == truth(emulator_with_records, IDS)
    assert emulator_with_records.stats.count("GET", ONE_ROUTE) == len(EXISTING)  # each again, alone


def test_a_batch_of_one_is_a_plain_get(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer
) -> None:
    fetcher = make_fetcher(fetch="batch")
    assert fetched(fetcher, [7]) == truth(emulator_with_records, [7])
    assert emulator_with_records.stats.count("GET", BATCH_ROUTE) == 0


def elements(body: bytes) -> list[dict[str, Any]]:
    answer = json.loads(body)
    assert isinstance(answer, list)
    return answer


SHAPES: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "out of order": lambda answer: answer[::-1],
    "one element short": lambda answer: answer[:-1],
    "no value key": lambda answer: [{"key": element["key"]} for element in answer],
    "not a list": lambda answer: {"items": answer},
    "keys of other ids": lambda answer: [{**element, "key": "999999"} for element in answer],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("broken_call", [1, 3])
def test_a_batch_answer_of_another_shape_sends_the_rest_per_id(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer, shape: str, broken_call: int
) -> None:
    """Whether the first batch or a later one is malformed, no id is lost, none comes twice, none is made up."""
    calls = itertools.count(1)

    def rewrite(request: requests.PreparedRequest, body: bytes) -> bytes | None:
        if "X-Ovh-Batch" not in request.headers or next(calls) != broken_call:
            return None
        return json.dumps(SHAPES[shape](elements(body))).encode()

    fetcher = make_fetcher(fetch="batch", batch_size=4, concurrency=2)
    mount_transport(fetcher.client, RewritingTransport(rewrite))
    with capture_logs() as logs:
        answers = fetched(fetcher, IDS)
    assert answers == truth(emulator_with_records, IDS)
    assert fetcher.strategy == "per-id"
    assert [event["event"] for event in logs].count("batch_fetch_unavailable") == 1


def test_refused_credentials_during_a_batch_are_raised_not_fallen_back(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer
) -> None:
    fetcher = make_fetcher(fetch="auto", batch_size=10)
    emulator_with_records.consumer_key = "revoked-in-the-meantime"
    with pytest.raises(AuthError):
        fetched(fetcher, IDS)
    assert fetcher.strategy == "auto"


def test_stopping_early_leaves_no_work_behind(
    make_fetcher: Callable[..., Fetcher], emulator_with_records: EmulatorServer
) -> None:
    """A consumer that stops reading cancels what was queued: close() returns and nothing more is asked."""
    fetcher = make_fetcher(fetch="per-id", concurrency=2)
    stream = fetcher.fetch(SERVICE, "outgoing", EXISTING)
    first = [next(stream) for _ in range(3)]
    stream.close()
    fetcher.close()
    asked = emulator_with_records.stats.count("GET", ONE_ROUTE)
    assert len(first) == 3
    assert asked < len(EXISTING)  # at most the few in flight (concurrency x 2) beyond what was read


@pytest.mark.parametrize(
    ("error", "not_found"),
    [
        ("Not found", True),
        ({"code": 404, "message": "Object not found"}, True),
        ("This SMS does not exist", True),
        (None, False),
        ("", False),
        ("Internal error", False),
        ({"message": "timeout"}, False),
    ],
)
def test_only_an_explicit_not_found_means_gone(error: object, not_found: bool) -> None:
    assert says_not_found(error) is not_found
