"""Serving the history browser: ``sms-archiver web``, beside the daemon, and at the end of the demo.

uvicorn binds exactly the host given; its proxy-header rewriting is off, so the client address the
trusted-proxy rule checks is the TCP peer's, never a forwarded-for header.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import structlog
import uvicorn

from archiver.config import Settings, web_exposure_problem
from archiver.errors import ConfigError
from archiver.store import Store, open_store
from archiver.web.app import WebContext, create_app
from archiver.web.auth import Authenticator
from archiver.web.index import HistoryIndex

__all__ = ["WebServer", "build_context", "serve"]

log = structlog.get_logger(__name__)


def build_context(
    settings: Settings, store: Store | None = None, *, host: str | None = None, min_refresh_seconds: float = 5.0
) -> WebContext:
    """Check that the address may be served as configured, read the users, open the index."""
    web = settings.web
    problem = web_exposure_problem(
        host or web.host, htpasswd_file=web.htpasswd_file, trusted_user_header=web.trusted_user_header
    )
    if problem:
        raise ConfigError(problem.replace("SMS_ARCHIVER_WEB__HOST=", "SMS_ARCHIVER_WEB__HOST (or --host) "))
    if web.allow_delete:
        _check_deleting(settings)
    authenticator = Authenticator(web)
    store = store or open_store(settings.storage)
    index = HistoryIndex(
        store,
        settings.archive.zone,
        Path(web.cache_dir) if web.cache_dir else None,
        min_refresh_seconds=min_refresh_seconds,
    )
    return WebContext(settings, store, index, authenticator)


def _check_deleting(settings: Settings) -> None:
    """Deleting at OVH from the page needs a user to journal, and OVH credentials to call it with."""
    if not (settings.web.htpasswd_file or settings.web.trusted_user_header):
        raise ConfigError(
            "SMS_ARCHIVER_WEB__ALLOW_DELETE=true needs authenticated users (their names go in the journal), "
            "even on a loopback address: set SMS_ARCHIVER_WEB__HTPASSWD_FILE (htpasswd -B) or "
            "SMS_ARCHIVER_WEB__TRUSTED_USER_HEADER with SMS_ARCHIVER_WEB__TRUSTED_PROXIES"
        )
    if not settings.accounts and not settings.ovh.has_credentials:
        raise ConfigError(
            "SMS_ARCHIVER_WEB__ALLOW_DELETE=true needs OVH credentials to delete with: set "
            "SMS_ARCHIVER_OVH__APPLICATION_KEY, SMS_ARCHIVER_OVH__APPLICATION_SECRET and "
            "SMS_ARCHIVER_OVH__CONSUMER_KEY (or SMS_ARCHIVER_OVH__CLIENT_ID and SMS_ARCHIVER_OVH__CLIENT_SECRET)"
        )
    without = [name for name, account in sorted(settings.accounts.items()) if not account.has_credentials]
    if without:
        raise ConfigError(
            "SMS_ARCHIVER_WEB__ALLOW_DELETE=true needs OVH credentials to delete with, in every account: set "
            f"SMS_ARCHIVER_ACCOUNTS__NAME__APPLICATION_KEY and the others for {', '.join(without)}"
        )


def _config(context: WebContext, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(context),
        host=host,
        port=port,
        proxy_headers=False,  # the trusted-proxy rule needs the real peer address
        server_header=False,
        access_log=False,  # our own access log line (web_request) says who asked what
        log_config=None,
        timeout_graceful_shutdown=5,
    )


class WebServer:
    """uvicorn in a thread: started, its URL known once listening, stopped on request."""

    def __init__(self, context: WebContext, host: str, port: int) -> None:
        self.server = uvicorn.Server(_config(context, host, port))
        self.host = host
        self.context = context
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    @property
    def url(self) -> str:
        servers = self.server.servers
        port = servers[0].sockets[0].getsockname()[1] if servers and servers[0].sockets else 0
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/"

    def start(self, timeout: float = 30.0) -> WebServer:
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout * 20)):
            if self.server.started or not self._thread.is_alive():
                break
            deadline.wait(0.05)
        if not self.server.started:
            raise ConfigError(f"the history browser could not listen on {self.host} (port in use?)")
        return self

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; whether the server is still running."""
        self._thread.join(timeout)
        return self._thread.is_alive()

    def request_stop(self) -> None:
        self.server.should_exit = True

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)


def warm(context: WebContext) -> threading.Thread:
    """Build or refresh the index in the background, so that the first page is fast."""

    def run() -> None:
        try:
            context.index.refresh()
        except Exception as error:  # the first request refreshes again, and reports
            log.warning("web_index_warm_failed", error=str(error))

    thread = threading.Thread(target=run, name="web-index", daemon=True)
    thread.start()
    return thread


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """``sms-archiver web``: serve until interrupted."""
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    context = build_context(settings, host=host)
    # An index already built only needs the months that changed since: done before the first request.
    # A first build (a minute per million SMS) goes on in the background, the URL printed at once.
    built = bool(context.index.months())
    if built:
        context.index.refresh()
    server = WebServer(context, host, port)
    server.start()
    print(f"sms-archiver history browser: {server.url}  (Ctrl-C to stop)", flush=True)
    if not built:
        warm(context)
    # SIGTERM (systemd, docker stop) stops it as Ctrl-C does: requests in flight are finished.
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: server.request_stop())
    try:
        while server.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def start_beside_daemon(settings: Settings, store: Store | None = None) -> WebServer | None:
    """``sms-archiver run`` with ``SMS_ARCHIVER_WEB__ENABLED=true``: the browser in a thread (None: not enabled)."""
    if not settings.web.enabled:
        return None
    context = build_context(settings, store)
    try:
        server = WebServer(context, settings.web.host, settings.web.port).start()
    except ConfigError:
        raise ConfigError(
            f"SMS_ARCHIVER_WEB__PORT: the history browser cannot listen on {settings.web.host}:{settings.web.port}"
        ) from None
    log.info("web_started", url=server.url)
    warm(context)
    return server


def serve_demo(settings: Settings, store: Store) -> None:
    """The demo's last step, on a terminal: the history of the demo archive, until Ctrl-C."""
    context = build_context(settings, store, host="127.0.0.1")
    context.index.refresh()
    try:
        server = WebServer(context, "127.0.0.1", settings.web.port).start()
    except ConfigError:  # the usual port is taken: any free one will do
        server = WebServer(context, "127.0.0.1", 0).start()
    print(f"\nBrowse the history:  {server.url}   (Ctrl-C to stop)", flush=True)
    try:
        while server.wait(0.5):
            pass
    except KeyboardInterrupt:
        print()
    finally:
        server.stop()
