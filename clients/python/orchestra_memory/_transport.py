"""The wire protocol over asyncio (``AsyncMemoryClient``): one Unix stream connection, many calls in flight.

Frames are encoded and decoded by ``_wire``. Reads are driven by ``loop.add_reader`` and parsed in place; a
Response completes the future of the call with its id with ``(id, status or None, payload)``.

After a GoAway the connection takes no new calls; calls with an id above ``last_request_id`` were not
processed and are failed with :class:`NotProcessed` so that the caller retries them on a new connection;
the others still get their answers before the server closes.

The socket is driven directly rather than through an asyncio transport because a failed write must not
end reading: a server that refuses a connection sends GoAway and closes at once, and the client's first
write then fails with EPIPE while the GoAway (with the reason) is still unread. Here a write failure only
stops writing; the calls whose frames were not completely written were certainly not processed (the server
cannot act on a partial frame) and are failed with NotProcessed once the reader reaches the end.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Dict, List, Optional, Set, Tuple

from google.protobuf.message import DecodeError

from ._proto.orchestra.rpc.v1 import rpc_pb2
from ._wire import (
    HEADER,
    MAX_INCOMING_FRAME_BYTES,
    Method,
    NotProcessed,
    check_size,
    decode_frame,
    encode_cancel,
    encode_request,
    synthetic_goaway,
)
from .errors import ConnectionError

# Bytes read per recv, into a buffer allocated once per connection (a fresh 256 KiB bytes object per
# recv cost more than the rest of a small call).
_READ_BUFFER = 64 * 1024
# Unsent output above which senders wait, and below which they resume.
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18


class Connection:
    """One connection to memoryd, owned by the event loop that opened it."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.path = path
        self._sock = sock
        self._fd = sock.fileno()
        self._pending: Dict[int, asyncio.Future] = {}
        self._next_id = 1
        self._rbuf = bytearray(_READ_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._in = bytearray()
        # Unsent output as (frame bytes, call id or 0) chunks; the first may be partly sent.
        self._out: List[Tuple[memoryview, int]] = []
        self._out_bytes = 0
        self._writable: Optional[asyncio.Future] = None
        self._write_failed = False
        #: Calls whose frame was not completely written before writing failed.
        self._undelivered: Set[int] = set()
        #: False once the connection takes no new calls (GoAway received, closed, or failed).
        self.usable = True
        self.goaway: Optional[rpc_pb2.GoAway] = None
        self._close_reason = "memoryd closed the connection"
        self._closed = self.loop.create_future()
        self.loop.add_reader(self._fd, self._on_readable)

    @classmethod
    async def open(cls, path: str, timeout: Optional[float]) -> "Connection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            coro = loop.sock_connect(sock, path)
            await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
        except asyncio.TimeoutError as e:
            sock.close()
            raise ConnectionError(f"connecting to memoryd at {path} timed out after {timeout:.3g} s",
                                  e, details={"socket": path}) from None
        except OSError as e:
            sock.close()
            raise ConnectionError(f"cannot connect to memoryd at {path}: {e.strerror or e}", e,
                                  details={"socket": path}) from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, path)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed.done()

    # --- calls -----------------------------------------------------------------------------------------

    def start_call(self, method: Method, payload: bytes, timeout_ms: int, metadata: bytes,
                   max_frame_bytes: int) -> "tuple[int, asyncio.Future]":
        """Sends a Request and returns its id and the future of its ``(id, status or None, payload)``."""
        call_id = self._next_id
        frame = encode_request(call_id, method, timeout_ms, metadata, payload)
        check_size(frame, max_frame_bytes)
        self._next_id = call_id + 1
        fut = self.loop.create_future()
        self._pending[call_id] = fut
        self._write(frame, call_id)
        return call_id, fut

    @property
    def needs_drain(self) -> bool:
        return self._out_bytes > _HIGH_WATER

    async def drain_if_needed(self) -> None:
        """Waits while too much output is unsent (the server is not reading)."""
        while self._out_bytes > _HIGH_WATER and not self._write_failed and not self.closed:
            if self._writable is None or self._writable.done():
                self._writable = self.loop.create_future()
            await asyncio.shield(self._writable)

    def forget(self, call_id: int, send_cancel: bool) -> None:
        """Drops a call the caller gave up on, telling the server when asked to."""
        if self._pending.pop(call_id, None) is not None and send_cancel and not self.closed:
            self._write(encode_cancel(call_id), 0)

    # --- writing ---------------------------------------------------------------------------------------

    def _write(self, data: bytes, call_id: int) -> None:
        if self._write_failed or self.closed:
            if call_id:
                self._undelivered.add(call_id)
            return
        if not self._out:
            try:
                n = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self._on_write_error(e, [call_id])
                return
            if n == len(data):
                return
            data = data[n:]
            self.loop.add_writer(self._fd, self._on_writable)
        self._out.append((memoryview(data), call_id))
        self._out_bytes += len(data)

    def _on_writable(self) -> None:
        while self._out:
            chunk, call_id = self._out[0]
            try:
                n = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._on_write_error(e, [i for _, i in self._out])
                return
            self._out_bytes -= n
            if n < len(chunk):
                self._out[0] = (chunk[n:], call_id)
                return
            self._out.pop(0)
        self.loop.remove_writer(self._fd)
        self._wake_writers()

    def _wake_writers(self) -> None:
        if self._out_bytes <= _LOW_WATER and self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _on_write_error(self, error: OSError, unsent_ids: List[int]) -> None:
        # The server closed (or reset) the connection. Frames not completely written were not processed.
        # Keep reading: a GoAway and answers to earlier calls may still be waiting in the socket.
        self._write_failed = True
        self.usable = False
        self._undelivered.update(i for i in unsent_ids if i)
        self._out.clear()
        self._out_bytes = 0
        try:
            self.loop.remove_writer(self._fd)
        except (ValueError, RuntimeError):
            pass
        self._close_reason = f"the connection to memoryd failed: {error.strerror or error}"
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # --- reading ---------------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            n = self._sock.recv_into(self._rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._close_reason = f"the connection to memoryd failed: {e.strerror or e}"
            self._shut(e)
            return
        if not n:
            self._shut(None)
            return
        buf = self._in
        if not buf and n >= 4 and HEADER.unpack_from(self._rbuf)[0] == n - 4:
            self._deliver(bytes(self._rview[4:n]))  # the usual case: exactly one frame
            return
        buf += self._rview[:n]
        off = 0
        end = len(buf)
        while end - off >= 4:
            (n,) = HEADER.unpack_from(buf, off)
            if n == 0 or n > MAX_INCOMING_FRAME_BYTES:
                self._close_reason = f"memoryd sent a frame of {n} bytes (max {MAX_INCOMING_FRAME_BYTES})"
                self._shut(None)
                return
            if end - off - 4 < n:
                break
            body = bytes(buf[off + 4:off + 4 + n])
            off += 4 + n
            if not self._deliver(body):
                return
        if off:
            del buf[:off]

    def _deliver(self, body: bytes) -> bool:
        if not body:
            self._close_reason = "memoryd sent a frame of 0 bytes"
            self._shut(None)
            return False
        try:
            frame = decode_frame(body)
        except DecodeError as e:
            self._close_reason = f"memoryd sent an undecodable frame: {e}"
            self._shut(None)
            return False
        if type(frame) is tuple:
            fut = self._pending.pop(frame[0], None)
            if fut is not None and not fut.done():
                fut.set_result(frame)
        elif frame is not None:
            self._on_goaway(frame)
        # Requests and Cancels from the server are not part of the protocol: ignored.
        return True

    def _on_goaway(self, goaway: rpc_pb2.GoAway) -> None:
        self.usable = False
        self.goaway = goaway
        self._close_reason = f"memoryd closed the connection: {goaway.message}"
        for call_id in [i for i in self._pending if i > goaway.last_request_id]:
            fut = self._pending.pop(call_id)
            if not fut.done():
                fut.set_exception(NotProcessed(goaway))

    # --- closing ---------------------------------------------------------------------------------------

    def _shut(self, error: Optional[BaseException]) -> None:
        if self._closed.done():
            return
        self.usable = False
        try:
            self.loop.remove_reader(self._fd)
            self.loop.remove_writer(self._fd)
        except (ValueError, RuntimeError):  # the loop is closed
            pass
        self._sock.close()
        pending, self._pending = self._pending, {}
        not_sent = self.goaway or synthetic_goaway(self._close_reason)
        for call_id, fut in pending.items():
            if fut.done():
                continue
            if call_id in self._undelivered:
                fut.set_exception(NotProcessed(not_sent))
            else:
                fut.set_exception(ConnectionError(self._close_reason, error, details={"socket": self.path}))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._closed.set_result(None)

    def close(self, reason: str = "the client was closed") -> None:
        """Closes now; calls still waiting fail with ConnectionError."""
        if self.loop.is_closed():
            # Its loop is gone (e.g. an earlier asyncio.run): nothing can wait on it any more.
            self.usable = False
            self._sock.close()
            return
        if not self._closed.done():
            self._close_reason = reason
            self._undelivered.clear()
        self._shut(None)

    async def wait_closed(self) -> None:
        """Returns once the connection is closed (by either side)."""
        await asyncio.shield(self._closed)
