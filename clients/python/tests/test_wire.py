"""The hand-written envelope codec against the generated one: byte-for-byte the same requests, the same
meaning for every response, including layouts the shortcut does not handle itself."""

from __future__ import annotations

import random
import struct

import pytest
from google.protobuf.message import DecodeError

from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2
from orchestra_memory._wire import Method, decode_frame, encode_cancel, encode_metadata, encode_request, varint


def generated_request(call_id: int, path: str, timeout_ms: int, metadata: dict, payload: bytes) -> bytes:
    req = rpc_pb2.Request(id=call_id, method=path, timeout_ms=timeout_ms, payload=payload)
    req.metadata.update(metadata)
    body = rpc_pb2.Frame(request=req).SerializeToString(deterministic=True)
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize("call_id", [1, 127, 128, 300, 2**32 + 5, 2**64 - 1])
@pytest.mark.parametrize("timeout_ms", [0, 1, 30000, 2**40])
@pytest.mark.parametrize("payload_size", [0, 1, 127, 128, 70000])
def test_request_bytes_match_the_generated_code(call_id: int, timeout_ms: int, payload_size: int) -> None:
    payload = random.Random(payload_size).randbytes(payload_size)
    meta = {"agent": "planner", "trace": "x" * 200}
    method = Method("GetMemoryItem")
    ours = encode_request(call_id, method, timeout_ms, encode_metadata(meta), payload)
    assert ours == generated_request(call_id, method.path, timeout_ms, meta, payload)


def test_cancel_bytes_match_the_generated_code() -> None:
    for call_id in (1, 200, 2**40):
        body = rpc_pb2.Frame(cancel=rpc_pb2.Cancel(id=call_id)).SerializeToString()
        assert encode_cancel(call_id) == struct.pack(">I", len(body)) + body


def test_varint() -> None:
    for n in (1, 127, 128, 16383, 16384, 2**63, 2**64 - 1):
        body = rpc_pb2.Cancel(id=n).SerializeToString()
        assert body == b"\x08" + varint(n)


def response(**kw) -> bytes:
    return rpc_pb2.Frame(response=rpc_pb2.Response(**kw)).SerializeToString()


def test_responses() -> None:
    assert decode_frame(response(id=7, payload=b"abc")) == (7, None, b"abc")
    assert decode_frame(response(id=2**60)) == (2**60, None, b"")
    status = rpc_pb2.Status(code=5, error_type=rpc_pb2.NOT_FOUND_ERROR, message="gone", details={"id": "x"})
    call_id, got, payload = decode_frame(response(id=3, status=status))
    assert (call_id, payload) == (3, b"") and got == status
    # An OK status is no error.
    assert decode_frame(response(id=4, status=rpc_pb2.Status(code=0), payload=b"p")) == (4, None, b"p")


def test_layouts_the_shortcut_leaves_to_the_generated_parser() -> None:
    base = response(id=9, payload=b"old")
    inner = base[2:]
    # Fields out of order, a repeated payload (last wins), an unknown field: same meaning as protobuf's.
    for body_inner in (b"\x1a\x03old\x08\x09", inner + b"\x1a\x03new", inner + b"\x78\x01", inner + b"\x32\x00"):
        frame = b"\x12" + varint(len(body_inner)) + body_inner
        parsed = rpc_pb2.Frame.FromString(frame).response
        assert decode_frame(frame) == (parsed.id, None, parsed.payload)


def test_goaway_and_ignored_frames() -> None:
    g = rpc_pb2.GoAway(code=14, message="draining", last_request_id=12)
    assert decode_frame(rpc_pb2.Frame(goaway=g).SerializeToString()) == g
    assert decode_frame(rpc_pb2.Frame(cancel=rpc_pb2.Cancel(id=1)).SerializeToString()) is None


def test_truncated_and_garbage_raise_decode_error() -> None:
    whole = response(id=300, payload=b"x" * 50)
    for cut in (1, 2, 3, len(whole) - 1):
        with pytest.raises(DecodeError):
            decode_frame(whole[:cut])
    with pytest.raises(DecodeError):
        decode_frame(b"\xff\xff\xff")
