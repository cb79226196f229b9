"""One blocking client shared by several threads: all calls multiplexed on its one connection."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from orchestra_memory import MemoryClient, MemoryItem, NotFoundError


def test_blocking_client_from_many_threads(client: MemoryClient, user: str) -> None:
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
    assert client._client._conn is not None and client._client._conn.usable  # one connection throughout


def test_close_from_another_thread_and_reuse(client: MemoryClient) -> None:
    client.ping()
    t = threading.Thread(target=client.close)
    t.start()
    t.join()
    assert client.ping()["server_version"]  # a closed client reconnects on its next call


def test_dropped_client_stops_its_thread(daemon) -> None:
    import gc

    before = {t for t in threading.enumerate() if t.name == "orchestra-memory-client"}
    c = MemoryClient(daemon.socket_path)
    c.ping()
    thread = next(t for t in threading.enumerate() if t.name == "orchestra-memory-client" and t not in before)
    del c
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_close_while_other_threads_wait(make_daemon) -> None:
    """Calls waiting in other threads when the client is closed fail with ConnectionError, never hang."""
    import os
    import signal

    from orchestra_memory import ConnectionError

    d = make_daemon()
    c = MemoryClient(d.socket_path, timeout=30)
    c.ping()
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
        import time
        time.sleep(0.2)
        c.close()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert len(errors) == 4 and all(isinstance(e, ConnectionError) for e in errors), errors
    finally:
        os.kill(d.proc.pid, signal.SIGCONT)
