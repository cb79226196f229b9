"""The wire protocol over a plain blocking socket, shared by any number of threads (``MemoryClient``).

There is no event loop and no thread of the client's own. A thread that makes a call writes its Request
under ``_send_lock`` and then waits for the Response with the same id. Whoever waits while nobody reads
becomes the *reader*: it reads the socket, completes the calls whose Responses arrive (waking their
threads) and, once its own Response is there, hands the reader role to another waiting thread. A single
thread thus sends and reads itself with no hand-off at all; several threads still multiplex their calls
on the one connection, the Responses coming back in any order.

The socket stays in non-blocking mode; the reader sleeps in ``poll`` until data arrives or its deadline
passes, and a sender whose frame does not fit in the socket buffer polls for room until its deadline.
Waiting threads sleep on a lock of their own, with their own deadline.

GoAway, write failures and closing behave as in the asyncio transport (``_transport.py``): calls above a
GoAway's ``last_request_id``, and calls whose frame was not completely written, end with
:class:`NotProcessed` (safe to retry); the others get their answers, or ConnectionError when the
connection closes under them.
"""

from __future__ import annotations

import _thread
import math
import select
import socket
import threading
import time
from typing import Dict, Optional, Tuple

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
from .errors import ConnectionError, DeadlineExceededError

# Bytes read per recv, into a buffer allocated once per connection (a fresh 256 KiB bytes object per
# recv cost more than the rest of a small call).
_READ_BUFFER = 64 * 1024
_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_POLL_OUT = select.POLLOUT | select.POLLERR | select.POLLHUP
# How long a Cancel may wait for the socket before it is dropped.
_CANCEL_WAIT = 0.5


def _poll_ms(deadline: Optional[float]) -> Optional[int]:
    """Milliseconds until ``deadline`` for poll() (None = forever), rounded up so a wait never ends early."""
    if deadline is None:
        return None
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


class _Waiter:
    """A call waiting for its Response. ``result`` is ``(status, payload)`` or an exception once done;
    ``wakeup`` is the lock its thread sleeps on (only while it sleeps); ``unsent`` marks a request whose
    frame was not completely written. (Class attributes as defaults: making one runs no Python code.)"""

    done = False
    result: object = None
    wakeup: Optional[_thread.LockType] = None
    unsent = False


class BlockingConnection:
    """One connection to memoryd, usable from any thread."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        sock.setblocking(False)
        self.path = path
        self._sock = sock
        self._lock = threading.Lock()        # guards everything below except the socket's byte streams
        self._send_lock = threading.Lock()   # one frame at a time, in id order
        self._next_id = 1
        self._waiting: Dict[int, _Waiter] = {}
        self._reading = False                # a thread holds the reader role
        self._rbuf = bytearray(_READ_BUFFER)
        self._rview = memoryview(self._rbuf)
        self._in = bytearray()               # unparsed input; only the reader touches it
        self._read_poll = select.poll()
        self._read_poll.register(sock.fileno(), _POLL_IN)
        self._write_poll = select.poll()
        self._write_poll.register(sock.fileno(), _POLL_OUT)
        self._fd_closed = False
        #: False once the connection takes no new calls (GoAway received, closed, or failed).
        self.usable = True
        self.closed = False
        self.goaway: Optional[rpc_pb2.GoAway] = None
        self._close_reason = "memoryd closed the connection"

    @classmethod
    def open(cls, path: str, timeout: Optional[float]) -> "BlockingConnection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise ConnectionError(f"connecting to memoryd at {path} timed out after {timeout:.3g} s",
                                  details={"socket": path}) from None
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
        return len(self._waiting)

    # --- a call ----------------------------------------------------------------------------------------

    def call(self, method: Method, payload: bytes, timeout_ms: int, metadata: bytes, max_frame_bytes: int,
             deadline: Optional[float]) -> Tuple[Optional[rpc_pb2.Status], bytes]:
        """Sends a Request and waits for its Response: returns ``(status or None, payload)``. Raises
        NotProcessed, ConnectionError, or DeadlineExceededError when ``deadline`` (``time.monotonic()``)
        passes first — after telling the server with a Cancel."""
        waiter = _Waiter()
        call_id = self._send_request(method, payload, timeout_ms, metadata, max_frame_bytes, deadline, waiter)
        try:
            return self._wait(waiter, deadline)
        except DeadlineExceededError:
            self._give_up(call_id)
            raise

    def _send_request(self, method: Method, payload: bytes, timeout_ms: int, metadata: bytes,
                      max_frame_bytes: int, deadline: Optional[float], waiter: _Waiter) -> int:
        if not self._send_lock.acquire(True, -1 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise DeadlineExceededError("timed out waiting to send: another thread's request is stuck in the "
                                        "socket")
        try:
            with self._lock:
                if not self.usable:
                    raise NotProcessed(self.goaway or synthetic_goaway(self._close_reason))
                call_id = self._next_id
                self._next_id = call_id + 1
                self._waiting[call_id] = waiter
            try:
                frame = encode_request(call_id, method, timeout_ms, metadata, payload)
                if len(frame) - 4 > max_frame_bytes:
                    check_size(frame, max_frame_bytes)
                try:
                    sent = self._sock.send(frame)  # a whole small frame, usually
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as e:
                    waiter.unsent = True
                    self._fail_writing(f"the connection to memoryd failed: {e.strerror or e}")
                    return call_id
                if sent != len(frame):
                    self._write(frame, sent, waiter, deadline)
            except BaseException:
                with self._lock:
                    self._waiting.pop(call_id, None)
                raise
            return call_id
        finally:
            self._send_lock.release()

    def _write(self, frame: bytes, sent: int, waiter: Optional[_Waiter], deadline: Optional[float]) -> None:
        """Writes the rest of a frame from ``sent`` on, waiting for room until ``deadline`` (the caller
        holds ``_send_lock``). A failure ends writing on this connection; reading goes on, as a GoAway and
        answers to earlier calls may still be unread."""
        view = memoryview(frame)[sent:]
        try:
            while True:
                try:
                    view = view[self._sock.send(view):]
                except (BlockingIOError, InterruptedError):
                    pass
                if not view:
                    return
                if not self._write_poll.poll(_poll_ms(deadline)):
                    if len(view) == len(frame):
                        raise DeadlineExceededError("timed out before the request could be sent: memoryd is "
                                                    "not reading")
                    # Part of the frame is in the socket: the stream cannot go on.
                    self._fail_writing("a request could not be completely written before its deadline")
                    raise DeadlineExceededError("timed out while sending the request: memoryd is not reading")
        except OSError as e:
            if waiter is not None:
                waiter.unsent = True
            self._fail_writing(f"the connection to memoryd failed: {e.strerror or e}")

    def _fail_writing(self, reason: str) -> None:
        with self._lock:
            self.usable = False
            self._close_reason = reason
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _give_up(self, call_id: int) -> None:
        """Drops a call whose deadline passed and tells the server (Cancel) when the connection still
        writes. The Cancel waits at most a moment for the send lock and the socket."""
        with self._lock:
            self._waiting.pop(call_id, None)
            if not self.usable:
                return
        if self._send_lock.acquire(timeout=_CANCEL_WAIT):
            try:
                self._write(encode_cancel(call_id), 0, None, time.monotonic() + _CANCEL_WAIT)
            except DeadlineExceededError:
                pass  # memoryd is not reading: the call's deadline passes on its side too
            finally:
                self._send_lock.release()

    # --- waiting and reading ---------------------------------------------------------------------------

    def _wait(self, waiter: _Waiter, deadline: Optional[float]) -> Tuple[Optional[rpc_pb2.Status], bytes]:
        while True:
            with self._lock:
                if waiter.done:
                    break
                lead = not self._reading
                if lead:
                    self._reading = True
                else:
                    waiter.wakeup = _thread.allocate_lock()
                    waiter.wakeup.acquire()
            if lead:
                try:
                    self._read_until(waiter, deadline)
                finally:
                    with self._lock:
                        self._reading = False
                        if self._waiting:
                            self._pass_reading_on()
                    if self.closed:
                        self._release_fd()
                if waiter.done:
                    break
                raise DeadlineExceededError("no answer within the call's timeout (local deadline)")
            else:
                timeout = -1 if deadline is None else max(0.0, deadline - time.monotonic())
                woken = waiter.wakeup.acquire(timeout=timeout)
                with self._lock:
                    waiter.wakeup = None
                    if not woken and not waiter.done:
                        if not self._reading:
                            self._pass_reading_on()  # the role may have been handed to this thread
                        raise DeadlineExceededError("no answer within the call's timeout (local deadline)")
                # Woken: either done, or handed the reader role.
        result = waiter.result
        if type(result) is tuple:
            return result  # type: ignore[return-value]
        raise result  # type: ignore[misc]

    def _pass_reading_on(self) -> None:
        """Wakes one waiting thread to take the reader role (the caller holds ``_lock``)."""
        for w in self._waiting.values():
            if w.wakeup is not None and not w.done:
                w.wakeup.release()
                w.wakeup = None
                return

    def _read_until(self, waiter: _Waiter, deadline: Optional[float]) -> None:
        """Reads and delivers Responses until ``waiter`` is done, the deadline passes or the connection
        ends (the caller holds the reader role)."""
        rbuf = self._rbuf
        while not waiter.done:
            if self.closed:
                return
            wait_ms = None if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
            if not self._read_poll.poll(wait_ms):
                if wait_ms is not None and time.monotonic() >= deadline:  # type: ignore[operator]
                    return
                continue
            try:
                n = self._sock.recv_into(rbuf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                self._shut(f"the connection to memoryd failed: {e.strerror or e}", e)
                return
            if not n:
                self._shut(None, None)
                return
            if n > 4 and not self._in and HEADER.unpack_from(rbuf)[0] == n - 4:
                self._deliver_frame(bytes(self._rview[4:n]))  # the usual case: exactly one frame
            else:
                self._feed(n)

    def _feed(self, n: int) -> None:
        """Takes the ``n`` bytes just read into ``_rbuf``."""
        buf = self._in
        buf += self._rview[:n]
        off = 0
        end = len(buf)
        while end - off >= 4:
            (n,) = HEADER.unpack_from(buf, off)
            if n == 0 or n > MAX_INCOMING_FRAME_BYTES:
                self._shut(f"memoryd sent a frame of {n} bytes (max {MAX_INCOMING_FRAME_BYTES})", None)
                return
            if end - off - 4 < n:
                break
            body = bytes(buf[off + 4:off + 4 + n])
            off += 4 + n
            if not self._deliver_frame(body):
                return
        if off:
            del buf[:off]

    def _deliver_frame(self, body: bytes) -> bool:
        if not body or len(body) > MAX_INCOMING_FRAME_BYTES:
            self._shut(f"memoryd sent a frame of {len(body)} bytes (max {MAX_INCOMING_FRAME_BYTES})", None)
            return False
        try:
            frame = decode_frame(body)
        except DecodeError as e:
            self._shut(f"memoryd sent an undecodable frame: {e}", None)
            return False
        if type(frame) is tuple:
            call_id, status, payload = frame
            with self._lock:
                waiter = self._waiting.pop(call_id, None)
                if waiter is not None:
                    waiter.result = (status, payload)
                    waiter.done = True
                    if waiter.wakeup is not None:
                        waiter.wakeup.release()
                        waiter.wakeup = None
        elif frame is not None:
            self._on_goaway(frame)
        return True

    @staticmethod
    def _complete(waiter: _Waiter, result: object) -> None:
        """Delivers a result (the caller holds ``_lock``)."""
        waiter.result = result
        waiter.done = True
        if waiter.wakeup is not None:
            waiter.wakeup.release()
            waiter.wakeup = None

    def _on_goaway(self, goaway: rpc_pb2.GoAway) -> None:
        with self._lock:
            self.usable = False
            self.goaway = goaway
            self._close_reason = f"memoryd closed the connection: {goaway.message}"
            for call_id in [i for i in self._waiting if i > goaway.last_request_id]:
                self._complete(self._waiting.pop(call_id), NotProcessed(goaway))

    # --- closing ---------------------------------------------------------------------------------------

    def _shut(self, reason: Optional[str], error: Optional[BaseException]) -> None:
        """Ends the connection: every waiting call fails (NotProcessed when its frame was not written)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.usable = False
            if reason is not None:
                self._close_reason = reason
            waiting, self._waiting = self._waiting, {}
            not_sent = self.goaway or synthetic_goaway(self._close_reason)
            for w in waiting.values():
                if w.unsent:
                    self._complete(w, NotProcessed(not_sent))
                else:
                    self._complete(w, ConnectionError(self._close_reason, error, details={"socket": self.path}))
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._release_fd()

    def _release_fd(self) -> None:
        """Closes the descriptor once no thread can be inside a call on it (not while a reader runs)."""
        with self._lock:
            if self._fd_closed or self._reading:
                return
            self._fd_closed = True
        with self._send_lock:
            self._sock.close()

    def close(self, reason: str = "the client was closed") -> None:
        """Closes now; calls still waiting fail with ConnectionError. Safe while other threads read or
        send: they are woken by the shutdown, and the descriptor is closed once the reader has left."""
        with self._lock:
            if self.closed:
                return
            for w in self._waiting.values():
                w.unsent = False  # ended by the client, not "not processed"
        self._shut(reason, None)
