"""Protocol edge cases the real daemon cannot be made to produce on demand, against a scripted server, for
both clients: GoAway with calls above last_request_id (retried once on a new connection), repeated GoAway,
bad frames, answers in any order, timeout_ms and Cancel, metadata."""

from __future__ import annotations

import asyncio
import struct
import threading
import time

import pytest

import orchestra_memory
from _scripted import (
    KINDS,
    Peer,
    ScriptedServer,
    call,
    goaway,
    item_response,
    ping_response,
    requested_id,
    run_calls,
    run_one,
)
from orchestra_memory import (
    AsyncMemoryClient,
    ConnectionError,
    DeadlineExceededError,
    MemoryClient,
    NotFoundError,
    RpcError,
    ValidationError,
)
from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "s.sock")


def serve_pings_until_closed(peer: Peer) -> None:
    while True:
        frame = peer.read()
        if frame.WhichOneof("kind") == "request":
            peer.write(ping_response(frame.request.id))


def test_goaway_call_not_processed_is_retried_on_a_new_connection(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        frame = peer.read()
        if n == 1:
            # Drain before processing this call: it is above last_request_id.
            peer.write(goaway(frame.request.id - 1))
            return
        assert frame.request.method.endswith("/Ping")
        peer.write(ping_response(frame.request.id))
        serve_pings_until_closed(peer)

    with ScriptedServer(path, handler) as server:
        assert run_one(kind, path, "ping")["server_version"] == "fake"
    assert server.connections == 2


def test_goaway_answers_calls_up_to_last_request_id_and_retries_the_rest(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        if n == 1:
            first, second = peer.read(), peer.read()
            ids = sorted([first.request.id, second.request.id])
            peer.write(goaway(ids[0]))
            peer.write(ping_response(ids[0]))  # the processed call is still answered
            return
        serve_pings_until_closed(peer)

    with ScriptedServer(path, handler) as server:
        a, b = run_calls(kind, path, [call("ping"), call("ping")])
    assert a["server_version"] == b["server_version"] == "fake"
    assert server.connections == 2


def test_goaway_twice_raises(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        peer.read()
        peer.write(goaway(0))

    with ScriptedServer(path, handler) as server:
        with pytest.raises(ConnectionError) as e:
            run_one(kind, path, "ping")
    assert "draining" in str(e.value)
    assert server.connections == 2  # retried exactly once


def test_goaway_with_other_code_raises_rpc_error(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        peer.write(goaway(0, code=8, message="too many connections"))
        peer.wait_closed()

    with ScriptedServer(path, handler):
        with pytest.raises(RpcError) as e:
            run_one(kind, path, "ping")
    assert e.value.code == 8 and "too many connections" in str(e.value)


def test_connection_closed_under_a_call_raises_connection_error(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        peer.read()  # then close without answering: may have been processed, no retry

    with ScriptedServer(path, handler) as server:
        with pytest.raises(ConnectionError):
            run_one(kind, path, "ping")
    assert server.connections == 1


@pytest.mark.parametrize("bad", [struct.pack(">I", 0xFFFFFFFF), struct.pack(">I", 0),
                                 struct.pack(">I", 3) + b"\xff\xff\xff"])
def test_bad_frame_from_server_closes_the_connection(kind: str, path: str, bad: bytes) -> None:
    def handler(n: int, peer: Peer) -> None:
        peer.read()
        peer.write_raw(bad)
        peer.wait_closed()

    with ScriptedServer(path, handler):
        with pytest.raises(ConnectionError) as e:
            run_one(kind, path, "ping")
    assert "frame" in str(e.value)


def test_responses_in_any_order_and_error_status(kind: str, path: str) -> None:
    def handler(n: int, peer: Peer) -> None:
        frames = [peer.read() for _ in range(3)]
        for f in reversed(frames):
            if f.request.method.endswith("/GetMemoryItem"):
                status = rpc_pb2.Status(code=5, error_type=rpc_pb2.NOT_FOUND_ERROR, message="no such item",
                                        details={"id": "x"})
                peer.write(rpc_pb2.Frame(response=rpc_pb2.Response(id=f.request.id, status=status)))
            else:
                peer.write(ping_response(f.request.id))
        peer.wait_closed()

    with ScriptedServer(path, handler):
        results = run_calls(kind, path, [call("ping"), call("get_memory_item", "x"), call("ping")])
    assert results[0]["server_version"] == "fake" and results[2]["server_version"] == "fake"
    assert isinstance(results[1], NotFoundError) and results[1].details == {"id": "x"}


def test_timeout_and_metadata_are_sent(kind: str, path: str) -> None:
    seen = []

    def handler(n: int, peer: Peer) -> None:
        for _ in range(2):
            frame = peer.read()
            seen.append(frame.request)
            peer.write(ping_response(frame.request.id))
        peer.wait_closed()

    with ScriptedServer(path, handler):
        run_calls(kind, path, [call("ping")], timeout=2.5, metadata={"agent": "planner"})
        run_calls(kind, path, [call("ping", timeout=0.7)], timeout=None)
    assert 2000 < seen[0].timeout_ms <= 2500 and dict(seen[0].metadata) == {"agent": "planner"}
    assert 0 < seen[1].timeout_ms <= 700 and dict(seen[1].metadata) == {}


def test_metadata_with_nul_is_refused_before_any_call(kind: str, path: str) -> None:
    cls = MemoryClient if kind == "blocking" else AsyncMemoryClient
    with pytest.raises(ValidationError):
        cls(path, metadata={"agent": "a\0b"})


def test_local_timeout_sends_cancel_and_keeps_the_connection(kind: str, path: str) -> None:
    cancelled = []

    def handler(n: int, peer: Peer) -> None:
        held = peer.read()  # never answered
        frame = peer.read()
        assert frame.WhichOneof("kind") == "cancel", frame
        cancelled.append((held.request.id, frame.cancel.id))
        serve_pings_until_closed(peer)

    def check(error: DeadlineExceededError, elapsed: float) -> None:
        assert 0.25 <= elapsed < 5
        assert error.code == 4 and "Ping" in str(error)

    with ScriptedServer(path, handler) as server:
        if kind == "blocking":
            client = MemoryClient(path, timeout=10)
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError) as e:
                client.ping(timeout=0.3)
            check(e.value, time.monotonic() - start)
            assert client.ping()["server_version"] == "fake"  # the same connection goes on
            client.close()
        else:
            async def main() -> None:
                client = AsyncMemoryClient(path, timeout=10)
                start = time.monotonic()
                with pytest.raises(DeadlineExceededError) as e:
                    await client.ping(timeout=0.3)
                check(e.value, time.monotonic() - start)
                assert (await client.ping())["server_version"] == "fake"
                await client.close()

            asyncio.run(main())
    assert len(cancelled) == 1 and cancelled[0][0] == cancelled[0][1]
    assert server.connections == 1


def test_write_after_the_server_closed_keeps_reading_the_goaway(kind: str, path: str) -> None:
    """The server refuses the connection (GoAway + close) before the client writes: the write fails with
    EPIPE, yet the GoAway's reason is still read and the call counts as not processed."""
    from orchestra_memory._blocking import BlockingConnection
    from orchestra_memory._transport import Connection
    from orchestra_memory._wire import Method, NotProcessed

    refused = threading.Event()

    def handler(n: int, peer: Peer) -> None:
        peer.write(goaway(0, code=7, message="uid 0 is not allowed"))
        peer.sock.close()
        refused.set()

    with ScriptedServer(path, handler):
        if kind == "blocking":
            conn = BlockingConnection.open(path, 5)
            assert refused.wait(5)
            with pytest.raises(NotProcessed) as e:
                conn.call(Method("Ping"), b"", 1000, b"", 1 << 22, time.monotonic() + 5)
            conn.close()
        else:
            async def main() -> pytest.ExceptionInfo:
                conn = await Connection.open(path, 5)
                conn.loop.remove_reader(conn._fd)  # hold back reading until the server has closed
                assert await asyncio.get_running_loop().run_in_executor(None, refused.wait, 5)
                _, fut = conn.start_call(Method("Ping"), b"", 1000, b"", 1 << 22)
                conn.loop.add_reader(conn._fd, conn._on_readable)
                with pytest.raises(NotProcessed) as info:
                    await asyncio.wait_for(fut, 5)
                conn.close()
                return info

            e = asyncio.run(main())
    assert e.value.goaway.code == 7 and "not allowed" in e.value.goaway.message


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
def test_every_error_type_reaches_the_caller(kind: str, path: str, error_type: int, code: int, name: str) -> None:
    """Backend failures the sqlite daemon cannot be made to produce (OperationError, a backend
    ConnectionError, INTERNAL), through the whole client path."""
    def handler(n: int, peer: Peer) -> None:
        frame = peer.read()
        status = rpc_pb2.Status(code=code, error_type=error_type, message=f"failed with {name}",
                                operation="firestore.commit", details={"attempts": "5"})
        peer.write(rpc_pb2.Frame(response=rpc_pb2.Response(id=frame.request.id, status=status)))
        peer.wait_closed()

    with ScriptedServer(path, handler):
        with pytest.raises(orchestra_memory.StorageError) as e:
            run_one(kind, path, "cleanup_expired_items")
    assert type(e.value).__name__ == name
    assert type(e.value) is getattr(orchestra_memory, name)
    assert (e.value.code, e.value.error_type) == (code, error_type)
    assert e.value.operation == "firestore.commit" and e.value.details == {"attempts": "5"}
    assert f"failed with {name}" in str(e.value)


# --- the blocking client's threads sharing one connection --------------------------------------------

def test_threads_have_their_calls_in_flight_at_once(path: str) -> None:
    """The server answers nothing until it holds all eight requests, then answers in reverse order: this
    only completes if eight threads' calls are in flight on the one connection together."""
    def handler(n: int, peer: Peer) -> None:
        frames = [peer.read() for _ in range(8)]
        for f in reversed(frames):
            peer.write(item_response(f.request.id, requested_id(f)))
        peer.wait_closed()

    with ScriptedServer(path, handler) as server:
        results = run_calls("blocking", path, [call("get_memory_item", f"t{i}") for i in range(8)])
    assert [r.text_content for r in results] == [f"t{i}" for i in range(8)]
    assert server.connections == 1


@pytest.mark.parametrize("first_answer", ["reader", "other"])
def test_reader_role_passes_between_threads(path: str, first_answer: str) -> None:
    """Thread A waits first (it reads the socket), then thread B. Answered A first, A must hand the
    reading to B; answered B first, A must deliver B's answer. B's answer comes only after the test
    saw the first call finish, so B cannot be served by A's last read."""
    got_a = threading.Event()
    first_done = threading.Event()

    def handler(n: int, peer: Peer) -> None:
        a = peer.read()
        got_a.set()
        b = peer.read()
        order = [a, b] if first_answer == "reader" else [b, a]
        peer.write(item_response(order[0].request.id, requested_id(order[0])))
        assert first_done.wait(10)
        peer.write(item_response(order[1].request.id, requested_id(order[1])))
        peer.wait_closed()

    client = MemoryClient(path, timeout=10)
    results = {}

    def get(name: str) -> None:
        results[name] = client.get_memory_item(name).text_content
        if name == ("a" if first_answer == "reader" else "b"):
            first_done.set()

    with ScriptedServer(path, handler):
        ta = threading.Thread(target=get, args=("a",))
        ta.start()
        assert got_a.wait(10)
        tb = threading.Thread(target=get, args=("b",))
        tb.start()
        ta.join(15)
        tb.join(15)
        client.close()
    assert results == {"a": "a", "b": "b"}


def test_reader_past_its_deadline_hands_the_reading_on(path: str) -> None:
    """A (reading, short timeout) gives up; B, still waiting, must take over the reading and get its answer."""
    got_a = threading.Event()

    def handler(n: int, peer: Peer) -> None:
        a = peer.read()
        got_a.set()
        b = peer.read()
        cancel = peer.read()  # A's deadline passed
        assert cancel.cancel.id == a.request.id
        peer.write(item_response(b.request.id, requested_id(b)))
        peer.wait_closed()

    client = MemoryClient(path, timeout=10)
    results = {}

    def get(name: str, timeout: float) -> None:
        try:
            results[name] = client.get_memory_item(name, timeout=timeout).text_content
        except DeadlineExceededError as e:
            results[name] = e

    with ScriptedServer(path, handler):
        ta = threading.Thread(target=get, args=("a", 0.5))
        ta.start()
        assert got_a.wait(10)
        tb = threading.Thread(target=get, args=("b", 10))
        tb.start()
        ta.join(15)
        tb.join(15)
        client.close()
    assert isinstance(results["a"], DeadlineExceededError) and results["b"] == "b"


def test_dropped_client_closes_its_connection(path: str) -> None:
    import gc

    closed = []

    def handler(n: int, peer: Peer) -> None:
        frame = peer.read()
        peer.write(ping_response(frame.request.id))
        closed.append(peer.wait_closed(10))

    with ScriptedServer(path, handler):
        c = MemoryClient(path)
        c.ping()
        del c
        gc.collect()
    assert closed == [True]
