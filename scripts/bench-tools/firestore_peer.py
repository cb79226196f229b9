#!/usr/bin/env python3
"""memoryd against the peer a user would pick instead: Google's official Python client.

The original benchmark's workload (add N items with 768-d embeddings, get G of them, one top-5 semantic
search, one history of 20), done the way an in-process memory manager does it with `google-cloud-firestore`
(one client, `set`, `get`, `find_nearest`, an ordered query), and the same work through memoryd with
`orchestra_memory.MemoryClient`. Both sides talk to the same warm Firestore emulator, in one process, one
untimed warm-up round first, then rounds interleaved (the order alternates), medians per operation.

    firestore_peer.py rounds --emulator H:P --project P --side NAME=SOCKET [--side ...] [--official]
                             [--items 100] [--gets 20] [--rounds 5] [--label direct] [--json-out F]
    firestore_peer.py agents --emulator H:P --project P --socket S --memoryd-pid PID [--agents 8]
                             [--items 100] [--gets 20] [--label direct] [--json-out F]

`rounds` prints a table of medians (ms) and the ratio official / memoryd for every memoryd side (e.g.
`memoryd` with the read cache and `memoryd-nocache` with MEMORYD_CACHE_MAX_BYTES=0).
`agents` starts N agent processes at once for each side (memoryd's clients against one daemon; N processes
each with their own official client) and reports the wall time until all finished and the peak of the
summed RSS of every process involved (memoryd included on its side; the emulator excluded on both).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, Dict, List, Tuple

DIM = 768
OPS = ["add", "get", "search", "history"]


def vec(rng: random.Random) -> List[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


# --- the two sides -------------------------------------------------------------------------------------


class Official:
    """What an in-process manager does with the official client: one Client, documents in the SPEC §9 shape."""

    name = "official"

    def __init__(self, project: str, collection: str):
        from google.cloud import firestore  # imported here: its import cost belongs to the agent runs
        from google.cloud.firestore_v1.base_vector_query import DistanceMeasure
        from google.cloud.firestore_v1.vector import Vector

        self._fs = firestore
        self._vector = Vector
        self._cosine = DistanceMeasure.COSINE
        self.client = firestore.Client(project=project)
        self.col = self.client.collection(collection)

    def add(self, user: str, i: int, text: str, emb: List[float]) -> str:
        doc_id = "mem_" + uuid.uuid4().hex
        self.col.document(doc_id).set({
            "id": doc_id, "user_id": user, "session_id": "s1", "timestamp": datetime.now(timezone.utc),
            "item_type": "conversation", "persona_active": "", "text_content": text,
            "embedding": self._vector(emb), "metadata": {"i": i}, "expiration": None,
        })
        return doc_id

    def get(self, doc_id: str) -> None:
        snap = self.col.document(doc_id).get()
        assert snap.exists, doc_id
        snap.to_dict()

    def search(self, user: str, q: List[float]) -> int:
        from google.cloud.firestore_v1 import FieldFilter

        query = self.col.where(filter=FieldFilter("user_id", "==", user)).find_nearest(
            vector_field="embedding", query_vector=self._vector(q), distance_measure=self._cosine, limit=5)
        return len([d.to_dict() for d in query.get()])

    def history(self, user: str) -> int:
        from google.cloud.firestore_v1 import FieldFilter

        query = (self.col.where(filter=FieldFilter("user_id", "==", user))
                 .where(filter=FieldFilter("item_type", "==", "conversation"))
                 .order_by("timestamp", direction=self._fs.Query.DESCENDING).limit(20))
        return len([d.to_dict() for d in query.get()])

    def close(self) -> None:
        self.client.close()


class Memoryd:
    """The same work through memoryd's Python client (blocking), as an agent would use it."""

    def __init__(self, name: str, socket_path: str):
        from orchestra_memory import MemoryClient, MemoryItem

        self.name = name
        self._item = MemoryItem
        self.client = MemoryClient(socket_path)
        self.client.initialize()

    def add(self, user: str, i: int, text: str, emb: List[float]) -> str:
        return self.client.add_memory_item(self._item(
            user_id=user, session_id="s1", text_content=text, embedding=emb, metadata={"i": i}))

    def get(self, doc_id: str) -> None:
        self.client.get_memory_item(doc_id)

    def search(self, user: str, q: List[float]) -> int:
        return len(self.client.semantic_search(user, q, top_k=5))

    def history(self, user: str) -> int:
        return len(self.client.get_conversation_history(user, limit=20))

    def close(self) -> None:
        self.client.close()


def workload(side, rng: random.Random, items: int, gets: int, record: Callable[[str, float], None]) -> None:
    """One round for one side: a fresh user, `items` adds, `gets` gets, one search, one history."""
    user = f"bench-{side.name}-{uuid.uuid4().hex[:8]}"
    ids = []
    for i in range(items):
        emb = vec(rng)
        t = time.perf_counter()
        ids.append(side.add(user, i, f"memory {i} of {user}", emb))
        record("add", time.perf_counter() - t)
    for doc_id in rng.sample(ids, min(gets, len(ids))):
        t = time.perf_counter()
        side.get(doc_id)
        record("get", time.perf_counter() - t)
    q = vec(rng)
    t = time.perf_counter()
    n = side.search(user, q)
    record("search", time.perf_counter() - t)
    assert n == min(5, items), f"{side.name}: search returned {n}"
    t = time.perf_counter()
    n = side.history(user)
    record("history", time.perf_counter() - t)
    assert n == min(20, items), f"{side.name}: history returned {n}"


# --- rounds: one process, interleaved --------------------------------------------------------------------


def run_rounds(args: argparse.Namespace) -> None:
    os.environ["FIRESTORE_EMULATOR_HOST"] = args.emulator
    sides = []
    if args.official:
        sides.append(Official(args.project, f"peer{uuid.uuid4().hex[:6]}_memory_items"))
    for spec in args.side:
        name, sock = spec.split("=", 1)
        sides.append(Memoryd(name, sock))
    rng = random.Random(42)
    samples: Dict[str, Dict[str, List[float]]] = {s.name: {op: [] for op in OPS} for s in sides}
    # Untimed warm-up: the emulator's first writes to a collection are slow, connections open, caches fill.
    for s in sides:
        workload(s, rng, min(args.items, 20), min(args.gets, 5), lambda op, dt: None)
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for s in order:
            workload(s, rng, args.items, args.gets, lambda op, dt, s=s: samples[s.name][op].append(dt * 1000))
    for s in sides:
        s.close()

    med = {name: {op: statistics.median(v) for op, v in ops.items() if v} for name, ops in samples.items()}
    names = [s.name for s in sides]
    print(f"\nfirestore peer [{args.label}]: {args.items} items x {DIM}-d, {args.gets} gets, top-5 search, "
          f"history 20; {args.rounds} rounds interleaved after a warm-up; medians in ms")
    print("  op        " + "".join(f"{n:>18}" for n in names) + "".join(
        f"{'official/' + n:>26}" for n in names if n != "official"))
    for op in OPS:
        row = f"  {op:<10}" + "".join(f"{med[n][op]:>18.2f}" for n in names)
        if "official" in med:
            row += "".join(f"{med['official'][op] / med[n][op]:>25.2f}x" for n in names if n != "official")
        print(row)
    if args.json_out:
        with open(args.json_out, "a") as f:
            for n in names:
                for op in OPS:
                    v = samples[n][op]
                    f.write(json.dumps({"kind": "firestore_peer", "label": args.label, "side": n, "op": op,
                                        "items": args.items, "rounds": args.rounds, "p50_ms": med[n][op],
                                        "p90_ms": sorted(v)[int(0.9 * (len(v) - 1))], "samples": len(v)}) + "\n")


# --- agents: N processes at once ------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_agents(args: argparse.Namespace) -> None:
    results = {}
    for side in ["memoryd", "official"]:
        cmd = [sys.executable, __file__, "agent", "--side-kind", side, "--emulator", args.emulator,
               "--project", args.project, "--socket", args.socket, "--items", str(args.items),
               "--gets", str(args.gets)]
        env = dict(os.environ, FIRESTORE_EMULATOR_HOST=args.emulator)
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, env=env) for _ in range(args.agents)]
        peak = 0
        while any(p.poll() is None for p in procs):
            total = sum(rss_kb(p.pid) for p in procs)
            if side == "memoryd":
                total += rss_kb(args.memoryd_pid)
            peak = max(peak, total)
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        failed = [p.returncode for p in procs if p.returncode != 0]
        if failed:
            raise SystemExit(f"{side}: {len(failed)} agent(s) failed: {failed}")
        results[side] = (wall, peak / 1024)
    m, o = results["memoryd"], results["official"]
    print(f"\n{args.agents} agent processes at once [{args.label}], each: {args.items} adds, {args.gets} gets, "
          "one search, one history (process start and imports included)")
    print(f"  {'':<10}{'wall s':>10}{'peak RSS MiB (all processes)':>32}")
    print(f"  {'memoryd':<10}{m[0]:>10.2f}{m[1]:>32.1f}   (agents + memoryd)")
    print(f"  {'official':<10}{o[0]:>10.2f}{o[1]:>32.1f}   (agents)")
    print(f"  official/memoryd: time {o[0] / m[0]:.2f}x, RSS {o[1] / m[1]:.2f}x")
    if args.json_out:
        with open(args.json_out, "a") as f:
            for side, (wall, rss) in results.items():
                f.write(json.dumps({"kind": "firestore_agents", "label": args.label, "side": side,
                                    "agents": args.agents, "wall_s": wall, "peak_rss_mib": rss}) + "\n")


def run_agent(args: argparse.Namespace) -> None:
    rng = random.Random(os.getpid())
    if args.side_kind == "official":
        side = Official(args.project, "agents_memory_items")
    else:
        side = Memoryd("memoryd", args.socket)
    workload(side, rng, args.items, args.gets, lambda op, dt: None)
    side.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ["rounds", "agents", "agent"]:
        s = sub.add_parser(name)
        s.add_argument("--emulator", required=True)
        s.add_argument("--project", required=True)
        s.add_argument("--items", type=int, default=100)
        s.add_argument("--gets", type=int, default=20)
        s.add_argument("--label", default="direct")
        s.add_argument("--json-out")
        if name == "rounds":
            s.add_argument("--side", action="append", default=[], help="NAME=SOCKET of a memoryd")
            s.add_argument("--official", action="store_true")
            s.add_argument("--rounds", type=int, default=5)
        if name in ("agents", "agent"):
            s.add_argument("--socket", required=True)
        if name == "agents":
            s.add_argument("--memoryd-pid", type=int, required=True)
            s.add_argument("--agents", type=int, default=8)
        if name == "agent":
            s.add_argument("--side-kind", choices=["memoryd", "official"], required=True)
    args = p.parse_args()
    {"rounds": run_rounds, "agents": run_agents, "agent": run_agent}[args.cmd](args)


if __name__ == "__main__":
    main()
