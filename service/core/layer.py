"""One layer instance: its identity, build state, variables and per-input records.

This is TF's legacy ``Layer`` bookkeeping (layer-api.md §3-§7) without any I/O: the
variable lists and their trainable flip, losses in TF's order, pending updates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layerserve.server.layers.base import LayerKind
from layerserve.server.layers.kit.input_spec import InputSpec
from layerserve.server.layers.kit.regularizers import Regularizer

__all__ = ["ConditionalLoss", "Layer", "PendingUpdate", "Variable", "short_name"]


def short_name(full: str) -> str:
    """``scope/kernel:0`` -> ``kernel``."""
    return full.rsplit("/", 1)[-1].split(":")[0]

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class Variable:
    name: str  # full name, e.g. "dense/kernel:0"
    shape: tuple[int, ...]
    dtype: str
    trainable: bool  # as created; TF keeps it when the layer's flag flips
    # The variable store's key ("scope/kernel"), when the name differs from it: TF's op names are
    # unique ignoring case, so a "Dense" scope beside "dense" makes "Dense/kernel_1:0".
    key: str = ""

    @property
    def store_key(self) -> str:
        return self.key or self.name.split(":")[0]

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "trainable": self.trainable}
        if self.key and self.key != self.name.split(":")[0]:
            out["key"] = self.key
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Variable:
        return cls(data["name"], tuple(data["shape"]), data["dtype"], data["trainable"], data.get("key", ""))


@dataclass(frozen=True)
class ConditionalLoss:
    ref: str
    value: np.ndarray
    others: tuple[str, ...] = ()  # the other inputs of a several-input apply

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.ref, *self.others)


@dataclass(frozen=True)
class PendingUpdate:
    """A new value for a variable, tied to an input. With ``decay`` set it is TF's moving
    average ``var - (var - stat) * decay``, re-evaluated against the variable when run;
    ``value`` is what the variable would hold after this update alone, at apply time."""

    ref: str
    variable: str
    value: np.ndarray
    stat: np.ndarray | None = None
    decay: float | None = None
    others: tuple[str, ...] = ()  # the other inputs of a several-input apply

    @property
    def refs(self) -> tuple[str, ...]:
        return (self.ref, *self.others)

    def new_value(self, current: np.ndarray) -> np.ndarray:
        if self.stat is None or self.decay is None:
            return self.value.astype(current.dtype)
        decay = current.dtype.type(np.float32(self.decay))  # TF builds decay as float32, then casts
        updated: np.ndarray = (current - (current - self.stat.astype(current.dtype)) * decay).astype(current.dtype)
        return updated


@dataclass
class Layer:
    id: str
    kind: LayerKind
    name: str
    base_name: str
    trainable: bool = True
    dtype: str | None = None
    scope: str | None = None
    fixed_scope: bool = False  # functional form with an explicit name: scope used exactly
    reuse: bool | str = False  # True, False or "auto" (TF's AUTO_REUSE)
    built: bool = False
    build_shape: Shape | None = None
    variables: list[str] = field(default_factory=list)
    weight_losses: list[tuple[str, Regularizer]] = field(default_factory=list)
    losses: deque[ConditionalLoss] = field(default_factory=deque)
    updates: deque[PendingUpdate] = field(default_factory=deque)
    batching: dict[str, Any] = field(default_factory=dict)
    graph: str = ""  # the owning graph's name; ids are unique only within a graph
    # full name -> the kind's name for it, where they differ ("Dense/kernel_1:0" -> "kernel")
    aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind.layer_name = self.name

    @property
    def key(self) -> str:
        """Identity across graphs, for runtime caches."""
        return f"{self.graph}/{self.id}"

    @property
    def class_name(self) -> str:
        return self.kind.class_name

    def input_spec(self) -> InputSpec | list[InputSpec] | None:
        return self.kind.input_spec(self.build_shape if self.built else None)

    def short_name(self, full: str) -> str:
        """The kind's name for one of this layer's variables (``kernel``)."""
        return self.aliases.get(full) or short_name(full)

    # ---- variable lists (layer-api.md §5) ---------------------------------------------
    def variable_lists(self, table: dict[str, Variable]) -> tuple[list[str], list[str]]:
        """(trainable_variables, non_trainable_variables) in TF's order."""
        made_trainable = [n for n in self.variables if table[n].trainable]
        made_frozen = [n for n in self.variables if not table[n].trainable]
        if self.trainable:
            return made_trainable, made_frozen
        return [], made_trainable + made_frozen

    def weights(self, table: dict[str, Variable]) -> list[str]:
        trainable, frozen = self.variable_lists(table)
        return trainable + frozen

    def count_params(self, table: dict[str, Variable]) -> int | None:
        if not self.built:
            return None
        return sum(int(np.prod(table[n].shape)) for n in self.variables)

    # ---- losses and updates (layer-api.md §6, §7) -------------------------------------
    def weight_loss_values(self, values: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        return [(name, reg(values[name])) for name, reg in self.weight_losses]

    def losses_for(self, refs: list[str] | None, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        if refs is None:
            return [{"variable": n, "value": v} for n, v in self.weight_loss_values(values)]
        wanted = set(refs)
        return [{"input": c.ref, "value": c.value} for c in self.losses if wanted.intersection(c.refs)]

    def all_losses(self, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        return [{"input": c.ref, "value": c.value} for c in self.losses] + self.losses_for(None, values)

    def visible_updates(self, refs: list[str] | None = None) -> list[PendingUpdate]:
        """``updates`` (refs None) or ``get_updates_for(refs)``; empty while not trainable."""
        if not self.trainable:
            return []
        if refs is None:
            return list(self.updates)
        wanted = set(refs)
        return [u for u in self.updates if wanted.intersection(u.refs)]

    def record(self, losses: list[ConditionalLoss], updates: list[PendingUpdate], limit: int) -> None:
        """Keep at most ``limit`` records of each kind, evicting the oldest first."""
        for loss in losses:
            self.losses.append(loss)
        for update in updates:
            self.updates.append(update)
        while len(self.losses) > limit:
            self.losses.popleft()
        while len(self.updates) > limit:
            self.updates.popleft()
