"""Fixtures: a real memoryd per test module and backend, fresh daemons for lifecycle tests.

Backends come from ``MEMORYD_TEST_BACKENDS`` (comma-separated, default ``sqlite``); ``firestore`` starts
the Firestore emulator once per session (``gcloud emulators firestore start``) and gives every daemon its
own namespace. ``MEMORYD_BIN`` overrides the daemon binary (default ``<repo>/.build/debug/memoryd``).
"""

from __future__ import annotations

import os
import uuid
from typing import Callable, Iterator, List

import pytest

from _daemon import Daemon, FirestoreEmulator
from orchestra_memory import MemoryClient

BACKENDS = [b.strip() for b in os.environ.get("MEMORYD_TEST_BACKENDS", "sqlite").split(",") if b.strip()]
KNOWN = {"sqlite", "firestore"}
if set(BACKENDS) - KNOWN:
    raise pytest.UsageError(f"MEMORYD_TEST_BACKENDS: unknown backend(s) {sorted(set(BACKENDS) - KNOWN)}")


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    emulator = FirestoreEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def backend_args(backend: str, request: pytest.FixtureRequest) -> Callable[[], List[str]]:
    """A function giving the daemon flags for the backend (a new namespace on each call for Firestore)."""
    if backend == "sqlite":
        return lambda: ["--backend", "sqlite"]
    emulator = request.getfixturevalue("firestore_emulator")
    return lambda: ["--backend", "firestore", "--emulator-host", emulator.host, "--project-id", "demo",
                    "--namespace", "t" + uuid.uuid4().hex[:12]]


@pytest.fixture(scope="module")
def daemon(backend_args: Callable[[], List[str]]) -> Iterator[Daemon]:
    """One memoryd shared by the tests of a module (tests use their own user ids)."""
    d = Daemon(backend_args()).start()
    yield d
    d.cleanup()


@pytest.fixture
def make_daemon(backend_args: Callable[[], List[str]]) -> Iterator[Callable[..., Daemon]]:
    """Starts fresh daemons for one test (stopped and removed at its end)."""
    made: List[Daemon] = []

    def make(extra_args: List[str] = (), env: dict = None, start: bool = True) -> Daemon:
        d = Daemon(backend_args() + list(extra_args), env=env)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.cleanup()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[MemoryClient]:
    c = MemoryClient(daemon.socket_path, timeout=30)
    yield c
    c.close()


@pytest.fixture
def user() -> str:
    """A user id of this test alone."""
    return "u_" + uuid.uuid4().hex[:16]
