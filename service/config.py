"""Server settings: defaults, ``LAYERSERVE_*`` environment variables and CLI flags, validated once.

Every setting is checked at start (pydantic-settings): a bad value stops the server with one
line naming the setting, the value given and the values accepted (``SettingsError``), instead
of a server that misreads it or rejects every request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as _SourceError

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "environment_names"]

MiB = 1024 * 1024
ENV_PREFIX = "LAYERSERVE_"
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("layerserve_environ", default=None)


class SettingsError(ValueError):
    """A setting with a value outside what it accepts; ``str()`` is one line for the operator."""


def _accepted(text: str, **kw: Any) -> Any:
    return Field(description=text, **kw)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="forbid",
                                      validate_assignment=True, env_ignore_empty=True)

    host: str = _accepted("a host name or IP address", default="127.0.0.1", min_length=1)
    port: int = _accepted("an integer from 1 to 65535", default=8000, ge=1, le=65535)
    state_dir: str = _accepted("a directory path", default="./layerserve-state", min_length=1)
    store: str | None = _accepted("redis://host:port/db, rediss://... or unix://... (unset: the state directory)",
                                  default=None)
    fsync: Literal["always", "everysec"] = _accepted("always or everysec", default="always")
    write_behind_s: float = _accepted("a number of seconds of at least 0 (0: off)", default=0.0, ge=0,
                                      le=3600, allow_inf_nan=False)
    keep_versions: int = _accepted("an integer of at least 1", default=4, ge=1)
    keep_history: int = _accepted("an integer of at least 1 (checkpointed versions are always kept)",
                                  default=1000, ge=1)
    history_max_age_s: float = _accepted("a number of seconds of at least 0 (0: no age limit)",
                                         default=30 * 24 * 3600.0, ge=0, allow_inf_nan=False)
    write_retries: int = _accepted("an integer of at least 1", default=16, ge=1)
    providers: Annotated[list[str], NoDecode] = _accepted(
        "a comma-separated list of execution providers, e.g. cuda,cpu", default_factory=lambda: ["cpu"], min_length=1)
    provider_options: Annotated[dict[str, dict[str, Any]], NoDecode] = _accepted(
        'a JSON object keyed by provider, e.g. {"cuda": {"device_id": 0}}', default_factory=dict)
    require_providers: bool = _accepted("on/off, true/false, yes/no or 1/0", default=False)
    io_binding: Literal["auto", "on", "off"] = _accepted("auto, on or off", default="auto")
    token: Annotated[list[str], NoDecode] = _accepted(
        "comma-separated bearer tokens, each TOKEN or TOKEN:graph1|graph2", default_factory=list)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = _accepted(
        "critical, error, warning, info or debug", default="info")
    max_body_bytes: int = _accepted("a positive integer (bytes)", default=64 * MiB, ge=1)
    max_json_bytes: int = _accepted("a positive integer (bytes): a JSON body or OIP JSON part", default=16 * MiB, ge=1)
    max_frame_header_bytes: int = _accepted("a positive integer (bytes): a frame's JSON header", default=64 * 1024,
                                            ge=1)
    json_decode_threads: int = _accepted("a positive integer: large JSON bodies decoded at once", default=2, ge=1)
    max_tensor_elements: int = _accepted("a positive integer", default=16 * MiB, ge=1)
    max_apply_cost: int = _accepted("a positive integer: multiply-accumulates or window reads of one apply",
                                    default=10**11, ge=1)
    max_model_bytes: int = _accepted("a positive integer (bytes)", default=16 * MiB, ge=1)
    max_model_nodes: int = _accepted("a positive integer: nodes of a model once its functions are inlined",
                                     default=10_000, ge=1)
    max_model_edges: int = _accepted("a positive integer: node inputs and outputs of a model once its functions "
                                     "are inlined", default=100_000, ge=1)
    max_model_depth: int = _accepted("a positive integer: nesting of functions and subgraphs", default=16, ge=1)
    max_program_nodes: int = _accepted("a positive integer: nodes of a program once its functions are inlined",
                                       default=100_000, ge=1)
    max_program_edges: int = _accepted("a positive integer: node inputs and outputs of a program once its "
                                       "functions are inlined", default=200_000, ge=1)
    max_model_inference_s: float = _accepted("a number of seconds above 0: CPU time of shape inference on an "
                                             "uploaded model or program", default=0.5, gt=0, allow_inf_nan=False)
    model_validation_timeout_s: float = _accepted("a number of seconds above 0: validating an uploaded model or "
                                                  "program",
                                                  default=10.0, gt=0, allow_inf_nan=False)
    max_layers_per_graph: int = _accepted("a positive integer", default=10_000, ge=1)
    max_records_per_layer: int = _accepted("a positive integer", default=1000, ge=1)
    max_sessions: int = _accepted("a positive integer", default=256, ge=1)
    max_session_bytes: int = _accepted("a positive integer (bytes of the cached sessions' models)",
                                       default=1024 * MiB, ge=1)
    cpu_arena: bool = _accepted("on or off (also true/false, yes/no, 1/0)", default=False)
    request_timeout_s: float = _accepted("a number of seconds above 0", default=60.0, gt=0, allow_inf_nan=False)
    header_timeout_s: float = _accepted("a number of seconds above 0: a request head's deadline", default=10.0, gt=0,
                                        allow_inf_nan=False)
    max_header_bytes: int = _accepted("an integer of at least 1024 (bytes of a request head)", default=64 * 1024,
                                      ge=1024)
    max_connections: int = _accepted("a positive integer: open HTTP connections", default=1000, ge=1)
    write_timeout_s: float = _accepted("a number of seconds above 0: how long a response may stay unread",
                                       default=30.0, gt=0, allow_inf_nan=False)
    intra_op_threads: int = _accepted("an integer of at least 0 (0: ONNX Runtime decides)", default=0, ge=0)
    batching: bool = _accepted("on or off (also true/false, yes/no, 1/0)", default=True)
    max_batch_size: int = _accepted("a positive integer", default=64, ge=1)
    docs: bool = _accepted("on or off (also true/false, yes/no, 1/0)", default=False)
    max_queue_delay_ms: float = _accepted("a number of milliseconds of at least 0", default=2.0, ge=0,
                                          allow_inf_nan=False)

    @field_validator("providers", "token", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("provider_options", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON ({exc.msg})") from None
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value and value.split("://", 1)[0] not in ("redis", "rediss", "unix"):
            raise ValueError("not a Redis URL")
        return value or None

    @model_validator(mode="after")
    def _write_behind_needs_the_state_directory(self) -> Settings:
        if self.write_behind_s and self.store:
            raise ValueError("write_behind_s is for the state directory: with a shared store, every replica must "
                             "see a commit when it is answered")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _Environment(settings_cls)  # flags win over variables; no .env files

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``LAYERSERVE_<NAME>`` variables (of ``environ``, else the process's), then
        explicit overrides (the flags); ``SettingsError`` names the first setting refused."""
        given = {k: v for k, v in overrides.items() if v is not None}
        with _environment(environ):
            try:
                return cls(**given)
            except ValidationError as exc:
                raise SettingsError(_one_line(exc, given)) from None
            except _SourceError as exc:
                raise SettingsError(f"invalid setting: {exc}") from None

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for ``GET /v1/config``."""
        out = self.model_dump()
        out["token"] = f"{len(self.token)} token(s) configured" if self.token else None
        out["store"] = _redact_url(self.store)
        return out


class _Environment(EnvSettingsSource):
    """The process environment, or the mapping ``from_env`` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return {k.lower(): v for k, v in environ.items() if v != ""}


@contextmanager
def _environment(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(None if environ is None else dict(environ))
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def _one_line(exc: ValidationError, given: dict[str, Any]) -> str:
    """``invalid --port / LAYERSERVE_PORT 'abc': ...; accepted: an integer from 1 to 65535``."""
    error = exc.errors()[0]
    if not error["loc"]:  # a rule across settings
        return f"invalid settings: {str(error['msg']).removeprefix('Value error, ')}"
    name = str(error["loc"][0])
    field = Settings.model_fields.get(name)
    where = f"--{name.replace('_', '-')}" if name in given else f"{ENV_PREFIX}{name.upper()}"
    value = error.get("input")
    shown = ",".join(map(str, value)) if isinstance(value, list) else value
    reason = str(error["msg"]).removeprefix("Value error, ")
    accepted = f"; accepted: {field.description}" if field is not None and field.description else ""
    return f"invalid {where} {shown!r}: {reason}{accepted}"


def _redact_url(url: str | None) -> str | None:
    """``redis://user:secret@host/0`` -> ``redis://user:***@host/0``."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def environment_names() -> list[str]:
    """Every ``LAYERSERVE_*`` variable the server reads."""
    return [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields]


