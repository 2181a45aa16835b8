"""Regenerates the Python code for the regiond API (regiond.api.v1) from protos/regions/v1/regions.proto.

Run after editing the .proto:  .venv/bin/python protos/generate.py
The generated files are committed; tests/test_api_proto.py fails when they are stale.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PROTO = "regions/v1/regions.proto"
GENERATED = ("regions/v1/regions_pb2.py", "regions/v1/regions_pb2.pyi", "regions/v1/regions_pb2_grpc.py")


def generate(out_dir: Path) -> dict[str, bytes]:
    """Runs protoc (from grpcio-tools) into out_dir; returns {relative path: contents}."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            PROTO,
        ]
    )
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    # protoc names modules after the .proto's path (regions.v1); installed, they live in regiond.api.v1
    return {
        name: (out_dir / name).read_bytes().replace(b"from regions.v1 import", b"from regiond.api.v1 import")
        for name in GENERATED
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in generate(Path(tmp)).items():
            (ROOT / name).write_bytes(data)
            print(f"wrote protos/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
