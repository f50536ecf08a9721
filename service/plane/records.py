"""What an apply leaves behind: conditional losses and pending updates, keyed by its inputs.

An apply records them (``_record``); the losses are read back by input reference; the
pending updates are run, in TF's order, by ``run_updates`` and consumed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerserve.protocol import input_ref
from layerserve.server.core.graph import Graph
from layerserve.server.core.layer import ConditionalLoss, Layer, PendingUpdate
from layerserve.server.errors import Conflict
from layerserve.server.layers.kit.regularizers import parse_regularizer
from layerserve.server.plane.graphs import GraphPlane
from layerserve.server.plane.transactions import check_version, retried

__all__ = ["Records"]


class Records(GraphPlane):
    """Recording an apply's losses and updates, reading the losses, running the updates."""

    def _record(self, g: Graph, layer: Layer, inputs: list[np.ndarray], outputs: dict[str, np.ndarray],
                values: Any, *, training: bool) -> list[str] | None:
        """Record the apply's conditional losses and pending updates, keyed by the inputs'
        references; those references, or None when there was nothing to record."""
        loss_values = list(layer.kind.conditional_losses(outputs))
        loss_values += self._activity_losses(layer, outputs["y"])
        stats = layer.kind.update_stats(outputs, training=training)
        if not loss_values and not stats:
            return None
        refs = [input_ref(each) for each in inputs]
        ref, others = refs[0], tuple(refs[1:])
        losses = [ConditionalLoss(ref, value, others) for value in loss_values]
        updates = self._pending_updates(layer, ref, stats, values, others)
        if losses or updates:
            with self._mutation(g, layer):
                layer.record(losses, updates, self.settings.max_records_per_layer)
                self._commit(g, layers=[layer.id])
        return refs

    @staticmethod
    def _activity_losses(layer: Layer, y: np.ndarray) -> list[np.ndarray]:
        reg = parse_regularizer(layer.kind.config.get("activity_regularizer"), "activity_regularizer")
        if reg is None:
            return []
        batch = y.shape[0] if y.ndim else 1
        loss = reg(y)
        return [np.asarray(loss / loss.dtype.type(batch), dtype=y.dtype)]

    @staticmethod
    def _pending_updates(layer: Layer, ref: str, stats: Any, values: Any,
                         others: tuple[str, ...] = ()) -> list[PendingUpdate]:
        by_short = {layer.short_name(full): full for full in layer.variables}
        updates = []
        for short, stat, decay in stats:
            full = by_short[short]
            if stat.shape != values[full].shape:
                raise Conflict(f"layer {layer.name!r} produced an update of shape {list(stat.shape)} for "
                               f"{full} of shape {list(values[full].shape)}", code="incompatible_update")
            if decay is None:  # a plain assignment of the computed value
                updates.append(PendingUpdate(ref, full, stat.astype(values[full].dtype), others=others))
                continue
            pending = PendingUpdate(ref, full, np.empty(0), stat, decay)
            updates.append(PendingUpdate(ref, full, pending.new_value(values[full]), stat, decay, others))
        return updates

    # ---- reading and running them ------------------------------------------------------
    def losses(self, graph: str, ref: str) -> list[dict[str, Any]]:
        g, layer = self.layer(graph, ref)
        values = dict(g.values)
        return layer.all_losses(values) + self._output_losses(layer, values)

    def losses_for(self, graph: str, ref: str, refs: list[str] | None) -> list[dict[str, Any]]:
        g, layer = self.layer(graph, ref)
        values = dict(g.values)
        extra = self._output_losses(layer, values) if refs is None else []
        return layer.losses_for(refs, values) + extra

    def _output_losses(self, layer: Layer, values: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Unconditional losses a custom graph computes from the variables, evaluated now."""
        return [{"output": name, "value": value} for name, value in self.executor.weight_losses(layer, values)]

    def updates_for(self, graph: str, ref: str, refs: list[str] | None, *, everything: bool = False) -> list[PendingUpdate]:
        _, layer = self.layer(graph, ref)
        if everything:
            return layer.visible_updates()
        return [] if refs is None else layer.visible_updates(refs)

    @retried
    def run_updates(self, graph: str, ref: str | None, refs: list[str] | None,
                    if_match: int | None = None) -> list[str]:
        """Apply the visible pending updates (of ``refs``, or all) in TF's order; consume them."""
        g = self.graph(graph)
        changed: dict[str, np.ndarray] = {}
        with g.lock:  # the graph-wide run takes the layers present under the lock (reentrant)
            layers = [g.resolve(ref)] if ref is not None else list(g.layers.values())
            self._run_updates(g, layers, refs, changed, if_match if ref is not None else None)
        return list(changed)

    def _run_updates(self, g: Graph, layers: list[Layer], refs: list[str] | None, changed: dict[str, np.ndarray],
                     if_match: int | None) -> None:
        with self._mutation(g, *layers):
            if if_match is not None:
                check_version(g, layers[0], if_match)
            for layer in layers:
                chosen = layer.visible_updates(refs)
                for update in chosen:
                    current = changed.get(update.variable, g.values[update.variable])
                    changed[update.variable] = update.new_value(current)
                layer.updates = type(layer.updates)(u for u in layer.updates if not any(u is c for c in chosen))
            g.set_values(changed)
            self._commit(g, variables=list(changed), layers=[layer.id for layer in layers])
