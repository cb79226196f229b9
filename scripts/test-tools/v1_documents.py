"""Writes and reads documents the way the original in-process memory manager did, with Google's official
client (google-cloud-firestore), against the Firestore emulator ($FIRESTORE_EMULATOR_HOST).

The old manager stored `embedding` as a Python list (a plain Firestore array, not a vector value), took its
timestamps from naive `datetime.utcnow()`, left optional fields missing or None, defaulted `item_type` to
"message", and did not always set `metadata.content_hash`. The memoryd tests write such documents here and
read them back through memoryd; `dump` prints every document of a collection with its value types, so that
a test can compare collections before and after `memoryd migrate`.

    python v1_documents.py write --project P --collection memory_items --agent-collection agent_data \
        --count N --dim D [--prefix mem_v1_] [--seed S] [--malformed]
    python v1_documents.py dump --project P --collection memory_items
"""

import argparse
import hashlib
import json
import random
import sys
from datetime import datetime, timedelta

from google.cloud import firestore
from google.cloud.firestore_v1.vector import Vector


def item_document(i, rng, dim, prefix, base):
    """The i-th old-shape memory item: every variation the old manager could leave behind."""
    text = f"old memory {i}: {rng.random():.6f}"
    if i % 7 == 3:
        # Integer values are numbers too (a list of ints from a quantized model, say).
        embedding = [rng.randint(-5, 5) for _ in range(dim)]
        embedding[0] = embedding[0] or 1
    else:
        embedding = [rng.uniform(-1, 1) for _ in range(dim)]
    doc = {
        "id": f"{prefix}{i:06d}",
        "user_id": f"user{i % 3}",
        # Naive utcnow()-style timestamps, one second apart (the client stores them as UTC).
        "timestamp": base + timedelta(seconds=i),
        "item_type": "message",
        "text_content": text,
        "embedding": embedding,
    }
    if i % 2 == 0:
        doc["session_id"] = f"s{i % 4}"
    elif i % 4 == 1:
        doc["session_id"] = None
    if i % 3 == 0:
        doc["persona_active"] = "helper"
    elif i % 3 == 1:
        doc["persona_active"] = None
    if i % 5 == 0:
        doc["metadata"] = {"content_hash": hashlib.sha256(text.encode()).hexdigest(), "source": "v1"}
    elif i % 5 == 1:
        doc["metadata"] = None
    elif i % 5 == 2:
        doc["metadata"] = {"source": "v1", "n": i}
    # else: no metadata at all
    if i % 6 == 0:
        doc["expiration"] = None
    elif i % 11 == 0:
        doc["expiration"] = datetime.utcnow() + timedelta(days=365)
    return doc


def agent_document(i, prefix, base):
    doc = {
        "id": f"{prefix}agent_{i:06d}",
        "agent_id": f"agent{i % 2}",
        "timestamp": base + timedelta(seconds=i),
        "data_type": "observation",
        "content": {"step": i, "note": f"saw {i}"},
    }
    if i % 2 == 0:
        doc["metadata"] = {"k": "v"}
        doc["expiration"] = None
    return doc


def write(args):
    client = firestore.Client(project=args.project)
    rng = random.Random(args.seed)
    base = datetime.utcnow() - timedelta(days=30)
    items = client.collection(args.collection)
    batch = client.batch()
    pending = 0
    for i in range(args.count):
        doc = item_document(i, rng, args.dim, args.prefix, base)
        batch.set(items.document(doc["id"]), doc)
        pending += 1
        if pending == 400:
            batch.commit()
            batch = client.batch()
            pending = 0
    if args.agent_collection:
        agents = client.collection(args.agent_collection)
        for i in range(args.agents):
            doc = agent_document(i, args.prefix, base)
            batch.set(agents.document(doc["id"]), doc)
            pending += 1
    if args.malformed:
        batch.set(
            items.document(f"{args.prefix}bad_embedding"),
            {"id": f"{args.prefix}bad_embedding", "user_id": "user0", "timestamp": base,
             "item_type": "message", "text_content": "x", "embedding": ["not", "numbers"]})
        batch.set(
            items.document(f"{args.prefix}bad_user"),
            {"id": f"{args.prefix}bad_user", "user_id": 42, "timestamp": base,
             "item_type": "message", "text_content": "y", "embedding": [0.5] * args.dim})
        pending += 2
    if pending:
        batch.commit()


def plain(value):
    """A value as JSON that keeps Firestore's types apart (vector vs list, int vs float, timestamps)."""
    if isinstance(value, Vector):
        return {"__vector__": [plain(x) for x in list(value)]}
    if isinstance(value, datetime):
        return {"__timestamp__": value.isoformat()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(x) for x in value]
    if isinstance(value, float):
        return {"__double__": repr(value)}
    return value


def dump(args):
    client = firestore.Client(project=args.project)
    out = {}
    for snapshot in client.collection(args.collection).stream():
        out[snapshot.id] = plain(snapshot.to_dict())
    json.dump(out, sys.stdout, sort_keys=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--project", required=True)
    w.add_argument("--collection", required=True)
    w.add_argument("--agent-collection")
    w.add_argument("--count", type=int, default=10)
    w.add_argument("--agents", type=int, default=4)
    w.add_argument("--dim", type=int, default=8)
    w.add_argument("--prefix", default="mem_v1_")
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--malformed", action="store_true")
    d = sub.add_parser("dump")
    d.add_argument("--project", required=True)
    d.add_argument("--collection", required=True)
    args = parser.parse_args()
    write(args) if args.command == "write" else dump(args)


if __name__ == "__main__":
    main()
