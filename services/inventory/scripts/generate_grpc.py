"""Generate inventory's gRPC stubs from `proto/` into `src/inventory/grpc_api/`.

    .venv/bin/python services/inventory/scripts/generate_grpc.py [--out DIR]

Runs `grpc_tools.protoc` (the locked grpcio-tools) with fixed options, so the same proto and
tool version always give byte-identical files; a test regenerates into a temporary directory
and compares, so the committed stubs never drift from the proto. The generated modules:

- `inventory_pb2.py` and `inventory_pb2.pyi` (messages, with type stubs for mypy);
- `inventory_pb2_grpc.py` (client stub and servicer), whose absolute import of
  `mercato.inventory.v1` is rewritten to a relative one, so the package can live anywhere.

Each gets a header that keeps ruff (lint and format) off generated code, and mypy's
complaints about it (protobuf's runtime is untyped) out of the type check.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = SERVICE_ROOT / "proto"
PROTO = "mercato/inventory/v1/inventory.proto"
DEFAULT_OUT = SERVICE_ROOT / "src" / "inventory" / "grpc_api"

HEADER = "# ruff: noqa\n# fmt: off\n"
UNTYPED = "# mypy: ignore-errors\n"
ABSOLUTE_IMPORT = "from mercato.inventory.v1 import inventory_pb2 as"
RELATIVE_IMPORT = "from . import inventory_pb2 as"
PACKAGE_INIT = (
    '"""gRPC stubs generated from proto/mercato/inventory/v1/inventory.proto.\n\n'
    "Do not edit: run services/inventory/scripts/generate_grpc.py.\n"
    '"""\n'
)
GENERATED = ("inventory_pb2.py", "inventory_pb2.pyi", "inventory_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Write the stubs into `out` (created if needed); returns the files written."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTO_ROOT}",
                f"--proto_path={well_known}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                PROTO,
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
        produced = Path(scratch) / Path(PROTO).parent
        written = []
        for name in GENERATED:
            text = (produced / name).read_text(encoding="utf-8")
            if name.endswith("_grpc.py"):
                if text.count(ABSOLUTE_IMPORT) != 1:
                    raise RuntimeError(
                        f"unexpected imports in generated {name}; update this script"
                    )
                text = text.replace(ABSOLUTE_IMPORT, RELATIVE_IMPORT)
            if name != "inventory_pb2.py":  # for that one mypy reads the .pyi
                text = UNTYPED + text
            target = out / name
            target.write_text(HEADER + text, encoding="utf-8")
            written.append(target)
    init = out / "__init__.py"
    init.write_text(PACKAGE_INIT, encoding="utf-8")
    return [init, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
