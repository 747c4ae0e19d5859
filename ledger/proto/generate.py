"""Regenerate the committed gRPC code: ``python -m ledger.proto.generate``.

Writes ``*_pb2.py``, ``*_pb2_grpc.py`` and their ``.pyi`` types (by mypy-protobuf) beside
each ``.proto``. A test runs this
into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent.parent


def generate(out: Path = ROOT) -> None:
    """Run protoc (from grpcio-tools) over every .proto, output rooted at ``out``."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    bin_dir = Path(sys.executable).parent
    protos = sorted(str(p.relative_to(ROOT)) for p in PROTO_DIR.glob("*.proto"))
    args = ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}", f"--mypy_out={out}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_grpc_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
