"""Render the Grafana dashboards of deploy/grafana/dashboards/ from this one description.

Written as code so every panel has the same shape (datasource, units, legend), ids and grid
positions are computed, and the queries sit next to each other where a reviewer can read them;
`tests/observability` fails when the committed JSON differs from what this renders, and checks
that every metric a query names is one the platform exports (or a recording rule of
deploy/prometheus/rules/).

    .venv/bin/python scripts/generate_dashboards.py           # rewrite the JSON files
    .venv/bin/python scripts/generate_dashboards.py --check   # exit 1 if one is stale

The dashboards import into a stock Grafana (schemaVersion 39) and pick their Prometheus through
the `DS_PROMETHEUS` datasource variable: with deploy/grafana/provisioning that is the
provisioned datasource (uid `prometheus`), on an import any Prometheus the user chooses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
WIDTH = 24  # Grafana's grid
RATE = "[$__rate_interval]"
SERVICE = 'service="$service",instance=~"$instance"'
SERVICE_LINK = (
    "/d/mercato-service/mercato-service?var-service=${__field.labels.service}&${__url_time_range}"
)


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12
    height: int = 8
    description: str = ""
    stack: bool = False
    thresholds: Sequence[tuple[float, str]] = ()  # (from value, colour) after a green base
    link_to_service: bool = False
    decimals: int | None = None
    mappings: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str
    multi: bool = False
    include_all: bool = False


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Variable] = ()
    tags: Sequence[str] = field(default_factory=lambda: ["mercato"])
    time_from: str = "now-1h"


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def rate(metric: str, selector: str = "", function: str = "rate") -> str:
    matchers = f"{{{selector}}}" if selector else ""
    return f"{function}({metric}{matchers}[$__rate_interval])"


def summed(labels: str, inner: str) -> str:
    return f"sum by ({labels}) ({inner})" if labels else f"sum({inner})"


def quantile(phi: float, labels: str, histogram: str, selector: str = "") -> str:
    buckets = summed(f"{labels}, le" if labels else "le", rate(f"{histogram}_bucket", selector))
    return f"histogram_quantile({phi}, {buckets})"


# -- the dashboards --------------------------------------------------------------------------

BREAKER_STATES = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "open", "color": "red", "index": 1},
            "2": {"text": "half-open", "color": "orange", "index": 2},
            "3": {"text": "forced open", "color": "purple", "index": 3},
        },
    }
]
BREAKER_HELP = "0 closed, 1 open, 2 half-open, 3 forced open."


def overview() -> Dashboard:
    now = [
        Panel(
            "Instances up",
            [q('sum(up{job="mercato"})')],
            kind="stat",
            width=4,
            height=5,
            description="Scraped instances answering /metrics.",
        ),
        Panel(
            "Instances down",
            [q('count(up{job="mercato"} == 0) or vector(0)')],
            kind="stat",
            width=4,
            height=5,
            thresholds=[(1, "red")],
        ),
        Panel(
            "Alerts firing",
            [q('count(ALERTS{alertstate="firing"}) or vector(0)')],
            kind="stat",
            width=4,
            height=5,
            thresholds=[(1, "red")],
        ),
        Panel(
            "Order placement success (1h)",
            [q("1 - slo:order_placement_errors:ratio_rate1h")],
            kind="stat",
            unit="percentunit",
            width=4,
            height=5,
            decimals=2,
            thresholds=[(0, "red"), (0.995, "green")],
            description="SLO: 99.5% of POST /api/v1/orders without a 5xx.",
        ),
        Panel(
            "Placements within 1 s (1h)",
            [q("1 - slo:order_placement_slow:ratio_rate1h")],
            kind="stat",
            unit="percentunit",
            width=4,
            height=5,
            decimals=2,
            thresholds=[(0, "red"), (0.99, "green")],
            description="SLO: 99% of POST /api/v1/orders within 1 s.",
        ),
        Panel(
            "Dead letters waiting",
            [q("max(mercato_dead_letters_stored) or vector(0)")],
            kind="stat",
            width=4,
            height=5,
            thresholds=[(1, "orange")],
            description="`mercato dlq list` shows them.",
        ),
    ]
    traffic = [
        Panel(
            "Requests per second",
            [q("service:mercato_http_requests:rate5m", "{{service}}")],
            unit="reqps",
            width=8,
            link_to_service=True,
            description="Health probes and scrapes left out.",
        ),
        Panel(
            "Server errors (5xx share)",
            [q("service:mercato_http_request_errors:ratio_rate5m", "{{service}}")],
            unit="percentunit",
            width=8,
            link_to_service=True,
            thresholds=[(0.05, "red")],
        ),
        Panel(
            "Latency p99",
            [q("service:mercato_http_request_duration_seconds:p99_5m", "{{service}}")],
            unit="s",
            width=8,
            link_to_service=True,
        ),
        Panel(
            "Instances up by service",
            [q('sum by (service) (up{job="mercato"})', "{{service}}")],
            width=8,
            link_to_service=True,
        ),
    ]
    trouble = [
        Panel(
            "Circuit breakers not closed",
            [
                q(
                    "max by (service, breaker) (mercato_circuit_breaker_state) > 0",
                    "{{service}} → {{breaker}}",
                )
            ],
            width=8,
            mappings=BREAKER_STATES,
            description=BREAKER_HELP,
        ),
        Panel(
            "Outbox backlog",
            [q("service:mercato_outbox_backlog:max", "{{service}}")],
            width=8,
            description="Events recorded, not yet accepted by the broker.",
        ),
        Panel(
            "Consumer lag",
            [q("service_consumer:mercato_consumer_lag_messages:max", "{{consumer}}")],
            width=8,
        ),
    ]
    cost = [
        Panel(
            "CPU by service",
            [q("service:process_cpu_seconds:rate5m", "{{service}}")],
            unit="percentunit",
            width=12,
            stack=True,
            description="Cores in use (1 = one core), summed over replicas.",
        ),
        Panel(
            "Memory (RSS) by service",
            [q("service:process_resident_memory_bytes:sum", "{{service}}")],
            unit="bytes",
            width=12,
            stack=True,
        ),
    ]
    return Dashboard(
        uid="mercato-overview",
        title="Mercato / Platform overview",
        description="Every service at a glance: up, traffic, errors, latency, the checkout "
        "SLOs, what is broken (breakers, outboxes, dead letters) and what it costs.",
        rows=[
            Row("Now", now),
            Row("Traffic (RED)", traffic),
            Row("Trouble", trouble),
            Row("Cost", cost),
        ],
    )


def service() -> Dashboard:
    http = "mercato_http_requests_total"
    duration = "mercato_http_request_duration_seconds"
    routes = [
        Panel(
            "Requests per second by route",
            [q(summed("method, route", rate(http, SERVICE)), "{{method}} {{route}}")],
            unit="reqps",
            width=8,
        ),
        Panel(
            "Server errors by route",
            [
                q(
                    summed("method, route", rate(http, f'{SERVICE},status=~"5.."')),
                    "{{method}} {{route}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
        Panel(
            "Responses by status",
            [q(summed("status", rate(http, SERVICE)), "{{status}}")],
            unit="reqps",
            width=8,
            stack=True,
        ),
        Panel(
            "Latency p99 by route",
            [q(quantile(0.99, "route", duration, SERVICE), "{{route}}")],
            unit="s",
            width=8,
        ),
        Panel(
            "Latency p50 by route",
            [q(quantile(0.5, "route", duration, SERVICE), "{{route}}")],
            unit="s",
            width=8,
        ),
        Panel(
            "Requests in flight",
            [
                q(
                    summed("instance", f"mercato_http_requests_in_flight{{{SERVICE}}}"),
                    "{{instance}}",
                )
            ],
            width=8,
        ),
    ]
    calls = [
        Panel(
            "Circuit breaker state",
            [q(f"max by (breaker) (mercato_circuit_breaker_state{{{SERVICE}}})", "{{breaker}}")],
            width=8,
            mappings=BREAKER_STATES,
            description=BREAKER_HELP,
        ),
        Panel(
            "Breaker transitions",
            [
                q(
                    summed(
                        "breaker, to_state",
                        rate("mercato_circuit_breaker_transitions_total", SERVICE, "increase"),
                    ),
                    "{{breaker}} → {{to_state}}",
                )
            ],
            width=8,
        ),
        Panel(
            "Calls through breakers by outcome",
            [
                q(
                    summed(
                        "breaker, outcome", rate("mercato_circuit_breaker_calls_total", SERVICE)
                    ),
                    "{{breaker}} {{outcome}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
        Panel(
            "Retry attempts by outcome",
            [
                q(
                    summed("target, outcome", rate("mercato_retry_attempts_total", SERVICE)),
                    "{{target}} {{outcome}}",
                )
            ],
            unit="reqps",
            width=8,
        ),
        Panel(
            "Retry budget use",
            [
                q(
                    f"max by (target) (mercato_retry_budget_utilization_ratio{{{SERVICE}}})",
                    "{{target}}",
                )
            ],
            unit="percentunit",
            width=8,
            thresholds=[(0.8, "orange"), (1, "red")],
            description="Retries made over retries allowed in the budget's window; at 100% "
            "further retries are refused.",
        ),
        Panel(
            "Bulkheads",
            [
                q(summed("bulkhead", f"mercato_bulkhead_in_flight{{{SERVICE}}}"), "{{bulkhead}}"),
                q(
                    summed("bulkhead", rate("mercato_bulkhead_rejected_total", SERVICE)),
                    "{{bulkhead}} rejected/s",
                ),
            ],
            width=8,
            description="Calls in flight through each bulkhead, and those it turned away.",
        ),
        Panel(
            "Instances ejected from balancing",
            [
                q(
                    summed("target", rate("mercato_outlier_ejections_total", SERVICE, "increase")),
                    "{{target}}",
                )
            ],
            width=8,
            description="Instances of other services this one stopped sending to for a "
            "while after consecutive failures.",
        ),
    ]
    pool = "mercato_db_pool_connections"
    storage = [
        Panel(
            "Database pool",
            [
                q(summed("pool", f"{pool}_in_use{{{SERVICE}}}"), "{{pool}} in use"),
                q(summed("pool", f"{pool}_idle{{{SERVICE}}}"), "{{pool}} idle"),
                q(summed("pool", f"{pool}_max{{{SERVICE}}}"), "{{pool}} max"),
            ],
            width=8,
        ),
        Panel(
            "Outbox backlog and oldest unsent",
            [
                q(f"max(mercato_outbox_backlog{{{SERVICE}}})", "rows unsent"),
                q(f"max(mercato_outbox_oldest_unsent_age_seconds{{{SERVICE}}})", "oldest (s)"),
            ],
            width=8,
        ),
        Panel(
            "Outbox publishing",
            [
                q(summed("", rate("mercato_outbox_published_total", SERVICE)), "published/s"),
                q(summed("", rate("mercato_outbox_publish_failures_total", SERVICE)), "failed/s"),
            ],
            width=8,
        ),
    ]
    process = [
        Panel(
            "CPU",
            [q(rate("process_cpu_seconds_total", SERVICE), "{{instance}}")],
            unit="percentunit",
            width=8,
            description="Cores in use per instance (1 = one core).",
        ),
        Panel(
            "Memory (RSS)",
            [q(f"process_resident_memory_bytes{{{SERVICE}}}", "{{instance}}")],
            unit="bytes",
            width=8,
        ),
        Panel(
            "Open file descriptors",
            [q(f"process_open_fds{{{SERVICE}}}", "{{instance}}")],
            width=8,
        ),
    ]
    return Dashboard(
        uid="mercato-service",
        title="Mercato / Service",
        description="One service (choose it above): its routes, its calls to others "
        "(breakers, retries, bulkheads), its database pool, its outbox, its process.",
        variables=[
            Variable("service", "Service", 'label_values(up{job="mercato"}, service)'),
            Variable(
                "instance",
                "Instance",
                'label_values(up{job="mercato",service="$service"}, instance)',
                multi=True,
                include_all=True,
            ),
        ],
        rows=[
            Row("Routes (RED)", routes),
            Row("Calls to other services", calls),
            Row("Database and outbox", storage),
            Row("Process", process),
        ],
    )


PLACEMENTS = 'service="gateway",route="/api/v1/orders",method="POST"'
CHECKOUT = 'saga="checkout"'


def checkout() -> Dashboard:
    slos = [
        Panel(
            "Success, 1 day",
            [q("1 - slo:order_placement_errors:ratio_rate1d")],
            kind="stat",
            unit="percentunit",
            width=6,
            height=5,
            decimals=3,
            thresholds=[(0, "red"), (0.995, "green")],
            description="SLO: 99.5% without a server error.",
        ),
        Panel(
            "Within 1 s, 1 day",
            [q("1 - slo:order_placement_slow:ratio_rate1d")],
            kind="stat",
            unit="percentunit",
            width=6,
            height=5,
            decimals=3,
            thresholds=[(0, "red"), (0.99, "green")],
            description="SLO: 99% within a second.",
        ),
        Panel(
            "Error budget burn rate",
            [
                q(f"slo:order_placement_errors:ratio_rate{window} / 0.005", window)
                for window in ("1h", "6h", "1d")
            ],
            width=6,
            height=5,
            thresholds=[(1, "orange"), (6, "red")],
            description="1 spends the budget in exactly 30 days; the page fires at 14.4 "
            "over an hour or 6 over six hours.",
        ),
        Panel(
            "Latency budget burn rate",
            [
                q(f"slo:order_placement_slow:ratio_rate{window} / 0.01", window)
                for window in ("1h", "6h", "1d")
            ],
            width=6,
            height=5,
            thresholds=[(1, "orange"), (6, "red")],
        ),
    ]
    duration = "mercato_http_request_duration_seconds"
    placements = [
        Panel(
            "Placements by status",
            [q(summed("status", rate("mercato_http_requests_total", PLACEMENTS)), "{{status}}")],
            unit="reqps",
            width=12,
            stack=True,
        ),
        Panel(
            "Placement latency",
            [
                q(quantile(0.5, "", duration, PLACEMENTS), "p50"),
                q(quantile(0.99, "", duration, PLACEMENTS), "p99"),
            ],
            unit="s",
            width=12,
        ),
    ]
    saga = [
        Panel(
            "Sagas started and finished",
            [
                q(summed("", rate("mercato_sagas_started_total", CHECKOUT)), "started"),
                q(summed("outcome", rate("mercato_sagas_finished_total", CHECKOUT)), "{{outcome}}"),
            ],
            unit="ops",
            width=8,
            description="compensated = rejected (a declined card, no stock, a timeout): the "
            "order was refused cleanly.",
        ),
        Panel(
            "Sagas in progress",
            [q(f"saga_status:mercato_sagas_active:max{{{CHECKOUT}}}", "{{status}}")],
            width=8,
            stack=True,
        ),
        Panel(
            "Oldest unfinished saga",
            [q(f"max(mercato_saga_oldest_active_age_seconds{{{CHECKOUT}}})", "age")],
            unit="s",
            width=8,
            thresholds=[(600, "red")],
        ),
        Panel(
            "Saga duration",
            [
                q(f"saga:mercato_saga_duration_seconds:p50_5m{{{CHECKOUT}}}", "p50"),
                q(f"saga:mercato_saga_duration_seconds:p95_5m{{{CHECKOUT}}}", "p95"),
            ],
            unit="s",
            width=8,
            description="From placement to CONFIRMED or REJECTED.",
        ),
        Panel(
            "Steps by outcome",
            [
                q(
                    summed("step, outcome", rate("mercato_saga_steps_total", CHECKOUT)),
                    "{{step}} {{outcome}}",
                )
            ],
            unit="ops",
            width=16,
        ),
    ]
    participants = [
        Panel(
            "Reservations expired",
            [q(summed("", rate("mercato_reservation_expiries_total", "", "increase")), "expired")],
            width=8,
            description="Stock reservations released because nobody committed them in time "
            "(inventory).",
        ),
        Panel(
            "Payment provider operations",
            [
                q(
                    summed("operation, outcome", rate("mercato_payments_psp_operations_total")),
                    "{{operation}} {{outcome}}",
                )
            ],
            unit="ops",
            width=8,
        ),
        Panel(
            "Payments with a psp operation due",
            [q("max(mercato_payments_due_operations)", "due")],
            width=8,
        ),
    ]
    return Dashboard(
        uid="mercato-checkout",
        title="Mercato / Checkout",
        description="Order placement against its SLOs, and the checkout saga behind it: "
        "outcomes, durations, steps, stock reservations and the payment provider.",
        time_from="now-6h",
        rows=[
            Row("SLOs: order placement (POST /api/v1/orders at the gateway)", slos),
            Row("Placements", placements),
            Row("The checkout saga", saga),
            Row("Participants", participants),
        ],
    )


def messaging() -> Dashboard:
    flow = [
        Panel(
            "Published by type",
            [q(summed("type", rate("mercato_messages_published_total")), "{{type}}")],
            unit="ops",
            width=12,
            stack=True,
        ),
        Panel(
            "Consumed by consumer and outcome",
            [
                q(
                    "service_consumer_outcome:mercato_messages_consumed:rate5m",
                    "{{consumer}} {{outcome}}",
                )
            ],
            unit="ops",
            width=12,
        ),
        Panel(
            "Consumer lag",
            [q("service_consumer:mercato_consumer_lag_messages:max", "{{consumer}}")],
            width=12,
            description="Messages the broker holds for a consumer and has not delivered yet.",
        ),
        Panel(
            "Handling time p99",
            [
                q(
                    "service_consumer:mercato_message_handling_duration_seconds:p99_5m",
                    "{{consumer}}",
                )
            ],
            unit="s",
            width=12,
        ),
    ]
    outboxes = [
        Panel("Backlog", [q("service:mercato_outbox_backlog:max", "{{service}}")], width=8),
        Panel(
            "Oldest unsent",
            [q("service:mercato_outbox_oldest_unsent_age_seconds:max", "{{service}}")],
            unit="s",
            width=8,
            thresholds=[(120, "red")],
        ),
        Panel(
            "Publish failures",
            [q(summed("service", rate("mercato_outbox_publish_failures_total")), "{{service}}")],
            unit="ops",
            width=8,
        ),
    ]
    trouble = [
        Panel(
            "Dead letters waiting",
            [q("max(mercato_dead_letters_stored)", "stored")],
            width=8,
            thresholds=[(1, "orange")],
            description="`mercato dlq list`, then replay or discard.",
        ),
        Panel(
            "Dead-lettered by consumer",
            [
                q(
                    summed("consumer", rate("mercato_dead_letters_total", "", "increase")),
                    "{{consumer}}",
                )
            ],
            width=8,
        ),
        Panel(
            "Duplicates absorbed by inboxes",
            [q(summed("consumer", rate("mercato_inbox_duplicates_total")), "{{consumer}}")],
            unit="ops",
            width=8,
            description="Redeliveries a consumer had already handled (at-least-once delivery "
            "at work).",
        ),
    ]
    return Dashboard(
        uid="mercato-messaging",
        title="Mercato / Messaging",
        description="Events through the broker: what is published and consumed, how far "
        "behind consumers are, the outboxes, dead letters and duplicates.",
        rows=[Row("Flow", flow), Row("Outboxes", outboxes), Row("Trouble", trouble)],
    )


DASHBOARDS = (overview, service, checkout, messaging)


# -- rendering -------------------------------------------------------------------------------


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    return {"mode": "absolute", "steps": steps}


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.mappings:
        defaults["mappings"] = list(panel.mappings)
    if panel.link_to_service:
        defaults["links"] = [{"title": "Open ${__field.labels.service}", "url": SERVICE_LINK}]
    options: dict[str, Any]
    if panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    else:
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10 if panel.stack else 0,
            "showPoints": "never",
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": chr(ord("A") + index),
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def _variable(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": variable.query,
        "query": {"query": variable.query, "refId": f"{variable.name}-values"},
        "refresh": 2,  # on time range change: instances come and go
        "sort": 1,
        "multi": variable.multi,
        "includeAll": variable.include_all,
        "allValue": ".*" if variable.include_all else None,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    templating = [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        *(_variable(variable) for variable in dashboard.variables),
    ]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,  # a shared crosshair across panels
        "refresh": "10s",
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Mercato",
                "type": "dashboards",
                "tags": ["mercato"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": templating},
        "panels": panels,
    }


def files() -> dict[str, str]:
    """File name → JSON text, for every dashboard."""
    return {
        f"{dashboard.uid}.json": json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"
        for dashboard in (build() for build in DASHBOARDS)
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="exit 1 if a dashboard is stale")
    args = parser.parse_args(argv)
    wanted = files()
    stale = sorted(
        name
        for name, text in wanted.items()
        if not (OUT / name).exists() or (OUT / name).read_text(encoding="utf-8") != text
    )
    extra = sorted(path.name for path in OUT.glob("*.json") if path.name not in wanted)
    if args.check:
        for name in stale:
            sys.stderr.write(f"{OUT / name} is stale: run scripts/generate_dashboards.py\n")
        for name in extra:
            sys.stderr.write(f"{OUT / name} is not generated by scripts/generate_dashboards.py\n")
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (OUT / name).write_text(wanted[name], encoding="utf-8")
        sys.stderr.write(f"wrote {OUT / name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
