"""Every metric the alert rules, recording rules and dashboards name is one the platform exports.

The exported names come from the real registry: every module of the chassis and of every service
is imported (that is where their metrics are defined), then `prometheus_client.REGISTRY` is
read. A query may also name a recording rule of deploy/prometheus/rules/, or what Prometheus
makes itself (`up`, `ALERTS`). Label matchers are checked too (a typo there silently matches
nothing), and so are a few label values the SLOs and alerts depend on: the `le` bucket bounds
as prometheus_client prints them, the gateway's route labels, the checkout saga's name.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.utils import floatToGoString

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PACKAGES = ("chassis", "gateway", "identity", "catalog", "inventory", "orders", "payments", "psp",
            "notifications")  # fmt: skip

# Labels a target gets when scraped (file_sd under `mercato up`, relabelling on Kubernetes).
TARGET_LABELS = frozenset({"job", "instance", "service", "instance_id", "namespace", "pod"})
# Series Prometheus itself makes.
PROMETHEUS_SERIES = {
    "up": frozenset(),
    "ALERTS": frozenset({"alertname", "alertstate", "severity"}),
}
PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan", "Inf", "NaN"}
)  # fmt: skip


# -- what the platform exports ---------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    name: str  # as scraped: with _total, _bucket, ...
    labels: frozenset[str]
    family: str
    kind: str


def _import_everything() -> None:
    for root in PACKAGES:
        package = importlib.import_module(root)
        for module in pkgutil.walk_packages(package.__path__, f"{root}."):
            if module.name.rsplit(".", 1)[-1] != "__main__":
                importlib.import_module(module.name)


def _suffixes(kind: str) -> tuple[str, ...]:
    return {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("", "_count", "_sum"),
        "info": ("_info",),
    }.get(kind, ("",))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    _import_everything()
    from chassis import Database
    from chassis.resilience import RetryBudget

    # The collectors read at scrape time report labels only for live objects: make some.
    database = Database(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/x.db")
    budget = RetryBudget("someone")
    collectors = REGISTRY._names_to_collectors  # the only way to the declared label names
    found: dict[str, Exported] = {}
    for family in REGISTRY.collect():
        declared = getattr(collectors.get(family.name), "_labelnames", None)
        if declared is None:
            declared = getattr(collectors.get(family.name + "_total"), "_labelnames", ())
        labels = frozenset(declared) | {k for s in family.samples for k in s.labels}
        for suffix in _suffixes(family.type):
            extra = {"le"} if suffix == "_bucket" else set()
            found[family.name + suffix] = Exported(
                family.name + suffix, labels | extra, family.name, family.type
            )
    del database, budget
    return found


@functools.cache
def recording_rules() -> frozenset[str]:
    return frozenset(
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    )


# -- what the rules and dashboards ask for ---------------------------------------------------


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def selectors(expr: str) -> Iterator[Selector]:
    """Every vector selector of a PromQL expression (Grafana's $variables allowed)."""
    expr = re.sub(r"\$\{?(\w+)\}?", r"\1", expr)  # $service, ${__rate_interval} → words
    with_matchers: dict[int, Selector] = {}
    for match in _SELECTOR.finditer(expr):
        body = match.group(2)
        matchers = tuple((m[1], m[2], m[3]) for m in _MATCHER.finditer(body))
        consumed = "".join(m.group(0) for m in _MATCHER.finditer(body)).strip()
        assert consumed == body.strip(), f"cannot read the matchers {body!r} of {expr!r}"
        named = {label: value for label, op, value in matchers if op == "="}
        metric = match.group(1) or named.get("__name__", "")
        if match.group(1) in PROMQL_WORDS:  # `... or {job="x"}`: a bare selector
            metric = named.get("__name__", "")
        with_matchers[match.start()] = Selector(metric, matchers)
    yield from with_matchers.values()
    bare = _STRING.sub('""', expr)
    bare = re.sub(r"\{[^{}]*\}", " ", bare)
    bare = _RANGE.sub(" ", bare)
    bare = _GROUPING.sub(" ", bare)
    for match in _IDENTIFIER.finditer(bare):
        name, call = match.group(1), match.group(2)
        if call or name in PROMQL_WORDS:
            continue
        if not any(s.metric == name for s in with_matchers.values()):
            yield Selector(name, ())


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']}", target["expr"]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                inner = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
                assert inner, f"{path.name}: variable {variable['name']}: {query}"
                yield f"{path.name}: ${variable['name']}", inner.group(1)


EXPRESSIONS = [*rule_expressions(), *dashboard_expressions()]


def test_the_registry_holds_the_platforms_metrics(exported: dict[str, Exported]) -> None:
    # Sanity of the method: if importing found nothing, every check below would be vacuous.
    for name in ("mercato_http_requests_total", "mercato_reservation_expiries_total",
                 "mercato_payments_psp_operations_total", "mercato_sagas_active",
                 "mercato_consumer_lag_messages", "mercato_db_pool_connections_in_use",
                 "process_cpu_seconds_total", "process_resident_memory_bytes"):  # fmt: skip
        assert name in exported, name
    assert len(EXPRESSIONS) > 100


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_queries_name_only_metrics_that_exist_with_labels_they_have(
    exported: dict[str, Exported], where: str, expr: str
) -> None:
    recorded = recording_rules()
    for selector in selectors(expr):
        name = selector.metric
        assert name, f"{where}: a selector without a metric name in {expr!r}"
        if name in recorded:
            continue  # its labels are whatever its `by` keeps: promtool's tests cover them
        if name in PROMETHEUS_SERIES:
            allowed = PROMETHEUS_SERIES[name] | TARGET_LABELS
        else:
            assert name in exported, f"{where}: {name} is not exported by any service"
            allowed = exported[name].labels | TARGET_LABELS
        for label, _, _ in selector.matchers:
            assert label in allowed, f"{where}: {name} has no label {label!r}"


def test_label_values_the_rules_depend_on_are_ones_the_code_produces(
    exported: dict[str, Exported],
) -> None:
    from chassis.resilience import CircuitState
    from gateway.routing import SERVICE_ROUTES, route_label
    from orders.service_layer.checkout import CHECKOUT

    gateway_routes = {route_label(r, r.prefix) for r in SERVICE_ROUTES} | {
        route_label(r, f"{r.prefix}/x") for r in SERVICE_ROUTES
    }
    checked = 0
    for where, expr in EXPRESSIONS:
        for selector in selectors(expr):
            values = {label: value for label, op, value in selector.matchers if op == "="}
            if "le" in values:
                family = exported[selector.metric].family
                bounds = REGISTRY._names_to_collectors[family]._upper_bounds
                assert values["le"] in {floatToGoString(b) for b in bounds}, where
                checked += 1
            if values.get("service") == "gateway" and "route" in values:
                assert values["route"] in gateway_routes, where
                checked += 1
            if "saga" in values:
                assert values["saga"] == CHECKOUT, where
                checked += 1
            if "to_state" in values:
                assert values["to_state"] in {state.value for state in CircuitState}, where
                checked += 1
    assert checked > 10


def test_metrics_follow_the_naming_conventions(exported: dict[str, Exported]) -> None:
    ours = {e.family: e for e in exported.values() if e.family.startswith("mercato_")}
    assert len(ours) > 30
    for family, metric in ours.items():
        assert re.fullmatch(r"mercato_[a-z][a-z0-9_]*", family), family
        # The scrape adds these: a metric of the same label would be renamed exported_<label>.
        clash = metric.labels & TARGET_LABELS
        assert not clash, f"{family} uses the target labels {clash}"
        # Unbounded values (ids, emails) do not belong in labels.
        ids = {
            label for label in metric.labels if label == "id" or label.endswith(("_id", "email"))
        }
        assert not ids, f"{family} has id labels {ids}"
        if metric.kind != "counter":
            assert not family.endswith("_total"), family
        if any(word in family for word in ("duration", "_age", "latency")):
            assert family.endswith("_seconds"), f"{family}: a time is in seconds, said so"
        if "memory" in family or family.endswith("_size"):
            assert family.endswith("_bytes"), family
