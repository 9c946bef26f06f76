"""The on-disk spill queue: batches ClickHouse could not take yet, kept until they are stored.

Design spec (the invariants the code and the tests hold to)
===========================================================

What it is for
    A writer releases records from its shared-memory ring only once their batch is stored in
    ClickHouse *or* appended here. When ClickHouse is down or slower than the input, batches go
    here instead of being dropped; a replayer inserts them, oldest first, once ClickHouse answers.
    One queue per writer process (``<data_dir>/spill/writer-<i>/``); a host's queues are its own
    (a fleet keeps one spill directory per host).

On-disk layout
    ``seg-<20-digit id>.spill``  append-only segment files of records, rotated at
                                  ``segment_max_bytes``; ids only grow.
    ``ledger.json``               ``{"segment": id, "offset": n}``: the first byte not yet stored.
                                  Replaced atomically (write to a temporary file, fsync, rename).
    ``quarantine/``               the bytes of corrupt or torn regions, kept for inspection.

Record (little-endian), see :mod:`.record`
    32-byte header: magic ``OISP``, version, flags, table length, token length, reserved,
    CRC-32 (over the header after the CRC field and the whole body), item count, payload length;
    then the table name, the deduplication token and the payload (concatenated Native blocks).

Invariants
    1. A record is acknowledged to the caller (``append`` returns) only after it is fully written
       (and fsynced under ``fsync = "always"``); a crash during ``append`` leaves at worst a torn
       tail, which the CRC detects.
    2. After a restart, appends go to a new segment: nothing is ever written after a torn tail.
    3. The ledger only moves forward, and only past records whose INSERT succeeded. A crash
       between the INSERT and the ledger update replays that record with the same
       ``insert_deduplication_token``, which ClickHouse deduplicates: stored exactly once.
    4. A corrupt region (bad magic, bad CRC, impossible lengths, truncation) is copied to
       ``quarantine/``, logged and counted; reading resumes at the next valid record of the same
       segment (resynchronising on the magic and a valid CRC), so one bad record never blocks or
       loses the rest.
    5. The bytes of all segments never exceed the disk budget: ``append`` raises
       :class:`SpillFull` instead, and the writer stops taking from its rings, so receivers
       refuse new data with retryable codes. Nothing is dropped silently.

fsync policy
    ``always``: fsync every append and every ledger update (survives power loss).
    ``batch`` (default): fsync at most once per second and on rotation and close; a process
    crash loses nothing (the page cache survives it), a power loss may lose the last second.
    ``never``: leave it to the operating system.
"""

from .queue import SpilledBatch, SpillFull, SpillQueue, SpillStats

__all__ = ["SpillQueue", "SpilledBatch", "SpillFull", "SpillStats"]
