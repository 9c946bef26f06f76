//! The ring file: its `#[repr(C)]` header, creating and attaching it, the record header word and
//! the role locks. Everything here is role-free; [`super::Producer`] and [`super::Consumer`] own
//! a [`RingFile`] each.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapRaw;

use super::{Result, RingError};

/// "OTIRING\0" read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"OTIRING\0");
/// Bumped on any incompatible change of the header or record format (2: single producer).
pub const LAYOUT_VERSION: u32 = 2;
/// The data area starts one page into the file.
pub const DATA_OFFSET: usize = 4096;
/// Smallest and largest data area accepted.
pub const MIN_CAPACITY: u64 = 4096;
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Size of a record header word.
pub(super) const RECORD_HEADER: usize = 8;

pub(super) const KIND_SHIFT: u32 = 32;
pub(super) const KIND_RECORD: u32 = 1;
/// Fills the tail of a lap that the next record does not fit in.
pub(super) const KIND_PAD: u32 = 2;

/// One cursor on its own cache line, so the producer's `write` stores and the consumer's
/// `release` stores do not contend (false sharing).
#[repr(C, align(64))]
pub(super) struct Line(pub(super) AtomicU64);

#[repr(C, align(64))]
struct Meta {
    magic: u64,
    version: u32,
    data_offset: u32,
    capacity: u64,
}

/// The shared cursors, each written by one role only.
#[repr(C)]
pub(super) struct Cursors {
    /// Producer: end of the last published record.
    pub(super) write: Line,
    /// Consumer: records below are stored elsewhere; the producer may reuse their space.
    pub(super) release: Line,
}

#[repr(C)]
struct Header {
    meta: Meta,
    cursors: Cursors,
}

const _: () = assert!(std::mem::size_of::<Header>() == 3 * 64);
const _: () = assert!(std::mem::size_of::<Header>() <= DATA_OFFSET);

/// Decoded record header word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rec {
    pub(super) len: u32,
    pub(super) kind: u32,
}

impl Rec {
    pub(super) fn pack(self) -> u64 {
        u64::from(self.len) | (u64::from(self.kind) << KIND_SHIFT)
    }
    pub(super) fn unpack(w: u64) -> Rec {
        Rec {
            len: w as u32,
            kind: (w >> KIND_SHIFT) as u32,
        }
    }
    /// Bytes the record occupies: header + payload rounded up to 8.
    pub(super) fn total(self) -> u64 {
        record_total(self.len as usize)
    }
}

pub(super) fn record_total(payload: usize) -> u64 {
    (RECORD_HEADER + payload.next_multiple_of(8)) as u64
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

/// A mapped ring file without a role: creation, validation and the figures anyone may read.
pub struct RingFile {
    map: MmapRaw,
    file: File,
    path: PathBuf,
    cap: u64,
}

impl std::fmt::Debug for RingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingFile")
            .field("path", &self.path)
            .field("capacity", &self.cap)
            .finish()
    }
}

impl RingFile {
    /// Create (or atomically replace) the ring file at `path` with a data area of `capacity`
    /// bytes, both cursors at zero. The file is initialised under a temporary name and renamed
    /// into place, so no process can attach to a half-written header. Space is reserved with
    /// `posix_fallocate`, so a full `/dev/shm` fails here instead of SIGBUS on first write.
    pub fn create(path: impl AsRef<Path>, capacity: u64) -> Result<RingFile> {
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
            // the mapping is at least DATA_OFFSET long and page aligned, so Header (align 64)
            // fits. The new file reads as zeros (truncated, then allocated): cursors at 0.
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
            Ok(RingFile {
                map,
                file,
                path: path.to_owned(),
                cap: capacity,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The one way the daemon opens its rings at start-up: keep an existing valid ring, so
    /// records acknowledged but not yet released survive a restart of the whole daemon;
    /// otherwise create it. An existing ring of another capacity is kept while it holds records
    /// (the new capacity takes effect at the first start where it is empty). A corrupt file is
    /// an error: the caller decides whether to `create` afresh.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: u64) -> Result<RingFile> {
        let path = path.as_ref();
        check_capacity(capacity).map_err(RingError::Invalid)?;
        match RingFile::attach(path) {
            Ok(ring) if ring.capacity() == capacity || ring.used_bytes() > 0 => Ok(ring),
            Ok(_) => RingFile::create(path, capacity),
            Err(RingError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                RingFile::create(path, capacity)
            }
            Err(e) => Err(e),
        }
    }

    /// Map an existing ring, validating magic, layout version, sizes and the cursors.
    pub fn attach(path: impl AsRef<Path>) -> Result<RingFile> {
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
        // aligned; read_volatile copies the plain fields without forming a reference to them.
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
        let ring = RingFile {
            map,
            file,
            path: path.to_owned(),
            cap: meta.capacity,
        };
        ring.cursors()?;
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

    /// Bytes published and not yet released (record headers and padding included).
    pub fn used_bytes(&self) -> u64 {
        // Release first: both only grow and write >= release, so the later write is >= it.
        let release = self.header().release.0.load(Ordering::Acquire);
        let write = self.header().write.0.load(Ordering::Acquire);
        write.saturating_sub(release)
    }

    /// Current release cursor (the position a new consumer resumes from).
    pub fn release_cursor(&self) -> u64 {
        self.header().release.0.load(Ordering::Acquire)
    }

    /// Current write cursor (end of the last published record).
    pub fn write_cursor(&self) -> u64 {
        self.header().write.0.load(Ordering::Acquire)
    }

    /// `(release, write)`, checked against invariant 1.
    pub(super) fn cursors(&self) -> Result<(u64, u64)> {
        let release = self.header().release.0.load(Ordering::Acquire);
        let write = self.header().write.0.load(Ordering::Acquire);
        if release > write || write - release > self.cap || (release | write) % 8 != 0 {
            return Err(RingError::Corrupt(format!(
                "cursors out of order: release={release} write={write} capacity={}",
                self.cap
            )));
        }
        Ok((release, write))
    }

    /// Take a role for as long as this file stays open: an open-file-description lock on one
    /// byte (0: producer, 1: consumer). Unlike `flock`, two roles are two byte ranges of one
    /// file; unlike classic POSIX locks, the lock belongs to this open file (not the process),
    /// so a second handle in the same process is refused too, and closing some other descriptor
    /// of the file does not drop it. The kernel drops it when the process dies.
    pub(super) fn lock_role(&self, role: &'static str) -> Result<()> {
        let byte = if role == "producer" { 0 } else { 1 };
        // SAFETY: an all-zero flock is a valid value; the fields are set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = byte;
        fl.l_len = 1;
        // SAFETY: valid fd and a pointer to an initialised flock (l_pid 0, as OFD locks need).
        if unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } != 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => RingError::Busy(role),
                _ => e.into(),
            });
        }
        Ok(())
    }

    /// The cursors. Only these are lent as a reference: they are atomics, so other processes
    /// writing them is fine; `Meta` is plain data and is only ever copied with `read_volatile`.
    pub(super) fn header(&self) -> &Cursors {
        // SAFETY: the mapping is >= DATA_OFFSET >= size_of::<Header>() bytes (checked at
        // create/attach), page aligned (so the 64-aligned Cursors at their offset are aligned),
        // and lives as long as &self.
        unsafe {
            &*(self.map.as_ptr().add(std::mem::offset_of!(Header, cursors)) as *const Cursors)
        }
    }

    pub(super) fn data_ptr(&self) -> *mut u8 {
        // SAFETY: DATA_OFFSET < mapping length (checked at create/attach).
        unsafe { self.map.as_mut_ptr().add(DATA_OFFSET) }
    }

    pub(super) fn data_off(&self, pos: u64) -> usize {
        (pos % self.cap) as usize
    }

    /// The 8-byte word at position `pos` (a multiple of 8) as an atomic.
    pub(super) fn word(&self, pos: u64) -> &AtomicU64 {
        debug_assert!(pos % 8 == 0);
        let off = self.data_off(pos);
        // SAFETY: off is a multiple of 8 (pos and cap are) and off + 8 <= cap, so the word is
        // inside the data area and 8-aligned (the mapping is page aligned, DATA_OFFSET is 4096).
        unsafe { &*(self.data_ptr().add(off) as *const AtomicU64) }
    }

    /// Validate an untrusted header word found at `p`, with `limit` the write cursor.
    pub(super) fn check_rec(&self, p: u64, w: u64, limit: u64) -> Result<Rec> {
        let rec = Rec::unpack(w);
        let total = rec.total();
        let bad =
            |why: &str| RingError::Corrupt(format!("record at {p} (header {w:#018x}): {why}"));
        match rec.kind {
            KIND_RECORD if rec.len as usize > self.max_record() => {
                return Err(bad("length exceeds the maximum record"))
            }
            KIND_PAD if (p + total) % self.cap != 0 => {
                return Err(bad("padding does not end at the end of the data area"))
            }
            KIND_RECORD | KIND_PAD => {}
            _ => return Err(bad("invalid kind")),
        }
        if total > limit - p {
            return Err(bad("extends past the write cursor"));
        }
        if p % self.cap + total > self.cap {
            return Err(bad("crosses the end of the data area"));
        }
        Ok(rec)
    }
}
