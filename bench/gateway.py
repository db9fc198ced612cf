"""The gateway vs nginx, proxying the same requests to the same backend on the same cores.

Compared, alternating round by round in one run (wrk, 64 connections for throughput, one
connection for latency at low load):

- **gateway** — `python -m gateway` exactly as `mercato up` runs it: JWT authentication on
  (every request carries a valid `Authorization: Bearer` access token issued by a real
  identity service, so the gateway verifies it, then mints the internal principal header),
  the in-process rate limiter on (a high limit, so it counts every request but refuses
  none), JSON request logs and spans written to files;
- **nginx** — the Debian `nginx-light` binary, 1 worker, `keepalive` upstream pool, HTTP/1.1
  to the backend, the same Authorization header passed through, an access log to a file;
- **direct** — the backend alone, to subtract: the latency a hop adds is the proxied p50
  minus the direct p50 at one connection, measured in the same round.

Two backends, both behind both proxies:

- **raw** (the headline `ratio` and `added_p50_ms`): a raw ASGI app on uvicorn answering
  the bytes of a real catalog product. It costs ~30 µs a request, so the proxy's own cost
  is most of what is measured; this is how DESIGN.md §8's baseline (naive aiohttp proxy
  0.21-0.29 of nginx) was taken, so the ratio compares with it;
- **catalog**: the real catalog service (FastAPI, SQLite) on `GET /api/v1/products/sku/{sku}`
  (`catalog_ratio`): the end-to-end view, where the backend's own cost dilutes the proxy's.

Pinning: the proxy under test *and* its backend on core 0, wrk on core 1. With two cores
this is the fair split: the load generator never takes CPU from the system under test, both
proxies pay for the same backend on the same core, and a proxy that burns more CPU per
request leaves less for the backend, as it would on a busy host. (Putting the backend on its
own core would have to share that core with wrk.) Identity is idle during the measurement.

One JSON line: {"benchmark": "gateway", "ratio", "added_p50_ms", "nginx_added_p50_ms",
"catalog_ratio", the raw req/s and p50/p99 per system, and the per-round ratios}.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from _wrk import SERVER_CORES, start, wait_ready, wrk

from chassis import InternalTokenCodec, Principal, free_port, terminate

NGINX = os.environ.get("BENCH_NGINX", "/usr/sbin/nginx")
DURATION = "6s"
LOW_LOAD = "3s"
ROUNDS = 3
CONNECTIONS = 64
SECRET = "bench-internal-secret"  # noqa: S105 - a throwaway for a benchmark run
PATH = "/api/v1/products/sku/BENCH-1"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {folder}/nginx-access.log;
    client_body_temp_path {folder}/nginx-body;
    proxy_temp_path {folder}/nginx-proxy;
    upstream raw {{ server 127.0.0.1:{raw}; keepalive 128; }}
    upstream catalog {{ server 127.0.0.1:{catalog}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{raw_front};
        location / {{
            proxy_pass http://raw;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{catalog_front};
        location / {{
            proxy_pass http://catalog;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def call(url: str, *, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
         ) -> Any:  # fmt: skip
    request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
        url, data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"content-type": "application/json", **(headers or {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.load(answer)


def seed_product(catalog: str) -> None:
    token = InternalTokenCodec(SECRET.encode()).issue(Principal("bench", frozenset({"admin"})))
    call(
        f"{catalog}/api/v1/products",
        body={"sku": "BENCH-1", "name": "Bench mug", "category": "kitchen",
              "description": "A mug for measuring proxies.",
              "price": {"amount": 100, "currency": "EUR"}},
        headers={"x-mercato-principal": token},
    )  # fmt: skip


def access_token(gateway: str) -> str:
    credentials = {"email": "bench@example.com", "password": "benchmark passphrase"}
    call(f"{gateway}/api/v1/auth/register", body={**credentials, "name": "Bench"})
    return str(call(f"{gateway}/api/v1/auth/token", body=credentials)["access_token"])


def start_nginx(folder: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(folder=folder, **ports))
    log = (folder / "nginx.out").open("ab")
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(conf)],
        stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, SERVER_CORES),
    )  # fmt: skip
    log.close()
    return process


def main() -> None:
    missing = [tool for tool in ("wrk", NGINX) if shutil.which(tool) is None]
    if missing:
        print(json.dumps({"benchmark": "gateway", "skipped": f"not installed: {missing}"}))
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        folder.chmod(0o755)  # nginx's worker runs as another user
        ports = {key: free_port() for key in
                 ("catalog", "identity", "raw", "gw_raw", "gw_catalog", "raw_front",
                  "catalog_front")}  # fmt: skip
        url = {key: f"http://127.0.0.1:{port}" for key, port in ports.items()}
        common = {
            "MERCATO_DATA_DIR": str(folder / "data"),
            "MERCATO_INTERNAL_SECRET": SECRET,
            "MERCATO_TRACE_DIR": str(folder / "traces"),  # as `mercato up` runs them
        }
        processes: list[subprocess.Popen[bytes]] = []

        def gateway(port: int, catalog_url: str) -> subprocess.Popen[bytes]:
            registry = f"static:catalog={catalog_url};identity={url['identity']}"
            return start("gateway", {**common, "GATEWAY_PORT": str(port),
                                     "MERCATO_REGISTRY_URL": registry,
                                     "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
                                     "GATEWAY_RATE_LIMIT_BURST": "1000000"},
                         folder / f"gateway-{port}.log")  # fmt: skip

        try:
            processes.append(start("catalog", {**common, "CATALOG_PORT": str(ports["catalog"])},
                                   folder / "catalog.log"))  # fmt: skip
            processes.append(start("identity", {**common, "IDENTITY_PORT": str(ports["identity"])},
                                   folder / "identity.log"))  # fmt: skip
            wait_ready(url["catalog"])
            seed_product(url["catalog"])
            body = folder / "product.json"
            with urllib.request.urlopen(url["catalog"] + PATH) as answer:  # noqa: S310
                body.write_bytes(answer.read())
            processes.append(start(
                "uvicorn", {"BENCH_RAW_BODY_FILE": str(body),
                            "PYTHONPATH": str(Path(__file__).parent)},
                folder / "raw.log",
                args=("--factory", "_raw_backend:app", "--port", str(ports["raw"]),
                      "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                      "--log-level", "warning"),
            ))  # fmt: skip
            processes.append(gateway(ports["gw_raw"], url["raw"]))
            processes.append(gateway(ports["gw_catalog"], url["catalog"]))
            processes.append(start_nginx(folder, ports))
            for key in ("identity", "raw", "gw_raw", "gw_catalog"):
                wait_ready(url[key])
            wait_ready(url["raw_front"])  # nginx passes /readyz to the backend
            token = access_token(url["gw_catalog"])
            auth = {"Authorization": f"Bearer {token}"}
            targets = {
                ("raw", "gateway"): url["gw_raw"], ("raw", "nginx"): url["raw_front"],
                ("raw", "direct"): url["raw"],
                ("catalog", "gateway"): url["gw_catalog"],
                ("catalog", "nginx"): url["catalog_front"], ("catalog", "direct"): url["catalog"],
            }  # fmt: skip
            load: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in targets}
            quiet: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in targets}
            for base in targets.values():  # warm every path (JWT cache, pools, pages)
                wrk(base + PATH, connections=16, duration="1s", headers=auth)
            for _ in range(ROUNDS):
                for key, base in targets.items():
                    quiet[key].append(wrk(base + PATH, connections=1, duration=LOW_LOAD,
                                          headers=auth))  # fmt: skip
                    if key[1] != "direct":
                        load[key].append(wrk(base + PATH, connections=CONNECTIONS,
                                             duration=DURATION, headers=auth))  # fmt: skip
            refused = sum(r["errors"] for runs in (*load.values(), *quiet.values()) for r in runs)
            traced = any((folder / "traces").glob("*"))
        finally:
            terminate(*processes, timeout=30)

    def rounds(backend: str, figure: str, proxy: str, other: str, *, ratio: bool) -> list[float]:
        runs = load if ratio else quiet
        pairs = zip(runs[(backend, proxy)], runs[(backend, other)], strict=True)
        return [x[figure] / y[figure] if ratio else x[figure] - y[figure] for x, y in pairs]

    def median(backend: str, proxy: str, figure: str, runs: dict[Any, Any]) -> float:
        return round(statistics.median(r[figure] for r in runs[(backend, proxy)]), 3)

    raw_ratios = rounds("raw", "rps", "gateway", "nginx", ratio=True)
    catalog_ratios = rounds("catalog", "rps", "gateway", "nginx", ratio=True)
    added = {proxy: rounds("raw", "p50_ms", proxy, "direct", ratio=False)
             for proxy in ("gateway", "nginx")}  # fmt: skip
    added_catalog = {proxy: rounds("catalog", "p50_ms", proxy, "direct", ratio=False)
                     for proxy in ("gateway", "nginx")}  # fmt: skip
    result: dict[str, Any] = {
        "benchmark": "gateway",
        "path": f"GET {PATH} with a Bearer access token",
        "connections": CONNECTIONS,
        "rounds": ROUNDS,
        "ratio": round(statistics.median(raw_ratios), 3),
        "added_p50_ms": round(statistics.median(added["gateway"]), 3),
        "nginx_added_p50_ms": round(statistics.median(added["nginx"]), 3),
        "catalog_ratio": round(statistics.median(catalog_ratios), 3),
        "catalog_added_p50_ms": round(statistics.median(added_catalog["gateway"]), 3),
        "catalog_nginx_added_p50_ms": round(statistics.median(added_catalog["nginx"]), 3),
        "round_ratios": [round(r, 3) for r in raw_ratios],
        "catalog_round_ratios": [round(r, 3) for r in catalog_ratios],
        "errors": refused,
        "gateway_traced": traced,
    }
    for backend in ("raw", "catalog"):
        for proxy in ("gateway", "nginx"):
            result[f"{backend}_{proxy}_rps"] = round(median(backend, proxy, "rps", load))
            result[f"{backend}_{proxy}_p99_ms"] = median(backend, proxy, "p99_ms", load)
        for proxy in ("gateway", "nginx", "direct"):
            result[f"{backend}_{proxy}_p50_ms_low_load"] = median(backend, proxy, "p50_ms", quiet)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
