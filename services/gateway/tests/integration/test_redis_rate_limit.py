"""The shared token bucket on the real Redis at 127.0.0.1:6379."""

import uuid

import pytest

from gateway.ratelimit import RedisRateLimiter

pytestmark = pytest.mark.integration


async def test_replicas_share_one_bucket_per_client() -> None:
    prefix = f"mercato:test:{uuid.uuid4().hex}:"
    first = RedisRateLimiter("redis://127.0.0.1:6379/0", rate=1.0, burst=3, prefix=prefix)
    second = RedisRateLimiter("redis://127.0.0.1:6379/0", rate=1.0, burst=3, prefix=prefix)
    try:
        waits = [
            await first.acquire("ip:a"),
            await second.acquire("ip:a"),
            await first.acquire("ip:a"),
        ]
        assert waits == [0.0, 0.0, 0.0]
        wait = await second.acquire("ip:a")  # the fourth, through the other replica
        assert 0.5 < wait <= 1.0
        assert await first.acquire("ip:b") == 0.0  # another client has its own bucket
    finally:
        await first.close()
        await second.close()
