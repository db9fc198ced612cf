"""`mercato bench`'s targets table: met or missed, read from the benchmarks' JSON lines."""

import argparse
from pathlib import Path

import orjson
import pytest

from mercato_cli.bench import (
    TARGETS,
    BenchFolderMissingError,
    evaluate,
    find_bench_dir,
    main,
    parse_results,
    render_table,
)

SAMPLE = [
    "gateway: running gateway.py …",
    '{"benchmark": "gateway", "ratio": 0.41, "added_p50_ms": 0.31, "raw_nginx_rps": 20000}',
    '{"benchmark": "chassis", "ratio": 0.79, "bare_rps": 8600}',
    '{"benchmark": "events", "ratio": 0.6}',
    '{"benchmark": "tax", "skipped": "no bench/tax.py"}',
    '{"benchmark": "checkout", "place_p99_ms": 42.0, "to_confirmed_p99_ms": 251.0}',
    '{"benchmark": "footprint", "max_rss_mb": 99.5}',
    "not json {",
]


def verdicts(lines: list[str]) -> dict[tuple[str, str], str]:
    rows = evaluate(parse_results(lines))
    return {(row.target.benchmark, row.target.key): row.verdict for row in rows}


def test_each_target_is_met_or_missed_from_its_figure() -> None:
    found = verdicts(SAMPLE)
    assert found == {
        ("gateway", "ratio"): "met",  # 0.41 ≥ 0.35
        ("gateway", "added_p50_ms"): "MISSED",  # 0.31 > 0.25
        ("chassis", "ratio"): "MISSED",  # 0.79 < 0.80
        ("events", "ratio"): "met",  # the bound itself meets
        ("tax", "ratio"): "not measured",
        ("checkout", "place_p99_ms"): "met",
        ("checkout", "to_confirmed_p99_ms"): "MISSED",
        ("footprint", "max_rss_mb"): "met",
        ("footprint", "coldstart_s"): "not measured",  # footprint's line has no cold start
    }


def test_a_coldstart_line_stands_in_for_footprints_cold_start() -> None:
    found = verdicts([*SAMPLE, '{"benchmark": "coldstart", "median_s": 4.2}'])
    assert found[("footprint", "coldstart_s")] == "met"
    assert found[("footprint", "max_rss_mb")] == "met"  # footprint's own line kept
    only = verdicts(['{"benchmark": "coldstart", "median_s": 6.0}'])
    assert only[("footprint", "coldstart_s")] == "MISSED"
    assert only[("footprint", "max_rss_mb")] == "not measured"


def test_a_later_line_of_the_same_benchmark_wins_and_odd_values_are_not_measured() -> None:
    found = verdicts([
        '{"benchmark": "chassis", "ratio": 0.5}', '{"benchmark": "chassis", "ratio": 0.9}',
        '{"benchmark": "events", "ratio": true}', '{"benchmark": "gateway", "ratio": "fast"}',
        '{"benchmark": "checkout", "place_p99_ms": NaN}', '["benchmark"]',
    ])  # fmt: skip
    assert found[("chassis", "ratio")] == "met"
    assert found[("events", "ratio")] == "not measured"
    assert found[("gateway", "ratio")] == "not measured"
    assert found[("checkout", "place_p99_ms")] == "not measured"


def test_the_table_names_every_target_with_its_verdict() -> None:
    table = render_table(evaluate(parse_results(SAMPLE)))
    lines = table.splitlines()
    assert len(lines) == 2 + len(TARGETS) + 1
    assert "| gateway req/s ÷ nginx proxy req/s" in lines[2]
    assert "≥ 0.35" in lines[2] and "0.41" in lines[2] and lines[2].rstrip(" |").endswith("met")
    assert "0.31 ms" in lines[3] and "MISSED" in lines[3]
    assert "skipped: no bench/tax.py" in table
    assert lines[-1] == "4 met, 3 missed, 2 not measured"


def test_targets_are_the_ones_the_issue_states() -> None:
    goals = {(t.benchmark, t.key): t.goal for t in TARGETS}
    assert goals == {
        ("gateway", "ratio"): "≥ 0.35",
        ("gateway", "added_p50_ms"): "≤ 0.25 ms",
        ("chassis", "ratio"): "≥ 0.8",
        ("events", "ratio"): "≥ 0.6",
        ("tax", "ratio"): "≥ 0.5",
        ("checkout", "place_p99_ms"): "≤ 50 ms",
        ("checkout", "to_confirmed_p99_ms"): "≤ 250 ms",
        ("footprint", "max_rss_mb"): "≤ 100 MB",
        ("footprint", "coldstart_s"): "≤ 5 s",
    }


def test_the_bench_folder_is_found_or_its_absence_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo" / "bench").mkdir(parents=True)
    (tmp_path / "repo" / "bench" / "checkout.py").write_text("")
    (tmp_path / "repo" / "deep").mkdir()
    monkeypatch.delenv("MERCATO_BENCH_DIR", raising=False)
    monkeypatch.chdir(tmp_path / "repo" / "deep")
    assert find_bench_dir() == tmp_path / "repo" / "bench"
    with pytest.raises(BenchFolderMissingError, match="source checkout"):
        find_bench_dir(str(tmp_path / "elsewhere"))


def test_the_table_is_printed_from_saved_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "bench.jsonl"
    saved.write_text("\n".join(SAMPLE))
    args = argparse.Namespace(names=[], results=str(saved), bench_dir=None)
    assert main(args) == 0
    assert "4 met, 3 missed, 2 not measured" in capsys.readouterr().out
    assert main(argparse.Namespace(names=["nosuch"], results=None, bench_dir=None)) == 2


def test_a_missing_script_is_reported_as_skipped(tmp_path: Path) -> None:
    from mercato_cli.bench import run_benchmarks

    lines, failed = run_benchmarks(tmp_path, ["tax"], echo=False)
    assert failed == []
    assert orjson.loads(lines[0])["skipped"].startswith("no ")
