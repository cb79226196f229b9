"""One blocking client shared by several threads, against a real memoryd: all calls multiplexed on its one
connection, no thread of the client's own, closing under waiting threads. (The reader hand-off between
threads is driven step by step in test_protocol.py.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from orchestra_memory import ConnectionError, MemoryClient, MemoryItem, NotFoundError


def test_blocking_client_from_many_threads(client: MemoryClient, user: str) -> None:
    client.ping()
    conn = client._conn

    def worker(t: int) -> list:
        ids = []
        for i in range(25):
            item_id = client.add_memory_item(MemoryItem(user_id=user, session_id=f"t{t}", text_content=f"{t}/{i}"))
            assert client.get_memory_item(item_id).text_content == f"{t}/{i}"
            try:
                client.get_memory_item(f"mem_missing_{t}_{i}")
                raise AssertionError("expected NotFoundError")
            except NotFoundError:
                pass
            ids.append(item_id)
        return ids

    with ThreadPoolExecutor(8) as pool:
        all_ids = [i for ids in pool.map(worker, range(8)) for i in ids]
    assert len(set(all_ids)) == 200
    assert len(client.get_conversation_history(user, limit=1000)) == 200
    for t in range(8):
        assert len(client.get_conversation_history(user, session_id=f"t{t}", limit=1000)) == 25
    assert client._conn is conn and conn.usable and conn.in_flight == 0  # one connection throughout


def test_no_thread_of_its_own(daemon) -> None:
    before = set(threading.enumerate())
    c = MemoryClient(daemon.socket_path)
    for _ in range(3):
        c.ping()
    assert set(threading.enumerate()) == before
    c.close()


def test_close_from_another_thread_and_reuse(client: MemoryClient) -> None:
    client.ping()
    t = threading.Thread(target=client.close)
    t.start()
    t.join()
    assert not client.connected
    assert client.ping()["server_version"]  # a closed client reconnects on its next call


def test_close_while_other_threads_wait(make_daemon) -> None:
    """Calls waiting in other threads (one of them reading the socket) when the client is closed fail
    with ConnectionError, never hang."""
    d = make_daemon()
    c = MemoryClient(d.socket_path, timeout=30)
    c.ping()
    conn = c._conn
    os.kill(d.proc.pid, signal.SIGSTOP)
    errors = []

    def call() -> None:
        try:
            c.ping()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while conn.in_flight < 4 and time.monotonic() < deadline:  # all four sent and waiting
            time.sleep(0.01)
        assert conn.in_flight == 4
        c.close()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert len(errors) == 4 and all(isinstance(e, ConnectionError) for e in errors), errors
        assert all("closed" in str(e) for e in errors)
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
