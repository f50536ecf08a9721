"""deploy/k8s: every manifest passes Kubernetes' own schema (strict), and the pieces fit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from layerserve.server.cli import _parser
from layerserve.server.config import Settings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _documents() -> list[dict[str, Any]]:
    docs = []
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"want one {kind} {name}"
    return found[0]


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_passes_the_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_service_selects_a_workload_on_a_named_port() -> None:
    workloads = [d for d in _documents() if d["kind"] in ("Deployment", "StatefulSet")]
    for service in (d for d in _documents() if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        chosen = [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(chosen) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in chosen[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    for workload in workloads:
        assert workload["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items()


def test_replicas_reach_the_redis_service_with_settings_the_server_knows() -> None:
    container = _one("Deployment", "layerserve")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    settings = Settings.from_env(env)  # every variable is a real setting, parsed as the server does
    redis = _one("Service", "layerserve-redis")
    assert settings.store == f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    assert settings.host == "0.0.0.0" and container["ports"][0]["containerPort"] == settings.port
    assert all(f"LAYERSERVE_{f.upper()}" in env for f in ("store", "host", "port"))
    assert not [k for k in env if k.removeprefix("LAYERSERVE_").lower() not in Settings.model_fields]
    assert _parser().parse_args(container["args"]).command == "serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_redis_persists_every_acknowledged_write() -> None:
    config = _one("ConfigMap", "layerserve-redis")["data"]["redis.conf"].split("\n")
    assert "appendonly yes" in config and "appendfsync always" in config
    mounts = _one("StatefulSet", "layerserve-redis")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts and "dir /data" in config
