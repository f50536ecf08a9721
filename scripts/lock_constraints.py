"""Write constraints.txt: the exact versions of everything `pip install '.[server]'` installs.

The Dockerfile (which CI builds and runs through scripts/container-smoke) installs with
`-c constraints.txt`, so an image is built from versions that were tested together. Run it from
an environment where the server is installed (`make .venv/.dev`), after changing dependencies:

    .venv/bin/python scripts/lock_constraints.py
"""

from __future__ import annotations

import pathlib
import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ("# Exact versions of the server's dependencies, for the container image (Dockerfile: pip install -c).\n"
          "# Regenerate with: .venv/bin/python scripts/lock_constraints.py\n")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: set[str]) -> dict[str, str]:
    """``{name: version}`` of ``root[extras]`` and everything it needs, as installed here."""
    pinned: dict[str, str] = {}
    pending = [(root, extras)]
    while pending:
        name, wanted = pending.pop()
        dist = distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            active = [e for e in wanted or {""} if req.marker is None or req.marker.evaluate({"extra": e})]
            if not active:
                continue
            key = _canonical(req.name)
            if key == _canonical(root):
                pending.append((root, set(req.extras)))
                continue
            try:
                version = distribution(req.name).version
            except PackageNotFoundError:
                continue  # for another platform or Python (its marker does not hold here)
            if key not in pinned or req.extras:
                pinned[key] = version
                pending.append((req.name, set(req.extras)))
    return pinned


def main() -> None:
    pins = closure("layerserve", {"server"})
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")
    print(f"constraints.txt: {len(lines)} packages")


if __name__ == "__main__":
    main()
