"""The original manager's names against real daemons: FirestoreMemoryManagerV2 and the MemoryManager factory
with the original constructor arguments and calls, the exceptions module, the settings checks and the
original health-check shape. The checks on settings today's daemon does not report yet (project_id,
namespace, batch_size) also run against a scripted daemon that reports them."""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import datetime, timedelta, timezone

import pytest

import orchestra_memory
import orchestra_memory.errors
import orchestra_memory.exceptions
from _scripted import Peer, ScriptedServer
from orchestra_memory import AgentData, FirestoreMemoryManagerV2, MemoryItem, MemoryManager, PersonaConfig
from orchestra_memory._proto.orchestra.memory.v1 import service_pb2
from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2
from orchestra_memory.exceptions import ConnectionError, NotFoundError, StorageError, ValidationError
from orchestra_memory.models import struct_to_proto

DIM = 768


def unit(i: int) -> list:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def test_exceptions_module_reexports_the_same_classes() -> None:
    names = ["StorageError", "ConnectionError", "ValidationError", "OperationError", "NotFoundError", "DuplicateError"]
    assert sorted(orchestra_memory.exceptions.__all__) == sorted(names)
    for name in names:
        assert getattr(orchestra_memory.exceptions, name) is getattr(orchestra_memory.errors, name)
        assert getattr(orchestra_memory.exceptions, name) is getattr(orchestra_memory, name)


def test_the_original_calls(daemon, user: str, backend: str) -> None:
    """The original guide's calls, in the original's positional order, through the drop-in class."""
    async def main() -> None:
        memory = FirestoreMemoryManagerV2(socket_path=daemon.socket_path)
        await memory.initialize()
        first = await memory.add_memory_item(MemoryItem(user_id=user, session_id="s1", text_content="I like tea",
                                                        embedding=unit(0), persona_active="coach"))
        second = await memory.add_memory_item(MemoryItem(user_id=user, session_id="s1", text_content="and cake",
                                                         embedding=unit(1)))
        assert (await memory.get_memory_item(first)).text_content == "I like tea"
        with pytest.raises(NotFoundError):
            await memory.get_memory_item("mem_never_stored")
        history = await memory.get_conversation_history(user, "s1", 10, {"persona_active": "coach"})
        assert [i.id for i in history] == [first]
        assert [i.id for i in await memory.get_conversation_history(user, "s1", 1)] == [second]  # newest first
        found = await memory.semantic_search(user, unit(0), PersonaConfig(name="coach"), 5)
        assert [i.id for i in found] == [first]
        assert [i.id for i in await memory.semantic_search(user, unit(1), None, 1)] == [second]
        assert await memory.check_duplicate(MemoryItem(user_id=user, text_content="I like tea")) is True
        assert await memory.check_duplicate(MemoryItem(user_id=user, text_content="I like coffee")) is False
        data_id = await memory.add_raw_agent_data(AgentData(agent_id="agent-" + user, data_type="plan",
                                                            content={"steps": ["a", "b"]}))
        assert data_id.startswith("agent_")
        with pytest.raises(ValidationError):
            await memory.add_memory_item(MemoryItem(user_id="", text_content="no user"))
        past = datetime.now(timezone.utc) - timedelta(minutes=5)
        await memory.add_memory_item(MemoryItem(user_id=user, text_content="stale", expiration=past))
        assert await memory.cleanup_expired_items() >= 1
        health = await memory.health_check()
        assert health["status"] == "healthy" and health["firestore"] is (backend == "firestore")
        await memory.close()

    asyncio.run(main())


def test_check_duplicate_without_text_is_false_as_in_the_original(daemon, user: str) -> None:
    async def main() -> None:
        memory = FirestoreMemoryManagerV2(socket_path=daemon.socket_path)
        await memory.add_memory_item(MemoryItem(user_id=user, text_content="", embedding=unit(2)))
        assert await memory.check_duplicate(MemoryItem(user_id=user, text_content="", embedding=unit(2))) is False
        await memory.close()

    asyncio.run(main())


def test_factory_returns_the_manager_for_each_backend_name(daemon, backend: str) -> None:
    for name in ("firestore_v2", "firestore", "sqlite"):
        m = MemoryManager(memory_backend_type=name, socket_path=daemon.socket_path, connection_pool_size=10)
        assert type(m) is FirestoreMemoryManagerV2 and isinstance(m, MemoryManager)
        assert m.memory_backend_type == name and m.socket_path == daemon.socket_path
    m = MemoryManager("sqlite" if backend == "sqlite" else "firestore_v2", socket_path=daemon.socket_path)

    async def main() -> None:
        await m.initialize()  # the daemon's own backend: accepted
        assert (await m.ping())["server_version"]
        await m.close()

    asyncio.run(main())
    with pytest.raises(ValueError, match="memory_backend_type"):
        MemoryManager(memory_backend_type="redis")


def test_positional_misuse_is_refused_or_lands_right(monkeypatch) -> None:
    monkeypatch.delenv("MEMORYD_SOCKET", raising=False)
    m = FirestoreMemoryManagerV2("my-project")
    assert m.project_id == "my-project" and m.socket_path == "/run/memoryd/memoryd.sock"
    with pytest.raises(TypeError):
        FirestoreMemoryManagerV2("my-project", "/secrets/key.json")  # credentials: keyword only
    with pytest.raises(TypeError):
        FirestoreMemoryManagerV2("my-project", None, 10, 100)
    with pytest.raises(TypeError):
        MemoryManager("firestore_v2", "my-project")
    with pytest.raises(ValueError, match="socket_path"):
        FirestoreMemoryManagerV2("/run/memoryd/memoryd.sock")  # what AsyncMemoryClient took first
    with pytest.raises(ValueError, match="connection_pool_size"):
        FirestoreMemoryManagerV2(connection_pool_size="10")
    with pytest.raises(ValueError, match="batch_size"):
        FirestoreMemoryManagerV2(batch_size=0)
    m = FirestoreMemoryManagerV2(project_id="p", credentials_path="/k.json", connection_pool_size=4, batch_size=50,
                                 socket_path="/tmp/x.sock", namespace="ns", timeout=2.5)
    assert (m.project_id, m.connection_pool_size, m.batch_size, m.socket_path, m.namespace, m.timeout) == \
        ("p", 4, 50, "/tmp/x.sock", "ns", 2.5)


def test_backend_that_differs_from_the_daemons_is_refused(daemon, backend: str) -> None:
    other = "sqlite" if backend == "firestore" else "firestore_v2"

    async def main() -> None:
        m = MemoryManager(memory_backend_type=other, socket_path=daemon.socket_path)
        with pytest.raises(ConnectionError) as e:
            await m.initialize()
        assert backend in str(e.value) and ("sqlite" if other == "sqlite" else "firestore") in str(e.value)
        assert isinstance(e.value, StorageError) and not m.connected

    asyncio.run(main())


def test_pool_size_that_differs_logs_one_warning(make_daemon, backend: str, caplog) -> None:
    # The daemon's pool is 3: workers = 3 (on sqlite the pool is the worker count; on Firestore the flag
    # sets both).
    d = make_daemon(["--connection-pool-size", "3"], env={"MEMORYD_WORKERS": "3"})

    async def main() -> None:
        m = FirestoreMemoryManagerV2(socket_path=d.socket_path, connection_pool_size=10, batch_size=100)
        await m.initialize()
        await m.initialize()  # once per manager
        same = FirestoreMemoryManagerV2(socket_path=d.socket_path, connection_pool_size=3)
        await same.initialize()
        await m.close()
        await same.close()

    with caplog.at_level(logging.INFO, logger="orchestra_memory"):
        asyncio.run(main())
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    text = warned[0].getMessage()
    # The warning names the daemon's own key: on sqlite the pool is the worker count.
    key = "workers" if backend == "sqlite" else "firestore.connection_pool_size"
    assert "connection_pool_size=10" in text and "(3)" in text and f"as {key}" in text, text


def test_project_id(daemon, backend: str, caplog) -> None:
    """A project that differs from the daemon's is refused — once the daemon reports its project_id in
    HealthCheck details; an older daemon's is not checked. With the sqlite backend the project is unused
    and said so."""
    async def main() -> dict:
        probe = FirestoreMemoryManagerV2(socket_path=daemon.socket_path)
        details = (await probe.health_check())["details"]
        await probe.close()
        m = FirestoreMemoryManagerV2(project_id="some-other-project", socket_path=daemon.socket_path)
        if "project_id" in details:
            with pytest.raises(ConnectionError) as e:
                await m.initialize()
            assert "some-other-project" in str(e.value) and str(details["project_id"]) in str(e.value)
            ok = FirestoreMemoryManagerV2(project_id=str(details["project_id"]), socket_path=daemon.socket_path)
            await ok.initialize()
            await ok.close()
        else:
            await m.initialize()
            await m.close()
        return details

    with caplog.at_level(logging.WARNING, logger="orchestra_memory"):
        details = asyncio.run(main())
    if backend == "sqlite":
        assert any("not used: memoryd runs the sqlite backend" in r.getMessage() for r in caplog.records)
    elif "project_id" not in details:
        warnings.warn("this memoryd does not report project_id in HealthCheck details: the project check was "
                      "exercised against the scripted daemon only")


# --- the checks against a daemon that reports every setting (scripted) -------------------------------

def initialize(*args, **kwargs) -> None:
    """Initializes (and closes) a FirestoreMemoryManagerV2 made with these arguments."""
    async def main() -> None:
        m = FirestoreMemoryManagerV2(*args, **kwargs)
        try:
            await m.initialize()
        finally:
            await m.close()

    asyncio.run(main())


def health(**kwargs) -> dict:
    async def main() -> dict:
        m = FirestoreMemoryManagerV2(**kwargs)
        try:
            return await m.health_check()
        finally:
            await m.close()

    return asyncio.run(main())


def fake_daemon(path: str, details: dict, status: str = "healthy", firestore: bool = True) -> ScriptedServer:
    def handler(n: int, peer: Peer) -> None:
        while True:
            frame = peer.read()
            if frame.WhichOneof("kind") != "request":
                continue
            r = service_pb2.HealthCheckResponse(status=status, firestore=firestore)
            struct_to_proto(details, r.details)
            peer.write(rpc_pb2.Frame(response=rpc_pb2.Response(id=frame.request.id, payload=r.SerializeToString())))

    return ScriptedServer(path, handler)


REPORTED = {"backend": "firestore", "project_id": "prod-memory", "database": "(default)", "namespace": "default",
            "endpoint": "https://firestore.googleapis.com", "connection_pool_size": 10, "batch_size": 400,
            "firestore_latency_ms": 3.25, "firestore_error": ""}


@pytest.mark.parametrize("kwargs,names", [
    ({"project_id": "dev-memory"}, ["dev-memory", "prod-memory"]),
    ({"namespace": "staging"}, ["staging", "default"]),
    ({"memory_backend_type": "sqlite"}, ["sqlite", "firestore"]),
])
def test_location_mismatch_against_a_reporting_daemon(tmp_path, kwargs: dict, names: list) -> None:
    path = str(tmp_path / "s.sock")
    with fake_daemon(path, REPORTED):
        with pytest.raises(ConnectionError) as e:
            initialize(socket_path=path, **kwargs)
    assert all(n in str(e.value) for n in names), str(e.value)


def test_sizes_against_a_reporting_daemon(tmp_path, caplog) -> None:
    path = str(tmp_path / "s.sock")
    with fake_daemon(path, REPORTED), caplog.at_level(logging.WARNING, logger="orchestra_memory"):
        initialize("prod-memory", socket_path=path, connection_pool_size=10, batch_size=400, namespace="default")
        assert not caplog.records  # all the same: silent
        initialize("prod-memory", socket_path=path, connection_pool_size=20, batch_size=100)
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "firestore.connection_pool_size" in text and "firestore.batch_size" in text
    assert "(10)" in text and "(400)" in text


# --- the original health-check shape -----------------------------------------------------------------

def test_health_shape_real_daemon(daemon, backend: str) -> None:
    h = health(socket_path=daemon.socket_path)
    assert set(h) == {"status", "firestore", "details"} and h["status"] == "healthy"
    d = h["details"]
    assert d["reason"] is None
    if backend == "firestore":
        assert h["firestore"] is True and d["firestore_error"] is None
        assert isinstance(d["firestore_latency_ms"], (int, float)) and d["firestore_latency_ms"] >= 0
    else:
        assert h["firestore"] is False and d["firestore_latency_ms"] is None
        assert "sqlite" in d["firestore_error"]


def test_health_shape_unreachable_and_degraded(tmp_path) -> None:
    h = health(socket_path=str(tmp_path / "none.sock"))
    assert h["status"] == "unhealthy" and h["firestore"] is False
    assert "unreachable" in h["details"]["reason"] and h["details"]["firestore_error"]
    assert h["details"]["firestore_latency_ms"] is None

    path = str(tmp_path / "s.sock")
    details = dict(REPORTED, reason="circuit breaker half-open")
    with fake_daemon(path, details, status="degraded"):
        h = health(socket_path=path)
    assert h["status"] == "degraded" and h["firestore"] is True
    assert h["details"]["reason"] == "circuit breaker half-open"
    assert h["details"]["firestore_latency_ms"] == 3.25 and h["details"]["firestore_error"] is None

    failing = dict(REPORTED, reason="Firestore unreachable: 503", firestore_error="HTTP 503")
    with fake_daemon(path + "2", failing, status="unhealthy", firestore=False):
        h = health(socket_path=path + "2")
    assert h["status"] == "unhealthy" and h["firestore"] is False
    assert h["details"]["firestore_error"] == "HTTP 503" and h["details"]["firestore_latency_ms"] is None


