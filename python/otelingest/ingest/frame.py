"""The ring record: one accepted request's Native blocks, as one indivisible record.

A request is acknowledged only once its record is in a ring, and a record is pushed whole or not
at all, so a request is never half stored. Layout (little endian)::

    b"OR" u8 version u8 block_count
    per block:  u8 len(table)  table (ASCII)  u32 rows  u32 len(block)  block (ClickHouse Native)
"""

from __future__ import annotations

import struct
from typing import Iterable, NamedTuple

VERSION = 1
_HEAD = struct.Struct("<2sBB")
_BLOCK = struct.Struct("<II")
MAX_BLOCKS = 255


class Block(NamedTuple):
    table: str
    rows: int
    data: bytes | memoryview


class RecordError(ValueError):
    """A ring record that does not parse: a bug or a corrupted ring, never client input."""


def encode_parts(blocks: Iterable[tuple[str, int, bytes]]) -> tuple[list[bytes], int]:
    """The record as parts to push without joining them (``RingProducer.try_push_parts`` copies
    each straight into the ring, so a block is copied once), and its length in bytes."""
    blocks = list(blocks)
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks in one record (at most {MAX_BLOCKS})")
    parts = [_HEAD.pack(b"OR", VERSION, len(blocks))]
    for table, rows, data in blocks:
        name = table.encode("ascii")
        parts.append(bytes((len(name),)) + name + _BLOCK.pack(rows, len(data)))
        parts.append(data)
    return parts, sum(map(len, parts))


def encode(blocks: Iterable[tuple[str, int, bytes]]) -> bytes:
    return b"".join(encode_parts(blocks)[0])


def decode(record: bytes | memoryview) -> list[Block]:
    view = memoryview(record)
    if len(view) < _HEAD.size:
        raise RecordError("record shorter than its header")
    magic, version, count = _HEAD.unpack_from(view, 0)
    if magic != b"OR" or version != VERSION:
        raise RecordError(f"bad record header {bytes(view[:4])!r}")
    pos = _HEAD.size
    out: list[Block] = []
    try:
        for _ in range(count):
            n = view[pos]
            table = bytes(view[pos + 1:pos + 1 + n]).decode("ascii")
            pos += 1 + n
            rows, size = _BLOCK.unpack_from(view, pos)
            pos += _BLOCK.size
            if pos + size > len(view):
                raise RecordError("block runs past the end of the record")
            out.append(Block(table, rows, view[pos:pos + size]))
            pos += size
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise RecordError(f"truncated record: {e}") from None
    if pos != len(view):
        raise RecordError("trailing bytes after the last block")
    return out
