"""Cold start of `mercato up` to all-ready, on a fresh data dir each run.

Prints one JSON line: {"benchmark": "coldstart", "runs": [...], "median_s": X, "target_s": 5,
"ratio": median/target}. A ratio below 1 meets the target. Not a test: timings are noisy.
"""

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chassis import free_port

RUNS = 3
TARGET_SECONDS = 5.0


def one_run() -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "mercato_cli", "--data-dir", str(Path(folder) / "data"), "up",
             "--no-seed", "--port", str(free_port())],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if line.startswith("Mercato is up"):
                    return time.perf_counter() - started
            raise RuntimeError("mercato up ended before it was ready")
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


def main() -> None:
    runs = [round(one_run(), 3) for _ in range(RUNS)]
    median = statistics.median(runs)
    print(
        json.dumps(
            {
                "benchmark": "coldstart",
                "runs_s": runs,
                "median_s": median,
                "target_s": TARGET_SECONDS,
                "ratio": round(median / TARGET_SECONDS, 3),
                "met": median <= TARGET_SECONDS,
            }
        )
    )


if __name__ == "__main__":
    main()
