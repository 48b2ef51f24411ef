"""Settings: the only module that reads the environment.

One frozen object, built once by :func:`load_settings` and passed down.
Sources, highest priority first: ``STREAMS_*`` environment variables (nested
groups with ``__``, e.g. ``STREAMS_LLM__API_KEY``), then the TOML file given
with ``--config`` (or ``STREAMS_CONFIG``), then the defaults below.

Example ``streams.toml``::

    [kafka]
    bootstrap_servers = "127.0.0.1:9092"

    [llm]
    provider = "openai"
    base_url = "http://127.0.0.1:8700/v1"
    model = "sim-extractor-1"

    [[pipelines]]
    name = "invoices"
    input_topic = "invoices.raw"
    contract = "invoice"
    contract_version = 1
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streams.errors import ConfigError

__all__ = [
    "BudgetSettings",
    "KafkaSettings",
    "LLMSettings",
    "PipelineSettings",
    "Price",
    "RegistrySettings",
    "Settings",
    "WorkerSettings",
    "default_cache_dir",
    "load_settings",
]

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,200}$")

# Keys of the passthrough tables that a typed setting owns, so a table cannot quietly
# turn security off or point a client elsewhere.
_OWNED_LIBRDKAFKA = frozenset(
    {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
        "enable.ssl.certificate.verification",
        "sasl.oauthbearer.method",
        "sasl.oauthbearer.client.id",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.token.endpoint.url",
    }
)
_OWNED_AIOKAFKA = frozenset(
    {
        "bootstrap_servers",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    }
)


def default_cache_dir() -> Path:
    """Where downloaded jars, broker data and model files live (``STREAMS_CACHE_DIR``)."""
    return Path(os.environ.get("STREAMS_CACHE_DIR", ".cache")).resolve()


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated ``host:port`` list of the brokers."""
    group_prefix: str = "streams"
    """Consumer groups are named ``<group_prefix>.<pipeline>``."""
    client_id: str = "kafka-llm-streams"
    """Client id reported to the brokers (visible in broker logs and quotas)."""
    session_timeout_ms: int = Field(45000, ge=1000)
    """Consumer group session timeout: a member silent this long is dropped from the group."""
    heartbeat_interval_ms: int = Field(3000, ge=100)
    """Consumer heartbeat interval; keep it at most a third of ``session_timeout_ms``."""
    rebalance_timeout_ms: int = Field(60000, ge=1000)
    """How long the group waits for members to rejoin in a rebalance. A revoke drains for at
    most ``worker.revoke_drain_fraction`` of it, so a draining worker is never dropped."""
    max_request_size: int = Field(1048576, ge=1024)
    """Largest produce request, in bytes. Start-up lowers the effective output limit to the
    output topics' ``max.message.bytes`` when that is smaller."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client talks to the brokers. Managed clusters want ``SASL_SSL``; mTLS is
    ``SSL`` with ``ssl_certfile`` and ``ssl_keyfile``."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """SASL mechanism for the ``SASL_*`` protocols (default there: ``SCRAM-SHA-512``)."""
    username: str | None = None
    """SASL user (PLAIN, SCRAM) or OAuth client id (OAUTHBEARER)."""
    password: SecretStr | None = None
    """SASL password or OAuth client secret. Never logged; set it with
    ``STREAMS_KAFKA__PASSWORD``."""
    oauth_token_endpoint: str | None = None
    """OAUTHBEARER: the OAuth 2 token endpoint for the client-credentials grant."""
    oauth_scope: str | None = None
    """OAUTHBEARER: the scope requested with each token, if the endpoint wants one."""
    ssl_cafile: Path | None = None
    """PEM bundle of the CAs that sign the brokers' certificates (default: the system's)."""
    ssl_certfile: Path | None = None
    """PEM client certificate, for mTLS."""
    ssl_keyfile: Path | None = None
    """PEM private key of ``ssl_certfile``."""
    ssl_key_password: SecretStr | None = None
    """Password of an encrypted ``ssl_keyfile``. Never logged."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host it was reached at. Turn it off only
    for a broker whose certificate cannot name its address, never to silence a mismatch."""
    librdkafka: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Passthrough for confluent-kafka clients (admin, replay, redrive, tail, produce):
    librdkafka properties such as ``"socket.keepalive.enable" = true``."""
    aiokafka: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Passthrough for aiokafka clients (the worker, state stores): keyword arguments such as
    ``connections_max_idle_ms = 300000``."""

    @model_validator(mode="after")
    def _timeouts(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "heartbeat_interval_ms must be at most a third of session_timeout_ms "
                f"({self.heartbeat_interval_ms} vs {self.session_timeout_ms})"
            )
        return self

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        # Each message is one line that says which setting to change.
        sasl = self.security_protocol.startswith("SASL_")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs security_protocol SASL_SSL or "
                f"SASL_PLAINTEXT (it is {self.security_protocol})"
            )
        mechanism = self.effective_sasl_mechanism
        if sasl and mechanism != "OAUTHBEARER" and (not self.username or self.password is None):
            raise ValueError(
                f"{self.security_protocol} with {mechanism} needs kafka.username and "
                "kafka.password (STREAMS_KAFKA__PASSWORD)"
            )
        if mechanism == "OAUTHBEARER" and not (
            self.oauth_token_endpoint and self.username and self.password is not None
        ):
            raise ValueError(
                "OAUTHBEARER needs kafka.oauth_token_endpoint, kafka.username (client id) "
                "and kafka.password (client secret)"
            )
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        files = (
            ("ssl_cafile", self.ssl_cafile),
            ("ssl_certfile", self.ssl_certfile),
            ("ssl_keyfile", self.ssl_keyfile),
        )
        for label, path in files:
            if path is None:
                continue
            if not tls:
                raise ValueError(
                    f"{label} is set but security_protocol is {self.security_protocol}: "
                    "use SSL or SASL_SSL, or remove it"
                )
            if not path.is_file():
                raise ValueError(f"{label} {path} does not exist or is not a file")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("mTLS needs both ssl_certfile and ssl_keyfile, or neither")
        owned = _OWNED_LIBRDKAFKA.intersection(k.lower() for k in self.librdkafka)
        if owned:
            raise ValueError(
                f"librdkafka passthrough sets {sorted(owned)[0]!r}, which a typed kafka "
                "setting owns: set that setting instead"
            )
        owned = _OWNED_AIOKAFKA.intersection(self.aiokafka)
        if owned:
            raise ValueError(
                f"aiokafka passthrough sets {sorted(owned)[0]!r}, which a typed kafka "
                "setting owns: set that setting instead"
            )
        return self

    @property
    def effective_sasl_mechanism(self) -> str | None:
        """The SASL mechanism in use: the configured one, ``SCRAM-SHA-512`` by default."""
        if not self.security_protocol.startswith("SASL_"):
            return None
        return self.sasl_mechanism or "SCRAM-SHA-512"


class LLMSettings(_Group):
    provider: Literal["openai", "anthropic"] = "openai"
    """Wire format: ``openai`` for any OpenAI-compatible server, or ``anthropic``."""
    base_url: str = "http://127.0.0.1:8700/v1"
    """API root including the version path, e.g. ``https://api.openai.com/v1``."""
    model: str = "sim-extractor-1"
    """Model name sent with every request."""
    api_key: SecretStr | None = None
    """API key. Never logged; set it with ``STREAMS_LLM__API_KEY``."""
    timeout_s: float = Field(60.0, gt=0)
    """Per-request timeout; a hang past this is a transient error."""
    max_connections: int = Field(64, ge=1)
    """HTTP connection pool size, which caps concurrent requests per worker."""
    temperature: float = Field(0.0, ge=0, le=2)
    """Sampling temperature; part of the cache key."""
    schema_profile: str | None = None
    """What the target enforces of the contract's JSON schema (``streams.providers.profiles``):
    ``legacy`` (the default for ``openai``: every constraint as words, accepted by any
    strict server), ``openai-strict``, ``llamacpp``, ``ollama``, ``vllm-guidance``,
    ``vllm-xgrammar``; ``anthropic-tool`` for ``anthropic``. Part of the cache key."""


class Price(_Group):
    input_per_mtok: float = Field(ge=0)
    """USD per million input tokens."""
    output_per_mtok: float = Field(ge=0)
    """USD per million output tokens."""


class BudgetSettings(_Group):
    max_input_tokens: int = Field(8000, ge=1)
    """Per-record cap on the estimated prompt tokens; over it, no call is made."""
    max_output_tokens: int = Field(1024, ge=1)
    """``max_tokens`` sent with each request."""
    max_attempts: int = Field(3, ge=1)
    """Model answers per record: the first call plus re-asks."""
    max_total_tokens: int = Field(30000, ge=1)
    """Cumulative input+output tokens across all attempts of one record."""
    transient_retries: int = Field(4, ge=0)
    """Transient failures (429/5xx/timeouts) a record may have while other records succeed;
    one more sends it to the DLQ as ``provider_transient_exhausted``. Failures during an
    outage (the circuit breaker open) are not counted."""
    max_record_seconds: float = Field(600.0, gt=0)
    """A record still failing transiently after this long (paused time excluded) goes to
    the DLQ as ``provider_transient_exhausted``, so one document cannot hold a slot forever."""
    backoff_base_s: float = Field(0.25, gt=0)
    """First backoff delay; doubles per retry, with full jitter."""
    backoff_max_s: float = Field(20.0, gt=0)
    """Upper bound on one backoff delay (a longer ``Retry-After`` is honoured up to this)."""
    spend_cap_usd: float | None = Field(None, ge=0)
    """Pipeline spend cap per window, across all workers of the group. Unset: no cap."""
    tenant_spend_cap_usd: float | None = Field(None, ge=0)
    """Default spend cap per tenant per window (for envelopes that name a tenant)."""
    tenant_caps: dict[str, float] = Field(default_factory=dict)
    """Per-tenant overrides of ``tenant_spend_cap_usd``."""
    spend_window_s: int = Field(3600, ge=1)
    """Length of the spend window in seconds (windows are aligned to the epoch)."""
    spend_claim_usd: float | None = Field(None, gt=0)
    """Budget a worker claims at a time from the shared cap (default: cap / 50)."""


class RegistrySettings(_Group):
    url: str = "mock://"
    """Schema Registry URL (Confluent API). ``mock://`` is an in-process stand-in."""
    username: str | None = None
    """Basic-auth user (an API key on Confluent Cloud). Never in the URL: commands print it."""
    password: SecretStr | None = None
    """Basic-auth password (API secret). Never logged; set it with
    ``STREAMS_REGISTRY__PASSWORD``."""
    bearer_token: SecretStr | None = None
    """A static bearer token, instead of basic auth. Never logged."""
    bearer_logical_cluster: str = "default"
    """Sent with a bearer token as ``target-sr-cluster`` (Confluent Cloud's ``lsrc-...`` id;
    other registries ignore it)."""
    ca_file: Path | None = None
    """PEM bundle of the CAs that sign the registry's certificate (default: the system's)."""
    certfile: Path | None = None
    """PEM client certificate, for a registry that wants mTLS."""
    keyfile: Path | None = None
    """PEM private key of ``certfile``."""
    key_password: SecretStr | None = None
    """Password of an encrypted ``keyfile``. Never logged."""

    @model_validator(mode="after")
    def _auth(self) -> RegistrySettings:
        if "@" in self.url.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError(
                "the registry URL holds credentials: move them to registry.username and "
                "registry.password (STREAMS_REGISTRY__PASSWORD)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("registry basic auth needs both registry.username and password")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("choose one of registry basic auth and registry.bearer_token")
        https = self.url.startswith("https://")
        for label, path in (
            ("ca_file", self.ca_file),
            ("certfile", self.certfile),
            ("keyfile", self.keyfile),
        ):
            if path is None:
                continue
            if not https:
                raise ValueError(f"registry.{label} is set but registry.url is not https://")
            if not path.is_file():
                raise ValueError(f"registry.{label} {path} does not exist or is not a file")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("registry.keyfile needs registry.certfile")
        return self


class WorkerSettings(_Group):
    max_in_flight: int = Field(64, ge=1)
    """Records being processed at once, across all partitions of a worker."""
    max_buffered: int = Field(1000, ge=1)
    """Fetched-but-unfinished records; fetching pauses above this (backpressure)."""
    commit_interval_s: float = Field(0.5, gt=0)
    """How often the committable offsets are committed."""
    pause_backoff_s: float = Field(5.0, gt=0)
    """How long the circuit breaker stays open once most records are failing (an outage)."""
    breaker_window_s: float = Field(10.0, gt=0)
    """Sliding window of request results the breaker judges an outage by."""
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    """The breaker opens when this share of the distinct records in the window is failing..."""
    breaker_min_records: int = Field(3, ge=1)
    """...and at least this many distinct records are, so one poison record cannot open it."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this port; off when unset."""
    metrics_host: str = "127.0.0.1"
    """Address for the metrics endpoint; ``0.0.0.0`` in a container Prometheus scrapes."""
    liveness_timeout_s: float = Field(15.0, gt=0)
    """``/livez`` on the metrics port fails once the event loop has not ticked for this long
    (blocked by a synchronous call, or wedged); start-up counts against it too."""
    debug_block_loop_s: float | None = Field(None, gt=0)
    """Testing only (``STREAMS_WORKER__DEBUG_BLOCK_LOOP_S``): once joined to its group, the
    worker blocks its own event loop with a synchronous sleep this long, once, so a test can
    watch ``/livez`` fail and recover. Never set it in production."""
    exactly_once: bool = False
    """Put outputs and input offsets in one Kafka transaction (read_committed consumers).
    Needs ``instance_id``."""
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    """Stable identity of this worker instance: a StatefulSet ordinal or pod name, or a host
    name plus an index. It names the transactional id (so a restart fences its own zombie and
    two replicas never fence each other) and the static group membership
    (``group.instance.id``). Required with ``exactly_once``."""
    shutdown_timeout_s: float = Field(20.0, gt=0, le=300)
    """Bounds both the drain on SIGTERM and on a revoke: in-flight records still running
    after it are cancelled, stay uncommitted and are redone by the next owner. Keep it under
    the pod's termination grace (Kubernetes' default is 30 s) minus a few seconds to close."""
    revoke_drain_fraction: float = Field(0.5, gt=0, lt=1)
    """A revoke drains for at most this fraction of ``kafka.rebalance_timeout_ms``."""
    max_embedded_input_bytes: int = Field(256 * 1024, ge=0)
    """How much of the input (and of the last model output) an envelope embeds; beyond it
    the envelope says ``truncated: true`` and redrive re-reads the original by offset."""
    max_header_bytes: int = Field(64 * 1024, ge=0)
    """Input records whose headers total more than this go to the DLQ (``headers_too_large``)."""
    max_redrives: int = Field(3, ge=0)
    """``streams redrive`` refuses a record that has been redriven this many times already."""
    cache: bool = True
    """Use the Kafka-backed result cache (topic ``<pipeline>.cache``)."""
    cache_signing_key: SecretStr | None = None
    """HMAC-SHA256 key of the result cache (``STREAMS_WORKER__CACHE_SIGNING_KEY``), shared by
    the group's workers. Set, every entry is signed and an unsigned or forged entry is a
    miss; unset, entries are trusted as the cache topic's ACLs allow."""
    cache_max_entries: int = Field(100_000, ge=1)
    """Entries the result cache holds in memory per worker; past it the oldest written is
    dropped (a miss later), and loading the topic at start-up never holds more."""

    @model_validator(mode="after")
    def _exactly_once_needs_identity(self) -> WorkerSettings:
        if self.exactly_once and not self.instance_id:
            raise ValueError(
                "exactly_once needs worker.instance_id, a stable name per replica "
                "(StatefulSet pod name, or host name plus an index)"
            )
        return self


class PipelineSettings(_Group):
    name: str
    """Pipeline name; output topics are ``<name>.valid|invalid|over-budget|dlq``."""
    input_topic: str
    """Raw topic to consume."""
    contract: str
    """Contract name found through the ``streams.contracts`` entry points, e.g. ``invoice``;
    or an import path ``module:OBJECT``, whose version is the object's."""
    contract_version: int | None = Field(default=None, ge=1)
    """Contract major version; required with a name, optional with an import path."""
    contract_search_path: list[Path] = Field(default_factory=list)
    """Folders put on the import path and searched for installed contract packages."""
    prompt_version: str | None = None
    """Pin the prompt hash; start-up fails if the contract's prompt has changed."""

    @model_validator(mode="after")
    def _names(self) -> PipelineSettings:
        for label, topic in (("name", self.name), ("input_topic", self.input_topic)):
            if not _TOPIC.match(topic):
                raise ValueError(f"{label} {topic!r} is not a legal Kafka topic name")
        return self

    def topic(self, route: str) -> str:
        return f"{self.name}.{route}"


def _default_pipelines() -> list[PipelineSettings]:
    return [
        PipelineSettings(
            name="invoices", input_topic="invoices.raw", contract="invoice", contract_version=1
        )
    ]


class Settings(BaseSettings):
    """Everything the worker and the commands need, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMS_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    kafka: KafkaSettings = KafkaSettings()
    llm: LLMSettings = LLMSettings()
    budgets: BudgetSettings = BudgetSettings()
    registry: RegistrySettings = RegistrySettings()
    worker: WorkerSettings = WorkerSettings()
    pricing: dict[str, Price] = Field(
        default_factory=lambda: {"sim-extractor-1": Price(input_per_mtok=0.15, output_per_mtok=0.6)}
    )
    """Price per model name; a model without an entry costs 0 and is flagged in provenance."""
    pipelines: list[PipelineSettings] = Field(default_factory=_default_pipelines)
    """The pipelines this worker can run."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, which is passed in as init kwargs.
        return (env_settings, init_settings)

    def group_id(self, pipeline: str) -> str:
        """The consumer group of ``pipeline``'s workers (the replay and lag commands use it)."""
        return f"{self.kafka.group_prefix}.{pipeline}"

    def transactional_id(self, pipeline: str) -> str | None:
        """The exactly-once producer's id: one per instance, so a restart with the same id
        fences its own zombie and two replicas never fence each other. None without
        ``worker.exactly_once``."""
        if not self.worker.exactly_once:
            return None
        return f"{self.group_id(pipeline)}.{self.worker.instance_id}"

    @property
    def revoke_drain_s(self) -> float:
        """How long a revoke drains in-flight records (every engine): a fraction of the
        rebalance timeout, so a draining member is never dropped from the group."""
        return min(
            self.worker.shutdown_timeout_s,
            self.worker.revoke_drain_fraction * self.kafka.rebalance_timeout_ms / 1000,
        )

    def pipeline(self, name: str) -> PipelineSettings:
        for p in self.pipelines:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.pipelines) or "none"
        raise ConfigError(f"no pipeline named {name!r} (configured: {known}); check --config")


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, turning any mistake into a one-line :class:`ConfigError`."""
    path = config or (
        Path(os.environ["STREAMS_CONFIG"]) if os.environ.get("STREAMS_CONFIG") else None
    )
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; pass an existing --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for group, value in overrides.items():
        # An override of one key of a group (``--bootstrap``) keeps the file's other keys.
        if isinstance(value, dict) and isinstance(data.get(group), dict):
            data[group] = {**data[group], **value}
        else:
            data[group] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        src = f" in {path}" if path else ""
        raise ConfigError(
            f"invalid setting {where}{src}: {first['msg']} "
            f"(set it in the TOML file or as STREAMS_{where.upper().replace('.', '__')})"
        ) from None
