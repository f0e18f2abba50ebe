"""A real HTTP proxy in front of the EMR (sekmet-fhir) that misbehaves on purpose, for the fault tests: it holds
answers back (so a worker can be killed after the EMR has written but before mECR heard), drops the connection in
the middle of an NDJSON file, and refuses a token as expired once.

It forwards every request to the EMR as it came (the SMART configuration too, so tokens are still obtained from the
EMR's own token endpoint) and rewrites the EMR's base URL to its own in FHIR answers (a Bulk Data manifest's file
URLs, ``Location``, ``Content-Location``), so every later request passes through it as well.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.conftest import free_port

_FORWARDED = (
    "authorization",
    "content-type",
    "accept",
    "prefer",
    "if-match",
    "if-none-exist",
    "if-none-match",
)
_RETURNED = (
    "content-type",
    "location",
    "content-location",
    "etag",
    "retry-after",
    "expires",
    "x-progress",
    "last-modified",
)


@dataclass
class Faults:
    """What the proxy does wrong (each field is read at the time of each request)."""

    #: Seconds to hold back the EMR's answer to a write (POST/PUT/DELETE) after the EMR has answered.
    hold_writes: float = 0.0
    #: Drop the connection this many times in the middle of an NDJSON file, after ``cut_after_lines`` lines.
    cut_ndjson: int = 0
    cut_after_lines: int = 10
    #: Answer 401 to the first FHIR request carrying a token once this many FHIR requests have passed.
    expire_token_after: int | None = None
    #: What happened: requests seen, tokens refused, files cut, answers being held back right now.
    log: list[tuple[str, str, int]] = field(default_factory=list)
    refused_tokens: list[str] = field(default_factory=list)
    cuts: int = 0
    holding: threading.Event = field(default_factory=threading.Event)


class FaultyProxy:
    """``FaultyProxy(upstream_base).start()``; ``.base`` is the FHIR base to register as the EMR."""

    def __init__(self, upstream_base: str) -> None:
        self.upstream = upstream_base.rstrip("/")
        self.upstream_root = self.upstream.removesuffix("/fhir")
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base = self.root + self.upstream[len(self.upstream_root) :]
        self.faults = Faults()
        self._http = httpx.Client(timeout=60)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any  # noqa: N815 - http.server's names

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    # -- one request ------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        f = self.faults
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        headers = {k: v for k, v in h.headers.items() if k.lower() in _FORWARDED}
        token = (h.headers.get("authorization") or "").removeprefix("Bearer ")
        with self._lock:
            f.log.append((h.command, h.path.split("?", 1)[0], 0))
            fhir_requests = sum(1 for _, p, _ in f.log if ".well-known" not in p)
            refuse = (
                token
                and f.expire_token_after is not None
                and fhir_requests > f.expire_token_after
                and not f.refused_tokens
            )
            if refuse:
                f.refused_tokens.append(token)
        if refuse or (token and token in f.refused_tokens):
            self._reply(
                h,
                401,
                {"content-type": "application/fhir+json"},
                b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"expired",'
                b'"diagnostics":"the access token has expired"}]}',
            )
            return
        upstream = self.upstream_root + h.path
        response = self._http.request(h.command, upstream, content=body, headers=headers)
        out_headers = {k: v for k, v in response.headers.items() if k.lower() in _RETURNED}
        content = response.content
        if ".well-known" not in h.path:
            content = content.replace(self.upstream_root.encode(), self.root.encode())
            out_headers = {k: v.replace(self.upstream_root, self.root) for k, v in out_headers.items()}
        ndjson = "ndjson" in response.headers.get("content-type", "")
        if ndjson and f.cut_ndjson > 0 and content.count(b"\n") > f.cut_after_lines:
            with self._lock:
                f.cut_ndjson -= 1
                f.cuts += 1
            self._cut(h, out_headers, content, f.cut_after_lines)
            return
        if h.command in ("POST", "PUT", "DELETE") and f.hold_writes:
            f.holding.set()  # the EMR has written; its answer is not on its way yet
            time.sleep(f.hold_writes)
            f.holding.clear()
        self._reply(h, response.status_code, out_headers, content)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], content: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(content)))
        h.end_headers()
        h.wfile.write(content)
        h.wfile.flush()

    @staticmethod
    def _cut(h: BaseHTTPRequestHandler, headers: dict[str, str], content: bytes, lines: int) -> None:
        """Send ``lines`` whole lines and half of the next as a chunked body, then close the socket."""
        cut = 0
        for _ in range(lines):
            cut = content.index(b"\n", cut) + 1
        cut += (content.index(b"\n", cut) - cut) // 2
        h.send_response(200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.write(b"%x\r\n%s\r\n" % (cut, content[:cut]))
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)
