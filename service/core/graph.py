"""A graph: a namespace of layers and the variables they own, as one ``tf.Graph``.

Variables belong to the graph (keyed by full name) so that layers can share them through
``reuse``. Their values live in one copy-on-write mapping: a writer builds a new mapping and
swaps the reference, so a reader that took ``values`` once sees one complete version.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from layerserve.server.core.layer import Layer, Variable
from layerserve.server.core.naming import LAYER_ID_PREFIX, GraphNames
from layerserve.server.errors import AmbiguousName, InvalidArgument, NotFound, VariableScopeError
from layerserve.server.layers.base import LayerKind, VariableSpec

__all__ = ["Graph", "LAYER_ID_PREFIX"]

# Ids use a character that names may not contain, so an id never equals a name.
# What TF's graph accepts as a name scope opened at the root (ops.py, _VALID_OP_NAME_REGEX).
_ROOT_SCOPE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


def _tf_shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


@dataclass
class Graph:
    name: str
    names: GraphNames = field(default_factory=GraphNames)
    layers: dict[str, Layer] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    values: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))
    next_id: int = 1
    # The store's revision this copy reflects, and each entry's revision of last change
    # ("L:<layer id>" definition, "V:<variable>" value, "R:<layer id>" records, "G" structure).
    revision: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # Registered programs (TF1 graph mode): id (the sha256 of the model) -> the ONNX model, base64.
    programs: dict[str, str] = field(default_factory=dict)
    # Named programs (models): name -> {"id", "inputs": {alias: tensor}, "outputs": {alias: tensor}}.
    named_programs: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---- layers ------------------------------------------------------------------------
    def resolve(self, ref: str) -> Layer:
        """A layer by id, or by a name that exactly one layer of the graph has."""
        if ref in self.layers:
            return self.layers[ref]
        matches = [layer for layer in self.layers.values() if layer.name == ref]
        if not matches:
            raise NotFound(f"graph {self.name!r} has no layer {ref!r}", code="layer_not_found")
        if len(matches) > 1:
            raise AmbiguousName(f"{len(matches)} layers of graph {self.name!r} are named {ref!r}; use an id",
                                candidates=[layer.id for layer in matches])
        return matches[0]

    def new_layer(self, kind: LayerKind, name: str | None, *, trainable: bool, dtype: str | None,
                  scope: str | None = None, reuse: bool | str = False) -> Layer:
        base = kind.base_name()
        layer_name = name if name else self.names.new_layer_name(base)
        layer = Layer(id=f"{LAYER_ID_PREFIX}{self.next_id}", kind=kind, name=layer_name,
                      base_name=name or base, trainable=trainable, dtype=dtype,
                      scope=None, fixed_scope=scope is not None, reuse=reuse)
        if scope is not None:
            layer.base_name = scope
        layer.graph = self.name
        self.next_id += 1
        self.layers[layer.id] = layer
        return layer

    def assign_scope(self, layer: Layer) -> None:
        """TF's ``_set_scope``: exact for functional names and reuse, else made unique."""
        if layer.scope is not None:
            return
        if not _ROOT_SCOPE.match(layer.base_name):  # TF opens a name scope of that name first
            raise InvalidArgument(f"'{layer.base_name}' is not a valid root scope name. A root scope name has to "
                                  f"match the following pattern: {_ROOT_SCOPE.pattern}", code="invalid_name")
        if layer.fixed_scope or layer.reuse:
            layer.scope = layer.base_name
            self.names.open_scope(layer.scope)
        else:
            layer.scope = self.names.unique_scope(layer.base_name)

    def layer_version(self, layer: Layer) -> int:
        """Moves whenever the layer's definition or the value of one of its variables changes."""
        return max([self.versions.get(f"L:{layer.id}", 0), *(self.versions.get(f"V:{n}", 0) for n in layer.variables)])

    # ---- variables ---------------------------------------------------------------------
    def plan_variables(self, layer: Layer, specs: list[VariableSpec]) -> list[tuple[VariableSpec, str, bool]]:
        """(spec, full name, is new) per spec, or TF's variable-store error; changes nothing."""
        plan = []
        stored = {v.store_key: v for v in self.variables.values()}
        for spec in specs:
            short = f"{layer.scope}/{spec.name}"
            existing = stored.get(short)
            if existing is None and layer.reuse is True:
                raise VariableScopeError(f"Variable {short} does not exist, or was not created with "
                                         "tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
            if existing is not None and layer.reuse is False:
                raise VariableScopeError(f"Variable {short} already exists, disallowed. Did you mean to set "
                                         "reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
            if existing is not None and existing.shape != spec.shape:
                raise VariableScopeError(f"Trying to share variable {short}, but specified shape "
                                         f"{_tf_shape(spec.shape)} and found shape {_tf_shape(existing.shape)}.")
            plan.append((spec, existing.name if existing else self._op_name(short) + ":0", existing is None))
        return plan

    def _op_name(self, key: str) -> str:
        """TF's ``Graph.unique_name``: op names are unique ignoring case (``Dense/kernel_1``)."""
        used = {v.name.split(":")[0].lower() for v in self.variables.values()}
        if key.lower() not in used:
            return key
        index = 1
        while f"{key.lower()}_{index}" in used:
            index += 1
        return f"{key}_{index}"

    def set_values(self, updates: dict[str, np.ndarray]) -> None:
        """Swap in a new values mapping holding ``updates`` (all at once, never torn)."""
        merged = dict(self.values)
        merged.update(updates)
        self.values = MappingProxyType(merged)

    def drop_values(self, names: list[str]) -> None:
        self.values = MappingProxyType({k: v for k, v in self.values.items() if k not in set(names)})

    def checkpoint(self, touched: Iterable[Layer] = ()) -> Callable[[], None]:
        """A function that puts the graph back as it is now: its layers, variables, values
        and names, and the state of the ``touched`` layers (the ones a mutation may change)."""
        names, next_id = self.names.to_json(), self.next_id
        layers, variables, values, programs = dict(self.layers), dict(self.variables), self.values, dict(self.programs)
        named = dict(self.named_programs)
        saved = [(layer, _layer_state(layer)) for layer in touched]

        def rollback() -> None:
            self.names, self.next_id, self.values = GraphNames.from_json(names), next_id, values
            self.layers.clear()
            self.layers.update(layers)
            self.variables.clear()
            self.variables.update(variables)
            self.programs.clear()
            self.programs.update(programs)
            self.named_programs.clear()
            self.named_programs.update(named)
            for layer, state in saved:
                layer.__dict__.update(state)
        return rollback

    def owners(self, variable: str) -> list[Layer]:
        return [layer for layer in self.layers.values() if variable in layer.variables]

    def check_layer_limit(self, limit: int) -> None:
        if len(self.layers) >= limit:
            raise InvalidArgument(f"graph {self.name!r} already holds {limit} layers, the configured maximum",
                                  code="too_many_layers")

    def describe_variables(self, names: list[str]) -> list[dict[str, Any]]:
        return [self.variables[n].to_json() for n in names]


def _layer_state(layer: Layer) -> dict[str, Any]:
    """The layer's fields, with its mutable containers copied (the items are never mutated)."""
    state = dict(layer.__dict__)
    for key, value in state.items():
        if isinstance(value, (list, dict, deque)):
            state[key] = type(value)(value) if not isinstance(value, dict) else dict(value)
    return state
