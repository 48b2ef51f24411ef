"""The faust App: one agent per configured pipeline, over :class:`SafeConsumer`.

What faust does here: group membership, fetching, the rebalance protocol, the commit
timer and the web server. What it does not do: produce outputs (the project's own
producer does, through :class:`~streams.kafka.output.Output`), choose commit offsets
(:class:`~streams.faust_app._consumer.SafeConsumer` does, from the project's
:class:`~streams.offsets.OffsetTracker`), or run exactly-once: faust's
``processing_guarantee="exactly_once"`` is not offered, because its transactions are
still broken upstream (faust-streaming issues 517, 323 and 440). Use the native worker
(``worker.exactly_once = true``) for that.

The consumer group is ``<group_prefix>.<pipeline>`` for an app of one pipeline (the
native worker's group, so ``streams replay`` and ``kafka-consumer-groups
--reset-offsets`` work on it), and ``<group_prefix>.faust`` for an app of several.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import build_pipeline, pipeline_resources, registry_check
from streams.errors import ConfigError
from streams.faust_app._consumer import SafeConsumer, SafeTransport
from streams.faust_app._engine import PipelineAgent
from streams.health import Heartbeat, Probe, WorkerProbe
from streams.kafka import clients
from streams.metrics import Metrics
from streams.settings import Settings

__all__ = ["ExtractionApp", "create_app", "run_app"]

log = logging.getLogger("streams.faust")


class ExtractionApp(faust.App):
    """A faust App whose consumer is :class:`SafeConsumer`; built by :func:`create_app`."""

    def __init__(self, app_id: str, *, settings: Settings, names: list[str], **conf: Any) -> None:
        super().__init__(app_id, **conf)
        self.settings = settings
        self.names = names
        self.metrics = Metrics()
        self.heartbeat = Heartbeat(",".join(names))
        self.engines: list[PipelineAgent] = []
        #: Where each pipeline's agent finds its engine once the app has started.
        self.slots: dict[str, _Slot] = {name: _Slot() for name in names}
        self._beat: asyncio.Task[None] | None = None

    def _new_transport(self) -> SafeTransport:
        return SafeTransport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await super().on_start()
        if self.engines:
            return  # faust restarts a service in place: the engines are already running
        consumer = self.consumer
        assert isinstance(consumer, SafeConsumer)
        for name in self.names:
            pipeline = build_pipeline(self.settings, name)
            consumer.owned_topics.add(pipeline.settings.input_topic)
            engine = PipelineAgent(
                self.settings, pipeline, self.metrics, pipeline_resources(pipeline), consumer
            )
            await engine.start()
            self.engines.append(engine)
            self.slots[name].engine = engine
            self.slots[name].ready.set()
        consumer.on_revoke = self._drain_revoked
        if self.engines:
            self.heartbeat.guard = self.engines[0].guard
        self._beat = asyncio.create_task(self.heartbeat.run())

    async def _drain_revoked(self, revoked: set[TP]) -> None:
        if not revoked:
            return
        bound = self.settings.revoke_drain_s
        await asyncio.gather(*(engine.drain(bound, revoked) for engine in self.engines))
        log.info(
            "drained revoked partitions %s",
            sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked),
        )

    async def on_stop(self) -> None:
        # Our drain first (bounded, all pipelines at once), then faust's stop commits what
        # SafeConsumer allows.
        bound = self.settings.worker.shutdown_timeout_s
        await asyncio.gather(*(engine.drain(bound) for engine in self.engines))
        await super().on_stop()
        for engine in self.engines:
            await engine.stop()
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        self.heartbeat.close()


class _Slot:
    """Where an agent finds its pipeline's engine once the app has started."""

    def __init__(self) -> None:
        self.engine: PipelineAgent | None = None
        self.ready = asyncio.Event()


def create_app(settings: Settings, names: list[str] | None = None) -> ExtractionApp:
    """The faust app running ``names`` (default: every configured pipeline)."""
    names = names or [p.name for p in settings.pipelines]
    if not names:
        raise ConfigError("no pipelines configured; add a [[pipelines]] table to the config")
    for name in names:
        settings.pipeline(name)
    kafka, worker = settings.kafka, settings.worker
    if worker.exactly_once:
        raise ConfigError(
            "worker.exactly_once is not offered by the faust engine (faust's transactions are "
            "broken upstream: faust-streaming issues 517, 323, 440); run the native worker "
            "(streams run without --engine faust) or set worker.exactly_once = false"
        )
    app_id = settings.group_id(names[0] if len(names) == 1 else "faust")
    # faust wants a data directory (for tables, which the pipelines do not use).
    datadir = Path(tempfile.gettempdir()) / "streams-faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = ExtractionApp(
        app_id,
        settings=settings,
        names=names,
        **clients.faust_app_options(
            kafka,
            broker_client_id=kafka.client_id,
            broker_commit_interval=worker.commit_interval_s,
            broker_session_timeout=kafka.session_timeout_ms / 1000,
            broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
            broker_rebalance_timeout=kafka.rebalance_timeout_ms / 1000,
            consumer_auto_offset_reset="earliest",
            consumer_group_instance_id=worker.instance_id,
            # PipelineAgent.drain bounds the stop; faust's wait_empty would not be bounded.
            stream_wait_empty=False,
            # The raw topics are the user's; faust would create them with its own counts.
            topic_allow_declare=False,
            # No leader election: nothing here runs on the leader only, and its topic
            # (``<id>-__assignor-__leader``) would be one more internal topic to create,
            # or an ERROR at every start where it is not allowed.
            topic_disable_leader=True,
            key_serializer="raw",
            value_serializer="raw",
            datadir=str(datadir / app_id),
            web_enabled=True,
            web_port=worker.metrics_port or 6066,
            web_bind=worker.metrics_host,
            web_host=worker.metrics_host,
        ),
    )
    for name in names:
        _add_agent(app, name)
    probe = WorkerProbe(
        app.heartbeat,
        liveness_timeout_s=worker.liveness_timeout_s,
        registry=registry_check(settings),
    )
    _add_pages(app, probe)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust's stub wants signal=
    async def _assigned(sender: Any, assigned: set[TP], **_kw: Any) -> None:
        app.heartbeat.assigned(assigned)

    return app


def run_app(settings: Settings, name: str, log_level: str = "INFO") -> None:
    """``streams run NAME --engine faust``: a faust worker for one pipeline, until signalled."""
    app = create_app(settings, [name])
    worker = faust.Worker(app, loglevel=log_level.lower())
    worker.execute_from_commandline()


def _add_agent(app: ExtractionApp, name: str) -> None:
    slot = app.slots[name]
    topic = app.topic(
        app.settings.pipeline(name).input_topic,
        key_type=bytes,
        value_type=bytes,
        acks=True,
    )

    async def extract(stream: Any) -> None:
        # noack: faust must not ack on its own; SafeConsumer acks released prefixes.
        await slot.ready.wait()
        assert slot.engine is not None
        await slot.engine.consume(stream.noack().events())

    extract.__name__ = extract.__qualname__ = f"extract_{name.replace('-', '_')}"
    app.agent(topic, name=f"streams.extract.{name}")(extract)


def _add_pages(app: ExtractionApp, probe: Probe) -> None:
    registry = app.metrics.registry

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses a content_type with parameters; the header carries them.
            headers = {"Content-Type": CONTENT_TYPE_LATEST}
            return self.bytes(generate_latest(registry), headers=headers)

    class Live(View):
        async def get(self, request: Request) -> Response:
            verdict = probe.live()
            return self.json(verdict.body, status=200 if verdict.ok else 503)

    class Ready(View):
        async def get(self, request: Request) -> Response:
            verdict = await asyncio.to_thread(probe.ready)  # the registry check blocks
            return self.json(verdict.body, status=200 if verdict.ok else 503)

    app.page("/metrics")(Metrics)
    app.page("/livez")(Live)
    app.page("/readyz")(Ready)
