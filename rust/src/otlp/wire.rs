//! A zero-copy reader of the protobuf wire format over `&[u8]`.
//!
//! It yields `(field number, value)` pairs; length-delimited values are sub-slices of the input, so
//! strings, bytes and nested messages are never copied. Every read is bounds-checked: truncated or
//! malformed input is a `DecodeError`, never a panic. Groups (wire types 3/4, unused by OTLP) are
//! rejected.

use crate::error::{bail, DecodeError, Result};

#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// A length-delimited value: string, bytes or nested message.
    #[inline(always)]
    pub fn bytes(self, what: &str) -> Result<&'a [u8]> {
        match self {
            Value::Len(b) => Ok(b),
            _ => Err(wrong_type(what, "a length-delimited")),
        }
    }

    /// A UTF-8 string.
    #[inline(always)]
    pub fn str(self, what: &str) -> Result<&'a [u8]> {
        let b = self.bytes(what)?;
        if !is_utf8(b) {
            return Err(invalid_utf8(what));
        }
        Ok(b)
    }

    /// A varint (int32/int64/uint32/uint64/bool/enum).
    #[inline(always)]
    pub fn varint(self, what: &str) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(wrong_type(what, "a varint")),
        }
    }

    /// A fixed64/sfixed64 (as raw bits).
    #[inline(always)]
    pub fn fixed64(self, what: &str) -> Result<u64> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(wrong_type(what, "a 64-bit")),
        }
    }

    /// A fixed32.
    #[inline(always)]
    pub fn fixed32(self, what: &str) -> Result<u32> {
        match self {
            Value::Fixed32(v) => Ok(v),
            _ => Err(wrong_type(what, "a 32-bit")),
        }
    }

    #[inline(always)]
    pub fn double(self, what: &str) -> Result<f64> {
        self.fixed64(what).map(f64::from_bits)
    }

    /// A uint32 varint; larger values are truncated as protobuf does.
    #[inline(always)]
    pub fn uint32(self, what: &str) -> Result<u32> {
        self.varint(what).map(|v| v as u32)
    }
}

#[cold]
#[inline(never)]
fn wrong_type(what: &str, want: &str) -> DecodeError {
    DecodeError(format!("{what}: expected {want} field"))
}

#[cold]
#[inline(never)]
fn invalid_utf8(what: &str) -> DecodeError {
    DecodeError(format!("{what}: invalid UTF-8"))
}

#[cold]
#[inline(never)]
fn error(msg: String) -> DecodeError {
    DecodeError(msg)
}

/// UTF-8 validation with a fast path for the common all-ASCII short string.
#[inline(always)]
pub fn is_utf8(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        acc |= u64::from_le_bytes(c.try_into().unwrap());
    }
    let mut tail = 0u8;
    for &c in chunks.remainder() {
        tail |= c;
    }
    if acc & 0x8080_8080_8080_8080 == 0 && tail < 0x80 {
        return true;
    }
    std::str::from_utf8(b).is_ok()
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline(always)]
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64> {
        let buf = self.buf;
        let pos = self.pos;
        if let Some(&b) = buf.get(pos) {
            if b < 0x80 {
                self.pos = pos + 1;
                return Ok(b as u64);
            }
            if let Some(&b2) = buf.get(pos + 1) {
                if b2 < 0x80 {
                    self.pos = pos + 2;
                    return Ok((b & 0x7f) as u64 | (b2 as u64) << 7);
                }
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64> {
        let buf = self.buf;
        let mut pos = self.pos;
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = buf.get(pos) else {
                return Err(error("truncated varint".into()));
            };
            pos += 1;
            if shift == 63 && b > 1 {
                return Err(error("varint overflows 64 bits".into()));
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                self.pos = pos;
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(error("varint longer than 10 bytes".into()));
            }
        }
    }

    /// The next field, or `None` at the end of the message.
    #[inline(always)]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u32::MAX as u64 >> 3 {
            return Err(error(format!("invalid field number {field}")));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let Some(b) = self.buf.get(self.pos..self.pos + 8) else {
                    return Err(error("truncated 64-bit field".into()));
                };
                self.pos += 8;
                Value::Fixed64(u64::from_le_bytes(b.try_into().unwrap()))
            }
            2 => {
                let len = self.varint()?;
                let rest = self.buf.len() - self.pos;
                if len > rest as u64 {
                    return Err(error(format!(
                        "truncated length-delimited field ({len} bytes declared, {rest} left)"
                    )));
                }
                let start = self.pos;
                self.pos += len as usize;
                Value::Len(&self.buf[start..self.pos])
            }
            5 => {
                let Some(b) = self.buf.get(self.pos..self.pos + 4) else {
                    return Err(error("truncated 32-bit field".into()));
                };
                self.pos += 4;
                Value::Fixed32(u32::from_le_bytes(b.try_into().unwrap()))
            }
            w => return Err(error(format!("unsupported wire type {w}"))),
        };
        Ok(Some((field as u32, value)))
    }
}

/// Calls `f` for each element of a repeated fixed64/double field, packed or not.
#[inline]
pub fn for_each_fixed64(v: Value<'_>, what: &str, mut f: impl FnMut(u64)) -> Result<()> {
    match v {
        Value::Fixed64(x) => f(x),
        Value::Len(b) => {
            if b.len() % 8 != 0 {
                bail!("{what}: packed 64-bit array of {} bytes", b.len());
            }
            for c in b.chunks_exact(8) {
                f(u64::from_le_bytes(c.try_into().unwrap()));
            }
        }
        _ => bail!("{what}: expected 64-bit values"),
    }
    Ok(())
}

/// Calls `f` for each element of a repeated varint field, packed or not.
#[inline]
pub fn for_each_varint(v: Value<'_>, what: &str, mut f: impl FnMut(u64)) -> Result<()> {
    match v {
        Value::Varint(x) => f(x),
        Value::Len(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                f(r.varint()?);
            }
        }
        _ => bail!("{what}: expected varint values"),
    }
    Ok(())
}

/// Zigzag-decodes a sint32.
#[inline]
pub fn sint32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

// --- encoding, used by the JSON transcoder and by tests ------------------------------------------

#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, ((field as u64) << 3) | wire as u64);
}

pub fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

pub fn put_fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn put_fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    put_key(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_wire_types() {
        let mut b = Vec::new();
        put_varint_field(&mut b, 1, 300);
        put_fixed64(&mut b, 2, 7);
        put_bytes(&mut b, 3, b"abc");
        put_fixed32(&mut b, 4, 9);
        let mut r = Reader::new(&b);
        assert!(matches!(r.next().unwrap(), Some((1, Value::Varint(300)))));
        assert!(matches!(r.next().unwrap(), Some((2, Value::Fixed64(7)))));
        assert!(matches!(r.next().unwrap(), Some((3, Value::Len(b"abc")))));
        assert!(matches!(r.next().unwrap(), Some((4, Value::Fixed32(9)))));
        assert!(r.next().unwrap().is_none());
    }

    #[test]
    fn truncation_is_an_error() {
        let mut b = Vec::new();
        put_bytes(&mut b, 3, b"abcdef");
        for n in 1..b.len() {
            let mut r = Reader::new(&b[..n]);
            assert!(r.next().is_err(), "prefix {n}");
        }
        assert!(Reader::new(&[0xff; 11]).next().is_err());
        assert!(Reader::new(&[0x0b]).next().is_err()); // group start
    }

    #[test]
    fn padded_varints_are_accepted() {
        // The JSON transcoder writes lengths as 5-byte varints.
        let b = [0x0a, 0x83, 0x80, 0x80, 0x80, 0x00, b'a', b'b', b'c'];
        assert!(matches!(
            Reader::new(&b).next().unwrap(),
            Some((1, Value::Len(b"abc")))
        ));
    }
}
