"""The application service: graph cache, transactions, layer lifecycle, apply, records, programs,
checkpoints and the version history."""

from __future__ import annotations

from layerserve.server.plane.apply import ApplyResult
from layerserve.server.plane.dataplane import DataPlane

__all__ = ["ApplyResult", "DataPlane"]
