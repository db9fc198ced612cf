"""Shared by the deployment checks: the platform's facts (topology.py), the tools run by path
from the virtualenv, and what the Kubernetes overlays render to (rendered once a session)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's tools: another kubectl may be on PATH
OVERLAYS = ("dev", "staging", "prod")


def _load_topology() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mercato_deploy_topology", HERE / "topology.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


TOPOLOGY = _load_topology()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "service" in metafunc.fixturenames:
        metafunc.parametrize("service", sorted(TOPOLOGY.SERVICES))
    if "overlay" in metafunc.fixturenames:
        metafunc.parametrize("overlay", OVERLAYS)


@pytest.fixture(scope="session")
def topology() -> ModuleType:
    return TOPOLOGY


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make sync` installs it from the lock")
    return str(path)


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """A tool from the virtualenv, by path (`hadolint`, `kubectl`...)."""
    return _tool


def _run(*args: str, timeout: float = 120, check: bool = True, **kwargs: Any) -> Any:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def run() -> Callable[..., Any]:
    """Run a command (`check=False` to look at a failure); fails the test with its output."""
    return _run


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each overlay rendered by `kubectl kustomize`, as a list of objects."""
    kubectl = _tool("kubectl")
    out = {}
    for overlay in OVERLAYS:
        result = _run(kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay))
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Replace the process's Mercato/OTel variables by the given ones (settings read them)."""
    prefixes = ("MERCATO_", "OTEL_", *(s.env_prefix for s in TOPOLOGY.SERVICES.values()))

    def apply(env: dict[str, str]) -> None:
        for key in list(os.environ):
            if key.upper().startswith(prefixes):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return apply


def _settings_class(service: str) -> type[Any]:
    module = importlib.import_module(f"{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and value.__module__ == module.__name__
        and value.__name__.endswith("Settings")
    ]
    assert len(classes) == 1, f"{service}.settings defines {classes}"
    return classes[0]


# Standard OpenTelemetry SDK variables the deployment sets; the SDK reads them itself.
OTEL_VARIABLES = frozenset({"OTEL_EXPORTER_OTLP_ENDPOINT"})


def _accepted_variables(service: str) -> set[str]:
    cls = _settings_class(service)
    return {cls.env_name(field) for field in cls.model_fields} | OTEL_VARIABLES


@pytest.fixture(scope="session")
def settings_class() -> Callable[[str], type[Any]]:
    """The settings class of a service, imported from its package."""
    return _settings_class


@pytest.fixture(scope="session")
def accepted_variables() -> Callable[[str], set[str]]:
    """Every environment variable a service's settings read (and the OTel ones)."""
    return _accepted_variables
