"""The data dir: where a running platform keeps its databases, logs, state and secrets."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DEFAULT_DATA_DIR = ".mercato"


def resolve_data_dir(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("MERCATO_DATA_DIR") or DEFAULT_DATA_DIR).resolve()


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def traces(self) -> Path:
        return self.root / "traces"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.run / "supervisor.lock"

    @property
    def nats_store(self) -> Path:
        return self.root / "nats"

    def create(self) -> None:
        for folder in (self.root, self.logs, self.run, self.root / "secrets"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.root / "secrets").chmod(0o700)

    def secret(self, name: str) -> str:
        """A random secret kept in the data dir (made on first use, readable by owner only)."""
        path = self.root / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def write_state(self, state: dict[str, Any]) -> None:
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
        temporary.replace(self.state_file)

    def read_state(self) -> dict[str, Any] | None:
        """The running platform's state, or None when no live supervisor owns this dir."""
        try:
            state: dict[str, Any] = orjson.loads(self.state_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        if not pid_alive(int(state.get("supervisor_pid", 0))):
            return None
        return state

    def clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
