"""The cheapest Python HTTP backend: a raw ASGI app on uvicorn (uvloop, httptools).

It answers every GET with the bytes in `BENCH_RAW_BODY_FILE` (the gateway benchmark puts a
real catalog product there, so both backends send the same bytes), and `/readyz`. With the
backend this cheap, what a proxy in front of it costs is most of what is measured — the set-up
of DESIGN.md §8, where nginx proxying it gave 20.7k req/s and a naive aiohttp proxy about 0.2 times that.
Run: `uvicorn --factory _raw_backend:app`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


def app() -> App:
    body = Path(os.environ["BENCH_RAW_BODY_FILE"]).read_bytes()
    ready = b'{"status":"ready"}'
    headers = [(b"content-type", b"application/json")]

    async def serve(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to start or stop
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        answer = ready if scope["path"] == "/readyz" else body
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*headers, (b"content-length", str(len(answer)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    return serve
