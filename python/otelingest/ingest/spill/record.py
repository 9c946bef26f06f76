"""Spill record encoding, decoding and resynchronisation (layout in the package doc)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

MAGIC = b"OISP"
VERSION = 1
HEADER = struct.Struct("<4sBBHHHIQQ")  # magic, version, flags, table_len, token_len, reserved, crc, items, payload_len
HEADER_SIZE = HEADER.size  # 32
CRC_OFFSET = 12
MAX_NAME = 255
# A record larger than this is corruption, not data (a batch is a few MB).
MAX_PAYLOAD = 1 << 31

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Record:
    table: str
    token: str
    items: int
    payload: bytes
    size: int  # bytes on disk, header included


class CorruptRecord(Exception):
    """The bytes at a position are not a valid record (reason in the message)."""


def encode_header(table: str, token: str, items: int, payload: Sequence[Buffer]) -> tuple[bytes, int]:
    """The header + table + token prefix for a record whose body ends with ``payload`` parts."""
    t, k = table.encode(), token.encode()
    if len(t) > MAX_NAME or len(k) > MAX_NAME:
        raise ValueError("spill record table name or token too long")
    payload_len = sum(len(p) for p in payload)
    tail = struct.pack("<QQ", items, payload_len)
    crc = zlib.crc32(struct.pack("<BBHHH", VERSION, 0, len(t), len(k), 0))
    crc = zlib.crc32(tail, crc)
    crc = zlib.crc32(t, crc)
    crc = zlib.crc32(k, crc)
    for p in payload:
        crc = zlib.crc32(p, crc)
    header = HEADER.pack(MAGIC, VERSION, 0, len(t), len(k), 0, crc, items, payload_len)
    return header + t + k, HEADER_SIZE + len(t) + len(k) + payload_len


def decode(buf: memoryview, pos: int) -> Record:
    """The record at ``pos`` in ``buf``.

    Raises:
        CorruptRecord: bad magic, version or CRC, impossible lengths, or truncation.
    """
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptRecord("truncated header")
    magic, version, _flags, tlen, klen, _res, crc, items, plen = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise CorruptRecord("bad magic")
    if version != VERSION:
        raise CorruptRecord(f"unknown record version {version}")
    if plen > MAX_PAYLOAD:
        raise CorruptRecord("impossible payload length")
    body = pos + HEADER_SIZE
    end = body + tlen + klen + plen
    if end > len(buf):
        raise CorruptRecord("truncated record")
    got = zlib.crc32(buf[pos + 4:pos + CRC_OFFSET])
    got = zlib.crc32(buf[pos + CRC_OFFSET + 4:body], got)
    got = zlib.crc32(buf[body:end], got)
    if got != crc:
        raise CorruptRecord("checksum mismatch")
    try:
        table = bytes(buf[body:body + tlen]).decode()
        token = bytes(buf[body + tlen:body + tlen + klen]).decode()
    except UnicodeDecodeError:
        raise CorruptRecord("invalid table or token") from None
    return Record(table, token, items, bytes(buf[body + tlen + klen:end]), end - pos)


def resync(buf: memoryview, pos: int) -> int | None:
    """The position of the next valid record after a corrupt one at ``pos``, or None."""
    raw = buf.obj if isinstance(buf.obj, bytes) else bytes(buf)
    start = pos + 1
    while True:
        i = raw.find(MAGIC, start)
        if i < 0:
            return None
        try:
            decode(buf, i)
            return i
        except CorruptRecord:
            start = i + 1
