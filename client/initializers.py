"""Keras' initializers by the same names; they run on the server when a layer is built.

TensorFlow's random streams are not reproduced: the distributions and their parameters are
TF's, and a seed makes the server's values reproducible. Set exact values with
``set_weights``.
"""

from __future__ import annotations

from typing import Any

from layerserve._serialize import to_wire

__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Initializer", "LecunNormal",
    "LecunUniform", "Ones", "RandomNormal", "RandomUniform", "TruncatedNormal", "Zeros", "constant",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "ones",
    "random_normal", "random_uniform", "truncated_normal", "zeros", "zeros_initializer",
]


class Initializer:
    def __init__(self, **config: Any) -> None:
        self._config = config

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def to_wire(self) -> dict[str, Any]:
        return {"class_name": getattr(self, "_wire_class", type(self).__name__),
                "config": to_wire(self.get_config(), "initializer")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Initializer) and self.to_wire() == other.to_wire()

    def __hash__(self) -> int:
        return hash(repr(self))


class Zeros(Initializer):
    def __init__(self) -> None:
        super().__init__()


class Ones(Initializer):
    def __init__(self) -> None:
        super().__init__()


class Constant(Initializer):
    """A scalar fills the variable; an array (or nested list) must have its number of elements."""

    def __init__(self, value: Any = 0.0) -> None:
        super().__init__(value=value)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(mean=mean, stddev=stddev, seed=seed)


class TruncatedNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(mean=mean, stddev=stddev, seed=seed)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(minval=minval, maxval=maxval, seed=seed)


class _Seeded(Initializer):
    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=seed)


class GlorotUniform(_Seeded):
    pass


class GlorotNormal(_Seeded):
    pass


class HeUniform(_Seeded):
    pass


class HeNormal(_Seeded):
    pass


class LecunUniform(_Seeded):
    pass


class LecunNormal(_Seeded):
    pass


zeros = zeros_initializer = Zeros
ones = Ones
constant = Constant
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
