"""The asyncio client: the API, many concurrent calls on one connection, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from orchestra_memory import (
    AgentData,
    AsyncMemoryClient,
    DeadlineExceededError,
    DuplicateError,
    MemoryItem,
    NotFoundError,
    RpcError,
    StorageError,
    ValidationError,
)
from orchestra_memory._api import Call
from orchestra_memory._proto.orchestra.memory.v1 import service_pb2
from orchestra_memory._wire import Method

DIM = 768


def unit(i: int) -> list:
    v = [0.0] * DIM
    v[i % DIM] = 1.0
    return v


def test_async_api(daemon, user: str) -> None:
    async def main() -> None:
        async with AsyncMemoryClient(daemon.socket_path) as c:
            assert (await c.ping())["server_version"]
            item_id = await c.add_memory_item(MemoryItem(user_id=user, text_content="hi", embedding=unit(1)))
            assert (await c.get_memory_item(item_id)).text_content == "hi"
            assert [i.id for i in await c.get_conversation_history(user)] == [item_id]
            assert [i.id for i in await c.semantic_search(user, unit(1))] == [item_id]
            assert (await c.search_with_scores(user, unit(1)))[0][1] == pytest.approx(1.0)
            assert await c.check_duplicate(MemoryItem(user_id=user, text_content="hi"))
            assert await c.find_duplicate(MemoryItem(user_id=user, text_content="hi")) == item_id
            results = await c.add_memory_items([MemoryItem(user_id=user, text_content="a"), MemoryItem()])
            assert results[0].ok and isinstance(results[1].error, ValidationError)
            data_id = await c.add_raw_agent_data(AgentData(agent_id=user, data_type="t", content=[1, "x"]))
            assert (await c.get_agent_data(data_id)).content == [1, "x"]
            assert [d.id for d in await c.list_agent_data(user)] == [data_id]
            assert await c.cleanup_expired_items() >= 0
            assert (await c.health_check())["status"] == "healthy"
            await c.delete_memory_item(item_id)
            with pytest.raises(NotFoundError):
                await c.get_memory_item(item_id)
            with pytest.raises(DuplicateError):
                await c.add_memory_item(MemoryItem(id=results[0].id, user_id=user))

    asyncio.run(main())


def test_200_concurrent_calls_share_one_connection(daemon, user: str) -> None:
    async def main() -> None:
        c = AsyncMemoryClient(daemon.socket_path)
        await c.initialize()
        conn = c._conn
        ids = await asyncio.gather(*[
            c.add_memory_item(MemoryItem(user_id=user, text_content=f"item {i}", embedding=unit(i),
                                         metadata={"i": i}))
            for i in range(200)])
        assert len(set(ids)) == 200
        # Mixed calls, answered in any order, each matched to its caller by id.
        calls = []
        for i, item_id in enumerate(ids):
            if i % 4 == 0:
                calls.append(c.get_memory_item(item_id))
            elif i % 4 == 1:
                calls.append(c.search_with_scores(user, unit(i), top_k=1))
            elif i % 4 == 2:
                calls.append(c.ping())
            else:
                calls.append(c.get_memory_item("mem_missing_" + str(i)))
        results = await asyncio.gather(*calls, return_exceptions=True)
        for i, r in enumerate(results):
            if i % 4 == 0:
                assert r.id == ids[i] and r.metadata["i"] == i
            elif i % 4 == 1:
                assert r[0][0].id == ids[i]
            elif i % 4 == 2:
                assert "server_version" in r
            else:
                assert isinstance(r, NotFoundError) and f"mem_missing_{i}" in str(r)
        assert c._conn is conn  # no reconnect happened
        health = await c.health_check()
        assert health["details"].get("client_connections", 1) == 1
        await c.close()

    asyncio.run(main())


def test_local_timeout_when_the_daemon_is_stopped(make_daemon) -> None:
    d = make_daemon()

    async def main() -> None:
        c = AsyncMemoryClient(d.socket_path, timeout=5)
        await c.initialize()
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(DeadlineExceededError) as e:
                await c.ping(timeout=0.3)
            elapsed = time.monotonic() - start
            assert 0.25 <= elapsed < 2.0
            assert e.value.code == 4 and isinstance(e.value, RpcError) and isinstance(e.value, StorageError)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        # The connection is still good: the late answer is dropped, new calls work.
        assert (await c.ping())["server_version"]
        await c.close()

    asyncio.run(main())


def test_server_deadline_exceeded(daemon, user: str) -> None:
    """A call whose timeout_ms passes while it waits behind others gets DEADLINE_EXCEEDED from the server."""
    async def main() -> None:
        c = AsyncMemoryClient(daemon.socket_path, timeout=60)
        await c.initialize()
        # Enough work to keep every worker busy for well over 1 ms, small enough for the Firestore
        # emulator (which takes several ms per document with a 768-d vector).
        heavy = [c.add_memory_items([MemoryItem(user_id=user, text_content=f"{j}-{i}")
                                     for i in range(40)]) for j in range(30)]
        tasks = [asyncio.ensure_future(h) for h in heavy]
        await asyncio.sleep(0)  # let the heavy calls be sent first
        conn = c._conn
        call_id, fut = conn.start_call(Method("GetMemoryItem"),
                                       service_pb2.GetMemoryItemRequest(id="mem_x").SerializeToString(),
                                       1, b"", 1 << 22)
        _, status, payload = await fut
        assert status is not None and status.code == 4, status
        await asyncio.gather(*tasks)
        await c.close()

    asyncio.run(main())


def test_cancelled_call_does_not_break_the_connection(make_daemon) -> None:
    d = make_daemon()

    async def main() -> None:
        c = AsyncMemoryClient(d.socket_path)
        await c.initialize()
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            task = asyncio.ensure_future(c.ping())
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        assert c._conn.in_flight == 0
        assert (await c.ping())["server_version"]
        await c.close()

    asyncio.run(main())


def test_unknown_method_is_unimplemented(daemon) -> None:
    async def main() -> None:
        c = AsyncMemoryClient(daemon.socket_path)
        with pytest.raises(RpcError) as e:
            await c._run(Call(Method("NoSuchMethod"), b"", lambda payload: payload, None))
        assert e.value.code == 12 and e.value.error_type == 0
        assert "NoSuchMethod" in str(e.value)
        await c.close()

    asyncio.run(main())


def test_oversized_request_is_refused_locally(daemon, user: str) -> None:
    async def main() -> None:
        c = AsyncMemoryClient(daemon.socket_path, max_frame_bytes=64 * 1024)
        await c.initialize()
        conn = c._conn
        with pytest.raises(ValidationError):
            await c.add_memory_item(MemoryItem(user_id=user, text_content="x" * 100_000))
        assert c._conn is conn and conn.usable  # the connection was not sacrificed
        await c.close()

    asyncio.run(main())


def test_client_survives_event_loop_change(daemon) -> None:
    """A client used from two successive asyncio.run() calls reconnects on the new loop."""
    c = AsyncMemoryClient(daemon.socket_path)
    assert asyncio.run(c.ping())["server_version"]
    assert asyncio.run(c.ping())["server_version"]
    asyncio.run(c.close())
