"""A real image, built from a service's Dockerfile and run: podman builds it with
`--pull=never` from a base image made on this machine (a debootstrap'd Debian bookworm with
Python 3.11, `podman import`ed once and reused), runs it the way Kubernetes does (read-only
root filesystem, no capabilities, a non-root user), checks `/readyz` and the image's own
HEALTHCHECK, and stops it with SIGTERM, which the service, PID 1, must answer by exiting 0.

Nothing can be pulled here, so the Dockerfile's two image arguments get local stand-ins:
BASE_IMAGE (default python:3.11-slim-bookworm) the debootstrap'd Debian, UV_IMAGE (default
ghcr.io/astral-sh/uv) an image holding the uv binary of this virtualenv. The dependencies are
the locked ones, downloaded from PyPI inside the build. This machine reaches PyPI through a
TLS-intercepting proxy, so its CA bundle goes in as a build secret (not kept in the image).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BASE_IMAGE = "localhost/mercato-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Images run here; each starts without a broker or a registry (psp needs none, the gateway
# finds nothing until something registers) and on SQLite, migrated at start in `dev`.
RUN_HERE = ("psp", "gateway")


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def podman() -> None:
    """Podman, configured by tests/deploy/containers.conf; skips, saying why, where it can't."""
    if sys.platform != "linux":
        pytest.skip("podman images are built on Linux only")
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap and the rootful podman this machine supports")
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"Debian packages not installed: {', '.join(missing)}")
    os.environ["CONTAINERS_CONF"] = str(HERE / "containers.conf")
    _podman("info", "--format", "{{.Host.OCIRuntime.Name}}")


def _import(folder: Path, member: str, image: str, *options: str) -> subprocess.CompletedProcess:
    """`tar -C folder -c member | podman import [options] - image`."""
    with subprocess.Popen(["tar", "-C", str(folder), "-c", member], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            ["podman", "import", *options, "-", image],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert tar.returncode == 0
    return imported


@pytest.fixture(scope="module")
def base_image(podman: None) -> str:
    """The local stand-in for python:3.11-slim-bookworm, built once (about 70 s plus the
    download) and reused by later runs."""
    if _podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    rootfs = Path(tempfile.mkdtemp(prefix="mercato-base-"))
    try:
        result = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3.11,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        imported = _import(rootfs, ".", BASE_IMAGE, "--change", 'CMD ["python3.11"]')
        assert imported.returncode == 0, imported.stderr
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def uv_image(podman: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The local stand-in for ghcr.io/astral-sh/uv: that image is the uv binary at /uv."""
    uv = Path(sys.executable).parent / "uv"
    version = subprocess.run(
        [str(uv), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()[1]
    image = f"localhost/mercato-uv:{version}"
    if _podman("image", "exists", image, check=False).returncode != 0:
        folder = tmp_path_factory.mktemp("uv")
        shutil.copy2(uv, folder / "uv")
        imported = _import(folder, "uv", image)
        assert imported.returncode == 0, imported.stderr
    return image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 (loopback)
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(params=RUN_HERE)
def built(
    request: pytest.FixtureRequest, base_image: str, uv_image: str, topology: ModuleType
) -> tuple[str, str]:
    service: str = request.param
    tag = f"localhost/mercato/{service}:test"
    secret = ["--secret", f"id=ca-certificates,src={CA_BUNDLE}"] if CA_BUNDLE.exists() else []
    _podman(
        "build",
        "--pull=never",
        "--format",
        "docker",
        "-f",
        str(topology.SERVICES[service].dockerfile),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"UV_IMAGE={uv_image}",
        *secret,
        "-t",
        tag,
        str(ROOT),
        timeout=600,
    )
    return service, tag


@pytest.fixture
def container(built: tuple[str, str], topology: ModuleType) -> Iterator[dict[str, Any]]:
    service, tag = built
    name = f"mercato-test-{service}-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    container_port = topology.SERVICES[service].port
    _podman(
        "run",
        "--detach",
        "--name",
        name,
        # As on Kubernetes: read-only root, writable data and /tmp, no capabilities.
        "--read-only",
        "--mount",
        "type=tmpfs,destination=/var/lib/mercato,chown=true",
        "--mount",
        "type=tmpfs,destination=/tmp,chown=true",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        # The health check runs when asked (podman's timer needs systemd, absent here).
        "--health-interval",
        "disable",
        "--publish",
        f"127.0.0.1:{port}:{container_port}",
        "--env",
        "MERCATO_ENVIRONMENT=dev",
        tag,
    )
    try:
        yield {"service": service, "image": tag, "name": name, "url": f"http://127.0.0.1:{port}"}
    finally:
        _podman("rm", "--force", "--time", "0", name, check=False)


def test_image_runs_and_becomes_ready(container: dict[str, Any], topology: ModuleType) -> None:
    service, name = container["service"], container["name"]
    deadline = time.monotonic() + 60
    status, body = 0, {}
    while time.monotonic() < deadline:
        try:
            status, body = _get(container["url"] + "/readyz")
        except (OSError, json.JSONDecodeError):
            status = 0
        if status == 200:
            break
        state = _podman("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
        if state != "running":
            logs = _podman("logs", name, check=False)
            pytest.fail(f"{service} stopped ({state}):\n{logs.stdout[-3000:]}{logs.stderr}")
        time.sleep(0.5)
    assert status == 200, body
    assert body["status"] == "ready"
    assert _get(container["url"] + "/livez") == (200, {"status": "alive"})

    # The image's own HEALTHCHECK passes inside the container.
    _podman("healthcheck", "run", name)

    # Its logs are JSON lines on stdout, for the log pipeline.
    lines = [line for line in _podman("logs", name).stdout.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert records
    assert {r.get("service") for r in records} == {service}

    # What the image is: a numeric non-root user, the service as PID 1, no build tooling,
    # no sources or build secrets left behind.
    image = json.loads(_podman("image", "inspect", container["image"]).stdout)[0]
    assert image["Config"]["User"] == f"{topology.UID}:{topology.UID}"
    assert image["Config"]["Entrypoint"] == ["python", "-m", service]
    assert image["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    probe = (
        "import os, shutil, sys; "
        "print(open('/proc/1/cmdline').read().split(chr(0))[:3]); "
        "print(os.getuid(), shutil.which('uv'), shutil.which('gcc'), "
        "[p for p in ('/src', '/run/secrets/ca-certificates.crt', '/root/.cache/uv') "
        "if os.path.exists(p)])"
    )
    facts = _podman("exec", name, "python", "-c", probe).stdout.splitlines()
    assert facts[0].endswith(f"'-m', '{service}']")
    assert facts[1] == f"{topology.UID} None None []"

    # SIGTERM: the service finishes and exits 0 well within the grace period.
    started = time.monotonic()
    _podman("stop", "--time", "20", name, timeout=60)
    stopped_after = time.monotonic() - started
    exit_code = _podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert exit_code == "0", _podman("logs", name, check=False).stdout[-2000:]
    assert stopped_after < 15
