"""`mercato up` the way a user runs it: a real platform of OS processes on a temp data dir."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chassis import free_port

pytestmark = [pytest.mark.system, pytest.mark.slow]

MERCATO = [sys.executable, "-m", "mercato_cli"]


def mercato(data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MERCATO, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def status(data_dir: Path) -> list[dict[str, Any]]:
    result = mercato(data_dir, "status", "--json")
    rows: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return rows


def wait_until(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; reaping is its parent's business.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [*MERCATO, "--data-dir", str(data_dir), "up", "--replicas", "catalog=2",
         "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        yield data_dir, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_up_status_serve_heal_and_stop_cleanly(
    platform: tuple[Path, subprocess.Popen[str]],
) -> None:
    data_dir, supervisor = platform

    everything = wait_until(
        lambda: (r := status(data_dir)) and len(r) >= 9 and all(i["ready"] for i in r) and r,
        timeout=60,
        what="every instance ready (catalog twice)",
    )
    assert {tuple(sorted(r)) for r in everything} == {
        ("instance", "pid", "ready", "service", "url")
    }
    rows = [r for r in everything if r["service"] == "catalog"]
    assert sorted(r["instance"] for r in rows) == ["catalog-1", "catalog-2"]
    assert len({r["url"] for r in rows}) == 2
    state = json.loads((data_dir / "run" / "state.json").read_text())
    nats_pid = state["nats_pid"]
    assert alive(nats_pid)

    # Seeded demo catalog, served by both instances from the one catalog database.
    def seeded() -> bool:
        return all(
            len(httpx.get(f"{r['url']}/api/v1/products", params={"limit": 100}).json()["items"])
            >= 50
            for r in rows
        )

    wait_until(seeded, timeout=30, what="the demo catalog")
    first = httpx.get(f"{rows[0]['url']}/api/v1/products", params={"limit": 1}).json()["items"][0]
    again = httpx.get(f"{rows[1]['url']}/api/v1/products/{first['id']}")
    assert again.status_code == 200
    assert again.json()["sku"] == first["sku"]
    bad = httpx.get(f"{rows[0]['url']}/api/v1/products", params={"limit": 1_000_000})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"

    # SIGKILL one instance: the supervisor notices and starts it again on the same URL.
    victim = rows[1]
    os.kill(victim["pid"], signal.SIGKILL)
    healed = wait_until(
        lambda: next(
            (r for r in status(data_dir)
             if r["instance"] == victim["instance"] and r["pid"] != victim["pid"] and r["ready"]),
            None,
        ),
        timeout=30,
        what="the killed instance to come back",
    )  # fmt: skip
    assert healed["url"] == victim["url"]
    assert httpx.get(f"{healed['url']}/api/v1/products/{first['id']}").status_code == 200

    # SIGTERM stops everything; no child is left behind.
    # Through the gateway, discovered in the registry:
    gateway = next(r for r in everything if r["service"] == "gateway")
    routed = httpx.get(f"{gateway['url']}/api/v1/products/{first['id']}")
    assert routed.status_code == 200
    assert routed.json()["sku"] == first["sku"]
    services = mercato(data_dir, "services").stdout
    assert "catalog-1" in services and "catalog-2" in services and "gateway-1" in services

    children = [r["pid"] for r in status(data_dir)] + [nats_pid]
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, output
    assert "Mercato is up" in output
    assert "catalog-2 exited (signal 9); restarting" in output
    assert [pid for pid in children if alive(pid)] == []
    assert mercato(data_dir, "status", "--json").stdout.strip() == "[]"

    # The merged logs tell the story, one line per record.
    logs = mercato(data_dir, "logs", "--service", "supervisor", "-n", "0").stdout
    assert "exited" in logs
    assert "stopped" in logs


def test_a_second_platform_on_the_same_data_dir_is_refused(
    platform: tuple[Path, subprocess.Popen[str]],
) -> None:
    data_dir, _ = platform
    wait_until(lambda: status(data_dir), timeout=60, what="the platform")
    second = mercato(data_dir, "up", "--no-seed", timeout=30)
    assert second.returncode == 1
    assert "already running" in second.stderr


def test_a_bad_setting_stops_a_service_with_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "MERCATO_DATA_DIR": str(tmp_path), "CATALOG_PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "catalog"], env=env, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "catalog: invalid setting CATALOG_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]
