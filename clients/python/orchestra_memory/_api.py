"""The memory-manager API, written once for both clients.

Each function below is written as the client method it becomes: its signature, docstring and return
annotation are the method's. Its body does the client-independent half of the call — check and encode the
arguments, and say how the answer is decoded — and returns that as a :class:`Call`. ``AsyncMemoryClient``
awaits a Call on its connection, ``MemoryClient`` runs it on its blocking socket; both then hand the
response payload to ``Call.decode``. :func:`install` turns the functions into methods of a client class.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _decode
from . import models as m
from ._proto.orchestra.memory.v1 import memory_pb2, service_pb2
from ._wire import Method, varint
from .errors import ValidationError, error_from_status
from .models import AgentData, ItemResult, MemoryItem, Page, PersonaConfig

PersonaLike = Union[None, str, PersonaConfig, Mapping[str, Any]]

_MEASURES = {
    "cosine": memory_pb2.COSINE,
    "dot": memory_pb2.DOT_PRODUCT,
    "dot_product": memory_pb2.DOT_PRODUCT,
    "euclidean": memory_pb2.EUCLIDEAN,
}


class Call:
    """One call to make: the method, the serialized request, the per-call timeout (None = the client's),
    how to turn the response payload into the result, and — for calls that report rather than raise when
    memoryd cannot be reached — what to return then."""

    __slots__ = ("method", "payload", "decode", "timeout", "unreachable")

    def __init__(self, method: Method, payload: bytes, decode: Callable[[bytes], Any], timeout: Optional[float],
                 unreachable: Optional[Callable[[Exception], Any]] = None) -> None:
        self.method = method
        self.payload = payload
        self.decode = decode
        self.timeout = timeout
        self.unreachable = unreachable


PING = Method("Ping")
ADD_ITEM = Method("AddMemoryItem")
ADD_ITEMS = Method("AddMemoryItems")
GET_ITEM = Method("GetMemoryItem")
DELETE_ITEM = Method("DeleteMemoryItem")
HISTORY = Method("GetConversationHistory")
SEARCH = Method("SemanticSearch")
CHECK_DUPLICATE = Method("CheckDuplicate")
ADD_AGENT_DATA = Method("AddRawAgentData")
GET_AGENT_DATA = Method("GetAgentData")
LIST_AGENT_DATA = Method("ListAgentData")
CLEANUP = Method("CleanupExpiredItems")
HEALTH = Method("HealthCheck")
LIST_ITEMS = Method("ListMemoryItems")
METRICS = Method("GetMetrics")


# --- argument checks -----------------------------------------------------------------------------------

def _id_request(value: Any, name: str) -> bytes:
    """``{id: value}`` (field 1) of the Get/Delete requests, encoded directly: the hot path of a get."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string, got {value!r}")
    b = value.encode()
    return b"\x0a" + varint(len(b)) + b


def _persona_name(p: PersonaLike) -> str:
    if p is None:
        return ""
    if isinstance(p, str):
        return p
    if isinstance(p, PersonaConfig):
        return p.name
    if isinstance(p, Mapping):
        return str(p.get("name", ""))
    name = getattr(p, "name", None)
    if isinstance(name, str):
        return name
    raise ValidationError(f"persona_context must be a str, a PersonaConfig or a dict, got {type(p).__name__}")


def _measure(measure: Union[str, int]) -> int:
    if isinstance(measure, int):
        return measure
    try:
        return _MEASURES[measure.lower()]
    except (KeyError, AttributeError):
        raise ValidationError(f"measure must be cosine, dot_product or euclidean, got {measure!r}") from None


# --- response decoders ---------------------------------------------------------------------------------

def _ping_result(payload: bytes, start: float) -> Dict[str, Any]:
    r = service_pb2.PingResponse.FromString(payload)
    return {"server_version": r.server_version, "uptime_ms": r.uptime_ms,
            "latency_ms": (time.perf_counter() - start) * 1000}


def _added_id(payload: bytes) -> str:
    return service_pb2.AddMemoryItemResponse.FromString(payload).id


def _item_results(payload: bytes) -> List[ItemResult]:
    r = service_pb2.AddMemoryItemsResponse.FromString(payload)
    return [ItemResult(x.id, error_from_status(x.status), False) if x.status.code != 0
            else ItemResult(x.id, None, x.status.details.get("unchanged") == "true") for x in r.results]


def _nothing(payload: bytes) -> None:
    return None


def _items_only(payload: bytes) -> List[MemoryItem]:
    return [item for item, _ in _decode.search_response(payload)]


def _duplicate_id(payload: bytes) -> Optional[str]:
    r = service_pb2.CheckDuplicateResponse.FromString(payload)
    return (r.existing_id or None) if r.duplicate else None


def _is_duplicate(payload: bytes) -> bool:
    return service_pb2.CheckDuplicateResponse.FromString(payload).duplicate


def _agent_data_id(payload: bytes) -> str:
    return service_pb2.AddRawAgentDataResponse.FromString(payload).id


def _agent_data(payload: bytes) -> AgentData:
    return m.agent_data_from_proto(service_pb2.GetAgentDataResponse.FromString(payload).data)


def _agent_data_page(payload: bytes) -> Page:
    r = service_pb2.ListAgentDataResponse.FromString(payload)
    return Page([m.agent_data_from_proto(x) for x in r.items], r.next_page_token)


def _deleted_count(payload: bytes) -> int:
    return int(service_pb2.CleanupExpiredItemsResponse.FromString(payload).deleted_count)


def _metrics_text(payload: bytes) -> str:
    return service_pb2.GetMetricsResponse.FromString(payload).text


def _health(payload: bytes) -> Dict[str, Any]:
    r = service_pb2.HealthCheckResponse.FromString(payload)
    return {"status": r.status, "firestore": r.firestore, "details": m.struct_from_proto(r.details)}


# --- the API -------------------------------------------------------------------------------------------

def initialize(self: Any, *, timeout: Optional[float] = None) -> None:
    """Connects and checks that memoryd answers (raises ConnectionError when it does not)."""
    return Call(PING, b"", _nothing, timeout)


def ping(self: Any, *, timeout: Optional[float] = None) -> Dict[str, Any]:
    """Round trip. Returns ``server_version``, ``uptime_ms`` and the measured ``latency_ms``."""
    start = time.perf_counter()
    return Call(PING, b"", lambda payload: _ping_result(payload, start), timeout)


def add_memory_item(self: Any, item: MemoryItem, *, upsert: bool = False, reject_duplicate_content: bool = False,
                    timeout: Optional[float] = None) -> str:
    """Stores ``item`` and returns its id (generated when ``item.id`` is empty).

    Raises ValidationError, DuplicateError (the id exists and ``upsert`` is false, or the user has an
    item with the same text and ``reject_duplicate_content`` is true), ConnectionError, OperationError.
    """
    req = service_pb2.AddMemoryItemRequest(upsert=upsert, reject_duplicate_content=reject_duplicate_content)
    m.item_to_proto(item, req.item)
    return Call(ADD_ITEM, req.SerializeToString(), _added_id, timeout)


def add_memory_items(self: Any, items: Iterable[MemoryItem], *, upsert: bool = False,
                     timeout: Optional[float] = None) -> List[ItemResult]:
    """Stores several items in one call. Returns one :class:`ItemResult` per item, in order: ``id``
    when stored, else ``error`` (the exception that item would have raised). Raises only when the
    request as a whole is invalid."""
    req = service_pb2.AddMemoryItemsRequest(upsert=upsert)
    for item in items:
        m.item_to_proto(item, req.items.add())
    return Call(ADD_ITEMS, req.SerializeToString(), _item_results, timeout)


def get_memory_item(self: Any, item_id: str, *, timeout: Optional[float] = None) -> MemoryItem:
    """The item with that id. Raises NotFoundError when it does not exist or has expired."""
    return Call(GET_ITEM, _id_request(item_id, "item_id"), _decode.get_item_response, timeout)


def delete_memory_item(self: Any, item_id: str, *, timeout: Optional[float] = None) -> None:
    """Deletes the item. Raises NotFoundError when it does not exist."""
    return Call(DELETE_ITEM, _id_request(item_id, "item_id"), _nothing, timeout)


def get_conversation_history(
    self: Any,
    user_id: str,
    session_id: Optional[str] = None,
    limit: int = 20,
    filters: Optional[Mapping[str, Any]] = None,
    *,
    item_type: str = "conversation",
    page_token: Optional[str] = None,
    exclude_embeddings: bool = False,
    timeout: Optional[float] = None,
) -> Page:
    """The user's items of ``item_type``, newest first by timestamp (at most ``limit``, max 1000).

    ``filters`` is equality on top-level fields or ``"metadata.KEY"``. The result is a list with a
    ``next_page_token`` attribute; pass it back as ``page_token`` for the next page.
    ``exclude_embeddings=True`` asks memoryd to leave the embeddings out (less to send and decode; needs a
    daemon that supports it — an older one sends them anyway).
    """
    req = service_pb2.GetConversationHistoryRequest(
        user_id=user_id or "", session_id=session_id or "", limit=max(int(limit), 0),
        item_type=item_type or "", page_token=page_token or "", exclude_embeddings=exclude_embeddings)
    m.struct_to_proto(filters, req.filters, "filters")
    return Call(HISTORY, req.SerializeToString(), _decode.history_response, timeout)


def _search_request(user_id: str, query_embedding: Sequence[float], persona_context: PersonaLike, top_k: int,
                    session_id: Optional[str], min_score: Optional[float], measure: Union[str, int],
                    exclude_embeddings: bool) -> bytes:
    req = service_pb2.SemanticSearchRequest(
        user_id=user_id or "", persona=_persona_name(persona_context), session_id=session_id or "",
        top_k=max(int(top_k), 0), measure=_measure(measure), exclude_embeddings=exclude_embeddings)
    req.query_embedding.extend(m._floats(query_embedding, "query_embedding"))
    if min_score is not None:
        req.min_score.value = float(min_score)
    return req.SerializeToString()


def search_with_scores(
    self: Any,
    user_id: str,
    query_embedding: Sequence[float],
    persona_context: PersonaLike = None,
    top_k: int = 5,
    *,
    session_id: Optional[str] = None,
    min_score: Optional[float] = None,
    measure: Union[str, int] = "cosine",
    exclude_embeddings: bool = False,
    timeout: Optional[float] = None,
) -> List[Tuple[MemoryItem, float]]:
    """Exact top-k nearest items of the user as ``(item, score)`` pairs, best (highest score) first.

    ``measure``: ``cosine`` (similarity, 1 = same direction), ``dot_product``, or ``euclidean``
    (negative distance). ``persona_context`` (a name, PersonaConfig or dict) filters on
    ``persona_active``; ``session_id`` on the session; ``min_score`` drops results below it;
    ``exclude_embeddings`` as for :meth:`get_conversation_history`.
    """
    payload = _search_request(user_id, query_embedding, persona_context, top_k, session_id, min_score, measure,
                              exclude_embeddings)
    return Call(SEARCH, payload, _decode.search_response, timeout)


def semantic_search(
    self: Any,
    user_id: str,
    query_embedding: Sequence[float],
    persona_context: PersonaLike = None,
    top_k: int = 5,
    *,
    session_id: Optional[str] = None,
    min_score: Optional[float] = None,
    measure: Union[str, int] = "cosine",
    exclude_embeddings: bool = False,
    timeout: Optional[float] = None,
) -> List[MemoryItem]:
    """Like :meth:`search_with_scores` but returns the items only (the original manager's shape)."""
    payload = _search_request(user_id, query_embedding, persona_context, top_k, session_id, min_score, measure,
                              exclude_embeddings)
    return Call(SEARCH, payload, _items_only, timeout)


def find_duplicate(self: Any, item: MemoryItem, *, timeout: Optional[float] = None) -> Optional[str]:
    """The id of an existing item of the same user with the same text, or None."""
    req = service_pb2.CheckDuplicateRequest()
    m.item_to_proto(item, req.item)
    return Call(CHECK_DUPLICATE, req.SerializeToString(), _duplicate_id, timeout)


def check_duplicate(self: Any, item: MemoryItem, *, timeout: Optional[float] = None) -> bool:
    """Whether the user already has an item with the same text (``metadata.content_hash``)."""
    req = service_pb2.CheckDuplicateRequest()
    m.item_to_proto(item, req.item)
    return Call(CHECK_DUPLICATE, req.SerializeToString(), _is_duplicate, timeout)


def add_raw_agent_data(self: Any, data: AgentData, *, timeout: Optional[float] = None) -> str:
    """Stores raw agent data and returns its id (``agent_`` + random when empty)."""
    req = service_pb2.AddRawAgentDataRequest()
    m.agent_data_to_proto(data, req.data)
    return Call(ADD_AGENT_DATA, req.SerializeToString(), _agent_data_id, timeout)


def get_agent_data(self: Any, data_id: str, *, timeout: Optional[float] = None) -> AgentData:
    """The agent data with that id. Raises NotFoundError."""
    return Call(GET_AGENT_DATA, _id_request(data_id, "data_id"), _agent_data, timeout)


def list_agent_data(self: Any, agent_id: str, data_type: Optional[str] = None, limit: int = 20, *,
                    page_token: Optional[str] = None, all_agents: bool = False,
                    timeout: Optional[float] = None) -> Page:
    """The agent's data (optionally of one ``data_type``), newest first; a list with
    ``next_page_token`` (a page may be shorter than ``limit`` with more to come: follow the token until it
    is empty). ``agent_id=""`` with ``all_agents=True``: every agent's data."""
    req = service_pb2.ListAgentDataRequest(agent_id=agent_id or "", data_type=data_type or "",
                                           limit=max(int(limit), 0), page_token=page_token or "",
                                           all_agents=all_agents)
    return Call(LIST_AGENT_DATA, req.SerializeToString(), _agent_data_page, timeout)


def list_memory_items(self: Any, user_id: Optional[str] = None, *, item_type: Optional[str] = None,
                      limit: int = 100, page_token: Optional[str] = None, exclude_embeddings: bool = False,
                      timeout: Optional[float] = None) -> Page:
    """Every memory item of the namespace (or of one user, of one ``item_type``), oldest first; a list with
    ``next_page_token`` — follow it until it is empty. The export and copy path."""
    req = service_pb2.ListMemoryItemsRequest(user_id=user_id or "", item_type=item_type or "",
                                             limit=max(int(limit), 0), page_token=page_token or "",
                                             exclude_embeddings=exclude_embeddings)
    return Call(LIST_ITEMS, req.SerializeToString(), _decode.history_response, timeout)


def get_metrics(self: Any, *, timeout: Optional[float] = None) -> str:
    """The daemon's metrics in the Prometheus text format (the same as its ``GET /metrics``)."""
    return Call(METRICS, b"", _metrics_text, timeout)


def cleanup_expired_items(self: Any, *, timeout: Optional[float] = None) -> int:
    """Deletes expired items now and returns how many. (Expired items are invisible to reads anyway.)"""
    return Call(CLEANUP, b"", _deleted_count, timeout)


def health_check(self: Any, *, timeout: Optional[float] = None) -> Dict[str, Any]:
    """``{"status": "healthy"|"degraded"|"unhealthy", "firestore": bool, "details": {...}}``.

    When memoryd itself cannot be reached this does not raise: it returns ``unhealthy`` with the
    reason in ``details["reason"]`` and ``details["memoryd_reachable"] = False``.
    """
    socket_path = self.socket_path

    def unreachable(e: Exception) -> Dict[str, Any]:
        return {"status": "unhealthy", "firestore": False,
                "details": {"reason": f"memoryd unreachable: {e}", "memoryd_reachable": False,
                            "socket": socket_path}}

    return Call(HEALTH, b"", _health, timeout, unreachable)


API = [
    initialize, ping, add_memory_item, add_memory_items, get_memory_item, delete_memory_item,
    get_conversation_history, search_with_scores, semantic_search, find_duplicate, check_duplicate,
    add_raw_agent_data, get_agent_data, list_agent_data, list_memory_items, cleanup_expired_items, health_check,
    get_metrics,
]


def install(cls: type, make_method: Callable[[Callable[..., Call]], Callable[..., Any]]) -> type:
    """Adds every API function to ``cls`` as ``make_method(function)``, with the function's name, signature
    and docstring (``inspect.signature`` and ``help()`` show them). Methods ``cls`` defines itself win."""
    for spec in API:
        if spec.__name__ not in cls.__dict__:
            setattr(cls, spec.__name__, functools.update_wrapper(make_method(spec), spec))
    return cls
