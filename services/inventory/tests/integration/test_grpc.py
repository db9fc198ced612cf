"""The gRPC API against a real server on a free port, in the app's own process and loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from chassis.discovery import InMemoryRegistry
from inventory.grpc_api import inventory_pb2, inventory_pb2_grpc

if TYPE_CHECKING:  # conftest is pytest's, not importable at run time
    from conftest import HarnessFactory


async def test_get_availability_round_trip(start_harness: HarnessFactory) -> None:
    registry = InMemoryRegistry()
    async with start_harness(initial_stock=3, registry=registry) as shop:
        await shop.product("MUG-001")
        await shop.command(
            "inventory.reserve_stock.v1",
            {"order_id": "o1", "lines": [{"sku": "MUG-001", "quantity": 3}]},
        )
        await shop.product("TEE-002")
        # the instance is registered with its gRPC port, whatever port 0 turned into
        [instance] = await registry.instances("inventory")
        assert instance.ports == {"grpc": shop.grpc_port}
        assert shop.grpc_port > 0

        async with grpc.aio.insecure_channel(f"127.0.0.1:{shop.grpc_port}") as channel:
            stub = inventory_pb2_grpc.InventoryServiceStub(channel)
            request = inventory_pb2.GetAvailabilityRequest
            answer = await stub.GetAvailability(
                request(skus=["TEE-002", "MUG-001", "GHOST", "TEE-002"]), timeout=5
            )
            assert [(i.sku, i.available, i.in_stock) for i in answer.items] == [
                ("TEE-002", 3, True),
                ("MUG-001", 0, False),
                ("GHOST", 0, False),
            ]
            empty = await stub.GetAvailability(request(), timeout=5)
            assert list(empty.items) == []

            for skus in (["has space"], [""], [f"S{n}" for n in range(101)]):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.GetAvailability(request(skus=skus), timeout=5)
                assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert raised.value.details()


async def test_a_taken_grpc_port_stops_the_start(start_harness: HarnessFactory) -> None:
    async with start_harness() as first:
        with pytest.raises(OSError, match="gRPC cannot listen"):
            async with start_harness(grpc_port=first.grpc_port):
                pass
