"""Runtime settings, read from the environment once at start-up (never at import time)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The project's checkout (the default data directory is its ``var/``).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    """Where a service finds its broker, its projection and its tokens."""

    bootstrap_servers: str
    data_dir: Path
    tokens_file: Path | None
    request_timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576
    #: Kafka SASL user (DESIGN §8: one per service, ACLs let it write only its own topics).
    kafka_username: str | None = None
    kafka_password: str | None = field(default=None, repr=False)
    kafka_sasl_mechanism: str = "SCRAM-SHA-256"
    kafka_security_protocol: str = "SASL_PLAINTEXT"
    #: The service's Ed25519 signing key (production); default: ``<data_dir>/keys/<service>.pem``, made if new.
    signing_key_file: Path | None = None
    #: A signed checkpoint at least every this many events written …
    checkpoint_every: int = 100
    #: … and at most this many seconds after a write that no checkpoint covers yet.
    checkpoint_seconds: float = 5.0
    #: Group commit: at most this many waiting write requests are committed together.
    group_commit_max: int = 64
    #: Pipelining: the next group is decided and published while the previous one is being folded (off by
    #: default: measured, it does not pay on one broker with Kafka transactions; docs/benchmarks.md).
    pipelining: bool = False
    #: The Kafka transactional id of this instance's writer; default ``baotuan-<service>-<digest of the data
    #: dir>``: stable across restarts of one instance (a restart fences its zombie), distinct between instances.
    kafka_transactional_id: str | None = None
    #: Scale-out (DESIGN §12, docs/scaling.md): this instance's id among the service's instances (None: the
    #: only instance, writing every partition). With an id the instance joins ``baotuan-<service>-writers``.
    instance_id: str | None = None
    #: The URL other instances forward requests for this instance's partitions to.
    advertised_url: str | None = None
    #: How long the group waits for a silent member before it gives its partitions to the others.
    group_session_timeout_ms: int = 10_000
    #: A grouped instance's transaction timeout: a dead owner's open transaction holds its partitions' last
    #: stable offset (and so their new owner) at most this long.
    transaction_timeout_ms: int = 15_000

    def transactional_id(self, service: str) -> str:
        if self.kafka_transactional_id:
            return self.kafka_transactional_id
        if self.instance_id:  # stable per instance: a restarted instance fences its previous incarnation
            return f"baotuan-{service}-{self.instance_id}"
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode("utf-8")).hexdigest()[:12]
        return f"baotuan-{service}-{digest}"

    def kafka_client_config(self) -> dict[str, Any]:
        """kafka-python security settings: SASL when a Kafka user is configured, else none (PLAINTEXT)."""
        if not self.kafka_username:
            return {}
        return {"security_protocol": self.kafka_security_protocol, "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_username, "sasl_plain_password": self.kafka_password}

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        tokens = os.environ.get("BAOTUAN_TOKENS_FILE")
        values: dict[str, object] = {
            "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            "data_dir": Path(os.environ.get("BAOTUAN_DATA_DIR", str(PROJECT_ROOT / "var"))),
            "tokens_file": Path(tokens) if tokens else None,
            "request_timeout_s": float(os.environ.get("BAOTUAN_REQUEST_TIMEOUT_S", "10")),
            "kafka_username": os.environ.get("BAOTUAN_KAFKA_SASL_USERNAME") or None,
            "kafka_password": os.environ.get("BAOTUAN_KAFKA_SASL_PASSWORD") or None,
            "kafka_sasl_mechanism": os.environ.get("BAOTUAN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            "kafka_security_protocol": os.environ.get("BAOTUAN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            "signing_key_file": Path(key) if (key := os.environ.get("BAOTUAN_SIGNING_KEY_FILE")) else None,
            "checkpoint_every": int(os.environ.get("BAOTUAN_CHECKPOINT_EVERY", "100")),
            "checkpoint_seconds": float(os.environ.get("BAOTUAN_CHECKPOINT_SECONDS", "5")),
            "group_commit_max": int(os.environ.get("BAOTUAN_GROUP_COMMIT_MAX", "64")),
            "pipelining": os.environ.get("BAOTUAN_PIPELINING", "0").strip().lower() in ("1", "true", "yes", "on"),
            "kafka_transactional_id": os.environ.get("BAOTUAN_KAFKA_TRANSACTIONAL_ID") or None,
            "instance_id": os.environ.get("BAOTUAN_INSTANCE_ID") or None,
            "advertised_url": os.environ.get("BAOTUAN_ADVERTISED_URL") or None,
            "group_session_timeout_ms": int(os.environ.get("BAOTUAN_GROUP_SESSION_TIMEOUT_MS", "10000")),
            "transaction_timeout_ms": int(os.environ.get("BAOTUAN_TRANSACTION_TIMEOUT_MS", "15000")),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
