"""deploy/prometheus/ checked by Prometheus's own promtool: configs, rules, rule unit tests, the
Kubernetes relabelling (on made-up pods), and the dashboards' PromQL.

promtool comes with Debian's `prometheus` package (`apt-get install prometheus`); without it
these tests skip. Debian builds Prometheus without Kubernetes service discovery, so the
Kubernetes config is checked with its `kubernetes_sd_configs` swapped for a file of pods shaped
as the Kubernetes discovery reports them; with an upstream promtool it is checked as it is too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian: apt-get install prometheus); CI installs it",
)


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=cwd)  # fmt: skip


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_rules_are_valid() -> None:
    rules = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert [path.name for path in rules] == ["alerts.yml", "recording.yml", "slo.yml"]
    output = assert_ok(promtool("check", "rules", *rules))
    assert output.count("SUCCESS") == len(rules)


def test_the_rule_unit_tests_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert len(tests) >= 5
    output = assert_ok(promtool("test", "rules", *tests))
    assert output.count("SUCCESS") == len(tests)


def test_every_alert_has_a_unit_test_that_makes_it_fire() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    assert alerts - fired == set(), "alerts no test makes fire"
    assert fired - alerts == set(), "tests of alerts that do not exist"


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_the_configs_are_valid_and_load_every_rule_file(config: str) -> None:
    output = assert_ok(promtool("check", "config", PROMETHEUS / config))
    assert "3 rule files found" in output


def _supports_kubernetes_sd(tmp_path: Path) -> bool:
    probe = tmp_path / "probe.yml"
    job = {"job_name": "probe", "kubernetes_sd_configs": [{"role": "pod"}]}
    probe.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    return promtool("check", "config", probe).returncode == 0


def _k8s_with_pods_from_a_file(tmp_path: Path, pods: list[dict[str, Any]]) -> Path:
    config = yaml.safe_load((PROMETHEUS / "prometheus-k8s.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    del job["kubernetes_sd_configs"]
    job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_kubernetes_config_is_valid(tmp_path: Path) -> None:
    if _supports_kubernetes_sd(tmp_path):
        assert_ok(promtool("check", "config", PROMETHEUS / "prometheus-k8s.yml"))
    output = assert_ok(promtool("check", "config", _k8s_with_pods_from_a_file(tmp_path, [])))
    assert "3 rule files found" in output


def pod(name: str, service: str, ip: str, port: int, port_name: str, **meta: str) -> dict[str, Any]:
    labels = {
        "__meta_kubernetes_namespace": "mercato",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": service,
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "mercato",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": str(port),
    }
    labels.update({f"__meta_kubernetes_pod_{key}": value for key, value in meta.items()})
    return {"targets": [f"{ip}:{port}"], "labels": labels}


def test_kubernetes_relabelling_scrapes_one_port_per_mercato_pod(tmp_path: Path) -> None:
    annotated = {"annotation_prometheus_io_scrape": "true", "annotation_prometheus_io_port": "8003",
                 "annotation_prometheus_io_path": "/metrics"}  # fmt: skip
    pods = [
        # as deploy/k8s makes them: annotated, an http port and (inventory) a grpc port
        pod("orders-7d9f-abcde", "orders", "10.1.0.4", 8004, "http",
            annotation_prometheus_io_scrape="true", annotation_prometheus_io_port="8004"),
        pod("inventory-5c4b-x1", "inventory", "10.1.0.5", 8003, "http", **annotated),
        pod("inventory-5c4b-x1", "inventory", "10.1.0.5", 50051, "grpc", **annotated),
        # only labelled part-of mercato: its port named http
        pod("catalog-1", "catalog", "10.1.0.6", 8001, "http"),
        pod("catalog-1", "catalog", "10.1.0.6", 9000, "debug"),
        # opted out, not running, and not ours
        pod("psp-1", "psp", "10.1.0.7", 8007, "http", annotation_prometheus_io_scrape="false"),
        pod("payments-old", "payments", "10.1.0.8", 8005, "http", phase="Succeeded"),
        {"targets": ["10.1.0.9:5432"], "labels": {"__meta_kubernetes_pod_name": "postgres-0",
         "__meta_kubernetes_pod_phase": "Running",
         "__meta_kubernetes_pod_container_port_name": "http"}},
    ]  # fmt: skip
    config = _k8s_with_pods_from_a_file(tmp_path, pods)
    result = promtool("check", "service-discovery", config, "mercato", "--timeout=5s")
    assert_ok(result)
    found = json.loads(result.stdout)
    scraped = {
        (t["labels"]["service"], t["labels"]["__address__"], t["labels"]["pod"],
         t["labels"]["namespace"], t["labels"]["instance_id"], t["labels"]["__metrics_path__"])
        for t in found
        if t["labels"]
    }  # fmt: skip
    assert scraped == {
        ("orders", "10.1.0.4:8004", "orders-7d9f-abcde", "mercato", "orders-7d9f-abcde", "/metrics"),
        ("inventory", "10.1.0.5:8003", "inventory-5c4b-x1", "mercato", "inventory-5c4b-x1",
         "/metrics"),
        ("catalog", "10.1.0.6:8001", "catalog-1", "mercato", "catalog-1", "/metrics"),
    }  # fmt: skip


def _dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return queries


def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses PromQL when it checks rules: each query becomes a recording rule, with
    # Grafana's variables replaced by what Grafana would put there.
    substitutions = {"$__rate_interval": "1m", "$service": "orders", "$instance": ".*"}
    rules = []
    for index, (where, expr) in enumerate(_dashboard_queries()):
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"{where}: a Grafana variable this test does not know: {expr}"
        rules.append({"record": f"dashboard:query_{index}:check", "expr": expr})
    assert len(rules) > 50
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    output = assert_ok(promtool("check", "rules", path))
    assert re.search(rf"SUCCESS: {len(rules)} rules found", output), output
