"""Where the time goes in a checkout: py-spy on every process of `mercato up` under load.

Not a benchmark (`mercato bench` does not run it) and not a dependency: py-spy is found on
PATH or in $PY_SPY, e.g. installed outside the repository with
`pip install --target /tmp/pyspy py-spy` and `PY_SPY=/tmp/pyspy/bin/py-spy`.

Starts `mercato up`, offers checkouts only (tok_visa, the open model of `mercato load`) at
RATE/s for SECONDS, while `py-spy record --format raw` samples each service instance at
100 Hz (blocking mode, so idle threads are told apart and left out). Prints, per service,
its CPU-seconds per placed order (from /proc/<pid>/stat) and its hottest frames, by self
time and inclusive, in % of its busy samples. Collapsed stacks are kept in OUT
(default /tmp/mercato-profile) for flame graphs.

Usage: python bench/profile_checkout.py [rate/s] [seconds] [out dir]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from chassis import free_port
from mercato_cli.load import LoadConfig, run_load

RATE = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
OUT = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/mercato-profile")  # noqa: S108
# Leaf frames of threads that wait rather than work. py-spy in a container cannot always
# tell an idle thread from a busy one, so waits are left out by name: aiosqlite's worker
# thread on its queue, thread-pool workers, OpenTelemetry's batch exporter, and uvloop's
# run loop (C: epoll and callback dispatch, where Python code shows up as frames above), and
# threads that run only C code (gRPC's server poller).
IDLE = (
    "(aiosqlite/core.py:59)", "_worker (concurrent/futures/thread.py:81)",
    "Thread.run (threading.py:982)",
    "Condition.wait (threading.py", "Runner.run (asyncio/runners.py", "select (selectors.py",
    "_run_once (asyncio/base_events.py",
)  # fmt: skip
TOP = 12


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Self time by layer: the leaf frame's module says which layer was running.
LAYERS = (
    ("sqlite (aiosqlite thread + C)", ("aiosqlite/", "sqlite3/")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("HTTP server (uvicorn, Starlette, FastAPI)", ("uvicorn/", "starlette/", "fastapi/", "h11/")),
    ("validation (pydantic)", ("pydantic", "annotated_types")),
    ("tracing, logs, metrics", ("opentelemetry", "trace/", "structlog/", "prometheus_client/",
                                "logging/", "chassis/tracing", "chassis/_logging")),
    ("messaging (nats-py, chassis.messaging)", ("nats/", "chassis/messaging")),
    ("HTTP client (aiohttp)", ("aiohttp/", "yarl/", "multidict/")),
    ("password hashing (argon2)", ("argon2/",)),
    ("asyncio", ("asyncio/", "selectors.py", "uvloop")),
    ("chassis (other)", ("chassis/",)),
)  # fmt: skip


def layer(frame: str) -> str:
    where = frame[frame.rfind("(") + 1 :]
    for name, markers in LAYERS:
        if any(marker in where for marker in markers):
            return name
    return "service code and the rest"


def frames(stacks: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Samples, self counts and inclusive counts per frame of collapsed stacks, idle left out."""
    total, own, inclusive = 0, Counter[str](), Counter[str]()
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = [part for part in stack.split(";") if part]
        if not parts or not count.isdigit() or any(idle in parts[-1] for idle in IDLE):
            continue
        n = int(count)
        total += n
        own[parts[-1]] += n
        for part in set(parts[1:]):  # the first frame is the process/thread
            inclusive[part] += n
    return total, own, inclusive


async def load(base: str, pids: dict[str, int], spy: str) -> dict[str, object]:
    """Checkouts at RATE/s; CPU counters read and py-spy run around the measured window only
    (not while the shopper pool is registered, which is argon2 work in identity)."""
    config = LoadConfig(
        base_url=base, rate=RATE, duration=SECONDS, users=40, mix={"checkout": 1},
        payments={"tok_visa": 1}, poll_orders=False, seed=11,
    )  # fmt: skip
    spies: list[subprocess.Popen[bytes]] = []

    def window(edge: str) -> None:
        CPU[edge] = {name: cpu(pid) for name, pid in pids.items()}
        if edge == "start":
            for name, pid in pids.items():
                spies.append(subprocess.Popen(
                    [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                     "--output", str(OUT / f"{name}.txt"), "--duration", str(int(SECONDS + 120))],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            time.sleep(0.5)
        else:
            for process in spies:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            for process in spies:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()

    return await run_load(config, on_window=window)


CPU: dict[str, dict[str, float]] = {}


def main() -> None:
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not spy:
        raise SystemExit("py-spy not found: set PY_SPY or put it on PATH (see the docstring)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        port = free_port()
        env = {**os.environ, "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
               "GATEWAY_RATE_LIMIT_BURST": "1000000", "INVENTORY_INITIAL_STOCK": "1000000"}  # fmt: skip
        platform = subprocess.Popen(
            [sys.executable, "-m", "mercato_cli", "--data-dir", str(data_dir), "up", "--port",
             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        assert platform.stdout is not None
        try:
            for line in platform.stdout:
                if line.startswith("Press Ctrl-C"):
                    break
            state = orjson.loads((data_dir / "run" / "state.json").read_bytes())
            pids = {i["service"]: i["pid"] for i in state["instances"]}
            report = asyncio.run(load(f"http://127.0.0.1:{port}", pids, spy))
        finally:
            platform.send_signal(signal.SIGTERM)
            platform.communicate(timeout=90)
    before, after = CPU["start"], CPU["end"]
    orders = report["orders"]
    assert isinstance(orders, dict)
    placed = max(1, int(orders["placed"]))
    print(f"{RATE}/s for {SECONDS}s: {orders['placed']} orders placed, {orders['statuses']}; "
          f"time to CONFIRMED p50 {orders['to_confirmed_p50_ms']} ms, "
          f"p99 {orders['to_confirmed_p99_ms']} ms")  # fmt: skip
    print(f"place_order: {orjson.dumps(report['operations']).decode()}")  # type: ignore[index]
    costs = {name: (after[name] - before[name]) / placed for name in pids}
    print(f"\nCPU ms per placed order: total {sum(costs.values()) * 1000:.1f}")
    for name, seconds in sorted(costs.items(), key=lambda item: -item[1]):
        print(f"  {name:<14}{seconds * 1000:8.1f}")
    for name in sorted(pids, key=lambda n: -costs[n]):
        stacks = OUT / f"{name}.txt"
        if not stacks.exists():
            continue
        total, own, inclusive = frames(stacks)
        if not total:
            continue
        print(f"\n== {name}: {total} busy samples")
        layers: Counter[str] = Counter()
        for frame, n in own.items():
            layers[layer(frame)] += n
        print("  by layer (self):")
        for what, n in layers.most_common():
            print(f"    {100 * n / total:5.1f}%  {what}")
        print("  self:")
        for frame, n in own.most_common(TOP):
            print(f"    {100 * n / total:5.1f}%  {frame}")
        print("  inclusive:")
        for frame, n in inclusive.most_common(TOP + 8):
            print(f"    {100 * n / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
