//! Bounded single-producer, single-consumer byte rings in shared memory.
//!
//! # Contract
//!
//! A ring is a file (under `/dev/shm` or the data dir) mapped `MAP_SHARED` by the processes that
//! use it. The **supervisor** creates it ([`RingFile::open_or_create`]) and keeps it for the
//! daemon's life; receiver `i` attaches the [`Producer`] of each ring `r<i>-w<j>`, writer `j`
//! attaches the [`Consumer`]. The ring and everything in it outlives any receiver or writer.
//!
//! * **One producer, one consumer**, each role held with an open-file-description lock on the
//!   ring file (byte 0: producer, byte 1: consumer) that the kernel drops when its process dies.
//!   A second attach of a role fails with [`RingError::Busy`]. The roles are types: a
//!   [`Producer`] cannot read, a [`Consumer`] cannot push.
//! * **Producer**: [`Producer::push`] / [`Producer::push_parts`] copy one whole record (opaque
//!   bytes, at most [`RingFile::max_record`]) straight into its slot, or [`Producer::reserve`]
//!   hands out the [`Slot`] to fill. A push never blocks: `Ok(true)` once the record is
//!   published, `Ok(false)` when the ring has no room (the receiver answers 429/503), and
//!   [`RingError::TooLarge`] when the record could never fit. Only `Ok(true)` may be acknowledged.
//! * **Consumer**: two-phase. [`Consumer::read`] returns the next record and the offset just past
//!   it, without freeing space; [`Consumer::release`] frees everything up to an offset once the
//!   writer has stored (or spilled) those records; [`Consumer::rewind`] restarts reading at the
//!   release cursor.
//!
//! # Crash safety
//!
//! * **Consumer killed** at any point: the next consumer attaches and reads from the release
//!   cursor, so every record not yet released is delivered again (at-least-once; the writer's
//!   ledger and insert tokens make it exactly-once in ClickHouse). `release` is one store.
//! * **Producer killed** at any point: a record becomes visible only when the producer stores the
//!   `write` cursor past it, after the whole record (header word and payload) is in place. A
//!   producer killed mid-copy leaves bytes beyond `write` that no consumer reads and that the
//!   next producer overwrites; its request was never acknowledged. This ordering is the only
//!   mechanism needed: with one producer there is no reservation to race for, no per-record
//!   state, nothing to time out or skip.
//! * **Stalled producer** (SIGSTOP, a hung process): it keeps its role lock, so no replacement can
//!   write beside it; the supervisor SIGKILLs it (heartbeat timeout) and the lock goes with it.
//! * **Durability**: the ring survives any process crash (the kernel keeps the file's pages).
//!   Nothing is `msync`ed: a ring in the data dir also survives a daemon restart, not a power loss.
//!   [`RingFile::open_or_create`] keeps an existing ring's unreleased records at start-up. A ring
//!   of another layout version is refused as corrupt (the daemon stops gracefully only once
//!   writers have emptied the rings, so an upgrade normally finds them empty).
//!
//! # Layout
//!
//! ```text
//! file offset 0     Header (#[repr(C)], 192 bytes used, one cache line per cursor)
//!                     line 0: magic "OTIRING\0" u64, version u32, data_offset u32, capacity u64
//!                     line 1: write    u64  producer: end of the last published record
//!                     line 2: release  u64  consumer: records below are stored elsewhere
//! file offset 4096  data area, `capacity` bytes
//! ```
//!
//! Cursors are absolute byte positions that only grow (2^64 bytes never wrap); position `p` lives
//! at data offset `p % capacity`. Each is written by one role only. A record is an 8-byte header
//! word, `payload_len (bits 0..32) | kind (bits 32..64)`, then the payload padded to a multiple
//! of 8. A record never crosses the end of the data area: when it would, the producer fills the
//! tail of the lap with a `PAD` record and starts the record at the next lap.
//!
//! # Invariants (all positions multiples of 8)
//!
//! 1. `release <= read <= write <= release + capacity` (`read` is the consumer's own).
//! 2. `[release, write)` is tiled by published records, none crossing a lap end.
//! 3. The producer writes only in `[write, release + capacity)`; the consumer writes no data.
//!
//! # Threat model
//!
//! The other processes are trusted not to be malicious but may be buggy or die at any point: a
//! header word or cursor that breaks an invariant is reported as [`RingError::Corrupt`], never a
//! panic or an out-of-bounds access. Truncating the file under a live mapping (SIGBUS) is out of
//! scope.

mod consumer;
mod header;
mod producer;
pub mod testing;
#[cfg(test)]
mod tests;

pub use consumer::{Consumer, Payload};
pub use header::{
    check_capacity, RingFile, DATA_OFFSET, LAYOUT_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY,
};
pub use producer::{Producer, Slot};

use std::io;

#[derive(Debug)]
pub enum RingError {
    Io(io::Error),
    /// The file or a header/cursor written by another process breaks an invariant.
    Corrupt(String),
    /// The record can never fit (distinct from "full", which is `Ok(false)`).
    TooLarge {
        len: usize,
        max: usize,
    },
    /// A caller passed a value that is not allowed (bad capacity, release beyond read, ...).
    Invalid(String),
    /// Another live process (or handle) holds this role: "producer" or "consumer".
    Busy(&'static str),
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::Io(e) => write!(f, "ring I/O error: {e}"),
            RingError::Corrupt(m) => write!(f, "ring is corrupt: {m}"),
            RingError::TooLarge { len, max } => write!(
                f,
                "record of {len} bytes exceeds the ring's maximum of {max} bytes"
            ),
            RingError::Invalid(m) => f.write_str(m),
            RingError::Busy(role) => write!(f, "ring already has a live {role}"),
        }
    }
}

impl std::error::Error for RingError {}

impl From<io::Error> for RingError {
    fn from(e: io::Error) -> Self {
        RingError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, RingError>;
