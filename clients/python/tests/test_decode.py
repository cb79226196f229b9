"""The hand-written item decoders (``_decode``) give exactly what the generated classes give, for random
items and for layouts the shortcut hands to the generated parser."""

from __future__ import annotations

import math
import random
import struct

import pytest
from google.protobuf.message import DecodeError

from orchestra_memory import _decode, models
from orchestra_memory._proto.orchestra.memory.v1 import memory_pb2, service_pb2

WORDS = ["", "a", "tea", "thé", "日本語", "emoji 🙂", "x" * 300, "line\nbreak", "quote\"s"]


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["null", "num", "int", "str", "bool"] + (["struct", "list"] if depth < 3 else [])
    k = rng.choice(kinds)
    if k == "null":
        return None
    if k == "num":
        return rng.choice([0.5, -1e300, 1e-300, 2.0**60, 2.0**53 + 2, -0.0, rng.uniform(-1e6, 1e6)])
    if k == "int":
        return rng.randint(-2**53, 2**53)
    if k == "str":
        return rng.choice(WORDS)
    if k == "bool":
        return rng.random() < 0.5
    if k == "struct":
        return {rng.choice(WORDS) + str(i): random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def random_item(rng: random.Random) -> memory_pb2.MemoryItem:
    item = memory_pb2.MemoryItem(
        id=rng.choice(["", "mem_" + str(rng.random())]), user_id=rng.choice(WORDS),
        session_id=rng.choice(WORDS), item_type=rng.choice(WORDS), persona_active=rng.choice(WORDS),
        text_content=rng.choice(WORDS))
    if rng.random() < 0.7:
        item.timestamp.seconds = rng.randint(-62135596800, 253402300799)
        item.timestamp.nanos = rng.randint(0, 999_999_999)
    if rng.random() < 0.3:
        item.expiration.seconds = rng.randint(-10**9, 10**10)
    if rng.random() < 0.5:
        item.embedding.extend(struct.unpack(f"<{16}f", rng.randbytes(64)))  # any float32, NaN included
    if rng.random() < 0.7:
        models.struct_to_proto({"content_hash": "ab" * 32, **{f"k{i}": random_value(rng) for i in range(3)}},
                               item.metadata)
    return item


def same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN (embeddings may hold any float32)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, models.MemoryItem):
        return type(b) is models.MemoryItem and same(a.to_dict(), b.to_dict())
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("seed", range(300))
def test_random_items_decode_like_the_generated_classes(seed: int) -> None:
    rng = random.Random(seed)
    items = [random_item(rng) for _ in range(rng.randint(0, 4))]
    if items:
        one = service_pb2.GetMemoryItemResponse(item=items[0]).SerializeToString()
        assert same(_decode.get_item_response(one), models.item_from_proto(items[0]))
    history = service_pb2.GetConversationHistoryResponse(items=items, next_page_token=rng.choice(WORDS))
    page = _decode.history_response(history.SerializeToString())
    assert same(list(page), [models.item_from_proto(x) for x in items])
    assert page.next_page_token == history.next_page_token
    scored = service_pb2.SemanticSearchResponse(
        results=[service_pb2.ScoredMemoryItem(item=x, score=rng.uniform(-2, 2)) for x in items])
    got = _decode.search_response(scored.SerializeToString())
    assert same(got, [(models.item_from_proto(x.item), x.score) for x in scored.results])


def reference(payload: bytes):
    return models.item_from_proto(service_pb2.GetMemoryItemResponse.FromString(payload).item)


def wrap(item_bytes: bytes) -> bytes:
    return b"\x0a" + _varint(len(item_bytes)) + item_bytes


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_layouts_left_to_the_generated_parser() -> None:
    base = memory_pb2.MemoryItem(id="mem_1", user_id="u", text_content="t", embedding=[1.5, -2.0])
    base.timestamp.seconds = 1_700_000_000
    base.metadata.fields["k"].string_value = "v"
    raw = base.SerializeToString()
    cases = {
        "unknown fields": raw + b"\x60\x01" + b"\x6a\x02hi",  # field 12 varint, field 13 bytes
        "unpacked embedding": raw + b"\x45" + struct.pack("<f", 3.0),
        "embedding in two chunks": raw + b"\x42\x04" + struct.pack("<f", 3.0),
        "timestamp twice (merged)": raw + b"\x22\x02\x10\x05",
        "metadata twice (merged)": raw + b"\x4a\x0d\x0a\x0b\x0a\x02k2\x12\x05\x1a\x03v_2",
        "scalar repeated (last wins)": raw + b"\x0a\x05mem_2",
        "fields out of order": b"\x3a\x01t" + b"\x12\x01u" + b"\x0a\x05mem_1",
    }
    for name, item_bytes in cases.items():
        payload = wrap(item_bytes)
        assert same(_decode.get_item_response(payload), reference(payload)), name


def test_invalid_bytes_raise_decode_error_as_the_generated_parser_does() -> None:
    bad_utf8 = wrap(b"\x12\x02\xc3\x28")
    truncated = wrap(memory_pb2.MemoryItem(id="mem_1", text_content="hello").SerializeToString())[:-2]
    for payload in (bad_utf8, truncated):
        with pytest.raises(DecodeError):
            _decode.get_item_response(payload)
