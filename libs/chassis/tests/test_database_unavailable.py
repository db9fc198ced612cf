"""A database that cannot be reached, or has no connection to spare, is a 503 with
Retry-After (the caller may retry; breakers count it), never a 500 and never a traceback."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import asyncpg
import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from chassis import Database, ServiceSettings, api_router, configure_logging, create_app, free_port
from chassis._database import database_unavailable


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


async def serve(database: Database, log: io.BytesIO) -> AsyncIterator[httpx.AsyncClient]:
    router = api_router()

    @router.get("/answer")
    async def answer() -> dict[str, int]:
        async with database.sessions() as session:
            return {"answer": int(await session.scalar(text("SELECT 42")) or 0)}

    app = create_app(DemoSettings(), [router], configure_logs=False)
    configure_logging(service="demo", instance="demo-1", stream=log)
    async with (
        LifespanManager(app, startup_timeout=60),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as http,
    ):
        yield http


def assert_unavailable(response: httpx.Response, log: io.BytesIO) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["title"] == "Service unavailable"
    assert "database" in body["detail"]
    assert "Traceback" not in response.text
    lines = [orjson.loads(line) for line in log.getvalue().splitlines()]
    warned = [line for line in lines if line["event"] == "database_unavailable"]
    assert warned and warned[0]["level"] == "warning" and "exception" not in warned[0]
    assert not [line for line in lines if line["event"] == "unhandled_error"]


async def test_a_database_that_refuses_connections_is_a_503() -> None:
    database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    log = io.BytesIO()
    try:
        async for http in serve(database, log):
            assert_unavailable(await http.get("/answer"), log)
    finally:
        await database.dispose()


@pytest.mark.integration
async def test_a_database_out_of_connections_is_a_503_until_one_is_free(
    postgres_url: str, postgres_admin_url: str
) -> None:
    """A role allowed one connection, already taken: PostgreSQL refuses the next with
    SQLSTATE 53300 (too many connections), as a saturated server does."""
    role = f"mercato_limited_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    name = postgres_url.rsplit("/", 1)[1]
    server = postgres_admin_url.rsplit("/", 1)[0].split("@", 1)[1]
    holder = await asyncpg.connect(f"postgresql://{role}@{server}/{name}")
    database = Database(f"postgresql+asyncpg://{role}@{server}/{name}")
    log = io.BytesIO()
    try:
        async for http in serve(database, log):
            assert_unavailable(await http.get("/answer"), log)
            await holder.close()
            recovered = await http.get("/answer")
            assert recovered.status_code == 200, recovered.text
            assert recovered.json() == {"answer": 42}
    finally:
        await database.dispose()
        if not holder.is_closed():
            await holder.close()
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


def test_bad_data_and_bugs_are_not_taken_for_an_unavailable_database() -> None:
    assert not database_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not database_unavailable(ValueError("bug"))
    # Calls to other services time out or are refused too: not the database's doing.
    assert not database_unavailable(TimeoutError())
    assert not database_unavailable(ConnectionRefusedError())
    assert database_unavailable(PoolTimeoutError("QueuePool limit reached"))
