//! Rendering of OTLP `AnyValue`s into text: the values of the `Map(String, String)` attribute
//! columns and the log `Body`.
//!
//! The rendering is lossless for the value and tells the kinds apart:
//!
//! | AnyValue        | text                                                                 |
//! |-----------------|----------------------------------------------------------------------|
//! | string          | as is                                                                |
//! | bool            | `true` / `false`                                                     |
//! | int             | decimal (`-42`)                                                      |
//! | double          | shortest round-trip form, always with a `.` or exponent: `1.5`, `2.0`, `1e300`, `NaN`, `Infinity`, `-Infinity` |
//! | bytes           | base64, standard alphabet, padded                                    |
//! | array           | JSON array of the elements                                           |
//! | kvlist          | JSON object of the entries (in the order sent)                       |
//! | empty (no value)| the empty string                                                     |
//!
//! Inside arrays and kvlists the elements are JSON-typed: strings quoted and escaped, ints and
//! doubles as JSON numbers (non-finite doubles as the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, as proto3 JSON writes them), booleans, bytes as base64 strings, empty values as
//! `null`, nested arrays and kvlists recursively. Nesting deeper than [`MAX_DEPTH`] is a
//! `DecodeError` (no unbounded recursion on hostile input). The deprecated-for-profiles
//! `string_value_strindex` renders as the empty string.

use base64::Engine as _;

use crate::error::{bail, Result};
use crate::otlp::wire::{is_utf8, Reader, Value};

/// Deepest array/kvlist nesting accepted in one AnyValue.
pub const MAX_DEPTH: usize = 64;

/// The set field of an AnyValue (the last one wins, as protobuf merges a oneof), if any.
#[inline]
fn oneof(msg: &[u8]) -> Result<Option<(u32, Value<'_>)>> {
    let mut r = Reader::new(msg);
    let mut last = None;
    while let Some((f, v)) = r.next()? {
        if (1..=8).contains(&f) {
            last = Some((f, v));
        }
    }
    Ok(last)
}

/// Kind letters of attribute values, one byte per map entry in the `*AttributeKinds` columns
/// (README "Attribute values"): what the text alone cannot tell apart (the int 503 vs "503").
pub const KIND_EMPTY: u8 = b'e';

/// The kind letter of an AnyValue message: `s` string, `b` bool, `i` int, `d` double, `a` array,
/// `k` kvlist, `y` bytes, `e` empty.
#[inline]
pub fn kind(msg: &[u8]) -> Result<u8> {
    // Fast path: one field whose tag byte is the whole story (the common case).
    let guess = match msg.first() {
        Some(0x0a) => b's',
        Some(0x10) => b'b',
        Some(0x18) => b'i',
        Some(0x21) => b'd',
        _ => 0,
    };
    if guess != 0 && single_field(msg) {
        return Ok(guess);
    }
    Ok(match oneof(msg)? {
        None => KIND_EMPTY,
        Some((f, _)) => match f {
            1 => b's',
            2 => b'b',
            3 => b'i',
            4 => b'd',
            5 => b'a',
            6 => b'k',
            7 => b'y',
            _ => KIND_EMPTY,
        },
    })
}

/// Whether `msg` is exactly one short field (tag byte, then a one-byte length, a varint or 8 bytes).
#[inline]
fn single_field(msg: &[u8]) -> bool {
    match msg {
        [0x0a, len, rest @ ..] => *len < 0x80 && *len as usize == rest.len(),
        [0x10 | 0x18, rest @ ..] => {
            !rest.is_empty()
                && rest.len() <= 10
                && rest[rest.len() - 1] < 0x80
                && rest[..rest.len() - 1].iter().all(|b| *b >= 0x80)
        }
        [0x21, rest @ ..] => rest.len() == 8,
        _ => false,
    }
}

/// Renders an AnyValue message as text. Strings are returned as a slice of `msg`; everything else
/// is written into `scratch` (cleared first) and returned from there.
#[inline]
pub fn render<'a>(msg: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    // Fast path: the message is exactly one short string_value (tag 0x0a, one-byte length).
    if let [0x0a, len, rest @ ..] = msg {
        if (*len as usize) == rest.len() && *len < 0x80 {
            if !is_utf8(rest) {
                bail!("AnyValue.string_value: invalid UTF-8");
            }
            return Ok(rest);
        }
    }
    scratch.clear();
    // Fast paths for the other common one-field messages: bool, small int, double.
    match msg {
        [0x10, b] if *b < 0x80 => {
            return Ok(if *b != 0 { b"true" } else { b"false" });
        }
        [0x18, rest @ ..] if rest.len() <= 2 && rest.last().is_some_and(|b| *b < 0x80) => {
            let v = match rest {
                [a] => *a as u64,
                [a, b] if *a >= 0x80 => (*a & 0x7f) as u64 | (*b as u64) << 7,
                _ => u64::MAX,
            };
            if v != u64::MAX {
                scratch.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                return Ok(scratch);
            }
        }
        [0x21, rest @ ..] if rest.len() == 8 => {
            put_double(
                scratch,
                f64::from_bits(u64::from_le_bytes(rest.try_into().unwrap())),
            );
            return Ok(scratch);
        }
        _ => {}
    }
    let Some((f, v)) = oneof(msg)? else {
        return Ok(&[]);
    };
    if f == 1 {
        return v.str("AnyValue.string_value");
    }
    render_scalar_or_json(f, v, scratch, 0)?;
    Ok(scratch)
}

fn render_scalar_or_json(f: u32, v: Value<'_>, out: &mut Vec<u8>, depth: usize) -> Result<()> {
    match f {
        2 => out.extend_from_slice(if v.varint("AnyValue.bool_value")? != 0 {
            b"true"
        } else {
            b"false"
        }),
        3 => out.extend_from_slice(
            itoa::Buffer::new()
                .format(v.varint("AnyValue.int_value")? as i64)
                .as_bytes(),
        ),
        4 => put_double(out, v.double("AnyValue.double_value")?),
        5 => json_array(v.bytes("AnyValue.array_value")?, out, depth + 1)?,
        6 => json_object(v.bytes("AnyValue.kvlist_value")?, out, depth + 1)?,
        7 => put_base64(out, v.bytes("AnyValue.bytes_value")?),
        _ => {}
    }
    Ok(())
}

/// Shortest round-trip text of a double, never confusable with an int.
#[inline]
pub fn put_double(out: &mut Vec<u8>, d: f64) {
    if d.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(d).as_bytes());
    } else if d.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if d > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
    }
}

pub fn put_base64(out: &mut Vec<u8>, b: &[u8]) {
    let start = out.len();
    let n = base64::encoded_len(b.len(), true).unwrap_or(0);
    out.resize(start + n, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(b, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
}

/// Appends `s` as a JSON string literal.
pub fn put_json_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

fn check_depth(depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        bail!("AnyValue nested deeper than {MAX_DEPTH} levels");
    }
    Ok(())
}

/// An AnyValue as a JSON value.
fn json_value(msg: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<()> {
    match oneof(msg)? {
        None | Some((8, _)) => out.extend_from_slice(b"null"),
        Some((1, v)) => put_json_string(out, v.str("AnyValue.string_value")?),
        Some((4, v)) => {
            let d = v.double("AnyValue.double_value")?;
            if d.is_finite() {
                put_double(out, d);
            } else {
                out.push(b'"');
                put_double(out, d);
                out.push(b'"');
            }
        }
        Some((7, v)) => {
            out.push(b'"');
            put_base64(out, v.bytes("AnyValue.bytes_value")?);
            out.push(b'"');
        }
        Some((f, v)) => render_scalar_or_json(f, v, out, depth)?,
    }
    Ok(())
}

fn json_array(msg: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<()> {
    json_list(msg, out, depth, (b'[', b']'), |v, out| {
        json_value(v.bytes("ArrayValue.values")?, out, depth)
    })
}

fn json_object(msg: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<()> {
    json_list(msg, out, depth, (b'{', b'}'), |v, out| {
        let (k, val) = key_value(v.bytes("KeyValueList.values")?)?;
        put_json_string(out, k);
        out.push(b':');
        json_value(val, out, depth)
    })
}

/// Writes the `values` (field 1) of an ArrayValue or KeyValueList message with `item`,
/// comma-separated between `open` and `close`.
fn json_list(
    msg: &[u8],
    out: &mut Vec<u8>,
    depth: usize,
    (open, close): (u8, u8),
    mut item: impl FnMut(Value<'_>, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    check_depth(depth)?;
    out.push(open);
    let mut first = true;
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        if f != 1 {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        item(v, out)?;
    }
    out.push(close);
    Ok(())
}

/// Splits a KeyValue message into its key and its AnyValue message (empty when absent).
#[inline]
pub fn key_value(msg: &[u8]) -> Result<(&[u8], &[u8])> {
    // Fast path: key (tag 0x0a) then value (tag 0x12), both with one-byte lengths.
    if let [0x0a, klen, rest @ ..] = msg {
        let klen = *klen as usize;
        if klen < 0x80 && rest.len() > klen + 1 {
            let (key, tail) = rest.split_at(klen);
            if let [0x12, vlen, value @ ..] = tail {
                if (*vlen as usize) == value.len() && *vlen < 0x80 {
                    if !is_utf8(key) {
                        bail!("KeyValue.key: invalid UTF-8");
                    }
                    return Ok((key, value));
                }
            }
        }
    }
    let mut key: &[u8] = &[];
    let mut value: &[u8] = &[];
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => key = v.str("KeyValue.key")?,
            2 => value = v.bytes("KeyValue.value")?,
            _ => {}
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::wire::{put_bytes, put_fixed64, put_varint_field};

    fn any(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b);
        b
    }

    fn text(msg: &[u8]) -> String {
        let mut s = Vec::new();
        String::from_utf8(render(msg, &mut s).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(text(&any(|b| put_bytes(b, 1, b"hi"))), "hi");
        assert_eq!(text(&any(|b| put_varint_field(b, 2, 1))), "true");
        assert_eq!(text(&any(|b| put_varint_field(b, 2, 0))), "false");
        assert_eq!(
            text(&any(|b| put_varint_field(b, 3, (-42i64) as u64))),
            "-42"
        );
        // The one- and two-byte varint fast paths, and a non-minimal two-byte encoding.
        assert_eq!(text(&any(|b| put_varint_field(b, 3, 7))), "7");
        assert_eq!(text(&any(|b| put_varint_field(b, 3, 200))), "200");
        assert_eq!(text(&any(|b| put_varint_field(b, 3, 16383))), "16383");
        assert_eq!(text(&any(|b| put_varint_field(b, 3, 16384))), "16384");
        assert_eq!(text(&[0x18, 0x81, 0x00]), "1");
        assert_eq!(text(&[0x10, 0x02]), "true");
        assert_eq!(text(&any(|b| put_fixed64(b, 4, 2.0f64.to_bits()))), "2.0");
        assert_eq!(text(&any(|b| put_fixed64(b, 4, 1.5f64.to_bits()))), "1.5");
        assert_eq!(
            text(&any(|b| put_fixed64(b, 4, 1e300f64.to_bits()))),
            "1e300"
        );
        assert_eq!(text(&any(|b| put_fixed64(b, 4, f64::NAN.to_bits()))), "NaN");
        assert_eq!(
            text(&any(|b| put_fixed64(b, 4, f64::NEG_INFINITY.to_bits()))),
            "-Infinity"
        );
        assert_eq!(text(&any(|b| put_bytes(b, 7, b"\x00\x01\xff"))), "AAH/");
        assert_eq!(text(&[]), "");
    }

    #[test]
    fn nested() {
        let s = any(|b| put_bytes(b, 1, b"a\"b"));
        let i = any(|b| put_varint_field(b, 3, 7));
        let empty: Vec<u8> = Vec::new();
        let arr = any(|b| {
            put_bytes(b, 1, &s);
            put_bytes(b, 1, &i);
            put_bytes(b, 1, &empty);
        });
        let kv = any(|b| {
            put_bytes(b, 1, b"k");
            put_bytes(b, 2, &any(|b| put_bytes(b, 5, &arr)));
        });
        let list = any(|b| put_bytes(b, 1, &kv));
        assert_eq!(text(&any(|b| put_bytes(b, 5, &arr))), r#"["a\"b",7,null]"#);
        assert_eq!(
            text(&any(|b| put_bytes(b, 6, &list))),
            r#"{"k":["a\"b",7,null]}"#
        );
    }

    #[test]
    fn kinds() {
        let k = |m: &[u8]| kind(m).unwrap() as char;
        assert_eq!(k(&any(|b| put_bytes(b, 1, b"503"))), 's');
        assert_eq!(k(&any(|b| put_varint_field(b, 3, 503))), 'i');
        assert_eq!(k(&any(|b| put_varint_field(b, 3, (-1i64) as u64))), 'i');
        assert_eq!(k(&any(|b| put_varint_field(b, 2, 1))), 'b');
        assert_eq!(k(&any(|b| put_fixed64(b, 4, 2.0f64.to_bits()))), 'd');
        assert_eq!(k(&any(|b| put_bytes(b, 7, b"\x00"))), 'y');
        assert_eq!(k(&any(|b| put_bytes(b, 5, b""))), 'a');
        assert_eq!(k(&any(|b| put_bytes(b, 6, b""))), 'k');
        assert_eq!(k(&[]), 'e');
        // Two fields: the last one wins, as in render.
        let two = any(|b| {
            put_bytes(b, 1, b"x");
            put_varint_field(b, 3, 5);
        });
        assert_eq!(k(&two), 'i');
        assert_eq!(text(&two), "5");
        // A long string takes the slow path.
        assert_eq!(k(&any(|b| put_bytes(b, 1, &[b'a'; 300]))), 's');
    }

    #[test]
    fn depth_is_capped() {
        let mut v = any(|b| put_varint_field(b, 3, 1));
        for _ in 0..1_000 {
            let arr = any(|b| put_bytes(b, 1, &v));
            v = any(|b| put_bytes(b, 5, &arr));
        }
        let mut s = Vec::new();
        let err = render(&v, &mut s).unwrap_err();
        assert!(err.0.contains("nested deeper"), "{err}");
    }
}
