"""`mercato up`: run the embedded platform as supervised OS processes.

nats-server first, then every service instance on its own port with its own environment;
a crashed instance is restarted with exponential backoff; SIGINT/SIGTERM stop everything
in reverse order and nothing is left behind (children also die with us via PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import aiohttp
import orjson

from chassis import EmbeddedNatsServer, die_with_parent, free_port
from mercato_cli.chaos.faultproxy import FaultProxyHub
from mercato_cli.control import SupervisorControl
from mercato_cli.datadir import DataDir
from mercato_cli.prometheus import EmbeddedPrometheus, Target, embedded_prometheus
from mercato_cli.seed import seed_platform
from mercato_cli.status import is_ready
from mercato_cli.topology import SERVICES, ServiceSpec

BACKOFF_START = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # an instance up this long has its backoff reset
STOP_GRACE = 15.0


@dataclass
class Instance:
    spec: ServiceSpec
    index: int
    port: int
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = BACKOFF_START
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def instance_id(self) -> str:
        return f"{self.spec.name}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class PlatformAlreadyRunningError(RuntimeError):
    pass


class Supervisor:
    def __init__(
        self,
        data: DataDir,
        *,
        replicas: dict[str, int],
        gateway_port: int,
        seed: bool = True,
        ready_timeout: float = 60.0,
        say: Callable[[str], None] = print,
        prometheus: bool = False,
        fault_proxy: bool = False,
    ) -> None:
        self.data = data
        # `mercato up --fault-proxy`: each service reaches the broker through its own link of
        # a fault proxy (mercato_cli.chaos.faultproxy) that `mercato chaos` can slow or cut.
        self.with_fault_proxy = fault_proxy
        self.fault_proxy: FaultProxyHub | None = None
        self.with_prometheus = prometheus
        self.prometheus: EmbeddedPrometheus | None = None
        # The console's way in (mercato_cli.control): kill an instance for a demo.
        self.control: SupervisorControl | None = None
        self.replicas = replicas
        self.gateway_port = gateway_port
        self.seed = seed
        self.ready_timeout = ready_timeout
        self.say = say
        self.instances: list[Instance] = []
        self.nats: EmbeddedNatsServer | None = None
        self.stopping = asyncio.Event()
        self._lock: IO[str] | None = None
        self._events: IO[bytes] | None = None
        self._started = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        self.data.create()
        self._take_lock()
        if free_port(preferred=self.gateway_port) != self.gateway_port:
            self.say(
                f"port {self.gateway_port} is in use: choose another with --port or MERCATO_PORT"
            )
            self._release_lock()
            return 1
        self._events = (self.data.logs / "supervisor.log").open("ab")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        watchers: list[asyncio.Task[None]] = []
        try:
            await self._start_nats()
            await self._start_control()
            self.instances = self._plan()
            for instance in self.instances:
                await self._spawn(instance)
            if self.with_prometheus:
                await self._start_prometheus()
            self._save_state()
            watchers = [asyncio.create_task(self._watch(i)) for i in self.instances]
            watchers.append(asyncio.create_task(self._watch_nats()))
            if self.prometheus is not None:
                watch = self.prometheus.watch(self.stopping, restarted=self._save_state)
                watchers.append(asyncio.create_task(watch))
            if not await self._wait_ready():
                return 1
            self._print_table()
            if self.seed:
                await self._seed()
            self.say("Press Ctrl-C to stop.")
            await self.stopping.wait()
            return 0
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._shutdown()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _take_lock(self) -> None:
        handle = self.data.lock_file.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PlatformAlreadyRunningError(
                f"a platform is already running on {self.data.root}; "
                "stop it first or use another --data-dir"
            ) from None
        self._lock = handle

    def _plan(self) -> list[Instance]:
        plan = []
        taken: set[int] = {self.gateway_port}
        if self.nats is not None:
            taken.add(self.nats.port)
        for spec in SERVICES:
            for index in range(1, self.replicas.get(spec.name, 1) + 1):
                if spec.edge and index == 1:
                    plan.append(Instance(spec, index, self.gateway_port))
                    continue
                preferred = spec.preferred_port + 100 * (index - 1)
                port = free_port(preferred=preferred if preferred not in taken else None)
                while port in taken:
                    port = free_port()
                taken.add(port)
                plan.append(Instance(spec, index, port))
        return plan

    async def _start_nats(self) -> None:
        self.nats = EmbeddedNatsServer(
            self.data.nats_store,
            port=free_port(preferred=4222),
            log_file=self.data.logs / "nats.log",
        )
        await asyncio.to_thread(self.nats.start)
        self._event("started", target="nats", pid=self.nats.pid, url=self.nats.url)
        if self.with_fault_proxy:
            self.fault_proxy = FaultProxyHub.in_front_of(
                [spec.name for spec in SERVICES],
                (self.nats.host, self.nats.port),
                token=self.data.secret("fault_proxy_token"),
            )
            await self.fault_proxy.start()
            self._event("started", target="fault-proxy", url=self.fault_proxy.control_url)

    async def _start_control(self) -> None:
        self.control = SupervisorControl(
            secret=self.data.secret("internal_secret"),
            instances=lambda: self.instances,
            event=self._event,
        )
        await self.control.start()
        self._event("started", target="control", url=self.control.url)

    def _environment(self, instance: Instance) -> dict[str, str]:
        assert self.nats is not None
        env = dict(os.environ)
        broker = self.nats.url
        if self.fault_proxy is not None:
            broker = self.fault_proxy.url_for(instance.spec.name)
        env.update(
            {
                "MERCATO_DATA_DIR": str(self.data.root),
                "MERCATO_ENVIRONMENT": os.environ.get("MERCATO_ENVIRONMENT", "dev"),
                "MERCATO_BROKER_URL": broker,
                "MERCATO_REGISTRY_URL": broker,
                "MERCATO_INSTANCE_ID": instance.instance_id,
                # spans as JSON lines, for `mercato trace` (OTEL_EXPORTER_OTLP_ENDPOINT, when
                # set in this environment, sends them to a collector as well)
                "MERCATO_TRACE_DIR": str(self.data.traces),
                "MERCATO_SUPERVISOR_URL": self.control.url if self.control else "",
                "MERCATO_INTERNAL_SECRET": self.data.secret("internal_secret"),
                "PYTHONUNBUFFERED": "1",
                # identity's dev admin and the key that encrypts its signing keys at rest
                "IDENTITY_ADMIN_PASSWORD": self.data.secret("admin_password"),
                "IDENTITY_KEY_ENCRYPTION_SECRET": self.data.secret("identity_key_secret"),
                # a free port per inventory instance, registered in the registry as "grpc"
                "INVENTORY_GRPC_PORT": "0",
                instance.spec.port_variable: str(instance.port),
            }
        )
        return env

    async def _spawn(self, instance: Instance) -> None:
        if instance.log is None:
            instance.log = (self.data.logs / f"{instance.instance_id}.log").open("ab")
        instance.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            instance.spec.module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=instance.log,
            stderr=asyncio.subprocess.STDOUT,
            env=self._environment(instance),
            start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop them in order
            preexec_fn=die_with_parent,
        )
        instance.started_at = time.monotonic()
        self._event("started", target=instance.instance_id, pid=instance.process.pid)

    async def _watch(self, instance: Instance) -> None:
        while not self.stopping.is_set():
            assert instance.process is not None
            code = await instance.process.wait()
            if self.stopping.is_set():
                return
            lived = time.monotonic() - instance.started_at
            if lived > STABLE_AFTER:
                instance.backoff = BACKOFF_START
            delay = instance.backoff
            instance.backoff = min(instance.backoff * 2, BACKOFF_MAX)
            reason = f"signal {-code}" if code < 0 else f"status {code}"
            self.say(f"{instance.instance_id} exited ({reason}); restarting in {delay:.1f}s")
            self._event("exited", target=instance.instance_id, code=code, restart_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            instance.restarts += 1
            await self._spawn(instance)
            self._save_state()

    async def _watch_nats(self) -> None:
        assert self.nats is not None
        while not self.stopping.is_set():
            await asyncio.sleep(0.5)
            code = self.nats.poll()
            if code is not None and not self.stopping.is_set():
                self.say(f"nats-server exited (status {code}); restarting")
                self._event("exited", target="nats", code=code)
                try:
                    await asyncio.to_thread(self.nats.start)
                except (RuntimeError, TimeoutError) as error:
                    self.say(f"nats-server did not come back: {error}")
                    continue
                self._save_state()

    async def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        pending = {i.instance_id: i for i in self.instances}
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while pending:
                if self.stopping.is_set():
                    return False
                if time.monotonic() > deadline:
                    names = ", ".join(sorted(pending))
                    self.say(
                        f"not ready after {self.ready_timeout:.0f}s: {names} "
                        f"(see `mercato logs --service ...` or {self.data.logs})"
                    )
                    return False
                results = await asyncio.gather(
                    *(is_ready(session, i.url) for i in pending.values())
                )
                for instance_id, ready in zip(list(pending), results, strict=True):
                    if ready:
                        del pending[instance_id]
                if pending:
                    await asyncio.sleep(0.05)
        return True

    async def _seed(self) -> None:
        catalogs = [i.url for i in self.instances if i.spec.name == "catalog"]
        try:
            created = await seed_platform(
                catalog_url=catalogs[0],
                secret=self.data.secret("internal_secret"),
                only_if_empty=True,
            )
        except (aiohttp.ClientError, RuntimeError) as error:
            self.say(f"seeding the demo catalog failed: {error}")
            return
        if created:
            self.say(f"Seeded the demo catalog: {created} products.")

    async def _start_prometheus(self) -> None:
        assert self.nats is not None
        self.prometheus = embedded_prometheus(
            self.data.root / "prometheus",
            log_path=self.data.logs / "prometheus.log",
            taken_ports={self.nats.port, *(i.port for i in self.instances)},
            say=self.say,
            event=self._event,
        )
        if self.prometheus is not None:
            self.prometheus.update_targets(self._targets())
            await self.prometheus.start()

    def _targets(self) -> list[Target]:
        return [Target(i.spec.name, i.instance_id, i.port) for i in self.instances]

    async def _shutdown(self) -> None:
        if self.prometheus is not None:  # started last, stopped first
            await self.prometheus.stop(STOP_GRACE)
        if self.instances:
            self.say("Stopping…")
        # Reverse start order: the edge stops taking work before what it depends on goes.
        for spec in reversed(SERVICES):
            group = [i for i in self.instances if i.spec is spec]
            await asyncio.gather(*(self._stop(i) for i in group))
        if self.fault_proxy is not None:
            await self.fault_proxy.close()
        if self.nats is not None:
            await asyncio.to_thread(self.nats.stop)
            self._event("stopped", target="nats")
        if self.control is not None:
            await self.control.close()
        self.data.clear_state()
        for instance in self.instances:
            if instance.log is not None:
                instance.log.close()
        if self._events is not None:
            self._events.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    async def _stop(self, instance: Instance) -> None:
        process = instance.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        self._event("stopped", target=instance.instance_id, code=process.returncode)

    # -- reporting ---------------------------------------------------------------------------

    def _save_state(self) -> None:
        assert self.nats is not None
        extra: dict[str, Any] = {}
        if self.prometheus is not None:  # an instance back on another port is scraped there
            self.prometheus.update_targets(self._targets())
            extra["prometheus"] = {"url": self.prometheus.url, "pid": self.prometheus.pid}
        if self.fault_proxy is not None:
            extra["fault_proxy"] = self.fault_proxy.describe()
        if self.control is not None:
            extra["supervisor_url"] = self.control.url
        self.data.write_state(
            {
                **extra,
                "supervisor_pid": os.getpid(),
                "data_dir": str(self.data.root),
                "broker_url": self.nats.url,
                "nats_pid": self.nats.pid,
                "gateway_port": self.gateway_port,
                "instances": [
                    {
                        "service": i.spec.name,
                        "instance": i.instance_id,
                        "url": i.url,
                        "pid": i.process.pid if i.process else None,
                        "restarts": i.restarts,
                    }
                    for i in self.instances
                ],
            }
        )

    def _print_table(self) -> None:
        assert self.nats is not None
        elapsed = time.monotonic() - self._started
        rows = [("nats", "nats", self.nats.url, str(self.nats.pid))]
        rows += [
            (i.spec.name, i.instance_id, i.url, str(i.process.pid if i.process else ""))
            for i in self.instances
        ]
        if self.prometheus is not None:
            prometheus = self.prometheus
            rows.append(("prometheus", "prometheus", prometheus.url, str(prometheus.pid or "")))
        widths = [
            max(len(r[c]) for r in [("SERVICE", "INSTANCE", "URL", "PID"), *rows]) for c in range(4)
        ]
        self.say(f"Mercato is up in {elapsed:.1f}s (data dir {self.data.root})")
        self.say(f"API: http://127.0.0.1:{self.gateway_port}/api/v1/products")
        self.say(
            "Admin: admin@mercato.local, password in "
            f"{self.data.root / 'secrets' / 'admin_password'}"
        )
        for row in [("SERVICE", "INSTANCE", "URL", "PID"), *rows]:
            self.say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        self._event("ready", seconds=round(elapsed, 3))

    def _event(self, event: str, **fields: Any) -> None:
        if self._events is None:
            return
        record = {
            "time": datetime.now(UTC).isoformat(),
            "service": "supervisor",
            "level": "info",
            "event": event,
            **fields,
        }
        self._events.write(orjson.dumps(record) + b"\n")
        self._events.flush()
