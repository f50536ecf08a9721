"""A minimal ``/metrics`` (Prometheus text) with the dynamic batcher's batch sizes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.runtime.batching import BatchStats

__all__ = ["batch_metrics_router", "render_batch_stats"]

batch_metrics_router = APIRouter(tags=["operations"])


def render_batch_stats(stats: BatchStats) -> str:
    """Batch sizes as a Prometheus histogram of requests per ONNX Runtime run."""
    snap = stats.snapshot()
    lines = ["# HELP layerserve_batch_size Requests carried by one batched ONNX Runtime run.",
             "# TYPE layerserve_batch_size histogram"]
    cumulative = 0
    bounds = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    for bound in bounds:
        cumulative = sum(count for size, count in snap["sizes"].items() if size <= bound)
        lines.append(f'layerserve_batch_size_bucket{{le="{bound}"}} {cumulative}')
    lines.append(f'layerserve_batch_size_bucket{{le="+Inf"}} {snap["runs"]}')
    lines.append(f"layerserve_batch_size_sum {snap['requests']}")
    lines.append(f"layerserve_batch_size_count {snap['runs']}")
    lines.append("# HELP layerserve_batch_size_max Largest number of requests one batched run carried.")
    lines.append("# TYPE layerserve_batch_size_max gauge")
    lines.append(f"layerserve_batch_size_max {snap['max']}")
    lines.append("# HELP layerserve_batched_rows_total Input rows run through the batcher.")
    lines.append("# TYPE layerserve_batched_rows_total counter")
    lines.append(f"layerserve_batched_rows_total {snap['rows']}")
    return "\n".join(lines) + "\n"


@batch_metrics_router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(render_batch_stats(request.app.state.batch_stats),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
