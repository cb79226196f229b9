"""The original memory manager's names, for programs written against it: ``FirestoreMemoryManagerV2`` and
the ``MemoryManager`` factory, taking the original constructor arguments.

Storage settings now belong to memoryd, so the ones a program passes are *checked* against what the daemon
reports in ``HealthCheck`` details when :meth:`FirestoreMemoryManagerV2.initialize` runs:

- ``project_id``, ``namespace`` and the backend asked of ``MemoryManager`` select where the data lives: a
  value that differs from the daemon's raises ConnectionError naming both.
- ``connection_pool_size`` and ``batch_size`` only tune the daemon: a different value logs one warning that
  says where the setting lives (``firestore.connection_pool_size`` / ``firestore.batch_size`` in memoryd's
  configuration).
- ``credentials_path`` / ``credentials_json``: memoryd authenticates with its own credentials; a program
  that passes them gets one INFO log line saying so.

A setting the daemon does not report (an older daemon, or the sqlite backend, which has no project) is not
checked.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from . import _api
from ._api import Call
from .aio import AsyncMemoryClient
from .errors import ConnectionError
from .models import MemoryItem

logger = logging.getLogger("orchestra_memory")

#: ``memory_backend_type`` values the original factory took, and the memoryd backend each means.
BACKENDS = {"firestore_v2": "firestore", "firestore": "firestore", "sqlite": "sqlite"}


class _Factory(type):
    """Lets ``MemoryManager(...)`` build the right manager while the managers still subclass it."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is MemoryManager:
            return _make_manager(*args, **kwargs)
        return super().__call__(*args, **kwargs)


class MemoryManager(metaclass=_Factory):
    """The original factory and base class of the managers.

    ``MemoryManager(memory_backend_type="firestore_v2", project_id=..., credentials_path=...,
    connection_pool_size=10, batch_size=100)`` returns a :class:`FirestoreMemoryManagerV2` that expects the
    daemon to run that backend: ``"firestore_v2"`` or ``"firestore"`` (memoryd's Firestore backend) or
    ``"sqlite"``. Every other argument is keyword-only and is passed on to FirestoreMemoryManagerV2.
    """


def _make_manager(memory_backend_type: Optional[str] = None, **kwargs: Any) -> "FirestoreMemoryManagerV2":
    return FirestoreMemoryManagerV2(memory_backend_type=memory_backend_type, **kwargs)


class FirestoreMemoryManagerV2(AsyncMemoryClient, MemoryManager):
    """The original ``FirestoreMemoryManagerV2``, served by memoryd: an :class:`AsyncMemoryClient` (every
    method of it) that takes the original constructor arguments and answers ``health_check`` in the
    original shape.

    Args:
        project_id: the Firestore project the program expects; checked against the daemon's at
            :meth:`initialize`. The only positional argument: the original's positional order differed
            between its guide and its code, so everything after it is keyword-only.
        credentials_path, credentials_json: accepted and not used (memoryd has its own credentials).
        connection_pool_size, batch_size: the sizes the program expects; compared with the daemon's.
        socket_path: memoryd's socket (default ``$MEMORYD_SOCKET``, else ``/run/memoryd/memoryd.sock``).
        namespace: the namespace the program expects; checked when the daemon reports its own.
        timeout: default timeout of every call in seconds.
        memory_backend_type: the backend the program expects (what ``MemoryManager`` passes).
    """

    def __init__(
        self,
        project_id: Optional[str] = None,
        *,
        credentials_path: Optional[str] = None,
        credentials_json: Optional[str] = None,
        connection_pool_size: Optional[int] = None,
        batch_size: Optional[int] = None,
        socket_path: Optional[str] = None,
        namespace: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        memory_backend_type: Optional[str] = None,
    ) -> None:
        if project_id is not None and (not isinstance(project_id, str) or "/" in project_id):
            raise ValueError(f"project_id must be a Firestore project id, got {project_id!r}"
                             + (" (a socket path? pass socket_path=...)" if isinstance(project_id, str) else ""))
        for name, value in (("connection_pool_size", connection_pool_size), ("batch_size", batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if memory_backend_type is not None and memory_backend_type not in BACKENDS:
            raise ValueError(f"memory_backend_type must be one of {', '.join(sorted(BACKENDS))}, "
                             f"got {memory_backend_type!r}")
        super().__init__(socket_path, timeout)
        self.project_id = project_id
        self.namespace = namespace
        self.connection_pool_size = connection_pool_size
        self.batch_size = batch_size
        self.credentials_given = credentials_path is not None or credentials_json is not None
        self.memory_backend_type = memory_backend_type
        self._warned = False

    # --- initialize: the settings checks -------------------------------------------------------------

    async def initialize(self, *, timeout: Optional[float] = None) -> None:
        """Connects, and checks the settings given to the constructor against the daemon's.

        Raises ConnectionError when memoryd cannot be reached, or when it stores somewhere else than the
        program asked for (another backend, project or namespace).
        """
        health = await self._run(Call(_api.HEALTH, b"", _api._health, timeout))
        details = health["details"]
        try:
            self._check_location(details)
        except ConnectionError:
            await self.close()
            raise
        if not self._warned:
            self._warned = True
            self._log_settings(details)

    def _check_location(self, details: Dict[str, Any]) -> None:
        daemon_backend = details.get("backend")
        where = f"memoryd at {self.socket_path}"
        if self.memory_backend_type is not None and daemon_backend is not None:
            wanted = BACKENDS[self.memory_backend_type]
            if wanted != daemon_backend:
                raise ConnectionError(
                    f"memory_backend_type={self.memory_backend_type!r} asks for the {wanted} backend, but {where} "
                    f"runs the {daemon_backend} backend (backend in memoryd's config)",
                    details={"expected": wanted, "daemon": str(daemon_backend)})
        for name, mine, key in (("project_id", self.project_id, "firestore.project_id"),
                                ("namespace", self.namespace, "namespace")):
            theirs = details.get(name)
            if mine is not None and theirs is not None and str(theirs) != mine:
                raise ConnectionError(f"{name}={mine!r} differs from {where}, which uses {name}={theirs!r} "
                                      f"({key} in memoryd's config)",
                                      details={"expected": mine, "daemon": str(theirs)})

    def _log_settings(self, details: Dict[str, Any]) -> None:
        notes: List[str] = []
        sqlite = details.get("backend") == "sqlite"
        for name, mine in (("connection_pool_size", self.connection_pool_size), ("batch_size", self.batch_size)):
            theirs = details.get(name)
            if mine is not None and theirs is not None and int(theirs) != mine:
                # On sqlite the pool is the worker count (memoryd's `workers`, one per core by default).
                key = "workers" if sqlite and name == "connection_pool_size" else f"firestore.{name}"
                notes.append(f"{name}={mine} is not the daemon's ({int(theirs)}); it is set in memoryd's config "
                             f"as {key}")
        if self.project_id is not None and details.get("backend") == "sqlite":
            notes.append(f"project_id={self.project_id!r} is not used: memoryd runs the sqlite backend")
        if notes:
            logger.warning("FirestoreMemoryManagerV2 settings differ from memoryd at %s: %s", self.socket_path,
                           "; ".join(notes))
        if self.credentials_given:
            logger.info("FirestoreMemoryManagerV2: credentials are not used by the client; memoryd authenticates "
                        "with its own (firestore.credentials_path in memoryd's config)")

    # --- the original's semantics where they differ ---------------------------------------------------

    async def check_duplicate(self, item: MemoryItem, *, timeout: Optional[float] = None) -> bool:
        """Whether the user already has an item with the same text. An item without text is never a
        duplicate (as in the original)."""
        if not item.text_content:
            return False
        return await super().check_duplicate(item, timeout=timeout)

    async def health_check(self, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The original shape: ``status`` (healthy/degraded/unhealthy), ``firestore`` (bool), and
        ``details`` with ``reason`` (why not healthy, else None), ``firestore_latency_ms`` (the daemon's
        probe of Firestore, else None) and ``firestore_error`` (else None), plus memoryd's own details.
        Never raises: an unreachable memoryd is ``unhealthy``."""
        h = await super().health_check(timeout=timeout)
        details = dict(h["details"])
        reachable = details.get("memoryd_reachable", True)
        error = details.get("firestore_error") or None
        if error is None and not h["firestore"]:
            if not reachable:
                error = details.get("reason")
            elif details.get("backend") == "sqlite":
                error = "memoryd runs the sqlite backend: there is no Firestore"
        latency = details.get("firestore_latency_ms") if h["firestore"] else None
        details["reason"] = details.get("reason") or None
        details["firestore_latency_ms"] = latency
        details["firestore_error"] = error
        return {"status": h["status"], "firestore": h["firestore"], "details": details}


__all__ = ["FirestoreMemoryManagerV2", "MemoryManager", "BACKENDS"]
