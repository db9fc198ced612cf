"""The gateway's merged OpenAPI document, fuzzed by schemathesis with every check against a
running `mercato up`: what a client of the public API really gets, through the edge (JWT
verification, routing, composition) to the services and back.

The caller is the admin (every operation is reachable; `ignored_auth` replays guarded
operations without a token and with a made-up one). Its requests come from 127.0.0.2, so the
login failures the fuzzing makes throttle that address only, not the other tests' 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from requests.adapters import HTTPAdapter

pytestmark = [pytest.mark.system, pytest.mark.slow]

# aiohttp refuses a longer request line itself, before the gateway sees the request
# (GATEWAY_MAX_HEADER_BYTES), with a plain-text 400.
MAX_REQUEST_LINE = 8190


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (still to 127.0.0.1)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def merged(platform: Any) -> dict[str, Any]:
    answer = requests.get(f"{platform.base}/api/v1/openapi.json", timeout=30)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    assert "x-missing-services" not in document, document["x-missing-services"]
    return document


@pytest.fixture
def gateway_fuzzer(platform: Any, merged: dict[str, Any], fuzzer: Any) -> Any:
    schema = schemathesis.openapi.from_dict(merged)
    session = requests.Session()
    session.mount("http://", FromAddress("127.0.0.2"))
    made = fuzzer(
        schema,
        # fewer than in process: every service's operations were fuzzed there already
        examples=max(5, fuzzer.examples * 3 // 5),
        transport={"base_url": platform.base, "session": session},
        max_request_line=MAX_REQUEST_LINE,
    )
    admin = platform.admin()
    made.authenticate(lambda: admin.bearer)
    return made


def test_the_merged_document_is_the_public_api_only(merged: dict[str, Any]) -> None:
    paths = set(merged["paths"])
    assert {"/api/v1/auth/token", "/api/v1/products", "/api/v1/orders",
            "/api/v1/notifications"} <= paths  # fmt: skip
    assert not [p for p in paths if not p.startswith("/api/v1/")], paths
    schemes = merged["components"]["securitySchemes"]
    assert set(schemes) == {"bearer"}
    secured = {
        f"{method.upper()} {path}"
        for path, item in merged["paths"].items()
        for method, operation in item.items()
        if operation.get("security") == [{"bearer": []}]
    }
    assert {"GET /api/v1/users/me", "POST /api/v1/orders", "POST /api/v1/products",
            "GET /api/v1/notifications", "PUT /api/v1/inventory/stock/{sku}"} <= secured  # fmt: skip


def test_every_public_operation_holds_to_the_merged_document(gateway_fuzzer: Any) -> None:
    failures = gateway_fuzzer.run()
    assert not failures, "\n\n".join(failures)


def test_stateful_walks_through_the_gateway_hold_to_the_document(gateway_fuzzer: Any) -> None:
    # Links: a product created (or listed) is read and patched by id, an order listed is
    # read and cancelled, a notification listed is read and marked read.
    reached = gateway_fuzzer.run_stateful(scenarios=10, steps=6)
    assert reached, "the walk followed no link to a resource"
