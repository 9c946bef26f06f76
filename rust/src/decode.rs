//! One export request body in, Native blocks out: decompression, format, and the table builder of
//! the signal. Buffers (decompressed body, transcoded JSON, every column) live in thread-local
//! decoders reused across requests, so a steady stream of requests allocates only the output
//! blocks.

use std::cell::RefCell;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::error::{bail, DecodeError, Result};
use crate::otlp::json::{self, Request};
use crate::tables::logs::{self, LogsDecoder};
use crate::tables::metrics::{self, MetricsDecoder};
use crate::tables::traces::{self, TracesDecoder};
use crate::tables::{Limits, Stats};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Deflate,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub format: Format,
    pub compression: Compression,
    /// Largest decompressed body accepted (gzip bombs stop here).
    pub max_decompressed_bytes: usize,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            format: Format::Protobuf,
            compression: Compression::None,
            max_decompressed_bytes: 64 << 20,
            limits: Limits {
                max_attributes: 1024,
            },
        }
    }
}

/// The result of one decode.
#[derive(Debug)]
pub struct Output {
    pub stats: Stats,
    /// (table, rows, Native block); no block when no row was written.
    pub blocks: Vec<(&'static str, usize, Vec<u8>)>,
}

impl Output {
    pub fn nbytes(&self) -> usize {
        self.blocks.iter().map(|b| b.2.len()).sum()
    }
}

#[derive(Default)]
struct Scratch {
    inflated: Vec<u8>,
    json: Vec<u8>,
    traces: TracesDecoder,
    logs: LogsDecoder,
    metrics: MetricsDecoder,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Buffers bigger than this are dropped after use instead of kept for the next request.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

fn inflate(body: &[u8], compression: Compression, max: usize, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    let limit = max as u64 + 1;
    let res = match compression {
        Compression::None => return Ok(()),
        Compression::Gzip => MultiGzDecoder::new(body).take(limit).read_to_end(out),
        Compression::Deflate => {
            // HTTP "deflate" is zlib-wrapped (RFC 9110), but some senders send raw deflate.
            if body.len() >= 2
                && (u16::from_be_bytes([body[0], body[1]]) % 31 == 0)
                && body[0] & 0x0f == 8
            {
                ZlibDecoder::new(body).take(limit).read_to_end(out)
            } else {
                DeflateDecoder::new(body).take(limit).read_to_end(out)
            }
        }
    };
    if let Err(e) = res {
        bail!(
            "invalid {} body: {e}",
            if compression == Compression::Gzip {
                "gzip"
            } else {
                "deflate"
            }
        );
    }
    if out.len() > max {
        bail!("decompressed body exceeds {max} bytes");
    }
    Ok(())
}

/// Decodes one export request of `signal`.
pub fn decode(signal: Signal, body: &[u8], opts: &Options) -> Result<Output> {
    SCRATCH.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else {
            return Err(DecodeError::new("re-entrant decode on one thread"));
        };
        let s = &mut *guard;
        let out = decode_with(s, signal, body, opts);
        for buf in [&mut s.inflated, &mut s.json] {
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
        }
        out
    })
}

fn decode_with(s: &mut Scratch, signal: Signal, body: &[u8], opts: &Options) -> Result<Output> {
    let mut body = body;
    if opts.compression != Compression::None {
        inflate(
            body,
            opts.compression,
            opts.max_decompressed_bytes,
            &mut s.inflated,
        )?;
        body = &s.inflated;
    } else if body.len() > opts.max_decompressed_bytes {
        bail!("body exceeds {} bytes", opts.max_decompressed_bytes);
    }
    if opts.format == Format::Json {
        let request = match signal {
            Signal::Traces => Request::Traces,
            Signal::Logs => Request::Logs,
            Signal::Metrics => Request::Metrics,
        };
        json::transcode(body, request, &mut s.json)?;
        body = &s.json;
    }
    let limits = &opts.limits;
    let (stats, table, rows, block) = match signal {
        Signal::Traces => {
            s.traces.decode(body, limits)?;
            let t = &s.traces.table;
            (
                std::mem::take(&mut s.traces.stats),
                traces::TABLE,
                t.rows,
                (t.rows > 0).then(|| t.encode()),
            )
        }
        Signal::Logs => {
            s.logs.decode(body, limits)?;
            let t = &s.logs.table;
            (
                std::mem::take(&mut s.logs.stats),
                logs::TABLE,
                t.rows,
                (t.rows > 0).then(|| t.encode()),
            )
        }
        Signal::Metrics => {
            s.metrics.decode(body, limits)?;
            let t = &s.metrics.table;
            (
                std::mem::take(&mut s.metrics.stats),
                metrics::TABLE,
                t.rows,
                (t.rows > 0).then(|| t.encode()),
            )
        }
    };
    Ok(Output {
        stats,
        blocks: block.map(|b| vec![(table, rows, b)]).unwrap_or_default(),
    })
}
