"""The committed gRPC code is what the committed .proto files generate."""

from __future__ import annotations

from pathlib import Path

from ledger.proto.generate import PROTO_DIR, generate


def test_generated_code_is_current(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = sorted((tmp_path / "ledger" / "proto").glob("*_pb2*"))
    assert fresh, "protoc generated nothing"
    for path in fresh:
        committed = PROTO_DIR / path.name
        assert committed.exists(), f"{path.name} is not committed: run `make proto`"
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: run `make proto`"
    committed_names = {p.name for p in PROTO_DIR.glob("*_pb2*")}
    assert committed_names == {p.name for p in fresh}, "stale generated files: run `make proto`"
