"""Runtime settings, read from the environment once at start-up (never at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.runtime.local_kafka import PROJECT_ROOT


@dataclass(frozen=True)
class Settings:
    """Where a service finds its broker, its projection and its tokens."""

    bootstrap_servers: str
    data_dir: Path
    tokens_file: Path | None
    request_timeout_s: float = 10.0
    max_body_bytes: int = 1_048_576

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        tokens = os.environ.get("BAOTUAN_TOKENS_FILE")
        values: dict[str, object] = {
            "bootstrap_servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            "data_dir": Path(os.environ.get("BAOTUAN_DATA_DIR", str(PROJECT_ROOT / "var"))),
            "tokens_file": Path(tokens) if tokens else None,
            "request_timeout_s": float(os.environ.get("BAOTUAN_REQUEST_TIMEOUT_S", "10")),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
