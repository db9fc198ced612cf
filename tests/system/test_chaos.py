"""`mercato chaos --fresh`: a 60 s run with every fault kind, on a platform of its own.

docs/chaos.md says what each fault does and what is checked; the run must end with no
violation of any invariant, every fault kind injected, and the platform quiescent.
"""

import json
import subprocess
import sys

import pytest

from mercato_cli.chaos.options import FAULT_KINDS

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_a_minute_of_every_fault_kind_breaks_no_invariant() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mercato_cli", "chaos", "--fresh", "--duration", "60",
         "--rate", "6", "--seed", "1234", "--json"],
        capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[-1])
    summary = {k: v for k, v in report.items() if k != "fault_log"}
    assert report["violations"] == {}, summary
    assert result.returncode == 0, result.stderr[-3000:]
    assert report["quiescent"], summary
    assert set(report["faults"]) == set(FAULT_KINDS)
    assert all(count >= 2 for count in report["faults"].values()), summary  # 3 planned each
    assert report["faults_skipped"] == {}
    assert report["operations"]["ok"] > 100, summary
    orders = report["operations_by_kind"]["order"]
    assert orders["ok"] >= 20, summary
    assert report["orders_checked"] >= 20, summary
    assert report["duplicates"]["applied"] == 0
    for phase in ("before", "during", "after"):
        assert report["latency"][phase]["count"] > 0, summary
