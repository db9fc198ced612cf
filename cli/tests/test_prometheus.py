"""`mercato up --with-prometheus`: the files it prepares and the process it supervises."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from mercato_cli import prometheus
from mercato_cli.main import build_parser
from mercato_cli.prometheus import EmbeddedPrometheus, Target, embedded_prometheus


def test_the_up_command_takes_with_prometheus() -> None:
    parser = build_parser()
    assert parser.parse_args(["up", "--with-prometheus"]).with_prometheus is True
    assert parser.parse_args(["up"]).with_prometheus is False


def test_targets_are_one_group_per_instance_labelled_with_its_service(tmp_path: Path) -> None:
    targets = [Target("orders", "orders-1", 8004), Target("catalog", "catalog-2", 8101)]
    assert prometheus.write_targets(tmp_path, targets)
    written = orjson.loads((tmp_path / "targets" / "mercato.json").read_bytes())
    assert written == [
        {
            "targets": ["127.0.0.1:8101"],
            "labels": {"service": "catalog", "instance_id": "catalog-2"},
        },
        {"targets": ["127.0.0.1:8004"], "labels": {"service": "orders", "instance_id": "orders-1"}},
    ]
    assert not prometheus.write_targets(tmp_path, reversed(targets))  # same content: untouched

    moved = [Target("orders", "orders-1", 9004), Target("catalog", "catalog-2", 8101)]
    assert prometheus.write_targets(tmp_path, moved)
    written = orjson.loads((tmp_path / "targets" / "mercato.json").read_bytes())
    assert written[1]["targets"] == ["127.0.0.1:9004"]
    assert [p.name for p in (tmp_path / "targets").iterdir()] == ["mercato.json"]  # no leftovers


def test_the_repository_config_is_found_and_copied_with_its_rules(tmp_path: Path) -> None:
    found = prometheus.find_config_dir(environ={}, cwd=tmp_path)
    assert found == prometheus.REPOSITORY_CONFIG
    home = tmp_path / "data" / "prometheus"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "stale.yml").write_text("groups: []\n")

    config = prometheus.prepare(found, home)

    assert config.read_bytes() == (found / "prometheus.yml").read_bytes()
    copied = sorted(path.name for path in (home / "rules").iterdir())
    assert copied == sorted(path.name for path in (found / "rules").glob("*.yml"))
    assert "stale.yml" not in copied
    assert (home / "targets").is_dir() and (home / "data").is_dir()


def test_a_config_dir_named_in_the_environment_wins(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "prometheus.yml").write_text("global: {}\n")
    assert prometheus.find_config_dir(environ={prometheus.CONFIG_VARIABLE: str(mine)}) == mine


def test_no_config_anywhere_is_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(prometheus, "REPOSITORY_CONFIG", tmp_path / "nowhere")
    assert prometheus.find_config_dir(environ={}, cwd=tmp_path) is None


def test_without_prometheus_installed_up_says_so_once_and_carries_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no prometheus binary there
    said: list[str] = []
    made = embedded_prometheus(
        tmp_path / "prometheus",
        log_path=tmp_path / "prometheus.log",
        taken_ports=set(),
        say=said.append,
        event=lambda *args, **kwargs: None,
    )
    assert made is None
    assert said == ["prometheus is not installed (not on PATH): carrying on without it"]
    assert not (tmp_path / "prometheus").exists()


def test_the_port_avoids_the_platforms_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = fake_binary(tmp_path)
    monkeypatch.setenv("PATH", str(fake.parent))
    made = embedded_prometheus(
        tmp_path / "prometheus",
        log_path=tmp_path / "prometheus.log",
        taken_ports={prometheus.PREFERRED_PORT},
        say=lambda line: None,
        event=lambda *args, **kwargs: None,
    )
    assert made is not None
    assert made.port != prometheus.PREFERRED_PORT
    assert made.config == tmp_path / "prometheus" / "prometheus.yml"
    assert prometheus.command(made.binary, made.config, port=made.port)[1:] == [
        f"--config.file={made.config}",
        f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address=127.0.0.1:{made.port}",
        "--web.enable-lifecycle",
    ]


def fake_binary(folder: Path) -> Path:
    """A stand-in `prometheus` that notes its arguments and waits to be stopped."""
    binary = folder / "bin" / "prometheus"
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text(f'#!/bin/sh\necho "$@" >> {folder}/calls\nexec sleep 60\n')
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


async def calls_recorded(folder: Path, count: int) -> list[str]:
    async with asyncio.timeout(10):
        while True:
            calls = (
                (folder / "calls").read_text().splitlines() if (folder / "calls").exists() else []
            )
            if len(calls) >= count:
                return calls
            await asyncio.sleep(0.01)


async def test_the_process_is_restarted_when_it_dies_and_stopped_for_good(tmp_path: Path) -> None:
    binary = fake_binary(tmp_path)
    config = prometheus.prepare(prometheus.REPOSITORY_CONFIG, tmp_path / "home")
    events: list[tuple[str, dict[str, Any]]] = []
    said: list[str] = []
    running = EmbeddedPrometheus(
        str(binary),
        config,
        port=19999,
        log_path=tmp_path / "prometheus.log",
        say=said.append,
        event=lambda name, **fields: events.append((name, fields)),
    )
    stopping = asyncio.Event()
    restarted = asyncio.Event()
    await running.start()
    first = running.pid
    watcher = asyncio.create_task(running.watch(stopping, restarted=restarted.set))
    try:
        await calls_recorded(tmp_path, 1)  # it has started for real
        assert running.process is not None
        running.process.kill()  # as `kill -9` would
        await asyncio.wait_for(restarted.wait(), 10)
        assert running.pid not in (None, first)
        assert running.restarts == 1
        assert said == ["prometheus exited (status -9); restarting in 0.5s"]
        calls = await calls_recorded(tmp_path, 2)
        assert calls[0] == calls[1]
        assert "--web.listen-address=127.0.0.1:19999" in calls[0]
    finally:
        stopping.set()
        await running.stop(grace=5)
        await asyncio.wait_for(watcher, 5)
    assert running.process is not None and running.process.returncode is not None
    assert [name for name, _ in events] == ["started", "exited", "started", "stopped"]
