"""Hand-written decoders for the responses that carry memory items (get, history, search).

Reading a MemoryItem through the generated classes costs a Python object for every field access, and a
768-d embedding read with ``list(m.embedding)`` costs far more than the rest of the call: these decoders
read the wire format directly (``array('f')`` for the packed embedding) and build the dataclass once. They
accept what protobuf accepts — any field order, unknown fields skipped, last value wins for scalars — and
hand anything else (a message field repeated, an unpacked embedding, bad UTF-8, a truncated buffer) to the
generated parser, so the result never differs from ``models.item_from_proto`` (``tests/test_decode.py``
checks that on random items).
"""

from __future__ import annotations

import struct
import sys
from array import array
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

from google.protobuf.message import DecodeError

from . import models as m
from ._proto.orchestra.memory.v1 import service_pb2
from ._wire import _read_varint as _varint  # a varint over 10 bytes raises DecodeError: left to the parser
from .models import MemoryItem, Page

_DOUBLE = struct.Struct("<d")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BIG_ENDIAN = sys.byteorder == "big"


class _Unexpected(Exception):
    """A layout the hand decoder leaves to the generated parser."""


def _skip(buf: bytes, pos: int, wire_type: int) -> int:
    """The position after an unknown field's value."""
    if wire_type == 0:
        return _varint(buf, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire_type == 5:
        return pos + 4
    raise _Unexpected(f"wire type {wire_type}")


def _chunk(buf: bytes, pos: int) -> Tuple[int, int]:
    """Start and end of a length-delimited value at ``pos``."""
    n, pos = _varint(buf, pos)
    end = pos + n
    if end > len(buf):
        raise _Unexpected("truncated")
    return pos, end


def _timestamp(buf: bytes, pos: int, end: int) -> datetime:
    """A google.protobuf.Timestamp (two varint fields; anything else goes to the generated parser)."""
    seconds = nanos = 0
    while pos < end:
        tag = buf[pos]
        if tag != 0x08 and tag != 0x10:
            raise _Unexpected(f"timestamp tag {tag}")
        value = 0
        shift = 0
        while True:  # the varint, inline: seconds take five bytes
            pos += 1
            b = buf[pos]
            value |= (b & 0x7F) << shift
            if b < 128:
                break
            shift += 7
        pos += 1
        if value >= 1 << 63:
            value -= 1 << 64
        if tag == 0x08:
            seconds = value
        else:
            nanos = value
    if pos != end:
        raise _Unexpected("truncated timestamp")
    return _EPOCH + timedelta(0, seconds, nanos // 1000)


def _value(buf: bytes, pos: int, end: int) -> Any:
    """A google.protobuf.Value, as models._from_value would give it."""
    result: Any = None
    messages = 0  # struct_value / list_value seen: protobuf would merge a second one
    while pos < end:
        tag = buf[pos]
        if tag == 0x1A:  # string_value
            n = buf[pos + 1]
            if n < 128:
                pos += 2
            else:
                n, pos = _varint(buf, pos + 1)
            result = buf[pos:pos + n].decode()
            pos += n
            continue
        tag, pos = _varint(buf, pos)
        if tag == 0x11:  # number_value
            n = _DOUBLE.unpack_from(buf, pos)[0]
            pos += 8
            result = int(n) if n.is_integer() and abs(n) <= 2**53 else n
        elif tag == 0x20:  # bool_value
            v, pos = _varint(buf, pos)
            result = v != 0
        elif tag == 0x2A or tag == 0x32:  # struct_value, list_value
            bit = 1 << (tag >> 3)
            if messages & bit:
                raise _Unexpected("struct_value or list_value repeated")
            messages |= bit
            s, pos = _chunk(buf, pos)
            result = _struct(buf, s, pos) if tag == 0x2A else _list(buf, s, pos)
        elif tag == 0x08:  # null_value
            pos = _varint(buf, pos)[1]
            result = None
        else:
            pos = _skip(buf, pos, tag & 7)
    if pos != end:
        raise _Unexpected("truncated value")
    return result


def _list(buf: bytes, pos: int, end: int) -> List[Any]:
    out = []
    while pos < end:
        tag, pos = _varint(buf, pos)
        if tag == 0x0A:
            s, pos = _chunk(buf, pos)
            out.append(_value(buf, s, pos))
        else:
            pos = _skip(buf, pos, tag & 7)
    if pos != end:
        raise _Unexpected("truncated list")
    return out


def _struct(buf: bytes, pos: int, end: int) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    while pos < end:
        tag = buf[pos]
        if tag != 0x0A:  # not ``fields`` (a map entry)
            tag, pos = _varint(buf, pos)
            pos = _skip(buf, pos, tag & 7)
            continue
        n = buf[pos + 1]
        if n < 128:
            pos += 2
        else:
            n, pos = _varint(buf, pos + 1)
        s = pos
        pos += n
        if pos > end:
            raise _Unexpected("truncated map entry")
        key = ""
        value: Any = None
        has_value = False
        while s < pos:
            t = buf[s]
            if t == 0x0A or t == 0x12:
                n = buf[s + 1]
                if n < 128:
                    s += 2
                else:
                    n, s = _varint(buf, s + 1)
                if t == 0x0A:
                    key = buf[s:s + n].decode()
                else:
                    if has_value:
                        raise _Unexpected("map value repeated")
                    has_value = True
                    value = _value(buf, s, s + n)
                s += n
            else:
                t, s = _varint(buf, s)
                s = _skip(buf, s, t & 7)
        if s != pos:
            raise _Unexpected("truncated map entry")
        out[key] = value
    if pos != end:
        raise _Unexpected("truncated struct")
    return out


def _floats(buf: bytes, pos: int, end: int) -> List[float]:
    if (end - pos) % 4:
        raise _Unexpected("packed floats of a length not a multiple of 4")
    a = array("f")
    a.frombytes(buf[pos:end])
    if _BIG_ENDIAN:
        a.byteswap()
    return a.tolist()


def _item(buf: bytes, pos: int, end: int) -> MemoryItem:
    """A MemoryItem from its serialized bytes ``buf[pos:end]``."""
    item_id = user_id = item_type = text = ""
    session_id = persona = None
    timestamp = expiration = None
    embedding: List[float] = []
    metadata: Dict[str, Any] = {}
    seen = 0
    while pos < end:
        tag = buf[pos]
        field = tag >> 3
        if tag > 127 or field > 10:  # a field this decoder does not know (numbers above 15: long tags)
            tag, pos = _varint(buf, pos)
            if tag >> 3 <= 10:
                raise _Unexpected("overlong tag")
            pos = _skip(buf, pos, tag & 7)
            continue
        if tag & 7 != 2 or field == 0:
            raise _Unexpected(f"field {field} with wire type {tag & 7}")  # e.g. an unpacked embedding
        n = buf[pos + 1]
        if n < 128:
            pos += 2
        else:
            n, pos = _varint(buf, pos + 1)
        s = pos
        pos += n
        if pos > end:
            raise _Unexpected("truncated item")
        if field == 7:
            text = buf[s:pos].decode()
        elif field == 1:
            item_id = buf[s:pos].decode()
        elif field == 2:
            user_id = buf[s:pos].decode()
        elif field == 3:
            session_id = buf[s:pos].decode() or None
        elif field == 5:
            item_type = buf[s:pos].decode()
        elif field == 6:
            persona = buf[s:pos].decode() or None
        elif field == 8:
            if embedding:
                raise _Unexpected("embedding in several chunks")
            embedding = _floats(buf, s, pos)
        else:  # 4, 9, 10: messages, which protobuf would merge if repeated
            bit = 1 << field
            if seen & bit:
                raise _Unexpected(f"message field {field} repeated")
            seen |= bit
            if field == 4:
                timestamp = _timestamp(buf, s, pos)
            elif field == 9:
                metadata = _struct(buf, s, pos)
            else:
                expiration = _timestamp(buf, s, pos)
    if pos != end:
        raise _Unexpected("truncated item")
    return MemoryItem(item_id, user_id, session_id, timestamp, item_type, persona, text, embedding, metadata,
                      expiration)


def _items(buf: bytes, scored: bool) -> Tuple[List[Any], str]:
    """The repeated items (field 1) of a response, each a MemoryItem or, when ``scored``, a
    ScoredMemoryItem ``(item, score)``; and the string field 2 (a page token) when there is one."""
    out: List[Any] = []
    token = ""
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        if tag == 0x0A:
            s, pos = _chunk(buf, pos)
            if not scored:
                out.append(_item(buf, s, pos))
                continue
            item: Optional[MemoryItem] = None
            score = 0.0
            while s < pos:
                t, s = _varint(buf, s)
                if t == 0x0A:
                    if item is not None:
                        raise _Unexpected("item repeated")
                    a, s = _chunk(buf, s)
                    item = _item(buf, a, s)
                elif t == 0x11:
                    score = _DOUBLE.unpack_from(buf, s)[0]
                    s += 8
                else:
                    s = _skip(buf, s, t & 7)
            out.append((item if item is not None else _item(b"", 0, 0), score))
        elif tag == 0x12 and not scored:
            s, pos = _chunk(buf, pos)
            token = buf[s:pos].decode()
        else:
            pos = _skip(buf, pos, tag & 7)
    if pos != end:
        raise _Unexpected("truncated response")
    return out, token


# --- the decoders the API uses ------------------------------------------------------------------------

def get_item_response(payload: bytes) -> MemoryItem:
    """GetMemoryItemResponse → its item."""
    try:
        end = len(payload)
        if end and payload[0] == 0x0A:  # the usual layout: the item and nothing else
            n = payload[1]
            pos = 2
            if n > 127:
                n, pos = _varint(payload, 1)
            if pos + n == end:
                return _item(payload, pos, end)
        found = None
        pos = 0
        while pos < end:
            tag, pos = _varint(payload, pos)
            if tag == 0x0A:
                if found is not None:
                    raise _Unexpected("item repeated")
                found = _chunk(payload, pos)
                pos = found[1]
            else:
                pos = _skip(payload, pos, tag & 7)
        if pos == end:
            return _item(payload, *found) if found else _item(b"", 0, 0)
    except (_Unexpected, DecodeError, IndexError, UnicodeDecodeError, struct.error):
        pass
    return m.item_from_proto(service_pb2.GetMemoryItemResponse.FromString(payload).item)


def history_response(payload: bytes) -> Page:
    """GetConversationHistoryResponse → a Page of items."""
    try:
        items, token = _items(payload, scored=False)
        return Page(items, token)
    except (_Unexpected, DecodeError, IndexError, UnicodeDecodeError, struct.error):
        r = service_pb2.GetConversationHistoryResponse.FromString(payload)
        return Page([m.item_from_proto(x) for x in r.items], r.next_page_token)


def search_response(payload: bytes) -> List[Tuple[MemoryItem, float]]:
    """SemanticSearchResponse → ``[(item, score)]``."""
    try:
        return _items(payload, scored=True)[0]
    except (_Unexpected, DecodeError, IndexError, UnicodeDecodeError, struct.error):
        r = service_pb2.SemanticSearchResponse.FromString(payload)
        return [(m.item_from_proto(x.item), x.score) for x in r.results]
