"""`mercato logs`: the merged logs of every process, one readable line per record."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
_COLOURS = (36, 33, 35, 32, 34, 91, 96, 93, 95, 92)
_SKIP = frozenset({"time", "level", "event", "service", "instance"})


@dataclass(frozen=True)
class LogFilter:
    services: frozenset[str] = frozenset()
    min_level: int = 0
    trace_id: str | None = None
    since: str | None = None  # ISO-8601 UTC; records at or after it

    def accepts(self, record: dict[str, Any]) -> bool:
        if self.services and record.get("service") not in self.services:
            return False
        level = LEVELS.get(str(record.get("level", "info")).lower(), 20)
        if level < self.min_level:
            return False
        if self.trace_id and record.get("trace_id") != self.trace_id:
            return False
        return not (self.since and str(record.get("time", "")) < self.since)


def parse(line: bytes, source: str) -> dict[str, Any]:
    """A log record from one line; a line that is not JSON becomes a plain record."""
    try:
        record = orjson.loads(line)
        if isinstance(record, dict):
            return record
    except orjson.JSONDecodeError:
        pass
    return {"event": line.decode("utf-8", "replace").rstrip(), "service": source, "level": "info"}


def _source(path: Path) -> str:
    return path.stem.rsplit("-", 1)[0] if path.stem[-1:].isdigit() else path.stem


def read_all(folder: Path) -> list[dict[str, Any]]:
    """Every record of every log file, merged in time order."""
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.log")):
        with path.open("rb") as handle:
            records.extend(parse(line, _source(path)) for line in handle if line.strip())
    records.sort(key=lambda r: str(r.get("time", "")))
    return records


@dataclass
class Follower:
    """Yields records appended to the log files after it started (new files included)."""

    folder: Path
    handles: dict[Path, IO[bytes]] = field(default_factory=dict)

    def start_at_end(self) -> None:
        for path in self.folder.glob("*.log"):
            handle = path.open("rb")
            handle.seek(0, 2)
            self.handles[path] = handle

    def poll(self) -> list[dict[str, Any]]:
        for path in self.folder.glob("*.log"):
            if path not in self.handles:
                self.handles[path] = path.open("rb")
        fresh: list[dict[str, Any]] = []
        for path, handle in self.handles.items():
            fresh.extend(parse(line, _source(path)) for line in handle.readlines() if line.strip())
        fresh.sort(key=lambda r: str(r.get("time", "")))
        return fresh

    def follow(self, interval: float = 0.25) -> Iterator[dict[str, Any]]:
        while True:
            yield from self.poll()
            time.sleep(interval)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def render(record: dict[str, Any], *, colour: bool, palette: dict[str, int]) -> str:
    service = str(record.get("service", "?"))
    who = str(record.get("instance", service))
    stamp = str(record.get("time", ""))[11:23]
    level = str(record.get("level", "info")).upper()
    extras = " ".join(f"{key}={_short(value)}" for key, value in record.items() if key not in _SKIP)
    text = f"{stamp} {who:<14} {level:<7} {record.get('event', '')}"
    if extras:
        text += f"  {extras}"
    if colour:
        code = palette.setdefault(service, _COLOURS[len(palette) % len(_COLOURS)])
        text = f"\x1b[{code}m{text}\x1b[0m"
    return text


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 200 or "\n" in text else text[:200] + "…"


def select(records: Iterable[dict[str, Any]], rule: LogFilter) -> Iterator[dict[str, Any]]:
    return (record for record in records if rule.accepts(record))
