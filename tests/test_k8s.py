"""deploy/k8s: every manifest passes Kubernetes' own schema (strict), and the pieces fit together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from layerserve.server.cli import DRAIN_S, _parser
from layerserve.server.config import Settings
from tests.pod_security import restricted_violations

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


def _env(container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The container's environment as Kubernetes makes it: secrets resolved, ``$(VAR)`` expanded."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
        else:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
    return env


def _secrets() -> dict[str, str]:
    return {f"{d['metadata']['name']}/{k}": v for d in _documents() if d["kind"] == "Secret"
            for k, v in d["stringData"].items()}


def test_replicas_reach_the_redis_service_with_settings_the_server_knows() -> None:
    container = _one("Deployment", "layerserve")["spec"]["template"]["spec"]["containers"][0]
    env = _env(container, _secrets())
    settings = Settings.from_env(env)  # every variable is a real setting, parsed as the server does
    redis = _one("Service", "layerserve-redis")
    password = _secrets()["layerserve-secrets/redis-password"]
    assert settings.store == f"redis://:{password}@{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}/0"
    assert settings.host == "0.0.0.0" and container["ports"][0]["containerPort"] == settings.port
    assert all(f"LAYERSERVE_{f.upper()}" in env for f in ("store", "host", "port", "token"))
    assert not [k for k in env if k.startswith("LAYERSERVE_") and k.removeprefix("LAYERSERVE_").lower()
                not in Settings.model_fields]
    assert _parser().parse_args(container["args"]).command == "serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_secrets_come_from_a_secret() -> None:
    """The token and the Redis password are never literal in a workload; Redis requires the password."""
    secrets = _secrets()
    replica = _one("Deployment", "layerserve")["spec"]["template"]["spec"]["containers"][0]
    literal = {e["name"] for e in replica["env"] if "value" in e}
    assert "LAYERSERVE_TOKEN" not in literal and settings_token(replica) == secrets["layerserve-secrets/token"]
    redis = _one("StatefulSet", "layerserve-redis")["spec"]["template"]["spec"]["containers"][0]
    redis_env = _env(redis, secrets)
    assert redis["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert redis_env["REDIS_PASSWORD"] == redis_env["REDISCLI_AUTH"] == secrets["layerserve-secrets/redis-password"]
    config = _one("ConfigMap", "layerserve-redis")["data"]["redis.conf"].split("\n")
    assert "protected-mode yes" in config and not [line for line in config if "requirepass" in line]


def settings_token(container: dict[str, Any]) -> str:
    return ",".join(Settings.from_env(_env(container, _secrets())).token)


@pytest.mark.parametrize("kind,name", [("Deployment", "layerserve"), ("StatefulSet", "layerserve-redis")])
def test_pods_pass_the_restricted_pod_security_standard(kind: str, name: str) -> None:
    spec = _one(kind, name)["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in spec["containers"])
    assert spec["automountServiceAccountToken"] is False


def test_pod_security_check_catches_what_it_should() -> None:
    spec = _one("Deployment", "layerserve")["spec"]["template"]["spec"]
    loose = json.loads(json.dumps(spec))
    del loose["containers"][0]["securityContext"]["capabilities"]
    loose["securityContext"].pop("seccompProfile")
    loose["containers"][0]["securityContext"].pop("seccompProfile")
    loose["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = restricted_violations(loose)
    assert any("drop ALL" in v for v in found) and any("seccompProfile" in v for v in found)
    assert any("hostPath" in v for v in found)


def test_disruptions_and_shutdown_leave_time_to_drain() -> None:
    budget = _one("PodDisruptionBudget", "layerserve")
    deployment = _one("Deployment", "layerserve")
    assert budget["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    assert budget["spec"]["maxUnavailable"] == 1 and deployment["spec"]["replicas"] > 1
    pod = deployment["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and int(command[1]) > 0
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + DRAIN_S


def test_redis_persists_every_acknowledged_write() -> None:
    config = _one("ConfigMap", "layerserve-redis")["data"]["redis.conf"].split("\n")
    assert "appendonly yes" in config and "appendfsync always" in config
    mounts = _one("StatefulSet", "layerserve-redis")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/data"} in mounts and "dir /data" in config
