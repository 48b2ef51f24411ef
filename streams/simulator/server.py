"""The simulator's HTTP server: routes, per-run state, and three ways to run it.

Routes::

    POST   /v1/chat/completions   OpenAI chat completions (strict json_schema checked)
    POST   /v1/messages           Anthropic Messages (answer as a tool_use block)
    GET    /healthz               {"status": "ok", "fixtures": N}
    GET    /_sim/requests         recorded requests, oldest first (?key=SHA256 filters)
    DELETE /_sim/requests         forget recorded requests, attempt counters and stats
    GET    /_sim/stats            counts by behaviour, status and endpoint
    GET    /_sim/script           the runtime script
    POST   /_sim/script           merge {"rules": {"<doc sha256>": ["http_429", "valid"]}}
    DELETE /_sim/script           clear the runtime script

Usage::

    async with RunningSimulator(SimulatorConfig(fixture_dirs=[samples])) as sim:
        httpx.post(f"{sim.url}/v1/chat/completions", json=...)

    sim = SimulatorThread(config)   # for sync code and session fixtures
    url = sim.start()
    ...
    sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

from streams.errors import ConfigError
from streams.simulator.behaviours import ErrorKind, Failure, Reply, limit_output, outcome_for
from streams.simulator.config import Behaviour, SimulatorConfig, parse_script
from streams.simulator.fixtures import load_fixtures
from streams.simulator.scripting import choose_behaviour
from streams.simulator.wire import AnthropicDialect, Dialect, OpenAIDialect, Rejected, SimRequest

__all__ = ["RequestRecord", "RunningSimulator", "SimulatorThread", "build_app", "serve"]

#: Seconds the server waits for in-flight requests on shutdown; hangs are woken first.
SHUTDOWN_TIMEOUT_S = 2.0
#: Documents and few-shot prompts can be large; aiohttp's default cap is 1 MiB.
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class RequestRecord:
    """One request as the simulator saw it; ``GET /_sim/requests`` lists these.

    ``status`` is ``None`` when the client went away before the answer.
    ``behaviour`` is a :class:`Behaviour` value, or ``rejected:<why>`` for a
    request refused before any behaviour ran (auth, concurrency, request, schema,
    directive).
    """

    endpoint: str
    received_at: float
    key: str | None = None
    attempt: int | None = None
    behaviour: str | None = None
    status: int | None = None
    model_requested: str | None = None
    model_reported: str | None = None
    strict_response_format: bool | None = None
    schema_name: str | None = None
    tool_name: str | None = None
    document_block: bool | None = None
    fixture: bool | None = None
    max_tokens: int | None = None
    finish: str | None = None
    message_count: int | None = None
    messages: list[Any] = field(default_factory=list)
    system: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SimulatorState:
    """Everything that changes while the simulator runs. Lives on one event loop."""

    def __init__(self, config: SimulatorConfig, fixtures: Mapping[str, Mapping[str, Any]]) -> None:
        self.config = config
        self.fixtures = fixtures
        self.rules: dict[str, tuple[Behaviour, ...]] = parse_script(config.script)
        self.attempts: Counter[str] = Counter()
        self.records: deque[RequestRecord] = deque(maxlen=config.record_limit)
        self.by_behaviour: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()
        self.in_flight = 0
        self.closing = asyncio.Event()

    def next_attempt(self, key: str) -> int:
        self.attempts[key] += 1
        return self.attempts[key]

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.by_behaviour[record.behaviour or "none"] += 1
        self.by_status[str(record.status) if record.status is not None else "disconnected"] += 1
        self.by_endpoint[record.endpoint] += 1

    def reset(self) -> None:
        self.attempts.clear()
        self.records.clear()
        self.by_behaviour.clear()
        self.by_status.clear()
        self.by_endpoint.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_endpoint.values()),
            "by_behaviour": dict(self.by_behaviour),
            "by_status": dict(self.by_status),
            "by_endpoint": dict(self.by_endpoint),
            "in_flight": self.in_flight,
        }

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server shuts down."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), seconds)


STATE = web.AppKey("simulator_state", SimulatorState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(config: SimulatorConfig) -> web.Application:
    """The aiohttp application. Loads fixtures now; raises ConfigError if they are bad."""
    state = SimulatorState(config, load_fixtures(config.fixture_dirs))
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE] = state

    async def wake_sleepers(app: web.Application) -> None:
        app[STATE].closing.set()

    app.on_shutdown.append(wake_sleepers)
    openai = OpenAIDialect(config.strict_unsupported_keywords)
    app.router.add_post("/v1/chat/completions", _completion_handler(openai))
    app.router.add_post("/v1/messages", _completion_handler(AnthropicDialect()))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/_sim/requests", _get_requests)
    app.router.add_delete("/_sim/requests", _reset_requests)
    app.router.add_get("/_sim/stats", _get_stats)
    app.router.add_get("/_sim/script", _get_script)
    app.router.add_post("/_sim/script", _post_script)
    app.router.add_delete("/_sim/script", _delete_script)
    return app


def _completion_handler(dialect: Dialect) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        record = RequestRecord(endpoint=dialect.endpoint, received_at=time.time())
        try:
            limit = state.config.max_concurrency
            if limit is not None and state.in_flight >= limit:
                failure = Failure(
                    429,
                    ErrorKind.RATE_LIMIT,
                    f"More than {limit} concurrent requests (simulated). Please retry.",
                    retry_after_s=state.config.retry_after_s,
                    code="rate_limit_exceeded",
                )
                return _fail(dialect, record, failure, "rejected:concurrency")
            state.in_flight += 1
            try:
                return await _complete(request, dialect, state, record)
            finally:
                state.in_flight -= 1
        finally:
            state.record(record)

    return handle


async def _complete(
    request: web.Request, dialect: Dialect, state: SimulatorState, record: RequestRecord
) -> web.Response:
    config = state.config
    if config.api_key is not None and not dialect.authorised(request.headers, config.api_key):
        failure = Failure(
            401, ErrorKind.AUTHENTICATION, "Incorrect API key provided.", code="invalid_api_key"
        )
        return _fail(dialect, record, failure, "rejected:auth")
    try:
        body = json.loads(await request.read())
        sim = dialect.parse(body)
    except ValueError:
        failure = Failure(400, ErrorKind.INVALID_REQUEST, "The request body is not valid JSON.")
        return _fail(dialect, record, failure, "rejected:request")
    except Rejected as exc:
        return _fail(dialect, record, exc.failure, exc.label)
    _describe(record, sim, config)
    record.fixture = sim.key in state.fixtures
    try:
        dialect.check(sim)
    except Rejected as exc:
        return _fail(dialect, record, exc.failure, exc.label)

    record.attempt = attempt = state.next_attempt(sim.key)
    try:
        behaviour = choose_behaviour(
            document=sim.document,
            key=sim.key,
            attempt=attempt,
            rules=state.rules,
            mix=config.fault_mix,
            seed=config.seed,
        )
    except ConfigError as exc:
        failure = Failure(400, ErrorKind.INVALID_REQUEST, f"bad [[sim: ...]] directive: {exc}")
        return _fail(dialect, record, failure, "rejected:directive")
    record.behaviour = behaviour.value
    outcome = outcome_for(behaviour, state.fixtures.get(sim.key), config)
    delay = config.latency_ms / 1000 + (outcome.delay_s if isinstance(outcome, Reply) else 0.0)
    await state.pause(delay)
    if isinstance(outcome, Failure):
        return _fail(dialect, record, outcome, behaviour.value)
    reply = limit_output(outcome, sim.max_tokens)
    record.finish = "truncated" if reply.truncated else "complete"
    record.status = 200
    body = dialect.completion(
        sim,
        reply,
        model=record.model_reported or sim.model,
        response_id=f"{sim.key[:12]}-{attempt}",
    )
    return web.json_response(body, headers=_sim_headers(record))


def _describe(record: RequestRecord, sim: SimRequest, config: SimulatorConfig) -> None:
    record.key = sim.key
    record.model_requested = sim.model
    record.model_reported = sim.model + config.model_suffix
    record.strict_response_format = sim.strict
    record.schema_name = sim.schema_name
    record.tool_name = sim.tool_name
    record.document_block = sim.document_block
    record.max_tokens = sim.max_tokens
    record.message_count = len(sim.messages)
    record.messages = sim.messages
    record.system = sim.system


def _fail(dialect: Dialect, record: RequestRecord, failure: Failure, label: str) -> web.Response:
    record.behaviour = label
    record.status = failure.status
    headers = _sim_headers(record)
    if failure.retry_after_s is not None:
        headers["Retry-After"] = str(failure.retry_after_s)
    return web.json_response(dialect.error(failure), status=failure.status, headers=headers)


def _sim_headers(record: RequestRecord) -> dict[str, str]:
    headers = {"x-sim-behaviour": record.behaviour or ""}
    if record.attempt is not None:
        headers["x-sim-attempt"] = str(record.attempt)
    if record.key is not None:
        headers["x-sim-key"] = record.key
    return headers


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "fixtures": len(request.app[STATE].fixtures)})


async def _get_requests(request: web.Request) -> web.Response:
    key = request.query.get("key")
    records = [r.as_dict() for r in request.app[STATE].records if key is None or r.key == key]
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
        return web.json_response({"error": {"message": str(exc)}}, status=400)
    state.rules.update(rules)
    return web.json_response(_script_body(state))


async def _delete_script(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.rules.clear()
    return web.json_response(_script_body(state))


class RunningSimulator:
    """The simulator listening on a real port for as long as the ``async with`` lasts.

    ``port=0`` picks a free port; ``url`` tells which.
    """

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the simulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> str:
        """Bind and start serving; returns the base URL."""
        runner = web.AppRunner(
            build_app(self.config),
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for synchronous callers."""

    def __init__(self, config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self._simulator = RunningSimulator(config, host, port)
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self._simulator.url

    def start(self, timeout: float = 10.0) -> str:
        """Start serving in the background; returns the base URL once listening."""
        if self._thread is not None:
            raise RuntimeError("the simulator thread was already started")
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the simulator did not start within {timeout:g}s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down and wait for the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._simulator.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._simulator.stop()


async def serve(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8700,
    *,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; ``on_listening`` gets the URL once the port is bound."""
    async with RunningSimulator(config, host, port) as sim:
        if on_listening is not None:
            on_listening(sim.url)
        await asyncio.Event().wait()
