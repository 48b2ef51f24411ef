"""Operational commands: ``run``, ``produce`` and ``schemas``."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.errors import ConfigError

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["register"]

SubParsers = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings file (default: $STREAMS_CONFIG, else built-in defaults)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run a pipeline worker",
        description="Consume the pipeline's raw topic and route every record to exactly one of "
        "<pipeline>.valid|invalid|over-budget|dlq. Stops cleanly on SIGINT/SIGTERM. With "
        "--processes N, one supervisor runs N worker processes, each an ordinary member of the "
        "consumer group <group_prefix>.<pipeline>.",
    )
    run.add_argument("pipeline", help="pipeline name from the config")
    _config_arg(run)
    run.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    run.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    run.add_argument(
        "--processes",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="worker processes on this machine (default 1: the worker runs in this process). "
        "With N > 1 this process supervises them: each child gets worker.instance_id (or the "
        "host name) + '-' + its index, a crashed child is restarted with backoff (1 s doubling "
        "to 30 s), SIGINT/SIGTERM is forwarded to all and the stop takes at most "
        "worker.shutdown_timeout_s + 8 s, and worker.metrics_port serves all children's "
        "metrics (Prometheus multiprocess mode)",
    )
    run.add_argument(
        "--engine",
        choices=["native", "faust"],
        default="native",
        help="native (default): the aiokafka worker, exactly-once capable and fastest. "
        "faust: the pipeline as a faust app's agent (streams.faust_app; needs the faust "
        "extra), for joining an existing faust deployment; one process, metrics and "
        "/livez /readyz on faust's web server at worker.metrics_port (default 6066)",
    )
    # Set by the supervisor (streams.supervisor) on each child it starts.
    run.add_argument("--child-index", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--health-file", type=Path, default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=_run)

    produce = sub.add_parser(
        "produce",
        help="send files to a topic, one record per file",
        description="Produce each file as one record (key = file stem). With --envelope, wrap "
        "the text in a JSON envelope {id, text, source}.",
    )
    produce.add_argument("topic")
    produce.add_argument("files", nargs="+", type=Path)
    produce.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    _config_arg(produce)
    produce.add_argument("--envelope", action="store_true", help="wrap in a JSON envelope")
    produce.add_argument("--tenant", help="tenant to put in the envelope")
    produce.set_defaults(func=_produce)

    replay = sub.add_parser(
        "replay",
        help="reset a pipeline's consumer-group offsets on its raw topic",
        description="Move the committed offsets of group <prefix>.<pipeline> so the worker "
        "re-reads its input. Refuses while workers of that group are running. With the "
        "result cache warm, a replay makes no model calls.",
    )
    replay.add_argument("pipeline")
    _config_arg(replay)
    replay.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    where = replay.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-earliest", action="store_true", help="from the beginning")
    where.add_argument(
        "--to-datetime", type=_datetime, help="from the first record at/after T (ISO 8601)"
    )
    where.add_argument(
        "--to-offset",
        action="append",
        metavar="PARTITION:OFFSET",
        type=_partition_offset,
        help="explicit offset for a partition (repeatable)",
    )
    replay.set_defaults(func=_replay)

    redrive = sub.add_parser(
        "redrive",
        help="put over-budget, invalid or dead-lettered records back on the raw topic",
        description="Read <pipeline>.over-budget, .invalid or .dlq and put each record's input "
        "back on the raw topic so it runs again. An envelope with its whole document goes back "
        "as a JSON envelope {id, text, source, tenant} with the same key; a DLQ envelope of an "
        "undecodable input as its original raw bytes with the original key. Cut-down text is "
        "never re-injected: for a truncated envelope (truncated: true, or no document and no "
        "raw bytes) the original record is re-read from its source topic, partition and "
        "offset, checked against input_sha256, and re-injected byte for byte; if retention "
        "removed it or it no longer matches, one line says so and it counts as gone. Each "
        "re-injected record keeps the input's headers and gets lineage headers "
        "(streams.redrive-of, streams.redrive-reason, streams.redrive-at, "
        "streams.original-source) and streams.redrive-count (1 + the input's count); a record "
        "already redriven worker.max_redrives times is refused. Prints one line per record "
        "not redriven, a progress line every 100 redriven and a summary of the counts (read, "
        "redriven, skipped, gone, refused); exits 1 if any record was skipped, gone or refused.",
    )
    redrive.add_argument("pipeline")
    _config_arg(redrive)
    redrive.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    redrive.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=["over-budget", "invalid", "dlq"],
        help="the outcome topic to read envelopes from",
    )
    redrive.add_argument("--since", type=_datetime, help="only records written at/after T")
    redrive.set_defaults(func=_redrive)

    schemas = sub.add_parser(
        "schemas",
        help="generate or check the Avro schemas under avro/",
        description="generate: write avro/<contract>/v<N>.avsc from the contracts. "
        "check: fail if a checked-in schema differs from its model, or a version is not "
        "compatible with the one it declares. Without CONTRACT, every installed contract.",
    )
    schemas.add_argument("action", choices=["generate", "check"])
    schemas.add_argument(
        "contracts",
        nargs="*",
        metavar="CONTRACT",
        help="module:OBJECT (a contract or a collection of them) or an entry-point name "
        "(all its versions)",
    )
    schemas.add_argument("--root", type=Path, default=Path("avro"), help="schema folder")
    schemas.add_argument(
        "--search-path",
        type=Path,
        action="append",
        default=[],
        help="a folder to import contracts from (repeatable)",
    )
    schemas.set_defaults(func=_schemas)


def _datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-25T18:00:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _partition_offset(text: str) -> tuple[int, int]:
    try:
        part, off = text.split(":")
        return int(part), int(off)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:OFFSET, e.g. 0:42") from None


def _settings_for(args: argparse.Namespace) -> Settings:
    from streams.settings import load_settings

    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap}
    return load_settings(args.config, **overrides)


def _connected_settings(args: argparse.Namespace) -> Settings:
    """Settings whose credentials and certificates the cluster accepts (else one line)."""
    from streams.kafka.preflight import check_connection

    settings = _settings_for(args)
    check_connection(settings.kafka)
    return settings


def _replay(args: argparse.Namespace) -> int:
    from streams.replay import reset_offsets

    settings = _connected_settings(args)
    pipeline = settings.pipeline(args.pipeline)
    reset_offsets(
        settings.kafka,
        settings.group_id(pipeline.name),
        pipeline.input_topic,
        to_earliest=args.to_earliest,
        to_datetime=args.to_datetime,
        to_offsets=dict(args.to_offset) if args.to_offset else None,
    )
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from streams.redrive import redrive

    settings = _connected_settings(args)
    pipeline = settings.pipeline(args.pipeline)
    result = redrive(
        settings.kafka,
        pipeline.topic(args.source),
        pipeline.input_topic,
        since=args.since,
        max_redrives=settings.worker.max_redrives,
    )
    return 0 if result.skipped == result.gone == result.refused == 0 else 1


def _run(args: argparse.Namespace) -> int:
    from streams.logs import configure_logging

    if args.child_index is not None:
        return _run_child(args)
    from streams.app import check_registry

    settings = _settings_for(args)
    settings.pipeline(args.pipeline)
    configure_logging(args.log_level)
    check_registry(settings)
    if args.engine == "faust":
        if args.processes > 1:
            raise ConfigError("--engine faust runs one process; start more faust workers instead")
        from streams.faust_app import run_app

        run_app(settings, args.pipeline, args.log_level)
        return 0
    if args.processes > 1:
        from streams.supervisor import Supervisor

        supervisor = Supervisor(
            settings, args.pipeline, processes=args.processes, argv=_child_argv(args)
        )
        return supervisor.run()
    asyncio.run(_run_until_signal(settings, args.pipeline))
    return 0


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The command a supervisor's child runs: this ``run`` with one process."""
    argv = [sys.executable, "-m", "streams", "run", args.pipeline, "--log-level", args.log_level]
    if args.config is not None:
        argv += ["--config", str(args.config.resolve())]
    if args.bootstrap:
        argv += ["--bootstrap", args.bootstrap]
    return argv


def _run_child(args: argparse.Namespace) -> int:
    """One worker of ``--processes N``: no metrics port, stops when the supervisor is gone."""
    from streams.logs import configure_logging
    from streams.supervisor import CONFIG_ERROR_EXIT

    try:
        settings = _settings_for(args)
        settings.pipeline(args.pipeline)
        configure_logging(args.log_level)
        asyncio.run(
            _run_until_signal(
                settings,
                args.pipeline,
                child=True,
                supervisor=args.supervisor_pid,
                health_file=args.health_file,
            )
        )
    except ConfigError as exc:
        # stdout is the supervisor's status channel: it fails with this one line, once,
        # instead of every child printing it.
        print(exc, flush=True)
        return CONFIG_ERROR_EXIT
    return 0


async def _run_until_signal(
    settings: Settings,
    name: str,
    *,
    child: bool = False,
    supervisor: int | None = None,
    health_file: Path | None = None,
) -> None:
    from streams.app import run_worker, warn_mock_registry

    warn_mock_registry(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if supervisor is not None:
        from streams.supervisor import watch_parent

        watcher = asyncio.create_task(watch_parent(stop, supervisor))
    try:
        await run_worker(settings, name, stop, serve_metrics=not child, health_file=health_file)
    finally:
        if watcher is not None:
            watcher.cancel()


def _produce(args: argparse.Namespace) -> int:
    from streams.kafka import clients

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise ConfigError(f"no such file(s): {', '.join(missing)}")
    producer = clients.producer(_connected_settings(args).kafka, {"enable.idempotence": True})
    for i, path in enumerate(args.files, 1):
        value = path.read_bytes()
        if args.envelope:
            doc = {
                "id": path.stem,
                "text": value.decode("utf-8"),
                "source": {"file": path.name},
            }
            if args.tenant:
                doc["tenant"] = args.tenant
            value = json.dumps(doc).encode()
        producer.produce(args.topic, value=value, key=path.stem.encode())
        producer.poll(0)
        print(f"[{i}/{len(args.files)}] {path.name}", file=sys.stderr)
    left = producer.flush(30)
    if left:
        print(f"streams: error: {left} record(s) not acknowledged", file=sys.stderr)
        return 1
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from streams.avro_schema import check_schema_files, write_schema_files
    from streams.contract import ENTRY_POINT_GROUP, discover, select

    chosen = select(args.contracts, search_path=args.search_path) if args.contracts else None
    if args.action == "generate":
        for path in write_schema_files(args.root, chosen):
            print(f"wrote {path}")
        return 0
    problems = check_schema_files(args.root, chosen)
    for problem in problems:
        print(f"schema check: {problem}", file=sys.stderr)
    if problems and chosen is None and not len(discover()):
        print(
            "schema check: no contract is registered in entry-point group "
            f"{ENTRY_POINT_GROUP!r}; an editable install records entry points when it is "
            "installed, so reinstall it (pip install -e .) or name the contracts",
            file=sys.stderr,
        )
    if problems:
        return 1
    print("schemas match their contracts")
    return 0
