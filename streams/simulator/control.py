"""The ``/_sim`` control routes: inspect what the simulator saw, script it, stop it.

Routes::

    GET    /_sim/requests   recorded requests, oldest first (?key=SHA256, ?endpoint=NAME filter)
    DELETE /_sim/requests   forget records, attempt counters, stats and models asked for
    GET    /_sim/stats      counts by behaviour, status and endpoint; model listings apart
    GET    /_sim/script     the runtime script
    POST   /_sim/script     merge {"rules": {"<doc sha256>": ["http_429", "valid"]}}
    DELETE /_sim/script     clear the runtime script
    GET    /_sim/outage     {"active": bool, "status": int|null, "remaining_s": float|null}
    POST   /_sim/outage     {"status": 503, "seconds": 60}: every request fails until then
    DELETE /_sim/outage     end the outage now

A bad body is a 400 ``{"error": {"message": ...}}`` and changes nothing.

Usage::

    httpx.post(f"{url}/_sim/outage", json={"status": 503, "seconds": 5})
    ...  # every /v1/chat/completions, /v1/messages and /v1/models request is a 503
    httpx.delete(f"{url}/_sim/outage")
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from streams.errors import ConfigError
from streams.simulator.config import parse_script
from streams.simulator.state import STATE, SimulatorState

__all__ = ["DEFAULT_OUTAGE_STATUS", "add_control_routes", "parse_outage"]

#: The status of an outage posted without one: what a load balancer says with no backend.
DEFAULT_OUTAGE_STATUS = 503

_OUTAGE_KEYS = frozenset({"status", "seconds"})


def add_control_routes(app: web.Application) -> None:
    """Register every ``/_sim`` route on ``app``, whose :data:`STATE` they use."""
    app.router.add_get("/_sim/requests", _get_requests)
    app.router.add_delete("/_sim/requests", _reset_requests)
    app.router.add_get("/_sim/stats", _get_stats)
    app.router.add_get("/_sim/script", _get_script)
    app.router.add_post("/_sim/script", _post_script)
    app.router.add_delete("/_sim/script", _delete_script)
    app.router.add_get("/_sim/outage", _get_outage)
    app.router.add_post("/_sim/outage", _post_outage)
    app.router.add_delete("/_sim/outage", _delete_outage)


def parse_outage(body: Any) -> tuple[int, float | None]:
    """``(status, seconds)`` from a ``POST /_sim/outage`` body; ``seconds`` None: until DELETE.

    Raises :class:`ConfigError` for anything but an object with an optional
    4xx/5xx integer ``status`` and an optional number ``seconds`` > 0.
    """
    if not isinstance(body, dict):
        raise ConfigError('the body must be {"status": 503, "seconds": 60}')
    unknown = sorted(set(body) - _OUTAGE_KEYS)
    if unknown:
        raise ConfigError(f"unknown outage field {unknown[0]!r}; known: seconds, status")
    status = body.get("status", DEFAULT_OUTAGE_STATUS)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ConfigError(f"outage status must be an integer from 400 to 599, not {status!r}")
    seconds = body.get("seconds")
    if seconds is None:
        return status, None
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ConfigError(f"outage seconds must be a number > 0 (or omitted), not {seconds!r}")
    return status, float(seconds)


def _bad_body(exc: Exception) -> web.Response:
    return web.json_response({"error": {"message": str(exc)}}, status=400)


async def _get_requests(request: web.Request) -> web.Response:
    key = request.query.get("key")
    endpoint = request.query.get("endpoint")
    records = [
        r.as_dict()
        for r in request.app[STATE].records
        if (key is None or r.key == key) and (endpoint is None or r.endpoint == endpoint)
    ]
    return web.json_response({"requests": records})


async def _reset_requests(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def _get_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats())


def _script_body(state: SimulatorState) -> dict[str, Any]:
    return {"rules": {key: [b.value for b in rule] for key, rule in state.rules.items()}}


async def _get_script(request: web.Request) -> web.Response:
    return web.json_response(_script_body(request.app[STATE]))


async def _post_script(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = json.loads(await request.read())
        if not isinstance(body, dict) or "rules" not in body:
            raise ConfigError('the body must be {"rules": {"<doc sha256>": ["behaviour", ...]}}')
        rules = parse_script(body["rules"])
    except (ValueError, ConfigError) as exc:
        return _bad_body(exc)
    state.rules.update(rules)
    return web.json_response(_script_body(state))


async def _delete_script(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.rules.clear()
    return web.json_response(_script_body(state))


async def _get_outage(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].outage_body())


async def _post_outage(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        raw = await request.read()
        status, seconds = parse_outage(json.loads(raw) if raw.strip() else {})
    except (ValueError, ConfigError) as exc:
        return _bad_body(exc)
    state.start_outage(status, seconds)
    return web.json_response(state.outage_body())


async def _delete_outage(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.outage = None
    return web.json_response(state.outage_body())
