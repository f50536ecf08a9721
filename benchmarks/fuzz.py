"""Fuzzing at length: the suite's hypothesis properties and schemathesis run, with more examples.

    python -m benchmarks.fuzz [--examples 200] [--schema-examples 100]

Starts its own server, runs each property of tests/test_fuzz.py ``--examples`` times and
schemathesis on every operation of /openapi.json (valid and invalid requests)
``--schema-examples`` times per mode, then reads the server's own request counters from
/metrics: every request it answered, and how many of them were 5xx.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from pathlib import Path

import httpx
import schemathesis
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.generation import GenerationMode

from tests.server import ServerProcess

__all__ = ["main"]


def _answered(url: str) -> tuple[int, int]:
    """(requests answered, of which 5xx), from the server's own counters."""
    total = errors = 0
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == "layerserve_requests_total":
                total += int(sample.value)
                errors += int(sample.value) if sample.labels["status"].startswith("5") else 0
    return total, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--schema-examples", type=int, default=100)
    args = parser.parse_args()
    os.environ["LAYERSERVE_FUZZ_EXAMPLES"] = str(args.examples)  # read when tests.test_fuzz is imported
    fuzz = importlib.import_module("tests.test_fuzz")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "state").start()
        try:
            target = fuzz.Target(server)
            for prop in fuzz.PROPERTIES:
                prop(target)
            api = schemathesis.openapi.from_url(server.url + "/openapi.json")
            sent: list[int] = []
            for operation in (result.ok() for result in api.get_all_operations()):
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if operation.body else 1]:
                    fuzz.fuzz_operation(operation, mode, sent, args.schema_examples)
            total, errors = _answered(server.url)
        finally:
            server.stop()
    print(f"schemathesis requests: {len(sent)}; server answered {total} requests in all "
          f"(properties, state checks and schemathesis), 5xx: {errors}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
