"""``layerserve serve``: run the server. Every flag is also ``LAYERSERVE_<NAME>``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerserve", description="Host TensorFlow layers on ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server",
                           description="Run the HTTP server. Each flag can also be set as LAYERSERVE_<FLAG> "
                                       "(upper case, dashes as underscores); flags win.")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--state-dir", help="directory of the embedded state store (default ./layerserve-state)")
    serve.add_argument("--store", help="state store URL, e.g. redis://host:6379/0 (default: the state directory)")
    serve.add_argument("--keep-versions", type=int,
                       help="shared store: versions kept of each layer definition and variable (default 4)")
    serve.add_argument("--keep-history", type=int,
                       help="versions kept in each graph's history; checkpointed versions always (default 1000)")
    serve.add_argument("--history-max-age-s", type=float,
                       help="drop history versions older than this, checkpointed ones never (default 30 days; 0: "
                            "no age limit)")
    serve.add_argument("--write-retries", type=int,
                       help="shared store: attempts of a write that loses the race to another replica (default 16)")
    serve.add_argument("--providers", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                       help="ordered execution providers, e.g. cuda,cpu (default cpu)")
    serve.add_argument("--require-providers", action="store_true", default=None,
                       help="fail at start-up when a requested provider is unavailable")
    serve.add_argument("--provider-options", type=_json_object, metavar="JSON",
                       help='per-provider options, e.g. \'{"cuda": {"device_id": 0, "memory_limit": "4GiB", '
                            '"arena_strategy": "same_as_requested", "cudnn_algo_search": "heuristic"}}\'')
    serve.add_argument("--io-binding", choices=["auto", "on", "off"],
                       help="keep variables on the device and run through IOBinding (default auto: when CUDA leads)")
    serve.add_argument("--token", action="append",
                       help="bearer token required on every route but health; repeat for several; "
                            "TOKEN:graph1|graph2 limits a token to those graphs (prefer LAYERSERVE_TOKEN: "
                            "command lines are visible to other users)")
    serve.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"],
                       help="log level (default info)")
    serve.add_argument("--max-body-bytes", type=int, help="largest request body accepted (default 64 MiB)")
    serve.add_argument("--max-model-bytes", type=int, help="largest custom-layer ONNX model (default 16 MiB)")
    serve.add_argument("--max-tensor-elements", type=int, help="largest tensor accepted, in elements (default 16Mi)")
    serve.add_argument("--max-layers-per-graph", type=int, help="most layers one graph may hold (default 10000)")
    serve.add_argument("--max-records-per-layer", type=int,
                       help="conditional losses and pending updates kept per layer, oldest evicted (default 1000)")
    serve.add_argument("--max-sessions", type=int, help="ONNX Runtime sessions kept in the LRU cache (default 256)")
    serve.add_argument("--request-timeout-s", type=float,
                       help="longest a request may take, body upload included (default 60 s)")
    serve.add_argument("--max-batch-size", type=int, help="dynamic batching: largest batch (default 64)")
    serve.add_argument("--max-queue-delay-ms", type=float, help="dynamic batching: longest wait (default 2 ms)")
    serve.add_argument("--batching", choices=["on", "off"], help="dynamic batching of concurrent inference "
                       "applies (default on; layers may override it)")
    return parser


def _available(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object keyed by provider, e.g. {\"cuda\": {\"device_id\": 0}}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import uvicorn

        from layerserve.server.app import create_app
        from layerserve.server.config import Settings
        from layerserve.server.runtime.providers import ProviderError
    except ImportError as exc:  # the client-only install has no server dependencies
        print(f"layerserve: the server needs the 'server' extra: pip install 'layerserve[server]' ({exc})",
              file=sys.stderr)
        return 2
    from layerserve.server.logs import configure_logging

    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command"}
    if overrides.get("batching") is not None:
        overrides["batching"] = overrides["batching"] == "on"
    try:
        settings = Settings.from_env(**overrides)
        configure_logging(settings.log_level)
        app = create_app(settings)
    except (ProviderError, ValueError) as exc:  # configuration errors: one clear line, not a traceback
        print(f"layerserve: {exc}", file=sys.stderr)
        return 2
    _exit_quietly_after_shutdown()
    # uvloop + httptools where installed (uvicorn[standard]): the plain asyncio loop adds
    # ~44 ms per request on small responses (Nagle), and httptools parses faster. Our
    # middleware writes the access log (with the request id); uvicorn's would duplicate it.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, log_config=None,
                access_log=False, loop=_available("uvloop", "asyncio"), http=_available("httptools", "h11"),
                timeout_graceful_shutdown=30)
    return 0


def _exit_quietly_after_shutdown() -> None:
    """Uvicorn finishes the requests in flight on SIGTERM/SIGINT, then re-raises the signal
    with the handler that was installed before it: make that a no-op, so a graceful stop
    exits 0 instead of dying of the signal."""
    def ignore(signum: int, frame: FrameType | None) -> None:
        return None

    signal.signal(signal.SIGTERM, ignore)


if __name__ == "__main__":
    raise SystemExit(main())
