"""The wire protocol of SPEC §2 over asyncio: one Unix stream connection, many calls in flight.

Every frame is a 4-byte big-endian length N followed by N bytes of ``orchestra.rpc.v1.Frame``. A reader
task matches Responses to waiting calls by id. After a GoAway, the connection takes no new calls; calls
with an id above ``last_request_id`` were not processed and are failed with :class:`NotProcessed` so the
caller can retry them on a new connection; the others still get their answers before the server closes.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Dict, Mapping, Optional

from google.protobuf.message import DecodeError

from ._proto.orchestra.rpc.v1 import rpc_pb2
from .errors import ConnectionError, RpcError, INTERNAL

#: Largest frame accepted from the server. Bigger than the server's default 4 MiB so that a daemon
#: configured with a larger ``max_frame_bytes`` still works; checked before anything is allocated.
MAX_INCOMING_FRAME_BYTES = 64 * 1024 * 1024

_HEADER = struct.Struct(">I")

# Write-buffer size above which a sender waits for the socket to drain.
_HIGH_WATER = 1 << 20


class NotProcessed(Exception):
    """A call the server did not process (its id was above a GoAway's ``last_request_id``)."""

    def __init__(self, goaway: rpc_pb2.GoAway) -> None:
        super().__init__(goaway.message)
        self.goaway = goaway


class Connection:
    """One connection to memoryd, owned by the event loop that opened it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.path = path
        self._reader = reader
        self._writer = writer
        self._pending: Dict[int, asyncio.Future] = {}
        self._next_id = 1
        self._drain_lock = asyncio.Lock()
        #: False once the connection takes no new calls (GoAway received, closed, or failed).
        self.usable = True
        self.goaway: Optional[rpc_pb2.GoAway] = None
        self._close_reason = "the connection to memoryd was closed"
        self._reader_task = self.loop.create_task(self._read_loop())

    @classmethod
    async def open(cls, path: str, timeout: Optional[float]) -> "Connection":
        try:
            coro = asyncio.open_unix_connection(path)
            reader, writer = await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
        except asyncio.TimeoutError as e:
            raise ConnectionError(f"connecting to memoryd at {path} timed out after {timeout:.3g} s",
                                  e, details={"socket": path}) from None
        except OSError as e:
            raise ConnectionError(f"cannot connect to memoryd at {path}: {e.strerror or e}", e,
                                  details={"socket": path}) from None
        return cls(reader, writer, path)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def start_call(self, method: str, payload: bytes, timeout_ms: int, metadata: Optional[Mapping[str, str]],
                   max_frame_bytes: int) -> "tuple[int, asyncio.Future]":
        """Sends a Request and returns its id and the future of its Response."""
        call_id = self._next_id
        self._next_id += 1
        req = rpc_pb2.Request(id=call_id, method=method, timeout_ms=timeout_ms, payload=payload)
        if metadata:
            req.metadata.update(metadata)
        body = rpc_pb2.Frame(request=req).SerializeToString()
        if len(body) > max_frame_bytes:
            from .errors import ValidationError
            raise ValidationError(f"the request is {len(body)} bytes, over max_frame_bytes ({max_frame_bytes})",
                                  details={"frame_bytes": str(len(body))})
        fut = self.loop.create_future()
        self._pending[call_id] = fut
        self._writer.write(_HEADER.pack(len(body)) + body)
        return call_id, fut

    async def drain_if_needed(self) -> None:
        transport = self._writer.transport
        if transport.get_write_buffer_size() > _HIGH_WATER:
            async with self._drain_lock:
                try:
                    await self._writer.drain()
                except OSError:
                    pass  # the reader reports the closed connection to every pending call

    def forget(self, call_id: int, send_cancel: bool) -> None:
        """Drops a call the caller gave up on, telling the server when asked to."""
        if self._pending.pop(call_id, None) is not None and send_cancel and self.usable:
            body = rpc_pb2.Frame(cancel=rpc_pb2.Cancel(id=call_id)).SerializeToString()
            try:
                self._writer.write(_HEADER.pack(len(body)) + body)
            except (OSError, RuntimeError):
                pass

    async def _read_loop(self) -> None:
        reader = self._reader
        error: Optional[BaseException] = None
        try:
            while True:
                header = await reader.readexactly(4)
                (n,) = _HEADER.unpack(header)
                if n == 0 or n > MAX_INCOMING_FRAME_BYTES:
                    self._close_reason = f"memoryd sent a frame of {n} bytes (max {MAX_INCOMING_FRAME_BYTES})"
                    break
                body = await reader.readexactly(n)
                try:
                    frame = rpc_pb2.Frame.FromString(body)
                except DecodeError as e:
                    self._close_reason = f"memoryd sent an undecodable frame: {e}"
                    break
                kind = frame.WhichOneof("kind")
                if kind == "response":
                    fut = self._pending.pop(frame.response.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame.response)
                elif kind == "goaway":
                    self._on_goaway(frame.goaway)
                # Requests and Cancels from the server are not part of the protocol: ignored.
        except asyncio.IncompleteReadError:
            pass  # EOF: the server closed
        except asyncio.CancelledError:
            error = None
            raise
        except OSError as e:
            error = e
            self._close_reason = f"the connection to memoryd failed: {e.strerror or e}"
        finally:
            self._shut(error)

    def _on_goaway(self, goaway: rpc_pb2.GoAway) -> None:
        self.usable = False
        self.goaway = goaway
        self._close_reason = f"memoryd closed the connection: {goaway.message}"
        for call_id in [i for i in self._pending if i > goaway.last_request_id]:
            fut = self._pending.pop(call_id)
            if not fut.done():
                fut.set_exception(NotProcessed(goaway))

    def _shut(self, error: Optional[BaseException]) -> None:
        self.usable = False
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(self._close_reason, error, details={"socket": self.path}))
        try:
            self._writer.close()
        except RuntimeError:  # the loop is closing
            pass

    def close(self, reason: str = "the client was closed") -> None:
        """Closes now; calls still waiting fail with ConnectionError."""
        if self.usable:
            self._close_reason = reason
        self.usable = False
        if not self._reader_task.done():
            self._reader_task.cancel()
        self._shut(None)

    async def wait_closed(self) -> None:
        try:
            await self._reader_task
        except (asyncio.CancelledError, Exception):
            pass
        try:
            await self._writer.wait_closed()
        except (OSError, RuntimeError, asyncio.CancelledError):
            pass


def undecodable(method: str, e: Exception) -> RpcError:
    return RpcError(f"memoryd answered {method} with an undecodable payload: {e}", code=INTERNAL)
