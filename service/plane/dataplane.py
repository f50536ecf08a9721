"""Every operation the service offers, independent of any transport.

HTTP routes (native and OIP v2) only decode a request, call one method here and encode the
result. Methods are synchronous and thread-safe: mutations of a graph hold its lock and end
with one store commit; applies read one consistent snapshot of the variable values and only
take the lock to record losses and updates.

The parts: ``graphs`` (the cache, kept current with the store), ``transactions`` (all or
nothing, retried on a lost race), ``lifecycle`` (create, patch, delete, build), ``apply``,
``records`` (losses and pending updates), ``weights``; ``dispatch`` decides where an apply runs.
"""

from __future__ import annotations

from layerserve.server.plane.apply import Applying
from layerserve.server.plane.weights import Weights

__all__ = ["DataPlane"]


class DataPlane(Applying, Weights):
    """The application service: one per process, shared by every route."""
