"""``AsyncMemoryClient``: the memory-manager API over one multiplexed connection to memoryd (asyncio)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from google.protobuf.message import DecodeError, Message

from . import models as m
from ._proto.orchestra.memory.v1 import memory_pb2, service_pb2
from ._transport import Connection, NotProcessed, undecodable
from .errors import (
    UNAVAILABLE,
    ConnectionError,
    DeadlineExceededError,
    RpcError,
    StorageError,
    ValidationError,
    error_from_status,
)
from .models import AgentData, ItemResult, MemoryItem, Page, PersonaConfig

DEFAULT_SOCKET = "/run/memoryd/memoryd.sock"
SERVICE = "/orchestra.memory.v1.MemoryService/"
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024

_MEASURES = {
    "cosine": memory_pb2.COSINE,
    "dot": memory_pb2.DOT_PRODUCT,
    "dot_product": memory_pb2.DOT_PRODUCT,
    "euclidean": memory_pb2.EUCLIDEAN,
}

PersonaLike = Union[None, str, PersonaConfig, Mapping[str, Any]]


def default_socket_path() -> str:
    """``$MEMORYD_SOCKET``, else ``/run/memoryd/memoryd.sock``."""
    return os.environ.get("MEMORYD_SOCKET") or DEFAULT_SOCKET


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


def _check_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string, got {value!r}")
    return value


class AsyncMemoryClient:
    """Client of memoryd for asyncio programs.

    All calls share one Unix-socket connection (opened on first use or by :meth:`initialize`); any number
    may be in flight at once. After the daemon restarts, the next call opens a new connection. Calls the
    server did not process before a GoAway are retried once on a new connection.

    Args:
        socket_path: the daemon's socket (default ``$MEMORYD_SOCKET`` or ``/run/memoryd/memoryd.sock``).
        timeout: default per-call timeout in seconds, sent to the server as ``timeout_ms`` and enforced
            locally too (``None``: no local limit, the server's ``default_timeout_ms`` applies).
        connect_timeout: limit for opening the connection, in seconds.
        metadata: string pairs sent with every call (``Request.metadata``), e.g. ``{"agent": "planner"}``.
        max_frame_bytes: largest request frame sent; bigger requests raise ValidationError locally instead
            of making the server drop the connection (the daemon's default limit is 4 MiB).

    Every method also takes ``timeout=`` (seconds) to override the default for that call.
    """

    def __init__(
        self,
        socket_path: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        *,
        connect_timeout: float = 5.0,
        metadata: Optional[Mapping[str, str]] = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.metadata = dict(metadata or {})
        self.max_frame_bytes = max_frame_bytes
        self._conn: Optional[Connection] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._lock_loop: Optional[asyncio.AbstractEventLoop] = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Connects and checks that memoryd answers (raises ConnectionError when it does not)."""
        await self.ping()

    async def close(self) -> None:
        """Closes the connection. Calls still waiting fail with ConnectionError. The client may be used
        again: the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            if conn.loop is asyncio.get_running_loop():
                await conn.wait_closed()

    async def __aenter__(self) -> "AsyncMemoryClient":
        await self.initialize()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.usable

    # --- calls ---------------------------------------------------------------------------------------

    async def _connection(self, deadline: Optional[float]) -> Connection:
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn is not None and conn.usable and conn.loop is loop:
            return conn
        if self._connect_lock is None or self._lock_loop is not loop:
            self._connect_lock = asyncio.Lock()
            self._lock_loop = loop
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and conn.usable and conn.loop is loop:
                return conn
            if conn is not None and conn.loop is not loop:
                conn.close("the client moved to another event loop")
            timeout = self.connect_timeout
            if deadline is not None:
                timeout = min(timeout, max(deadline - loop.time(), 0.001))
            self._conn = await Connection.open(self.socket_path, timeout)
            return self._conn

    async def _call(self, method: str, request: Message, response_type: Any, timeout: Optional[float]) -> Any:
        """Sends one call and returns its decoded response; raises the call's error."""
        loop = asyncio.get_running_loop()
        payload = request.SerializeToString()
        seconds = self.timeout if timeout is None else timeout
        deadline = None if seconds is None else loop.time() + seconds
        path = SERVICE + method
        for attempt in (1, 2):
            conn = await self._connection(deadline)
            timeout_ms = 0
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DeadlineExceededError(f"{method}: timed out after {seconds:.3g} s before it was sent")
                timeout_ms = max(1, math.ceil(remaining * 1000))
            call_id, fut = conn.start_call(path, payload, timeout_ms, self.metadata, self.max_frame_bytes)
            timer = None
            if deadline is not None:
                timer = loop.call_at(deadline, _expire, fut, method, seconds)
            try:
                await conn.drain_if_needed()
                response = await fut
            except NotProcessed as e:
                if attempt == 1:
                    continue  # not processed: safe to send again on a new connection
                raise _goaway_error(e.goaway, method) from None
            except DeadlineExceededError:
                conn.forget(call_id, send_cancel=True)
                raise
            except asyncio.CancelledError:
                conn.forget(call_id, send_cancel=True)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if response.HasField("status") and response.status.code != 0:
                raise error_from_status(response.status)
            try:
                return response_type.FromString(response.payload)
            except DecodeError as e:
                raise undecodable(method, e) from None
        raise AssertionError("unreachable")

    # --- the memory-manager API ----------------------------------------------------------------------

    async def ping(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Round trip. Returns ``server_version``, ``uptime_ms`` and the measured ``latency_ms``."""
        start = time.perf_counter()
        r = await self._call("Ping", service_pb2.PingRequest(), service_pb2.PingResponse, timeout)
        return {"server_version": r.server_version, "uptime_ms": r.uptime_ms,
                "latency_ms": (time.perf_counter() - start) * 1000}

    async def add_memory_item(self, item: MemoryItem, *, upsert: bool = False,
                              reject_duplicate_content: bool = False, timeout: Optional[float] = None) -> str:
        """Stores ``item`` and returns its id (generated when ``item.id`` is empty).

        Raises ValidationError, DuplicateError (the id exists and ``upsert`` is false, or the user has an
        item with the same text and ``reject_duplicate_content`` is true), ConnectionError, OperationError.
        """
        req = service_pb2.AddMemoryItemRequest(upsert=upsert, reject_duplicate_content=reject_duplicate_content)
        m.item_to_proto(item, req.item)
        r = await self._call("AddMemoryItem", req, service_pb2.AddMemoryItemResponse, timeout)
        return r.id

    async def add_memory_items(self, items: Iterable[MemoryItem], *, upsert: bool = False,
                               timeout: Optional[float] = None) -> List[ItemResult]:
        """Stores several items in one call. Returns one :class:`ItemResult` per item, in order: ``id``
        when stored, else ``error`` (the exception that item would have raised). Raises only when the
        request as a whole is invalid."""
        req = service_pb2.AddMemoryItemsRequest(upsert=upsert)
        for item in items:
            m.item_to_proto(item, req.items.add())
        r = await self._call("AddMemoryItems", req, service_pb2.AddMemoryItemsResponse, timeout)
        return [ItemResult(x.id, error_from_status(x.status) if x.status.code != 0 else None) for x in r.results]

    async def get_memory_item(self, item_id: str, *, timeout: Optional[float] = None) -> MemoryItem:
        """The item with that id. Raises NotFoundError when it does not exist or has expired."""
        req = service_pb2.GetMemoryItemRequest(id=_check_id(item_id, "item_id"))
        r = await self._call("GetMemoryItem", req, service_pb2.GetMemoryItemResponse, timeout)
        return m.item_from_proto(r.item)

    async def delete_memory_item(self, item_id: str, *, timeout: Optional[float] = None) -> None:
        """Deletes the item. Raises NotFoundError when it does not exist."""
        req = service_pb2.DeleteMemoryItemRequest(id=_check_id(item_id, "item_id"))
        await self._call("DeleteMemoryItem", req, service_pb2.DeleteMemoryItemResponse, timeout)

    async def get_conversation_history(
        self,
        user_id: str,
        session_id: Optional[str] = None,
        limit: int = 20,
        filters: Optional[Mapping[str, Any]] = None,
        *,
        item_type: str = "conversation",
        page_token: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Page:
        """The user's items of ``item_type``, newest first by timestamp (at most ``limit``, max 1000).

        ``filters`` is equality on top-level fields or ``"metadata.KEY"``. The result is a list with a
        ``next_page_token`` attribute; pass it back as ``page_token`` for the next page.
        """
        req = service_pb2.GetConversationHistoryRequest(
            user_id=user_id or "", session_id=session_id or "", limit=max(int(limit), 0),
            item_type=item_type or "", page_token=page_token or "")
        m.struct_to_proto(filters, req.filters, "filters")
        r = await self._call("GetConversationHistory", req, service_pb2.GetConversationHistoryResponse, timeout)
        return Page((m.item_from_proto(x) for x in r.items), r.next_page_token)

    async def search_with_scores(
        self,
        user_id: str,
        query_embedding: Sequence[float],
        persona_context: PersonaLike = None,
        top_k: int = 5,
        *,
        session_id: Optional[str] = None,
        min_score: Optional[float] = None,
        measure: Union[str, int] = "cosine",
        timeout: Optional[float] = None,
    ) -> List[Tuple[MemoryItem, float]]:
        """Exact top-k nearest items of the user as ``(item, score)`` pairs, best (highest score) first.

        ``measure``: ``cosine`` (similarity, 1 = same direction), ``dot_product``, or ``euclidean``
        (negative distance). ``persona_context`` (a name, PersonaConfig or dict) filters on
        ``persona_active``; ``session_id`` on the session; ``min_score`` drops results below it.
        """
        req = service_pb2.SemanticSearchRequest(
            user_id=user_id or "", persona=_persona_name(persona_context), session_id=session_id or "",
            top_k=max(int(top_k), 0), measure=_measure(measure))
        req.query_embedding.extend(m._floats(query_embedding, "query_embedding"))
        if min_score is not None:
            req.min_score.value = float(min_score)
        r = await self._call("SemanticSearch", req, service_pb2.SemanticSearchResponse, timeout)
        return [(m.item_from_proto(x.item), x.score) for x in r.results]

    async def semantic_search(self, user_id: str, query_embedding: Sequence[float],
                              persona_context: PersonaLike = None, top_k: int = 5, **kwargs: Any) -> List[MemoryItem]:
        """Like :meth:`search_with_scores` but returns the items only (the original manager's shape)."""
        pairs = await self.search_with_scores(user_id, query_embedding, persona_context, top_k, **kwargs)
        return [item for item, _ in pairs]

    async def find_duplicate(self, item: MemoryItem, *, timeout: Optional[float] = None) -> Optional[str]:
        """The id of an existing item of the same user with the same text, or None."""
        req = service_pb2.CheckDuplicateRequest()
        m.item_to_proto(item, req.item)
        r = await self._call("CheckDuplicate", req, service_pb2.CheckDuplicateResponse, timeout)
        return (r.existing_id or None) if r.duplicate else None

    async def check_duplicate(self, item: MemoryItem, *, timeout: Optional[float] = None) -> bool:
        """Whether the user already has an item with the same text (``metadata.content_hash``)."""
        req = service_pb2.CheckDuplicateRequest()
        m.item_to_proto(item, req.item)
        r = await self._call("CheckDuplicate", req, service_pb2.CheckDuplicateResponse, timeout)
        return r.duplicate

    async def add_raw_agent_data(self, data: AgentData, *, timeout: Optional[float] = None) -> str:
        """Stores raw agent data and returns its id (``agent_`` + random when empty)."""
        req = service_pb2.AddRawAgentDataRequest()
        m.agent_data_to_proto(data, req.data)
        r = await self._call("AddRawAgentData", req, service_pb2.AddRawAgentDataResponse, timeout)
        return r.id

    async def get_agent_data(self, data_id: str, *, timeout: Optional[float] = None) -> AgentData:
        """The agent data with that id. Raises NotFoundError."""
        req = service_pb2.GetAgentDataRequest(id=_check_id(data_id, "data_id"))
        r = await self._call("GetAgentData", req, service_pb2.GetAgentDataResponse, timeout)
        return m.agent_data_from_proto(r.data)

    async def list_agent_data(self, agent_id: str, data_type: Optional[str] = None, limit: int = 20, *,
                              page_token: Optional[str] = None, timeout: Optional[float] = None) -> Page:
        """The agent's data (optionally of one ``data_type``), newest first; a list with
        ``next_page_token``."""
        req = service_pb2.ListAgentDataRequest(agent_id=agent_id or "", data_type=data_type or "",
                                               limit=max(int(limit), 0), page_token=page_token or "")
        r = await self._call("ListAgentData", req, service_pb2.ListAgentDataResponse, timeout)
        return Page((m.agent_data_from_proto(x) for x in r.items), r.next_page_token)

    async def cleanup_expired_items(self, *, timeout: Optional[float] = None) -> int:
        """Deletes expired items now and returns how many. (Expired items are invisible to reads anyway.)"""
        r = await self._call("CleanupExpiredItems", service_pb2.CleanupExpiredItemsRequest(),
                             service_pb2.CleanupExpiredItemsResponse, timeout)
        return int(r.deleted_count)

    async def health_check(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``{"status": "healthy"|"degraded"|"unhealthy", "firestore": bool, "details": {...}}``.

        When memoryd itself cannot be reached this does not raise: it returns ``unhealthy`` with the
        reason in ``details["reason"]`` and ``details["memoryd_reachable"] = False``.
        """
        try:
            r = await self._call("HealthCheck", service_pb2.HealthCheckRequest(),
                                 service_pb2.HealthCheckResponse, timeout)
        except (ConnectionError, DeadlineExceededError) as e:
            return {"status": "unhealthy", "firestore": False,
                    "details": {"reason": f"memoryd unreachable: {e}", "memoryd_reachable": False,
                                "socket": self.socket_path}}
        return {"status": r.status, "firestore": r.firestore, "details": m.struct_from_proto(r.details)}


def _expire(fut: asyncio.Future, method: str, seconds: float) -> None:
    if not fut.done():
        fut.set_exception(DeadlineExceededError(f"{method}: no answer within {seconds:.3g} s (local deadline)"))


def _goaway_error(goaway: Any, method: str) -> StorageError:
    text = f"{method} was not processed: memoryd sent GoAway twice ({goaway.message})"
    if goaway.code == UNAVAILABLE:
        return ConnectionError(text, details={"goaway_code": str(goaway.code)})
    return RpcError(text, code=goaway.code or UNAVAILABLE, details={"goaway_code": str(goaway.code)})


__all__ = ["AsyncMemoryClient", "default_socket_path"]
