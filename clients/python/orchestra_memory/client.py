"""``MemoryClient``: the blocking form of :class:`~orchestra_memory.aio.AsyncMemoryClient`.

It runs an :class:`AsyncMemoryClient` on a private event loop in a daemon thread and hands every call to
it, so one ``MemoryClient`` is safe to share between threads and all of them multiplex their calls on one
connection. It also works inside a program that runs its own asyncio loop (the calls block that loop's
thread, though: use ``AsyncMemoryClient`` there).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from concurrent.futures import CancelledError, Future
from typing import Any, Callable, Coroutine, Mapping, Optional

from .aio import DEFAULT_MAX_FRAME_BYTES, AsyncMemoryClient
from .errors import ConnectionError

# The API methods the blocking client exposes, each with the async method's signature and docs.
_API = [
    "initialize", "ping", "add_memory_item", "add_memory_items", "get_memory_item", "delete_memory_item",
    "get_conversation_history", "semantic_search", "search_with_scores", "check_duplicate", "find_duplicate",
    "add_raw_agent_data", "get_agent_data", "list_agent_data", "cleanup_expired_items", "health_check",
]


class MemoryClient:
    """Blocking, thread-safe client of memoryd. Same methods, arguments and errors as
    :class:`AsyncMemoryClient` (see it for the constructor's arguments)."""

    def __init__(
        self,
        socket_path: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        *,
        connect_timeout: float = 5.0,
        metadata: Optional[Mapping[str, str]] = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._client = AsyncMemoryClient(socket_path, timeout, connect_timeout=connect_timeout,
                                         metadata=metadata, max_frame_bytes=max_frame_bytes)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    @property
    def socket_path(self) -> str:
        return self._client.socket_path

    @property
    def timeout(self) -> Optional[float]:
        return self._client.timeout

    @timeout.setter
    def timeout(self, value: Optional[float]) -> None:
        self._client.timeout = value

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                inner = self._client  # not self: the thread must not keep the MemoryClient alive

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    try:
                        loop.run_forever()
                    finally:
                        _shutdown(loop, inner)

                self._thread = threading.Thread(target=run, name="orchestra-memory-client", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
                # A client dropped without close() must not leave its thread behind.
                self._finalizer = weakref.finalize(self, _stop_loop, loop)
            return self._loop

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        loop = self._ensure_loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("MemoryClient cannot be called from its own event-loop thread")
        fut: Future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result()
        except CancelledError:
            raise ConnectionError("the MemoryClient was closed while the call was waiting") from None

    def close(self) -> None:
        """Closes the connection and stops the client's thread. The client may be used again afterwards
        (it starts a new thread and connection)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        self._finalizer.detach()
        try:
            asyncio.run_coroutine_threadsafe(self._client.close(), loop).result(timeout=5)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def __enter__(self) -> "MemoryClient":
        self.initialize()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _stop_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:  # already closed
        pass


def _shutdown(loop: asyncio.AbstractEventLoop, client: AsyncMemoryClient) -> None:
    """Runs on the client's thread once its loop stopped: fail what still waits, then close the loop."""
    try:
        conn, client._conn = client._conn, None
        if conn is not None:
            conn.close()  # calls still waiting fail with ConnectionError...
        tasks = asyncio.all_tasks(loop)
        if tasks:
            # ...which their tasks deliver to the waiting threads here; anything else is cancelled.
            loop.run_until_complete(asyncio.wait(tasks, timeout=1))
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


def _blocking(name: str) -> Callable[..., Any]:
    method = getattr(AsyncMemoryClient, name)

    @functools.wraps(method)
    def call(self: MemoryClient, *args: Any, **kwargs: Any) -> Any:
        return self._run(method(self._client, *args, **kwargs))

    return call


for _name in _API:
    setattr(MemoryClient, _name, _blocking(_name))
del _name

__all__ = ["MemoryClient"]
