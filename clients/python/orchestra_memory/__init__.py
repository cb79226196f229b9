"""Python client of memoryd, the shared memory daemon of the agents on this host.

    from orchestra_memory import MemoryClient, MemoryItem

    memory = MemoryClient()            # $MEMORYD_SOCKET or /run/memoryd/memoryd.sock
    item_id = memory.add_memory_item(MemoryItem(user_id="u1", text_content="hello"))
    memory.get_memory_item(item_id)

``AsyncMemoryClient`` is the asyncio form with the same methods. Every failure raises a subclass of
``StorageError`` (see :mod:`orchestra_memory.errors`, also importable as :mod:`orchestra_memory.exceptions`).
Programs written for the original in-process manager can keep its names: ``FirestoreMemoryManagerV2`` and
the ``MemoryManager`` factory (:mod:`orchestra_memory.compat`).
"""

from .aio import AsyncMemoryClient, default_socket_path
from .client import MemoryClient
from .compat import FirestoreMemoryManagerV2, MemoryManager
from .errors import (
    ConnectionError,
    DeadlineExceededError,
    DuplicateError,
    NotFoundError,
    OperationError,
    RpcError,
    StorageError,
    ValidationError,
)
from .models import AgentData, ItemResult, MemoryItem, Page, PersonaConfig

__version__ = "0.1.0"

__all__ = [
    "AsyncMemoryClient", "MemoryClient", "default_socket_path", "FirestoreMemoryManagerV2", "MemoryManager",
    "MemoryItem", "AgentData", "PersonaConfig", "ItemResult", "Page",
    "StorageError", "ConnectionError", "ValidationError", "OperationError", "NotFoundError",
    "DuplicateError", "RpcError", "DeadlineExceededError",
]
