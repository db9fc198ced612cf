"""One checkout on `mercato up` is one trace: in the span files `mercato trace` draws, and at
a real OTLP/HTTP receiver, with correct parent links across every hop (HTTP and messages)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from chassis import free_port

pytestmark = [pytest.mark.system, pytest.mark.slow]

MERCATO = [sys.executable, "-m", "mercato_cli"]
PASSWORD = "correct horse battery staple"
CHECKOUT_STEPS = [
    "checkout started",
    "reserve_stock command_sent",
    "reserve_stock succeeded",
    "authorize_payment command_sent",
    "authorize_payment succeeded",
    "confirm_order succeeded",
    "capture_payment command_sent",
    "capture_payment succeeded",
    "commit_reservation command_sent",
    "commit_reservation succeeded",
    "checkout completed",
]


@dataclass
class OtlpSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP (protobuf) trace receiver: what a collector's `otlphttp` receiver does."""

    spans: list[OtlpSpan] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        OtlpSpan(
                            service=attributes.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                        )
                    )
        with self.lock:
            self.requests += 1
            self.spans.extend(found)

    def of_trace(self, trace_id: str) -> list[OtlpSpan]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[OtlpReceiver, int]]:
    received = OtlpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            received.accept(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, server.server_address[1]
    server.shutdown()
    server.server_close()


@dataclass
class Platform:
    base: str
    data_dir: Path

    def mercato(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MERCATO, "--data-dir", str(self.data_dir), *args],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, receiver: tuple[OtlpReceiver, int]
) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("tracing") / "data"
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "100000",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    process = subprocess.Popen(
        [*MERCATO, "--data-dir", str(data_dir), "up", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    platform = Platform(f"http://127.0.0.1:{port}", data_dir)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = json.loads(platform.mercato("status", "--json").stdout or "[]")
            if len(rows) >= 8 and all(r["ready"] for r in rows):
                break
            time.sleep(0.3)
        else:
            raise AssertionError("platform not ready")
        for _ in range(200):
            listing = httpx.get(f"{platform.base}/api/v1/products", params={"limit": 5})
            if listing.status_code == 200 and listing.json()["items"]:
                break
            time.sleep(0.2)
        yield platform
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def shopper(base: str) -> tuple[dict[str, str], str]:
    email = f"tracer-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(f"{base}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": "Tracer"})  # fmt: skip
    assert registered.status_code == 201, registered.text
    tokens = httpx.post(f"{base}/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    access = tokens.json()["access_token"]
    return {"Authorization": f"Bearer {access}"}, access


def wait_for(condition: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_checkout_is_one_trace_across_every_service(
    platform: Platform, receiver: tuple[OtlpReceiver, int]
) -> None:
    base = platform.base
    who, access_token = shopper(base)
    product = httpx.get(f"{base}/api/v1/products", params={"limit": 1}).json()["items"][0]

    def in_stock() -> bool:  # the demo catalog's stock is still being loaded at first
        answer = httpx.get(f"{base}/api/v1/inventory/availability",
                           params={"skus": product["sku"]})  # fmt: skip
        return answer.status_code == 200 and any(i["in_stock"] for i in answer.json()["items"])

    wait_for(in_stock, f"stock of {product['sku']}")
    placed = httpx.post(
        f"{base}/api/v1/orders",
        json={"items": [{"product_id": product["id"], "quantity": 1}], "payment_token": "tok_visa"},
        headers={**who, "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    assert placed.status_code == 202, placed.text
    trace_id = placed.headers["x-trace-id"]
    order_id = placed.json()["id"]

    def confirmed() -> bool:
        order = httpx.get(f"{base}/api/v1/orders/{order_id}", headers=who).json()
        return bool(order["status"] == "CONFIRMED")

    wait_for(confirmed, "the order to be confirmed")

    # -- the span files, through `mercato trace` ----------------------------------------
    def drawn() -> dict[str, Any] | None:
        result = platform.mercato("trace", trace_id, "--json")
        if result.returncode != 0:
            return None
        body: dict[str, Any] = json.loads(result.stdout)
        names = [s["name"] for s in body["spans"]]
        # Each process writes its spans about every second: the trace is whole when the last
        # step is there and no span still waits for its parent from another process.
        ids = {s["span_id"] for s in body["spans"]}
        whole = all(s["parent_id"] in ids for s in body["spans"][1:])
        return body if whole and "saga checkout: checkout completed" in names and any(
            n.startswith("consume orders.order.confirmed") and s["service"] == "notifications"
            for n, s in zip(names, body["spans"], strict=True)
        ) else None  # fmt: skip

    body = wait_for(drawn, "the whole checkout in the span files")
    spans = body["spans"]
    services = {s["service"] for s in spans}
    assert {"gateway", "orders", "inventory", "payments", "psp", "notifications"} <= services
    assert spans[0]["service"] == "gateway" and spans[0]["name"] == "POST /api/v1/orders"
    assert spans[0]["depth"] == 0 and spans[0]["parent_id"] is None
    assert all(s["trace_id"] == trace_id for s in spans)
    by_id = {s["span_id"]: s for s in spans}
    orphans = [s["name"] for s in spans[1:] if s["parent_id"] not in by_id]
    assert orphans == [], orphans  # every span hangs from the gateway's request
    steps = sorted(
        (s for s in spans if s["name"].startswith("saga checkout: ")), key=lambda s: s["start"]
    )
    assert [s["name"].removeprefix("saga checkout: ") for s in steps] == CHECKOUT_STEPS
    assert all(s["attributes"]["saga.id"] == steps[0]["attributes"]["saga.id"] for s in steps)
    psp_calls = [s for s in spans if s["service"] == "psp" and s["kind"] == "server"]
    assert len(psp_calls) >= 2  # authorize and capture, reached through payments' processor

    waterfall = platform.mercato("trace", trace_id[:12])
    assert waterfall.returncode == 0, waterfall.stderr
    assert waterfall.stdout.startswith(f"trace {trace_id}")
    assert "saga checkout: checkout completed" in waterfall.stdout

    listing = platform.mercato("trace", "--last", "50", "--json")
    assert trace_id in {t["trace_id"] for t in json.loads(listing.stdout)}
    slowest = json.loads(platform.mercato("trace", "--slowest", "--last", "3", "--json").stdout)
    durations = [t["duration_ms"] for t in slowest]
    assert durations == sorted(durations, reverse=True)

    # -- the OTLP receiver: the same trace, parent links intact across a message hop ---
    received, _ = receiver

    def exported() -> list[OtlpSpan] | None:
        found = received.of_trace(trace_id)
        return found if len(found) >= len(spans) else None

    otlp = wait_for(exported, "the trace at the OTLP receiver")
    otlp_by_id = {s.span_id: s for s in otlp}
    consume = next(
        s
        for s in otlp
        if s.service == "inventory" and s.name == "consume inventory.reserve_stock.v1"
    )
    producer = otlp_by_id[consume.parent_id]
    assert (producer.service, producer.name) == ("orders", "publish inventory.reserve_stock.v1")
    assert consume.kind == 5 and producer.kind == 4  # CONSUMER ← PRODUCER (OTLP's numbering)
    server = next(s for s in otlp if s.service == "orders" and s.name == "POST /api/v1/orders")
    client = otlp_by_id[server.parent_id]
    assert (client.service, client.kind) == ("gateway", 3)  # SERVER ← CLIENT across HTTP

    # -- logs carry the trace id; no secret reaches a log line or a span ----------------
    logs = platform.mercato("logs", "--trace", trace_id, "-n", "0")
    assert "orders" in logs.stdout and "gateway" in logs.stdout
    everything = "".join(
        path.read_text(errors="replace")
        for folder in ("logs", "traces")
        for path in (platform.data_dir / folder).glob("*")
        if path.is_file()
    )
    for secret in (PASSWORD, access_token, "tok_visa"):
        assert secret not in everything


def test_an_error_answer_leads_to_its_trace(platform: Platform) -> None:
    who, _ = shopper(platform.base)
    missing = httpx.post(
        f"{platform.base}/api/v1/orders",
        json={"items": [{"product_id": str(uuid.uuid4()), "quantity": 1}],
              "payment_token": "tok_visa"},
        headers={**who, "Idempotency-Key": uuid.uuid4().hex},
    )  # fmt: skip
    assert missing.status_code in (404, 422), missing.text
    problem = missing.json()
    assert problem["trace_id"] == missing.headers["x-trace-id"]

    def drawn() -> subprocess.CompletedProcess[str] | None:
        result = platform.mercato("trace", problem["trace_id"])
        # Each process writes its spans about every second: wait for catalog's too (orders
        # asked catalog about the product before refusing the order).
        whole = result.returncode == 0 and all(
            part in result.stdout for part in ("POST /api/v1/orders", "orders", "catalog")
        )
        return result if whole else None

    waterfall = wait_for(drawn, "the failed request's trace, from gateway to catalog")
    assert "GET /api/v1/products/{product_id}" in waterfall.stdout
