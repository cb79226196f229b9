"""Conversions and the error hierarchy, without a daemon."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

import orchestra_memory as om
from orchestra_memory import errors, models
from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2


def test_hierarchy() -> None:
    for cls in (om.ConnectionError, om.ValidationError, om.OperationError, om.NotFoundError, om.DuplicateError,
                om.RpcError, om.DeadlineExceededError):
        assert issubclass(cls, om.StorageError)
    assert issubclass(om.DeadlineExceededError, om.RpcError)
    assert not issubclass(om.ConnectionError, ConnectionError)  # the builtin


def test_original_constructors() -> None:
    cause = OSError("boom")
    e = om.StorageError("failed", cause)
    assert e.original_exception is cause and str(e) == "failed" and e.code == 13
    o = om.OperationError("firestore.commit", "aborted after 5 retries")
    assert o.operation == "firestore.commit" and o.code == 10 and "firestore.commit" in str(o)
    assert om.ConnectionError("x").code == 14
    assert om.ValidationError("x").error_type == errors.VALIDATION_ERROR


def test_error_from_status_maps_every_type() -> None:
    expected = {
        rpc_pb2.STORAGE_ERROR: (13, om.StorageError),
        rpc_pb2.CONNECTION_ERROR: (14, om.ConnectionError),
        rpc_pb2.VALIDATION_ERROR: (3, om.ValidationError),
        rpc_pb2.OPERATION_ERROR: (10, om.OperationError),
        rpc_pb2.NOT_FOUND_ERROR: (5, om.NotFoundError),
        rpc_pb2.DUPLICATE_ERROR: (6, om.DuplicateError),
    }
    for error_type, (code, cls) in expected.items():
        s = rpc_pb2.Status(code=code, error_type=error_type, message="m", operation="op", details={"k": "v"})
        e = errors.error_from_status(s)
        assert type(e) is cls
        assert (e.code, e.error_type, e.message, e.operation, e.details) == (code, error_type, "m", "op", {"k": "v"})
    for code in (12, 8, 7, 14):
        e = errors.error_from_status(rpc_pb2.Status(code=code, message="call"))
        assert type(e) is om.RpcError and e.code == code
    assert type(errors.error_from_status(rpc_pb2.Status(code=4))) is om.DeadlineExceededError


def test_errors_pickle() -> None:
    e = om.OperationError("op", "msg", details={"a": "b"})
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is om.OperationError and e2.operation == "op" and e2.details == {"a": "b"} and str(e2) == str(e)


def test_item_round_trip_and_times() -> None:
    naive = datetime(2020, 2, 3, 4, 5, 6, 789)
    item = om.MemoryItem(user_id="u", timestamp=naive, expiration=datetime(1969, 12, 31, 23, 59, 59, 500000),
                         metadata={"big": 2**60, "i": 7, "f": 0.25, "when": datetime(2020, 1, 1)},
                         embedding=(1, 2.5))
    back = models.item_from_proto(models.item_to_proto(item))
    assert back.timestamp == naive.replace(tzinfo=timezone.utc)
    assert back.expiration == datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc)
    assert back.metadata["i"] == 7 and isinstance(back.metadata["i"], int)
    assert back.metadata["f"] == 0.25
    assert back.metadata["when"] == "2020-01-01T00:00:00Z"
    assert back.embedding == [1.0, 2.5]
    assert back.session_id is None and back.persona_active is None


def test_defaults() -> None:
    item = om.MemoryItem(user_id="u")
    assert item.item_type == "conversation" and item.metadata == {} and item.embedding == []
    assert item.id is None and item.timestamp is None and item.expiration is None
    d = om.AgentData(agent_id="a", data_type="t")
    assert d.content is None and d.metadata == {}
    p = om.PersonaConfig(name="coach", traits={"warmth": 0.9})
    assert models.persona_from_proto(models.persona_to_proto(p)) == p


def test_bad_values_raise_validation_error() -> None:
    with pytest.raises(om.ValidationError):
        models.item_to_proto(om.MemoryItem(user_id="u", metadata={"x": {1, 2}}))
    with pytest.raises(om.ValidationError):
        models.item_to_proto(om.MemoryItem(user_id="u", metadata={"x": float("inf")}))
    with pytest.raises(om.ValidationError):
        models.item_to_proto(om.MemoryItem(user_id="u", embedding=["a"]))
    with pytest.raises(om.ValidationError):
        models.item_to_proto(om.MemoryItem(user_id="u", timestamp="2020-01-01"))
    with pytest.raises(om.ValidationError):
        models.item_to_proto({"user_id": "u"})


def test_page_is_a_list() -> None:
    p = om.Page([1, 2], "tok")
    assert p == [1, 2] and p.next_page_token == "tok"
