"""`/metrics` of every chassis app: the platform's own families and the process's."""

from __future__ import annotations

import importlib
from typing import ClassVar

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from chassis import ServiceSettings, create_app

# Importing the chassis registers these, whether or not the service uses the feature yet.
CHASSIS_FAMILIES = {
    "mercato_http_requests": "counter",
    "mercato_http_request_duration_seconds": "histogram",
    "mercato_circuit_breaker_state": "gauge",
    "mercato_retry_budget_utilization_ratio": "gauge",
    "mercato_db_pool_connections_in_use": "gauge",
    "mercato_outbox_backlog": "gauge",
    "mercato_outbox_oldest_unsent_age_seconds": "gauge",
    "mercato_consumer_lag_messages": "gauge",
    "mercato_dead_letters_stored": "gauge",
    "mercato_sagas_active": "gauge",
    "mercato_saga_oldest_active_age_seconds": "gauge",
    # prometheus_client's process collector (Linux): CPU and memory of the service.
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


async def test_metrics_exposes_the_chassis_and_process_families() -> None:
    for module in ("chassis.messaging", "chassis.saga"):  # what a service with messaging imports
        importlib.import_module(module)
    app = create_app(DemoSettings(internal_secret="x" * 32), configure_logs=False)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://d") as http,
    ):
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(answer.text)}
    for name, kind in CHASSIS_FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
    memory = families["process_resident_memory_bytes"].samples[0].value
    assert memory > 10 * 2**20  # a real reading: a Python process with FastAPI loaded
