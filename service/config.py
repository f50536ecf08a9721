"""Server settings: defaults, ``LAYERSERVE_*`` environment variables and CLI flags."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Settings"]

MiB = 1024 * 1024


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    state_dir: str = "./layerserve-state"
    store: str | None = None  # e.g. redis://host:6379/0; None means the state directory
    keep_versions: int = 4  # shared store: versions kept per entry (readers racing writers need them)
    keep_history: int = 1000  # versions kept in each graph's history (checkpointed ones always)
    history_max_age_s: float = 30 * 24 * 3600.0  # and none older than this (0: no age limit)
    write_retries: int = 16  # shared store: attempts of a write that keeps losing the race
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    require_providers: bool = False
    io_binding: str = "auto"  # variables resident as OrtValues, runs via IOBinding: auto (on when CUDA leads), on, off
    token: list[str] = field(default_factory=list)  # accepted bearer tokens ("TOKEN" or "TOKEN:graph1|graph2")
    log_level: str = "info"
    max_body_bytes: int = 64 * MiB
    max_tensor_elements: int = 16 * MiB
    max_model_bytes: int = 16 * MiB  # an uploaded custom-layer ONNX model
    max_layers_per_graph: int = 10_000
    max_records_per_layer: int = 1000
    max_sessions: int = 256
    request_timeout_s: float = 60.0
    intra_op_threads: int = 0
    batching: bool = True
    max_batch_size: int = 64
    max_queue_delay_ms: float = 2.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``LAYERSERVE_<NAME>`` variables, then explicit overrides."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"LAYERSERVE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(f.name, raw, cls.__dataclass_fields__[f.name].type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for ``GET /v1/config``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["token"] = f"{len(self.token)} token(s) configured" if self.token else None
        out["store"] = _redact_url(self.store)
        return out


def _redact_url(url: str | None) -> str | None:
    """``redis://user:secret@host/0`` -> ``redis://user:***@host/0``."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def _parse(name: str, raw: str, type_name: Any) -> Any:
    text = str(type_name)
    if text.startswith("bool"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if text.startswith("int"):
        return int(raw)
    if text.startswith("float"):
        return float(raw)
    if text.startswith("list"):
        return [item.strip() for item in raw.split(",") if item.strip()]
    if text.startswith("dict"):
        return json.loads(raw)
    return raw
