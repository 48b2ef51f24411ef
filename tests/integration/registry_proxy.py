"""A TLS + basic-auth reverse proxy in front of the local registry, for the auth tests.

Managed registries sit behind TLS and authentication; Apicurio here has neither. This
proxy is a real HTTPS server (a certificate from the test's own CA) that refuses any
request without the expected ``Authorization`` header (401) and forwards the rest to the
registry, so the client's auth and CA settings are exercised over the wire.
"""

from __future__ import annotations

import base64
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from streams.devstack.secure import generate_ca, issue_certificate

#: The credentials the session's proxy accepts: canaries, so a test can grep every output
#: for them.
PROXY_TOKEN = f"canary-token-{uuid.uuid4().hex}"
PROXY_PASSWORD = f"canary-registry-{uuid.uuid4().hex}"

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RegistryProxy:
    """``https://127.0.0.1:<port>`` -> ``upstream``, accepting one user or one bearer token."""

    def __init__(
        self, upstream: str, workdir: Path, *, user: str, password: str, token: str
    ) -> None:
        self.upstream = upstream.rstrip("/")
        ca = generate_ca(workdir, "registry proxy CA")
        cert, _keystore = issue_certificate(workdir, ca, "proxy", password="unused")
        self.ca_file = ca[0]
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._accepted = {f"Basic {basic}", f"Bearer {token}"}
        self.refused = 0
        self.forwarded = 0
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, workdir / "proxy.key")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line would land in the test's captured output

            def _forward(self) -> None:
                if self.headers.get("Authorization") not in proxy._accepted:
                    proxy.refused += 1
                    body = b'{"error_code": 401, "message": "Unauthorized"}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                proxy.forwarded += 1
                length = int(self.headers.get("Content-Length") or 0)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP and k.lower() != "authorization"
                }
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=self.rfile.read(length) if length else None,
                    headers=headers,
                    timeout=30,
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler

    def __enter__(self) -> RegistryProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
