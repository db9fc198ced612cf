"""The two apps `bench/chassis_overhead.py` compares: the same trivial endpoint, bare and chassis-built."""

from __future__ import annotations

from typing import ClassVar

from fastapi import APIRouter, FastAPI

from chassis import ServiceSettings, api_router, create_app


def _hello_routes(router: APIRouter) -> APIRouter:
    @router.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return router


def bare() -> FastAPI:
    app = FastAPI()
    app.include_router(_hello_routes(APIRouter()))

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


class HelloSettings(ServiceSettings):
    service_name: ClassVar[str] = "hello"


def chassis() -> FastAPI:
    """Tracing (to span files, every request sampled), metrics and JSON logs all on."""
    return create_app(HelloSettings(), [_hello_routes(api_router())])
