"""Every Kafka client is built by streams.kafka.clients, from the security settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import ConfigError
from streams.kafka import clients
from streams.settings import KafkaSettings, load_settings

REPO = Path(__file__).resolve().parents[2]

#: Constructors of Kafka clients, in aiokafka, confluent-kafka and faust.
CLIENT_CLASSES = frozenset(
    {
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "AIOKafkaAdminClient",
        "AIOKafkaClient",
        "Producer",
        "Consumer",
        "AdminClient",
        "SerializingProducer",
        "DeserializingConsumer",
        "SchemaRegistryClient",
        "new_client",
    }
)
BUILDER = REPO / "streams" / "kafka" / "clients.py"
#: The benchmark's naive faust peers are the thing being compared against, run only on
#: the PLAINTEXT dev broker; faust builds its own clients from a URL.
FAUST_EXEMPT = {REPO / "bench" / "faust_peer.py", REPO / "bench" / "faust_forward.py"}


def client_constructions(source: str) -> list[tuple[int, str]]:
    """(line, name) of every call that constructs a Kafka client in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in CLIENT_CLASSES:
            found.append((node.lineno, str(name)))
        if name == "App" and isinstance(func, ast.Attribute):
            found.append((node.lineno, "faust.App"))
    return found


def test_scanner_finds_each_way_of_building_a_client() -> None:
    """The scan is not vacuous: direct, qualified and faust constructions are all found."""
    source = (
        "p = Producer({'bootstrap.servers': b})\n"
        "c = confluent_kafka.Consumer({})\n"
        "a = aiokafka.AIOKafkaProducer(bootstrap_servers=b)\n"
        "app = faust.App('x', broker='kafka://b')\n"
        "ok = clients.producer(b)\n"
    )
    assert [name for _, name in client_constructions(source)] == [
        "Producer",
        "Consumer",
        "AIOKafkaProducer",
        "faust.App",
    ]


def test_no_client_is_built_outside_the_builder() -> None:
    """No module in streams/ or bench/ constructs a Kafka client except clients.py."""
    offenders = []
    checked = 0
    for root in ("streams", "bench"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path == BUILDER or path in FAUST_EXEMPT:
                continue
            checked += 1
            for line, name in client_constructions(path.read_text(encoding="utf-8")):
                offenders.append(f"{path.relative_to(REPO)}:{line} builds {name}")
    assert checked > 50
    assert not offenders, "build clients with streams.kafka.clients:\n" + "\n".join(offenders)


def test_the_builder_itself_builds_every_client_kind() -> None:
    """clients.py is where the six client kinds are constructed."""
    names = {n for _, n in client_constructions(BUILDER.read_text(encoding="utf-8"))}
    assert names == {
        "AIOKafkaProducer",
        "AIOKafkaConsumer",
        "Producer",
        "Consumer",
        "AdminClient",
        "new_client",
    }


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("not parsed by the settings\n")
    return path


def test_the_passthrough_can_raise_librdkafkas_log_level() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9092", librdkafka={"log_level": 7})
    assert clients.librdkafka_config(kafka)["log_level"] == 7


def test_plaintext_bare_address_has_no_security(pem: Path) -> None:
    """A bare host:port is a PLAINTEXT broker: no SASL or TLS keys in either config."""
    rd = clients.librdkafka_config("127.0.0.1:9092", {"group.id": "g"})
    assert rd == {
        "bootstrap.servers": "127.0.0.1:9092",
        "group.id": "g",
        "security.protocol": "plaintext",
        "log_level": 4,  # warnings and errors only: no info lines on stderr
    }
    aio = clients.aiokafka_options("127.0.0.1:9092")
    assert aio == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_scram_reaches_both_libraries(pem: Path) -> None:
    """SASL_SSL + SCRAM: both configs carry mechanism, user, password, CA and hostname checks."""
    kafka = KafkaSettings(
        bootstrap_servers="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        username="svc",
        password=SecretStr("pw"),
        ssl_cafile=pem,
        librdkafka={"socket.keepalive.enable": True, "enable.idempotence": False},
    )
    rd = clients.librdkafka_config(kafka, {"enable.idempotence": True})
    assert rd["security.protocol"] == "sasl_ssl"
    assert rd["sasl.mechanism"] == "SCRAM-SHA-256"
    assert (rd["sasl.username"], rd["sasl.password"]) == ("svc", "pw")
    assert rd["ssl.ca.location"] == str(pem)
    assert rd["ssl.endpoint.identification.algorithm"] == "https"
    assert rd["socket.keepalive.enable"] is True
    # The call site's guarantee wins over the passthrough.
    assert rd["enable.idempotence"] is True
    # The placeholder CA file is not PEM: aiokafka's TLS context says so in one line.
    with pytest.raises(ConfigError, match=r"cannot load the TLS files \(kafka.ssl_cafile="):
        clients.aiokafka_options(kafka)


def test_default_mechanism_is_scram_sha_512() -> None:
    """SASL without a mechanism means SCRAM-SHA-512, in both libraries."""
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", username="u", password=SecretStr("p"))
    assert clients.librdkafka_config(kafka)["sasl.mechanism"] == "SCRAM-SHA-512"
    aio = clients.aiokafka_options(kafka)
    assert aio["sasl_mechanism"] == "SCRAM-SHA-512"
    assert aio["sasl_plain_username"] == "u"
    assert "ssl_context" not in aio


def test_oauthbearer_builds_a_token_provider_without_showing_the_secret() -> None:
    """OAUTHBEARER: librdkafka gets the OIDC settings, aiokafka a token provider."""
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        username="client",
        password=SecretStr("oauth-secret"),
        oauth_token_endpoint="https://idp.example/token",
    )
    rd = clients.librdkafka_config(kafka)
    assert rd["sasl.oauthbearer.method"] == "oidc"
    assert rd["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/token"
    provider = clients.aiokafka_options(kafka)["sasl_oauth_token_provider"]
    assert "oauth-secret" not in repr(provider)


@pytest.mark.parametrize(
    ("kafka", "expected"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.username and kafka.password"),
        ({"security_protocol": "SASL_SSL", "username": "u"}, "needs kafka.username and"),
        ({"sasl_mechanism": "PLAIN"}, "needs security_protocol SASL_SSL or SASL_PLAINTEXT"),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
            "ssl_cafile /nonexistent/ca.pem does not exist",
        ),
        ({"ssl_cafile": "/nonexistent/ca.pem"}, "use SSL or SASL_SSL, or remove it"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER needs kafka.oauth_token_endpoint",
        ),
        ({"librdkafka": {"sasl.password": "x"}}, "passthrough sets 'sasl.password'"),
        ({"aiokafka": {"security_protocol": "PLAINTEXT"}}, "passthrough sets 'security_protocol'"),
        ({"security_protocol": "TLS"}, "kafka.security_protocol"),
    ],
)
def test_security_mistakes_are_one_line_config_errors(
    kafka: dict[str, object], expected: str
) -> None:
    """Each security mistake is a one-line ConfigError that says what to change."""
    with pytest.raises(ConfigError) as info:
        load_settings(None, kafka=kafka)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_kafka_secrets_stay_out_of_reprs_and_dumps() -> None:
    """The SASL and key passwords never show in repr, str or a JSON dump of the settings."""
    settings = load_settings(
        None,
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "username": "u",
            "password": "canary-sasl-pw",
            "ssl_key_password": "canary-key-pw",
        },
    )
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.kafka)):
        assert "canary-sasl-pw" not in text
        assert "canary-key-pw" not in text
    assert settings.kafka.password is not None
    assert settings.kafka.password.get_secret_value() == "canary-sasl-pw"


def test_registry_basic_auth_and_tls_reach_the_registry_client(pem: Path) -> None:
    """Basic auth and the CA bundle go into the client's config, not into the URL."""
    settings = load_settings(
        None,
        registry={
            "url": "https://registry:8443",
            "username": "key",
            "password": "canary-registry-pw",
            "ca_file": str(pem),
        },
    )
    config = clients.schema_registry_config(settings.registry, {"timeout": 5})
    assert config == {
        "url": "https://registry:8443",
        "basic.auth.user.info": "key:canary-registry-pw",
        "ssl.ca.location": str(pem),
        "timeout": 5,
    }
    for text in (repr(settings), settings.model_dump_json()):
        assert "canary-registry-pw" not in text


def test_registry_bearer_token_is_a_static_token() -> None:
    """A bearer token uses confluent-kafka's STATIC_TOKEN source."""
    registry = load_settings(
        None, registry={"url": "https://r", "bearer_token": "canary-token-9"}
    ).registry
    config = clients.schema_registry_config(registry)
    assert config["bearer.auth.credentials.source"] == "STATIC_TOKEN"
    assert config["bearer.auth.token"] == "canary-token-9"
    assert "canary-token-9" not in repr(registry)


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ({"url": "https://key:secret@registry:8443"}, "the registry URL holds credentials"),
        ({"url": "https://r", "username": "u"}, "needs both registry.username and password"),
        (
            {"url": "https://r", "username": "u", "password": "p", "bearer_token": "t"},
            "choose one of registry basic auth and registry.bearer_token",
        ),
        ({"url": "http://r", "ca_file": "/etc/hostname"}, "registry.url is not https://"),
        ({"url": "https://r", "ca_file": "/nonexistent.pem"}, "/nonexistent.pem does not exist"),
    ],
)
def test_registry_mistakes_are_one_line_config_errors(
    registry: dict[str, object], expected: str
) -> None:
    """Each registry auth/TLS mistake is a one-line ConfigError naming the setting."""
    with pytest.raises(ConfigError) as info:
        load_settings(None, registry=registry)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert "secret" not in str(info.value)
