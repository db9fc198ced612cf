"""RED metrics of the HTTP server, in Prometheus naming (units in names, `_total` counters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["IN_FLIGHT", "REQUESTS", "REQUEST_DURATION", "method_label", "observe_request"]

REQUESTS = Counter(
    "mercato_http_requests_total",
    "HTTP requests served, by route template, method and status code",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "mercato_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template and method",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge("mercato_http_requests_in_flight", "HTTP requests being served now")

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    # A client can send any method name; keep the label set bounded.
    return method if method in _KNOWN_METHODS else "OTHER"


# `labels()` takes a lock and builds a key on every call; the children of the few label
# combinations a service sees are kept here instead (bounded: routes, methods and statuses).
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one served request and its duration."""
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        found = (
            REQUESTS.labels(route, method, str(status)),
            REQUEST_DURATION.labels(route, method),
        )
        _children[key] = found
    found[0].inc()
    found[1].observe(seconds)
