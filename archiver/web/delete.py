"""Deleting selected SMS at OVH from the history page (only with ``SMS_ARCHIVER_WEB__ALLOW_DELETE=true``).

The page's form sends the ticked SMS to ``POST /delete/review``: a dry run of
``run_selected_deletion`` (retention's proof, without its age policy) says, for each, whether it
would be deleted or kept and why. ``POST /delete/confirm`` runs it for real and shows the outcome
and the run id of the journal. Both refuse (403) a request without this user's valid CSRF token, or
whose ``Origin`` is another site's. OVH is reached only for these requests: an ``OvhSource`` is
opened for each and closed after.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from archiver.actions.retention import Decision, RetentionReport, run_selected_deletion
from archiver.actions.status import accounts_of
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError
from archiver.naming import DIRECTIONS, Direction
from archiver.source import OvhSource
from archiver.store import Store
from archiver.web.auth import ANONYMOUS

__all__ = ["MAX_SELECTED", "delete_routes", "parse_selection"]

log = structlog.get_logger(__name__)

MAX_SELECTED = 500  # a page holds at most this many rows
_MAX_BODY = 64 * 1024


class BadSelection(ValueError):
    pass


def parse_selection(values: list[str], services: list[str]) -> dict[tuple[str, Direction], list[int]]:
    """The ticked SMS (``service/direction/id`` each), grouped by service and direction."""
    if not values:
        raise BadSelection("no SMS selected")
    if len(values) > MAX_SELECTED:
        raise BadSelection(f"at most {MAX_SELECTED} SMS at a time")
    groups: dict[tuple[str, Direction], list[int]] = {}
    for value in values:
        service, _sep, rest = value.partition("/")
        direction, _sep, raw_id = rest.partition("/")
        if service not in services or direction not in DIRECTIONS or not raw_id.isdigit() or len(raw_id) > 20:
            raise BadSelection(f"not an SMS of the archive: {value[:80]!r}")
        ids = groups.setdefault((service, direction), [])
        if int(raw_id) not in ids:
            ids.append(int(raw_id))
    return groups


async def _form(request: Request) -> dict[str, list[str]] | Response:
    """The posted form, once the request is proved to come from our own page for this user."""
    origin = request.headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get("host", ""):
        return PlainTextResponse("refused: the form was not sent from this site", status_code=403)
    body = await request.body()
    if len(body) > _MAX_BODY:
        return PlainTextResponse("too much posted", status_code=413)
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), max_num_fields=MAX_SELECTED + 10)
    except (UnicodeDecodeError, ValueError):
        return PlainTextResponse("a form was expected", status_code=400)
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    user: str = request.state.user
    token = (form.get("csrf") or [""])[0]
    if user == ANONYMOUS or not request.app.state.web.csrf.valid(token, user):
        return PlainTextResponse("refused: missing or expired form token, reload the page", status_code=403)
    return form


def _run(
    settings: Settings, store: Store, groups: dict[tuple[str, Direction], list[int]], *, user: str, apply: bool
) -> list[RetentionReport]:
    reports = []
    # Each service is deleted from through its own OVH account's source (one per account, made once).
    accounts = accounts_of(settings, store, sorted({service for service, _direction in groups}))
    sources: dict[str, OvhSource] = {}
    try:
        for (service, direction), ids in groups.items():
            name = accounts[service]
            if name is None:
                raise ConfigError(
                    f"the OVH account of service {service} is not known: name it in its account's services "
                    "(SMS_ARCHIVER_ACCOUNTS__NAME__SERVICES)"
                )
            account = settings.for_account(name)
            if name not in sources:
                sources[name] = OvhSource(account.ovh)
            report = run_selected_deletion(
                account, sources[name], store, service, direction, ids, user=user, apply=apply
            )
            reports.append(report)
            if apply:
                log.info(
                    "web_delete",
                    user=user,
                    service=service,
                    direction=direction,
                    ids=len(ids),
                    deleted=report.deleted,
                    run_id=report.run_id,
                )
    finally:
        for source in sources.values():
            source.close()
    return reports


def _page(context: Any, request: Request, name: str, **values: Any) -> Response:
    """``WebContext.page`` (the context is not typed here: ``archiver.web.app`` imports this module)."""
    response: Response = context.page(request, name, **values)
    return response


def _handler(apply: bool) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        context = request.app.state.web  # the app's WebContext (not imported: app imports this module)
        form = await _form(request)
        if isinstance(form, Response):
            return form
        context.index.ensure_fresh()
        try:
            groups = parse_selection(form.get("sms", []), context.index.services())
        except BadSelection as error:
            return _page(context, request, "error.html", status=400, message=str(error))
        request.state.filters = {"selected": sum(len(ids) for ids in groups.values()), "apply": apply}
        user: str = request.state.user
        try:
            reports = await run_in_threadpool(_run, context.settings, context.store, groups, user=user, apply=apply)
        except ArchiverError as error:
            log.warning("web_delete_failed", user=user, applied=apply, error=str(error))
            message = f"Nothing more was deleted: {error}"
            return _page(context, request, "error.html", status=503, message=message)
        decisions: list[Decision] = [decision for report in reports for decision in report.decisions]
        request.state.rows = len(decisions)
        return _page(
            context,
            request,
            "delete.html",
            applied=apply,
            decisions=decisions,
            selected=form.get("sms", []),
            run_ids=[report.run_id for report in reports],
            deleted=sum(report.deleted for report in reports),
            deletable=sum(report.count("delete") for report in reports),
            csrf=context.csrf.issue(user),
        )

    return handle


def delete_routes() -> list[Route]:
    return [
        Route("/delete/review", _handler(apply=False), methods=["POST"]),
        Route("/delete/confirm", _handler(apply=True), methods=["POST"]),
    ]
