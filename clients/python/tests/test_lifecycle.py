"""Daemon restarts, GoAway, unreachable daemons, refused peers: transport failures and recovery."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from orchestra_memory import (
    AsyncMemoryClient,
    ConnectionError,
    MemoryClient,
    MemoryItem,
    RpcError,
    StorageError,
)


def test_daemon_not_running_raises_connection_error(tmp_path) -> None:
    c = MemoryClient(str(tmp_path / "nothing.sock"))
    with pytest.raises(ConnectionError) as e:
        c.ping()
    assert isinstance(e.value, StorageError)
    assert e.value.code == 14
    assert isinstance(e.value.original_exception, OSError)
    assert "nothing.sock" in str(e.value)
    with pytest.raises(ConnectionError):
        c.initialize()
    # health_check reports instead of raising.
    h = c.health_check()
    assert h["status"] == "unhealthy" and h["firestore"] is False
    assert h["details"]["memoryd_reachable"] is False and "reason" in h["details"]
    c.close()


def test_reconnect_after_restart_and_data_persists(make_daemon, user: str) -> None:
    d = make_daemon()
    c = MemoryClient(d.socket_path)
    item_id = c.add_memory_item(MemoryItem(user_id=user, text_content="survives restarts"))
    assert d.stop(signal.SIGTERM) == 0
    with pytest.raises(ConnectionError):
        c.get_memory_item(item_id)
    d.start()
    # The next call reconnects by itself.
    assert c.get_memory_item(item_id).text_content == "survives restarts"
    # And again, without a failed call in between.
    assert d.stop(signal.SIGTERM) == 0
    d.start()
    assert c.get_memory_item(item_id).text_content == "survives restarts"
    c.close()


def test_goaway_on_sigterm(make_daemon) -> None:
    d = make_daemon()

    async def main() -> None:
        c = AsyncMemoryClient(d.socket_path)
        await c.initialize()
        conn = c._conn
        d.signal(signal.SIGTERM)
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert conn.goaway is not None
        assert conn.goaway.code == 14  # UNAVAILABLE: draining
        assert not conn.usable and not c.connected
        assert d.wait() == 0
        with pytest.raises(ConnectionError):
            await c.ping()
        d.start()
        assert (await c.ping())["server_version"]
        await c.close()

    asyncio.run(main())


def test_calls_in_flight_during_sigterm_finish_or_fail_cleanly(make_daemon, user: str) -> None:
    d = make_daemon()

    async def main() -> None:
        c = AsyncMemoryClient(d.socket_path, timeout=30)
        await c.initialize()
        calls = [asyncio.ensure_future(c.add_memory_items(
            [MemoryItem(user_id=user, text_content=f"{j}-{i}") for i in range(50)])) for j in range(40)]
        await asyncio.sleep(0.01)
        d.signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        ok = [r for r in results if not isinstance(r, BaseException)]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert all(isinstance(r, ConnectionError) for r in failed), failed
        assert all(all(x.ok for x in r) for r in ok)
        assert d.wait() == 0
        d.start()
        # Every call answered OK was stored.
        stored, token = 0, None
        while True:
            page = await c.get_conversation_history(user, limit=1000, page_token=token)
            stored += len(page)
            token = page.next_page_token
            if not token:
                break
        assert stored == 50 * len(ok)
        await c.close()

    asyncio.run(main())


def test_refused_peer_gets_permission_denied(make_daemon) -> None:
    uid = os.getuid()
    d = make_daemon(env={"MEMORYD_ALLOWED_UIDS": str(uid + 4242)})
    c = MemoryClient(d.socket_path)
    with pytest.raises(RpcError) as e:
        c.ping()
    assert e.value.code == 7 and e.value.error_type == 0  # PERMISSION_DENIED
    c.close()


def test_blocking_client_reconnects_after_kill(make_daemon, user: str) -> None:
    d = make_daemon()
    c = MemoryClient(d.socket_path)
    item_id = c.add_memory_item(MemoryItem(user_id=user, text_content="durable"))
    d.kill()  # no drain, no GoAway: the connection just closes
    d.start()
    assert c.get_memory_item(item_id).text_content == "durable"
    c.close()


def test_blocking_calls_in_flight_during_sigterm_finish_or_fail_cleanly(make_daemon, user: str) -> None:
    """Eight threads share one blocking client while the daemon drains: every call is answered or fails
    with ConnectionError, and every call answered OK was stored."""
    import threading

    d = make_daemon()
    c = MemoryClient(d.socket_path, timeout=30)
    c.initialize()
    results = []
    started = threading.Barrier(9)

    def worker(j: int) -> None:
        started.wait()
        for k in range(5):
            try:
                r = c.add_memory_items([MemoryItem(user_id=user, text_content=f"{j}-{k}-{i}") for i in range(20)])
                results.append(r)
            except Exception as e:  # noqa: BLE001
                results.append(e)

    threads = [threading.Thread(target=worker, args=(j,)) for j in range(8)]
    for t in threads:
        t.start()
    started.wait()
    d.signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(results) == 40
    assert all(isinstance(r, ConnectionError) for r in failed), failed
    assert all(all(x.ok for x in r) for r in ok)
    assert d.wait() == 0
    d.start()
    stored, token = 0, None
    while True:
        page = c.get_conversation_history(user, limit=1000, page_token=token)
        stored += len(page)
        token = page.next_page_token
        if not token:
            break
    assert stored == 20 * len(ok)
    c.close()


def test_request_stuck_in_a_full_socket_times_out_and_the_client_recovers(make_daemon, user: str) -> None:
    """A stopped daemon reads nothing: a request larger than the socket buffers cannot be written. The
    call ends at its deadline, and once the daemon runs again the client works (on a new connection
    when the request was cut in the middle)."""
    import time

    from orchestra_memory import DeadlineExceededError

    d = make_daemon()
    c = MemoryClient(d.socket_path, timeout=30)
    c.ping()
    big = [MemoryItem(user_id=user, text_content="x" * 500_000) for _ in range(6)]  # ~3 MB
    os.kill(d.proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            c.add_memory_items(big, timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
    assert c.ping()["server_version"]
    assert c.add_memory_items(big[:1])[0].ok
    c.close()
