"""The OVH API v1 routes the emulator serves, and the handler of each.

Facts about the real API come from docs/ovh-api.md; every behaviour it marks UNKNOWN is an assumption
here, commented where it is made. A handler takes the ``Context`` of the request, the request and the
path's placeholders, and returns a reply or raises ``ApiError``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from archiver.emulator.data import PARIS, format_api_datetime, incoming_csv, outgoing_csv
from archiver.emulator.faults import Dice, Faults, cap_listing
from archiver.emulator.memory_store import DIRECTIONS, Collection, Document, MemoryStore, parse_instant
from archiver.emulator.protocol import (
    INVALID_URL,
    ApiError,
    Reply,
    Request,
    bad_parameter,
    json_reply,
    not_found,
    parse_int,
)

_MAX_BATCH_IDS: Final = 500
# The CSV export covers at most 12 months (docs/ovh-api.md, "CSV export"); a day of slack for leap years
# and rounding.
_MAX_EXPORT_PERIOD: Final = timedelta(days=366)
_DEFAULT_EXPORT_PERIOD: Final = timedelta(days=365)
_DOCUMENT_GENERATION_SECONDS: Final = 0.3

_OUTGOING_INT_FILTERS: Final = ("deliveryReceipt", "differedDelivery", "ptt")
_OUTGOING_STR_FILTERS: Final = ("batchID", "messageID", "receiver", "sender", "tag")
_INCOMING_STR_FILTERS: Final = ("sender", "tag")

# GET /sms/ptts texts, paraphrasing the OVH guide (docs/ovh-api.md, "Delivery statuses"); durations are our
# reading of it.
_PTTS: Final[dict[int, tuple[str, str, str]]] = {
    1: ("Not delivered yet: problem on the phone side, being retried", "Intermediate state", "temporary"),
    2: (
        "Not delivered yet: problem on the operator side, retried in the network",
        "Intermediate state",
        "temporary",
    ),
    3: ("Accepted by the operator", "Intermediate state", "temporary"),
    4: ("The message was delivered", "Delivered", "permanent"),
    5: ("Confirmed undelivered, no detail given", "Undelivered", "permanent"),
    6: ("Final state unknown: the operator gave no final delivery information", "Unknown", "indeterminated"),
    8: ("Expired inside the operator SMSC, no failure reason", "Expired", "permanent"),
    20: ("Undeliverable in its current form", "Undeliverable", "permanent"),
    21: ("Expired after retries for lack of subscriber credit", "Expired", "permanent"),
    23: ("Invalid, blacklisted or permanently barred MSISDN", "Invalid number", "permanent"),
    24: ("Subscriber temporarily absent (phone off, out of network)", "Absent subscriber", "temporary"),
    25: ("Temporary operator network failure (SS7, SMSC, gateway)", "Network failure", "temporary"),
    26: ("Temporary phone error (SIM full, busy, memory)", "Phone error", "temporary"),
    27: ("Handset permanently incompatible with this message type", "Incompatible handset", "permanent"),
    28: ("Rejected as suspected spam", "Spam", "permanent"),
    29: ("Content not permitted on this network or shortcode", "Content refused", "permanent"),
    33: ("Adult content blocked by parental lock", "Parental lock", "permanent"),
    39: ("New operator failure", "Operator failure", "indeterminated"),
    73: ("Ported combinations unreachable", "Ported number", "permanent"),
    74: ("MSISDN roaming", "Roaming", "temporary"),
    76: ("Ported combinations blocked for the client (blacklisted at destination)", "Blocked", "permanent"),
    202: ("Ported combinations blocked for the client (contact support)", "Blocked", "permanent"),
}


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may use: the data, the faults of the moment, the server's clock and address."""

    store: MemoryStore
    faults: Faults
    dice: Dice
    now: Callable[[], float]  # epoch seconds on the emulated server's (possibly skewed) clock
    base_url: str  # http://127.0.0.1:PORT, root of the unsigned download route


Handler = Callable[[Context, Request, dict[str, str]], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """One API route: ``pattern`` holds literal segments or ``{name}`` placeholders."""

    method: str
    pattern: tuple[str, ...]
    handler: Handler
    signed: bool = True

    @property
    def template(self) -> str:
        """The route as the stats name it, e.g. ``/sms/{sn}/outgoing/{id}``."""
        return "/" + "/".join(self.pattern)


def answer(route: Route, context: Context, request: Request, params: dict[str, str]) -> Reply:
    """Run the route's handler; an ``ApiError`` it raises becomes its JSON error reply."""
    try:
        return route.handler(context, request, params)
    except ApiError as error:
        return json_reply(error.status, error.payload)


def is_batch(request: Request, id_segment: str, faults: Faults) -> bool:
    """Whether a GET by id is a batch (``X-Ovh-Batch``); without batch support, only if it names several ids."""
    separator = request.headers.get("X-Ovh-Batch")
    if not separator or request.method != "GET":
        return False
    return faults.batch_supported or separator in id_segment


def _scrambled(ids: list[int]) -> list[int]:
    """Return ids in a stable but unsorted order: the real order is UNKNOWN, clients must not rely on it."""
    return sorted(ids, key=lambda sms_id: ((sms_id * 2654435761) & 0xFFFFFFFF, sms_id))


def _service(store: MemoryStore, name: str) -> dict[str, Collection]:
    """Must hold the store lock."""
    try:
        return store.services[name]
    except KeyError:
        raise not_found("serviceName", name) from None


def _date_filters(request: Request) -> tuple[float | None, float | None]:
    bounds: list[float | None] = []
    for name in ("creationDatetime.from", "creationDatetime.to"):
        value = request.param(name)
        if value is None:
            bounds.append(None)
            continue
        try:
            bounds.append(parse_instant(value))
        except ValueError:
            raise bad_parameter(f"[{name}] Given data ({value}) is not valid for type datetime") from None
    return bounds[0], bounds[1]


# --- account -------------------------------------------------------------------------------------------


def auth_time(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /auth/time``: the server's clock, which python-ovh signs with."""
    return json_reply(200, int(context.now()))


def list_services(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms``: the service names."""
    with context.store.lock:
        names = sorted(context.store.services)
    return json_reply(200, names)


def get_account(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms/{sn}``: a fixed account description of an existing service."""
    name = params["sn"]
    with context.store.lock:
        _service(context.store, name)
    return json_reply(
        200,
        {
            "name": name,
            "description": "",
            "status": "enable",
            "creditsLeft": 1234.5,
            "creditsHoldByQuota": 0.0,
            "callBack": "",
            "stopCallBack": "",
            "channel": "http",
            "userQuantityWithQuota": 0,
        },
    )


def ptt_details(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms/ptts?ptt=N``: the texts of a delivery status."""
    value = request.param("ptt")
    if value is None:
        raise bad_parameter("[ptt] Missing parameter")
    ptt = parse_int("ptt", value)
    if ptt not in _PTTS:
        raise not_found("ptt", ptt)
    comment, description, duration = _PTTS[ptt]
    return json_reply(200, {"comment": comment, "description": description, "duration": duration})


# --- records ---------------------------------------------------------------------------------------------


def _listing_filters(request: Request, direction: str) -> dict[str, object]:
    wanted: dict[str, object] = {}
    if direction == "outgoing":
        for name in _OUTGOING_INT_FILTERS:
            value = request.param(name)
            if value is not None:
                wanted[name] = parse_int(name, value)
    for name in _OUTGOING_STR_FILTERS if direction == "outgoing" else _INCOMING_STR_FILTERS:
        value = request.param(name)
        if value is not None:
            wanted[name] = value
    return wanted


def list_records(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms/{sn}/{direction}``: the ids matching the filters, in no useful order, maybe capped."""
    direction = request.segments[2]
    low, high = _date_filters(request)
    wanted = _listing_filters(request, direction)
    with context.store.lock:
        collection = _service(context.store, params["sn"])[direction]
        ids = collection.ids_between(low, high)
        if wanted:
            records = collection.records
            ids = [
                sms_id for sms_id in ids if all(records[sms_id].get(name) == value for name, value in wanted.items())
            ]
    return json_reply(200, _scrambled(cap_listing(ids, context.faults)))


def get_record(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms/{sn}/{direction}/{id}``: one record, or a batch of them (``X-Ovh-Batch``)."""
    if is_batch(request, params["id"], context.faults):
        return _get_batch(context, request, params)
    sms_id = parse_int("id", params["id"])
    with context.store.lock:
        collection = _service(context.store, params["sn"])[request.segments[2]]
        if sms_id not in collection.records:
            raise not_found("id", sms_id)
        value = collection.corrupt.get(sms_id, collection.records[sms_id])
    return json_reply(200, value)


def _get_batch(context: Context, request: Request, params: dict[str, str]) -> Reply:
    faults = context.faults
    if not faults.batch_supported:
        raise ApiError(400, {"message": "Invalid batch request"})
    separator = str(request.headers.get("X-Ovh-Batch"))
    keys = params["id"].split(separator)
    if len(keys) > _MAX_BATCH_IDS:
        raise ApiError(400, {"message": f"Too many ids in batch request (max {_MAX_BATCH_IDS})"})
    elements: list[dict[str, object]] = []
    with context.store.lock:
        collection = _service(context.store, params["sn"])[request.segments[2]]
        for key in keys:
            try:
                sms_id = int(key)
            except ValueError:
                elements.append({"key": key, "value": None, "error": "Invalid parameter id"})
                continue
            if sms_id in collection.records and context.dice.roll(faults.batch_null_rate, faults.seed):
                elements.append({"key": key, "value": None})
            elif sms_id in collection.records:
                value = collection.corrupt.get(sms_id, collection.records[sms_id])
                elements.append({"key": key, "value": value, "error": None})
            else:
                elements.append({"key": key, "value": None, "error": "Not found"})
    return json_reply(200, elements)


def delete_record(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``DELETE /sms/{sn}/{direction}/{id}``: remove one record, noted in ``store.deleted``."""
    # ASSUMPTION: batch DELETE is not emulated; whether OVH accepts it is UNKNOWN.
    direction = request.segments[2]
    sms_id = parse_int("id", params["id"])
    with context.store.lock:
        collection = _service(context.store, params["sn"])[direction]
        if sms_id not in collection.records:
            raise not_found("id", sms_id)
        collection.remove(sms_id)
        context.store.deleted.append((params["sn"], direction, sms_id))
    return json_reply(200, None)


# --- CSV export documents ------------------------------------------------------------------------------


def _export_period(context: Context, request: Request) -> tuple[float, float]:
    low, high = _date_filters(request)
    # ASSUMPTION: without dates the export covers the last 12 months (the real default is UNKNOWN).
    high = context.now() if high is None else high
    low = high - _DEFAULT_EXPORT_PERIOD.total_seconds() if low is None else low
    if high - low > _MAX_EXPORT_PERIOD.total_seconds():
        raise ApiError(400, {"message": "Period too long"})
    return low, high


def _export_content(context: Context, request: Request, service: str, way: str) -> bytes:
    low, high = _export_period(context, request)
    tag = request.param("tag")
    batch_id = request.param("batchID") if way == "outgoing" else None
    with context.store.lock:
        collection = _service(context.store, service)[way]
        selected = [
            collection.records[sms_id]
            for sms_id in collection.ids_between(low, high)
            if (tag is None or collection.records[sms_id].get("tag") == tag)
            and (batch_id is None or collection.records[sms_id].get("batchID") == batch_id)
        ]
    faults = context.faults
    zone = ZoneInfo(faults.export_date_zone) if faults.export_date_zone else PARIS
    if way == "outgoing":
        return outgoing_csv(selected, zone=zone, date_field=faults.export_date_field)
    return incoming_csv(selected, zone=zone)


def create_document(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /sms/{sn}/document?wayType=...``: make a CSV export and answer its document id."""
    if not context.faults.export_supported:
        raise ApiError(404, INVALID_URL)
    service = params["sn"]
    way = request.param("wayType")
    if way is None:
        raise bad_parameter("[wayType] Missing parameter")
    if way not in DIRECTIONS:
        raise bad_parameter(f"[wayType] Given data ({way}) does not belong to the sms.DocumentWayTypeEnum enumeration")
    content = _export_content(context, request, service, way)
    created = datetime.fromtimestamp(context.now(), tz=PARIS)
    document = Document(
        id=str(uuid.uuid4()),
        name=f"sms-{way}-{service}-{created:%Y%m%d%H%M%S}.csv",
        content=content,
        created=created,
        created_monotonic=time.monotonic(),
    )
    with context.store.lock:
        context.store.documents[document.id] = document
    return json_reply(200, document.id)


def get_document(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``GET /me/document/{id}``: the document's description; its size stays 0 until it is "generated"."""
    document_id = params["id"]
    with context.store.lock:
        document = context.store.documents.get(document_id)
        if document is None:
            raise not_found("id", document_id)
        document.polls += 1
        # Simulated generation: the first poll sees an empty document, like OVH's "size: 0".
        ready = document.polls > 1 or time.monotonic() - document.created_monotonic >= _DOCUMENT_GENERATION_SECONDS
    return json_reply(
        200,
        {
            "id": document.id,
            "name": document.name,
            "size": len(document.content) if ready else 0,
            "getUrl": f"{context.base_url}/_download/{document.id}.csv",
            "putUrl": f"{context.base_url}/_upload/{document.id}",
            "creationDate": format_api_datetime(document.created),
            "expirationDate": format_api_datetime(document.created + timedelta(days=1)),
            "validationDate": None,
            "tags": [],
        },
    )


def delete_document(context: Context, request: Request, params: dict[str, str]) -> Reply:
    """``DELETE /me/document/{id}``."""
    with context.store.lock:
        if context.store.documents.pop(params["id"], None) is None:
            raise not_found("id", params["id"])
    return json_reply(200, None)


def download(store: MemoryStore, name: str, method: str) -> Reply:
    """``GET /_download/{id}.csv`` (unsigned, like OVH's pre-signed getUrl): the document's CSV bytes."""
    document_id = name.removesuffix(".csv")
    with store.lock:
        document = store.documents.get(document_id) if method == "GET" else None
    if document is None:
        return json_reply(404, {"message": "Document not found"})
    return Reply(200, document.content, content_type="text/csv; charset=utf-8", is_json=False)


# --- the table -----------------------------------------------------------------------------------------


def _build_routes() -> tuple[Route, ...]:
    routes = [
        Route("GET", ("auth", "time"), auth_time, signed=False),
        Route("GET", ("sms",), list_services),
        Route("GET", ("sms", "ptts"), ptt_details),
        Route("GET", ("sms", "{sn}"), get_account),
        Route("GET", ("sms", "{sn}", "document"), create_document),
        Route("GET", ("me", "document", "{id}"), get_document),
        Route("DELETE", ("me", "document", "{id}"), delete_document),
    ]
    for direction in DIRECTIONS:
        routes += [
            Route("GET", ("sms", "{sn}", direction), list_records),
            Route("GET", ("sms", "{sn}", direction, "{id}"), get_record),
            Route("DELETE", ("sms", "{sn}", direction, "{id}"), delete_record),
        ]
    return tuple(routes)


ROUTES: Final = _build_routes()


def match_route(method: str, segments: tuple[str, ...]) -> tuple[Route, dict[str, str]] | None:
    """The first route of ``ROUTES`` for this method and path, with its placeholders' values; None if none."""
    # Routes with more literal segments come first in ROUTES where they could clash (sms/ptts).
    for route in ROUTES:
        if route.method != method or len(route.pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(route.pattern, segments, strict=True):
            if expected.startswith("{"):
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return route, params
    return None
