"""Every service's own OpenAPI document, fuzzed in process by schemathesis with every check:
no 5xx, no response outside its documented status codes, media types and schemas, invalid
input always refused, guarded operations refusing callers without (or with a forged)
identity, and the stateful links (an id one response returns used by the next request).

Each service runs as its tests run it: its FastAPI app from its composition root, SQLite
in a temporary directory, an in-memory bus. The caller is an admin customer, so every
operation is reachable; `ignored_auth` replays guarded operations without identity and with
a forged one. Tokens are signed per request (they expire after a minute).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI

from chassis import PRINCIPAL_HEADER, InternalTokenCodec, Principal

pytestmark = pytest.mark.slow

SECRET = "security-fuzz-internal-secret"
CALLER = Principal("fuzz-user", frozenset({"admin", "customer"}))


class AnyProductCatalog:
    """Orders' catalog port answering for any product id, so orders can really be placed
    (and listed, read, cancelled) whatever ids the fuzzer makes up."""

    async def products(self, product_ids: Sequence[str]) -> dict[str, Any]:
        from orders.domain.model import Price, ProductSnapshot

        return {
            pid: ProductSnapshot(pid, f"SKU-{abs(hash(pid)) % 10_000}", "Fuzzed", Price(100, "EUR"))
            for pid in product_ids
        }


def build(service: str, tmp_path: Path) -> FastAPI:
    common: dict[str, Any] = {
        "environment": "test",
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/{service}.db",
        "internal_secret": SECRET,
        "broker_url": "memory://",
    }
    if service == "catalog":
        from catalog.bootstrap import build_app as catalog
        from catalog.settings import CatalogSettings

        return catalog(CatalogSettings(**common))
    if service == "identity":
        from identity.adapters.passwords import Argon2PasswordHasher
        from identity.bootstrap import build_app as identity
        from identity.settings import IdentitySettings

        settings = IdentitySettings(
            **common,
            key_encryption_secret="security-fuzz-key-secret",
            admin_email="admin@example.com",
            admin_password="a long enough admin password for fuzzing",
        )
        return identity(settings, hasher=Argon2PasswordHasher(time_cost=1, memory_cost=8,
                                                               parallelism=1))  # fmt: skip
    if service == "inventory":
        from inventory.bootstrap import build_app as inventory
        from inventory.settings import InventorySettings

        return inventory(InventorySettings(**common, grpc_port=0))
    if service == "orders":
        from orders.bootstrap import build_app as orders
        from orders.settings import OrdersSettings

        return orders(OrdersSettings(**common), catalog=AnyProductCatalog())
    if service == "payments":
        from payments.bootstrap import build_app as payments
        from payments.settings import PaymentsSettings

        return payments(PaymentsSettings(**common))
    if service == "notifications":
        from notifications.bootstrap import build_app as notifications
        from notifications.settings import NotificationsSettings

        return notifications(NotificationsSettings(**common))
    assert service == "psp"
    from psp.bootstrap import build_app as psp
    from psp.settings import PspSettings

    return psp(PspSettings(**common))


SERVICES = ["catalog", "identity", "inventory", "orders", "payments", "notifications", "psp"]
# The stateful walk needs links and resources to walk to. Identity's and payments' documents
# have no links (no operation answers with an id another takes); inventory's stock and
# notifications' mailboxes are made by events, not by their APIs, so their walks would find
# nothing to follow (their operations are fuzzed one by one above). Orders are placed first.
LINKED = ["catalog", "orders", "psp"]


def internal_caller() -> dict[str, str]:
    return {PRINCIPAL_HEADER: InternalTokenCodec(SECRET.encode()).issue(CALLER)}


@pytest.fixture
def fuzz_service(fuzzer: Any, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """A fuzzer over the named service's document, authenticated as CALLER."""

    def make(service: str) -> Any:
        schema = schemathesis.openapi.from_asgi("/openapi.json", build(service, tmp_path))
        made = fuzzer(schema)
        made.authenticate(internal_caller)
        return made

    try:
        yield make
    finally:
        # The app's lifespan runs in schemathesis's ASGI thread until told to stop.
        schemathesis.python.asgi.shutdown_lifespans()


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_holds_to_its_document(
    service: str, fuzz_service: Callable[[str], Any]
) -> None:
    failures = fuzz_service(service).run()
    assert not failures, f"{service}:\n\n" + "\n\n".join(failures)


def place_orders(fuzzer: Any, count: int) -> None:
    operation = fuzzer.schema["/api/v1/orders"]["POST"]
    for n in range(count):
        headers = {"Idempotency-Key": uuid.uuid4().hex, **internal_caller()}
        body = {"items": [{"product_id": f"p-{n}", "quantity": 1}], "payment_token": "tok_visa"}
        response = operation.Case(body=body, headers=headers).call()
        assert response.status_code == 202, response.text


def like_a_client(case: Any) -> None:
    """What every real client sends (its absence is fuzzed one operation at a time above): an
    Idempotency-Key with each POST, and a card token the psp knows."""
    if case.method == "POST":
        case.headers = {"Idempotency-Key": uuid.uuid4().hex, **(case.headers or {})}
    if isinstance(case.body, dict) and "token" in case.body:
        case.body["token"] = "tok_visa"


@pytest.mark.parametrize("service", LINKED)
def test_stateful_walks_hold_to_the_document(
    service: str, fuzz_service: Callable[[str], Any]
) -> None:
    walker = fuzz_service(service)
    if service == "orders":
        place_orders(walker, 3)
    reached = walker.run_stateful(prepare=like_a_client)
    assert reached, f"{service}: the walk followed no link to a resource"


def test_the_looser_schema_table_names_real_operations(fuzzer: Any, tmp_path: Path) -> None:
    """Every operation spared `positive_data_acceptance` exists, so the table cannot rot."""
    labels: set[str] = set()
    for service in SERVICES:
        schema = schemathesis.openapi.from_dict(build(service, tmp_path / service).openapi())
        labels.update(fuzzer(schema).labels())
    assert set(fuzzer.looser_than_the_service()) <= labels
