"""Kubernetes' Pod Security Standards, "restricted" profile (which includes "baseline"), checked
on a pod spec: the rules the admission controller enforces, as its documentation lists them."""

from __future__ import annotations

from typing import Any

__all__ = ["restricted_violations"]

_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                 "secret"}
_SECCOMP = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


def _baseline(spec: dict[str, Any]) -> list[str]:
    out = [f"host namespace {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            out.append(f"volume {volume['name']}: hostPath")
    for c in _containers(spec):
        ctx = c.get("securityContext", {})
        if ctx.get("privileged"):
            out.append(f"{c['name']}: privileged")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            out.append(f"{c['name']}: hostPort")
    return out


def _container_restricted(c: dict[str, Any], pod: dict[str, Any]) -> list[str]:
    ctx, name, out = c.get("securityContext", {}), c["name"], []
    if ctx.get("allowPrivilegeEscalation") is not False:
        out.append(f"{name}: allowPrivilegeEscalation must be false")
    caps = ctx.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        out.append(f"{name}: capabilities must drop ALL")
    if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
        out.append(f"{name}: only NET_BIND_SERVICE may be added")
    if ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
        out.append(f"{name}: runAsNonRoot must be true")
    if ctx.get("runAsUser", pod.get("runAsUser")) == 0:
        out.append(f"{name}: runAsUser must not be 0")
    seccomp = ctx.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
    if seccomp not in _SECCOMP:
        out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    return out


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the "restricted" level; empty when it passes."""
    out = _baseline(spec)
    pod = spec.get("securityContext", {})
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= _VOLUME_TYPES:
            out.append(f"volume {volume['name']}: {sorted(kinds - _VOLUME_TYPES)} not allowed")
    if pod.get("runAsUser") == 0:
        out.append("pod: runAsUser must not be 0")
    for c in _containers(spec):
        out += _container_restricted(c, pod)
    return out
