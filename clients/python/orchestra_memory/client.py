"""``MemoryClient``: the blocking client, with the same methods, arguments and errors as
:class:`~orchestra_memory.aio.AsyncMemoryClient`.

It talks to memoryd over a plain socket from the calling thread: no event loop, no thread of its own.
One client may be shared by any number of threads; their calls are multiplexed on its one connection
(see ``_blocking.py`` for how the threads share the reading). It also works inside a program that runs an
asyncio loop, but blocks that loop's thread while it waits: use ``AsyncMemoryClient`` there.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from typing import Any, Callable, List, Mapping, Optional

from google.protobuf.message import DecodeError

from . import _api
from ._api import Call
from ._blocking import BlockingConnection
from ._wire import NotProcessed, encode_metadata, goaway_error, undecodable
from .aio import DEFAULT_MAX_FRAME_BYTES, default_socket_path
from .errors import ConnectionError, DeadlineExceededError, error_from_status


class MemoryClient:
    """Blocking, thread-safe client of memoryd.

    Args:
        socket_path: memoryd's socket; default ``$MEMORYD_SOCKET``, else ``/run/memoryd/memoryd.sock``.
        timeout: default timeout of every call in seconds (None = no local limit; the daemon's
            ``default_timeout_ms`` applies). Every method also takes ``timeout=`` for that call.
        connect_timeout: limit for opening the connection.
        metadata: string pairs sent with every call (``Request.metadata``).
        max_frame_bytes: requests larger than this raise ValidationError locally (the daemon would drop the
            connection); match the daemon's ``max_frame_bytes``.
    """

    def __init__(
        self,
        socket_path: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        *,
        connect_timeout: float = 5.0,
        metadata: Optional[Mapping[str, str]] = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.metadata = dict(metadata or {})
        self._metadata_field = encode_metadata(self.metadata)
        self.max_frame_bytes = max_frame_bytes
        self._conn: Optional[BlockingConnection] = None
        # Replaced connections whose calls (accepted before a GoAway) are still being answered.
        self._draining: List[BlockingConnection] = []
        self._connect_lock = threading.Lock()
        # A client dropped without close() closes its socket.
        self._finalizer: Optional[weakref.finalize] = None

    # --- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection. Calls still waiting in other threads fail with ConnectionError. The
        client may be used again: the next call reconnects."""
        with self._connect_lock:
            conn, self._conn = self._conn, None
            conns = self._draining + ([conn] if conn is not None else [])
            self._draining = []
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        for c in conns:
            c.close()

    def __enter__(self) -> "MemoryClient":
        self.initialize()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.usable

    # --- calls ---------------------------------------------------------------------------------------

    def _connection(self, deadline: Optional[float]) -> BlockingConnection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        wait = -1 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._connect_lock.acquire(timeout=wait):
            raise DeadlineExceededError(f"timed out waiting for another thread to connect to {self.socket_path}")
        try:
            conn = self._conn
            if conn is not None and conn.usable:
                return conn
            if conn is not None:
                if conn.in_flight == 0:
                    conn.close("replaced by a new connection")
                else:
                    # After a GoAway the calls it accepted are still answered: their threads read it to the
                    # end and close it then.
                    self._draining = [c for c in self._draining if not c.closed] + [conn]
            timeout = self.connect_timeout
            if deadline is not None:
                timeout = min(timeout, max(deadline - time.monotonic(), 0.001))
            conn = self._conn = BlockingConnection.open(self.socket_path, timeout)
            if self._finalizer is not None:
                self._finalizer.detach()
            self._finalizer = weakref.finalize(self, conn.close, "the MemoryClient was garbage-collected")
            return conn
        finally:
            self._connect_lock.release()

    def _run(self, call: Call) -> Any:
        """Sends one call and returns its decoded result; raises the call's error."""
        seconds = self.timeout if call.timeout is None else call.timeout
        deadline = None if seconds is None else time.monotonic() + seconds
        method = call.method
        try:
            for attempt in (1, 2):
                conn = self._conn
                if conn is None or not conn.usable:
                    conn = self._connection(deadline)
                timeout_ms = 0
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise DeadlineExceededError(f"{method.name}: timed out after {seconds:.3g} s before it was sent")
                    timeout_ms = max(1, math.ceil(remaining * 1000))
                try:
                    status, payload = conn.call(method, call.payload, timeout_ms, self._metadata_field,
                                                self.max_frame_bytes, deadline)
                except NotProcessed as e:
                    if attempt == 1:
                        continue  # not processed: safe to send again on a new connection
                    raise goaway_error(e.goaway, method.name) from None
                except DeadlineExceededError as e:
                    raise DeadlineExceededError(f"{method.name}: {e} (timeout {seconds} s)") from None
                if status is not None:
                    raise error_from_status(status)
                break
        except (ConnectionError, DeadlineExceededError) as e:
            if call.unreachable is not None:
                return call.unreachable(e)
            raise
        try:
            return call.decode(payload)
        except DecodeError as e:
            raise undecodable(method.name, e) from None


def _blocking(spec: Callable[..., Call]) -> Callable[..., Any]:
    def method(self: MemoryClient, *args: Any, **kwargs: Any) -> Any:
        return self._run(spec(self, *args, **kwargs))

    return method


_api.install(MemoryClient, _blocking)

__all__ = ["MemoryClient"]
