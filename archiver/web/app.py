"""The history browser's HTTP application (Starlette): pages, JSON API, CSV download.

It reads the archive only: the pages and the API are answered from the index
(``archiver.web.index``), which holds the reader's own rows; one SMS's versions and the CSV
download go to the reader and ``retrieve`` directly. It reaches OVH only to delete selected SMS,
when ``SMS_ARCHIVER_WEB__ALLOW_DELETE`` is on (``archiver.web.delete``).
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.naming import DIRECTIONS, Direction
from archiver.reader import summarize_months
from archiver.records import describe_ptt
from archiver.store import Store
from archiver.web.auth import Authenticator
from archiver.web.chart import bar_chart, by_month
from archiver.web.csrf import CsrfTokens
from archiver.web.delete import delete_routes
from archiver.web.export import export_csv, export_name
from archiver.web.index import HistoryIndex
from archiver.web.query import BadParameter, Filters, Page, day_counts, parse_filters, search
from archiver.web.versions import sms_versions

__all__ = ["SECURITY_HEADERS", "WebContext", "create_app"]

log = structlog.get_logger(__name__)

_HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_SHORT_MESSAGE = 80


class WebContext:
    """What every request needs: settings, the store, the index, who may come in, the templates."""

    def __init__(self, settings: Settings, store: Store, index: HistoryIndex, authenticator: Authenticator) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.auth = authenticator
        self.allow_delete = settings.web.allow_delete
        self.csrf = CsrfTokens()
        self.zone: zoneinfo.ZoneInfo = settings.archive.zone
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,  # every value is escaped: messages, senders and tags are untrusted text
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals.update(local_time=self.local_time, short=_short, describe_ptt=_describe)
        for name in self.templates.list_templates():
            self.templates.get_template(name)  # compiled now, not on the first request

    def local_time(self, text: str) -> str:
        if not text:
            return ""
        return dt.datetime.fromisoformat(text).astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def page(self, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            zone=self.zone.key, user=request.state.user, path=request.url.path, **values
        )
        return HTMLResponse(html, status_code=status)


def _short(message: str) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= _SHORT_MESSAGE else flat[: _SHORT_MESSAGE - 1] + "…"


def _describe(ptt: str) -> str:
    return describe_ptt(int(ptt)) if ptt.isdigit() else ""


def _context(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


def _filters(request: Request) -> Filters:
    context = _context(request)
    context.index.ensure_fresh()
    filters = parse_filters(dict(request.query_params), context.index.services())
    request.state.filters = filters.logged()
    return filters


def _bad(request: Request, error: BadParameter) -> Response:
    if request.url.path.startswith("/api/") or request.url.path.endswith(".csv"):
        return JSONResponse({"error": str(error), "parameter": error.name}, status_code=400)
    return _context(request).page(request, "error.html", status=400, message=str(error))


# -- JSON API --------------------------------------------------------------------------------------


def _page_of(request: Request) -> tuple[Filters, Page] | Response:
    """The request's filters and one page of the index for them (rows noted for the access log), or a 400."""
    try:
        filters = _filters(request)
    except BadParameter as error:
        return _bad(request, error)
    context = _context(request)
    with context.index.connection() as db:
        page = search(db, filters, context.zone)
    request.state.rows = len(page.items)
    return filters, page


def api_sms(request: Request) -> Response:
    found = _page_of(request)
    if isinstance(found, Response):
        return found
    _filters_used, page = found
    return JSONResponse({"items": page.items, "next": page.next})


def _one(request: Request) -> tuple[str, Direction, int] | Response:
    context = _context(request)
    context.index.ensure_fresh()
    service = request.path_params["service"]
    direction = request.path_params["direction"]
    raw_id = request.path_params["sms_id"]
    if service not in context.index.services() or direction not in DIRECTIONS:
        return PlainTextResponse("no such service or direction in the archive", status_code=404)
    if not raw_id.isdigit() or len(raw_id) > 20:
        return PlainTextResponse("id: expected a number", status_code=400)
    request.state.filters = {"service": service, "direction": direction, "id": raw_id}
    return service, direction, int(raw_id)


def api_one(request: Request) -> Response:
    found = _one(request)
    if isinstance(found, Response):
        return found
    service, direction, sms_id = found
    versions = sms_versions(_context(request).store, service, direction, sms_id)
    if not versions:
        return JSONResponse({"error": "no such SMS in the archive"}, status_code=404)
    current = next((version for version in versions if version.current), versions[-1])
    request.state.rows = 1
    return JSONResponse(
        {
            "item": {"service": service, "direction": direction, **current.fields},
            "versions": [version.as_json() for version in versions],
        }
    )


def api_months(request: Request) -> Response:
    context = _context(request)
    context.index.ensure_fresh()
    months = [
        asdict(summary)
        for service in context.index.services()
        for direction in DIRECTIONS
        for summary in summarize_months(context.store, service, direction)
    ]
    request.state.rows = len(months)
    return JSONResponse(months)


def export(request: Request) -> Response:
    context = _context(request)
    params = dict(request.query_params)
    excel = params.pop("excel", "") in ("1", "true", "yes")
    try:
        context.index.ensure_fresh()
        services = context.index.services()
        filters = parse_filters(params, services)
        request.state.filters = {**filters.logged(), **({"excel": "1"} if excel else {})}
        service = filters.service or (services[0] if len(services) == 1 else None)
        if service is None:
            raise BadParameter("service", f"the archive holds several services: choose one of {', '.join(services)}")
        direction: Direction = filters.direction or "outgoing"
        with context.index.connection() as db:
            body, count = export_csv(
                context.store,
                db,
                service,
                direction,
                filters,
                zone=context.zone,
                delimiter=context.settings.archive.delimiter,
                excel=excel,
            )
    except BadParameter as error:
        return _bad(request, error)
    request.state.rows = count

    def chunks() -> Any:
        with body:
            while chunk := body.read(1 << 16):
                yield chunk

    name = export_name(service, direction, filters)
    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- pages -----------------------------------------------------------------------------------------


def history(request: Request) -> Response:
    found = _page_of(request)
    if isinstance(found, Response):
        return found
    filters, page = found
    context = _context(request)
    months = sorted({month.month for month in context.index.months()}, reverse=True)
    return context.page(
        request,
        "history.html",
        filters=filters,
        items=page.items,
        next_url=filters.url("/", after=page.next) if page.next else None,
        flip_url=filters.url("/", order="asc" if filters.order == "desc" else None, after=None),
        first_url=filters.url("/", after=None) if filters.after else None,
        export_url=filters.url("/export.csv", order=None, limit=None, after=None),
        excel_url=filters.url("/export.csv", order=None, limit=None, after=None, excel="1"),
        months=[(month, _month_url(filters, month)) for month in months],
        services=context.index.services(),
        # The delete form's token; none (no form, no checkboxes) unless deleting is allowed.
        csrf=context.csrf.issue(request.state.user) if context.allow_delete else "",
    )


def _month_url(filters: Filters, month: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    end = dt.date(year + 1, 1, 1) if number == 12 else dt.date(year, number + 1, 1)
    return filters.url("/", **{"from": f"{month}-01", "to": end.isoformat(), "after": None})


def one_sms(request: Request) -> Response:
    found = _one(request)
    if isinstance(found, Response):
        return found
    service, direction, sms_id = found
    context = _context(request)
    versions = sms_versions(context.store, service, direction, sms_id)
    if not versions:
        return context.page(request, "error.html", status=404, message="No such SMS in the archive.")
    current = next((version for version in versions if version.current), versions[-1])
    request.state.rows = 1
    return context.page(
        request, "sms.html", service=service, direction=direction, sms=current.fields, versions=versions
    )


def overview(request: Request) -> Response:
    try:
        filters = _filters(request)
    except BadParameter as error:
        return _bad(request, error)
    context = _context(request)
    with context.index.connection() as db:
        days = day_counts(db, filters, context.zone)
    request.state.rows = sum(count for _day, _state, count in days)
    recent_days = sorted({day for day, _state, _count in days})[-92:]
    shown_days = set(recent_days)
    daily = [item for item in days if item[0] in shown_days]
    summaries = [
        summary
        for service in ([filters.service] if filters.service else context.index.services())
        for direction in ([filters.direction] if filters.direction else DIRECTIONS)
        for summary in summarize_months(context.store, service, direction)
    ]
    return context.page(
        request,
        "overview.html",
        filters=filters,
        monthly=bar_chart(by_month(days), bar_width=52),
        daily=bar_chart(daily, bar_width=8, label_every=7),
        daily_cut=len(recent_days) < len({day for day, _s, _c in days}),
        summaries=summaries,
        total=request.state.rows,
        export_url=filters.url("/export.csv", order=None, limit=None, after=None),
        history_url=filters.url("/", after=None),
        services=context.index.services(),
    )


# -- the guard: who is asking, security headers, the access log ------------------------------------


class Guard(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.monotonic()
        context: WebContext = request.app.state.web
        peer = request.client.host if request.client else None
        verdict = context.auth.identify(peer, request.headers)
        request.state.user = verdict.user or "-"
        request.state.rows = 0
        request.state.filters = {}
        if verdict.user is None:
            response: Response = PlainTextResponse("authentication required", status_code=401)
            if verdict.challenge:
                response.headers["WWW-Authenticate"] = 'Basic realm="sms-archiver", charset="UTF-8"'
        else:
            try:
                response = await call_next(request)
            except ArchiverError as error:  # the store cannot be read now: say so, and log it below
                response = PlainTextResponse(f"the archive cannot be read now: {error}", status_code=503)
        response.headers.update(SECURITY_HEADERS)
        if context.allow_delete:
            # Under no-referrer, a browser sends "Origin: null" with the page's form POSTs, which the
            # delete routes must refuse (a sandboxed or foreign page says the same): same-origin lets it
            # name our origin to us, and still tells no other site where the user was.
            response.headers["Referrer-Policy"] = "same-origin"
        log.info(
            "web_request",
            user=verdict.user,
            peer=peer,
            method=request.method,
            path=request.url.path,
            filters=request.state.filters,
            rows=request.state.rows,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return response


def create_app(context: WebContext) -> Starlette:
    routes = [
        Route("/", history),
        Route("/overview", overview),
        Route("/sms/{service}/{direction}/{sms_id}", one_sms),
        Route("/api/sms", api_sms),
        Route("/api/sms/{service}/{direction}/{sms_id}", api_one),
        Route("/api/months", api_months),
        Route("/export.csv", export),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    if context.allow_delete:  # otherwise these paths do not exist (404)
        routes += delete_routes()
    app = Starlette(routes=routes, middleware=[Middleware(Guard)])
    app.state.web = context
    return app
