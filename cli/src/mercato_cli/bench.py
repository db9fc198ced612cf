"""`mercato bench`: run the benchmark scripts of a source checkout, then the targets table.

The scripts live in the repository's `bench/` folder (not in the installed package): each
prints one JSON line `{"benchmark": NAME, ..., "ratio": X}` with its raw figures, measured
side by side with what it is compared to, alternating, in the same run. This module is the
one place that knows the performance targets; `docs/performance.md` quotes the table it
prints.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# name → script in bench/, in the order `mercato bench` runs them.
BENCHMARKS: dict[str, str] = {
    "gateway": "gateway.py",
    "chassis": "chassis_overhead.py",
    "events": "events.py",
    "checkout": "checkout.py",
    "tax": "tax.py",
    "footprint": "footprint.py",
}
# Runnable by name, not part of the default run (footprint measures cold start too).
EXTRA_BENCHMARKS: dict[str, str] = {"coldstart": "coldstart.py"}
SCRIPT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Target:
    benchmark: str
    key: str  # the figure in the benchmark's JSON line
    figure: str
    target: float
    higher_is_better: bool
    unit: str = ""
    baseline: str = "—"

    def met(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target

    @property
    def goal(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {_number(self.target)}{self.unit}"


TARGETS: tuple[Target, ...] = (
    Target(
        "gateway", "ratio", "gateway req/s ÷ nginx proxy req/s (same backend, same cores)",
        0.35, True, baseline="naive aiohttp proxy: 0.21-0.29",
    ),
    Target(
        "gateway", "added_p50_ms", "latency added per gateway hop at low load (p50)",
        0.25, False, " ms", baseline="naive proxy +0.23 ms; nginx +0.07 ms",
    ),
    Target("chassis", "ratio", "chassis endpoint req/s ÷ bare FastAPI", 0.80, True),
    Target(
        "events", "ratio", "outbox relay rate ÷ raw JetStream publish rate", 0.6, True,
        baseline="raw ≈ 30-35k msg/s with ≥100 in flight",
    ),
    Target("tax", "ratio", "microservices orders/s ÷ monolith orders/s", 0.5, True),
    Target(
        "checkout", "place_p99_ms", "p99 place-order latency at 50% of peak rate", 50, False,
        " ms",
    ),
    Target(
        "checkout", "to_confirmed_p99_ms", "p99 time-to-CONFIRMED at 50% of peak rate", 250,
        False, " ms",
    ),
    Target("footprint", "max_rss_mb", "RSS per service instance (largest)", 100, False, " MB"),
    Target(
        "footprint", "coldstart_s", "cold start to all-ready (`mercato up`, all services)", 5,
        False, " s",
    ),
)  # fmt: skip


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 or value == 0 else f"{value:.2f}".rstrip("0")


# -- results --------------------------------------------------------------------------------


def parse_results(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The benchmarks' JSON lines by name; other lines are ignored, a later line wins.

    A `coldstart` line stands in for footprint's cold start when footprint did not run."""
    results: dict[str, dict[str, Any]] = {}
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict) and isinstance(document.get("benchmark"), str):
            results[document["benchmark"]] = document
    cold = results.get("coldstart")
    if cold is not None and "median_s" in cold:
        footprint = results.setdefault("footprint", {"benchmark": "footprint"})
        footprint.setdefault("coldstart_s", cold["median_s"])
    return results


@dataclass(frozen=True)
class Row:
    target: Target
    value: float | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        return "met" if self.target.met(self.value) else "MISSED"


def evaluate(results: dict[str, dict[str, Any]]) -> list[Row]:
    rows = []
    for target in TARGETS:
        document = results.get(target.benchmark)
        if document is None:
            rows.append(Row(target, None, "did not run"))
            continue
        if "skipped" in document:
            rows.append(Row(target, None, f"skipped: {document['skipped']}"))
            continue
        value = document.get(target.key)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            rows.append(Row(target, None, f"no {target.key} in its line"))
            continue
        rows.append(Row(target, float(value)))
    return rows


def render_table(rows: list[Row]) -> str:
    header = ("figure", "baseline", "target", "measured", "")
    table = [header] + [
        (
            row.target.figure,
            row.target.baseline,
            row.target.goal,
            "—" if row.value is None else f"{_number(row.value)}{row.target.unit}",
            row.verdict + (f" ({row.note})" if row.note else ""),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    out = []
    for index, line in enumerate(table):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        out.append("| " + " | ".join(cells) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    met = sum(row.verdict == "met" for row in rows)
    missed = sum(row.verdict == "MISSED" for row in rows)
    out.append(f"{met} met, {missed} missed, {len(rows) - met - missed} not measured")
    return "\n".join(out)


# -- running --------------------------------------------------------------------------------


class BenchFolderMissingError(LookupError):
    pass


def find_bench_dir(explicit: str | None = None) -> Path:
    """`bench/` of the source checkout: given, `$MERCATO_BENCH_DIR`, above the working
    directory, or beside this package's source (an editable install)."""
    candidates: list[Path] = []
    if explicit or os.environ.get("MERCATO_BENCH_DIR"):
        candidates.append(Path(explicit or os.environ["MERCATO_BENCH_DIR"]))
    else:
        here = Path.cwd().resolve()
        candidates += [folder / "bench" for folder in (here, *here.parents)]
        candidates += [folder / "bench" for folder in Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / "_wrk.py").is_file() or (candidate / "checkout.py").is_file():
            return candidate
    raise BenchFolderMissingError(
        "no bench/ folder found: the benchmarks are scripts in Mercato's source checkout, not "
        "in the installed package; run `mercato bench` inside the checkout, or pass "
        "--bench-dir (or set MERCATO_BENCH_DIR)"
    )


def run_benchmarks(
    bench_dir: Path, names: list[str], *, echo: bool = True, timeout: float = SCRIPT_TIMEOUT
) -> tuple[list[str], list[str]]:
    """Run each named script; (every JSON line printed, names that failed)."""
    scripts = {**BENCHMARKS, **EXTRA_BENCHMARKS}
    lines: list[str] = []
    failed: list[str] = []
    for name in names:
        script = bench_dir / scripts[name]
        if not script.is_file():
            lines.append(orjson.dumps({"benchmark": name, "skipped": f"no {script}"}).decode())
            if echo:
                print(f"{name}: skipped (no {script.name} yet)", file=sys.stderr, flush=True)
            continue
        if echo:
            print(f"{name}: running {script.name} …", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, str(script)], cwd=bench_dir.parent, stdout=subprocess.PIPE,
                text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            failed.append(name)
            if echo:
                print(f"{name}: timed out after {timeout:.0f}s", file=sys.stderr, flush=True)
            continue
        found = [line for line in done.stdout.splitlines() if line.strip().startswith("{")]
        lines.extend(found)
        if echo:
            for line in found:
                print(line, flush=True)
            print(f"{name}: {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
        if done.returncode != 0 or not found:
            failed.append(name)
    return lines, failed


# -- the command ------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    known = {**BENCHMARKS, **EXTRA_BENCHMARKS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(known)})",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.results:
        lines = Path(args.results).read_text().splitlines()
        print(render_table(evaluate(parse_results(lines))))
        return 0
    try:
        bench_dir = find_bench_dir(args.bench_dir)
    except BenchFolderMissingError as error:
        print(f"mercato bench: {error}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    lines, failed = run_benchmarks(bench_dir, args.names or list(BENCHMARKS))
    print()
    print(render_table(evaluate(parse_results(lines))))
    # Figures are ratios from side-by-side runs; how busy the machine was says how far to
    # trust the absolute ones.
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    if failed:
        print(f"failed: {', '.join(failed)} (see the output above)", file=sys.stderr)
        return 1
    return 0
