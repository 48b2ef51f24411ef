"""The local broker with a SASL_SSL listener, SCRAM and PLAIN users, and ACLs.

:class:`SecureKafka` is :class:`~streams.devstack.kafka.LocalKafka` with a second client
listener on the same broker::

    with SecureKafka(default_cache_dir()) as kafka:
        kafka.grant("worker", [("topic", "invoices.raw", "READ"), ("group", "streams.g", "READ")])
        settings = load_settings(None, kafka=kafka.client_settings("worker"))

* ``SASL_SSL`` on ``secure_bootstrap``: TLS with a certificate for ``127.0.0.1`` and
  ``localhost`` signed by a CA generated at first start with ``openssl`` (``ca_file``),
  and SASL with ``SCRAM-SHA-512`` (users created when the storage is formatted, with
  ``kafka-storage format --add-scram``) and ``PLAIN`` (users in the listener's JAAS).
* ``SSL`` with a required client certificate (mTLS) on ``mtls_bootstrap``: the client
  certificate ``client_cert``/``client_key`` (CN ``streams-client``, the key encrypted with
  ``client_key_password()``) is principal ``User:CN=streams-client``.
* With ``oauth_jwks_url``, OAUTHBEARER on the SASL_SSL listener too: JWTs validated by
  Kafka's ``OAuthBearerValidatorCallbackHandler`` against that JWKS (the tests serve one).
* ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``: a user can do
  only what an ACL lets it.
* The ``PLAINTEXT`` listener on ``bootstrap`` (loopback only) stays, for the harness: its
  anonymous principal is the super-user that creates topics and grants ACLs. It is never
  what a pipeline under test connects to.

The users (:data:`USERS`) get random passwords at first start, kept with the certificates
in ``<data_dir>/security`` so a restart (and ``streams dev up --secure`` again) finds them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from streams.devstack._process import HOST, DevstackError, _require_tool, free_ports
from streams.devstack.kafka import LocalKafka, render_server_properties
from streams.kafka import clients

__all__ = ["MTLS_PRINCIPAL", "USERS", "SecureKafka", "generate_ca", "issue_certificate"]

#: The SASL users of the secured broker (each can log in with SCRAM-SHA-512 and PLAIN).
USERS = ("worker", "reader", "limited")

#: The mTLS client's principal (its certificate's subject).
MTLS_PRINCIPAL = "CN=streams-client"

#: ``grant()`` resource kinds.
_RESOURCES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactional-id": ResourceType.TRANSACTIONAL_ID,
}


def _openssl(args: list[str], cwd: Path) -> None:
    openssl = _require_tool("openssl")
    result = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise DevstackError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def generate_ca(directory: Path, name: str = "streams dev CA") -> tuple[Path, Path]:
    """A self-signed CA in ``directory``: (certificate PEM, private key PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        directory,
    )  # fmt: skip
    return cert, key


def issue_certificate(
    directory: Path,
    ca: tuple[Path, Path],
    name: str,
    *,
    password: str,
    subject: str = "/CN=localhost",
) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost signed by ``ca``: (PEM, PKCS12 keystore).

    The key is ``<name>.key`` beside it, unencrypted; the keystore uses ``password``.
    """
    ca_cert, ca_key = ca
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl(
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", subject],
        directory,
    )  # fmt: skip
    _openssl(
        ["x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "30", "-out", str(cert), "-extfile", str(ext)],
        directory,
    )  # fmt: skip
    keystore = directory / f"{name}.p12"
    _openssl(
        ["pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-certfile", str(ca_cert),
         "-name", name, "-out", str(keystore), "-passout", f"pass:{password}"],
        directory,
    )  # fmt: skip
    return cert, keystore


class SecureKafka(LocalKafka):
    """A :class:`LocalKafka` with a SASL_SSL listener, SCRAM/PLAIN users and ACLs."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        port: int | None = None,
        secure_port: int | None = None,
        data_dir: Path | None = None,
        progress: Callable[[str], None] = print,
        oauth_jwks_url: str | None = None,
        oauth_audience: str | None = None,
    ) -> None:
        super().__init__(cache_dir, port=port, data_dir=data_dir, progress=progress)
        # OAUTHBEARER on the SASL_SSL listener: tokens are JWTs checked against this JWKS.
        self.oauth_jwks_url = oauth_jwks_url
        self.oauth_audience = oauth_audience
        if secure_port is None:
            taken = {self.port, self.controller_port}
            secure_port = next(p for p in free_ports(3) if p not in taken)
        taken = {self.port, self.controller_port, secure_port}
        self.mtls_port = next(p for p in free_ports(4) if p not in taken)
        self.secure_port = secure_port
        self.secure_bootstrap = f"{HOST}:{secure_port}"
        self.mtls_bootstrap = f"{HOST}:{self.mtls_port}"
        self.security_dir = self.data_dir / "security"
        self.ca_file = self.security_dir / "ca.pem"
        self.client_cert = self.security_dir / "client.pem"
        self.client_key = self.security_dir / "client.enc.key"
        self._secrets: dict[str, Any] | None = None

    # -- what a client needs ------------------------------------------------------

    users = USERS

    @property
    def secrets_path(self) -> Path:
        """The users' passwords and the keystore's (mode 0600)."""
        return self.security_dir / "secrets.json"

    def password(self, user: str) -> str:
        """``user``'s password (SCRAM and PLAIN)."""
        return str(self._load_secrets()["users"][user])

    def client_settings(self, user: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, Any]:
        """The ``[kafka]`` settings of a client that logs in as ``user`` over SASL_SSL."""
        return {
            "bootstrap_servers": self.secure_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "username": user,
            "password": self.password(user),
            "ssl_cafile": str(self.ca_file),
        }

    def client_key_password(self) -> str:
        """The password of the encrypted ``client_key``."""
        return str(self._load_secrets()["client_key_password"])

    def mtls_settings(self) -> dict[str, Any]:
        """The ``[kafka]`` settings of a client that authenticates with its certificate."""
        return {
            "bootstrap_servers": self.mtls_bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": str(self.ca_file),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
            "ssl_key_password": self.client_key_password(),
        }

    def grant(self, user: str, acls: Iterable[tuple[str, str, str]]) -> None:
        """Allow ``user`` each (``topic``/``group``, literal name, operation) in ``acls``."""
        self._acls(user, acls, create=True)

    def revoke(self, user: str, acls: Iterable[tuple[str, str, str]]) -> None:
        """Remove ACLs added with :meth:`grant`."""
        self._acls(user, acls, create=False)

    def _acls(self, user: str, acls: Iterable[tuple[str, str, str]], *, create: bool) -> None:
        from confluent_kafka.admin import AclBindingFilter  # type: ignore[attr-defined]

        admin = clients.admin_client(self.bootstrap, {"log_level": 0})
        bindings = [
            (_RESOURCES[kind], name, AclOperation[operation.upper()])
            for kind, name, operation in acls
        ]
        principal = f"User:{user}"
        args = [
            (kind, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)
            for kind, name, op in bindings
        ]
        futures: dict[Any, Any]
        if create:
            futures = admin.create_acls([AclBinding(*a) for a in args])
        else:
            futures = admin.delete_acls([AclBindingFilter(*a) for a in args])
        for future in futures.values():
            future.result(timeout=30)

    # -- broker set-up ------------------------------------------------------------

    def _load_secrets(self) -> dict[str, Any]:
        if self._secrets is None:
            path = self.secrets_path
            if not path.is_file():
                raise DevstackError(f"{path} is missing: start() the secured broker first")
            self._secrets = json.loads(path.read_text())
        return self._secrets

    def _prepare_security(self) -> None:
        """Generate the CA, the broker's keystore and the users' passwords once."""
        path = self.secrets_path
        if path.is_file():
            return
        self.security_dir.mkdir(parents=True, exist_ok=True)
        self.security_dir.chmod(0o700)
        store_password = secrets.token_hex(16)
        ca = generate_ca(self.security_dir)
        _cert, keystore = issue_certificate(
            self.security_dir, ca, "broker", password=store_password
        )
        key_password = secrets.token_hex(12)
        issue_certificate(
            self.security_dir, ca, "client", password=key_password, subject=f"/{MTLS_PRINCIPAL}"
        )
        _openssl(
            ["pkey", "-in", "client.key", "-aes256", "-passout", f"pass:{key_password}",
             "-out", self.client_key.name],
            self.security_dir,
        )  # fmt: skip
        (self.security_dir / "client.key").unlink()
        data = {
            "keystore": str(keystore),
            "keystore_password": store_password,
            "client_key_password": key_password,
            "users": {user: f"{user}-{secrets.token_hex(12)}" for user in USERS},
        }
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n")
        partial.chmod(0o600)
        partial.replace(path)

    def start(self, timeout: float = 120.0) -> None:
        self._prepare_security()
        super().start(timeout)
        self._progress(
            f"SASL_SSL listener on {self.secure_bootstrap}, mTLS on {self.mtls_bootstrap} "
            f"(CA {self.ca_file})"
        )

    def _render_properties(self, log_dir: Path) -> str:
        base = render_server_properties(
            port=self.port, controller_port=self.controller_port, log_dir=log_dir
        )
        data = self._load_secrets()
        plain_users = " ".join(f'user_{u}="{p}"' for u, p in data["users"].items())
        listener = "listener.name.sasl_ssl"
        extra = {
            "listeners": (
                f"PLAINTEXT://{HOST}:{self.port},SASL_SSL://{HOST}:{self.secure_port},"
                f"SSL://{HOST}:{self.mtls_port},CONTROLLER://{HOST}:{self.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://{HOST}:{self.port},SASL_SSL://{HOST}:{self.secure_port},"
                f"SSL://{HOST}:{self.mtls_port}"
            ),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT"
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            # The loopback PLAINTEXT listener (harness) and the controller are anonymous.
            "super.users": "User:ANONYMOUS",
            f"{listener}.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            f"{listener}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{listener}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            f"{listener}.ssl.keystore.type": "PKCS12",
            f"{listener}.ssl.keystore.location": data["keystore"],
            f"{listener}.ssl.keystore.password": data["keystore_password"],
            f"{listener}.ssl.key.password": data["keystore_password"],
            "listener.name.ssl.ssl.keystore.type": "PKCS12",
            "listener.name.ssl.ssl.keystore.location": data["keystore"],
            "listener.name.ssl.ssl.keystore.password": data["keystore_password"],
            "listener.name.ssl.ssl.key.password": data["keystore_password"],
            "listener.name.ssl.ssl.truststore.type": "PEM",
            "listener.name.ssl.ssl.truststore.location": str(self.ca_file),
            "listener.name.ssl.ssl.client.auth": "required",
        }
        if self.oauth_jwks_url is not None:
            oauth = f"{listener}.oauthbearer"
            extra[f"{listener}.sasl.enabled.mechanisms"] += ",OAUTHBEARER"
            extra |= {
                f"{oauth}.sasl.jaas.config": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                ),
                f"{oauth}.sasl.server.callback.handler.class": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
                ),
                f"{oauth}.sasl.oauthbearer.jwks.endpoint.url": self.oauth_jwks_url,
            }
            if self.oauth_audience:
                extra[f"{oauth}.sasl.oauthbearer.expected.audience"] = self.oauth_audience
        lines = [line for line in base.splitlines() if line.split("=", 1)[0] not in extra]
        lines += [f"{key}={value}" for key, value in extra.items()]
        return "\n".join(lines) + "\n"

    def _broker_jvm(self) -> tuple[str, ...]:
        jvm = super()._broker_jvm()
        if self.oauth_jwks_url is None:
            return jvm
        # Kafka 4 fetches OAuth URLs only from an allow-list given as a system property.
        return (*jvm, f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oauth_jwks_url}")

    def _format_args(self) -> list[str]:
        users = self._load_secrets()["users"]
        args: list[str] = []
        for user, password in users.items():
            args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        return args
