//! One export request body in, Native blocks out: decompression, format, and the table builder of
//! the signal. Buffers (decompressed body, transcoded JSON, every column) live in thread-local
//! decoders reused across requests, so a steady stream of requests allocates only the output
//! blocks.

use std::cell::RefCell;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use crate::error::{bail, DecodeError, Result};
use crate::otlp::json::{self, Request};
use crate::tables::logs::LogsDecoder;
use crate::tables::metrics::MetricsDecoder;
use crate::tables::traces::TracesDecoder;
use crate::tables::{ItemDecoder, Limits, Stats};

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
/// Column buffers of a block bigger than this are dropped after it is encoded.
const KEEP_TABLE_BYTES: usize = 32 << 20;

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

/// What one request decoded into; the rows wait in the thread's table until [`encode_last`].
#[derive(Debug)]
pub struct Summary {
    pub stats: Stats,
    pub table: &'static str,
    pub rows: usize,
    /// Bytes of the Native block (0 when no rows).
    pub block_len: usize,
}

/// Decodes one export request of `signal` into the calling thread's table. The block is then
/// written by [`encode_last`] on the same thread (before the next decode), straight into its final
/// buffer: the bindings write into a new Python `bytes`, so there is one copy and one allocation.
///
/// Every row is `tenant`'s (the `TenantId` column).
pub fn decode_rows(signal: Signal, body: &[u8], opts: &Options, tenant: &[u8]) -> Result<Summary> {
    with_scratch(|s| decode_with(s, signal, body, opts, tenant))
}

/// As [`decode_rows`], with the tenant's limit of active series per metric for metrics (`gate`:
/// a new series over it has its data point refused, counted in `Stats::over_limit`).
pub fn decode_rows_limited(
    signal: Signal,
    body: &[u8],
    opts: &Options,
    tenant: &[u8],
    gate: Option<crate::series_limit::Gate>,
) -> Result<Summary> {
    with_scratch(|s| {
        s.metrics.series_gate = gate;
        let out = decode_with(s, signal, body, opts, tenant);
        s.metrics.series_gate = None;
        out
    })
}

/// Writes the block of the last [`decode_rows`] on this thread into `buf` (`block_len` bytes).
pub fn encode_last(signal: Signal, buf: &mut [u8]) {
    with_scratch(|s| {
        match signal {
            Signal::Traces => encode_table(&mut s.traces, buf),
            Signal::Logs => encode_table(&mut s.logs, buf),
            Signal::Metrics => encode_table(&mut s.metrics, buf),
        }
        Ok(())
    })
    .expect("encode_last after decode_rows on the same thread");
}

fn encode_table<D: ItemDecoder + Default>(d: &mut D, buf: &mut [u8]) {
    d.encode_into(buf);
    // A huge request should not pin its column buffers for the life of the thread.
    if buf.len() > KEEP_TABLE_BYTES {
        *d = D::default();
    }
}

/// Decodes one export request of `signal` into owned blocks of the default tenant (tests, Rust
/// callers).
pub fn decode(signal: Signal, body: &[u8], opts: &Options) -> Result<Output> {
    decode_for(signal, body, opts, crate::tables::DEFAULT_TENANT)
}

/// As [`decode`], every row `tenant`'s.
pub fn decode_for(signal: Signal, body: &[u8], opts: &Options, tenant: &[u8]) -> Result<Output> {
    let summary = decode_rows(signal, body, opts, tenant)?;
    let mut blocks = Vec::new();
    if summary.rows > 0 {
        let mut buf = vec![0; summary.block_len];
        encode_last(signal, &mut buf);
        blocks.push((summary.table, summary.rows, buf));
    }
    Ok(Output {
        stats: summary.stats,
        blocks,
    })
}

fn with_scratch<T>(f: impl FnOnce(&mut Scratch) -> Result<T>) -> Result<T> {
    SCRATCH.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else {
            return Err(DecodeError::new("re-entrant decode on one thread"));
        };
        let s = &mut *guard;
        let out = f(s);
        for buf in [&mut s.inflated, &mut s.json] {
            if buf.capacity() > KEEP_BUFFER_BYTES {
                *buf = Vec::new();
            }
        }
        out
    })
}

fn decode_with(
    s: &mut Scratch,
    signal: Signal,
    body: &[u8],
    opts: &Options,
    tenant: &[u8],
) -> Result<Summary> {
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
    match signal {
        Signal::Traces => decode_table(&mut s.traces, body, limits, tenant),
        Signal::Logs => decode_table(&mut s.logs, body, limits, tenant),
        Signal::Metrics => decode_table(&mut s.metrics, body, limits, tenant),
    }
}

fn decode_table<D: ItemDecoder>(
    d: &mut D,
    body: &[u8],
    limits: &Limits,
    tenant: &[u8],
) -> Result<Summary> {
    d.set_tenant(tenant);
    d.decode(body, limits)?;
    let rows = d.rows();
    Ok(Summary {
        stats: d.take_stats(),
        table: D::TABLE,
        rows,
        block_len: if rows > 0 { d.encoded_len() } else { 0 },
    })
}
