"""Dropout: identity unless training; then inverted dropout with TF's mask rule (layer-api.md §8).

The uniform noise is an extra graph input fed per apply (``keep = noise >= rate``), so the
graph stays deterministic and cacheable. A seeded layer draws the same noise on every apply
of the same shape; TF's random streams themselves cannot be reproduced.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from layerserve.server.errors import IncompatibleInput, InvalidArgument
from layerserve.server.layers.base import GraphOutputs, LayerKind, Signature
from layerserve.server.layers.kit.onnx_graph import GraphBuilder
from layerserve.server.layers.params import Param

__all__ = ["Dropout"]

NOISE = "noise"


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"`rate` must be a number, got {value!r}", code="invalid_argument", exception="TypeError")
    if not 0 <= value <= 1:
        raise InvalidArgument(f"Invalid value {value} received for `rate`, expected a value between 0 and 1.",
                              code="invalid_argument")
    return float(value)


def _noise_shape(value: Any, name: str) -> list[int | None] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in value):
        raise InvalidArgument(f"`noise_shape` must be a list of non-negative ints or nulls, got {value!r}",
                              code="invalid_argument", exception="TypeError")
    return list(value)


def _seed(value: Any, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidArgument(f"`seed` must be an integer or null, got {value!r}", code="invalid_argument",
                              exception="TypeError")
    return value


class Dropout(LayerKind):
    class_name = "Dropout"
    dtype_policy = "follow"
    takes_training = True
    extra_inputs = (NOISE,)
    params = (
        Param("rate", 0.5, _rate),
        Param("noise_shape", None, _noise_shape),
        Param("seed", None, _seed),
    )

    def _drops(self, *, training: bool) -> bool:
        """TF returns the input itself for rate 0, and outside training."""
        return training and self.config["rate"] > 0

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """None entries take the input's dim; the mask must broadcast to the input's shape."""
        given = self.config["noise_shape"]
        if given is None:
            return shape
        if len(given) > len(shape):  # TF's mask would outrank the input: the output's shape check fails
            raise IncompatibleInput(f"Shapes must be equal rank, but are {len(given)} and {len(shape)}",
                                    code="incompatible_noise_shape")
        resolved = tuple(shape[i] if d is None else d for i, d in enumerate(given))
        try:
            fits = np.broadcast_shapes(resolved, shape) == shape
        except ValueError:
            fits = False
        if not fits:  # TF's SelectV2 broadcasts the mask against the input from the last dim
            bad = next((m, n) for m, n in zip(reversed(resolved), reversed(shape), strict=False) if m not in (1, n))
            raise IncompatibleInput(f"Dimensions must be equal, but are {bad[0]} and {bad[1]} for 'SelectV2' with "
                                    f"input shapes: [{','.join(map(str, resolved))}], "
                                    f"[{','.join(map(str, shape))}], [].", code="incompatible_noise_shape")
        return resolved

    def check_call(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> None:
        if not self._drops(training=training):
            return
        if self.config["rate"] >= 1:
            raise InvalidArgument(f"`rate` must be a scalar tensor or a float in the range [0, 1). "
                                  f"Received: rate={self.config['rate']}", code="invalid_argument")
        self.noise_shape(shape)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def graph(self, b: GraphBuilder, x: str, sig: Signature) -> GraphOutputs:
        if not self._drops(training=sig.training):
            return GraphOutputs(b.op("Identity", [x]))
        shape = self.noise_shape(sig.shape)
        given = self.config["noise_shape"]
        batch = "batch" if given is None or given[0] is None else shape[0]
        b.add_input(NOISE, sig.dtype, [batch, *shape[1:]] if shape else [])
        keep = b.op("GreaterOrEqual", [NOISE, b.const(self.config["rate"], sig.dtype, "rate")])
        rate = self.config["rate"]
        scaled = b.op("Mul", [x, b.const(1 / (1 - rate), sig.dtype, "scale")])
        return GraphOutputs(b.op("Where", [keep, scaled, b.const(0, sig.dtype, "zero")]))

    def extra_feeds(self, shape: tuple[int, ...], dtype: str, *, training: bool) -> dict[str, np.ndarray]:
        if not self._drops(training=training):
            return {}
        seed = self.config["seed"]
        rng = np.random.default_rng(None if seed is None else seed % 2**64)
        return {NOISE: np.asarray(rng.random(self.noise_shape(shape)), dtype=dtype)}

    def get_config(self, dtype: str | None, build_shape: tuple[int | None, ...] | None) -> dict[str, Any]:
        return {k: self.config[k] for k in ("rate", "noise_shape", "seed")}
