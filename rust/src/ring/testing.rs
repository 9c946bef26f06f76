//! Test support, not API: leave a ring exactly as a producer killed mid-push would.
//! Exposed to Python as `otelingest._native.testing` for the crash tests in `tests/`.

use super::{Producer, Result};

/// How far a push got before its producer "died".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Room found, nothing written.
    Reserved,
    /// Header words written.
    Header,
    /// Header words and half the payload written.
    Partial,
}

/// Reserve a record of `len` bytes and stop at `stage` without publishing it. False when full.
pub fn abandon_push(producer: &mut Producer, len: usize, stage: Stage) -> Result<bool> {
    let Some(mut slot) = producer.reserve(len)? else {
        return Ok(false);
    };
    if stage != Stage::Reserved {
        slot.write_headers();
    }
    if stage == Stage::Partial {
        slot.put(&vec![0xAB; len / 2]);
    }
    Ok(true)
}
