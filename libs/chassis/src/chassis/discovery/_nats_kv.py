"""The embedded default registry: a NATS JetStream KV bucket with TTL heartbeats.

Each instance is one key, `<service>.<instance_id>`, re-put by a heartbeat task every
`heartbeat_interval` (TTL/3 by default) and deleted on graceful shutdown. The bucket's
TTL (its stream's max age) removes the key of an instance that died without a word.

Every registry also resolves: it watches the whole bucket and keeps a local cache that
lookups read, so a lookup never waits on the network. Three things the broker does not
do for us, handled here:

- An entry expiring by max age produces no delete event, unless the bucket was created
  with limit markers (nats-server 2.11+, which we ask for). So the cache also drops an
  instance whose `last_heartbeat` is older than the TTL, at lookup time.
- After a broker restart, nats-py reconnects, but an ordered consumer (what a KV watcher
  is) silently stops delivering. So on every reconnect the watcher is replaced by a fresh
  one whose initial replay becomes the new cache, and our own entries are re-put at
  once, recreating the bucket if the broker came back without its store.
- While the broker is unreachable no heartbeat can arrive, so the cache stops ageing
  instances until it has resynchronised: the last known view beats an empty one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.js.api import KeyValueConfig, StorageType

from chassis.discovery._cache import InstanceCache
from chassis.discovery._instance import ServiceInstance, UtcClock, utc_now
from chassis.discovery._registry import ChangeFeed, ChangeListener, Unsubscribe
from chassis.discovery.errors import (
    InvalidInstanceError,
    InvalidSpecError,
    RegistryUnavailableError,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.js.kv import KeyValue

__all__ = ["DEFAULT_BUCKET", "DEFAULT_TTL", "NatsKvRegistry", "registry_key"]

DEFAULT_BUCKET = "mercato_registry"
DEFAULT_TTL = 10.0

_KEY_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
_KV_OPERATION_DELETES = ("DEL", "PURGE")


def _escape(text: str) -> str:
    # `=` is a valid KV key character that names do not use: it starts a %-style escape of
    # each UTF-8 byte, so distinct ids always give distinct keys (no `a.b` vs `a_b` clash).
    return "".join(
        char if char in _KEY_SAFE else "".join(f"={byte:02X}" for byte in char.encode())
        for char in text
    )


def registry_key(service: str, instance_id: str) -> str:
    """The KV key of an instance: `<service>.<instance_id>`, escaped to valid key chars."""
    return f"{_escape(service)}.{_escape(instance_id)}"


class NatsKvRegistry:
    """A `Registry` in a JetStream KV bucket, with heartbeats and a watched local cache.

    `servers` is a NATS URL (or several). The bucket is created on `start()` if missing,
    with `ttl` as its max age; an existing bucket is used as it is. `clock` stamps
    heartbeats and ages cached instances: hosts' clocks must agree to well within
    `ttl - heartbeat_interval`.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        bucket: str = DEFAULT_BUCKET,
        ttl: float = DEFAULT_TTL,
        heartbeat_interval: float | None = None,
        clock: UtcClock = utc_now,
        reconnect_time_wait: float = 1.0,
        start_timeout: float = 10.0,
    ) -> None:
        if ttl <= 0:
            raise InvalidSpecError(f"ttl must be positive, got {ttl}")
        interval = ttl / 3 if heartbeat_interval is None else heartbeat_interval
        if not 0 < interval < ttl:
            raise InvalidSpecError(f"heartbeat_interval must be in (0, ttl), got {interval}")
        if not bucket or not set(bucket) <= _KEY_SAFE:
            raise InvalidSpecError(f"bucket name {bucket!r} must be letters, digits, - or _")
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.bucket = bucket
        self.ttl = ttl
        self.heartbeat_interval = interval
        self._clock = clock
        self._reconnect_time_wait = reconnect_time_wait
        self._start_timeout = start_timeout
        # A request slower than a TTL is useless: the entry would have expired meanwhile.
        self._request_timeout = min(5.0, ttl)
        self._log = structlog.get_logger("chassis.discovery").bind(bucket=bucket)

        self._feed = ChangeFeed()
        self._cache = InstanceCache(feed=self._feed, ttl=ttl, clock=clock)
        self._own: dict[str, tuple[str, ServiceInstance]] = {}  # instance_id -> (key, instance)
        # Serialises writes of our own entries, so a heartbeat never re-puts an instance
        # that deregister just deleted.
        self._write_lock = asyncio.Lock()

        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._epoch = 0  # bumped on every reconnect; a watcher from an older epoch is stale
        self._closing = False

    async def start(self) -> None:
        """Connect, create the bucket if missing, and load the current view."""
        if self._nc is not None:
            return
        self._closing = False
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._connect()
                self._kv = await self._open_bucket()
                self._tasks = [
                    asyncio.create_task(self._watch_loop(), name="registry-watch"),
                    asyncio.create_task(self._heartbeat_loop(), name="registry-heartbeat"),
                ]
                await self._ready.wait()
        except Exception as exc:
            await self.close(deregister=False)
            raise RegistryUnavailableError(
                f"cannot start the NATS KV registry at {', '.join(self.servers)}: {exc!r}"
            ) from exc

    async def close(self, *, deregister: bool = True) -> None:
        """Stop heartbeats and the watcher, delete our own entries, disconnect.

        `deregister=False` leaves our entries to expire by TTL, as a crash would.
        """
        nc, self._nc = self._nc, None
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if nc is None:
            return
        if deregister and nc.is_connected:
            async with self._write_lock:
                for key, _ in list(self._own.values()):
                    await self._delete_quietly(key)
        self._own.clear()
        self._kv = None
        self._ready.clear()
        with contextlib.suppress(Exception):
            await nc.close()

    async def check(self) -> None:
        """Raise `RegistryUnavailableError` unless connected (for readiness probes)."""
        if self._nc is None or not self._nc.is_connected:
            raise RegistryUnavailableError("not connected to the NATS registry")

    async def register(self, instance: ServiceInstance) -> None:
        """Put `instance` in the bucket and keep it there with heartbeats.

        Raises RegistryUnavailableError if the first put fails; heartbeats keep trying.
        """
        if self._nc is None:
            raise RegistryUnavailableError("register() before start()")
        key = registry_key(instance.service, instance.instance_id)
        fresh = instance.heartbeat(self._clock())
        async with self._write_lock:
            self._own[instance.instance_id] = (key, fresh)
            try:
                await self._put(key, fresh)
            except Exception as exc:
                raise RegistryUnavailableError(f"cannot register {key}: {exc!r}") from exc

    async def deregister(self, instance_id: str) -> None:
        if self._nc is None:
            raise RegistryUnavailableError("deregister() before start()")
        async with self._write_lock:
            own = self._own.pop(instance_id, None)
            found = own or self._cache.find(instance_id)
            if found is None:
                return
            key = found[0]
            self._cache.delete(key)
            try:
                await self._require_kv().delete(key)
            except Exception as exc:
                raise RegistryUnavailableError(f"cannot deregister {key}: {exc!r}") from exc

    async def instances(self, service: str) -> list[ServiceInstance]:
        return self._cache.instances(service)

    async def all_instances(self) -> list[ServiceInstance]:
        return self._cache.all()

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        return self._feed.subscribe(listener)

    # -- connection -------------------------------------------------------------------

    async def _connect(self) -> None:
        self._nc = await nats.connect(
            self.servers,
            name="mercato-discovery",
            connect_timeout=2,
            reconnect_time_wait=self._reconnect_time_wait,
            # A registry must outlive any broker outage: never give up reconnecting.
            max_reconnect_attempts=-1,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            error_cb=self._on_error,
        )

    async def _on_disconnected(self) -> None:
        if not self._closing:
            self._log.warning("registry disconnected from NATS")
            self._cache.suspend_expiry()

    async def _on_reconnected(self) -> None:
        self._epoch += 1
        self._log.info("registry reconnected to NATS")
        self._beat_now.set()
        watcher = self._watcher
        if watcher is not None:
            # Ends the watch loop's iteration; it starts over with a fresh watcher.
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _on_error(self, exc: Exception) -> None:
        # nats-py reports every failed reconnect attempt here; that is expected noise.
        self._log.debug("nats client error", error=repr(exc))

    def _require_kv(self) -> KeyValue:
        if self._kv is None:
            raise RegistryUnavailableError("the registry is not started")
        return self._kv

    async def _open_bucket(self) -> KeyValue:
        assert self._nc is not None
        js = self._nc.jetstream(timeout=self._request_timeout)
        with contextlib.suppress(nats.js.errors.BucketNotFoundError):
            return await js.key_value(self.bucket)
        config = KeyValueConfig(
            bucket=self.bucket,
            ttl=self.ttl,
            storage=StorageType.FILE,
            # A server-placed marker on expiry, so watchers hear of a dead instance.
            limit_marker_ttl=max(1.0, self.ttl),
        )
        try:
            return await js.create_key_value(config)
        except nats.js.errors.KeyValueLimitMarkerTTLNotSupportedError:
            # nats-server < 2.11: no markers; the cache's heartbeat-age check covers it.
            return await js.create_key_value(dataclasses.replace(config, limit_marker_ttl=None))
        except nats.js.errors.APIError:
            # Another process created it first, possibly with other settings: use theirs.
            return await js.key_value(self.bucket)

    # -- writing ----------------------------------------------------------------------

    async def _put(self, key: str, instance: ServiceInstance) -> None:
        try:
            revision = await self._require_kv().put(key, instance.to_json())
        except nats.js.errors.NoStreamResponseError:
            # The broker came back without its store: recreate the bucket, try once more.
            self._kv = await self._open_bucket()
            revision = await self._kv.put(key, instance.to_json())
        self._cache.put(key, instance, revision)

    async def _delete_quietly(self, key: str) -> None:
        try:
            async with asyncio.timeout(self._request_timeout):
                await self._require_kv().delete(key)
        except Exception as exc:
            self._log.warning("cannot delete registry entry", key=key, error=repr(exc))

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._beat_now.wait()
            self._beat_now.clear()
            if self._nc is None or not self._nc.is_connected:
                continue  # the reconnect handler will wake us up
            async with self._write_lock:
                for instance_id, (key, instance) in list(self._own.items()):
                    fresh = instance.heartbeat(self._clock())
                    try:
                        await self._put(key, fresh)
                    except Exception as exc:
                        self._log.warning("registry heartbeat failed", key=key, error=repr(exc))
                    else:
                        self._own[instance_id] = (key, fresh)

    # -- watching ---------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        while True:
            try:
                await self._watch_once(self._epoch)
            except Exception as exc:
                self._log.warning("registry watch failed, retrying", error=repr(exc))
                await asyncio.sleep(min(1.0, self.heartbeat_interval))

    async def _watch_once(self, epoch: int) -> None:
        """Replay the bucket into a fresh cache, then apply live changes until stopped."""
        self._kv = kv = await self._open_bucket()
        watcher = await kv.watchall()
        if epoch != self._epoch:
            # A reconnect happened while subscribing: this watcher may be already dead.
            await self._stop_quietly(watcher)
            return
        self._watcher = watcher
        snapshot: dict[str, tuple[ServiceInstance, int]] | None = {}
        try:
            async for entry in watcher:
                if entry is None:  # nats-py's marker: the initial replay is complete
                    if snapshot is not None:
                        self._cache.replace(snapshot)
                        snapshot = None
                        if self._nc is not None and self._nc.is_connected:
                            self._cache.resume_expiry()
                        self._ready.set()
                    continue
                revision = entry.revision or 0
                if entry.operation in _KV_OPERATION_DELETES:
                    if snapshot is None:
                        self._cache.delete(entry.key, revision)
                    else:
                        snapshot.pop(entry.key, None)
                    continue
                instance = self._decode(entry.key, entry.value)
                if instance is None:
                    continue
                if snapshot is None:
                    self._cache.put(entry.key, instance, revision)
                else:
                    snapshot[entry.key] = (instance, revision)
        finally:
            self._watcher = None
            await self._stop_quietly(watcher)

    async def _stop_quietly(self, watcher: KeyValue.KeyWatcher) -> None:
        # Already stopped, or the connection is gone: either way, nothing left to stop.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._request_timeout):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _decode(self, key: str, value: bytes | None) -> ServiceInstance | None:
        try:
            return ServiceInstance.from_json(value or b"")
        except InvalidInstanceError as exc:
            self._log.warning("ignoring malformed registry entry", key=key, error=str(exc))
            return None
