"""The committed gRPC stubs are exactly what the generator makes from the proto today."""

import importlib.util
from pathlib import Path
from types import ModuleType

SERVICE = Path(__file__).resolve().parents[2]
COMMITTED = SERVICE / "src" / "inventory" / "grpc_api"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_grpc", SERVICE / "scripts" / "generate_grpc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    written = generator().generate(tmp_path)
    fresh = {path.name: path.read_bytes() for path in written}
    committed = {path.name: path.read_bytes() for path in COMMITTED.iterdir() if path.is_file()}
    assert sorted(committed) == sorted(fresh), "stale or missing files in grpc_api/"
    for name, content in fresh.items():
        assert committed[name] == content, (
            f"{name} drifted from proto/: run services/inventory/scripts/generate_grpc.py"
        )


def test_the_stubs_speak_the_proto_package() -> None:
    from inventory.grpc_api import inventory_pb2

    service = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
    assert service.full_name == "mercato.inventory.v1.InventoryService"
    assert inventory_pb2.DESCRIPTOR.name == "mercato/inventory/v1/inventory.proto"
    assert [m.name for m in service.methods] == ["GetAvailability"]
