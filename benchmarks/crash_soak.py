"""Crash soak: the SIGKILL loop of tests/test_crash.py, many more times.

    python -m benchmarks.crash_soak [--kills 200] [--seed 1]

A real server takes a stream of ``set_weights`` with known versions and is SIGKILLed at a
random moment, then restarted on the same state directory, ``--kills`` times; after each
restart every variable must hold one complete version, acknowledged or in flight.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.test_crash import run_kill_loop

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_kill_loop(Path(tmp) / "state", args.kills, args.seed)
    print(f"kills survived: {stats['kills_survived']}/{args.kills}; versions acknowledged: "
          f"{stats['versions_acknowledged']}; restarts that found the in-flight version: "
          f"{stats['in_flight_found']}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
