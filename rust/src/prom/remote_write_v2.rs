//! Prometheus remote write 2.0 (`io.prometheus.write.v2.Request`) rewritten as a 1.0
//! `WriteRequest`, which `remote_write.rs` then stores: one storage path for both versions, so a
//! series reads back the same whichever version wrote it.
//!
//! ```text
//! Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//! TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
//!              repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
//!              Metadata metadata = 5; int64 created_timestamp = 6; }
//! Sample     { double value = 1; int64 timestamp = 2; }          // the 1.0 message, as is
//! Exemplar   { repeated uint32 labels_refs = 1; double value = 2; int64 timestamp = 3; }
//! Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//! ```
//!
//! Labels are pairs of references into `symbols`, whose first entry must be the empty string. A
//! series' metadata becomes one 1.0 `MetricMetadata` per metric name and request (family = the
//! series' `__name__`; the type enums are numbered alike). `created_timestamp` has no 1.0
//! counterpart and is not kept. Native histograms are refused, as in 1.0. A reference outside the
//! symbols, an odd number of references or an empty first symbol is a whole-request error.

use std::collections::HashSet;

use crate::error::{bail, Result};
use crate::otlp::wire::{
    for_each_varint, put_bytes, put_fixed64, put_key, put_varint, put_varint_field, Reader,
};

/// What the request held, for the `X-Prometheus-Remote-Write-*-Written` reply headers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub samples: u64,
    pub exemplars: u64,
}

/// Rewrites the (decompressed) 2.0 request `msg` as a 1.0 `WriteRequest` in `out` (cleared first),
/// failing once `out` would exceed `max_out` bytes: interned symbols expand, and a small request
/// must not become an unbounded one.
pub fn to_v1(msg: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<Written> {
    out.clear();
    let mut symbols: Vec<&[u8]> = Vec::new();
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        if f == 4 {
            symbols.push(v.str("Request.symbols")?);
        }
    }
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        bail!("Request.symbols: the first symbol must be the empty string");
    }
    let mut c = Converter {
        symbols,
        refs: Vec::new(),
        series: Vec::new(),
        part: Vec::new(),
        families: HashSet::new(),
        written: Written::default(),
    };
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        if f == 5 {
            c.series(v.bytes("Request.timeseries")?, out)?;
            if out.len() > max_out {
                bail!(
                    "request expands to more than {max_out} bytes; send fewer samples per request"
                );
            }
        }
    }
    Ok(c.written)
}

struct Converter<'a> {
    symbols: Vec<&'a [u8]>,
    refs: Vec<u32>,
    series: Vec<u8>,
    part: Vec<u8>,
    families: HashSet<&'a [u8]>,
    written: Written,
}

impl<'a> Converter<'a> {
    fn symbol(&self, i: u32, what: &str) -> Result<&'a [u8]> {
        match self.symbols.get(i as usize) {
            Some(s) => Ok(s),
            None => bail!(
                "{what}: symbol reference {i} outside the {} symbols",
                self.symbols.len()
            ),
        }
    }

    /// Appends 1.0 `Label` messages (field `field` of `dst`) for `refs`; returns `__name__`.
    fn labels(&self, refs: &[u32], field: u32, dst: &mut Vec<u8>, what: &str) -> Result<&'a [u8]> {
        if refs.len() % 2 != 0 {
            bail!("{what}: an odd number of label references ({})", refs.len());
        }
        let mut name: &[u8] = &[];
        let mut label = Vec::new();
        for pair in refs.chunks_exact(2) {
            let (k, v) = (self.symbol(pair[0], what)?, self.symbol(pair[1], what)?);
            if k == b"__name__" {
                name = v;
            }
            label.clear();
            put_bytes(&mut label, 1, k);
            put_bytes(&mut label, 2, v);
            put_bytes(dst, field, &label);
        }
        Ok(name)
    }

    fn read_refs(&mut self, msg: &[u8], field: u32, what: &str) -> Result<Vec<u32>> {
        let mut refs = std::mem::take(&mut self.refs);
        refs.clear();
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == field {
                for_each_varint(v, what, |x| refs.push(x as u32))?;
            }
        }
        Ok(refs)
    }

    fn series(&mut self, msg: &'a [u8], out: &mut Vec<u8>) -> Result<()> {
        let refs = self.read_refs(msg, 1, "TimeSeries.labels_refs")?;
        let mut series = std::mem::take(&mut self.series);
        series.clear();
        let name = self.labels(&refs, 1, &mut series, "TimeSeries.labels_refs");
        self.refs = refs;
        let name = name?;
        let mut metadata: Option<&'a [u8]> = None;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                2 => {
                    // A 2.0 Sample is a 1.0 Sample (fields 1 and 2; a later field is skipped there).
                    put_bytes(&mut series, 2, v.bytes("TimeSeries.samples")?);
                    self.written.samples += 1;
                }
                3 => bail!("native histograms are not supported (series with histograms sent)"),
                4 => {
                    self.exemplar(v.bytes("TimeSeries.exemplars")?, &mut series)?;
                    self.written.exemplars += 1;
                }
                5 => metadata = Some(v.bytes("TimeSeries.metadata")?),
                _ => {}
            }
        }
        put_bytes(out, 1, &series);
        self.series = series;
        if let Some(m) = metadata {
            if !name.is_empty() && self.families.insert(name) {
                self.metadata(m, name, out)?;
            }
        }
        Ok(())
    }

    fn exemplar(&mut self, msg: &[u8], series: &mut Vec<u8>) -> Result<()> {
        let refs = self.read_refs(msg, 1, "Exemplar.labels_refs")?;
        let mut part = std::mem::take(&mut self.part);
        part.clear();
        let res = self.labels(&refs, 1, &mut part, "Exemplar.labels_refs");
        self.refs = refs;
        res?;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                2 => put_fixed64(&mut part, 2, v.fixed64("Exemplar.value")?),
                3 => put_varint_field(&mut part, 3, v.varint("Exemplar.timestamp")?),
                _ => {}
            }
        }
        put_bytes(series, 3, &part);
        self.part = part;
        Ok(())
    }

    fn metadata(&mut self, msg: &[u8], family: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (mut kind, mut help, mut unit) = (0u64, 0u32, 0u32);
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => kind = v.varint("Metadata.type")?,
                3 => help = v.uint32("Metadata.help_ref")?,
                4 => unit = v.uint32("Metadata.unit_ref")?,
                _ => {}
            }
        }
        let (help, unit) = (
            self.symbol(help, "Metadata.help_ref")?,
            self.symbol(unit, "Metadata.unit_ref")?,
        );
        if kind == 0 && help.is_empty() && unit.is_empty() {
            return Ok(());
        }
        let mut m = std::mem::take(&mut self.part);
        m.clear();
        put_varint_field(&mut m, 1, kind);
        put_bytes(&mut m, 2, family);
        put_bytes(&mut m, 4, help);
        put_bytes(&mut m, 5, unit);
        put_key(out, 3, 2);
        put_varint(out, m.len() as u64);
        out.extend_from_slice(&m);
        self.part = m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(xs: &[u32]) -> Vec<u8> {
        let mut packed = Vec::new();
        for &x in xs {
            put_varint(&mut packed, x as u64);
        }
        packed
    }

    fn sample(v: f64, ms: i64) -> Vec<u8> {
        let mut s = Vec::new();
        put_fixed64(&mut s, 1, v.to_bits());
        put_varint_field(&mut s, 2, ms as u64);
        s
    }

    /// symbols: "", __name__, up, job, api, help text, seconds, trace_id, abc
    fn request() -> Vec<u8> {
        let mut req = Vec::new();
        for s in [
            "",
            "__name__",
            "up",
            "job",
            "api",
            "Whether the target is up.",
            "seconds",
            "trace_id",
            "abc",
        ] {
            put_bytes(&mut req, 4, s.as_bytes());
        }
        let mut ts = Vec::new();
        put_bytes(&mut ts, 1, &refs(&[1, 2, 3, 4]));
        put_bytes(&mut ts, 2, &sample(1.0, 1000));
        put_bytes(&mut ts, 2, &sample(f64::NAN, -5));
        let mut ex = Vec::new();
        put_bytes(&mut ex, 1, &refs(&[7, 8]));
        put_fixed64(&mut ex, 2, 0.5f64.to_bits());
        put_varint_field(&mut ex, 3, 990);
        put_bytes(&mut ts, 4, &ex);
        let mut md = Vec::new();
        put_varint_field(&mut md, 1, 2);
        put_varint_field(&mut md, 3, 5);
        put_varint_field(&mut md, 4, 6);
        put_bytes(&mut ts, 5, &md);
        put_bytes(&mut req, 5, &ts);
        put_bytes(&mut req, 5, &ts); // the same family twice: one metadata entry
        req
    }

    #[test]
    fn becomes_the_same_write_request_in_1_0() {
        let mut out = Vec::new();
        let w = to_v1(&request(), &mut out, 1 << 20).unwrap();
        assert_eq!(
            w,
            Written {
                samples: 4,
                exemplars: 2
            }
        );
        let mut series = 0;
        let mut metadata = Vec::new();
        let mut r = Reader::new(&out);
        while let Some((f, v)) = r.next().unwrap() {
            match f {
                1 => {
                    series += 1;
                    let (mut labels, mut samples, mut exemplars) = (Vec::new(), 0, 0);
                    let mut r = Reader::new(v.bytes("").unwrap());
                    while let Some((f, v)) = r.next().unwrap() {
                        match f {
                            1 => labels.push(v.bytes("").unwrap().to_vec()),
                            2 => samples += 1,
                            3 => exemplars += 1,
                            _ => panic!("field {f}"),
                        }
                    }
                    let mut want = Vec::new();
                    for (k, val) in [("__name__", "up"), ("job", "api")] {
                        let mut l = Vec::new();
                        put_bytes(&mut l, 1, k.as_bytes());
                        put_bytes(&mut l, 2, val.as_bytes());
                        want.push(l);
                    }
                    assert_eq!(labels, want);
                    assert_eq!((samples, exemplars), (2, 1));
                }
                3 => metadata.push(v.bytes("").unwrap().to_vec()),
                _ => panic!("field {f}"),
            }
        }
        assert_eq!(series, 2);
        let mut want = Vec::new();
        put_varint_field(&mut want, 1, 2);
        put_bytes(&mut want, 2, b"up");
        put_bytes(&mut want, 4, b"Whether the target is up.");
        put_bytes(&mut want, 5, b"seconds");
        assert_eq!(metadata, vec![want]);
    }

    #[test]
    fn bad_references_are_errors() {
        let bad = |ts: Vec<u8>, symbols: &[&str]| {
            let mut req = Vec::new();
            for s in symbols {
                put_bytes(&mut req, 4, s.as_bytes());
            }
            put_bytes(&mut req, 5, &ts);
            to_v1(&req, &mut Vec::new(), 1 << 20).unwrap_err().0
        };
        let mut ts = Vec::new();
        put_bytes(&mut ts, 1, &refs(&[1, 9]));
        assert!(bad(ts, &["", "__name__"]).contains("symbol reference 9 outside the 2 symbols"));
        let mut ts = Vec::new();
        put_bytes(&mut ts, 1, &refs(&[1]));
        assert!(bad(ts, &["", "__name__"]).contains("odd number of label references"));
        let mut ts = Vec::new();
        put_bytes(&mut ts, 1, &refs(&[1, 0]));
        assert!(bad(ts, &["x", "__name__"]).contains("first symbol must be the empty string"));
        let mut ts = Vec::new();
        put_bytes(&mut ts, 3, b"");
        assert!(bad(ts, &[""]).contains("native histograms"));
    }

    #[test]
    fn expansion_is_bounded() {
        let mut req = Vec::new();
        put_bytes(&mut req, 4, b"");
        put_bytes(&mut req, 4, &[b'x'; 1000]);
        let mut ts = Vec::new();
        put_bytes(&mut ts, 1, &refs(&[1, 1].repeat(100)));
        for _ in 0..10 {
            put_bytes(&mut req, 5, &ts);
        }
        let e = to_v1(&req, &mut Vec::new(), 100_000).unwrap_err().0;
        assert!(e.contains("expands to more than 100000 bytes"), "{e}");
    }
}
