"""Requests/s and added latency through the gateway vs a direct call to the same catalog.

Both run in the same run, alternating, servers pinned to core 0 and wrk to core 1; one JSON
line: {"benchmark": "gateway", "direct_rps", "gateway_rps", "ratio", "added_p50_ms", ...}.
Needs wrk (Debian package `wrk`; `make bench` installs it when missing and run as root).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from chassis import InternalTokenCodec, Principal, free_port

SERVER_CORES = {0}
CLIENT_CORES = "1"
DURATION = "8s"
ROUNDS = 2
SECRET = "bench-internal-secret"  # noqa: S105 - a throwaway for a benchmark run


def start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module],
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


def wrk(url: str, *, connections: int, duration: str) -> dict[str, float]:
    output = subprocess.run(
        ["taskset", "-c", CLIENT_CORES, "wrk", "-t1", f"-c{connections}", f"-d{duration}",
         "--latency", url],
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


def seed(catalog: str) -> str:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("bench", frozenset({"admin"})))
    body = json.dumps({"sku": "BENCH-1", "name": "Bench mug", "category": "kitchen",
                       "price": {"amount": 100, "currency": "EUR"}}).encode()  # fmt: skip
    request = urllib.request.Request(  # noqa: S310
        f"{catalog}/api/v1/products", data=body, method="POST",
        headers={"content-type": "application/json", "x-mercato-principal": token},
    )  # fmt: skip
    with urllib.request.urlopen(request) as answer:  # noqa: S310
        return str(json.load(answer)["id"])


def main() -> None:
    if shutil.which("wrk") is None:
        print(json.dumps({"benchmark": "gateway", "skipped": "wrk is not installed"}))
        return
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        catalog_port, gateway_port = free_port(), free_port()
        catalog_url = f"http://127.0.0.1:{catalog_port}"
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        common = {"MERCATO_DATA_DIR": str(data), "MERCATO_INTERNAL_SECRET": SECRET,
                  "MERCATO_LOG_LEVEL": "warning"}  # fmt: skip
        processes = [
            start("catalog", {**common, "CATALOG_PORT": str(catalog_port)}, data / "catalog.log"),
            start(
                "gateway",
                {
                    **common,
                    "GATEWAY_PORT": str(gateway_port),
                    "MERCATO_REGISTRY_URL": f"static:catalog={catalog_url}",
                    "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
                    "GATEWAY_RATE_LIMIT_BURST": "1000000",
                },
                data / "gateway.log",
            ),
        ]
        try:
            wait_ready(catalog_url)
            wait_ready(gateway_url)
            product = seed(catalog_url)
            path = f"/api/v1/products/sku/BENCH-1?p={product[:4]}"
            runs: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
            quiet: dict[str, list[dict[str, float]]] = {"direct": [], "gateway": []}
            for _ in range(ROUNDS):
                for name, base in (("direct", catalog_url), ("gateway", gateway_url)):
                    wrk(base + path, connections=16, duration="2s")  # warm up
                    runs[name].append(wrk(base + path, connections=64, duration=DURATION))
                    quiet[name].append(wrk(base + path, connections=1, duration="4s"))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)

    def best(items: list[dict[str, float]], key: str, *, high: bool) -> float:
        values = [item[key] for item in items]
        return max(values) if high else min(values)

    direct_rps = best(runs["direct"], "rps", high=True)
    gateway_rps = best(runs["gateway"], "rps", high=True)
    result = {
        "benchmark": "gateway",
        "path": "GET /api/v1/products/sku/{sku}",
        "connections": 64,
        "direct_rps": round(direct_rps),
        "gateway_rps": round(gateway_rps),
        "ratio": round(gateway_rps / direct_rps, 3),
        "direct_p50_ms_low_load": best(quiet["direct"], "p50_ms", high=False),
        "gateway_p50_ms_low_load": best(quiet["gateway"], "p50_ms", high=False),
        "added_p50_ms": round(
            best(quiet["gateway"], "p50_ms", high=False)
            - best(quiet["direct"], "p50_ms", high=False),
            3,
        ),
        "added_p99_ms": round(
            best(quiet["gateway"], "p99_ms", high=False)
            - best(quiet["direct"], "p99_ms", high=False),
            3,
        ),
        "errors": sum(r["errors"] for r in runs["direct"] + runs["gateway"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
