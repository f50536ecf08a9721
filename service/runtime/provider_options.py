"""Per-provider options from configuration, checked and turned into ONNX Runtime's strings.

Configuration is ``{"cuda": {"device_id": 0, "memory_limit": "4GiB", "arena_strategy":
"same_as_requested", "cudnn_algo_search": "heuristic"}, "tensorrt": {...}}`` (from
``LAYERSERVE_PROVIDER_OPTIONS`` or ``--provider-options``). The friendly names above are
translated; any other key is passed to ONNX Runtime under its own name, which rejects what it
does not know when the session is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ProviderOptionError", "device_id_of", "normalize_options", "parse_size"]

ALIASES = {
    "memory_limit": "gpu_mem_limit",
    "arena_strategy": "arena_extend_strategy",
    "cudnn_algo_search": "cudnn_conv_algo_search",
}
CHOICES = {
    "arena_extend_strategy": {"next_power_of_two": "kNextPowerOfTwo", "same_as_requested": "kSameAsRequested"},
    "cudnn_conv_algo_search": {"exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"},
}
SIZES = ("gpu_mem_limit", "trt_max_workspace_size")
UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
         "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", re.IGNORECASE)


class ProviderOptionError(ValueError):
    """A provider option that cannot be right; the message names the provider and the option."""


def parse_size(value: Any) -> int:
    """Bytes from an int or a string such as ``"512MiB"``, ``"4GB"``, ``"1073741824"``."""
    if isinstance(value, bool):
        raise ProviderOptionError(f"a size is a number of bytes or a string like '4GiB', got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(str(value))
        if match is None:
            raise ProviderOptionError(f"a size is a number of bytes or a string like '4GiB', got {value!r}")
        size = int(float(match.group(1)) * UNITS[(match.group(2) or "").lower()])
    if size <= 0:
        raise ProviderOptionError(f"a size must be positive, got {value!r}")
    return size


def _value(key: str, value: Any) -> str:
    if key in CHOICES:
        table = CHOICES[key]
        if value in table.values():
            return str(value)
        if str(value).lower() not in table:
            raise ProviderOptionError(f"{key} is one of {', '.join(table)}, got {value!r}")
        return table[str(value).lower()]
    if key in SIZES:
        return str(parse_size(value))
    if key == "device_id":
        if isinstance(value, bool) or not str(value).isdigit():
            raise ProviderOptionError(f"device_id is a non-negative integer, got {value!r}")
        return str(int(value))
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)) or value is None:
        raise ProviderOptionError(f"{key} takes a string, number or boolean, got {value!r}")
    return str(value)


def normalize_options(options: Mapping[str, Any], known: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """ONNX Runtime's option names and string values, per short provider name in ``known``."""
    if not isinstance(options, Mapping):
        raise ProviderOptionError(f"provider options are an object keyed by provider, got {options!r}")
    out: dict[str, dict[str, str]] = {}
    for provider, values in options.items():
        if provider not in known:
            raise ProviderOptionError(f"options for unknown provider {provider!r}; known: {', '.join(known)}")
        if not isinstance(values, Mapping):
            raise ProviderOptionError(f"options for {provider} are an object, got {values!r}")
        converted: dict[str, str] = {}
        for key, value in values.items():
            name = ALIASES.get(str(key), str(key))
            try:
                converted[name] = _value(name, value)
            except ProviderOptionError as exc:
                raise ProviderOptionError(f"{provider}: {exc}") from None
        out[provider] = converted
    return out


def device_id_of(options: Mapping[str, Mapping[str, str]], provider: str) -> int:
    return int(options.get(provider, {}).get("device_id", "0"))
