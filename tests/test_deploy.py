"""The container deployment: pinned dependencies the image is built from, a health check that
means ready, and stop grace periods longer than the server's drain."""

from __future__ import annotations

import fcntl
import os
import re
import time
import tomllib
from pathlib import Path

import httpx
import yaml
from packaging.requirements import Requirement

from layerserve.server.cli import DRAIN_S
from layerserve.server.healthcheck import check
from tests.server import ROOT, ServerProcess

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _pins() -> dict[str, str]:
    lines = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins = {}
    for line in (ln for ln in lines if ln and not ln.startswith("#")):
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[A-Za-z0-9.+!-]+", version), f"not an exact pin: {line}"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_image_installs_the_pinned_versions() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in dockerfile and re.search(r"COPY [^\n]*constraints\.txt", dockerfile)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!constraints.txt" in ignored and "!LICENSE" in ignored  # in the build context
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = _pins()
    wanted = [Requirement(r) for r in extras["server-base"] + extras["server"] if not r.startswith("layerserve")]
    for req in wanted:
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        assert key in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[key]), f"{req.name}=={pins[key]} does not satisfy {req}"


def test_compose_stops_after_the_drain() -> None:
    for name, service in COMPOSE["services"].items():
        if "layerserve" not in str(service.get("image", "")) or "redis" in name or name == "balancer":
            continue
        grace = service["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > DRAIN_S, name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "layerserve.server.healthcheck"], name


def test_the_health_check_means_ready(tmp_path: Path) -> None:
    """Alive but not ready (the state directory still locked by a previous server): unhealthy."""
    state = tmp_path / "state"
    state.mkdir()
    fd = os.open(state / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    server = ServerProcess(state).launch()
    try:
        while True:  # bounded by the test run's timeout
            try:
                if httpx.get(server.url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        assert not check(server.port)
        os.close(fd)
        while not check(server.port):  # ready once the lock is free
            time.sleep(0.05)
        assert httpx.get(server.url + "/readyz").status_code == 200
    finally:
        server.stop()
