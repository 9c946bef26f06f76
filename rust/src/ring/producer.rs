//! The producer side: one per ring (a receiver process), writing records straight into place.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::header::{record_total, Rec, RingFile, KIND_PAD, KIND_RECORD, RECORD_HEADER};
use super::{Result, RingError};

/// The single producer of a ring. Holds the producer lock for its life.
#[derive(Debug)]
pub struct Producer {
    ring: RingFile,
    /// Our own cursor: the `write` we last published (nobody else writes it).
    write: u64,
    /// Last `release` seen; reloaded only when it says the ring is full.
    release: u64,
}

impl Producer {
    /// Attach to the ring at `path` as its producer.
    pub fn attach(path: impl AsRef<Path>) -> Result<Producer> {
        Producer::new(RingFile::attach(path)?)
    }

    /// Take the producer role of a mapped ring; resume at the published `write` cursor (a
    /// previous producer's unpublished bytes beyond it are overwritten).
    pub fn new(ring: RingFile) -> Result<Producer> {
        ring.lock_role("producer")?;
        let (release, write) = ring.cursors()?;
        Ok(Producer {
            ring,
            write,
            release,
        })
    }

    pub fn ring(&self) -> &RingFile {
        &self.ring
    }

    /// Push one record. `Ok(false)` when full.
    pub fn push(&mut self, payload: &[u8]) -> Result<bool> {
        self.push_parts(&[payload])
    }

    /// Push the concatenation of `parts` as one record, each part copied once, into its slot.
    pub fn push_parts(&mut self, parts: &[&[u8]]) -> Result<bool> {
        let len = parts.iter().map(|p| p.len()).sum();
        let Some(mut slot) = self.reserve(len)? else {
            return Ok(false);
        };
        for part in parts {
            slot.put(part);
        }
        slot.commit();
        Ok(true)
    }

    /// Room for one record of `len` payload bytes, or `None` when the ring is full. Nothing is
    /// visible to the consumer until [`Slot::commit`]; a dropped slot is as if never reserved.
    pub fn reserve(&mut self, len: usize) -> Result<Option<Slot<'_>>> {
        let max = self.ring.max_record();
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        let cap = self.ring.capacity();
        let total = record_total(len);
        let off = self.write % cap;
        let pad = if off + total <= cap { 0 } else { cap - off };
        let end = self.write + pad + total;
        if end - self.release > cap {
            // Acquire pairs with the consumer's Release store: its reads of the records below
            // `release` are done before we overwrite them.
            let release = self.ring.header().release.0.load(Ordering::Acquire);
            if release < self.release || release > self.write || release % 8 != 0 {
                return Err(RingError::Corrupt(format!(
                    "release cursor {release} outside [{}, {}]",
                    self.release, self.write
                )));
            }
            self.release = release;
            if end - release > cap {
                return Ok(None);
            }
        }
        debug_assert!(pad % 8 == 0 && (self.write + pad) % cap + total <= cap);
        Ok(Some(Slot {
            producer: self,
            start: end - total,
            pad,
            len,
            filled: 0,
        }))
    }
}

/// A reserved, unpublished record: fill it with exactly `len` bytes of [`Slot::put`], then
/// [`Slot::commit`]. The bytes are written straight into shared memory, never lent out as a
/// `&mut [u8]` (the mapping is shared with other processes).
pub struct Slot<'a> {
    producer: &'a mut Producer,
    start: u64,
    pad: u64,
    len: usize,
    filled: usize,
}

impl Slot<'_> {
    /// Payload bytes still to write.
    pub fn remaining(&self) -> usize {
        self.len - self.filled
    }

    /// Append `bytes` to the payload. Panics past the reserved length (a caller bug).
    pub fn put(&mut self, bytes: &[u8]) {
        assert!(bytes.len() <= self.remaining(), "slot overflow");
        let ring = &self.producer.ring;
        let at = ring.data_off(self.start) + RECORD_HEADER + self.filled;
        // SAFETY: reserve() proved [start, start + 8 + len) lies inside one lap of the data area
        // and inside [write, release + capacity), which only this producer writes (invariant 3;
        // the role lock makes us the only producer); `at + bytes.len()` stays within it.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ring.data_ptr().add(at), bytes.len())
        };
        self.filled += bytes.len();
    }

    /// Write the header words and publish the record. Panics unless exactly `len` bytes were put.
    pub fn commit(self) {
        assert_eq!(self.filled, self.len, "slot not filled");
        self.write_headers();
        let end = self.start + record_total(self.len);
        // Release: the header and payload stores above happen-before the consumer's Acquire
        // load that sees the new `write`; only then may the record be read.
        self.producer
            .ring
            .header()
            .write
            .0
            .store(end, Ordering::Release);
        self.producer.write = end;
    }

    /// The padding record (if any) and this record's header word, unpublished.
    pub(super) fn write_headers(&self) {
        let ring = &self.producer.ring;
        if self.pad > 0 {
            let pad = Rec {
                len: (self.pad - RECORD_HEADER as u64) as u32,
                kind: KIND_PAD,
            };
            ring.word(self.start - self.pad)
                .store(pad.pack(), Ordering::Relaxed);
        }
        let rec = Rec {
            len: self.len as u32,
            kind: KIND_RECORD,
        };
        ring.word(self.start).store(rec.pack(), Ordering::Relaxed);
    }
}
