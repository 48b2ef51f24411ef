"""The simulator's HTTP server: model routes, the outage guard, and three ways to run it.

Routes::

    POST   /v1/chat/completions   OpenAI chat completions (strict json_schema checked)
    POST   /v1/messages           Anthropic Messages (answer as a tool_use block)
    GET    /v1/models             {"object": "list", "data": [model, ...]}, no budget spent
    GET    /v1/models/{model}     {"id": model, "object": "model", "created": 0, "owned_by": ...}
    GET    /healthz               {"status": "ok", "fixtures": N}
    *      /_sim/...              inspection, script and outage: see streams.simulator.control

``/v1/models`` lists ``sim-extractor-1`` and then every model a completion has
asked for since start (or the last ``DELETE /_sim/requests``); any id can be
fetched, since the simulator serves any model name. The answer is in OpenAI's
shape for both kinds of client; errors are in Anthropic's shape when the request
carries ``anthropic-version`` or ``x-api-key``. With ``api_key`` set it takes
either dialect's credentials.

During ``POST /_sim/outage`` every completion and models request fails at once
with the outage's status, before auth or any behaviour, in the dialect's error
shape; it is recorded with behaviour ``outage`` and does not count as an attempt.

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
from collections.abc import Awaitable, Callable
from types import TracebackType

from aiohttp import web

from streams.errors import ConfigError
from streams.simulator.behaviours import (
    Ask,
    ErrorKind,
    Failure,
    Reply,
    limit_output,
    outage_failure,
    outcome_for,
)
from streams.simulator.config import SimulatorConfig
from streams.simulator.control import add_control_routes
from streams.simulator.fixtures import load_fixtures
from streams.simulator.scripting import choose_behaviour
from streams.simulator.state import (
    MODELS_ENDPOINT,
    STATE,
    RequestRecord,
    SimulatorState,
)
from streams.simulator.wire import AnthropicDialect, Dialect, OpenAIDialect, Rejected, SimRequest

__all__ = ["RequestRecord", "RunningSimulator", "SimulatorThread", "build_app", "serve"]

#: Seconds the server waits for in-flight requests on shutdown; hangs are woken first.
SHUTDOWN_TIMEOUT_S = 2.0
#: Documents and few-shot prompts can be large; aiohttp's default cap is 1 MiB.
MAX_BODY_BYTES = 32 * 1024 * 1024

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
    anthropic = AnthropicDialect()
    app.router.add_post("/v1/chat/completions", _completion_handler(openai))
    app.router.add_post("/v1/messages", _completion_handler(anthropic))
    app.router.add_get("/v1/models", _models_handler(openai, anthropic))
    # ``.+``: some gateways name models with a slash, e.g. "openai/gpt-4o".
    app.router.add_get("/v1/models/{model:.+}", _models_handler(openai, anthropic))
    app.router.add_get("/healthz", _healthz)
    add_control_routes(app)
    return app


def _completion_handler(dialect: Dialect) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        record = RequestRecord(endpoint=dialect.endpoint, received_at=time.time())
        try:
            outage = state.active_outage()
            if outage is not None:
                # Parsed only to say in the record which document met the outage.
                with contextlib.suppress(Rejected):
                    _describe(record, await _parse(request, dialect), state)
                failure = outage_failure(outage.status, record.model_requested)
                return _fail(dialect, record, failure, "outage")
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


async def _parse(request: web.Request, dialect: Dialect) -> SimRequest:
    try:
        body = json.loads(await request.read())
    except ValueError:
        failure = Failure(400, ErrorKind.INVALID_REQUEST, "The request body is not valid JSON.")
        raise Rejected(failure, "rejected:request") from None
    return dialect.parse(body)


_BAD_KEY = Failure(
    401, ErrorKind.AUTHENTICATION, "Incorrect API key provided.", code="invalid_api_key"
)


async def _complete(
    request: web.Request, dialect: Dialect, state: SimulatorState, record: RequestRecord
) -> web.Response:
    config = state.config
    if config.api_key is not None and not dialect.authorised(request.headers, config.api_key):
        return _fail(dialect, record, _BAD_KEY, "rejected:auth")
    try:
        sim = await _parse(request, dialect)
        _describe(record, sim, state)
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
    ask = Ask(state.fixtures.get(sim.key), sim.model, sim.requested_tokens)
    outcome = outcome_for(behaviour, ask, config)
    delay = config.latency_ms / 1000 + (outcome.delay_s if isinstance(outcome, Reply) else 0.0)
    await state.pause(delay)
    if isinstance(outcome, Failure):
        return _fail(dialect, record, outcome, behaviour.value)
    reply = limit_output(outcome, sim.max_tokens)
    record.finish = "empty" if reply.empty else "truncated" if reply.truncated else "complete"
    record.status = 200
    body = dialect.completion(
        sim,
        reply,
        model=record.model_reported or sim.model,
        response_id=f"{sim.key[:12]}-{attempt}",
    )
    return web.json_response(body, headers=_sim_headers(record))


def _describe(record: RequestRecord, sim: SimRequest, state: SimulatorState) -> None:
    state.models_asked.setdefault(sim.model, None)
    record.key = sim.key
    record.fixture = sim.key in state.fixtures
    record.model_requested = sim.model
    record.model_reported = sim.model + state.config.model_suffix
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
    record.status = status = dialect.status(failure)
    headers = _sim_headers(record)
    if failure.retry_after_s is not None:
        headers["Retry-After"] = str(failure.retry_after_s)
    if failure.html is not None:
        # A proxy's page, not the API's answer: the same for every dialect.
        return web.Response(
            body=failure.html.encode(), status=status, content_type="text/html", headers=headers
        )
    return web.json_response(dialect.error(failure), status=status, headers=headers)


def _sim_headers(record: RequestRecord) -> dict[str, str]:
    headers = {"x-sim-behaviour": record.behaviour or ""}
    if record.attempt is not None:
        headers["x-sim-attempt"] = str(record.attempt)
    if record.key is not None:
        headers["x-sim-key"] = record.key
    return headers


def _models_handler(openai: OpenAIDialect, anthropic: AnthropicDialect) -> Handler:
    """``GET /v1/models`` and ``/v1/models/{model}``: one route for both kinds of client."""

    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        model = request.match_info.get("model")
        record = RequestRecord(
            endpoint=MODELS_ENDPOINT, received_at=time.time(), model_requested=model
        )
        anthropic_client = "anthropic-version" in request.headers or "x-api-key" in request.headers
        dialect: Dialect = anthropic if anthropic_client else openai
        try:
            outage = state.active_outage()
            if outage is not None:
                return _fail(dialect, record, outage_failure(outage.status, model), "outage")
            key = state.config.api_key
            if key is not None and not (
                openai.authorised(request.headers, key)
                or anthropic.authorised(request.headers, key)
            ):
                return _fail(dialect, record, _BAD_KEY, "rejected:auth")
            record.behaviour, record.status = MODELS_ENDPOINT, 200
            body = (
                _model_object(model)
                if model is not None
                else {"object": "list", "data": [_model_object(m) for m in state.listed_models()]}
            )
            return web.json_response(body, headers=_sim_headers(record))
        finally:
            state.record(record)

    return handle


def _model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "simulator"}


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "fixtures": len(request.app[STATE].fixtures)})


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
