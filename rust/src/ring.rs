//! Bounded multi-producer, single-consumer byte rings in shared memory.
//!
//! # Contract
//!
//! A ring is a file (under `/dev/shm` or the data dir) mapped `MAP_SHARED` by every process that
//! uses it. The **supervisor** creates it ([`Ring::create`]) and owns it for the daemon's life;
//! receivers and writers [`Ring::attach`] to it, so the ring and everything in it outlives any
//! receiver or writer.
//!
//! * **Producers**: any number of threads in any number of processes call [`Ring::push`] /
//!   [`Ring::push_parts`]. A push copies one whole record (opaque bytes, at most
//!   [`Ring::max_record`] bytes) and never blocks: it returns `Ok(true)` once the record is
//!   committed, `Ok(false)` when the ring has no room (the receiver then answers 429/503), and
//!   [`RingError::TooLarge`] when the record could never fit. A push that returns `Ok(true)` is in
//!   the ring and will be delivered: only then may the receiver acknowledge its request.
//! * **Consumer**: exactly one per ring (enforced with `flock`), the writer process. Consumption is
//!   two-phase: [`Consumer::read`] returns the next committed record in reservation order and the
//!   offset just past it, without freeing space; [`Consumer::release`] frees everything up to an
//!   offset once the writer has stored (or spilled) those records; [`Consumer::rewind`] restarts
//!   reading at the release cursor.
//! * **Crash semantics**: the cursors live in the shared file. A consumer killed at any point is
//!   replaced by a new process that attaches and reads from the release cursor: every record not
//!   yet released is delivered again (at-least-once; nothing acknowledged is lost). A producer
//!   killed between reserving and committing leaves an uncommitted record; the consumer marks it
//!   abandoned and skips it (its request was never acknowledged), counting it in
//!   [`Ring::abandoned`]:
//!   - header written (state `WRITING`, with the producer's pid): skipped as soon as the pid is
//!     dead (`kill(pid, 0)` fails with `ESRCH`, or the process is a zombie), or after
//!     `stuck_timeout` even if a process with that pid lives (pid reuse);
//!   - killed in the few instructions between reserving and writing the header (the header word
//!     is still zero): skipped after `gap_timeout` by tomb-stoning the zero words (see below).
//!
//!   Abandoning and committing race by compare-and-swap on the header word, so a producer that was
//!   merely slow finds its record abandoned and returns `Ok(false)` instead of a false `true`.
//! * **Durability**: the ring survives any process crash (the kernel keeps the file's pages).
//!   Nothing is `msync`ed: a ring in the data dir also survives a daemon restart, not a power loss.
//!   [`Ring::open_or_create`] keeps an existing ring's unreleased records at start-up.
//!
//! # Layout
//!
//! ```text
//! file offset 0     Header (#[repr(C)], 384 bytes used, one cache line per cursor)
//!                     line 0: magic "OTIRING\0" u64, version u32, data_offset u32, capacity u64
//!                     line 1: reserve  u64  producers CAS it to reserve space
//!                     line 2: free     u64  consumer: space below free+capacity is zeroed, usable
//!                     line 3: release  u64  consumer: records below are durable; resume point
//!                     line 4: read     u64  consumer's read position (advisory, for metrics)
//!                     line 5: abandoned u64 count of skipped uncommitted records
//! file offset 4096  data area, `capacity` bytes
//! ```
//!
//! Cursors are absolute byte positions that only grow (2^64 bytes never wrap); a position `p`
//! lives at data offset `p % capacity`. A record is an 8-byte header word followed by the payload,
//! padded to a multiple of 8. The header word (little-endian u64) is
//! `payload_len (bits 0..32) | state (bits 32..34) | pid (bits 34..64)`, with state
//! `1 = WRITING`, `2 = COMMITTED`, `3 = SKIP`. A zero word means "nothing written here yet".
//!
//! **Wrap-around** uses a padding record: a record never crosses the end of the data area. When it
//! would, the producer reserves the tail of the lap too and writes a `SKIP` record there.
//! A lone `SKIP` word with `payload_len = 0` is an 8-byte tombstone.
//!
//! # Invariants (cursor values read at one instant; all positions multiples of 8)
//!
//! 1. `free <= release <= read <= reserve <= free + capacity` (consumer's local read).
//! 2. `[release, reserve)` is tiled by records, in reservation order; no record crosses a lap end.
//! 3. Every byte in `[reserve, free + capacity)` is zero: the consumer zeroes space before moving
//!    `free` past it, so a producer's header word starts at zero, and a stale header from an earlier
//!    lap can never be mistaken for a new record.
//! 4. A header word changes only by CAS: `0 -> WRITING` (producer), `WRITING -> COMMITTED`
//!    (producer), `WRITING -> SKIP` (consumer abandons), `0 -> SKIP` (producer's padding, or the
//!    consumer's tombstones); the payload is written only after the producer's `0 -> WRITING`
//!    succeeded. Hence, scanning from a record boundary whose header is zero, the first non-zero
//!    word is the next record's header, and tomb-stoning every zero word before it makes every
//!    producer of that range fail its header CAS (it writes nothing and returns `false`).
//!
//! # Threat model
//!
//! The other processes are trusted not to be malicious but may be buggy or die at any point: a
//! header or cursor that breaks an invariant is reported as [`RingError::Corrupt`], never a panic
//! or an out-of-bounds access. Truncating the file under a live mapping (SIGBUS) is out of scope.
//! One known hazard: a producer that is alive but stalled mid-copy (e.g. SIGSTOP) for longer than
//! `stuck_timeout` has its record abandoned; its push returns `false`, but its stalled copy may
//! later scribble over reused space. Keep `stuck_timeout` far above any plausible copy time.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;

/// "OTIRING\0" read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"OTIRING\0");
/// Bumped on any incompatible change of the header or record format.
pub const LAYOUT_VERSION: u32 = 1;
/// The data area starts one page into the file.
pub const DATA_OFFSET: usize = 4096;
/// Size of a record header word.
pub const RECORD_HEADER: usize = 8;
/// Smallest and largest data area accepted.
pub const MIN_CAPACITY: u64 = 4096;
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Default time a zero header (producer died right after reserving) may block the consumer.
pub const DEFAULT_GAP_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time a `WRITING` record of a *live* pid may block the consumer.
pub const DEFAULT_STUCK_TIMEOUT: Duration = Duration::from_secs(60);
/// A `WRITING` record younger than this is simply in flight: no liveness check yet.
const LIVENESS_GRACE: Duration = Duration::from_millis(20);
/// Minimum spacing of liveness checks (a syscall and a /proc read) on the same stuck record.
const LIVENESS_EVERY: Duration = Duration::from_millis(10);

const STATE_SHIFT: u32 = 32;
const PID_SHIFT: u32 = 34;
const STATE_WRITING: u64 = 1;
const STATE_COMMITTED: u64 = 2;
const STATE_SKIP: u64 = 3;
const PID_LIMIT: u32 = 1 << 30;
/// An 8-byte skip record: SKIP with empty payload and no pid.
const TOMBSTONE: u64 = STATE_SKIP << STATE_SHIFT;

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
    /// Another live process holds the consumer role.
    ConsumerBusy,
}

impl std::fmt::Display for RingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingError::Io(e) => write!(f, "ring I/O error: {e}"),
            RingError::Corrupt(m) => write!(f, "ring is corrupt: {m}"),
            RingError::TooLarge { len, max } => {
                write!(
                    f,
                    "record of {len} bytes exceeds the ring's maximum of {max} bytes"
                )
            }
            RingError::Invalid(m) => f.write_str(m),
            RingError::ConsumerBusy => f.write_str("ring already has a live consumer"),
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

/// One cursor on its own cache line, so producers hammering `reserve` do not slow the consumer's
/// `release`/`read` stores (false sharing).
#[repr(C, align(64))]
struct Line(AtomicU64);

#[repr(C, align(64))]
struct Meta {
    magic: u64,
    version: u32,
    data_offset: u32,
    capacity: u64,
}

/// The shared, atomically accessed part of the header (the cursors and counters).
#[repr(C)]
struct Cursors {
    reserve: Line,
    free: Line,
    release: Line,
    read: Line,
    abandoned: Line,
}

#[repr(C)]
struct Header {
    meta: Meta,
    cursors: Cursors,
}

const _: () = assert!(std::mem::size_of::<Header>() == 6 * 64);
const _: () = assert!(std::mem::size_of::<Header>() <= DATA_OFFSET);

/// Decoded record header word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rec {
    len: u32,
    state: u64,
    pid: u32,
}

impl Rec {
    fn pack(self) -> u64 {
        u64::from(self.len) | (self.state << STATE_SHIFT) | (u64::from(self.pid) << PID_SHIFT)
    }
    fn unpack(w: u64) -> Rec {
        Rec {
            len: w as u32,
            state: (w >> STATE_SHIFT) & 3,
            pid: (w >> PID_SHIFT) as u32,
        }
    }
    /// Bytes the record occupies: header + payload rounded up to 8.
    fn total(self) -> u64 {
        record_total(self.len as usize)
    }
}

fn record_total(payload: usize) -> u64 {
    (RECORD_HEADER + payload.next_multiple_of(8)) as u64
}

/// A mapped ring: the shared state plus the producer operations (any thread, any process).
pub struct Ring {
    map: MmapRaw,
    file: File,
    path: PathBuf,
    cap: u64,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("path", &self.path)
            .field("capacity", &self.cap)
            .finish()
    }
}

/// Whether a capacity is acceptable; the reason if not.
pub fn check_capacity(cap: u64) -> std::result::Result<(), String> {
    if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) || cap % 8 != 0 {
        return Err(format!(
            "ring capacity must be a multiple of 8 between {MIN_CAPACITY} and {MAX_CAPACITY} bytes, got {cap}"
        ));
    }
    Ok(())
}

impl Ring {
    /// Create (or atomically replace) the ring file at `path` with a data area of `capacity`
    /// bytes, all cursors at zero. The file is initialised under a temporary name and renamed into
    /// place, so no process can attach to a half-written header. Space is reserved with
    /// `posix_fallocate`, so a full `/dev/shm` fails here instead of SIGBUS on first write.
    pub fn create(path: impl AsRef<Path>, capacity: u64) -> Result<Ring> {
        let path = path.as_ref();
        check_capacity(capacity).map_err(RingError::Invalid)?;
        let name = path.file_name().ok_or_else(|| {
            RingError::Invalid(format!("ring path has no file name: {}", path.display()))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let result = (|| {
            let len = DATA_OFFSET as u64 + capacity;
            // SAFETY: fd is a valid open file; posix_fallocate has no memory-safety preconditions.
            let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
            if rc != 0 {
                return Err(RingError::Io(io::Error::from_raw_os_error(rc)));
            }
            let map = MmapRaw::map_raw(&file)?;
            if map.len() < len as usize {
                return Err(RingError::Corrupt("mapping shorter than the file".into()));
            }
            // SAFETY: the file was just created by us under a private name, nobody else maps it;
            // the mapping is at least DATA_OFFSET long, page aligned, so Header (align 64) fits.
            // The new file reads as zeros (truncated, then allocated): cursors 0, data zeroed
            // (invariant 3) without writing every page (rings may live on disk).
            unsafe {
                let h = map.as_mut_ptr() as *mut Header;
                (*h).meta = Meta {
                    magic: MAGIC,
                    version: LAYOUT_VERSION,
                    data_offset: DATA_OFFSET as u32,
                    capacity,
                };
            }
            std::fs::rename(&tmp, path)?;
            Ok(Ring {
                map,
                file,
                path: path.to_owned(),
                cap: capacity,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        let ring = result?;
        Ok(ring)
    }

    /// What the supervisor calls at start-up: keep an existing valid ring, so records that were
    /// acknowledged but not yet released survive a restart of the whole daemon; otherwise create
    /// it. An existing ring of another capacity is kept while it holds records (the new capacity
    /// takes effect at the first start where it is empty). A corrupt file is an error: the caller
    /// decides whether to move it aside and `create`.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: u64) -> Result<Ring> {
        let path = path.as_ref();
        check_capacity(capacity).map_err(RingError::Invalid)?;
        match Ring::attach(path) {
            Ok(ring) if ring.capacity() == capacity || ring.used_bytes() > 0 => Ok(ring),
            Ok(_) => Ring::create(path, capacity),
            Err(RingError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                Ring::create(path, capacity)
            }
            Err(e) => Err(e),
        }
    }

    /// Map an existing ring, validating magic, layout version, sizes and the cursors.
    pub fn attach(path: impl AsRef<Path>) -> Result<Ring> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let flen = file.metadata()?.len();
        if flen < DATA_OFFSET as u64 {
            return Err(RingError::Corrupt(format!(
                "file is {flen} bytes, shorter than the ring header"
            )));
        }
        let map = MmapRaw::map_raw(&file)?;
        if (map.len() as u64) < DATA_OFFSET as u64 {
            return Err(RingError::Corrupt(
                "mapping shorter than the ring header".into(),
            ));
        }
        // SAFETY: the mapping is at least DATA_OFFSET (>= size_of::<Header>()) bytes and page
        // aligned; read_volatile copies the plain fields, which another process may be writing,
        // without forming a reference to them.
        let meta = unsafe { std::ptr::read_volatile(map.as_ptr() as *const Meta) };
        if meta.magic != MAGIC {
            return Err(RingError::Corrupt(format!(
                "bad magic {:#018x}",
                meta.magic
            )));
        }
        if meta.version != LAYOUT_VERSION {
            return Err(RingError::Corrupt(format!(
                "layout version {} (this build reads {LAYOUT_VERSION})",
                meta.version
            )));
        }
        if meta.data_offset as usize != DATA_OFFSET {
            return Err(RingError::Corrupt(format!(
                "data offset {} != {DATA_OFFSET}",
                meta.data_offset
            )));
        }
        check_capacity(meta.capacity).map_err(RingError::Corrupt)?;
        if map.len() as u64 != DATA_OFFSET as u64 + meta.capacity {
            return Err(RingError::Corrupt(format!(
                "file is {} bytes, header says {} + {}",
                map.len(),
                DATA_OFFSET,
                meta.capacity
            )));
        }
        let ring = Ring {
            map,
            file,
            path: path.to_owned(),
            cap: meta.capacity,
        };
        let h = ring.header();
        let (free, release, reserve) = (
            h.free.0.load(Ordering::Acquire),
            h.release.0.load(Ordering::Acquire),
            h.reserve.0.load(Ordering::Acquire),
        );
        if !(free <= release && release <= reserve && reserve - free <= ring.cap)
            || (free | release | reserve) % 8 != 0
        {
            return Err(RingError::Corrupt(format!(
                "cursors out of order: free={free} release={release} reserve={reserve} capacity={}",
                ring.cap
            )));
        }
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// Largest payload one record may carry: half the data area minus the header, so a record
    /// plus the padding that may precede it always fits in an empty ring.
    pub fn max_record(&self) -> usize {
        ((self.cap / 2) as usize - RECORD_HEADER).min(u32::MAX as usize - 7)
    }

    /// Bytes reserved and not yet released (in flight, committed, or read but not released).
    pub fn used_bytes(&self) -> u64 {
        let h = self.header();
        // Load release first: both only grow, so reserve loaded after is >= release.
        let release = h.release.0.load(Ordering::Acquire);
        let reserve = h.reserve.0.load(Ordering::Acquire);
        reserve.saturating_sub(release)
    }

    /// Bytes of committed records the consumer has not read yet (walks the records after the
    /// consumer's published read position; in-flight records are not counted, nor is anything
    /// behind a header not written yet).
    pub fn pending_bytes(&self) -> Result<u64> {
        let h = self.header();
        let release = h.release.0.load(Ordering::Acquire);
        let read = h.read.0.load(Ordering::Acquire);
        let reserve = h.reserve.0.load(Ordering::Acquire);
        let mut p = read.clamp(release, reserve.max(release));
        if p % 8 != 0 {
            return Err(RingError::Corrupt(format!(
                "read cursor {p} is not 8-aligned"
            )));
        }
        let mut pending = 0;
        while p < reserve {
            let w = self.word(p).load(Ordering::Acquire);
            if w == 0 {
                break;
            }
            let rec = self.check_rec(p, w, reserve)?;
            if rec.state == STATE_COMMITTED {
                pending += rec.total();
            }
            p += rec.total();
        }
        Ok(pending)
    }

    /// Uncommitted records the consumers of this ring have skipped, ever.
    pub fn abandoned(&self) -> u64 {
        self.header().abandoned.0.load(Ordering::Relaxed)
    }

    /// Current release cursor (the position a new consumer resumes from).
    pub fn release_cursor(&self) -> u64 {
        self.header().release.0.load(Ordering::Acquire)
    }

    /// The consumer's published read cursor: just past the last record it read or skipped.
    pub fn read_cursor(&self) -> u64 {
        self.header().read.0.load(Ordering::Acquire)
    }

    /// Current reserve cursor (end of the last reserved record).
    pub fn reserve_cursor(&self) -> u64 {
        self.header().reserve.0.load(Ordering::Acquire)
    }

    /// Push one record. `Ok(false)` when full (or when the consumer abandoned this push as stuck).
    pub fn push(&self, payload: &[u8]) -> Result<bool> {
        self.push_parts(&[payload])
    }

    /// Push the concatenation of `parts` as one record, without concatenating them first.
    pub fn push_parts(&self, parts: &[&[u8]]) -> Result<bool> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Some((start, w)) = self.reserve_and_claim(len, std::process::id())? else {
            return Ok(false);
        };
        let mut at = self.data_off(start) + RECORD_HEADER;
        for part in parts {
            // SAFETY: reserve_and_claim gave us [start, start + total) with total >= 8 + len; the
            // record does not cross the lap end (invariant 2), so data offsets
            // [off+8, off+8+len) are inside the data area. We own that range exclusively: our
            // header CAS 0 -> WRITING succeeded, and no one else writes a record's payload.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), self.data_ptr().add(at), part.len())
            };
            at += part.len();
        }
        debug_assert_eq!(at, self.data_off(start) + RECORD_HEADER + len);
        let committed = Rec {
            state: STATE_COMMITTED,
            ..Rec::unpack(w)
        }
        .pack();
        // Release: the payload copy above happens-before the consumer's Acquire load that sees
        // COMMITTED. Fails only if the consumer abandoned the record (WRITING -> SKIP) first.
        Ok(self
            .word(start)
            .compare_exchange(w, committed, Ordering::Release, Ordering::Relaxed)
            .is_ok())
    }

    /// Test-only: reserve a record and stop at `stage` without committing, exactly as a producer
    /// killed there would leave it. `stage`: 0 = reserved only (header still zero), 1 = header
    /// written (WRITING), 2 = header and half the payload written. Returns false when full.
    #[doc(hidden)]
    pub fn debug_reserve_uncommitted(&self, len: usize, stage: u8) -> Result<bool> {
        let pid = std::process::id();
        if stage == 0 {
            return Ok(self.reserve(len)?.is_some());
        }
        let Some((start, _)) = self.reserve_and_claim(len, pid)? else {
            return Ok(false);
        };
        if stage >= 2 {
            // SAFETY: as in push_parts: we own [start+8, start+8+len) inside the data area.
            unsafe {
                std::ptr::write_bytes(
                    self.data_ptr().add(self.data_off(start) + RECORD_HEADER),
                    0xAB,
                    len / 2,
                )
            };
        }
        Ok(true)
    }

    /// Reserve space for a record of `len` payload bytes: returns `(start, pad)` where
    /// `[start - pad, start + total)` is now ours (`pad` bytes of lap tail before `start`).
    fn reserve(&self, len: usize) -> Result<Option<(u64, u64)>> {
        let max = self.max_record();
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        let total = record_total(len);
        let h = self.header();
        loop {
            // Acquire pairs with the consumer's Release store of `free` after zeroing: the zeroes
            // of [.., free + cap) are visible to our header CAS (invariant 3). A stale (smaller)
            // `free` only makes us refuse too early, never overwrite.
            let free = h.free.0.load(Ordering::Acquire);
            // Loaded *after* `free`, so `free <= r` (cursors only grow and free <= reserve) and
            // `r <= free + cap` unless `free` moved in between. A reserve value kept from an
            // earlier iteration could be older than `free`, so always reload both.
            let r = h.reserve.0.load(Ordering::Acquire);
            if r < free || r - free > self.cap || r % 8 != 0 {
                if h.free.0.load(Ordering::Acquire) != free {
                    continue; // `free` moved between the two loads: not a contradiction.
                }
                return Err(RingError::Corrupt(format!(
                    "reserve cursor {r} inconsistent with free cursor {free} (capacity {})",
                    self.cap
                )));
            }
            let off = r % self.cap;
            let pad = if off + total <= self.cap {
                0
            } else {
                self.cap - off
            };
            let end = r + pad + total;
            if end - free > self.cap {
                return Ok(None);
            }
            // AcqRel: orders this CAS after the `free` load above; nothing else is published
            // through `reserve` (records are published by their header CAS). On failure another
            // producer won: loop and reload both cursors.
            if h.reserve
                .0
                .compare_exchange_weak(r, end, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                debug_assert!(pad % 8 == 0 && (pad == 0 || pad >= 8));
                debug_assert!((r + pad) % self.cap + total <= self.cap);
                return Ok(Some((r + pad, pad)));
            }
        }
    }

    /// Reserve, write the padding record if any, and claim the header (0 -> WRITING).
    /// `None` when full, or when the consumer tomb-stoned our reservation as a stuck gap.
    fn reserve_and_claim(&self, len: usize, pid: u32) -> Result<Option<(u64, u64)>> {
        if pid >= PID_LIMIT {
            return Err(RingError::Invalid(format!(
                "pid {pid} does not fit the record header"
            )));
        }
        let Some((start, pad)) = self.reserve(len)? else {
            return Ok(None);
        };
        if pad > 0 {
            let skip = Rec {
                len: (pad - RECORD_HEADER as u64) as u32,
                state: STATE_SKIP,
                pid: 0,
            }
            .pack();
            // Release: nothing to publish but the word itself; fails only if the consumer
            // tomb-stoned it, and then it also tomb-stoned our header word (invariant 4).
            if self
                .word(start - pad)
                .compare_exchange(0, skip, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                return Ok(None);
            }
        }
        let w = Rec {
            len: len as u32,
            state: STATE_WRITING,
            pid,
        }
        .pack();
        // What invariant 4 needs is that this CAS and the consumer's tombstone CAS on the same
        // word are totally ordered (any ordering gives that); AcqRel additionally keeps our
        // payload stores after the claim in program order, which costs nothing on x86.
        match self
            .word(start)
            .compare_exchange(0, w, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Ok(Some((start, w))),
            Err(_) => Ok(None),
        }
    }

    /// The cursors. Only these are lent as a reference: they are atomics, so other processes
    /// writing them is fine; `Meta` is plain data and is only ever copied with `read_volatile`.
    fn header(&self) -> &Cursors {
        // SAFETY: the mapping is >= DATA_OFFSET >= size_of::<Header>() bytes (checked at
        // create/attach), page aligned (so the 64-aligned Cursors at their offset are aligned),
        // and lives as long as &self.
        unsafe {
            &*(self.map.as_ptr().add(std::mem::offset_of!(Header, cursors)) as *const Cursors)
        }
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: DATA_OFFSET < mapping length (checked at create/attach).
        unsafe { self.map.as_mut_ptr().add(DATA_OFFSET) }
    }

    fn data_off(&self, pos: u64) -> usize {
        (pos % self.cap) as usize
    }

    /// The 8-byte word at position `pos` (a multiple of 8) as an atomic.
    fn word(&self, pos: u64) -> &AtomicU64 {
        debug_assert!(pos % 8 == 0);
        let off = self.data_off(pos);
        // SAFETY: off is a multiple of 8 (pos and cap are) and off + 8 <= cap, so the word is
        // inside the data area and 8-aligned (the mapping is page aligned, DATA_OFFSET is 4096).
        // Shared words are only accessed atomically (header words) while another party may race.
        unsafe { &*(self.data_ptr().add(off) as *const AtomicU64) }
    }

    /// Validate an untrusted header word found at `p`, with `limit` the reserve cursor.
    fn check_rec(&self, p: u64, w: u64, limit: u64) -> Result<Rec> {
        let rec = Rec::unpack(w);
        let total = rec.total();
        let bad =
            |why: &str| RingError::Corrupt(format!("record at {p} (header {w:#018x}): {why}"));
        if rec.state == 0 {
            return Err(bad("invalid state"));
        }
        if rec.state != STATE_SKIP && rec.len as usize > self.max_record() {
            return Err(bad("length exceeds the maximum record"));
        }
        if total > limit - p {
            return Err(bad("extends past the reserve cursor"));
        }
        if p % self.cap + total > self.cap {
            return Err(bad("crosses the end of the data area"));
        }
        Ok(rec)
    }

    /// Zero data positions `[from, to)` (at most one capacity apart).
    fn zero_range(&self, from: u64, to: u64) {
        debug_assert!(from <= to && to - from <= self.cap);
        let mut p = from;
        while p < to {
            let off = self.data_off(p);
            let n = ((self.cap - off as u64).min(to - p)) as usize;
            // SAFETY: [off, off+n) is inside the data area (n <= cap - off). Only the consumer
            // writes released space, and no producer may touch it until `free` moves past it.
            unsafe { std::ptr::write_bytes(self.data_ptr().add(off), 0, n) };
            p += n as u64;
        }
    }
}

/// Is `pid` gone? `kill(pid, 0)` fails with ESRCH, or the process is a zombie (dead but not yet
/// reaped by its parent).
fn pid_is_dead(pid: u32) -> bool {
    if pid == 0 || pid >= PID_LIMIT {
        return true;
    }
    // SAFETY: signal 0 performs only the existence and permission check; no signal is sent.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    // "pid (comm) S ...": the state follows the last ')'.
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.iter().rposition(|&b| b == b')') {
            Some(i) => matches!(stat.get(i + 2), Some(b'Z' | b'X')),
            None => false,
        },
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// A committed record's payload, in shared memory. It is only ever copied out with raw-pointer
/// copies, never lent as `&[u8]`: shared memory another process can write (a buggy producer)
/// must not sit behind a Rust reference that promises it does not change.
pub struct Payload<'a> {
    ptr: *const u8,
    len: usize,
    _ring: std::marker::PhantomData<&'a Ring>,
}

impl Payload<'_> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy the payload into `dst`, which must be exactly `len()` bytes.
    pub fn copy_to(&self, dst: &mut [u8]) {
        assert_eq!(
            dst.len(),
            self.len,
            "destination must match the payload length"
        );
        // SAFETY: ptr..ptr+len is inside the mapped data area (checked by check_rec before the
        // Payload was made) and stays mapped for 'a; dst is a distinct, writable Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr, dst.as_mut_ptr(), self.len) };
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        self.copy_to(&mut v);
        v
    }
}

/// Consumer-side tuning.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerOptions {
    /// How long a zero header (producer died right after reserving) may block reading.
    pub gap_timeout: Duration,
    /// How long a `WRITING` record of a pid that still exists may block reading.
    pub stuck_timeout: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            gap_timeout: DEFAULT_GAP_TIMEOUT,
            stuck_timeout: DEFAULT_STUCK_TIMEOUT,
        }
    }
}

/// The single consumer of a ring. Holds an exclusive `flock` on the ring file for its life (the
/// kernel drops it when the process dies), so a second consumer fails with `ConsumerBusy`.
pub struct Consumer {
    ring: Arc<Ring>,
    lock: File,
    read: u64,
    opts: ConsumerOptions,
    /// The position reading is blocked at, since when, and when liveness was last checked.
    stuck: Option<(u64, Instant, Instant)>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("ring", &self.ring)
            .field("read", &self.read)
            .finish()
    }
}

impl Consumer {
    /// Take the consumer role: lock, finish any zeroing a dead consumer left undone, and start
    /// reading at the release cursor.
    pub fn new(ring: Arc<Ring>, opts: ConsumerOptions) -> Result<Consumer> {
        // A fresh open file description of the same inode (not a dup, whose lock would be shared
        // with the ring's own fd, and not the path, which `create` may since have replaced).
        let lock = File::open(format!("/proc/self/fd/{}", ring.file.as_raw_fd()))?;
        // SAFETY: valid fd; flock has no memory-safety preconditions.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                RingError::ConsumerBusy
            } else {
                e.into()
            });
        }
        let h = ring.header();
        let free = h.free.0.load(Ordering::Acquire);
        let release = h.release.0.load(Ordering::Acquire);
        if free > release || release - free > ring.cap {
            return Err(RingError::Corrupt(format!(
                "free cursor {free} beyond release cursor {release}"
            )));
        }
        // A consumer killed inside release() stored `release` but may not have zeroed up to it.
        ring.zero_range(free, release);
        h.free.0.store(release, Ordering::Release);
        h.read.0.store(release, Ordering::Release);
        Ok(Consumer {
            ring,
            lock,
            read: release,
            opts,
            stuck: None,
        })
    }

    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    /// Position just past the last record read.
    pub fn read_cursor(&self) -> u64 {
        self.read
    }

    fn advance(&mut self, to: u64) {
        debug_assert!(to > self.read);
        self.read = to;
        self.stuck = None;
        // Release: advisory, for pending_bytes() in other processes.
        self.ring.header().read.0.store(to, Ordering::Release);
    }

    /// How long reading has been blocked at `p`, and whether a liveness check is due.
    fn blocked_at(&mut self, p: u64) -> (Duration, bool) {
        let now = Instant::now();
        match &mut self.stuck {
            Some((at, since, checked)) if *at == p => {
                let due = now.duration_since(*checked) >= LIVENESS_EVERY;
                if due {
                    *checked = now;
                }
                (now.duration_since(*since), due)
            }
            _ => {
                self.stuck = Some((p, now, now));
                (Duration::ZERO, false)
            }
        }
    }

    /// The next committed record: calls `f` on its payload and returns `(end offset, f(..))`, or
    /// `None` if nothing is ready (empty, or the next record is still being written).
    pub fn read_with<T>(&mut self, f: impl FnOnce(Payload<'_>) -> T) -> Result<Option<(u64, T)>> {
        let ring = Arc::clone(&self.ring);
        let h = ring.header();
        loop {
            let p = self.read;
            // Acquire: not needed for data (headers publish), but keeps later header loads after it.
            let reserve = h.reserve.0.load(Ordering::Acquire);
            if reserve < p || reserve - h.release.0.load(Ordering::Acquire) > ring.cap {
                return Err(RingError::Corrupt(format!(
                    "reserve cursor {reserve} behind read cursor {p}"
                )));
            }
            if p == reserve {
                self.stuck = None;
                return Ok(None);
            }
            // Acquire pairs with the producer's Release commit CAS: the payload is visible.
            let w = ring.word(p).load(Ordering::Acquire);
            if w == 0 {
                let (blocked, _) = self.blocked_at(p);
                if blocked < self.opts.gap_timeout {
                    return Ok(None);
                }
                self.tombstone_gap(p, reserve);
                continue;
            }
            let rec = ring.check_rec(p, w, reserve)?;
            let end = p + rec.total();
            match rec.state {
                STATE_SKIP => self.advance(end),
                STATE_COMMITTED => {
                    let off = ring.data_off(p) + RECORD_HEADER;
                    let payload = Payload {
                        // SAFETY: check_rec proved [off, off + len) lies inside the data area.
                        ptr: unsafe { ring.data_ptr().add(off) },
                        len: rec.len as usize,
                        _ring: std::marker::PhantomData,
                    };
                    let out = f(payload);
                    self.advance(end);
                    return Ok(Some((end, out)));
                }
                _ => {
                    let (blocked, check_due) = self.blocked_at(p);
                    let give_up = blocked >= self.opts.stuck_timeout
                        || (blocked >= LIVENESS_GRACE && check_due && pid_is_dead(rec.pid));
                    if !give_up {
                        return Ok(None);
                    }
                    let skip = Rec {
                        state: STATE_SKIP,
                        ..rec
                    }
                    .pack();
                    // AcqRel: races with the producer's commit CAS; exactly one wins. On failure
                    // the record was just committed: loop and read it.
                    if ring
                        .word(p)
                        .compare_exchange(w, skip, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        h.abandoned.0.fetch_add(1, Ordering::Relaxed);
                        self.advance(end);
                    }
                }
            }
        }
    }

    /// Convenience: the next committed record copied out.
    pub fn read(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        self.read_with(|p| p.to_vec())
    }

    /// Replace every zero word from `p` (a record boundary whose header is zero) up to the first
    /// non-zero word or `reserve` by a tombstone. By invariant 4 the first non-zero word is a
    /// header, and every producer whose header lay in the tomb-stoned range fails its claim.
    fn tombstone_gap(&mut self, p: u64, reserve: u64) {
        let ring = &self.ring;
        let mut x = p;
        while x < reserve {
            if ring
                .word(x)
                .compare_exchange(0, TOMBSTONE, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                break;
            }
            x += 8;
        }
        // x == p: the late producer claimed its header just now; nothing was abandoned.
        if x > p {
            ring.header().abandoned.0.fetch_add(1, Ordering::Relaxed);
        }
        self.stuck = None;
    }

    /// Free everything before `offset` (an offset returned by `read`): the records are durable
    /// elsewhere. A new consumer resumes from here. An offset at or behind the release cursor
    /// is already released: a no-op (a restarted writer may repeat a release it did not record).
    pub fn release(&mut self, offset: u64) -> Result<()> {
        let h = self.ring.header();
        let release = h.release.0.load(Ordering::Acquire);
        if offset <= release {
            return Ok(());
        }
        if offset > self.read || offset % 8 != 0 {
            return Err(RingError::Invalid(format!(
                "release offset {offset} is beyond the read cursor {} (or not a record end)",
                self.read
            )));
        }
        // Order matters for crash safety: first the durable resume point, then zero, then hand
        // the space to producers (Release pairs with their Acquire load of `free`).
        h.release.0.store(offset, Ordering::Release);
        let free = h.free.0.load(Ordering::Acquire);
        self.ring.zero_range(free, offset);
        h.free.0.store(offset, Ordering::Release);
        Ok(())
    }

    /// Restart reading at the release cursor (every unreleased record is read again).
    pub fn rewind(&mut self) {
        let release = self.ring.header().release.0.load(Ordering::Acquire);
        self.read = release;
        self.stuck = None;
        self.ring.header().read.0.store(release, Ordering::Release);
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // SAFETY: valid fd owned by self; unlocking explicitly is belt and braces (closing
        // `lock`, its only fd, drops the lock too).
        unsafe { libc::flock(self.lock.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tmp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("otelingest-ring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn consumer(ring: &Arc<Ring>) -> Consumer {
        Consumer::new(Arc::clone(ring), ConsumerOptions::default()).unwrap()
    }

    /// xorshift64*: deterministic test randomness without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn fnv(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// A self-checking record: producer id, sequence number, filler, checksum of all before it.
    fn make_record(producer: u32, seq: u64, len: usize) -> Vec<u8> {
        let len = len.max(20);
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(&producer.to_le_bytes());
        v.extend_from_slice(&seq.to_le_bytes());
        let mut x = seq.wrapping_mul(31).wrapping_add(u64::from(producer));
        while v.len() < len - 8 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push((x >> 56) as u8);
        }
        let sum = fnv(&v);
        v.extend_from_slice(&sum.to_le_bytes());
        v
    }

    fn check_record(v: &[u8]) -> (u32, u64) {
        let n = v.len();
        assert!(n >= 20, "record too short: {n}");
        assert_eq!(
            fnv(&v[..n - 8]),
            u64::from_le_bytes(v[n - 8..].try_into().unwrap()),
            "checksum"
        );
        (
            u32::from_le_bytes(v[..4].try_into().unwrap()),
            u64::from_le_bytes(v[4..12].try_into().unwrap()),
        )
    }

    #[test]
    fn fill_full_release_and_reuse() {
        let ring = Arc::new(Ring::create(tmp_path("fill"), 4096).unwrap());
        assert_eq!(ring.capacity(), 4096);
        assert_eq!(ring.max_record(), 2040);
        let rec = [7u8; 100]; // 8 + 104 = 112 bytes
        let mut pushed = 0;
        while ring.push(&rec).unwrap() {
            pushed += 1;
        }
        assert_eq!(pushed, 4096 / 112);
        assert_eq!(ring.used_bytes(), 36 * 112);
        assert_eq!(ring.pending_bytes().unwrap(), 36 * 112);
        let mut c = consumer(&ring);
        let (end, data) = c.read().unwrap().unwrap();
        assert_eq!((end, data.as_slice()), (112, &rec[..]));
        assert_eq!(ring.pending_bytes().unwrap(), 35 * 112);
        // Read but not released: still full.
        assert!(!ring.push(&rec).unwrap());
        c.release(end).unwrap();
        assert_eq!(ring.used_bytes(), 35 * 112);
        // 112 freed at the front + 64 spare at the tail: the next record pads the tail and wraps.
        assert!(ring.push(&rec).unwrap());
        assert_eq!(ring.reserve_cursor(), 4096 + 112);
        let mut n = 0;
        let mut last = 0;
        while let Some((end, data)) = c.read().unwrap() {
            assert_eq!(data, rec);
            n += 1;
            last = end;
        }
        assert_eq!((n, last), (36, 4096 + 112));
        c.release(last).unwrap();
        assert_eq!(ring.used_bytes(), 0);
        assert_eq!(ring.abandoned(), 0);
    }

    #[test]
    fn empty_and_exact_sizes() {
        let ring = Arc::new(Ring::create(tmp_path("sizes"), 4096).unwrap());
        let mut c = consumer(&ring);
        assert!(c.read().unwrap().is_none());
        for len in [0usize, 1, 7, 8, 9, 2040] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(ring.push(&data).unwrap());
            let (end, got) = c.read().unwrap().unwrap();
            assert_eq!(got, data);
            c.release(end).unwrap();
        }
        match ring.push(&[0u8; 2041]) {
            Err(RingError::TooLarge {
                len: 2041,
                max: 2040,
            }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn push_parts_is_one_record() {
        let ring = Arc::new(Ring::create(tmp_path("parts"), 8192).unwrap());
        assert!(ring
            .push_parts(&[b"env:", b"", b"block-one|", b"block-two"])
            .unwrap());
        let mut c = consumer(&ring);
        assert_eq!(c.read().unwrap().unwrap().1, b"env:block-one|block-two");
        assert!(c.read().unwrap().is_none());
    }

    #[test]
    fn wraps_around_many_times() {
        let ring = Arc::new(Ring::create(tmp_path("wrap"), 4096).unwrap());
        let mut c = consumer(&ring);
        let mut rng = Rng(42);
        let (mut sent, mut got) = (0u64, 0u64);
        while ring.reserve_cursor() < 200 * 4096 {
            // Push a random burst, read some, release some: cursors wrap at every offset.
            for _ in 0..rng.below(6) {
                let rec = make_record(0, sent, 20 + rng.below(1500) as usize);
                if ring.push(&rec).unwrap() {
                    sent += 1;
                }
            }
            let mut last = None;
            for _ in 0..rng.below(6) {
                if let Some((end, data)) = c.read().unwrap() {
                    assert_eq!(check_record(&data), (0, got));
                    got += 1;
                    last = Some(end);
                }
            }
            if let Some(end) = last {
                c.release(end).unwrap();
            }
            assert!(ring.used_bytes() <= 4096);
        }
        while let Some((end, data)) = c.read().unwrap() {
            assert_eq!(check_record(&data), (0, got));
            got += 1;
            c.release(end).unwrap();
        }
        assert_eq!(got, sent);
        assert!(sent > 500);
    }

    #[test]
    fn rewind_rereads_unreleased_and_new_consumer_resumes() {
        let path = tmp_path("rewind");
        let ring = Arc::new(Ring::create(&path, 8192).unwrap());
        for i in 0..5u8 {
            assert!(ring.push(&[i; 10]).unwrap());
        }
        let mut c = consumer(&ring);
        let (e0, _) = c.read().unwrap().unwrap();
        let (_e1, _) = c.read().unwrap().unwrap();
        c.release(e0).unwrap();
        let (_, d) = c.read().unwrap().unwrap();
        assert_eq!(d, [2u8; 10]);
        c.rewind();
        assert_eq!(c.read().unwrap().unwrap().1, [1u8; 10]);
        // Releasing past what was read is refused; releasing again behind the cursor is a no-op.
        assert!(matches!(c.release(e0 + 1000), Err(RingError::Invalid(_))));
        c.release(e0 - 8).unwrap();
        assert_eq!(ring.release_cursor(), e0);
        // A second consumer is refused while the first lives.
        assert!(matches!(
            Consumer::new(Arc::clone(&ring), ConsumerOptions::default()),
            Err(RingError::ConsumerBusy)
        ));
        drop(c);
        // A new process attaching resumes at the release cursor.
        let ring2 = Arc::new(Ring::attach(&path).unwrap());
        let mut c2 = consumer(&ring2);
        let rest: Vec<u8> = std::iter::from_fn(|| c2.read().unwrap().map(|(_, d)| d[0])).collect();
        assert_eq!(rest, [1, 2, 3, 4]);
    }

    #[test]
    fn consumer_recovers_unfinished_zeroing() {
        let path = tmp_path("zeroing");
        let ring = Arc::new(Ring::create(&path, 4096).unwrap());
        for i in 0..3u8 {
            assert!(ring.push(&[i + 1; 64]).unwrap());
        }
        let mut c = consumer(&ring);
        let (end, _) = c.read().unwrap().unwrap();
        drop(c);
        // Simulate a consumer killed after storing `release` but before zeroing/moving `free`.
        ring.header().release.0.store(end, Ordering::Release);
        assert_eq!(ring.header().free.0.load(Ordering::Acquire), 0);
        let mut c = consumer(&ring);
        assert_eq!(ring.header().free.0.load(Ordering::Acquire), end);
        assert_eq!(ring.word(0).load(Ordering::Acquire), 0);
        assert_eq!(c.read().unwrap().unwrap().1, [2u8; 64]);
    }

    #[test]
    fn open_or_create_keeps_unreleased_records() {
        let path = tmp_path("reopen");
        let _ = std::fs::remove_file(&path);
        let ring = Ring::open_or_create(&path, 8192).unwrap();
        assert!(ring.push(b"acknowledged").unwrap());
        drop(ring);
        // Daemon restart, even with a new capacity: the unreleased record is kept.
        let ring = Arc::new(Ring::open_or_create(&path, 16384).unwrap());
        assert_eq!(ring.capacity(), 8192);
        let mut c = consumer(&ring);
        let (end, data) = c.read().unwrap().unwrap();
        assert_eq!(data, b"acknowledged");
        c.release(end).unwrap();
        drop(c);
        // Empty now: the new capacity takes effect.
        assert_eq!(
            Ring::open_or_create(&path, 16384).unwrap().capacity(),
            16384
        );
    }

    #[test]
    fn corrupt_files_are_refused_on_attach() {
        let path = tmp_path("corrupt");
        drop(Ring::create(&path, 4096).unwrap());
        let good = std::fs::read(&path).unwrap();
        type Corruption = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: [(&str, Corruption); 6] = [
            ("magic", Box::new(|b| b[0] ^= 1)),
            ("version", Box::new(|b| b[8] = 9)),
            (
                "capacity",
                Box::new(|b| b[16..24].copy_from_slice(&8192u64.to_le_bytes())),
            ),
            (
                "odd capacity",
                Box::new(|b| b[16..24].copy_from_slice(&4100u64.to_le_bytes())),
            ),
            (
                "cursors",
                Box::new(|b| b[64..72].copy_from_slice(&100_000u64.to_le_bytes())),
            ),
            ("truncated", Box::new(|b| b.truncate(100))),
        ];
        for (what, corrupt) in cases {
            let mut bytes = good.clone();
            corrupt(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();
            match Ring::attach(&path) {
                Err(RingError::Corrupt(_)) => {}
                other => panic!("{what}: expected Corrupt, got {other:?}"),
            }
        }
        std::fs::write(&path, &good).unwrap();
        Ring::attach(&path).unwrap();
    }

    #[test]
    fn corrupt_record_header_is_an_error_not_a_panic() {
        let ring = Arc::new(Ring::create(tmp_path("badrec"), 4096).unwrap());
        assert!(ring.push(&[1u8; 16]).unwrap());
        let mut c = consumer(&ring);
        for bad in [
            Rec {
                len: 5000,
                state: STATE_COMMITTED,
                pid: 1,
            }
            .pack(), // past reserve / max
            Rec {
                len: 16,
                state: 0,
                pid: 1,
            }
            .pack()
                | 1 << 40, // state 0
        ] {
            ring.word(0).store(bad, Ordering::Release);
            assert!(matches!(c.read(), Err(RingError::Corrupt(_))), "{bad:#x}");
        }
    }

    #[test]
    fn abandoned_writing_record_of_dead_pid_is_skipped() {
        let ring = Arc::new(Ring::create(tmp_path("deadpid"), 8192).unwrap());
        let (start, w) = ring.reserve_and_claim(100, PID_LIMIT - 1).unwrap().unwrap(); // no such pid
        assert!(ring.push(b"after").unwrap());
        let mut c = consumer(&ring);
        assert!(c.read().unwrap().is_none(), "within the grace period");
        std::thread::sleep(LIVENESS_GRACE + LIVENESS_EVERY);
        assert_eq!(c.read().unwrap().unwrap().1, b"after");
        assert_eq!(ring.abandoned(), 1);
        // The slow producer's late commit fails: it must not acknowledge.
        let committed = Rec {
            state: STATE_COMMITTED,
            ..Rec::unpack(w)
        }
        .pack();
        assert!(ring
            .word(start)
            .compare_exchange(w, committed, Ordering::Release, Ordering::Relaxed)
            .is_err());
    }

    #[test]
    fn stuck_live_writer_times_out_and_its_commit_fails() {
        let ring = Arc::new(Ring::create(tmp_path("stuck"), 8192).unwrap());
        assert!(ring.debug_reserve_uncommitted(50, 2).unwrap()); // our own, live pid
        assert!(ring.push(b"next").unwrap());
        let opts = ConsumerOptions {
            stuck_timeout: Duration::from_millis(50),
            ..Default::default()
        };
        let mut c = Consumer::new(Arc::clone(&ring), opts).unwrap();
        assert!(c.read().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.read().unwrap().unwrap().1, b"next");
        assert_eq!(ring.abandoned(), 1);
    }

    #[test]
    fn zero_header_gap_is_tombstoned_and_late_claims_fail() {
        let ring = Arc::new(Ring::create(tmp_path("gap"), 8192).unwrap());
        // Two producers reserved but never wrote a header; then a committed record.
        let (s1, _) = ring.reserve(40).unwrap().unwrap();
        let (s2, _) = ring.reserve(24).unwrap().unwrap();
        assert!(ring.push(b"survivor").unwrap());
        let opts = ConsumerOptions {
            gap_timeout: Duration::from_millis(30),
            ..Default::default()
        };
        let mut c = Consumer::new(Arc::clone(&ring), opts).unwrap();
        assert!(c.read().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let (end, data) = c.read().unwrap().unwrap();
        assert_eq!(data, b"survivor");
        assert_eq!(ring.abandoned(), 1);
        // A late producer at either reservation fails its header claim.
        for s in [s1, s2] {
            assert!(ring
                .word(s)
                .compare_exchange(0, 1 << STATE_SHIFT, Ordering::AcqRel, Ordering::Relaxed)
                .is_err());
        }
        c.release(end).unwrap();
        // Rewinding over tombstones does not count them again.
        c.rewind();
        assert!(c.read().unwrap().is_none());
        assert_eq!(ring.abandoned(), 1);
    }

    #[test]
    fn gap_at_wrap_padding_is_recovered() {
        let ring = Arc::new(Ring::create(tmp_path("gapwrap"), 4096).unwrap());
        let mut c = Consumer::new(
            Arc::clone(&ring),
            ConsumerOptions {
                gap_timeout: Duration::from_millis(10),
                ..Default::default()
            },
        )
        .unwrap();
        // Move the cursors near the end of the lap.
        for _ in 0..3 {
            assert!(ring.push(&[0u8; 1000]).unwrap());
            let (end, _) = c.read().unwrap().unwrap();
            c.release(end).unwrap();
        }
        // 3 * 1008 = 3024; a 1500-byte record needs the tail padded: reserve only, then die.
        let (start, pad) = ring.reserve(1500).unwrap().unwrap();
        assert_eq!((start, pad), (4096, 4096 - 3024));
        assert!(ring.push(b"ok").unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            c.read().unwrap().is_none(),
            "first call starts the gap clock"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.read().unwrap().unwrap().1, b"ok");
        assert_eq!(ring.abandoned(), 1);
    }

    /// Many producer threads, random sizes, one consumer: every record exactly once, in
    /// per-producer order, intact; the ring wraps many times.
    #[test]
    fn stress_many_producers_one_consumer() {
        const PRODUCERS: u32 = 6;
        const PER_PRODUCER: u64 = 10_000;
        let ring = Arc::new(Ring::create(tmp_path("stress"), 64 * 1024).unwrap());
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9 + u64::from(id));
                    let mut full = 0u64;
                    for seq in 0..PER_PRODUCER {
                        let len = match rng.below(10) {
                            0 => 20 + rng.below(ring.max_record() as u64 - 20) as usize,
                            _ => 20 + rng.below(2000) as usize,
                        };
                        let rec = make_record(id, seq, len);
                        while !ring.push(&rec).unwrap() {
                            full += 1;
                            std::thread::yield_now();
                        }
                    }
                    full
                })
            })
            .collect();
        let expected = u64::from(PRODUCERS) * PER_PRODUCER;
        let reader = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut c = consumer(&ring);
                let mut next: HashMap<u32, u64> = HashMap::new();
                let mut total = 0u64;
                let mut rng = Rng(7);
                while total < expected {
                    match c.read_with(|p| check_record(&p.to_vec())).unwrap() {
                        Some((end, (id, seq))) => {
                            let want = next.entry(id).or_insert(0);
                            assert_eq!(seq, *want, "producer {id} out of order");
                            *want += 1;
                            total += 1;
                            // Release in random batches, so reads run ahead of releases.
                            if rng.below(4) == 0 {
                                c.release(end).unwrap();
                            }
                        }
                        None => {
                            let r = c.read_cursor();
                            c.release(r).unwrap();
                            std::thread::yield_now();
                        }
                    }
                }
                assert!(
                    c.read().unwrap().is_none(),
                    "no record beyond the expected ones"
                );
                (total, next)
            })
        };
        let full: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let (total, next) = reader.join().unwrap();
        assert_eq!(total, u64::from(PRODUCERS) * PER_PRODUCER);
        assert!(next.values().all(|&n| n == PER_PRODUCER));
        assert_eq!(ring.abandoned(), 0);
        assert!(
            ring.reserve_cursor() > 20 * ring.capacity(),
            "wrapped {} times",
            ring.reserve_cursor() / ring.capacity()
        );
        assert!(full > 0, "the ring filled up at least once");
    }

    /// Producers that "die" mid-push at random (reserve only, or header with a dead pid, or half
    /// the payload) while others push: every real record arrives once, in order, intact; the dead
    /// ones are skipped and counted; live producers racing a tombstone retry and lose nothing.
    #[test]
    fn stress_with_producers_dying_mid_write() {
        const PRODUCERS: u32 = 4;
        const PER_PRODUCER: u64 = 4000;
        let ring = Arc::new(Ring::create(tmp_path("stress-die"), 32 * 1024).unwrap());
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                let ring = Arc::clone(&ring);
                std::thread::spawn(move || {
                    let mut rng = Rng(0xD1E + u64::from(id));
                    let mut deaths = 0u64;
                    for seq in 0..PER_PRODUCER {
                        if rng.below(400) == 0 {
                            let len = rng.below(3000) as usize;
                            let dead = match rng.below(3) {
                                0 => ring.reserve(len).unwrap().is_some(),
                                1 => ring
                                    .reserve_and_claim(len, PID_LIMIT - 1)
                                    .unwrap()
                                    .is_some(),
                                _ => match ring.reserve_and_claim(len, PID_LIMIT - 1).unwrap() {
                                    // Died half-way through the copy.
                                    Some((start, _)) => {
                                        let at = ring.data_off(start) + RECORD_HEADER;
                                        // SAFETY: our claimed record, inside the data area.
                                        unsafe {
                                            std::ptr::write_bytes(
                                                ring.data_ptr().add(at),
                                                0xAB,
                                                len / 2,
                                            )
                                        };
                                        true
                                    }
                                    None => false,
                                },
                            };
                            deaths += u64::from(dead);
                        }
                        let rec = make_record(id, seq, 20 + rng.below(3000) as usize);
                        while !ring.push(&rec).unwrap() {
                            std::thread::yield_now();
                        }
                    }
                    deaths
                })
            })
            .collect();
        let opts = ConsumerOptions {
            gap_timeout: Duration::from_millis(5),
            stuck_timeout: Duration::from_millis(200),
        };
        let mut c = Consumer::new(Arc::clone(&ring), opts).unwrap();
        let mut next: HashMap<u32, u64> = HashMap::new();
        let expected = u64::from(PRODUCERS) * PER_PRODUCER;
        let mut total = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while total < expected {
            assert!(Instant::now() < deadline, "stuck after {total} records");
            match c.read_with(|p| check_record(&p.to_vec())).unwrap() {
                Some((end, (id, seq))) => {
                    let want = next.entry(id).or_insert(0);
                    assert_eq!(seq, *want, "producer {id} out of order");
                    *want += 1;
                    total += 1;
                    c.release(end).unwrap();
                }
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        let deaths: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // Skip whatever died after the last real record, then the ring is empty.
        while ring.used_bytes() > 0 {
            assert!(
                Instant::now() < deadline,
                "trailing abandoned records not skipped"
            );
            assert!(c.read().unwrap().is_none());
            c.release(c.read_cursor()).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(deaths > 10, "{deaths} deaths");
        // Adjacent zero-header reservations are tomb-stoned as one gap.
        assert!(
            (1..=deaths).contains(&ring.abandoned()),
            "{} abandoned of {deaths}",
            ring.abandoned()
        );
    }

    /// Throughput figure, not a test: `cargo test --release --lib ring::tests::throughput --
    /// --ignored --nocapture`. One producer thread, one consumer thread, 64 KiB records.
    #[test]
    #[ignore]
    fn throughput_64k_records() {
        const RECORD: usize = 64 * 1024;
        const COUNT: u64 = 50_000;
        let ring = Arc::new(Ring::create(tmp_path("throughput"), 64 << 20).unwrap());
        let producer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let rec = vec![0x5Au8; RECORD];
                for _ in 0..COUNT {
                    while !ring.push(&rec).unwrap() {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let started = Instant::now();
        let mut c = consumer(&ring);
        let mut buf = vec![0u8; RECORD];
        let mut n = 0;
        let mut sum = 0u64;
        while n < COUNT {
            if let Some((end, first)) = c
                .read_with(|p| {
                    p.copy_to(&mut buf);
                    buf[0]
                })
                .unwrap()
            {
                sum += u64::from(first);
                n += 1;
                if n % 64 == 0 {
                    c.release(end).unwrap();
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        producer.join().unwrap();
        assert_eq!(sum, COUNT * 0x5A);
        println!(
            "{COUNT} records of {RECORD} B in {secs:.3} s: {:.0} records/s, {:.0} MB/s",
            COUNT as f64 / secs,
            (COUNT as usize * RECORD) as f64 / secs / 1e6
        );
    }
}
