"""A scripted stand-in for memoryd, for protocol situations the real daemon cannot be made to produce on
demand (GoAway with calls above last_request_id, answers held back or reordered, bad frames), and helpers
that run the same calls through either client.

The server is threads and blocking sockets, so the blocking client (in other threads) and the asyncio
client (in the test's own loop) can both talk to it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List, Optional, Sequence, Tuple

from orchestra_memory import AsyncMemoryClient, MemoryClient
from orchestra_memory._proto.orchestra.memory.v1 import memory_pb2, service_pb2
from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2

KINDS = ["async", "blocking"]


class Peer:
    """The server's end of one client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("the client closed the connection")
            out += chunk
        return out

    def read(self) -> rpc_pb2.Frame:
        (n,) = struct.unpack(">I", self._exactly(4))
        return rpc_pb2.Frame.FromString(self._exactly(n))

    def write(self, frame: rpc_pb2.Frame) -> None:
        body = frame.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def write_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Reads until the client closes; False if it did not within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True


Handler = Callable[[int, Peer], None]


class ScriptedServer:
    """Accepts connections on ``path`` and runs ``handler(n, peer)`` for the n-th (from 1) in a thread."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.connections = 0
        self.errors: List[BaseException] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(16)
        self._threads: List[threading.Thread] = []
        self._peers: List[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._peers.append(sock)
            t = threading.Thread(target=self._serve, args=(self.connections, sock), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, n: int, sock: socket.socket) -> None:
        try:
            self.handler(n, Peer(sock))
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        except BaseException as e:  # noqa: BLE001 - reported by close()
            self.errors.append(e)
        finally:
            sock.close()

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for s in self._peers:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(10)
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- frames the scripts answer with -------------------------------------------------------------------

def ping_response(call_id: int, version: str = "fake") -> rpc_pb2.Frame:
    payload = service_pb2.PingResponse(server_version=version, uptime_ms=1).SerializeToString()
    return rpc_pb2.Frame(response=rpc_pb2.Response(id=call_id, payload=payload))


def item_response(call_id: int, text: str) -> rpc_pb2.Frame:
    item = memory_pb2.MemoryItem(id="mem_" + text, user_id="u", text_content=text)
    payload = service_pb2.GetMemoryItemResponse(item=item).SerializeToString()
    return rpc_pb2.Frame(response=rpc_pb2.Response(id=call_id, payload=payload))


def requested_id(frame: rpc_pb2.Frame) -> str:
    """The item id a GetMemoryItem request asks for."""
    return service_pb2.GetMemoryItemRequest.FromString(frame.request.payload).id


def goaway(last_request_id: int, code: int = 14, message: str = "draining") -> rpc_pb2.Frame:
    return rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=code, message=message, last_request_id=last_request_id))


# --- the same calls through either client -------------------------------------------------------------

Call = Tuple[str, tuple, dict]


def call(name: str, *args: Any, **kwargs: Any) -> Call:
    return (name, args, kwargs)


def run_calls(kind: str, path: str, calls: Sequence[Call], **client_kwargs: Any) -> List[Any]:
    """Makes ``calls`` at once on one client of ``kind`` (threads for the blocking client, tasks for the
    asyncio one); returns each call's result or exception, in order."""
    client_kwargs.setdefault("timeout", 10)
    if kind == "blocking":
        client = MemoryClient(path, **client_kwargs)

        def one(c: Call) -> Any:
            try:
                return getattr(client, c[0])(*c[1], **c[2])
            except Exception as e:  # noqa: BLE001 - returned to the test
                return e

        try:
            if len(calls) == 1:
                return [one(calls[0])]
            with ThreadPoolExecutor(len(calls)) as pool:
                return list(pool.map(one, calls))
        finally:
            client.close()

    async def main() -> List[Any]:
        client = AsyncMemoryClient(path, **client_kwargs)
        try:
            return await asyncio.gather(*(getattr(client, c[0])(*c[1], **c[2]) for c in calls),
                                        return_exceptions=True)
        finally:
            await client.close()

    return asyncio.run(main())


def run_one(kind: str, path: str, name: str, *args: Any, client_kwargs: Optional[dict] = None, **kwargs: Any) -> Any:
    """One call; returns its result or raises its exception."""
    (result,) = run_calls(kind, path, [call(name, *args, **kwargs)], **(client_kwargs or {}))
    if isinstance(result, BaseException):
        raise result
    return result
