"""Token-bucket rate limiting per client: in process, or shared through Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float:
        """0 when the request may go; otherwise seconds until a token is available."""

    async def close(self) -> None: ...


class InProcessRateLimiter:
    """Buckets in a bounded LRU dict: a flood of distinct clients cannot exhaust memory."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def acquire(self, key: str) -> float:
        now = self._clock()
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    async def close(self) -> None:
        return None


# One round trip, atomic in Redis, on Redis's clock (replicas may disagree on theirs):
# refill by elapsed time, take a token if there is one.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same bucket shared by every gateway replica (Redis `MERCATO_REDIS_URL`)."""

    def __init__(self, url: str, *, rate: float, burst: int, prefix: str = "mercato:rl:") -> None:
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self._redis: Redis = Redis.from_url(url)
        self._script = self._redis.register_script(_BUCKET_SCRIPT)

    async def acquire(self, key: str) -> float:
        wait = await self._script(keys=[self.prefix + key], args=[self.rate, self.burst])
        return float(wait)

    async def close(self) -> None:
        await self._redis.aclose()
