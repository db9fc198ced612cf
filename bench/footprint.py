"""Footprint of `mercato up`: cold start to all-ready, and resident memory per instance.

Cold start: `mercato up` on a fresh data dir, from launch to its "Mercato is up" line (every
service instance answering /readyz), RUNS times, the median reported (as bench/coldstart.py).
Memory: on the last run, VmRSS from /proc/<pid>/status of every process of the platform
once it is ready and the demo catalog is seeded, then again after a short shopper load
(`mercato_cli.load`, the default mix); the larger of the two counts. RSS counts shared pages
(the interpreter, libraries) in every process, so the total is also given as PSS from
/proc/<pid>/smaps_rollup, which splits shared pages between the processes that map them.

One JSON line: {"benchmark": "footprint", "max_rss_mb", "rss_mb" per instance,
"services_rss_mb", "total_pss_mb", "coldstart_s", "coldstart_runs_s", ...}.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from chassis import free_port
from mercato_cli.load import LoadConfig, run_load

RUNS = 3
LOAD_RATE = 20.0
LOAD_SECONDS = 10.0
TARGET_RSS_MB = 100.0
TARGET_COLDSTART_S = 5.0


def kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def memory(data_dir: Path) -> dict[str, dict[str, float]]:
    """{process name: {"rss_mb", "pss_mb"}} of every process of the platform."""
    state = orjson.loads((data_dir / "run" / "state.json").read_bytes())
    named = {"supervisor": state["supervisor_pid"], "nats": state.get("nats_pid", 0)}
    named.update({i["instance"]: i["pid"] for i in state["instances"]})
    out = {}
    for name, pid in named.items():
        if not pid:
            continue
        try:
            rss = kib(Path(f"/proc/{pid}/status"), "VmRSS")
            pss = kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss")
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[name] = {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}
    return out


def launch(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mercato_cli", "--data-dir", str(data_dir), "up",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("Mercato is up"):
            return process, time.perf_counter() - started
    raise RuntimeError("mercato up ended before it was ready")


def wait_seeded(process: subprocess.Popen[str], timeout: float = 60) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith("Press Ctrl-C") or time.monotonic() > deadline:
            return


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def main() -> None:
    runs: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for run in range(RUNS):
            data_dir = Path(folder) / f"data-{run}"
            port = free_port()
            process, seconds = launch(data_dir, port)
            runs.append(round(seconds, 3))
            if run < RUNS - 1:
                stop(process)
                continue
            try:
                wait_seeded(process)
                time.sleep(2)  # let start-up work (first relay polls, caches) finish
                at_ready = memory(data_dir)
                config = LoadConfig(
                    base_url=f"http://127.0.0.1:{port}", rate=LOAD_RATE, duration=LOAD_SECONDS,
                    users=20, seed=3,
                )  # fmt: skip
                load = asyncio.run(run_load(config))
                after_load = memory(data_dir)
            finally:
                stop(process)
    services = {n: v for n, v in after_load.items() if n not in ("supervisor", "nats")}
    rss = {
        name: max(after_load[name]["rss_mb"], at_ready.get(name, {"rss_mb": 0.0})["rss_mb"])
        for name in after_load
    }
    largest = max(services, key=lambda name: rss[name])
    coldstart = statistics.median(runs)
    print(
        json.dumps(
            {
                "benchmark": "footprint",
                "max_rss_mb": rss[largest],
                "largest": largest,
                "ratio": round(rss[largest] / TARGET_RSS_MB, 3),
                "rss_mb": rss,
                "rss_mb_at_ready": {n: v["rss_mb"] for n, v in at_ready.items()},
                "services_rss_mb": round(sum(rss[n] for n in services), 1),
                "total_rss_mb": round(sum(rss.values()), 1),
                "total_pss_mb": round(sum(v["pss_mb"] for v in after_load.values()), 1),
                "instances": len(services),
                "coldstart_s": coldstart,
                "coldstart_runs_s": runs,
                "coldstart_ratio": round(coldstart / TARGET_COLDSTART_S, 3),
                "load": {
                    "rate_per_s": LOAD_RATE,
                    "seconds": LOAD_SECONDS,
                    "arrivals": load["arrivals"],
                    "confirmed": load["orders"]["confirmed"],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
