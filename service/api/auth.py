"""Bearer tokens: parsing ``--token`` values and checking a request's credentials.

A token is ``TOKEN`` (every graph) or ``TOKEN:graph1|graph2`` (only those graphs). The
comparison runs in constant time over every configured token, so neither the match nor its
position leaks through timing.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

__all__ = ["EXEMPT_PATHS", "GRAPHLESS_PATHS", "TokenRule", "authorize", "graph_of_path", "is_exempt", "parse_tokens"]

# Health stays open so that orchestrators can probe without credentials; so does the dashboard's
# page (it holds no state: it asks for the token, then sends it with every call).
EXEMPT_PATHS = ("/healthz", "/readyz", "/ui")
EXEMPT_PREFIXES = ("/v2/health/", "/ui/")
# Routes that reveal nothing about any graph: open to tokens limited to some graphs.
GRAPHLESS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/v2")
_GRAPH_LIST = re.compile(r"[A-Za-z0-9_-]{1,64}(\|[A-Za-z0-9_-]{1,64})*")


@dataclass(frozen=True)
class TokenRule:
    secret: bytes
    graphs: frozenset[str] | None  # None: every graph

    def __repr__(self) -> str:  # never print the secret
        return f"TokenRule(graphs={sorted(self.graphs) if self.graphs is not None else 'all'})"


def parse_tokens(values: list[str]) -> list[TokenRule]:
    """``TOKEN`` or ``TOKEN:g1|g2``; graph names hold no ``:``, so the last one splits."""
    rules = []
    for value in values:
        secret, sep, graphs = value.rpartition(":")
        if sep and secret and _GRAPH_LIST.fullmatch(graphs):
            rules.append(TokenRule(secret.encode(), frozenset(graphs.split("|"))))
        elif value:
            rules.append(TokenRule(value.encode(), None))
    return rules


def is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def graph_of_path(path: str) -> str | None:
    """The graph a request addresses: ``/v1/graphs/{graph}/...`` or ``/v2/models/{graph}.{layer}``.
    ``path`` is the decoded path, split as the router splits it."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "v1" and parts[2] == "graphs":
        return parts[3]
    if len(parts) > 3 and parts[1] == "v2" and parts[2] == "models":
        model = parts[3]
        return model.split(".", 1)[0] if "." in model else "default"
    return None


def _bearer(header: str | None) -> bytes | None:
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode("utf-8", "surrogateescape")


def _match(rules: list[TokenRule], presented: bytes) -> TokenRule | None:
    found = None
    for rule in rules:  # no early exit: the time taken does not depend on which one matched
        if hmac.compare_digest(rule.secret, presented):
            found = rule
    return found


def authorize(rules: list[TokenRule], header: str | None, path: str) -> str | None:
    """None when the request may proceed; else ``"unauthorized"`` or ``"forbidden"``."""
    if not rules or is_exempt(path):
        return None
    presented = _bearer(header)
    rule = _match(rules, presented) if presented is not None else None
    if rule is None:
        return "unauthorized"
    if rule.graphs is None:
        return None
    graph = graph_of_path(path)
    if graph is None:
        return None if path in GRAPHLESS_PATHS else "forbidden"
    return None if graph in rule.graphs else "forbidden"
