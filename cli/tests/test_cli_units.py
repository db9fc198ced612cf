import argparse
import os
from pathlib import Path

import orjson
import pytest

from mercato_cli import logs
from mercato_cli.datadir import DataDir, resolve_data_dir
from mercato_cli.main import _replicas, build_parser
from mercato_cli.seed import demo_products
from mercato_cli.status import render_table


def test_replicas_are_parsed_and_checked() -> None:
    assert _replicas(["catalog=2"]) == {"catalog": 2}
    assert _replicas([]) == {}
    for bad in ["nosuch=2", "catalog=0", "catalog=x", "catalog"]:
        with pytest.raises(argparse.ArgumentTypeError):
            _replicas([bad])


def test_the_parser_knows_the_contract_commands() -> None:
    parser = build_parser()
    assert parser.parse_args(["status", "--json"]).json
    args = parser.parse_args(["up", "--replicas", "catalog=3", "--no-seed", "--port", "9090"])
    assert args.replicas == ["catalog=3"]
    assert args.no_seed
    assert args.port == 9090
    with pytest.raises(SystemExit):
        parser.parse_args(["up", "--port", "99999"])


def test_data_dir_comes_from_flag_then_environment_then_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MERCATO_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == Path(".mercato").resolve()
    monkeypatch.setenv("MERCATO_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_state_is_only_believed_while_its_supervisor_lives(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    data.create()
    data.write_state({"supervisor_pid": os.getpid(), "instances": []})
    assert data.read_state() == {"supervisor_pid": os.getpid(), "instances": []}
    data.write_state({"supervisor_pid": 2**22 + 12345, "instances": []})
    assert data.read_state() is None


def test_secrets_are_made_once_and_private(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    first = data.secret("internal_secret")
    assert len(first) >= 32
    assert data.secret("internal_secret") == first
    assert (tmp_path / "secrets" / "internal_secret").stat().st_mode & 0o777 == 0o600


def test_demo_catalog_has_enough_valid_products() -> None:
    products = demo_products()
    assert len(products) >= 50
    assert len({p["sku"] for p in products}) == len(products)
    assert len({p["category"] for p in products}) >= 5
    assert all(isinstance(p["price"]["amount"], int) and p["price"]["amount"] > 0 for p in products)


def write_log(folder: Path, name: str, *records: dict[str, object]) -> None:
    with (folder / name).open("ab") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")


def test_logs_merge_files_in_time_order_and_filter(tmp_path: Path) -> None:
    write_log(
        tmp_path,
        "catalog-1.log",
        {"time": "2026-01-01T00:00:01Z", "service": "catalog", "level": "info", "event": "a"},
        {"time": "2026-01-01T00:00:03Z", "service": "catalog", "level": "error", "event": "c",
         "trace_id": "t1"},
    )  # fmt: skip
    write_log(
        tmp_path,
        "identity-1.log",
        {"time": "2026-01-01T00:00:02Z", "service": "identity", "level": "warning", "event": "b"},
    )
    (tmp_path / "nats.log").write_text("[1] 2026/01/01 server ready\n")

    records = logs.read_all(tmp_path)
    assert [r["event"] for r in records if r["service"] != "nats"] == ["a", "b", "c"]
    nats = next(r for r in records if r["service"] == "nats")
    assert "server ready" in nats["event"]

    only_catalog = logs.LogFilter(services=frozenset({"catalog"}))
    assert [r["event"] for r in logs.select(records, only_catalog)] == ["a", "c"]
    warnings_up = logs.LogFilter(min_level=logs.LEVELS["warning"])
    assert [r["event"] for r in logs.select(records, warnings_up)] == ["b", "c"]
    by_trace = logs.LogFilter(trace_id="t1")
    assert [r["event"] for r in logs.select(records, by_trace)] == ["c"]
    since = logs.LogFilter(since="2026-01-01T00:00:02")
    assert [r["event"] for r in logs.select(records, since) if r["service"] != "nats"] == ["b", "c"]


def test_follower_sees_only_new_records_including_new_files(tmp_path: Path) -> None:
    write_log(tmp_path, "catalog-1.log", {"time": "1", "service": "catalog", "event": "old"})
    follower = logs.Follower(tmp_path)
    follower.start_at_end()
    try:
        write_log(tmp_path, "catalog-1.log", {"time": "2", "service": "catalog", "event": "new"})
        write_log(tmp_path, "orders-1.log", {"time": "3", "service": "orders", "event": "born"})
        assert [r["event"] for r in follower.poll()] == ["new", "born"]
        assert follower.poll() == []
    finally:
        follower.close()


def test_rendering_is_one_line_and_coloured_only_when_asked() -> None:
    record = {"time": "2026-01-01T10:11:12.345678Z", "service": "catalog", "instance": "catalog-1",
              "level": "info", "event": "request", "status": 200}  # fmt: skip
    plain = logs.render(record, colour=False, palette={})
    assert plain == "10:11:12.345 catalog-1      INFO    request  status=200"
    assert logs.render(record, colour=True, palette={}).startswith("\x1b[")


def test_status_table_lists_liveness_readiness_and_checks() -> None:
    row = {"service": "catalog", "instance": "catalog-1", "url": "http://x", "pid": 1}
    table = render_table(
        [
            {**row, "ready": True, "live": True, "checks": {"database": "ok", "broker": "ok"}},
            {**row, "ready": False, "live": True, "checks": {"database": "failing"}},
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["SERVICE", "INSTANCE", "URL", "PID", "LIVE", "READY", "CHECKS"]
    assert lines[1].split()[4:] == ["yes", "yes", "broker:ok", "database:ok"]
    assert lines[2].split()[4:] == ["yes", "no", "database:failing"]
