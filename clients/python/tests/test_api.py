"""Every method of the memory-manager API, through the blocking client, against a real memoryd."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from orchestra_memory import (
    AgentData,
    DuplicateError,
    MemoryClient,
    MemoryItem,
    NotFoundError,
    PersonaConfig,
    StorageError,
    ValidationError,
)

DIM = 768


def vec(seed: int) -> list:
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def unit(i: int) -> list:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def test_ping(client: MemoryClient) -> None:
    p = client.ping()
    assert p["server_version"]
    assert p["uptime_ms"] >= 0
    assert p["latency_ms"] > 0


def test_initialize_and_context_manager(daemon) -> None:
    with MemoryClient(daemon.socket_path) as c:
        assert c.ping()["server_version"]
    c = MemoryClient(daemon.socket_path)
    c.initialize()
    c.close()
    c.close()  # twice is fine


def test_add_and_get_round_trip(client: MemoryClient, user: str) -> None:
    ts = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    emb = vec(1)
    item = MemoryItem(user_id=user, session_id="s1", timestamp=ts, persona_active="coach",
                      text_content="hello there", embedding=emb,
                      metadata={"n": 3, "f": 2.5, "flag": True, "tags": ["a", "b"], "nested": {"x": None}})
    item_id = client.add_memory_item(item)
    assert item_id.startswith("mem_")
    got = client.get_memory_item(item_id)
    assert got.id == item_id
    assert got.user_id == user
    assert got.session_id == "s1"
    assert got.timestamp == ts
    assert got.timestamp.tzinfo is not None
    assert got.item_type == "conversation"
    assert got.persona_active == "coach"
    assert got.text_content == "hello there"
    assert len(got.embedding) == DIM
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(got.embedding, emb))
    assert got.metadata["n"] == 3 and isinstance(got.metadata["n"], int)
    assert got.metadata["f"] == 2.5
    assert got.metadata["flag"] is True
    assert got.metadata["tags"] == ["a", "b"]
    assert got.metadata["nested"] == {"x": None}
    import hashlib
    assert got.metadata["content_hash"] == hashlib.sha256(b"hello there").hexdigest()
    assert got.expiration is None


def test_defaults_and_naive_times(client: MemoryClient, user: str) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    item_id = client.add_memory_item(MemoryItem(user_id=user, text_content="no time given", item_type=""))
    got = client.get_memory_item(item_id)
    assert got.item_type == "conversation"
    assert got.timestamp is not None and got.timestamp >= before
    # A naive datetime is taken as UTC.
    naive = datetime(2023, 1, 2, 3, 4, 5)
    item_id = client.add_memory_item(MemoryItem(user_id=user, timestamp=naive, text_content="naive"))
    assert client.get_memory_item(item_id).timestamp == naive.replace(tzinfo=timezone.utc)
    # An aware one in another zone is converted.
    plus2 = datetime(2023, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    item_id = client.add_memory_item(MemoryItem(user_id=user, timestamp=plus2, text_content="aware"))
    assert client.get_memory_item(item_id).timestamp == datetime(2023, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_given_id_upsert_and_duplicate_id(client: MemoryClient, user: str) -> None:
    item_id = f"mem_{user}_fixed"
    assert client.add_memory_item(MemoryItem(id=item_id, user_id=user, text_content="one")) == item_id
    with pytest.raises(DuplicateError) as e:
        client.add_memory_item(MemoryItem(id=item_id, user_id=user, text_content="two"))
    assert e.value.code == 6 and e.value.error_type == 6
    assert isinstance(e.value, StorageError)
    client.add_memory_item(MemoryItem(id=item_id, user_id=user, text_content="two"), upsert=True)
    assert client.get_memory_item(item_id).text_content == "two"


def test_delete(client: MemoryClient, user: str) -> None:
    item_id = client.add_memory_item(MemoryItem(user_id=user, text_content="bye"))
    client.delete_memory_item(item_id)
    with pytest.raises(NotFoundError):
        client.get_memory_item(item_id)
    with pytest.raises(NotFoundError) as e:
        client.delete_memory_item(item_id)
    assert e.value.code == 5 and e.value.code_name == "NOT_FOUND"


def test_get_missing_raises_not_found(client: MemoryClient) -> None:
    with pytest.raises(NotFoundError) as e:
        client.get_memory_item("mem_does_not_exist")
    assert "mem_does_not_exist" in str(e.value)


def test_expired_items_are_invisible_and_cleaned_up(client: MemoryClient, user: str) -> None:
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    gone = client.add_memory_item(MemoryItem(user_id=user, text_content="old", expiration=past,
                                             embedding=unit(3)))
    kept = client.add_memory_item(MemoryItem(user_id=user, text_content="new", embedding=unit(3),
                                             expiration=datetime.now(timezone.utc) + timedelta(days=1)))
    with pytest.raises(NotFoundError):
        client.get_memory_item(gone)
    assert [i.id for i in client.get_conversation_history(user)] == [kept]
    assert [i.id for i in client.semantic_search(user, unit(3), top_k=10)] == [kept]
    assert client.cleanup_expired_items() >= 1
    assert client.get_memory_item(kept).expiration is not None


def test_conversation_history(client: MemoryClient, user: str) -> None:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ids = []
    for i in range(7):
        ids.append(client.add_memory_item(MemoryItem(
            user_id=user, session_id="s1" if i % 2 == 0 else "s2", timestamp=base + timedelta(minutes=i),
            text_content=f"turn {i}", metadata={"turn": i, "role": "user" if i % 2 else "assistant"})))
    client.add_memory_item(MemoryItem(user_id=user, item_type="note", text_content="a note",
                                      timestamp=base + timedelta(hours=1)))
    history = client.get_conversation_history(user)
    assert [i.id for i in history] == ids[::-1]  # newest first, notes excluded
    assert history.next_page_token == ""
    assert [i.id for i in client.get_conversation_history(user, limit=3)] == ids[::-1][:3]
    assert [i.id for i in client.get_conversation_history(user, session_id="s2")] == [ids[5], ids[3], ids[1]]
    assert [i.id for i in client.get_conversation_history(user, filters={"metadata.role": "user"})] == \
        [ids[5], ids[3], ids[1]]
    assert [i.id for i in client.get_conversation_history(user, filters={"session_id": "s1"}, limit=2)] == \
        [ids[6], ids[4]]
    notes = client.get_conversation_history(user, item_type="note")
    assert [i.text_content for i in notes] == ["a note"]
    # Paging.
    seen, token = [], None
    while True:
        page = client.get_conversation_history(user, limit=3, page_token=token)
        seen += [i.id for i in page]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]


def test_semantic_search(client: MemoryClient, user: str) -> None:
    a = client.add_memory_item(MemoryItem(user_id=user, text_content="a", embedding=unit(0), persona_active="p1"))
    b_vec = unit(0)
    b_vec[1] = 1.0
    b = client.add_memory_item(MemoryItem(user_id=user, text_content="b", embedding=b_vec, persona_active="p2",
                                          session_id="s9"))
    c = client.add_memory_item(MemoryItem(user_id=user, text_content="c", embedding=unit(1)))
    client.add_memory_item(MemoryItem(user_id=user + "_other", text_content="other", embedding=unit(0)))

    items = client.semantic_search(user, unit(0))
    assert [i.id for i in items] == [a, b, c]
    assert isinstance(items[0], MemoryItem)
    pairs = client.search_with_scores(user, unit(0), top_k=2)
    assert [p[0].id for p in pairs] == [a, b]
    assert math.isclose(pairs[0][1], 1.0, rel_tol=1e-6)
    assert math.isclose(pairs[1][1], 1 / math.sqrt(2), rel_tol=1e-5)
    # Persona as a name, a PersonaConfig or a dict.
    assert [i.id for i in client.semantic_search(user, unit(0), "p2")] == [b]
    assert [i.id for i in client.semantic_search(user, unit(0), PersonaConfig(name="p1"))] == [a]
    assert [i.id for i in client.semantic_search(user, unit(0), {"name": "p1"})] == [a]
    assert [i.id for i in client.semantic_search(user, unit(0), session_id="s9")] == [b]
    assert [p[0].id for p in client.search_with_scores(user, unit(0), min_score=0.5)] == [a, b]
    euclid = client.search_with_scores(user, unit(0), measure="euclidean")
    assert euclid[0][0].id == a and math.isclose(euclid[0][1], 0.0, abs_tol=1e-6)
    assert euclid[1][1] <= 0
    dot = client.search_with_scores(user, b_vec, measure="dot_product")
    assert dot[0][0].id == b and math.isclose(dot[0][1], 2.0, rel_tol=1e-6)


def test_semantic_search_validation(client: MemoryClient, user: str) -> None:
    with pytest.raises(ValidationError):
        client.semantic_search(user, [1.0, 2.0])  # wrong size
    with pytest.raises(ValidationError):
        client.semantic_search("", unit(0))
    with pytest.raises(ValidationError):
        client.semantic_search(user, unit(0), measure="manhattan")  # refused locally


def test_check_duplicate(client: MemoryClient, user: str) -> None:
    probe = MemoryItem(user_id=user, text_content="same words")
    assert client.check_duplicate(probe) is False
    assert client.find_duplicate(probe) is None
    first = client.add_memory_item(MemoryItem(user_id=user, text_content="same words"))
    assert client.check_duplicate(probe) is True
    assert client.find_duplicate(probe) == first
    assert client.check_duplicate(MemoryItem(user_id=user + "x", text_content="same words")) is False
    with pytest.raises(DuplicateError) as e:
        client.add_memory_item(MemoryItem(user_id=user, text_content="same words"), reject_duplicate_content=True)
    assert e.value.details.get("existing_id") == first
    # Without rejection, duplicates of content are allowed.
    assert client.add_memory_item(MemoryItem(user_id=user, text_content="same words")) != first


def test_add_memory_items_per_item_results(client: MemoryClient, user: str) -> None:
    existing = client.add_memory_item(MemoryItem(user_id=user, text_content="exists"))
    results = client.add_memory_items([
        MemoryItem(user_id=user, text_content="one"),
        MemoryItem(user_id="", text_content="no user"),
        MemoryItem(id=existing, user_id=user, text_content="again"),
        MemoryItem(user_id=user, text_content="bad embedding", embedding=[1.0]),
        MemoryItem(user_id=user, text_content="two"),
    ])
    assert [r.ok for r in results] == [True, False, False, False, True]
    assert isinstance(results[1].error, ValidationError)
    assert isinstance(results[2].error, DuplicateError)
    assert isinstance(results[3].error, ValidationError)
    assert client.get_memory_item(results[0].id).text_content == "one"
    assert client.get_memory_item(results[4].id).text_content == "two"
    upserted = client.add_memory_items([MemoryItem(id=existing, user_id=user, text_content="replaced")], upsert=True)
    assert upserted[0].ok and client.get_memory_item(existing).text_content == "replaced"
    assert client.add_memory_items([]) == []


def test_validation_errors(client: MemoryClient, user: str) -> None:
    cases = [
        MemoryItem(user_id="", text_content="no user"),
        MemoryItem(user_id=user, embedding=[0.5] * 10),
        MemoryItem(user_id=user, embedding=[float("nan")] * DIM),
        MemoryItem(id="bad id with spaces", user_id=user),
        MemoryItem(user_id=user, text_content="x" * (512 * 1024 + 1)),
    ]
    for item in cases:
        with pytest.raises(ValidationError) as e:
            client.add_memory_item(item)
        assert e.value.code == 3 and e.value.error_type == 3
        assert e.value.message
    with pytest.raises(ValidationError):  # not JSON-like: refused before sending
        client.add_memory_item(MemoryItem(user_id=user, metadata={"x": object()}))
    with pytest.raises(ValidationError):
        client.get_memory_item("")


def test_agent_data(client: MemoryClient, user: str) -> None:
    agent = "agent-" + user
    first = client.add_raw_agent_data(AgentData(agent_id=agent, data_type="plan", content={"steps": [1, 2, 3]},
                                                timestamp=datetime(2024, 1, 1, tzinfo=timezone.utc)))
    second = client.add_raw_agent_data(AgentData(agent_id=agent, data_type="log", content="a string",
                                                 metadata={"k": "v"},
                                                 timestamp=datetime(2024, 1, 2, tzinfo=timezone.utc)))
    assert first.startswith("agent_")
    got = client.get_agent_data(first)
    assert got.agent_id == agent and got.data_type == "plan" and got.content == {"steps": [1, 2, 3]}
    assert got.timestamp == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert client.get_agent_data(second).metadata == {"k": "v"}
    assert [d.id for d in client.list_agent_data(agent)] == [second, first]
    assert [d.id for d in client.list_agent_data(agent, "plan")] == [first]
    page = client.list_agent_data(agent, limit=1)
    assert [d.id for d in page] == [second] and page.next_page_token
    assert [d.id for d in client.list_agent_data(agent, limit=1, page_token=page.next_page_token)] == [first]
    with pytest.raises(NotFoundError):
        client.get_agent_data("agent_missing")
    with pytest.raises(ValidationError):
        client.add_raw_agent_data(AgentData(agent_id="", data_type="x"))
    with pytest.raises(ValidationError):
        client.add_raw_agent_data(AgentData(agent_id=agent, data_type=""))


def test_every_item_and_every_agents_data_page_by_page(client: MemoryClient, user: str) -> None:
    """ListMemoryItems and ListAgentData(all_agents): the export path, followed until the token is empty."""
    ids = [client.add_memory_item(MemoryItem(user_id=user, item_type=t, text_content=f"{t} {i}",
                                             timestamp=datetime(2024, 1, 1, 0, 0, i, tzinfo=timezone.utc)))
           for i, t in enumerate(["conversation", "note", "fact"])]
    seen, token = [], None
    while True:
        page = client.list_memory_items(user, limit=2, page_token=token)
        seen += [i.id for i in page]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids, "every type, oldest first, across pages"
    assert [i.id for i in client.list_memory_items(user, item_type="note")] == [ids[1]]
    agent = "all-" + user
    data_id = client.add_raw_agent_data(AgentData(agent_id=agent, data_type="plan", content={"x": 1}))
    everyone, token = [], None
    while True:
        page = client.list_agent_data("", all_agents=True, limit=50, page_token=token)
        everyone += [d.id for d in page]
        token = page.next_page_token
        if not token:
            break
    assert data_id in everyone


def test_metrics_text(client: MemoryClient) -> None:
    client.ping()
    text = client.get_metrics()
    assert "# TYPE memoryd_calls_total counter" in text
    assert 'memoryd_calls_total{method="Ping",code="OK"}' in text


def test_health_check(client: MemoryClient, backend: str) -> None:
    h = client.health_check()
    assert set(h) == {"status", "firestore", "details"}
    assert h["status"] == "healthy"
    assert h["firestore"] is (backend == "firestore")
    for key in ("backend", "version", "uptime_s", "queue_depth", "circuit_state", "error_count"):
        assert key in h["details"], key
    assert h["details"]["backend"] == backend


def test_strings_with_nul_are_refused_and_the_connection_stays(client: MemoryClient, user: str) -> None:
    """protobuf-c carries strings as C strings: memoryd refuses a NUL rather than storing a cut string."""
    client.ping()
    conn = client._conn
    for item in (MemoryItem(user_id=user, text_content="before\0after"),
                 MemoryItem(user_id=user + "\0x", text_content="t"),
                 MemoryItem(user_id=user, text_content="t", metadata={"k": ["a\0b"]})):
        with pytest.raises(ValidationError) as e:
            client.add_memory_item(item)
        assert "NUL" in str(e.value)
    with pytest.raises(ValidationError):
        client.get_memory_item("mem_\0")
    assert client._conn is conn and client.ping()["server_version"]
    assert client.get_conversation_history(user) == []
