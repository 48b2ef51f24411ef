"""A real HTTP/1.1 server on 127.0.0.1 for the transport tests: real sockets, scripted answers.

Each request is read off the socket and handed to a ``reply`` coroutine with
the connection's writer, so a test can answer properly, hang, send garbage or
cut the connection halfway::

    server = LocalServer(json_reply(200, {"ok": True}))
    await server.start()            # server.url == "http://127.0.0.1:<port>"
    ...
    await server.close()
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    """One request as it arrived on the socket."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


#: Answers one request. Closing the writer ends the connection.
Reply = Callable[[Received, asyncio.StreamWriter], Awaitable[None]]


class LocalServer:
    """Serves ``reply`` on an ephemeral port; records requests and connection counts."""

    def __init__(self, reply: Reply, *, reads: bool = True) -> None:
        self.reply = reply
        self.reads = reads  # False: accept connections but never read from them
        self.requests: list[Received] = []
        self.open_connections = 0
        self.peak_connections = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        try:
            if not self.reads:
                await asyncio.sleep(3600)
            while not writer.is_closing():
                try:
                    received = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.requests.append(received)
                await self.reply(received, writer)
        except asyncio.CancelledError:
            # close() cancels handlers that are still replying (a hang). Ending quietly
            # matters on 3.11, whose streams log a cancelled handler as an error.
            pass
        finally:
            self.open_connections -= 1
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Received:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Received(method=method, target=target, headers=headers, body=body)


def response_bytes(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length, kept alive."""
    fields = {"Content-Length": str(len(body)), "Connection": "keep-alive", **(headers or {})}
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + body


def raw_reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    """Answer every request with these bytes as the body."""
    data = response_bytes(status, body, headers)

    async def reply(received: Received, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return reply


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    """Answer every request with ``payload`` as JSON."""
    return raw_reply(
        status, orjson.dumps(payload), {"Content-Type": "application/json", **(headers or {})}
    )


def routes(table: dict[tuple[str, str], Reply]) -> Reply:
    """Dispatch on ``(method, path)``, the query string ignored; anything else is a 404."""
    missing = raw_reply(404, b"<html>404 Not Found</html>", {"Content-Type": "text/html"})

    async def reply(received: Received, writer: asyncio.StreamWriter) -> None:
        path = received.target.split("?", 1)[0]
        await table.get((received.method, path), missing)(received, writer)

    return reply


async def hang(received: Received, writer: asyncio.StreamWriter) -> None:
    """Read the request, then never answer (until the server closes)."""
    await asyncio.sleep(3600)


async def close_before_answering(received: Received, writer: asyncio.StreamWriter) -> None:
    """Read the request and drop the connection without a byte of response."""
    writer.close()


async def close_mid_body(received: Received, writer: asyncio.StreamWriter) -> None:
    """Promise 1,000 bytes of body, send 20, and drop the connection."""
    writer.write(
        response_bytes(200, b"", {"Content-Type": "application/json"}).replace(
            b"Content-Length: 0", b"Content-Length: 1000"
        )
        + b'{"choices": [{"mess'
    )
    await writer.drain()
    writer.close()


async def garbage_status_line(received: Received, writer: asyncio.StreamWriter) -> None:
    """Answer with something that is not HTTP at all."""
    writer.write(b"HELLO I AM NOT HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


_REASONS = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
