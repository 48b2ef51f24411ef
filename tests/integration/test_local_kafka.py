"""The local dev Kafka: a real KRaft broker from Maven jars, driven by a real client."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, Producer

from streams.devstack.dev_kafka import dev_down, dev_status, dev_up
from streams.devstack.kafka import (
    CONSUMER_GROUPS_MAIN,
    KAFKA_VERSION,
    DevstackError,
    LocalKafka,
    ensure_kafka_jars,
    free_ports,
    kafka_home,
    new_cluster_id,
    render_server_properties,
    run_kafka_tool,
)
from streams.kafka import clients
from streams.settings import KafkaSettings, default_cache_dir


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    """The shared jar cache, resolved once (Maven runs only on the very first use)."""
    cache = default_cache_dir()
    ensure_kafka_jars(cache)
    return cache


@pytest.fixture(scope="module")
def local_kafka(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """This module's own broker (it gets restarted), not the session's shared one."""
    with LocalKafka(cache_dir, data_dir=tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def _topic() -> str:
    return f"devstack-{uuid.uuid4().hex[:12]}"


def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, value=value, key=b"k", on_delivery=on_delivery)
    assert producer.flush(30) == 0, "message not delivered within 30s"
    assert failures == []


def _consume_one(bootstrap: str, topic: str, group: str) -> Message:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            consumer.commit(message=msg, asynchronous=False)
            return msg
        raise AssertionError(f"nothing consumed from {topic} within 30s")
    finally:
        consumer.close()


def test_render_server_properties_is_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    """The rendered config is a combined broker+controller with replication factor 1."""
    text = render_server_properties(port=19092, controller_port=19093, log_dir=tmp_path)
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == str(tmp_path)
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "3"


def test_free_ports_are_distinct_and_bindable() -> None:
    """free_ports hands out distinct loopback ports that can be listened on."""
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_cluster_id_has_kafka_uuid_shape() -> None:
    """Cluster ids are 22 URL-safe base64 chars that never look like a CLI flag."""
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


@pytest.mark.integration
def test_produce_then_consume_round_trip(local_kafka: LocalKafka) -> None:
    """A message produced to an auto-created topic is consumed back unchanged."""
    topic = _topic()
    _produce(local_kafka.bootstrap, topic, b"hello kafka")
    msg = _consume_one(local_kafka.bootstrap, topic, group=f"g-{topic}")
    assert msg.value() == b"hello kafka"
    assert msg.key() == b"k"


@pytest.mark.integration
def test_consumer_groups_tool_lists_a_committed_group(
    local_kafka: LocalKafka, cache_dir: Path
) -> None:
    """kafka-consumer-groups --list (run from the cached jars) shows a group that committed."""
    topic = _topic()
    group = f"g-{topic}"
    _produce(local_kafka.bootstrap, topic, b"x")
    _consume_one(local_kafka.bootstrap, topic, group=group)
    result = run_kafka_tool(
        cache_dir, CONSUMER_GROUPS_MAIN, ["--bootstrap-server", local_kafka.bootstrap, "--list"]
    )
    assert result.returncode == 0, result.stderr
    assert group in result.stdout.split()


@pytest.mark.integration
def test_message_written_before_restart_is_readable_after(local_kafka: LocalKafka) -> None:
    """A restart keeps port and data: a message acked before it is consumed after it."""
    topic = _topic()
    _produce(local_kafka.bootstrap, topic, b"durable")
    pid_before, bootstrap_before = local_kafka.pid, local_kafka.bootstrap
    local_kafka.restart()
    assert local_kafka.pid is not None
    assert local_kafka.pid != pid_before
    assert local_kafka.bootstrap == bootstrap_before
    msg = _consume_one(local_kafka.bootstrap, topic, group=f"g-{topic}")
    assert msg.value() == b"durable"


@pytest.mark.integration
def test_start_on_a_busy_port_fails_fast_with_a_clear_error(
    cache_dir: Path, tmp_path: Path
) -> None:
    """A port already in use is reported before any JVM is launched."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        broker = LocalKafka(cache_dir, port=port, data_dir=tmp_path)
        with pytest.raises(DevstackError, match=f"port {port} .* in use"):
            broker.start()
        assert broker.pid is None


@pytest.mark.integration
def test_dev_up_is_idempotent_and_dev_down_stops_it(cache_dir: Path, tmp_path: Path) -> None:
    """A second dev up reports the running broker; dev down stops exactly that PID."""
    # A fresh state dir that shares the already-resolved jars.
    dev_cache = tmp_path / "cache"
    dev_cache.mkdir()
    kafka_home(dev_cache).symlink_to(kafka_home(cache_dir), target_is_directory=True)
    first = dev_up(dev_cache, None, lambda _: None)
    try:
        assert first["already_running"] is False
        assert first["version"] == KAFKA_VERSION
        second = dev_up(dev_cache, None, lambda _: None)
        assert second["already_running"] is True
        assert second["pid"] == first["pid"]
        status = dev_status(dev_cache)
        assert status is not None
        assert status["bootstrap"] == first["bootstrap"]
        _produce(first["bootstrap"], _topic(), b"dev")
    finally:
        stopped = dev_down(dev_cache)
    assert stopped is True
    assert dev_status(dev_cache) is None
    assert dev_down(dev_cache) is False


@pytest.mark.integration
def test_dev_up_secure_reports_the_sasl_ssl_listener_and_no_password(
    cache_dir: Path, tmp_path: Path
) -> None:
    """`dev up --secure`: a SASL_SSL listener a SCRAM user can log in to, whose state (what
    `dev status` prints) names the CA and the secrets file but holds no password."""
    dev_cache = tmp_path / "cache"
    dev_cache.mkdir()
    kafka_home(dev_cache).symlink_to(kafka_home(cache_dir), target_is_directory=True)
    state = dev_up(dev_cache, None, lambda _: None, secure=True)
    try:
        secrets = json.loads(Path(state["secrets_file"]).read_text())
        password = secrets["users"]["worker"]
        assert password not in json.dumps(state)
        with pytest.raises(DevstackError, match="already runs with --secure"):
            dev_up(dev_cache, None, lambda _: None)
        kafka = KafkaSettings(
            bootstrap_servers=state["secure_bootstrap"],
            security_protocol="SASL_SSL",
            username="worker",
            password=password,
            ssl_cafile=state["ca_file"],
        )
        # No ACLs yet: the login works, and the user sees no topic at all.
        admin = clients.admin_client(kafka)
        assert admin.list_topics(timeout=30).topics == {}
    finally:
        assert dev_down(dev_cache) is True
