"""What the HTTP benchmarks share: servers pinned to core 0, wrk pinned to core 1."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER_CORES = {0}
CLIENT_CORES = "1"


def start(
    module: str, env: dict[str, str], log: Path, *, args: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """`python -m module args…` pinned to the server core, output to `log`."""
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, SERVER_CORES),
    )
    handle.close()
    return process


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


def wrk(
    url: str, *, connections: int, duration: str, headers: dict[str, str] | None = None
) -> dict[str, float]:
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    output = subprocess.run(
        ["taskset", "-c", CLIENT_CORES, "wrk", "-t1", f"-c{connections}", f"-d{duration}",
         "--latency", *extra, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", output, re.MULTILINE))
    return {
        "rps": rps,
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
