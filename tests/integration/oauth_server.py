"""An OAuth 2 token endpoint and its JWKS, served by the test, for OAUTHBEARER.

The broker validates tokens against ``jwks_url`` (Kafka's
``OAuthBearerValidatorCallbackHandler``); clients get RS256 JWTs from ``token_url`` with
the client-credentials grant (HTTP basic auth with the client id and secret), and the
token's ``sub`` is the client id, so the broker's principal is ``User:<client id>``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AUDIENCE = "kafka"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenServer:
    """``/token`` (client credentials) and ``/jwks`` on 127.0.0.1; one client id/secret."""

    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id = client_id
        self.secret = secret
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex[:8]
        self.issued = 0
        self.refused = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.token_url, self.jwks_url = f"{base}/token", f"{base}/jwks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid}
        return {"keys": [key | {"n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}]}

    def token(self, lifetime_s: int = 3600) -> str:
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": self._kid}
        claims = {"sub": self.client_id, "iat": now, "exp": now + lifetime_s, "aud": AUDIENCE}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/jwks":
                    self._json(200, server.jwks())
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode()
                if self.path != "/token" or "grant_type=client_credentials" not in form:
                    self._json(400, {"error": "invalid_request"})
                elif self.headers.get("Authorization") != server._basic:
                    server.refused += 1
                    self._json(401, {"error": "invalid_client"})
                else:
                    server.issued += 1
                    body = {"access_token": server.token(), "token_type": "Bearer"}
                    self._json(200, body | {"expires_in": 3600})

        return Handler

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
