"""The frame codec both clients share (PROTOCOL.md): 4-byte big-endian length + ``orchestra.rpc.v1.Frame``.

The envelope is encoded and decoded by hand because it is the same few fields on every call and building
``Frame`` objects for them cost more than the rest of a small call's Python work (``python_client_bench``
in ``scripts/bench-tools`` measures it). Requests carry a method path encoded once per method, metadata
encoded once per client and the payload serialized by the generated code. Incoming frames that are not a
plain Response (GoAway, or any field layout this parser does not expect) go through the generated
``Frame`` parser instead, so the shortcut never changes what a frame means.
"""

from __future__ import annotations

import struct
from typing import Mapping, Optional, Tuple, Union

from google.protobuf.message import DecodeError

from ._proto.orchestra.rpc.v1 import rpc_pb2
from .errors import INTERNAL, UNAVAILABLE, ConnectionError, RpcError, StorageError, ValidationError

SERVICE = "/orchestra.memory.v1.MemoryService/"

#: Largest frame accepted from the server. Bigger than the server's default 4 MiB so that a daemon
#: configured with a larger ``max_frame_bytes`` still works; checked before anything is allocated.
MAX_INCOMING_FRAME_BYTES = 64 * 1024 * 1024

HEADER = struct.Struct(">I")
_SMALL_VARINTS = [bytes([i]) for i in range(128)]


def varint(n: int) -> bytes:
    """``n`` (≥ 0) as a protobuf base-128 varint."""
    if n < 128:
        return _SMALL_VARINTS[n]
    if n < 16384:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 2097152:
        return bytes((n & 0x7F | 0x80, n >> 7 & 0x7F | 0x80, n >> 14))
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """The varint at ``pos`` and the position after it (IndexError past the end)."""
    b = buf[pos]
    if b < 128:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 128:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(value)) + value


class Method:
    """A method of MemoryService with its ``Request.method`` field encoded once."""

    __slots__ = ("name", "path", "field")

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = SERVICE + name
        self.field = _field(2, self.path.encode())

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


def encode_metadata(metadata: Optional[Mapping[str, str]]) -> bytes:
    """``Request.metadata`` entries, encoded once per client. The envelope's strings may not hold NUL
    bytes (the server answers those with GoAway), so they are refused here, before any call."""
    out = b""
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValidationError(f"metadata must map str to str, got {k!r}: {v!r}")
        if "\0" in k or "\0" in v:
            raise ValidationError(f"metadata {k!r} contains a NUL byte, which the protocol cannot carry")
        out += _field(4, _field(1, k.encode()) + _field(2, v.encode()))
    return out


def encode_request(call_id: int, method: Method, timeout_ms: int, metadata: bytes, payload: bytes) -> bytes:
    """A whole Request frame, length prefix included."""
    head = b"\x08" + varint(call_id) + method.field
    if timeout_ms:
        head += b"\x18" + varint(timeout_ms)
    if metadata:
        head += metadata
    if payload:
        head += b"\x2a" + varint(len(payload))
    n = len(head) + len(payload)
    n_bytes = varint(n)
    return HEADER.pack(n + 1 + len(n_bytes)) + b"\x0a" + n_bytes + head + payload


def encode_cancel(call_id: int) -> bytes:
    inner = b"\x08" + varint(call_id)
    return HEADER.pack(len(inner) + 2) + b"\x1a" + varint(len(inner)) + inner


def check_size(frame: bytes, max_frame_bytes: int) -> None:
    if len(frame) - 4 > max_frame_bytes:
        raise ValidationError(f"the request is {len(frame) - 4} bytes, over max_frame_bytes ({max_frame_bytes})",
                              details={"frame_bytes": str(len(frame) - 4)})


# --- decoding ------------------------------------------------------------------------------------------

#: What :func:`decode_frame` returns for a Response: ``(call_id, status or None, payload)``. A status is
#: returned only when its code is not OK.
Response = Tuple[int, Optional[rpc_pb2.Status], bytes]


def _response_fields(body: bytes, pos: int, end: int) -> Union[Response, rpc_pb2.GoAway, None]:
    """Response fields in any order; anything else (a field repeated, an unknown one) goes to the
    generated parser. Raises IndexError when truncated."""
    call_id = 0
    status = None
    payload = b""
    seen = 0
    while pos < end:
        tag = body[pos]
        if tag == 0x08 and not seen & 1:
            call_id, pos = _read_varint(body, pos + 1)
            seen |= 1
        elif tag == 0x1A and not seen & 2:
            n, pos = _read_varint(body, pos + 1)
            payload = body[pos:pos + n]
            pos += n
            seen |= 2
        elif tag == 0x12 and not seen & 4:
            n, pos = _read_varint(body, pos + 1)
            status = rpc_pb2.Status.FromString(body[pos:pos + n])
            pos += n
            seen |= 4
        else:
            return _generated(body)
    if pos != end:
        return _generated(body)
    if status is not None and status.code == 0:
        status = None
    return call_id, status, payload


def _generated(body: bytes) -> Union[Response, rpc_pb2.GoAway, None]:
    frame = rpc_pb2.Frame.FromString(body)
    kind = frame.WhichOneof("kind")
    if kind == "response":
        r = frame.response
        return r.id, (r.status if r.HasField("status") and r.status.code != 0 else None), r.payload
    if kind == "goaway":
        return frame.goaway
    return None


def decode_frame(body: bytes) -> Union[Response, rpc_pb2.GoAway, None]:
    """A Response as ``(id, status, payload)``, a GoAway, or None for frames a client ignores (Request and
    Cancel are not sent by servers). Raises DecodeError for bytes that are not a Frame."""
    try:
        if body[0] == 0x12:  # Frame.response
            end = len(body)
            n = body[1]
            pos = 2
            if n > 127:
                n, pos = _read_varint(body, 1)
            start = pos
            if pos + n == end:
                # The layout every memoryd sends: id, then the payload or the status.
                if body[pos] == 0x08:
                    call_id = body[pos + 1]
                    pos += 2
                    if call_id > 127:
                        call_id, pos = _read_varint(body, pos - 1)
                    if pos == end:
                        return call_id, None, b""
                    if body[pos] == 0x1A:
                        n = body[pos + 1]
                        pos += 2
                        if n > 127:
                            n, pos = _read_varint(body, pos - 1)
                        if pos + n == end:
                            return call_id, None, body[pos:end]
                return _response_fields(body, start, end)
    except IndexError:
        pass  # truncated: the generated parser raises the DecodeError
    return _generated(body)


# --- errors shared by both transports ------------------------------------------------------------------

class NotProcessed(Exception):
    """A call the server did not process: its id was above a GoAway's ``last_request_id``, or its frame
    was never completely written. Safe to send again."""

    def __init__(self, goaway: rpc_pb2.GoAway) -> None:
        super().__init__(goaway.message)
        self.goaway = goaway


def undecodable(method: str, e: Exception) -> RpcError:
    return RpcError(f"memoryd answered {method} with an undecodable payload: {e}", code=INTERNAL)


def goaway_error(goaway: rpc_pb2.GoAway, method: str) -> StorageError:
    """The error of a call that was not processed twice in a row."""
    text = f"{method} was not processed: memoryd sent GoAway twice ({goaway.message})"
    if goaway.code == UNAVAILABLE:
        return ConnectionError(text, details={"goaway_code": str(goaway.code)})
    return RpcError(text, code=goaway.code or UNAVAILABLE, details={"goaway_code": str(goaway.code)})


def synthetic_goaway(reason: str) -> rpc_pb2.GoAway:
    """Stands for a GoAway the server never sent (the connection failed while a frame was being written)."""
    return rpc_pb2.GoAway(code=UNAVAILABLE, message=reason)
