"""deploy/k8s: every overlay rendered by `kubectl kustomize`, validated offline against the
Kubernetes API schemas (kubernetes-validate --strict), and held to the platform's policies:
limits, probes, non-root and read-only containers, secrets only referenced, default-deny
networking opened for exactly the calls the services make, discovery by cluster DNS."""

from __future__ import annotations

import re
import secrets
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from chassis.discovery import KubernetesDnsRegistry, registry_from_url

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest and the newest Kubernetes minor versions the manifests are checked against.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
PER_SERVICE_KINDS = {
    "Deployment",
    "Service",
    "ServiceAccount",
    "ConfigMap",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
}
NAME = "app.kubernetes.io/name"


def _of(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _namespace(objects: list[dict[str, Any]]) -> str:
    (namespace,) = _of(objects, "Namespace")
    return namespace


def _pod(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return _of(objects, "Deployment")[service]["spec"]["template"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]


def _configmap(objects: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    (data,) = [
        o["data"]
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    return dict(data)


# --- schema -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlay_validates_against_the_api_schema(
    overlay: str, version: str, tool: Any, run: Any, tmp_path: Path
) -> None:
    rendered = run(tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)).stdout
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered)
    result = run(tool("kubernetes-validate"), "-k", version, "--strict", str(manifest))
    # An unknown kind only warns (no schema): every object must have passed, one by one.
    assert "WARN" not in result.stdout + result.stderr, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len([d for d in yaml.safe_load_all(rendered) if d])


def test_schema_validation_rejects_an_invalid_object(
    tool: Any, run: Any, tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    # The check above can fail: a misspelt field in a Deployment is an error.
    deployment = dict(_of(rendered["prod"], "Deployment")["catalog"])
    deployment["spec"] = {**deployment["spec"], "replica": 3}
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    validate = [tool("kubernetes-validate"), "-k", KUBERNETES_VERSIONS[0], "--strict"]
    result = run(*validate, str(manifest), check=False)
    assert result.returncode != 0
    assert "'replica' was unexpected" in result.stdout


def test_each_service_folder_renders_alone(service: str, tool: Any, run: Any) -> None:
    objects = list(
        yaml.safe_load_all(run(tool("kubectl"), "kustomize", str(K8S / "base" / service)).stdout)
    )
    assert {o["kind"] for o in objects} >= PER_SERVICE_KINDS


# --- what each overlay holds ---------------------------------------------------------------


def test_overlay_holds_every_service_and_nothing_else(
    overlay: str, rendered: dict[str, list[dict[str, Any]]], topology: ModuleType
) -> None:
    objects = rendered[overlay]
    assert _namespace(objects) == f"mercato-{overlay}"
    by_service: dict[str, set[str]] = {}
    for o in objects:
        labels = o["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "mercato", o["metadata"]["name"]
        # CI applies one service by its label, or the shared platform objects.
        if labels.get("app.kubernetes.io/component") == "platform":
            assert NAME not in labels
            continue
        by_service.setdefault(labels[NAME], set()).add(o["kind"])
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == f"mercato-{overlay}"
    assert set(by_service) == set(topology.SERVICES)
    for service, kinds in by_service.items():
        extra = {"Ingress"} if service == "gateway" else set()
        assert kinds == PER_SERVICE_KINDS | extra, service
    assert "Secret" not in {o["kind"] for o in objects}  # referenced, never committed


def test_references_resolve(overlay: str, rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered[overlay]
    configmaps = _of(objects, "ConfigMap")
    accounts = _of(objects, "ServiceAccount")
    deployments = _of(objects, "Deployment")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pod["spec"]["serviceAccountName"] in accounts
        for container in _containers(pod):
            for source in container["envFrom"]:
                assert source["configMapRef"]["name"] in configmaps
        service = _of(objects, "Service")[name]
        assert service["spec"]["selector"].items() <= labels.items()
        port_names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
        hpa = _of(objects, "HorizontalPodAutoscaler")[name]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert hpa["spec"]["minReplicas"] >= 1
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        pdb = _of(objects, "PodDisruptionBudget")[name]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "replicas" not in deployment["spec"]  # the HPA owns the replica count


def test_images_are_pinned_per_overlay(
    overlay: str, rendered: dict[str, list[dict[str, Any]]], service: str
) -> None:
    for container in _containers(_pod(rendered[overlay], service)):
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name.endswith(f"mercato-{service}") or name == f"mercato/{service}", image
        assert tag not in ("", "latest"), image
        if overlay != "dev":
            assert name.startswith("ghcr.io/"), image


# --- pod policies --------------------------------------------------------------------------


def test_pod_meets_the_policies(
    overlay: str,
    service: str,
    rendered: dict[str, list[dict[str, Any]]],
    topology: ModuleType,
) -> None:
    spec = topology.SERVICES[service]
    pod = _pod(rendered[overlay], service)
    pod_spec = pod["spec"]
    # Pod Security Standard "restricted", and nothing a service does not use.
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == topology.UID != 0
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False  # DNS discovery needs no API
    # Kubernetes would otherwise set CATALOG_PORT=tcp://… in every pod of the namespace,
    # which is a variable the catalog reads as its port.
    assert pod_spec["enableServiceLinks"] is False
    assert not pod_spec.get("hostNetwork")
    assert not pod_spec.get("hostPID")
    for container in _containers(pod):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert set(resources[kind]) >= {"cpu", "memory"}, (container["name"], kind)
        writable = {m["mountPath"] for m in container["volumeMounts"]}
        assert writable == {"/tmp", "/var/lib/mercato"}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert all("emptyDir" in v and v["emptyDir"]["sizeLimit"] for v in volumes.values())

    main = pod_spec["containers"][0]
    assert main["name"] == service
    assert main["ports"][0] == {"name": "http", "containerPort": spec.port, "protocol": "TCP"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(spec.port)
    assert annotations["prometheus.io/path"] == "/metrics"

    # Graceful termination: endpoints drain during preStop, then SIGTERM gives in-flight
    # requests the shutdown timeout, all within the grace period.
    config = _configmap(rendered[overlay], service)
    shutdown = float(config[f"{spec.env_prefix}SHUTDOWN_TIMEOUT"])
    pre_stop = main["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:2] == ["python", "-c"]
    assert pod_spec["terminationGracePeriodSeconds"] > topology.PRE_STOP_SECONDS + shutdown

    # Migrations run once per pod start, before the service, with the same image.
    if spec.database:
        (migrate,) = pod_spec["initContainers"]
        assert migrate["args"] == ["migrate"]
        assert migrate["image"] == main["image"]
        assert config[f"{spec.env_prefix}MIGRATE_ON_START"] == "false"
    else:
        assert "initContainers" not in pod_spec


def test_secrets_are_only_referenced(
    overlay: str, service: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    for container in _containers(_pod(rendered[overlay], service)):
        for variable in container.get("env", []):
            assert "value" not in variable, f"{variable['name']} is inline"
            assert set(variable["valueFrom"]) == {"secretKeyRef"}
    for name, value in _configmap(rendered[overlay], service).items():
        assert not any(word in name for word in ("SECRET", "PASSWORD", "DATABASE_URL")), name
        assert "@" not in value, name  # no credentials in a URL


def test_settings_load_from_what_the_pod_gets(
    overlay: str,
    service: str,
    rendered: dict[str, list[dict[str, Any]]],
    topology: ModuleType,
    accepted_variables: Any,
    settings_class: Any,
    settings_env: Any,
) -> None:
    """The service's own settings class accepts the pod's environment, secrets filled in
    with real-looking values, and discovery resolves every callee to its Service."""
    objects = rendered[overlay]
    namespace = _namespace(objects)
    spec = topology.SERVICES[service]
    main = _pod(objects, service)["spec"]["containers"][0]
    env = {**_configmap(objects, "mercato-platform"), **_configmap(objects, service)}
    for variable in main["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        fake = secrets.token_hex(16)
        if variable["name"].endswith("DATABASE_URL"):
            fake = f"postgresql+asyncpg://{service}:{fake}@mercato-postgres-rw:5432/{service}"
        elif variable["name"] == "MERCATO_BROKER_URL":
            fake = "nats://nats:4222"
        elif ref["key"] == "admin-password":
            fake = f"Admin-{fake}"
        env[variable["name"]] = fake
    unknown = set(env) - accepted_variables(service)
    assert not unknown, f"{service} does not read {unknown}"

    settings_env(env)
    settings = settings_class(service)()
    assert settings.environment.value == env["MERCATO_ENVIRONMENT"] == overlay
    assert settings.host == "0.0.0.0"
    assert settings.port == spec.port
    registry = registry_from_url(settings.registry_url)
    assert isinstance(registry, KubernetesDnsRegistry)
    assert registry.namespace == namespace
    services = _of(objects, "Service")
    for callee in spec.calls:
        host = registry.host_for(callee)
        assert host == f"{callee}.{namespace}.svc.cluster.local"
        ports = {p["name"]: p["port"] for p in services[callee]["spec"]["ports"]}
        assert ports["http"] == registry.port
    if "grpc" in spec.extra_ports:
        assert settings.grpc_port == spec.extra_ports["grpc"]


def test_overlays_differ_where_they_should(rendered: dict[str, list[dict[str, Any]]]) -> None:
    sizes = {
        overlay: _of(objects, "HorizontalPodAutoscaler")["catalog"]["spec"]["minReplicas"]
        for overlay, objects in rendered.items()
    }
    assert sizes["dev"] < sizes["staging"] <= sizes["prod"]
    hosts = Counter(
        _of(objects, "Ingress")["gateway"]["spec"]["rules"][0]["host"]
        for objects in rendered.values()
    )
    assert len(hosts) == len(rendered)


# --- network policies ----------------------------------------------------------------------


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def _allowed(
    objects: list[dict[str, Any]], direction: str, pod_labels: dict[str, str]
) -> list[dict[str, Any]]:
    """The rules of `direction` (ingress/egress) that apply to a pod with these labels."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    return [
        rule
        for policy in _of(objects, "NetworkPolicy").values()
        if _selects(policy["spec"]["podSelector"], pod_labels)
        and kind in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get(direction, [])
    ]


def _peer_allows(rule: dict[str, Any], key: str, labels: dict[str, str], port: int) -> bool:
    ports = {p["port"] for p in rule.get("ports", [])}
    if ports and port not in ports:
        return False
    return any(
        "namespaceSelector" not in peer and _selects(peer["podSelector"], labels)
        for peer in rule.get(key, [])
    )


def test_the_facts_are_the_code_s(topology: ModuleType, settings_class: Any) -> None:
    """What the manifests are checked against is what the code does: a service calls another
    when its sources name it ("catalog" in a ServiceClient call, a route, a setting's
    default), uses a broker or a database when it reads `broker_url` / `database_url`."""
    names = set(topology.SERVICES)
    for name, spec in topology.SERVICES.items():
        sources = "\n".join(
            path.read_text() for path in (ROOT / "services" / name / "src").rglob("*.py")
        )
        named = {other for other in names - {name} if re.search(rf"[\"']{other}[\"']", sources)}
        assert named == set(spec.calls), name
        assert ("broker_url" in sources) == spec.broker, name
        assert ("database_url" in sources) == spec.database, name
        fields = settings_class(name).model_fields
        assert fields["port"].default == spec.port, name
        for port_name, number in spec.extra_ports.items():
            assert fields[f"{port_name}_port"].default == number, name


def test_network_allows_exactly_the_calls_the_services_make(
    overlay: str, rendered: dict[str, list[dict[str, Any]]], topology: ModuleType
) -> None:
    objects = rendered[overlay]
    deny = _of(objects, "NetworkPolicy")["default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "mercato"}}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny

    labels = {s: _pod(objects, s)["metadata"]["labels"] for s in topology.SERVICES}
    allowed = set()
    for source in topology.SERVICES:
        for target, spec in topology.SERVICES.items():
            out = any(
                _peer_allows(rule, "to", labels[target], spec.port)
                for rule in _allowed(objects, "egress", labels[source])
            )
            into = any(
                _peer_allows(rule, "from", labels[source], spec.port)
                for rule in _allowed(objects, "ingress", labels[target])
            )
            if out and into:
                allowed.add((source, target))
    expected = {(s.name, callee) for s in topology.SERVICES.values() for callee in s.calls}
    assert allowed == expected


def test_network_lets_each_service_reach_its_infrastructure(
    overlay: str, service: str, rendered: dict[str, list[dict[str, Any]]], topology: ModuleType
) -> None:
    objects = rendered[overlay]
    spec = topology.SERVICES[service]
    egress = _allowed(objects, "egress", _pod(objects, service)["metadata"]["labels"])

    def reaches(labels: dict[str, str], port: int) -> bool:
        return any(_peer_allows(rule, "to", labels, port) for rule in egress)

    assert reaches(topology.POSTGRES, 5432) == spec.database
    for labels, port in topology.BROKERS:
        assert reaches(labels, port) == spec.broker
    assert reaches(topology.OTEL_COLLECTOR, topology.OTLP_HTTP_PORT)
    dns = [
        rule
        for rule in egress
        if {(p["protocol"], p["port"]) for p in rule.get("ports", [])} == {("UDP", 53), ("TCP", 53)}
    ]
    assert dns, "no DNS egress: discovery by cluster DNS would fail"


# --- the infrastructure charts' values ------------------------------------------------------


def test_infrastructure_matches_what_the_services_expect(topology: ModuleType) -> None:
    infra = K8S / "infra"
    nats = yaml.safe_load((infra / "nats-values.yaml").read_text())
    assert nats["fullnameOverride"] == "nats"  # nats://nats:4222
    assert nats["config"]["jetstream"]["enabled"] is True
    assert nats["config"]["jetstream"]["fileStore"]["enabled"] is True
    rabbit = yaml.safe_load((infra / "rabbitmq-values.yaml").read_text())
    assert rabbit["fullnameOverride"] == "rabbitmq"
    assert "password" not in rabbit["auth"]  # from an existing Secret
    otel = yaml.safe_load((infra / "otel-collector-values.yaml").read_text())
    assert otel["fullnameOverride"] == "otel-collector"  # http://otel-collector:4318
    assert otel["config"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(
        f":{topology.OTLP_HTTP_PORT}"
    )

    documents = list(yaml.safe_load_all((infra / "postgres-cluster.yaml").read_text()))
    (cluster,) = [d for d in documents if d["kind"] == "Cluster"]
    assert {"cnpg.io/cluster": cluster["metadata"]["name"]} == topology.POSTGRES
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in documents if d["kind"] == "Database"}
    expected = {s.name for s in topology.SERVICES.values() if s.database}
    assert set(roles) == set(databases) == expected
    for name, database in databases.items():
        assert database["owner"] == name
        assert database["cluster"]["name"] == cluster["metadata"]["name"]
        assert roles[name]["passwordSecret"] == {"name": f"{name}-postgres"}
        assert roles[name].get("superuser", False) is False


def test_every_referenced_secret_is_documented(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    names = {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for objects in rendered.values()
        for deployment in _of(objects, "Deployment").values()
        for container in _containers(deployment["spec"]["template"])
        for variable in container.get("env", [])
    }
    assert names
    missing = {name for name in names if f"`{name}`" not in docs}
    assert not missing, f"docs/deploy.md does not say how to create {missing}"
