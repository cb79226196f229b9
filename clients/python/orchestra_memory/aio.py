"""``AsyncMemoryClient``: the memory-manager API over one multiplexed connection to memoryd (asyncio)."""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any, Callable, List, Mapping, Optional

from google.protobuf.message import DecodeError

from . import _api
from ._api import Call
from ._transport import Connection
from ._wire import NotProcessed, encode_metadata, goaway_error, undecodable
from .errors import ConnectionError, DeadlineExceededError, error_from_status

DEFAULT_SOCKET = "/run/memoryd/memoryd.sock"
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024


def default_socket_path() -> str:
    """``$MEMORYD_SOCKET``, else ``/run/memoryd/memoryd.sock``."""
    return os.environ.get("MEMORYD_SOCKET") or DEFAULT_SOCKET


class AsyncMemoryClient:
    """Client of memoryd for asyncio programs.

    All calls share one Unix-socket connection (opened on first use or by :meth:`initialize`); any number
    may be in flight at once. After the daemon restarts, the next call opens a new connection. Calls the
    server did not process before a GoAway are retried once on a new connection.

    Args:
        socket_path: the daemon's socket (default ``$MEMORYD_SOCKET`` or ``/run/memoryd/memoryd.sock``).
        timeout: default per-call timeout in seconds, sent to the server as ``timeout_ms`` and enforced
            locally too (``None``: no local limit, the server's ``default_timeout_ms`` applies).
        connect_timeout: limit for opening the connection, in seconds.
        metadata: string pairs sent with every call (``Request.metadata``), e.g. ``{"agent": "planner"}``.
        max_frame_bytes: largest request frame sent; bigger requests raise ValidationError locally instead
            of making the server drop the connection (the daemon's default limit is 4 MiB).

    Every method also takes ``timeout=`` (seconds) to override the default for that call.
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
        self._conn: Optional[Connection] = None
        # Replaced connections still answering calls they accepted before a GoAway; closed by close().
        self._draining: List[Connection] = []
        self._connect_lock: Optional[asyncio.Lock] = None
        self._lock_loop: Optional[asyncio.AbstractEventLoop] = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Closes the connection. Calls still waiting fail with ConnectionError. The client may be used
        again: the next call reconnects."""
        conn, self._conn = self._conn, None
        conns = self._draining + ([conn] if conn is not None else [])
        self._draining = []
        for c in conns:
            c.close()
            if c.loop is asyncio.get_running_loop():
                await c.wait_closed()

    async def __aenter__(self) -> "AsyncMemoryClient":
        await self.initialize()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.usable

    # --- calls ---------------------------------------------------------------------------------------

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: Optional[float]) -> Connection:
        if self._connect_lock is None or self._lock_loop is not loop:
            self._connect_lock = asyncio.Lock()
            self._lock_loop = loop
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and conn.usable and conn.loop is loop:
                return conn
            if conn is not None and conn.loop is not loop:
                conn.close("the client moved to another event loop")
            elif conn is not None and not conn.closed:
                self._draining = [c for c in self._draining if not c.closed] + [conn]
            timeout = self.connect_timeout
            if deadline is not None:
                timeout = min(timeout, max(deadline - loop.time(), 0.001))
            self._conn = await Connection.open(self.socket_path, timeout)
            return self._conn

    async def _run(self, call: Call) -> Any:
        """Sends one call and returns its decoded result; raises the call's error."""
        loop = asyncio.get_running_loop()
        seconds = self.timeout if call.timeout is None else call.timeout
        deadline = None if seconds is None else loop.time() + seconds
        method = call.method
        try:
            for attempt in (1, 2):
                conn = self._conn
                if conn is None or not conn.usable or conn.loop is not loop:
                    conn = await self._connect(loop, deadline)
                timeout_ms = 0
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise DeadlineExceededError(f"{method.name}: timed out after {seconds:.3g} s before it was sent")
                    timeout_ms = max(1, math.ceil(remaining * 1000))
                call_id, fut = conn.start_call(method, call.payload, timeout_ms, self._metadata_field,
                                               self.max_frame_bytes)
                timer = None if deadline is None else loop.call_at(deadline, _expire, fut, method.name, seconds)
                try:
                    if conn.needs_drain:
                        await conn.drain_if_needed()
                    _, status, payload = await fut
                except NotProcessed as e:
                    if attempt == 1:
                        continue  # not processed: safe to send again on a new connection
                    raise goaway_error(e.goaway, method.name) from None
                except (DeadlineExceededError, asyncio.CancelledError):
                    conn.forget(call_id, send_cancel=True)
                    raise
                finally:
                    if timer is not None:
                        timer.cancel()
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


def _expire(fut: asyncio.Future, method: str, seconds: float) -> None:
    if not fut.done():
        fut.set_exception(DeadlineExceededError(f"{method}: no answer within {seconds:.3g} s (local deadline)"))


def _coroutine(spec: Callable[..., Call]) -> Callable[..., Any]:
    async def method(self: AsyncMemoryClient, *args: Any, **kwargs: Any) -> Any:
        return await self._run(spec(self, *args, **kwargs))

    return method


_api.install(AsyncMemoryClient, _coroutine)

__all__ = ["AsyncMemoryClient", "default_socket_path"]
