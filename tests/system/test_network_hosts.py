"""Every service on a host of its own: Linux network namespaces joined by a bridge.

What a cluster gives each pod, made here with `ip netns`, veth pairs and a bridge: each
service runs in its own namespace with its own address (and its own loopback, so nothing
can quietly reach another service at 127.0.0.1), all on the same port 8000 as pods would
be. nats-server (broker and registry) listens on the bridge's address. Each service
registers itself under its host's address, finds the others through the registry, and a
checkout crosses all of them: client → gateway → identity, catalog, orders → inventory
(gRPC and messages), payments → psp, notifications.

Needs root (namespaces and links); skipped with the reason when they cannot be made.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

from chassis import EmbeddedNatsServer, terminate
from mercato_cli.services import registered_instances

pytestmark = [pytest.mark.system, pytest.mark.slow]

PORT = 8000  # every host serves on the same port, as pods do
SERVICES = ["psp", "catalog", "identity", "inventory", "payments", "orders", "notifications",
            "gateway"]  # fmt: skip
ADMIN_PASSWORD = "network hosts admin password"
PASSWORD = "network hosts correct horse battery"


def ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"{' '.join(command)}: {result.stderr.strip()}")


def why_namespaces_cannot_be_made() -> str | None:
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"mprobe{os.getpid() % 100000}"
    try:
        ip("netns", "add", probe)
    except OSError as error:
        return f"cannot create a network namespace here: {error}"
    ip("netns", "del", probe)
    return None


@dataclass
class Network:
    """A bridge on 10.213.<n>.0/24 in this namespace (its .1 is this machine) and one
    namespace per host, linked to the bridge by a veth pair."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    subnet: int = field(default_factory=lambda: random.randint(10, 250))
    hosts: dict[str, str] = field(default_factory=dict)  # name → address

    @property
    def bridge(self) -> str:
        return f"mbr{self.tag}"

    @property
    def gateway_address(self) -> str:
        return f"10.213.{self.subnet}.1"

    def namespace(self, name: str) -> str:
        return f"mercato-{self.tag}-{name}"

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway_address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> str:
        index = len(self.hosts)
        address = f"10.213.{self.subnet}.{10 + index}"
        namespace, outside, inside = (
            self.namespace(name),
            f"mv{self.tag}{index}",
            f"mp{self.tag}{index}",
        )
        ip("netns", "add", namespace)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", namespace)
        ip("link", "set", outside, "master", self.bridge, "up")
        ip("link", "set", inside, "name", "eth0", namespace=namespace)
        ip("addr", "add", f"{address}/24", "dev", "eth0", namespace=namespace)
        ip("link", "set", "eth0", "up", namespace=namespace)
        ip("link", "set", "lo", "up", namespace=namespace)
        self.hosts[name] = address
        return address

    def destroy(self) -> None:
        for name in self.hosts:  # a namespace takes its end of the veth pair with it
            subprocess.run(["ip", "netns", "del", self.namespace(name)], check=False,
                           capture_output=True)  # fmt: skip
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)


@dataclass
class Cluster:
    network: Network
    broker: str
    data_dir: Path

    def url(self, service: str) -> str:
        return f"http://{self.network.hosts[service]}:{PORT}"


def environment(service: str, address: str, broker: str, data_dir: Path) -> dict[str, str]:
    prefix = service.upper()
    return {
        **os.environ,
        "MERCATO_DATA_DIR": str(data_dir),
        "MERCATO_BROKER_URL": broker,
        "MERCATO_REGISTRY_URL": broker,
        "MERCATO_INSTANCE_ID": f"{service}@{address}",
        "MERCATO_INTERNAL_SECRET": "network-hosts-internal-secret",
        "MERCATO_TRACE_DIR": "",
        f"{prefix}_HOST": address,
        f"{prefix}_PORT": str(PORT),
        "IDENTITY_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "IDENTITY_KEY_ENCRYPTION_SECRET": "network-hosts-key-secret",
        "INVENTORY_GRPC_PORT": "50051",
        "GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "GATEWAY_RATE_LIMIT_BURST": "100000",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = why_namespaces_cannot_be_made()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("hosts")
    data_dir = root / "data"
    network = Network()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    nats: EmbeddedNatsServer | None = None
    try:
        network.create()
        nats = EmbeddedNatsServer(root / "nats", host=network.gateway_address,
                                  log_file=root / "nats.log")  # fmt: skip
        nats.start()
        for service in SERVICES:
            address = network.add_host(service)
            logs.append(log := (root / f"{service}.log").open("ab"))
            processes.append(subprocess.Popen(
                ["ip", "netns", "exec", network.namespace(service), sys.executable, "-m", service],
                env=environment(service, address, nats.url, data_dir),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        cluster = Cluster(network, nats.url, data_dir)
        deadline = time.monotonic() + 180
        waiting = set(SERVICES)
        while waiting:
            for service in sorted(waiting):
                try:
                    if httpx.get(f"{cluster.url(service)}/readyz", timeout=2).status_code == 200:
                        waiting.discard(service)
                except httpx.HTTPError:
                    pass
            crashed = [SERVICES[i] for i, p in enumerate(processes) if p.poll() is not None]
            assert not crashed, f"exited: {crashed} (logs in {root})"
            assert time.monotonic() < deadline, f"not ready: {waiting} (logs in {root})"
            time.sleep(0.5)
        yield cluster
    finally:
        # `ip netns exec` execs the service: each pid is the service's own.
        terminate(*processes, timeout=30)
        for log in logs:
            log.close()
        if nats is not None:
            nats.stop()
        network.destroy()


def test_each_service_is_registered_under_its_own_host(cluster: Cluster) -> None:
    instances = asyncio.run(registered_instances(cluster.broker))
    found = {i.service: (i.host, i.port) for i in instances}
    expected = {s: (cluster.network.hosts[s], PORT) for s in SERVICES}
    assert found == expected
    assert len(set(cluster.network.hosts.values())) == len(SERVICES)
    inventory = next(i for i in instances if i.service == "inventory")
    assert inventory.ports.get("grpc") == 50051


def test_a_host_reaches_only_what_the_network_gives_it(cluster: Cluster) -> None:
    """Inside the orders host, 127.0.0.1 is that host's own loopback: catalog is not there,
    only at its own address."""
    probe = (
        "import sys, urllib.request\n"
        "def get(url):\n"
        "    try:\n"
        "        return urllib.request.urlopen(url, timeout=3).status\n"
        "    except Exception as error:\n"
        "        return type(error).__name__\n"
        "print(get(sys.argv[1]), get(sys.argv[2]))\n"
    )
    answer = subprocess.run(
        ["ip", "netns", "exec", cluster.network.namespace("orders"), sys.executable, "-c", probe,
         "http://127.0.0.1:1/readyz", f"{cluster.url('catalog')}/readyz"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    loopback, catalog = answer.stdout.split()
    assert loopback == "URLError"  # nothing listens on the orders host's own loopback
    assert catalog == "200"


def test_a_checkout_crosses_every_host(cluster: Cluster) -> None:
    base = cluster.url("gateway")
    with httpx.Client(base_url=base, timeout=30) as client:
        tokens = client.post("/api/v1/auth/token",
                             json={"email": "admin@mercato.local", "password": ADMIN_PASSWORD})  # fmt: skip
        assert tokens.status_code == 200, tokens.text
        admin = {"authorization": f"Bearer {tokens.json()['access_token']}"}
        sku = f"NH-{uuid.uuid4().hex[:8]}"
        created = client.post("/api/v1/products", headers=admin,
                              json={"sku": sku, "name": "Networked kettle", "category": "kitchen",
                                    "price": {"amount": 4200, "currency": "EUR"}})  # fmt: skip
        assert created.status_code == 201, created.text
        product = created.json()["id"]
        for _ in range(200):  # inventory makes the stock record from catalog's event
            stocked = client.put(f"/api/v1/inventory/stock/{sku}", headers=admin,
                                 json={"action": "adjust", "available": 5, "reason": "hosts"})  # fmt: skip
            if stocked.status_code == 200:
                break
            time.sleep(0.1)
        assert stocked.status_code == 200, stocked.text

        email = f"nh-{uuid.uuid4().hex[:10]}@example.com"
        registered = client.post("/api/v1/auth/register",
                                 json={"email": email, "password": PASSWORD, "name": "Net"})  # fmt: skip
        assert registered.status_code == 201, registered.text
        signed_in = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        shopper = {"authorization": f"Bearer {signed_in.json()['access_token']}"}

        seen = client.get(f"/api/v1/products/{product}", headers=shopper)  # catalog + inventory
        assert seen.status_code == 200, seen.text
        placed = client.post("/api/v1/orders",
                             headers={**shopper, "idempotency-key": uuid.uuid4().hex},
                             json={"items": [{"product_id": product, "quantity": 2}],
                                   "payment_token": "tok_visa"})  # fmt: skip
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]
        deadline = time.monotonic() + 60
        while (order := client.get(f"/api/v1/orders/{order_id}", headers=shopper).json())[
            "status"
        ] == "PENDING":
            assert time.monotonic() < deadline, order
            time.sleep(0.3)
        assert order["status"] == "CONFIRMED", order
        assert order["total"] == {"amount": 8400, "currency": "EUR"}, order

        stock = client.get("/api/v1/inventory/availability", params={"skus": sku},
                           headers=shopper)  # fmt: skip
        assert stock.status_code == 200, stock.text
        assert "3" in stock.text, stock.text
        deadline = time.monotonic() + 30
        while not any(order_id in str(n) for n in
                      client.get("/api/v1/notifications", headers=shopper).json()["items"]):  # fmt: skip
            assert time.monotonic() < deadline, "no notification of the order"
            time.sleep(0.3)
