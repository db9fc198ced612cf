"""Requests/s of a trivial endpoint: a bare FastAPI app vs the same endpoint through
`create_app` with tracing (every request sampled, spans written to files), Prometheus
metrics and JSON request logs on.

Both are served by uvicorn (uvloop, httptools) pinned to core 0, wrk on core 1, alternating
rounds in the same run; one JSON line: {"benchmark": "chassis", "bare_rps", "chassis_rps",
"ratio", ...}. Target: ratio ≥ 0.8.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from _wrk import start, wait_ready, wrk

from chassis import free_port

DURATION = "6s"
ROUNDS = 3


def serve(factory: str, port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        "MERCATO_DATA_DIR": str(data),
        "MERCATO_TRACE_DIR": str(data / "traces"),
        "MERCATO_TRACE_SAMPLE_RATIO": "1.0",
        "PYTHONPATH": str(Path(__file__).parent),
    }
    args = ("--factory", f"_hello:{factory}", "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning")  # fmt: skip
    process = start("uvicorn", env, log, args=args)
    wait_ready(f"http://127.0.0.1:{port}")
    return process


def main() -> None:
    if shutil.which("wrk") is None:
        print(json.dumps({"benchmark": "chassis", "skipped": "wrk is not installed"}))
        return
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        ports = {"bare": free_port(), "chassis": free_port()}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        processes = []
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "chassis": []}
        try:
            for name, port in ports.items():
                processes.append(serve(name, port, data, data / f"{name}.log"))
            for _ in range(ROUNDS):
                for name, url in urls.items():
                    wrk(f"{url}/hello", connections=16, duration="1s")  # warm up
                    runs[name].append(wrk(f"{url}/hello", connections=64, duration=DURATION))
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=30)
        spans = sum(1 for path in (data / "traces").glob("*.jsonl") for _ in path.open("rb"))
    bare = max(run["rps"] for run in runs["bare"])
    chassis = max(run["rps"] for run in runs["chassis"])
    print(
        json.dumps(
            {
                "benchmark": "chassis",
                "endpoint": "GET /hello",
                "connections": 64,
                "bare_rps": round(bare),
                "chassis_rps": round(chassis),
                "ratio": round(chassis / bare, 3),
                "target": 0.8,
                "bare_p99_ms": min(run["p99_ms"] for run in runs["bare"]),
                "chassis_p99_ms": min(run["p99_ms"] for run in runs["chassis"]),
                "spans_written": spans,
                "errors": sum(run["errors"] for run in runs["bare"] + runs["chassis"]),
            }
        )
    )


if __name__ == "__main__":
    main()
