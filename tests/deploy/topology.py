"""The facts the deployment files are checked against, and the per-service files made from
them: each service's Dockerfile and its CI workflow are one template each, so they cannot
drift apart. `python tests/deploy/topology.py` rewrites them; `pytest tests/deploy` fails
while a committed one differs from what this renders.

The facts come from the code (settings classes, `ServiceClient` calls, `Messaging.from_url`);
the tests compare them with the manifests, so a change in either side shows up.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The images start from these unless a build passes other ones (a machine without a
# registry builds from images it made itself, see docs/deploy.md).
BASE_IMAGE = "python:3.11-slim-bookworm"
UV_VERSION = "0.13.9"
UV_IMAGE = f"ghcr.io/astral-sh/uv:{UV_VERSION}"
UID = 10001
K8S_BASE = ROOT / "deploy" / "k8s" / "base"


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    database: bool = True
    broker: bool = True
    calls: tuple[str, ...] = ()  # services it calls over HTTP (through discovery)
    extra_ports: dict[str, int] = field(default_factory=dict)

    @property
    def env_prefix(self) -> str:
        return self.name.upper() + "_"

    @property
    def package(self) -> str:
        return f"mercato-{self.name}"

    @property
    def dockerfile(self) -> Path:
        return ROOT / "services" / self.name / "Dockerfile"

    @property
    def workflow(self) -> Path:
        return ROOT / ".github" / "workflows" / f"{self.name}.yml"

    @property
    def k8s_dir(self) -> Path:
        return K8S_BASE / self.name


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("catalog", 8001),
        Service("identity", 8002),
        Service("inventory", 8003, extra_ports={"grpc": 50051}),
        Service("orders", 8004, calls=("catalog",)),
        Service("payments", 8005, calls=("psp",)),
        Service("notifications", 8006),
        Service("psp", 8007, broker=False),
        Service(
            "gateway",
            8080,
            database=False,
            broker=True,  # the console lists and replays dead letters
            calls=(
                "identity",
                "catalog",
                "inventory",
                "orders",
                "payments",
                "notifications",
                "psp",
            ),
        ),
    )
}

# Every workspace member's pyproject.toml goes into the image's dependency layer: uv reads
# the whole workspace to use the lock, but installs only the service's own packages.
WORKSPACE_MEMBERS = ("libs/chassis", "cli", *(f"services/{name}" for name in sorted(SERVICES)))


def callers_of(name: str) -> list[str]:
    return sorted(s.name for s in SERVICES.values() if name in s.calls)


def render_dockerfile(service: Service) -> str:
    name, prefix, port = service.name, service.env_prefix, service.port
    members = "\n".join(f"COPY {member}/pyproject.toml {member}/" for member in WORKSPACE_MEMBERS)
    sources = "\n".join(
        f"COPY services/{name}/{part} services/{name}/{part}"
        for part in ("src", "migrations")
        if part == "src" or service.database
    )
    exposed = " ".join(str(p) for p in (port, *service.extra_ports.values()))
    probe = (
        "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + "
        f"os.environ.get('{prefix}PORT', '{port}') + '/readyz', timeout=2)"
    )
    return f"""\
# syntax=docker/dockerfile:1
# The {name} image. Every service's Dockerfile is this one template, rendered by
# tests/deploy/topology.py; the deploy tests fail when they drift apart.
# Build from the repository root: docker build -f services/{name}/Dockerfile -t mercato/{name} .
# BASE_IMAGE and UV_IMAGE are arguments so that a machine without a registry can build from
# images it made itself (docs/deploy.md); the final stage is BASE_IMAGE plus the virtualenv.
ARG BASE_IMAGE={BASE_IMAGE}
ARG UV_IMAGE={UV_IMAGE}

FROM ${{UV_IMAGE}} AS uv

FROM ${{BASE_IMAGE}} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \\
    UV_LINK_MODE=copy \\
    UV_PYTHON=python3.11 \\
    UV_PYTHON_DOWNLOADS=never \\
    UV_PROJECT_ENVIRONMENT=/app \\
    SSL_CERT_FILE=/run/secrets/ca-certificates.crt
# A build behind a TLS-intercepting proxy passes the proxy's CA bundle as the build secret
# `ca-certificates`; without it that file does not exist and uv trusts its own roots.
WORKDIR /src
# Third-party dependencies, exactly as locked, in a layer of their own: it is rebuilt only
# when the lock or a pyproject.toml changes, not on every code change.
COPY pyproject.toml uv.lock ./
{members}
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=secret,id=ca-certificates,target=/run/secrets/ca-certificates.crt \\
    uv sync --frozen --no-dev --no-editable --no-install-workspace --package {service.package}
COPY libs/chassis/src libs/chassis/src
{sources}
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=secret,id=ca-certificates,target=/run/secrets/ca-certificates.crt \\
    uv sync --frozen --no-dev --no-editable --package {service.package}

FROM ${{BASE_IMAGE}}
RUN groupadd --system --gid {UID} mercato \\
    && useradd --system --uid {UID} --gid {UID} --no-create-home \\
        --home-dir /var/lib/mercato --shell /usr/sbin/nologin mercato \\
    && mkdir -p /var/lib/mercato \\
    && chown {UID}:{UID} /var/lib/mercato
COPY --from=build /app /app
ENV PATH=/app/bin:$PATH \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    MERCATO_DATA_DIR=/var/lib/mercato \\
    {prefix}HOST=0.0.0.0 \\
    {prefix}PORT={port}
WORKDIR /var/lib/mercato
USER {UID}:{UID}
EXPOSE {exposed}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
    CMD ["python", "-c", "{probe}"]
# The service is PID 1 and stops gracefully on SIGTERM (finishes in-flight requests).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "{name}"]
"""


def render_workflow(service: Service) -> str:
    name = service.name
    return f"""\
# The {name} service's pipeline. Every service's workflow is this one template, rendered by
# tests/deploy/topology.py; the work itself is in service.yml.
name: {name}

on:
  push:
    branches: [main]
    paths:
      - services/{name}/**
      - libs/chassis/**
      - uv.lock
      - .github/workflows/{name}.yml
      - .github/workflows/service.yml
  pull_request:
    paths:
      - services/{name}/**
      - libs/chassis/**
      - uv.lock
      - .github/workflows/{name}.yml
      - .github/workflows/service.yml
  workflow_dispatch:

concurrency:
  group: {name}-${{{{ github.ref }}}}
  cancel-in-progress: ${{{{ github.event_name == 'pull_request' }}}}

permissions:
  contents: read

jobs:
  pipeline:
    uses: ./.github/workflows/service.yml
    with:
      service: {name}
    permissions:
      contents: read
      packages: write
    secrets: inherit
"""


# --- Kubernetes ------------------------------------------------------------------------
# What the pods talk to besides each other: the infrastructure charts installed beside them
# (deploy/k8s/infra, docs/deploy.md), selected by the labels those charts put on their pods.
POSTGRES = {"cnpg.io/cluster": "mercato-postgres"}
BROKERS = (
    ({"app.kubernetes.io/name": "nats"}, 4222),
    ({"app.kubernetes.io/name": "rabbitmq"}, 5672),
)
OTEL_COLLECTOR = {"app.kubernetes.io/name": "opentelemetry-collector"}
OTLP_HTTP_PORT = 4318
SERVICE_PORT = 80  # every Service listens on 80: the `kubernetes://` registry's default port
SHUTDOWN_TIMEOUT = 20  # seconds in-flight requests get after SIGTERM
PRE_STOP_SECONDS = 5  # endpoints are removed while the pod still serves
GRACE_PERIOD = PRE_STOP_SECONDS + SHUTDOWN_TIMEOUT + 10
MEMORY_LIMITS = {"identity": "512Mi"}  # argon2id hashes take 19 MiB each


def _labels(service: Service) -> dict[str, str]:
    return {"app.kubernetes.io/name": service.name, "app.kubernetes.io/part-of": "mercato"}


def _secret_env(service: Service) -> list[dict[str, Any]]:
    def ref(var: str, secret: str, key: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [ref("MERCATO_INTERNAL_SECRET", "mercato-internal", "secret")]
    if service.broker:
        env.append(ref("MERCATO_BROKER_URL", "mercato-broker", "url"))
    if service.database:
        env.append(ref(f"{service.env_prefix}DATABASE_URL", f"{service.name}-database", "url"))
    if service.name == "identity":
        env.append(ref("IDENTITY_KEY_ENCRYPTION_SECRET", "identity-keys", "key-encryption-secret"))
        env.append(ref("IDENTITY_ADMIN_PASSWORD", "identity-keys", "admin-password"))
    return env


def _container(service: Service, *, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"mercato/{service.name}",
        "imagePullPolicy": "IfNotPresent",
        "envFrom": [
            {"configMapRef": {"name": "mercato-platform"}},
            {"configMapRef": {"name": service.name}},
        ],
        "env": _secret_env(service),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": MEMORY_LIMITS.get(service.name, "384Mi")},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "data", "mountPath": "/var/lib/mercato"},
        ],
    }


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _deployment(service: Service) -> dict[str, Any]:
    labels = _labels(service)
    main = _container(service, name=service.name)
    main["ports"] = [
        {"name": "http", "containerPort": service.port, "protocol": "TCP"},
        *(
            {"name": port_name, "containerPort": number, "protocol": "TCP"}
            for port_name, number in service.extra_ports.items()
        ),
    ]
    main["startupProbe"] = _probe("/livez", period=2, failures=30)
    main["livenessProbe"] = _probe("/livez", period=10, failures=3)
    main["readinessProbe"] = _probe("/readyz", period=5, failures=2)
    main["lifecycle"] = {
        "preStop": {
            "exec": {"command": ["python", "-c", f"import time; time.sleep({PRE_STOP_SECONDS})"]}
        }
    }
    spec: dict[str, Any] = {
        "serviceAccountName": service.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACE_PERIOD,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
            }
        ],
    }
    if service.database:
        migrate = _container(service, name="migrate")
        spec["initContainers"] = [{"name": "migrate", "args": ["migrate"], **migrate}]
    spec["containers"] = [main]
    spec["volumes"] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "data", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": service.name, "labels": labels},
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(service.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": spec,
            },
        },
    }


def _peer(labels: dict[str, str]) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": labels}}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _network_policy(service: Service) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = []
    callers = callers_of(service.name)
    if callers:
        ingress.append(
            {
                "from": [_peer({"app.kubernetes.io/name": caller}) for caller in callers],
                "ports": _tcp(service.port),
            }
        )
    if service.name == "gateway":  # the edge: traffic from the ingress controller
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                        },
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
                    }
                ],
                "ports": _tcp(service.port),
            }
        )
    ingress.append(  # Prometheus scrapes /metrics
        {
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ],
            "ports": _tcp(service.port),
        }
    )
    egress: list[dict[str, Any]] = [
        {"to": [_peer({"app.kubernetes.io/name": callee})], "ports": _tcp(SERVICES[callee].port)}
        for callee in service.calls
    ]
    if service.database:
        egress.append({"to": [_peer(POSTGRES)], "ports": _tcp(5432)})
    if service.broker:
        egress.extend({"to": [_peer(labels)], "ports": _tcp(port)} for labels, port in BROKERS)
    egress.append({"to": [_peer(OTEL_COLLECTOR)], "ports": _tcp(OTLP_HTTP_PORT)})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": service.name, "labels": _labels(service)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": service.name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def k8s_resources(service: Service) -> list[dict[str, Any]]:
    labels = _labels(service)
    selector = {"app.kubernetes.io/name": service.name}
    meta = {"name": service.name, "labels": labels}
    ports = [
        {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
        *(
            {"name": name, "port": number, "targetPort": name, "protocol": "TCP"}
            for name, number in service.extra_ports.items()
        ),
    ]
    resources: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta,
            "automountServiceAccountToken": False,
        },
        _deployment(service),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta,
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": service.name,
                },
                "minReplicas": 2,
                "maxReplicas": 6,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
        _network_policy(service),
    ]
    if service.name == "gateway":
        resources.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta,
                "spec": {
                    "ingressClassName": "nginx",
                    "rules": [
                        {
                            "host": "mercato.example.com",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {
                                                "name": "gateway",
                                                "port": {"name": "http"},
                                            }
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                },
            }
        )
    return resources


def service_config(service: Service) -> dict[str, str]:
    """The service's own settings on Kubernetes (its ConfigMap)."""
    prefix = service.env_prefix
    config = {
        f"{prefix}HOST": "0.0.0.0",
        f"{prefix}PORT": str(service.port),
        f"{prefix}SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
    }
    if service.database:  # the `migrate` init container does it, once per rollout
        config[f"{prefix}MIGRATE_ON_START"] = "false"
    if "grpc" in service.extra_ports:
        config[f"{prefix}GRPC_PORT"] = str(service.extra_ports["grpc"])
    return config


_K8S_HEADER = """\
# Rendered by tests/deploy/topology.py from the platform's facts (ports, calls, settings);
# the deploy tests fail when this file and the renderer differ. Edit the renderer, then run
# `python tests/deploy/topology.py`.
"""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # spell every mapping out, as people write manifests


def _dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)


def render_k8s_manifest(service: Service) -> str:
    documents = [_dump(resource) for resource in k8s_resources(service)]
    return _K8S_HEADER + "---\n" + "---\n".join(documents)


def render_k8s_kustomization(service: Service) -> str:
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{service.name}.yaml"],
        "configMapGenerator": [
            {
                "name": service.name,
                # labelled like the service's other objects: CI applies one service with
                # `kubectl apply -k <overlay> -l app.kubernetes.io/name=<service>`
                "options": {"labels": _labels(service)},
                "literals": [f"{key}={value}" for key, value in service_config(service).items()],
            }
        ],
    }
    return _K8S_HEADER + _dump(kustomization)


GENERATED = {
    **{s.dockerfile: render_dockerfile(s) for s in SERVICES.values()},
    **{s.workflow: render_workflow(s) for s in SERVICES.values()},
    **{s.k8s_dir / f"{s.name}.yaml": render_k8s_manifest(s) for s in SERVICES.values()},
    **{s.k8s_dir / "kustomization.yaml": render_k8s_kustomization(s) for s in SERVICES.values()},
}


def main() -> int:
    for path, text in GENERATED.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
