"""The data model of SPEC §4 as dataclasses, and their conversion to and from the protobuf messages.

Times are timezone-aware ``datetime`` objects in UTC. A naive ``datetime`` given to the client is taken as
UTC (the original manager mixed naive and aware times; memoryd never does). ``metadata`` and
``AgentData.content`` are JSON-like values (dict, list, str, int, float, bool, None); they travel as
``google.protobuf.Struct``/``Value``, whose numbers are doubles: an integral number comes back as ``int``
(when it fits in 2**53), any other as ``float``. A ``datetime`` inside metadata is sent as an RFC 3339
string. Embeddings travel as 32-bit floats, so values come back rounded to float32.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from google.protobuf import struct_pb2, timestamp_pb2

from ._proto.orchestra.memory.v1 import memory_pb2
from .errors import ValidationError

JSONValue = Any


@dataclass
class MemoryItem:
    """One memory of a user: a conversation turn, a note, anything with text and/or an embedding.

    ``user_id`` is required by the server. Empty ``id`` → generated (``mem_`` + random); ``timestamp``
    None → the server's receive time; empty ``item_type`` → ``"conversation"``. The server sets
    ``metadata["content_hash"]`` (SHA-256 of ``text_content``).
    """

    id: Optional[str] = None
    user_id: str = ""
    session_id: Optional[str] = None
    timestamp: Optional[datetime] = None
    item_type: str = "conversation"
    persona_active: Optional[str] = None
    text_content: str = ""
    embedding: List[float] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)
    expiration: Optional[datetime] = None

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a plain dict (times as aware datetimes)."""
        return dataclasses.asdict(self)


@dataclass
class AgentData:
    """Raw data an agent keeps (``agent_id`` and ``data_type`` required; ``content`` any JSON value)."""

    id: Optional[str] = None
    agent_id: str = ""
    timestamp: Optional[datetime] = None
    data_type: str = ""
    content: Any = None
    metadata: Dict[str, Any] = field(default_factory=dict)
    expiration: Optional[datetime] = None

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PersonaConfig:
    """A persona; ``semantic_search(persona_context=...)`` filters on items whose ``persona_active`` is
    its ``name``."""

    name: str = ""
    description: str = ""
    traits: Dict[str, float] = field(default_factory=dict)
    prompt_template: str = ""
    metadata: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ItemResult:
    """The outcome of one item of ``add_memory_items``: ``id`` when it was stored, else ``error``.
    ``unchanged`` when the item was stored already, exactly so (sent again: a retry, a re-import)."""

    id: str
    error: Optional[Exception] = None
    unchanged: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Page(list):
    """A list of results with the token of the next page (empty when this is the last page)."""

    def __init__(self, items: Iterable[Any] = (), next_page_token: str = "") -> None:
        super().__init__(items)
        self.next_page_token = next_page_token


# --- times ---------------------------------------------------------------------------------------------

def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _set_time(ts: timestamp_pb2.Timestamp, value: Union[datetime, int, float, None], name: str) -> bool:
    if value is None:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}")
    value = as_utc(value)
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    ts.seconds = seconds
    ts.nanos = delta.microseconds * 1000
    return True


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _get_time(msg: Any, name: str) -> Optional[datetime]:
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    return _EPOCH + timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


# --- JSON-like values ------------------------------------------------------------------------------------

def _to_value(v: Any, out: struct_pb2.Value, path: str) -> None:
    if v is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, (int, float)):
        f = float(v)
        if not math.isfinite(f):
            raise ValidationError(f"{path} is {v!r}: only finite numbers can be stored")
        out.number_value = f
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, datetime):
        out.string_value = as_utc(v).isoformat().replace("+00:00", "Z")
    elif isinstance(v, Mapping):
        _to_struct(v, out.struct_value, path)
    elif isinstance(v, (list, tuple)):
        lst = out.list_value
        lst.SetInParent()
        for i, x in enumerate(v):
            _to_value(x, lst.values.add(), f"{path}[{i}]")
    elif hasattr(v, "tolist"):  # numpy scalars and arrays
        _to_value(v.tolist(), out, path)
    else:
        raise ValidationError(f"{path} has a value of type {type(v).__name__}, which is not JSON-like")


def _to_struct(d: Mapping[str, Any], out: struct_pb2.Struct, path: str) -> None:
    out.SetInParent()
    for k, v in d.items():
        if not isinstance(k, str):
            raise ValidationError(f"{path} has a key {k!r} that is not a string")
        _to_value(v, out.fields[k], f"{path}.{k}")


def _from_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        n = v.number_value
        if n.is_integer() and abs(n) <= 2**53:
            return int(n)
        return n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return _from_struct(v.struct_value)
    if kind == "list_value":
        return [_from_value(x) for x in v.list_value.values]
    return None


def _from_struct(s: struct_pb2.Struct) -> Dict[str, Any]:
    return {k: _from_value(v) for k, v in s.fields.items()}


def struct_to_proto(d: Optional[Mapping[str, Any]], out: struct_pb2.Struct, name: str = "metadata") -> None:
    """Fills ``out`` from a JSON-like dict (raises ValidationError for values that are not)."""
    if d:
        if not isinstance(d, Mapping):
            raise ValidationError(f"{name} must be a dict, got {type(d).__name__}")
        _to_struct(d, out, name)


def struct_from_proto(s: struct_pb2.Struct) -> Dict[str, Any]:
    return _from_struct(s)


# --- embeddings ------------------------------------------------------------------------------------------

def _floats(values: Any, name: str) -> List[float]:
    if values is None:
        return []
    if hasattr(values, "tolist"):  # numpy
        values = values.tolist()
    try:
        return [float(x) for x in values]
    except (TypeError, ValueError) as e:
        raise ValidationError(f"{name} must be a sequence of numbers: {e}") from None


# --- MemoryItem ------------------------------------------------------------------------------------------

def item_to_proto(item: MemoryItem, out: Optional[memory_pb2.MemoryItem] = None) -> memory_pb2.MemoryItem:
    if not isinstance(item, MemoryItem):
        raise ValidationError(f"expected a MemoryItem, got {type(item).__name__}")
    m = memory_pb2.MemoryItem() if out is None else out
    m.id = item.id or ""
    m.user_id = item.user_id or ""
    m.session_id = item.session_id or ""
    _set_time(m.timestamp, item.timestamp, "timestamp")
    m.item_type = item.item_type or ""
    m.persona_active = item.persona_active or ""
    m.text_content = item.text_content or ""
    emb = _floats(item.embedding, "embedding")
    if emb:
        m.embedding.extend(emb)
    struct_to_proto(item.metadata, m.metadata)
    _set_time(m.expiration, item.expiration, "expiration")
    return m


def item_from_proto(m: memory_pb2.MemoryItem) -> MemoryItem:
    return MemoryItem(
        id=m.id,
        user_id=m.user_id,
        session_id=m.session_id or None,
        timestamp=_get_time(m, "timestamp"),
        item_type=m.item_type,
        persona_active=m.persona_active or None,
        text_content=m.text_content,
        embedding=list(m.embedding),
        metadata=_from_struct(m.metadata),
        expiration=_get_time(m, "expiration"),
    )


# --- AgentData -------------------------------------------------------------------------------------------

def agent_data_to_proto(d: AgentData, out: Optional[memory_pb2.AgentData] = None) -> memory_pb2.AgentData:
    if not isinstance(d, AgentData):
        raise ValidationError(f"expected an AgentData, got {type(d).__name__}")
    m = memory_pb2.AgentData() if out is None else out
    m.id = d.id or ""
    m.agent_id = d.agent_id or ""
    _set_time(m.timestamp, d.timestamp, "timestamp")
    m.data_type = d.data_type or ""
    _to_value(d.content, m.content, "content")
    struct_to_proto(d.metadata, m.metadata)
    _set_time(m.expiration, d.expiration, "expiration")
    return m


def agent_data_from_proto(m: memory_pb2.AgentData) -> AgentData:
    return AgentData(
        id=m.id,
        agent_id=m.agent_id,
        timestamp=_get_time(m, "timestamp"),
        data_type=m.data_type,
        content=_from_value(m.content) if m.HasField("content") else None,
        metadata=_from_struct(m.metadata),
        expiration=_get_time(m, "expiration"),
    )


# --- PersonaConfig ---------------------------------------------------------------------------------------

def persona_to_proto(p: PersonaConfig) -> memory_pb2.PersonaConfig:
    m = memory_pb2.PersonaConfig(name=p.name, description=p.description, prompt_template=p.prompt_template)
    for k, v in (p.traits or {}).items():
        m.traits[k] = float(v)
    struct_to_proto(p.metadata, m.metadata)
    return m


def persona_from_proto(m: memory_pb2.PersonaConfig) -> PersonaConfig:
    return PersonaConfig(name=m.name, description=m.description, traits=dict(m.traits),
                         prompt_template=m.prompt_template, metadata=_from_struct(m.metadata))


__all__ = ["MemoryItem", "AgentData", "PersonaConfig", "ItemResult", "Page", "as_utc"]
