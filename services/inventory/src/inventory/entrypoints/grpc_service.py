"""Inventory's gRPC API (`mercato.inventory.v1.InventoryService`), served by `grpc.aio` in
the same process and event loop as the HTTP app."""

from __future__ import annotations

import logging

import grpc
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import SQLAlchemyError

from chassis.tracing import TRACEPARENT, context_from_traceparent, tracer
from inventory.errors import InvalidSkusError
from inventory.grpc_api import inventory_pb2, inventory_pb2_grpc
from inventory.service_layer import handlers
from inventory.service_layer.ports import UnitOfWorkFactory

log = logging.getLogger("inventory")
_SERVICE = "mercato.inventory.v1.InventoryService"


class InventoryService(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, reader: UnitOfWorkFactory) -> None:
        self._reader = reader

    async def GetAvailability(
        self,
        request: inventory_pb2.GetAvailabilityRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_pb2.GetAvailabilityResponse:
        if not request.skus:  # readiness probes ask this: no span, no work
            return inventory_pb2.GetAvailabilityResponse()
        metadata = dict(context.invocation_metadata() or ())
        with tracer().start_as_current_span(
            f"{_SERVICE}/GetAvailability",
            context=context_from_traceparent(
                str(metadata.get(TRACEPARENT, "")), str(metadata.get("tracestate", ""))
            ),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": _SERVICE,
                "rpc.method": "GetAvailability",
            },
            record_exception=False,
        ):
            return await self._availability(request, context)

    async def _availability(
        self,
        request: inventory_pb2.GetAvailabilityRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_pb2.GetAvailabilityResponse:
        try:
            skus = handlers.check_skus(request.skus, location="request")
        except InvalidSkusError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.detail)
        try:
            found = await handlers.availability(self._reader(), skus)
        except (SQLAlchemyError, OSError):
            log.exception("grpc_availability_failed")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "inventory cannot read its stock now")
        return inventory_pb2.GetAvailabilityResponse(
            items=[
                inventory_pb2.Availability(sku=a.sku, available=a.available, in_stock=a.in_stock)
                for a in found
            ]
        )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A `grpc.aio` server for one servicer: `start()` binds and returns the port."""

    def __init__(self, service: InventoryService, *, host: str, port: int) -> None:
        self._service = service
        self._host = host
        self._requested_port = port
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> int:
        # Without SO_REUSEPORT (grpc's default on Linux), a port in use is an error instead of
        # silently splitting the calls with whatever process holds it.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(self._service, server)  # type: ignore[no-untyped-call]
        try:
            port = int(server.add_insecure_port(_address(self._host, self._requested_port)))
        except RuntimeError as error:  # grpc raises this when the port is taken
            raise OSError(
                f"gRPC cannot listen on {_address(self._host, self._requested_port)}: {error}"
            ) from None
        if port == 0:
            raise OSError(f"gRPC cannot listen on {_address(self._host, self._requested_port)}")
        await server.start()
        self._server, self.port = server, port
        log.info("grpc_started", extra={"port": port})
        return port

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let running ones finish for up to `grace` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    async def ping(self) -> None:
        """For readiness: one real call to this server (an empty question)."""
        if self._server is None or self.port is None:
            raise ConnectionError("the gRPC server is not running")
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        host = "::1" if host == "::" else host
        async with grpc.aio.insecure_channel(_address(host, self.port)) as channel:
            stub = inventory_pb2_grpc.InventoryServiceStub(channel)  # type: ignore[no-untyped-call]
            await stub.GetAvailability(inventory_pb2.GetAvailabilityRequest(), timeout=1.0)
