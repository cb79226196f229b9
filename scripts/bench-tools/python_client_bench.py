#!/usr/bin/env python3
"""Per-call latency of the Python client (orchestra_memory) against redis-py, side by side in one process.

    python_client_bench.py --memoryd-socket S [--redis-socket R] [--rounds 9] [--calls 5000] [--json-out F]

Measured, each call timed alone (one call in flight, one connection, same machine, Unix sockets):

- ``redis-py``: PING and GET of a value as long as memoryd's GetMemoryItem payload;
- ``blocking``: ``MemoryClient.ping()`` and ``get_memory_item()`` of one warm small item (the item
  ``memory-bench transport`` uses: 98 characters of text, no embedding);
- ``async``: the same through ``AsyncMemoryClient``, awaited one after another on one event loop;
- ``redis-py + JSON``: for context only, GET of the same item stored as JSON and turned into a
  ``MemoryItem`` (what a program keeping its memory items in Redis would do); the targets compare with
  plain GET;
- ``raw``: floors without a client library — a pre-encoded request written with ``sendall`` and the
  answer read with ``recv`` (RESP for Redis, a memoryd frame for memoryd), so the table shows how much of
  each figure is the server and the socket, and how much the client's Python.

``--baseline-client DIR`` adds another copy of orchestra_memory (a directory holding the package, e.g. an
older commit's ``clients/python``) as ``blocking (baseline)`` and ``async (baseline)``, measured in a child
process driven round by round like the others.

Every system is warmed first; then ``--rounds`` rounds each run every system for ``--calls`` calls, the
order rotating from round to round, so that changes in the machine's load hit all systems alike. The
figures are the medians over rounds of each round's p50 and p99. ``--smoke`` runs a tiny version that
checks every system answers correctly, without judging speed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import struct
import sys
import time
from datetime import datetime
from typing import Callable, Dict, List, Tuple

import google.protobuf
from google.protobuf.internal import api_implementation

import orchestra_memory
from orchestra_memory import AsyncMemoryClient, MemoryClient, MemoryItem
from orchestra_memory._wire import decode_frame

ITEM = MemoryItem(id="bench_warm_item", user_id="bench", session_id="s1", text_content="memory " * 14)
TARGETS = {("get", "blocking"): 1.3, ("ping", "blocking"): 1.2}


def wait_for(path: str, timeout: float = 30.0) -> None:
    """Until something accepts connections on ``path`` (the daemons here do not notify readiness)."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on {path} after {timeout} s")
            time.sleep(0.05)
        finally:
            s.close()


# --- raw floors -----------------------------------------------------------------------------------------

class RawMemoryd:
    """Pre-encoded Ping / GetMemoryItem frames over a bare socket; reads one whole frame back."""

    def __init__(self, path: str) -> None:
        from orchestra_memory._api import GET_ITEM, PING, _id_request
        from orchestra_memory._wire import encode_request

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.ping_frame = encode_request(1, PING, 0, b"", b"")
        self.get_frame = encode_request(2, GET_ITEM, 0, b"", _id_request(ITEM.id, "id"))

    def _call(self, frame: bytes) -> bytes:
        self.sock.sendall(frame)
        data = self.sock.recv(65536)
        need = 4 + struct.unpack_from(">I", data)[0]
        while len(data) < need:
            data += self.sock.recv(65536)
        return data

    def ping(self) -> bytes:
        return self._call(self.ping_frame)

    def get(self) -> bytes:
        return self._call(self.get_frame)


class RawRedis:
    """RESP PING / GET over a bare socket."""

    def __init__(self, path: str, value_len: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.get_reply_len = len(f"${value_len}\r\n") + value_len + 2

    def ping(self) -> bytes:
        self.sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        data = self.sock.recv(65536)
        while not data.endswith(b"\r\n"):
            data += self.sock.recv(65536)
        return data

    def get(self) -> bytes:
        self.sock.sendall(b"*2\r\n$3\r\nGET\r\n$14\r\nbench:py:value\r\n")
        data = self.sock.recv(65536)
        while len(data) < self.get_reply_len:
            data += self.sock.recv(65536)
        return data


# --- another copy of the client, in a child process -------------------------------------------------------

_CHILD = r"""
import asyncio, json, sys, time
from orchestra_memory import AsyncMemoryClient, MemoryClient
path, item_id = sys.argv[1], sys.argv[2]
blocking = MemoryClient(path, timeout=30)
loop = asyncio.new_event_loop()
aio = AsyncMemoryClient(path, timeout=30)
ops = {"blocking ping": blocking.ping, "blocking get": lambda: blocking.get_memory_item(item_id)}
async_ops = {"async ping": aio.ping, "async get": lambda: aio.get_memory_item(item_id)}
clock = time.perf_counter_ns
for line in sys.stdin:
    name, n = line.rsplit(" ", 1)
    n = int(n)
    out = [0] * n
    if name in ops:
        fn = ops[name]
        for i in range(n):
            t = clock(); fn(); out[i] = clock() - t
    else:
        make = async_ops[name]
        async def run():
            for i in range(n):
                t = clock(); await make(); out[i] = clock() - t
        loop.run_until_complete(run())
    print(json.dumps(out), flush=True)
"""


class Baseline:
    """Runs calls through another copy of the package in a child process, on request."""

    def __init__(self, package_dir: str, socket_path: str) -> None:
        import subprocess

        env = dict(os.environ, PYTHONPATH=os.path.abspath(package_dir))
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD, socket_path, ITEM.id], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, name: str, n: int) -> List[int]:
        self.proc.stdin.write(f"{name} {n}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the baseline client failed on {name}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


# --- measuring -------------------------------------------------------------------------------------------

def timed(fn: Callable[[], object], n: int) -> List[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        fn()
        out[i] = clock() - t
    return out


def timed_async(loop: asyncio.AbstractEventLoop, make: Callable[[], object], n: int) -> List[int]:
    async def run() -> List[int]:
        out = [0] * n
        clock = time.perf_counter_ns
        for i in range(n):
            t = clock()
            await make()
            out[i] = clock() - t
        return out

    return loop.run_until_complete(run())


def percentile(sorted_ns: List[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memoryd-socket", required=True)
    ap.add_argument("--redis-socket", help="redis-server's Unix socket (omit: memoryd only)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=5000, help="calls per system per round")
    ap.add_argument("--warmup", type=int, default=3000, help="untimed calls per system first")
    ap.add_argument("--json-out", help="append JSON lines here")
    ap.add_argument("--smoke", action="store_true", help="a few calls: check that everything answers")
    ap.add_argument("--baseline-client", metavar="DIR", help="another copy of orchestra_memory to measure too")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.calls, args.warmup = 2, 50, 20

    wait_for(args.memoryd_socket)
    blocking = MemoryClient(args.memoryd_socket, timeout=30)
    blocking.add_memory_item(ITEM, upsert=True)
    raw_md = RawMemoryd(args.memoryd_socket)
    value_len = len(decode_frame(raw_md.get()[4:])[2])  # the GetMemoryItem payload's size
    loop = asyncio.new_event_loop()
    aio = AsyncMemoryClient(args.memoryd_socket, timeout=30)

    expected_text = ITEM.text_content
    systems: List[Tuple[str, str, Callable[[int], List[int]], Callable[[], bool]]] = []

    def add(op: str, system: str, run: Callable[[int], List[int]], check: Callable[[], bool]) -> None:
        systems.append((op, system, run, check))

    add("ping", "blocking", lambda n: timed(blocking.ping, n), lambda: bool(blocking.ping()["server_version"]))
    add("get", "blocking", lambda n: timed(lambda: blocking.get_memory_item(ITEM.id), n),
        lambda: blocking.get_memory_item(ITEM.id).text_content == expected_text)
    add("ping", "async", lambda n: timed_async(loop, aio.ping, n),
        lambda: bool(loop.run_until_complete(aio.ping())["server_version"]))
    add("get", "async", lambda n: timed_async(loop, lambda: aio.get_memory_item(ITEM.id), n),
        lambda: loop.run_until_complete(aio.get_memory_item(ITEM.id)).text_content == expected_text)
    add("ping", "raw memoryd", lambda n: timed(raw_md.ping, n), lambda: len(raw_md.ping()) > 4)
    add("get", "raw memoryd", lambda n: timed(raw_md.get, n), lambda: expected_text.encode() in raw_md.get())

    baseline = None
    if args.baseline_client:
        baseline = Baseline(args.baseline_client, args.memoryd_socket)
        for op in ("ping", "get"):
            for kind in ("blocking", "async"):
                add(op, f"{kind} (baseline)", lambda n, name=f"{kind} {op}": baseline.run(name, n),
                    lambda name=f"{kind} {op}": len(baseline.run(name, 3)) == 3)

    redis_version = "-"
    if args.redis_socket:
        import redis

        wait_for(args.redis_socket)
        redis_version = redis.__version__
        try:
            import hiredis  # noqa: F401
            redis_version += " (hiredis parser)"
        except ImportError:
            redis_version += " (pure-Python parser)"
        r = redis.Redis(unix_socket_path=args.redis_socket)
        value = b"v" * value_len
        r.set("bench:py:value", value)
        raw_r = RawRedis(args.redis_socket, value_len)
        add("ping", "redis-py", lambda n: timed(r.ping, n), lambda: r.ping() is True)
        add("get", "redis-py", lambda n: timed(lambda: r.get("bench:py:value"), n),
            lambda: r.get("bench:py:value") == value)
        stored = blocking.get_memory_item(ITEM.id)
        as_json = json.dumps(dict(stored.to_dict(), timestamp=stored.timestamp.isoformat()))
        r.set("bench:py:item", as_json)

        def item_from_redis() -> MemoryItem:
            d = json.loads(r.get("bench:py:item"))
            d["timestamp"] = datetime.fromisoformat(d["timestamp"])
            return MemoryItem(**d)

        add("get", "redis-py + JSON", lambda n: timed(item_from_redis, n), lambda: item_from_redis() == stored)
        add("ping", "raw redis", lambda n: timed(raw_r.ping, n), lambda: raw_r.ping() == b"+PONG\r\n")
        add("get", "raw redis", lambda n: timed(raw_r.get, n), lambda: raw_r.get().endswith(value + b"\r\n"))

    for op, system, _, check in systems:
        if not check():
            print(f"FAILED: {system} {op} did not answer as expected", file=sys.stderr)
            return 1

    print(f"python_client_bench: Python {platform.python_version()}, protobuf {google.protobuf.__version__} "
          f"({api_implementation.Type()}), orchestra_memory {orchestra_memory.__version__}, redis-py {redis_version}; "
          f"GET value / GetMemoryItem payload {value_len} bytes")
    print(f"{args.rounds} rounds x {args.calls} calls per system (after {args.warmup} warm-up calls), order "
          f"rotating; load average at start {os.getloadavg()[0]:.2f}")

    for _, _, run, _ in systems:
        run(args.warmup)
    per_round: Dict[Tuple[str, str], List[Tuple[float, float]]] = {(op, s): [] for op, s, _, _ in systems}
    for rnd in range(args.rounds):
        k = rnd % len(systems)
        for op, system, run, _ in systems[k:] + systems[:k]:
            gc.collect()
            lat = sorted(run(args.calls))
            per_round[(op, system)].append((percentile(lat, 0.50), percentile(lat, 0.99)))
    load_end = os.getloadavg()[0]

    figures: Dict[Tuple[str, str], Tuple[float, float]] = {}
    spread: Dict[Tuple[str, str], Tuple[float, float]] = {}
    for key, rows in per_round.items():
        figures[key] = (statistics.median(p50 for p50, _ in rows), statistics.median(p99 for _, p99 in rows))
        spread[key] = (min(p50 for p50, _ in rows), max(p50 for p50, _ in rows))

    print("\n| call | client | p50 µs | p50 range over rounds | p99 µs | p50 vs redis-py |\n"
          "|---|---|---:|---:|---:|---:|")
    for op in ("ping", "get"):
        ref = figures.get((op, "redis-py"))
        for system in ("redis-py", "blocking", "async", "blocking (baseline)", "async (baseline)", "redis-py + JSON",
                       "raw redis", "raw memoryd"):
            if (op, system) not in figures:
                continue
            p50, p99 = figures[(op, system)]
            ratio = f"{p50 / ref[0]:.2f}×" if ref else "-"
            low, high = spread[(op, system)]
            print(f"| {op} | {system} | {p50:.1f} | {low:.0f}–{high:.0f} | {p99:.1f} | {ratio} |")
    print(f"(load average at end {load_end:.2f})")
    for op in ("ping", "get"):
        floor_md = figures[(op, "raw memoryd")][0]
        parts = [f"blocking {figures[(op, 'blocking')][0] - floor_md:.1f}",
                 f"async {figures[(op, 'async')][0] - floor_md:.1f}"]
        if (op, "redis-py") in figures:
            parts.append(f"redis-py {figures[(op, 'redis-py')][0] - figures[(op, 'raw redis')][0]:.1f} "
                         f"(over raw redis)")
        print(f"{op}: p50 over the raw-socket floor, µs: " + ", ".join(parts))
    if args.smoke:
        print("smoke: every system answered correctly; speed is not judged")
    elif args.redis_socket:
        print()
        for (op, system), limit in TARGETS.items():
            ratio = figures[(op, system)][0] / figures[(op, "redis-py")][0]
            verdict = "met" if ratio <= limit else "MISSED"
            print(f"target: {system} {op} p50 within {limit}x of redis-py: {ratio:.2f}x -> {verdict}")

    if args.json_out:
        with open(args.json_out, "a") as f:
            for (op, system), (p50, p99) in figures.items():
                f.write(json.dumps({"kind": "python_client", "op": op, "system": system, "p50_us": p50, "p99_us": p99,
                                    "rounds": args.rounds, "calls": args.calls, "smoke": args.smoke,
                                    "redis_py": redis_version}) + "\n")
    if baseline is not None:
        baseline.close()
    blocking.close()
    loop.run_until_complete(aio.close())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
