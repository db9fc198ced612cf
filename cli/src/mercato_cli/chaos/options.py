"""The `mercato chaos` command line (kept light: `mercato --help` imports it)."""

from __future__ import annotations

import argparse

FAULT_KINDS = ("kill", "pause", "broker", "psp", "partition", "latency")


def fault_list(value: str) -> tuple[str, ...]:
    kinds = tuple(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in FAULT_KINDS and k != "none"]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {', '.join(unknown)} (known: {', '.join(FAULT_KINDS)})"
        )
    return tuple(k for k in kinds if k != "none")


def add_chaos_arguments(chaos: argparse.ArgumentParser) -> None:
    chaos.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="seconds of workload (default 120): calm, faults, then calm again",
    )
    chaos.add_argument(
        "--rate", type=float, default=8.0, help="client operations per second, at most (default 8)"
    )
    chaos.add_argument(
        "--faults",
        type=fault_list,
        default=FAULT_KINDS,
        help=f"comma-separated fault kinds (default all: {','.join(FAULT_KINDS)};"
        " 'none' for a calm run)",
    )
    chaos.add_argument(
        "--fault-rate",
        type=float,
        default=4.0,
        help="injections per minute of the fault window, per kind (default 4)",
    )
    chaos.add_argument("--seed", type=int, help="seed of the workload and the nemesis schedule")
    chaos.add_argument("--shoppers", type=int, default=16, help="concurrent shoppers (default 16)")
    chaos.add_argument(
        "--fresh",
        action="store_true",
        help="start a platform of its own in a temporary data dir (with the fault "
        "proxy) and stop it afterwards",
    )
    chaos.add_argument(
        "--replicas",
        default="inventory=2,payments=2",
        help="with --fresh: instances per service (default inventory=2,payments=2)",
    )
    chaos.add_argument(
        "--keep",
        action="store_true",
        help="with --fresh: keep the temporary data dir (logs) afterwards",
    )
    chaos.add_argument(
        "--settle-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for quiescence after healing (default 180)",
    )
    chaos.add_argument(
        "--json", action="store_true", help="print the report as one JSON object on the last line"
    )
