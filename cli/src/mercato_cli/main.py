"""The `mercato` command: run, inspect and operate a Mercato platform."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

import orjson

from mercato_cli import logs as logview
from mercato_cli.datadir import DataDir, resolve_data_dir
from mercato_cli.topology import SERVICES, SERVICES_BY_NAME


def _replicas(values: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        for item in value.split(","):
            name, _, number = item.partition("=")
            if name not in SERVICES_BY_NAME:
                known = ", ".join(SERVICES_BY_NAME)
                raise argparse.ArgumentTypeError(f"unknown service {name!r} (known: {known})")
            if not number.isdigit() or not 1 <= int(number) <= 16:
                raise argparse.ArgumentTypeError(f"replicas for {name} must be 1..16")
            counts[name] = int(number)
    return counts


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mercato", description=__doc__)
    parser.add_argument(
        "--data-dir", help="platform data dir (default $MERCATO_DATA_DIR or .mercato/)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the whole platform here (embedded default)")
    up.add_argument("--port", type=_port, help="gateway port (default $MERCATO_PORT or 8080)")
    up.add_argument(
        "--replicas", action="append", default=[], metavar="NAME=N",
        help="run N instances of a service (repeatable, or comma-separated)",
    )  # fmt: skip
    up.add_argument("--no-seed", action="store_true", help="do not load the demo catalog")
    up.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for ready")
    up.add_argument(
        "--with-prometheus", action="store_true",
        help="also run Prometheus (when installed) scraping every instance, with the alert rules",
    )  # fmt: skip
    up.add_argument(
        "--fault-proxy", action="store_true",
        default=os.environ.get("MERCATO_FAULT_PROXY", "") not in ("", "0"),
        help="services reach the broker through a fault proxy `mercato chaos` can slow or cut "
        "(also $MERCATO_FAULT_PROXY=1)",
    )  # fmt: skip

    status = commands.add_parser("status", help="list running instances and their readiness")
    status.add_argument("--json", action="store_true", help="print a JSON list")

    logs = commands.add_parser("logs", help="show the merged logs of all processes")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    logs.add_argument("--service", action="append", default=[], help="only this service")
    logs.add_argument("--level", choices=sorted(logview.LEVELS), help="minimum level")
    logs.add_argument("--trace", help="only records of this trace id")
    logs.add_argument("--since", help="only records at or after this UTC time (ISO 8601)")
    logs.add_argument("-n", "--lines", type=int, default=200, help="last N records (0 = all)")

    trace = commands.add_parser(
        "trace", help="draw a trace as a waterfall, or find traces (--last, --slowest, --errors)"
    )
    trace.add_argument("trace_id", nargs="?", help="a trace id (a unique prefix will do)")
    trace.add_argument("--last", type=int, default=10, metavar="N", help="list the N newest")
    trace.add_argument("--slowest", action="store_true", help="list the slowest first")
    trace.add_argument("--errors", action="store_true", help="only traces with an error span")
    trace.add_argument("--service", help="only traces that touch this service")
    trace.add_argument("--json", action="store_true", help="print JSON")

    services = commands.add_parser("services", help="show the service registry")
    services.add_argument("--json", action="store_true", help="print a JSON list")

    dlq = commands.add_parser("dlq", help="manage dead letters (list, show, replay, discard)")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", help="list dead letters")
    dlq_list.add_argument("--consumer", help="only this consumer's")
    dlq_list.add_argument("--json", action="store_true", help="print JSON")
    dlq_commands.add_parser("show", help="one dead letter with its message").add_argument("id")
    dlq_replay = dlq_commands.add_parser("replay", help="deliver again to its consumer")
    dlq_replay.add_argument("id", nargs="?", help="a dead letter id")
    dlq_replay.add_argument("--all", action="store_true", help="every dead letter (of --consumer)")
    dlq_replay.add_argument("--consumer", help="with --all: only this consumer's")
    dlq_commands.add_parser("discard", help="drop a dead letter for good").add_argument("id")

    check = commands.add_parser("check", help="audit the platform's consistency invariants")
    check.add_argument("--json", action="store_true", help='print {"orders_checked", "violations"}')

    commands.add_parser("migrate", help="apply every service's database migrations")
    commands.add_parser("seed", help="load the demo catalog into the running platform")

    load = commands.add_parser(
        "load", help="drive a shopper mix at a constant arrival rate (open model) and report"
    )
    load.add_argument("--rate", type=float, default=20.0, help="arrivals per second (default 20)")
    load.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    load.add_argument("--users", type=int, default=50, help="shopper pool made before the run")
    load.add_argument("--mix", help="weights, e.g. browse=35,product=28,search=12,login=4,"
                      "register=1,checkout=20 (the default)")  # fmt: skip
    load.add_argument("--seed", type=int, help="random seed of the mix")
    load.add_argument("--base-url", help="the gateway (default: the platform in the data dir)")
    load.add_argument("--json", action="store_true", help="print the report as JSON")

    from mercato_cli.chaos.options import add_chaos_arguments

    add_chaos_arguments(commands.add_parser(
        "chaos", help="shoppers under injected faults, then heal, settle and check (Jepsen-style)"
    ))  # fmt: skip

    bench = commands.add_parser(
        "bench", help="run the benchmarks in the source checkout's bench/ and print the targets"
    )
    bench.add_argument("names", nargs="*", metavar="NAME",
                       help="gateway chassis events checkout tax footprint (default: all), "
                       "or coldstart")  # fmt: skip
    bench.add_argument("--bench-dir", help="the checkout's bench/ folder (default: found "
                       "above the working directory; the installed package has none)")  # fmt: skip
    bench.add_argument("--from", dest="results", metavar="FILE",
                       help="print the table from saved JSON lines instead of running")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    data = DataDir(resolve_data_dir(args.data_dir))
    handler = {
        "up": cmd_up,
        "status": cmd_status,
        "logs": cmd_logs,
        "services": cmd_services,
        "trace": cmd_trace,
        "dlq": cmd_dlq,
        "check": cmd_check,
        "migrate": cmd_migrate,
        "seed": cmd_seed,
        "load": cmd_load,
        "chaos": cmd_chaos,
        "bench": cmd_bench,
    }[args.command]
    try:
        code = handler(args, data)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


def cmd_up(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.supervisor import PlatformAlreadyRunningError, Supervisor

    port = args.port or _port(os.environ.get("MERCATO_PORT", "8080"))
    supervisor = Supervisor(
        data,
        replicas=_replicas(args.replicas),
        gateway_port=port,
        seed=not args.no_seed,
        ready_timeout=args.ready_timeout,
        say=lambda line: print(line, flush=True),
        prometheus=args.with_prometheus,
        fault_proxy=args.fault_proxy,
    )
    try:
        return asyncio.run(supervisor.run())
    except PlatformAlreadyRunningError as error:
        print(f"mercato up: {error}", file=sys.stderr)
        return 1


def cmd_status(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.status import instance_status, render_table

    rows = asyncio.run(instance_status(data))
    if rows is None:
        if args.json:
            print("[]")
        else:
            print(f"no platform is running on {data.root}", file=sys.stderr)
        return 1
    if args.json:  # the contract (DESIGN.md §7): exactly these keys, whatever the table shows
        contract = ("service", "instance", "url", "pid", "ready")
        print(orjson.dumps([{key: row[key] for key in contract} for row in rows]).decode())
    else:
        print(render_table(rows))
    return 0


def cmd_logs(args: argparse.Namespace, data: DataDir) -> int:
    if not data.logs.is_dir():
        print(f"no logs under {data.logs}", file=sys.stderr)
        return 1
    rule = logview.LogFilter(
        services=frozenset(args.service),
        min_level=logview.LEVELS[args.level] if args.level else 0,
        trace_id=args.trace,
        since=args.since,
    )
    colour = sys.stdout.isatty()
    palette: dict[str, int] = {}
    records = list(logview.select(logview.read_all(data.logs), rule))
    for record in records[-args.lines :] if args.lines else records:
        print(logview.render(record, colour=colour, palette=palette))
    if args.follow:
        follower = logview.Follower(data.logs)
        follower.start_at_end()
        try:
            for record in logview.select(follower.follow(), rule):
                print(logview.render(record, colour=colour, palette=palette), flush=True)
        finally:
            follower.close()
    return 0


def cmd_trace(args: argparse.Namespace, data: DataDir) -> int:
    from chassis.tracing import TraceStore
    from mercato_cli import trace

    store = TraceStore(data.traces)
    if not store.files():
        print(f"no traces under {data.traces} (is a platform running there?)", file=sys.stderr)
        return 1
    if args.trace_id:
        spans = store.trace(args.trace_id)
        ids = {span.trace_id for span in spans}
        if len(ids) > 1:
            print(f"{args.trace_id!r} matches {len(ids)} traces; give more of the id",
                  file=sys.stderr)  # fmt: skip
            return 1
        if not spans:
            print(f"no trace {args.trace_id!r} under {data.traces}", file=sys.stderr)
            return 1
        if args.json:
            print(orjson.dumps(trace.waterfall_json(spans)).decode())
        else:
            print(trace.render_waterfall(spans, colour=sys.stdout.isatty()))
        return 0
    found = trace.pick(
        store.summaries(), last=args.last, slowest=args.slowest, errors=args.errors,
        service=args.service,
    )  # fmt: skip
    if args.json:
        print(orjson.dumps([summary.to_json() for summary in found]).decode())
    else:
        print(trace.render_list(found))
    return 0


def cmd_services(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.services import as_rows, registered_instances, render

    state = data.read_state()
    broker = state["broker_url"] if state else os.environ.get("MERCATO_REGISTRY_URL")  # registry
    if not broker:
        print(f"no platform is running on {data.root} and MERCATO_REGISTRY_URL is not set",
              file=sys.stderr)  # fmt: skip
        return 1
    rows = as_rows(asyncio.run(registered_instances(broker)))
    print(orjson.dumps(rows).decode() if args.json else render(rows))
    return 0


def _broker_url(data: DataDir) -> str | None:
    state = data.read_state()
    return state["broker_url"] if state else os.environ.get("MERCATO_BROKER_URL")


def cmd_dlq(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli import dlq

    broker = _broker_url(data)
    if not broker:
        print(f"no platform is running on {data.root} and MERCATO_BROKER_URL is not set",
              file=sys.stderr)  # fmt: skip
        return 1

    async def run() -> int:
        bus = await dlq.open_bus(broker)
        try:
            action = args.dlq_command
            if action == "list":
                letters = await bus.dead_letters(consumer=args.consumer)
                print(
                    dlq.dumps([dlq.summary(x) for x in letters])
                    if args.json
                    else dlq.render(letters)
                )
                return 0
            if action == "replay" and args.all:
                letters = await bus.dead_letters(consumer=args.consumer)
                for letter in letters:
                    await bus.replay_dead_letter(letter.id)
                print(f"replayed {len(letters)} dead letter(s)")
                return 0
            if not getattr(args, "id", None):
                print("give a dead letter id (see `mercato dlq list`)", file=sys.stderr)
                return 2
            if action == "show":
                found = [x for x in await bus.dead_letters() if x.id == args.id]
                if not found:
                    print(f"no dead letter {args.id}", file=sys.stderr)
                    return 1
                print(dlq.dumps(dlq.detail(found[0])))
                return 0
            try:
                if action == "replay":
                    await bus.replay_dead_letter(args.id)
                else:
                    await bus.discard_dead_letter(args.id)
            except LookupError:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            print(f"{'replayed' if action == 'replay' else 'discarded'} {args.id}")
            return 0
        finally:
            await bus.close()

    return asyncio.run(run())


def cmd_check(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.check import AUDITS, audit, fetch_audits

    state = data.read_state()
    if state is None:
        print(f"no platform is running on {data.root}", file=sys.stderr)
        return 2
    urls: dict[str, str] = {}
    for instance in state["instances"]:
        urls.setdefault(instance["service"], instance["url"])
    missing = [name for name in AUDITS if name not in urls]
    if missing:
        print(f"cannot audit without {', '.join(missing)}", file=sys.stderr)
        return 2
    documents = asyncio.run(fetch_audits(urls, data.secret("internal_secret")))
    report = audit(
        documents["orders"], documents["inventory"], documents["payments"], documents["psp"]
    )
    if args.json:
        print(orjson.dumps(report.as_dict()).decode())
    else:
        print(f"orders checked: {report.orders_checked}")
        for violation in report.violations:
            print(f"VIOLATION {violation['invariant']} {violation['id']}: {violation['detail']}")
        if not report.violations:
            print("no violations")
    return 1 if report.violations else 0


def cmd_migrate(args: argparse.Namespace, data: DataDir) -> int:
    env = {**os.environ, "MERCATO_DATA_DIR": str(data.root)}
    failed = 0
    for spec in SERVICES:
        result = subprocess.run(
            [sys.executable, "-m", spec.module, "migrate"], env=env, check=False
        )
        print(f"{spec.name}: {'migrated' if result.returncode == 0 else 'FAILED'}")
        failed += result.returncode != 0
    return 1 if failed else 0


def cmd_seed(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.seed import seed_platform

    state = data.read_state()
    if state is None:
        print(f"no platform is running on {data.root}", file=sys.stderr)
        return 1
    catalog = next(i["url"] for i in state["instances"] if i["service"] == "catalog")
    created = asyncio.run(
        seed_platform(
            catalog_url=catalog, secret=data.secret("internal_secret"), only_if_empty=False
        )
    )
    print(f"created {created} products")
    return 0


def cmd_chaos(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.chaos.runner import main as chaos_main

    return chaos_main(args, data)


def cmd_load(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.load import main as load_main

    return load_main(args, data)


def cmd_bench(args: argparse.Namespace, data: DataDir) -> int:
    from mercato_cli.bench import main as bench_main

    return bench_main(args)
