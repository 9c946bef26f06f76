//! `decode_traces`, `decode_logs`, `decode_metrics`, `Decoded` and `DecodeError`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::decode::{self, Compression, Format, Options, Signal};
use crate::prom::remote_write::RemoteWriteDecoder;
use crate::tables::Limits;

use super::series_limit::SeriesLimiter;
use crate::series_limit::Gate;

pyo3::create_exception!(
    otelingest._native,
    DecodeError,
    PyValueError,
    "Malformed, oversize or hostile export request; str(e) is a short reason (-> HTTP 400)."
);

/// The blocks and counts of one decoded export request.
#[pyclass(frozen, get_all, module = "otelingest._native")]
pub struct Decoded {
    /// Spans / log records / metric data points placed in blocks.
    items: u64,
    /// Items dropped as invalid or refused (OTLP partial success), 0 normally.
    rejected: u64,
    /// Of `rejected`, items of new series over the tenant's series limit.
    over_limit: u64,
    /// Why the first rejected item was dropped.
    rejection_reason: Option<String>,
    /// Total bytes of all blocks.
    nbytes: u64,
    /// (table name, rows, Native block).
    blocks: Py<PyList>,
    /// Remote write: the (series, day) keys whose labels these blocks write (`remember_series`).
    series_keys: Vec<u64>,
}

#[pymethods]
impl Decoded {
    /// Called once the blocks are in a ring: the remote-written series they carry labels for are
    /// not written again by this process (no-op for OTLP).
    fn stored(&self) {
        crate::prom::remote_write::remember_series(&self.series_keys);
    }

    fn __repr__(&self) -> String {
        format!(
            "Decoded(items={}, rejected={}, nbytes={}, rejection_reason={:?})",
            self.items, self.rejected, self.nbytes, self.rejection_reason
        )
    }
}

fn options(
    format: &str,
    compression: Option<&str>,
    max_decompressed_bytes: usize,
    max_attributes: usize,
) -> PyResult<Options> {
    let format = match format {
        "protobuf" => Format::Protobuf,
        "json" => Format::Json,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown format {other:?} (protobuf or json)"
            )))
        }
    };
    // Content-Encoding values are case-insensitive (RFC 9110); x-gzip is gzip.
    let compression = match compression
        .map(|c| c.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => Compression::None,
        Some("gzip" | "x-gzip") => Compression::Gzip,
        Some("deflate") => Compression::Deflate,
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown compression {other:?} (gzip or deflate)"
            )))
        }
    };
    Ok(Options {
        format,
        compression,
        max_decompressed_bytes,
        limits: Limits { max_attributes },
    })
}

fn run(
    py: Python<'_>,
    signal: Signal,
    body: &[u8],
    opts: Options,
    tenant: &str,
    gate: Option<Gate>,
) -> PyResult<Decoded> {
    let summary = py
        .detach(|| decode::decode_rows_limited(signal, body, &opts, tenant.as_bytes(), gate))
        .map_err(|e| DecodeError::new_err(e.0))?;
    let blocks = PyList::empty(py);
    if summary.rows > 0 {
        let block = new_bytes(py, summary.block_len, |buf| {
            py.detach(|| decode::encode_last(signal, buf))
        })?;
        let t = PyTuple::new(
            py,
            [
                summary.table.into_pyobject(py)?.into_any(),
                summary.rows.into_pyobject(py)?.into_any(),
                block.into_any(),
            ],
        )?;
        blocks.append(t)?;
    }
    Ok(Decoded {
        items: summary.stats.items,
        rejected: summary.stats.rejected,
        over_limit: summary.stats.over_limit,
        rejection_reason: summary.stats.rejection_reason,
        nbytes: summary.block_len as u64,
        blocks: blocks.unbind(),
        series_keys: Vec::new(),
    })
}

/// A new `bytes` of `len` bytes, filled by `fill` (which must write every byte).
fn new_bytes<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> PyResult<Bound<'py, PyBytes>> {
    let Ok(size) = pyo3::ffi::Py_ssize_t::try_from(len) else {
        return Err(pyo3::exceptions::PyOverflowError::new_err(
            "block too large",
        ));
    };
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new reference to a bytes object with an
    // uninitialised buffer of n bytes (or NULL with an exception set). Nobody else can see the
    // object until we return it, so writing its buffer (even with the GIL released) is sound.
    unsafe {
        let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let obj = Bound::from_owned_ptr_or_err(py, ptr)?;
        let data = pyo3::ffi::PyBytes_AsString(ptr) as *mut u8;
        // The buffer is zeroed first so the slice is initialised memory (the cost is small next to
        // the copy, and `fill` may then be plain safe code).
        std::ptr::write_bytes(data, 0, len);
        fill(std::slice::from_raw_parts_mut(data, len));
        Ok(obj.cast_into_unchecked())
    }
}

macro_rules! decode_fn {
    ($name:ident, $signal:expr) => {
        /// Decodes one OTLP export request body into ClickHouse Native blocks (GIL released);
        /// every row's `TenantId` is `tenant` (validated by the caller, otelingest.tenancy).
        /// Metrics: a data point of a new series over `max_series_per_metric` (counted in
        /// `series_limiter`) is refused (`over_limit`); traces and logs ignore the limit.
        #[pyfunction]
        #[pyo3(signature = (body, *, format = "protobuf", compression = None, max_decompressed_bytes = 64 << 20, max_attributes = 1024, tenant = "default", series_limiter = None, max_series_per_metric = 0))]
        #[allow(clippy::too_many_arguments)]
        fn $name(
            py: Python<'_>,
            body: PyBackedBytes,
            format: &str,
            compression: Option<&str>,
            max_decompressed_bytes: usize,
            max_attributes: usize,
            tenant: &str,
            series_limiter: Option<Py<SeriesLimiter>>,
            max_series_per_metric: usize,
        ) -> PyResult<Decoded> {
            let opts = options(format, compression, max_decompressed_bytes, max_attributes)?;
            let gate = Gate::new(series_limiter.map(|l| l.get().inner.clone()), max_series_per_metric, tenant.as_bytes());
            run(py, $signal, &body, opts, tenant, gate)
        }
    };
}

decode_fn!(decode_traces, Signal::Traces);
decode_fn!(decode_logs, Signal::Logs);
decode_fn!(decode_metrics, Signal::Metrics);

thread_local! {
    static REMOTE_WRITE: std::cell::RefCell<RemoteWriteDecoder> =
        std::cell::RefCell::new(RemoteWriteDecoder::default());
}

/// Decodes one Prometheus remote-write 1.0 body (`WriteRequest`, snappy block format unless
/// `compression` is None/"identity") into Native blocks of otel_prom_samples, otel_prom_series,
/// otel_metrics_metadata and otel_metrics_exemplars (GIL released). `items` counts samples.
/// Whether a remote-write body is snappy-compressed: `compression` "snappy", or None/"identity".
pub(super) fn snappy_compression(compression: Option<&str>) -> PyResult<bool> {
    match compression
        .map(|c| c.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => Ok(false),
        Some("snappy") => Ok(true),
        Some(other) => Err(PyValueError::new_err(format!(
            "unknown compression {other:?} (snappy)"
        ))),
    }
}

#[pyfunction]
#[pyo3(signature = (body, *, compression = Some("snappy"), max_decompressed_bytes = 64 << 20, max_attributes = 1024, tenant = "default", series_limiter = None, max_series_per_metric = 0))]
#[allow(clippy::too_many_arguments)]
fn decode_remote_write(
    py: Python<'_>,
    body: PyBackedBytes,
    compression: Option<&str>,
    max_decompressed_bytes: usize,
    max_attributes: usize,
    tenant: &str,
    series_limiter: Option<Py<SeriesLimiter>>,
    max_series_per_metric: usize,
) -> PyResult<Decoded> {
    let limiter = series_limiter.map(|l| l.get().inner.clone());
    let snappy = snappy_compression(compression)?;
    let limits = Limits { max_attributes };
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0);
    let (stats, blocks, series_keys) = py
        .detach(|| {
            REMOTE_WRITE.with(|cell| {
                let Ok(mut d) = cell.try_borrow_mut() else {
                    return Err(crate::error::DecodeError::new(
                        "re-entrant decode on one thread",
                    ));
                };
                d.set_tenant(tenant.as_bytes());
                d.set_series_limit(limiter, max_series_per_metric, tenant.as_bytes());
                let res = d.decode(&body, snappy, max_decompressed_bytes, &limits, now_ns);
                let out = res.map(|()| (d.take_stats(), d.blocks(), d.new_series.clone()));
                // A huge request should not pin its column buffers for the life of the thread.
                if d.samples.encoded_len() > 32 << 20 {
                    *d = RemoteWriteDecoder::default(); // (the tenant is set again before each decode)
                }
                out
            })
        })
        .map_err(|e| DecodeError::new_err(e.0))?;
    let list = PyList::empty(py);
    let mut nbytes = 0u64;
    for (table, rows, block) in blocks {
        nbytes += block.len() as u64;
        let t = PyTuple::new(
            py,
            [
                table.into_pyobject(py)?.into_any(),
                rows.into_pyobject(py)?.into_any(),
                PyBytes::new(py, &block).into_any(),
            ],
        )?;
        list.append(t)?;
    }
    Ok(Decoded {
        items: stats.items,
        rejected: stats.rejected,
        over_limit: stats.over_limit,
        rejection_reason: stats.rejection_reason,
        nbytes,
        blocks: list.unbind(),
        series_keys,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_remote_write, m)?)?;
    m.add("DecodeError", m.py().get_type::<DecodeError>())?;
    m.add_class::<Decoded>()?;
    m.add_function(wrap_pyfunction!(decode_traces, m)?)?;
    m.add_function(wrap_pyfunction!(decode_logs, m)?)?;
    m.add_function(wrap_pyfunction!(decode_metrics, m)?)?;
    Ok(())
}
