"""An S3 store that ignores conditional writes, as a real HTTP server: a proxy in front of moto.

Some S3-compatible stores accept ``If-None-Match``/``If-Match`` on PutObject and simply ignore
them (every write wins). To give the archiver that answer over a real wire, this proxy listens on
127.0.0.1, strips both headers from each request and forwards the rest, bytes unchanged, to the
moto server (which does not check signatures, so the stripped request is still accepted).
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

# Request headers a store that ignores conditions behaves as if it never received.
CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-match"})
# Hop-by-hop headers: they describe one connection, not the message.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"})
_UPSTREAM_TIMEOUT_SECONDS = 30


class IgnoringConditionsProxy:
    """Forward every request to ``upstream`` without its conditional headers; count what it dropped."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        assert parts.hostname == "127.0.0.1", "the proxy only forwards to loopback"
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.stripped = 0  # conditional headers dropped so far
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-ignoring-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _count_stripped(self, count: int) -> None:
        with self._lock:
            self.stripped += count

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the tests' output is for the tests

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                headers = {}
                stripped = 0
                for name, value in self.headers.items():
                    lowered = name.lower()
                    if lowered in CONDITIONAL_HEADERS:
                        stripped += 1
                    elif lowered not in _HOP_BY_HOP and lowered != "content-length":
                        headers[name] = value
                proxy._count_stripped(stripped)
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=_UPSTREAM_TIMEOUT_SECONDS
                )
                try:
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    # A HEAD answer announces the length of the body it does not send.
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler


@contextmanager
def ignoring_conditions_proxy(upstream: str) -> Iterator[IgnoringConditionsProxy]:
    """Run the proxy for the duration of the block; it is stopped (and its thread joined) after."""
    proxy = IgnoringConditionsProxy(upstream)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
