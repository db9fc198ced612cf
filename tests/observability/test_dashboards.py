"""The Grafana dashboards and provisioning: generated, importable, and wired to each other."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
BUILT_IN_VARIABLES = {"__rate_interval", "__interval", "__range", "__field", "__url_time_range"}


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "generate_dashboards.py"
    spec = importlib.util.spec_from_file_location("generate_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_the_committed_dashboards_are_what_the_generator_renders() -> None:
    rendered = _generator().files()
    committed = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARDS}
    assert committed.keys() == rendered.keys()
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run scripts/generate_dashboards.py"


def test_there_is_an_overview_a_service_a_checkout_and_a_messaging_dashboard() -> None:
    titles = {load(path)["uid"]: load(path)["title"] for path in DASHBOARDS}
    assert titles == {
        "mercato-overview": "Mercato / Platform overview",
        "mercato-service": "Mercato / Service",
        "mercato-checkout": "Mercato / Checkout",
        "mercato-messaging": "Mercato / Messaging",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=[path.stem for path in DASHBOARDS])
def test_a_dashboard_imports_into_a_stock_grafana(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["schemaVersion"] == 39
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert "id" not in dashboard  # Grafana assigns it; a fixed one would clash on import
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["DS_PROMETHEUS"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")

    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["y"] + dy, grid["x"] + dx) for dy in range(grid["h"]) for dx in range(grid["w"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "table"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= set(variables) | BUILT_IN_VARIABLES, (panel["title"], used)


def test_the_service_dashboard_offers_every_service_and_its_instances() -> None:
    variables = {v["name"]: v for v in load(GRAFANA / "dashboards" / "mercato-service.json")
                 ["templating"]["list"]}  # fmt: skip
    assert variables["service"]["query"]["query"] == 'label_values(up{job="mercato"}, service)'
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]
    overview = load(GRAFANA / "dashboards" / "mercato-overview.json")
    links = [
        link["url"]
        for panel in overview["panels"]
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
    ]
    assert links and all(url.startswith("/d/mercato-service/") for url in links)


def test_provisioning_points_at_the_dashboards_and_the_datasource_they_expect() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    (prometheus,) = datasources["datasources"]
    assert (prometheus["type"], prometheus["uid"], prometheus["isDefault"]) == (
        "prometheus", "prometheus", True,
    )  # fmt: skip

    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/mercato.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]

    compose = ROOT / "deploy" / "compose.yaml"
    if not compose.exists():
        pytest.skip("no deploy/compose.yaml to check the mounts against")
    grafana = yaml.safe_load(compose.read_text())["services"]["grafana"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    assert mounts[path] == "./grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"


def test_compose_runs_prometheus_with_its_own_config_and_the_rules() -> None:
    compose = ROOT / "deploy" / "compose.yaml"
    if not compose.exists():
        pytest.skip("no deploy/compose.yaml to check the mounts against")
    prometheus = yaml.safe_load(compose.read_text())["services"]["prometheus"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    # The embedded prometheus.yml reads targets `mercato up` writes; Compose has DNS instead.
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus-compose.yml"
    assert mounts["/etc/prometheus/rules"] == "./prometheus/rules"
