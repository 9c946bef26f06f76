//! The consumer side: one per ring (a writer process), two-phase (read, then release).

use std::path::Path;
use std::sync::atomic::Ordering;

use super::header::{RingFile, KIND_PAD, RECORD_HEADER};
use super::{Result, RingError};

/// A record's payload, in shared memory. It is only ever copied out with raw-pointer copies,
/// never lent as `&[u8]`: shared memory another process can write (a buggy producer) must not
/// sit behind a Rust reference that promises it does not change.
pub struct Payload<'a> {
    ptr: *const u8,
    len: usize,
    _ring: std::marker::PhantomData<&'a RingFile>,
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

/// The single consumer of a ring. Holds the consumer lock for its life.
#[derive(Debug)]
pub struct Consumer {
    ring: RingFile,
    /// Just past the last record read (ours alone; not shared).
    read: u64,
    /// Our own cursor: the `release` we last stored.
    release: u64,
    /// Last `write` seen; reloaded only when reading catches up with it.
    write: u64,
}

impl Consumer {
    /// Attach to the ring at `path` as its consumer.
    pub fn attach(path: impl AsRef<Path>) -> Result<Consumer> {
        Consumer::new(RingFile::attach(path)?)
    }

    /// Take the consumer role of a mapped ring and start reading at the release cursor.
    pub fn new(ring: RingFile) -> Result<Consumer> {
        ring.lock_role("consumer")?;
        let (release, write) = ring.cursors()?;
        Ok(Consumer {
            ring,
            read: release,
            release,
            write,
        })
    }

    pub fn ring(&self) -> &RingFile {
        &self.ring
    }

    /// Position just past the last record read.
    pub fn read_cursor(&self) -> u64 {
        self.read
    }

    /// Reload the producer's `write` cursor, checked against invariant 1.
    fn load_write(&mut self) -> Result<u64> {
        // Acquire pairs with the producer's Release store: the records below are complete.
        let write = self.ring.header().write.0.load(Ordering::Acquire);
        if write < self.write || write - self.release > self.ring.capacity() || write % 8 != 0 {
            return Err(RingError::Corrupt(format!(
                "write cursor {write} outside [{}, {} + capacity]",
                self.write, self.release
            )));
        }
        self.write = write;
        Ok(write)
    }

    /// The next record: calls `f` on its payload and returns `(end offset, f(..))`, or `None`
    /// if nothing is published beyond what was read.
    pub fn read_with<T>(&mut self, f: impl FnOnce(Payload<'_>) -> T) -> Result<Option<(u64, T)>> {
        loop {
            let p = self.read;
            if p == self.write && self.load_write()? == p {
                return Ok(None);
            }
            let w = self.ring.word(p).load(Ordering::Relaxed);
            let rec = self.ring.check_rec(p, w, self.write)?;
            let end = p + rec.total();
            if rec.kind == KIND_PAD {
                self.read = end;
                continue;
            }
            let payload = Payload {
                // SAFETY: check_rec proved [off, off + len) lies inside the data area.
                ptr: unsafe {
                    self.ring
                        .data_ptr()
                        .add(self.ring.data_off(p) + RECORD_HEADER)
                },
                len: rec.len as usize,
                _ring: std::marker::PhantomData,
            };
            let out = f(payload);
            self.read = end;
            return Ok(Some((end, out)));
        }
    }

    /// Convenience: the next record copied out.
    pub fn read(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        self.read_with(|p| p.to_vec())
    }

    /// Bytes of records published and not read yet (headers included, padding not).
    pub fn pending_bytes(&mut self) -> Result<u64> {
        let write = self.load_write()?;
        let (mut p, mut pending) = (self.read, 0);
        while p < write {
            let rec = self
                .ring
                .check_rec(p, self.ring.word(p).load(Ordering::Relaxed), write)?;
            if rec.kind != KIND_PAD {
                pending += rec.total();
            }
            p += rec.total();
        }
        Ok(pending)
    }

    /// Free everything before `offset` (an offset returned by `read`, or `read_cursor`): the
    /// records are durable elsewhere. A new consumer resumes from here. An offset at or behind
    /// the release cursor is already released: a no-op (a restarted writer may repeat a release
    /// it did not record).
    pub fn release(&mut self, offset: u64) -> Result<()> {
        if offset <= self.release {
            return Ok(());
        }
        if offset > self.read || offset % 8 != 0 {
            return Err(RingError::Invalid(format!(
                "release offset {offset} is beyond the read cursor {} (or not a record end)",
                self.read
            )));
        }
        // Release: our reads of the freed records happen-before the producer overwrites them.
        self.ring
            .header()
            .release
            .0
            .store(offset, Ordering::Release);
        self.release = offset;
        Ok(())
    }

    /// Restart reading at the release cursor (every unreleased record is read again).
    pub fn rewind(&mut self) {
        self.read = self.release;
    }
}
