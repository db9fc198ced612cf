"""The images' recipes: one Dockerfile per service, all rendered from one template, linted by
hadolint, and holding the properties the platform promises (locked dependencies, non-root,
health check, the service as PID 1, nothing but the sources in the build context)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_every_generated_file_matches_its_template(topology: ModuleType) -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in topology.GENERATED.items()
        if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"run `python tests/deploy/topology.py`; out of date: {stale}"


def test_every_service_package_has_a_dockerfile(topology: ModuleType) -> None:
    packages = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert packages == set(topology.SERVICES)
    assert {p.parent.name for p in (ROOT / "services").glob("*/Dockerfile")} == packages


def test_hadolint_passes_on_every_dockerfile(topology: ModuleType, tool: Any, run: Any) -> None:
    files = [str(s.dockerfile) for s in topology.SERVICES.values()]
    run(tool("hadolint"), "--failure-threshold", "warning", *files)


def test_hadolint_fails_a_dockerfile_that_breaks_the_rules(
    tmp_path: Path, tool: Any, run: Any
) -> None:
    # The lint above can fail: an unpinned base image and `cd` in RUN are warnings.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && echo hi\n")
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(bad), check=False)
    assert result.returncode != 0
    assert "DL3006" in result.stdout
    assert "DL3003" in result.stdout


def _final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]


def test_dockerfile_properties(service: str, topology: ModuleType) -> None:
    spec = topology.SERVICES[service]
    text = spec.dockerfile.read_text()
    final = _final_stage(text)
    # The base is an argument whose default is the usual public image.
    assert f"ARG BASE_IMAGE={topology.BASE_IMAGE}" in text
    assert final.startswith("${BASE_IMAGE}\n")
    # Dependencies exactly as locked, without the dev group, for this service only.
    syncs = re.findall(r"uv sync ([^\n]+)", text)
    assert syncs
    assert all({"--frozen", "--no-dev", "--package", spec.package} <= set(s.split()) for s in syncs)
    # The final stage copies the virtualenv and nothing of the build: no uv, no compiler.
    assert re.findall(r"^COPY .*", final, flags=re.MULTILINE) == ["COPY --from=build /app /app"]
    assert "uv" not in re.findall(r"^RUN (.*)", final, flags=re.MULTILINE)[0].split()
    # A numeric non-root user (Kubernetes can only verify runAsNonRoot with a number).
    (user,) = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user.split(":")[0].isdigit()
    assert int(user.split(":")[0]) != 0
    # Health check on /readyz; the service is PID 1 in exec form (it gets SIGTERM).
    assert "HEALTHCHECK" in final
    assert "/readyz" in final
    assert f'ENTRYPOINT ["python", "-m", "{service}"]' in final
    # It listens on all interfaces of its container, on its own port.
    assert f"{spec.env_prefix}HOST=0.0.0.0" in final
    assert f"{spec.env_prefix}PORT={spec.port}" in final
    assert f"EXPOSE {spec.port}" in final
    # No secret is baked in: no ENV or ARG names one.
    for line in re.findall(r"^(?:ENV|ARG)\b.*", text, flags=re.MULTILINE):
        assert not re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL", line), line


def test_main_module_is_what_the_image_runs(service: str) -> None:
    main = ROOT / "services" / service / "src" / service / "__main__.py"
    assert main.exists(), f"`python -m {service}` needs {main}"


def test_dockerignore_keeps_all_but_the_sources_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Deny everything, then allow only what the Dockerfiles copy.
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "libs/chassis/pyproject.toml",
        "libs/chassis/src",
        "cli/pyproject.toml",
        "services/*/pyproject.toml",
        "services/*/src",
        "services/*/migrations",
    }
    assert "**/__pycache__" in lines


def _matches(path: str, pattern: str) -> bool:
    """Docker's rule for a whole path: `*` stands for any characters but `/`."""
    regex = "".join("[^/]*" if c == "*" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, path) is not None


def test_every_copied_path_passes_the_dockerignore(service: str, topology: ModuleType) -> None:
    text = topology.SERVICES[service].dockerfile.read_text()
    sources = [
        source
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert "uv.lock" in sources
    patterns = [
        line[1:]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(_matches(source, pattern) for pattern in patterns), (
            f"{source} is copied but .dockerignore keeps it out of the context"
        )
