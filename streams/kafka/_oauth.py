"""OAUTHBEARER for aiokafka: tokens from an OAuth 2 client-credentials grant.

librdkafka does this itself (``sasl.oauthbearer.method=oidc``); aiokafka needs a token
provider, which fetches a token over ``httpx`` and reuses it until shortly before it
expires.
"""

from __future__ import annotations

import time

import httpx
from aiokafka.abc import AbstractTokenProvider
from pydantic import SecretStr

from streams.errors import ConfigError

__all__ = ["ClientCredentialsTokenProvider"]


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Fetch and cache an access token; its repr never shows the secret."""

    def __init__(
        self, endpoint: str, client_id: str, secret: SecretStr, scope: str | None = None
    ) -> None:
        self._endpoint = endpoint
        self._client_id = client_id
        self._secret = secret
        self._scope = scope
        self._token: str | None = None
        self._expires = 0.0

    def __repr__(self) -> str:
        return f"ClientCredentialsTokenProvider({self._endpoint!r}, {self._client_id!r})"

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        auth = (self._client_id, self._secret.get_secret_value())
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(self._endpoint, data=form, auth=auth)
        if response.status_code != 200:
            raise ConfigError(
                f"the OAuth token endpoint {self._endpoint} answered {response.status_code} "
                f"for client {self._client_id!r}: check kafka.username and kafka.password"
            )
        body = response.json()
        self._token = str(body["access_token"])
        # Renew a minute early, so a token never expires in the middle of a handshake.
        self._expires = time.monotonic() + max(float(body.get("expires_in", 300)) - 60, 5)
        return self._token
