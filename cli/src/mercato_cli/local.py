"""A whole platform run by `mercato up` as a child process: for system tests and tools.

    with LocalPlatform(tmp / "data", args=["--no-seed"]) as platform:
        httpx.get(f"{platform.base}/api/v1/products")
        platform.mercato("check", "--json")

`start()` returns once every instance answers ready (or raises, naming where the logs are);
`stop()` sends SIGTERM, as Ctrl-C would, and waits for the supervisor's orderly shutdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from chassis import InternalTokenCodec, Principal, free_port, terminate

__all__ = ["LocalPlatform"]

MERCATO = [sys.executable, "-m", "mercato_cli"]


class LocalPlatform:
    def __init__(
        self,
        data_dir: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        output: IO[Any] | int | None = subprocess.DEVNULL,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._args = list(args)
        self._env = dict(env) if env is not None else None
        self._output = output
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, *, instances: int = 8, timeout: float = 180) -> LocalPlatform:
        """Run `mercato up` and wait until `instances` instances are all ready."""
        self.process = subprocess.Popen(
            [*MERCATO, "--data-dir", str(self.data_dir), "up", "--port", str(self.port),
             "--ready-timeout", str(int(timeout) + 60), *self._args],
            stdout=self._output, stderr=subprocess.STDOUT, env=self._env,
        )  # fmt: skip
        try:
            self._wait_ready(self.process, instances, timeout)
        except BaseException:
            self.stop()  # nothing is left running behind a platform that did not start
            raise
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes], instances: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mercato up exited; logs in {self.data_dir / 'logs'}")
            rows = self.status()
            if len(rows) >= instances and all(row["ready"] for row in rows):
                return
            if time.monotonic() > deadline:
                waiting = [row["instance"] for row in rows if not row["ready"]]
                raise RuntimeError(
                    f"not ready after {timeout:.0f}s ({len(rows)} of {instances} instances; "
                    f"waiting for {waiting}); logs in {self.data_dir / 'logs'}"
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 90) -> None:
        process, self.process = self.process, None
        if process is not None:
            terminate(process, timeout=timeout)

    def __enter__(self) -> LocalPlatform:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- looking at it --------------------------------------------------------------------

    def mercato(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Another `mercato` command against this platform's data dir."""
        return subprocess.run([*MERCATO, "--data-dir", str(self.data_dir), *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env=self._env)  # fmt: skip

    def status(self) -> list[dict[str, Any]]:
        """`mercato status --json`: each instance with its url, pid and readiness."""
        rows: list[dict[str, Any]] = json.loads(self.mercato("status", "--json").stdout or "[]")
        return rows

    def state(self) -> dict[str, Any]:
        """The supervisor's state file (instances with pids and restarts, the broker url)."""
        state: dict[str, Any] = json.loads((self.data_dir / "run" / "state.json").read_text())
        return state

    def url_of(self, service: str) -> str:
        return str(next(row["url"] for row in self.status() if row["service"] == service))

    def secret(self, name: str) -> str:
        return (self.data_dir / "secrets" / name).read_text().strip()

    def internal(self, subject: str = "ops", *roles: str) -> dict[str, str]:
        """Headers with a signed internal identity (admin by default), as only the gateway
        makes them: for calling a service directly, as `mercato check` does."""
        secret = self.secret("internal_secret").encode()
        principal = Principal(subject, frozenset(roles or ("admin",)))
        return {"x-mercato-principal": InternalTokenCodec(secret).issue(principal)}
