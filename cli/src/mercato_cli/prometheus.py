"""Prometheus beside `mercato up` (`--with-prometheus`): its files under the data dir.

The configuration is the repository's deploy/prometheus/ (prometheus.yml and rules/), copied to
`<data>/prometheus/` at each start so the relative paths in it resolve there; the supervisor
writes the scrape targets to `<data>/prometheus/targets/mercato.json` (file_sd: Prometheus
picks changes up by itself) and keeps the TSDB in `<data>/prometheus/data`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from chassis import die_with_parent, free_port

CONFIG_VARIABLE = "MERCATO_PROMETHEUS_CONFIG"  # a folder with prometheus.yml and rules/
PREFERRED_PORT = 9090  # Prometheus's own default, when it is free
BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
REPOSITORY_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


@dataclass(frozen=True)
class Target:
    service: str
    instance_id: str
    port: int
    host: str = "127.0.0.1"


def find_config_dir(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    """deploy/prometheus/: from $MERCATO_PROMETHEUS_CONFIG, the repository this CLI runs from,
    or the current directory, whichever holds a prometheus.yml first."""
    environ = dict(os.environ) if environ is None else environ
    candidates = [
        Path(environ[CONFIG_VARIABLE]) if environ.get(CONFIG_VARIABLE) else None,
        REPOSITORY_CONFIG,
        (cwd or Path.cwd()) / "deploy" / "prometheus",
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "prometheus.yml").is_file():
            return candidate
    return None


def prepare(config_dir: Path, home: Path) -> Path:
    """Copy prometheus.yml and rules/ into `home` (fresh each start); the config's path."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "targets").mkdir(exist_ok=True)
    (home / "data").mkdir(exist_ok=True)
    config = home / "prometheus.yml"
    shutil.copyfile(config_dir / "prometheus.yml", config)
    rules = home / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    if (config_dir / "rules").is_dir():
        shutil.copytree(config_dir / "rules", rules)
    return config


def target_groups(targets: Iterable[Target]) -> list[dict[str, Any]]:
    """The file_sd document: one group per instance, labelled with its service and id."""
    return [
        {
            "targets": [f"{target.host}:{target.port}"],
            "labels": {"service": target.service, "instance_id": target.instance_id},
        }
        for target in sorted(targets, key=lambda t: (t.service, t.instance_id))
    ]


def write_targets(home: Path, targets: Iterable[Target]) -> bool:
    """Write `targets/mercato.json` atomically, when it changed; whether it did."""
    path = home / "targets" / "mercato.json"
    document = orjson.dumps(target_groups(targets), option=orjson.OPT_INDENT_2)
    try:
        if path.read_bytes() == document:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # A rename, so Prometheus never reads half a file.
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(document)
    temporary.replace(path)
    return True


def command(binary: str, config: Path, *, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={config.parent / 'data'}",
        "--storage.tsdb.retention.time=7d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",  # POST /-/reload after editing the copied rules
    ]


class EmbeddedPrometheus:
    """One Prometheus process, restarted with backoff if it dies, like a service instance."""

    def __init__(
        self,
        binary: str,
        config: Path,
        *,
        port: int,
        log_path: Path,
        say: Callable[[str], None],
        event: Callable[..., None],
    ) -> None:
        self.binary = binary
        self.config = config
        self.home = config.parent
        self.port = port
        self.log_path = log_path
        self.say = say
        self.event = event
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._backoff = BACKOFF_START
        self._started_at = 0.0
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def update_targets(self, targets: Iterable[Target]) -> None:
        if write_targets(self.home, targets):
            self.event("targets_written", target="prometheus")

    async def start(self) -> None:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *command(self.binary, self.config, port=self.port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._started_at = time.monotonic()
        self.event("started", target="prometheus", pid=self.process.pid, url=self.url)

    async def watch(
        self, stopping: asyncio.Event, restarted: Callable[[], None] = lambda: None
    ) -> None:
        while not stopping.is_set() and self.process is not None:
            code = await self.process.wait()
            if stopping.is_set():
                return
            if time.monotonic() - self._started_at > STABLE_AFTER:
                self._backoff = BACKOFF_START
            delay, self._backoff = self._backoff, min(self._backoff * 2, BACKOFF_MAX)
            self.say(f"prometheus exited (status {code}); restarting in {delay:.1f}s")
            self.event("exited", target="prometheus", code=code, restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                return
            self.restarts += 1
            await self.start()
            restarted()

    async def stop(self, grace: float) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            self.event("stopped", target="prometheus", code=process.returncode)
        if self._log is not None:
            self._log.close()
            self._log = None


def embedded_prometheus(
    home: Path,
    *,
    log_path: Path,
    taken_ports: set[int],
    say: Callable[[str], None],
    event: Callable[..., None],
) -> EmbeddedPrometheus | None:
    """A Prometheus ready to start, or None (after saying why) when it cannot run here."""
    binary = shutil.which("prometheus")
    if binary is None:
        say("prometheus is not installed (not on PATH): carrying on without it")
        return None
    config_dir = find_config_dir()
    if config_dir is None:
        say(f"no deploy/prometheus/ found (set {CONFIG_VARIABLE}): carrying on without Prometheus")
        return None
    config = prepare(config_dir, home)
    port = free_port(preferred=None if PREFERRED_PORT in taken_ports else PREFERRED_PORT)
    while port in taken_ports:
        port = free_port()
    return EmbeddedPrometheus(binary, config, port=port, log_path=log_path, say=say, event=event)
