"""Protocol edge cases the real daemon cannot be made to produce on demand, against a scripted server:
GoAway with calls above last_request_id (retried once on a new connection), repeated GoAway, bad frames."""

from __future__ import annotations

import asyncio
import struct
from typing import Awaitable, Callable, List

import pytest

from orchestra_memory import AsyncMemoryClient, ConnectionError, NotFoundError, RpcError
from orchestra_memory._proto.orchestra.memory.v1 import service_pb2
from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2

Handler = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_frame(reader: asyncio.StreamReader) -> rpc_pb2.Frame:
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    return rpc_pb2.Frame.FromString(await reader.readexactly(n))


def write_frame(writer: asyncio.StreamWriter, frame: rpc_pb2.Frame) -> None:
    body = frame.SerializeToString()
    writer.write(struct.pack(">I", len(body)) + body)


def ping_response(call_id: int) -> rpc_pb2.Frame:
    payload = service_pb2.PingResponse(server_version="fake", uptime_ms=1).SerializeToString()
    return rpc_pb2.Frame(response=rpc_pb2.Response(id=call_id, payload=payload))


async def serve(path: str, handler: Handler) -> "tuple[asyncio.AbstractServer, List[int]]":
    connections: List[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            await handler(len(connections), reader, writer)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_connect, path)
    return server, connections


def run(path: str, handler: Handler, body: Callable[[AsyncMemoryClient, List[int]], Awaitable[None]]) -> None:
    async def main() -> None:
        server, connections = await serve(path, handler)
        client = AsyncMemoryClient(path, timeout=5)
        try:
            await body(client, connections)
        finally:
            await client.close()
            server.close()

    asyncio.run(main())


def test_goaway_call_not_processed_is_retried_on_a_new_connection(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        frame = await read_frame(reader)
        if n == 1:
            # Drain before processing this call: it is above last_request_id.
            write_frame(writer, rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=14, message="draining",
                                                                    last_request_id=frame.request.id - 1)))
            await writer.drain()
            return
        assert frame.request.method.endswith("/Ping")
        write_frame(writer, ping_response(frame.request.id))
        await writer.drain()
        await reader.read()  # until the client closes

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        assert (await client.ping())["server_version"] == "fake"
        assert connections == [1, 2]

    run(str(tmp_path / "s.sock"), handler, body)


def test_goaway_answers_calls_up_to_last_request_id_and_retries_the_rest(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        if n == 1:
            first = await read_frame(reader)
            second = await read_frame(reader)
            write_frame(writer, rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=14, message="draining",
                                                                    last_request_id=first.request.id)))
            write_frame(writer, ping_response(first.request.id))  # the processed call is still answered
            await writer.drain()
            del second
            return
        while True:
            frame = await read_frame(reader)
            write_frame(writer, ping_response(frame.request.id))

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        a, b = await asyncio.gather(client.ping(), client.ping())
        assert a["server_version"] == b["server_version"] == "fake"
        assert connections == [1, 2]

    run(str(tmp_path / "s.sock"), handler, body)


def test_goaway_twice_raises(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        await read_frame(reader)
        write_frame(writer, rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=14, message="draining", last_request_id=0)))
        await writer.drain()

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        with pytest.raises(ConnectionError) as e:
            await client.ping()
        assert "draining" in str(e.value)
        assert connections == [1, 2]  # retried exactly once

    run(str(tmp_path / "s.sock"), handler, body)


def test_goaway_with_other_code_raises_rpc_error(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        write_frame(writer, rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=8, message="too many connections")))
        await writer.drain()
        await reader.read()

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        with pytest.raises(RpcError) as e:
            await client.ping()
        assert e.value.code == 8 and "too many connections" in str(e.value)

    run(str(tmp_path / "s.sock"), handler, body)


def test_connection_closed_under_a_call_raises_connection_error(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        await read_frame(reader)  # then close without answering: may have been processed, no retry

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        with pytest.raises(ConnectionError):
            await client.ping()
        assert connections == [1]

    run(str(tmp_path / "s.sock"), handler, body)


def test_oversized_frame_from_server_closes_the_connection(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        await read_frame(reader)
        writer.write(struct.pack(">I", 0xFFFFFFFF))
        await writer.drain()
        await reader.read()

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        with pytest.raises(ConnectionError) as e:
            await client.ping()
        assert "bytes" in str(e.value)

    run(str(tmp_path / "s.sock"), handler, body)


def test_responses_in_any_order_and_error_status(tmp_path) -> None:
    async def handler(n: int, reader, writer) -> None:
        frames = [await read_frame(reader) for _ in range(3)]
        for f in reversed(frames):
            if f.request.method.endswith("/GetMemoryItem"):
                status = rpc_pb2.Status(code=5, error_type=rpc_pb2.NOT_FOUND_ERROR, message="no such item",
                                        details={"id": "x"})
                write_frame(writer, rpc_pb2.Frame(response=rpc_pb2.Response(id=f.request.id, status=status)))
            else:
                write_frame(writer, ping_response(f.request.id))
        await writer.drain()
        await reader.read()

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        results = await asyncio.gather(client.ping(), client.get_memory_item("x"), client.ping(),
                                       return_exceptions=True)
        assert results[0]["server_version"] == "fake" and results[2]["server_version"] == "fake"
        assert isinstance(results[1], NotFoundError) and results[1].details == {"id": "x"}

    run(str(tmp_path / "s.sock"), handler, body)


def test_write_after_the_server_closed_keeps_reading_the_goaway(tmp_path) -> None:
    """The server refuses the connection (GoAway + close) before the client writes: the write fails with
    EPIPE, yet the GoAway's reason is still read and the call counts as not processed."""
    from orchestra_memory._transport import Connection, NotProcessed

    path = str(tmp_path / "s.sock")

    async def handler(n: int, reader, writer) -> None:
        write_frame(writer, rpc_pb2.Frame(goaway=rpc_pb2.GoAway(code=7, message="uid 0 is not allowed")))
        await writer.drain()

    async def main() -> None:
        server, _ = await serve(path, handler)
        conn = await Connection.open(path, 5)
        conn.loop.remove_reader(conn._fd)  # hold back reading until the server has closed
        await asyncio.sleep(0.2)
        _, fut = conn.start_call("/orchestra.memory.v1.MemoryService/Ping", b"", 1000, None, 1 << 22)
        conn.loop.add_reader(conn._fd, conn._on_readable)
        with pytest.raises(NotProcessed) as e:
            await asyncio.wait_for(fut, 5)
        assert e.value.goaway.code == 7 and "not allowed" in e.value.goaway.message
        conn.close()
        server.close()

    asyncio.run(main())


@pytest.mark.parametrize("error_type,code,name", [
    (rpc_pb2.STORAGE_ERROR, 13, "StorageError"),
    (rpc_pb2.CONNECTION_ERROR, 14, "ConnectionError"),
    (rpc_pb2.VALIDATION_ERROR, 3, "ValidationError"),
    (rpc_pb2.OPERATION_ERROR, 10, "OperationError"),
    (rpc_pb2.NOT_FOUND_ERROR, 5, "NotFoundError"),
    (rpc_pb2.DUPLICATE_ERROR, 6, "DuplicateError"),
    (rpc_pb2.ERROR_TYPE_UNSPECIFIED, 8, "RpcError"),
    (rpc_pb2.ERROR_TYPE_UNSPECIFIED, 4, "DeadlineExceededError"),
])
def test_every_error_type_reaches_the_caller(tmp_path, error_type: int, code: int, name: str) -> None:
    """Backend failures the sqlite daemon cannot be made to produce (OperationError, a backend
    ConnectionError, INTERNAL), through the whole client path."""
    import orchestra_memory

    async def handler(n: int, reader, writer) -> None:
        frame = await read_frame(reader)
        status = rpc_pb2.Status(code=code, error_type=error_type, message=f"failed with {name}",
                                operation="firestore.commit", details={"attempts": "5"})
        write_frame(writer, rpc_pb2.Frame(response=rpc_pb2.Response(id=frame.request.id, status=status)))
        await writer.drain()
        await reader.read()

    async def body(client: AsyncMemoryClient, connections: List[int]) -> None:
        with pytest.raises(orchestra_memory.StorageError) as e:
            await client.cleanup_expired_items()
        assert type(e.value).__name__ == name
        assert type(e.value) is getattr(orchestra_memory, name)
        assert (e.value.code, e.value.error_type) == (code, error_type)
        assert e.value.operation == "firestore.commit" and e.value.details == {"attempts": "5"}
        assert f"failed with {name}" in str(e.value)

    run(str(tmp_path / "s.sock"), handler, body)
