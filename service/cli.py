"""``layerserve serve``: run the server. Every flag is also ``LAYERSERVE_<NAME>``."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from layerserve.server.version import installed_version

__all__ = ["DRAIN_S", "main"]

DRAIN_S = 30  # on SIGTERM, the longest the requests in flight get to finish (deployments wait longer)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layerserve", description="Host TensorFlow layers on ONNX Runtime.")
    parser.add_argument("--version", action="version", version=f"layerserve {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server",
                           description="Run the HTTP server. Each flag can also be set as LAYERSERVE_<FLAG> "
                                       "(upper case, dashes as underscores); flags win. Every value is checked "
                                       "at start: a bad one stops the server with exit code 2.")
    # Values stay strings here: the settings model validates flags and variables alike.
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", help="port to bind, 1-65535 (default 8000)")
    serve.add_argument("--state-dir", help="directory of the embedded state store (default ./layerserve-state)")
    serve.add_argument("--store", help="state store URL, e.g. redis://host:6379/0 (default: the state directory)")
    serve.add_argument("--fsync", metavar="{always,everysec}",
                       help="state directory: fsync each commit before its answer (always, the default), or write "
                            "it to the OS before its answer and fsync once a second (everysec: survives the "
                            "server's crash, kill -9 included; a power cut may lose the last second)")
    serve.add_argument("--write-behind-s",
                       help="state directory: answer commits that change values only (training steps, "
                            "set_weights) before writing them, and write each graph's latest values every this "
                            "many seconds; a crash, kill -9 included, may lose that much acknowledged training, "
                            "never part of a step (default 0: off, every commit is written before its answer)")
    serve.add_argument("--keep-versions", help="shared store: versions kept of each layer definition and variable "
                                               "(default 4)")
    serve.add_argument("--keep-history",
                       help="versions kept in each graph's history; checkpointed versions always (default 1000)")
    serve.add_argument("--history-max-age-s",
                       help="drop history versions older than this, checkpointed ones never (default 30 days; 0: "
                            "no age limit)")
    serve.add_argument("--write-retries",
                       help="shared store: attempts of a write that loses the race to another replica (default 16)")
    serve.add_argument("--providers", help="ordered execution providers, e.g. cuda,cpu (default cpu)")
    serve.add_argument("--require-providers", action="store_true", default=None,
                       help="fail at start-up when a requested provider is unavailable")
    serve.add_argument("--provider-options", metavar="JSON",
                       help='per-provider options, e.g. \'{"cuda": {"device_id": 0, "memory_limit": "4GiB", '
                            '"arena_strategy": "same_as_requested", "cudnn_algo_search": "heuristic"}}\'')
    serve.add_argument("--io-binding", metavar="{auto,on,off}",
                       help="keep variables on the device and run through IOBinding (default auto: when CUDA leads)")
    serve.add_argument("--token", action="append",
                       help="bearer token required on every route but health; repeat for several; "
                            "TOKEN:graph1|graph2 limits a token to those graphs (prefer LAYERSERVE_TOKEN: "
                            "command lines are visible to other users)")
    serve.add_argument("--log-level", metavar="{critical,error,warning,info,debug}", help="log level (default info)")
    serve.add_argument("--max-body-bytes", help="largest request body accepted (default 64 MiB)")
    serve.add_argument("--max-json-bytes", help="largest JSON body, or OIP JSON part (413; default 16 MiB): send "
                                                "large tensors as binary frames")
    serve.add_argument("--max-frame-header-bytes", help="largest JSON header of a binary frame (413; default 64 KiB)")
    serve.add_argument("--json-decode-threads", help="large JSON bodies decoded at once; others wait (default 2)")
    serve.add_argument("--max-model-bytes", help="largest custom-layer ONNX model (default 16 MiB)")
    serve.add_argument("--max-model-nodes", help="most nodes of a custom-layer model once its functions are "
                                                 "inlined (422; default 10000)")
    serve.add_argument("--max-model-edges", help="most node inputs and outputs of a custom-layer model once its "
                                                 "functions are inlined (422; default 100000)")
    serve.add_argument("--max-model-depth", help="deepest nesting of functions and subgraphs in a custom-layer "
                                                 "model or a program (422; default 16)")
    serve.add_argument("--max-program-nodes", help="most nodes of a TF1 program once its functions are inlined "
                                                   "(422; default 100000)")
    serve.add_argument("--max-program-edges", help="most node inputs and outputs of a TF1 program once its "
                                                   "functions are inlined (422; default 200000)")
    serve.add_argument("--max-model-inference-s",
                       help="most CPU seconds ONNX shape inference may take on a custom-layer model or a "
                            "program; the server repeats it in-process for each input signature (422; default 0.5 s)")
    serve.add_argument("--model-validation-timeout-s",
                       help="longest validation of a custom-layer model or a program (ONNX checks, shape "
                            "inference, first ONNX Runtime load), in a child process killed at the deadline "
                            "(422; default 10 s)")
    serve.add_argument("--max-tensor-elements", help="largest tensor accepted, in elements (default 16Mi)")
    serve.add_argument("--max-apply-cost", help="most work one apply of a built-in layer may take, in "
                                                "multiply-accumulates or window reads (422; default 1e11)")
    serve.add_argument("--max-layers-per-graph", help="most layers one graph may hold (default 10000)")
    serve.add_argument("--max-records-per-layer",
                       help="conditional losses and pending updates kept per layer, oldest evicted (default 1000)")
    serve.add_argument("--max-sessions", help="ONNX Runtime sessions kept in the LRU cache (default 256)")
    serve.add_argument("--max-session-bytes", help="bytes of models behind the cached sessions; least recently "
                                                   "used evicted (default 1 GiB)")
    serve.add_argument("--cpu-arena", metavar="{on,off}", help="ONNX Runtime's CPU memory arena (default off: an "
                       "arena keeps every session's peak, so cached sessions would pin the largest requests' memory)")
    serve.add_argument("--request-timeout-s", help="longest a request may take, body upload included (default 60 s)")
    serve.add_argument("--header-timeout-s", help="a request's head must arrive within this; else 408 and the "
                                                  "connection closes (default 10 s)")
    serve.add_argument("--max-header-bytes", help="largest request head, request line and headers (431; "
                                                  "default 64 KiB)")
    serve.add_argument("--max-connections", help="open HTTP connections per process; past it new ones get 503 "
                                                 "(default 1000)")
    serve.add_argument("--write-timeout-s", help="a client that leaves its response unread this long is "
                                                 "disconnected (default 30 s)")
    serve.add_argument("--max-batch-size", help="dynamic batching: largest batch (default 64)")
    serve.add_argument("--max-queue-delay-ms", help="dynamic batching: longest wait (default 2 ms)")
    serve.add_argument("--docs", metavar="{on,off}", help="serve the interactive API page /docs (default off: it "
                       "loads its scripts from a CDN; /openapi.json is always served)")
    serve.add_argument("--batching", metavar="{on,off}", help="dynamic batching of concurrent inference "
                       "applies (default on; layers may override it)")
    return parser


def _available(module: str, fallback: str) -> str:
    import importlib.util

    return module if importlib.util.find_spec(module) is not None else fallback


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import uvicorn

        from layerserve.server.api.connections import ConnectionLimits, guarded_protocol, raise_descriptor_limit
        from layerserve.server.app import create_app
        from layerserve.server.config import Settings
        from layerserve.server.runtime.providers import ProviderError
    except ImportError as exc:  # the client-only install has no server dependencies
        print(f"layerserve: the server needs the 'server' extra: pip install 'layerserve[server]' ({exc})",
              file=sys.stderr)
        return 2
    from layerserve.server.logs import configure_logging

    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = Settings.from_env(**overrides)
        configure_logging(settings.log_level)
        app = create_app(settings)
    except (ProviderError, ValueError) as exc:  # configuration errors (SettingsError too): one line, exit 2
        print(f"layerserve: {exc}", file=sys.stderr)
        return 2
    _exit_quietly_after_shutdown()
    limits = ConnectionLimits(settings.header_timeout_s, settings.max_header_bytes, settings.max_connections,
                              settings.write_timeout_s)
    raise_descriptor_limit(settings.max_connections)
    # uvloop where installed (uvicorn[standard]): the plain asyncio loop adds ~44 ms per
    # request on small responses (Nagle). httptools with our connection limits (see
    # api/connections.py). Our middleware writes the access log (with the request id);
    # uvicorn's would duplicate it.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level, log_config=None,
                access_log=False, loop=_available("uvloop", "asyncio"), http=guarded_protocol(limits),
                timeout_graceful_shutdown=DRAIN_S)
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
