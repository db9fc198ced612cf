"""Run a service's app under uvicorn, with a graceful shutdown."""

from __future__ import annotations

import importlib.util
import math

import uvicorn
from fastapi import FastAPI

from chassis._settings import ServiceSettings

__all__ = ["serve"]


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, finish in-flight requests for at
    most `shutdown_timeout` seconds and run the app's shutdown (which closes its pools)."""
    fast = importlib.util.find_spec("uvloop") is not None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if fast else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout),
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()
