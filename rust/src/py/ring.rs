//! `otelingest._native.Ring`: the Python face of [`crate::ring`].
//!
//! One class plays both roles. Producer calls (`try_push`, `try_push_parts`) may come from any
//! thread and release the GIL while copying. The consumer role (`read`, `release`, `rewind`) is
//! taken on the first such call: it locks the ring file so a second consumer process fails with
//! `RingError`, and starts reading at the release cursor.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ring::{self, Consumer, ConsumerOptions, RingError as CoreError};

pyo3::create_exception!(
    otelingest._native,
    RingError,
    PyValueError,
    "The ring file is corrupt or incompatible, or another process already consumes the ring."
);
pyo3::create_exception!(
    otelingest._native,
    RecordTooLarge,
    PyValueError,
    "The record can never fit in this ring (larger than Ring.max_record); not the same as full."
);

fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::Io(e) => e.into(),
        CoreError::TooLarge { .. } => RecordTooLarge::new_err(e.to_string()),
        CoreError::Invalid(m) => PyValueError::new_err(m),
        CoreError::Corrupt(_) | CoreError::ConsumerBusy => RingError::new_err(e.to_string()),
    }
}

fn closed() -> PyErr {
    PyValueError::new_err("ring is closed")
}

fn duration(name: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds, got {secs}"
        ))
    })
}

/// A contiguous view of any bytes-like object (bytes, bytearray, memoryview, array, ...).
fn contiguous(obj: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    let buf = PyUntypedBuffer::get(obj)?;
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "ring records must be C-contiguous buffers",
        ));
    }
    Ok(buf)
}

/// The bytes of an exported buffer.
///
/// # Safety
/// `buf` must be C-contiguous (checked by [`contiguous`]); the slice is valid while `buf` lives.
/// If another thread mutates a mutable exporter (bytearray) during the copy, the copy is torn,
/// as with any C extension reading a buffer without the GIL.
unsafe fn as_slice(buf: &PyUntypedBuffer) -> &[u8] {
    if buf.len_bytes() == 0 {
        return &[];
    }
    // SAFETY: per the function contract; a non-empty exported buffer has a valid pointer.
    unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, buf.len_bytes()) }
}

/// A bounded multi-producer, single-consumer ring of byte records in a shared file.
#[pyclass(frozen, module = "otelingest._native", name = "Ring")]
pub struct PyRing {
    /// None once closed. Held only to clone the Arc: no Python code runs under this lock.
    ring: Mutex<Option<Arc<ring::Ring>>>,
    /// The consumer role, taken lazily; `try_lock`ed so misuse from two threads is an error.
    consumer: Mutex<Option<Consumer>>,
    opts: ConsumerOptions,
}

impl PyRing {
    fn new(ring: ring::Ring, gap_timeout: f64, stuck_timeout: f64) -> PyResult<Self> {
        let opts = ConsumerOptions {
            gap_timeout: duration("gap_timeout", gap_timeout)?,
            stuck_timeout: duration("stuck_timeout", stuck_timeout)?,
        };
        Ok(PyRing {
            ring: Mutex::new(Some(Arc::new(ring))),
            consumer: Mutex::new(None),
            opts,
        })
    }

    fn ring(&self) -> PyResult<Arc<ring::Ring>> {
        let guard = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().cloned().ok_or_else(closed)
    }

    /// Run `f` with the consumer role, taking it on first use.
    fn with_consumer<T>(&self, f: impl FnOnce(&mut Consumer) -> PyResult<T>) -> PyResult<T> {
        let mut guard = match self.consumer.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "Ring consumer methods called from two threads at once",
                ))
            }
        };
        if guard.is_none() {
            let ring = self.ring()?;
            *guard = Some(Consumer::new(ring, self.opts).map_err(to_py)?);
        }
        f(guard.as_mut().expect("consumer set above"))
    }
}

#[pymethods]
impl PyRing {
    /// Create (or atomically replace) the ring file at `path` with `capacity_bytes` of data area.
    #[staticmethod]
    #[pyo3(signature = (path, capacity_bytes, *, gap_timeout = 1.0, stuck_timeout = 60.0))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        capacity_bytes: u64,
        gap_timeout: f64,
        stuck_timeout: f64,
    ) -> PyResult<Self> {
        let ring = py
            .detach(|| ring::Ring::create(&path, capacity_bytes))
            .map_err(to_py)?;
        PyRing::new(ring, gap_timeout, stuck_timeout)
    }

    /// Supervisor start-up: attach to a valid existing ring (keeping unreleased records across a
    /// daemon restart), else create it.
    #[staticmethod]
    #[pyo3(signature = (path, capacity_bytes, *, gap_timeout = 1.0, stuck_timeout = 60.0))]
    fn open_or_create(
        py: Python<'_>,
        path: PathBuf,
        capacity_bytes: u64,
        gap_timeout: f64,
        stuck_timeout: f64,
    ) -> PyResult<Self> {
        let ring = py
            .detach(|| ring::Ring::open_or_create(&path, capacity_bytes))
            .map_err(to_py)?;
        PyRing::new(ring, gap_timeout, stuck_timeout)
    }

    /// Map an existing ring file, validating its header.
    #[staticmethod]
    #[pyo3(signature = (path, *, gap_timeout = 1.0, stuck_timeout = 60.0))]
    fn attach(
        py: Python<'_>,
        path: PathBuf,
        gap_timeout: f64,
        stuck_timeout: f64,
    ) -> PyResult<Self> {
        let ring = py.detach(|| ring::Ring::attach(&path)).map_err(to_py)?;
        PyRing::new(ring, gap_timeout, stuck_timeout)
    }

    /// Push one record; False when the ring is full. Never blocks; the GIL is released.
    fn try_push(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ring = self.ring()?;
        let buf = contiguous(record)?;
        let pushed = py.detach(|| {
            // SAFETY: `buf` is contiguous and alive for the whole closure.
            let data = unsafe { as_slice(&buf) };
            ring.push(data)
        });
        buf.release(py);
        pushed.map_err(to_py)
    }

    /// Push the concatenation of `parts` as one record; False when full. The GIL is released.
    fn try_push_parts(&self, py: Python<'_>, parts: &Bound<'_, PyAny>) -> PyResult<bool> {
        let ring = self.ring()?;
        let bufs = parts
            .try_iter()?
            .map(|p| contiguous(&p?))
            .collect::<PyResult<Vec<_>>>()?;
        let pushed = py.detach(|| {
            // SAFETY: every buffer is contiguous and alive for the whole closure.
            let slices: Vec<&[u8]> = bufs.iter().map(|b| unsafe { as_slice(b) }).collect();
            ring.push_parts(&slices)
        });
        for b in bufs {
            b.release(py);
        }
        pushed.map_err(to_py)
    }

    /// Consumer: the next committed record as `(end_offset, payload)`, or None if none is ready.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        self.with_consumer(|c| {
            let got = c
                .read_with(|payload| {
                    PyBytes::new_with(py, payload.len(), |dst| {
                        payload.copy_to(dst);
                        Ok(())
                    })
                })
                .map_err(to_py)?;
            match got {
                None => Ok(None),
                Some((end, bytes)) => Ok(Some((end, bytes?))),
            }
        })
    }

    /// Consumer: records before `offset` are durable elsewhere; free their space (a no-op for an
    /// offset at or behind the release cursor).
    fn release(&self, offset: u64) -> PyResult<()> {
        self.with_consumer(|c| c.release(offset).map_err(to_py))
    }

    /// Consumer: restart reading at the release cursor.
    fn rewind(&self) -> PyResult<()> {
        self.with_consumer(|c| {
            c.rewind();
            Ok(())
        })
    }

    /// Unmap (once in-flight pushes finish) and give up the consumer role. Idempotent.
    fn close(&self) -> PyResult<()> {
        match self.consumer.try_lock() {
            Ok(mut g) => *g = None,
            Err(TryLockError::Poisoned(p)) => *p.into_inner() = None,
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "Ring.close() while a consumer call is running",
                ))
            }
        }
        *self.ring.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.ring() {
            Ok(r) => format!(
                "Ring({:?}, capacity={})",
                r.path().display().to_string(),
                r.capacity()
            ),
            Err(_) => "Ring(<closed>)".to_string(),
        }
    }

    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.ring()?.path().to_owned())
    }

    /// Size of the data area in bytes.
    #[getter]
    fn capacity(&self) -> PyResult<u64> {
        Ok(self.ring()?.capacity())
    }

    /// Largest record (payload bytes) `try_push` accepts.
    #[getter]
    fn max_record(&self) -> PyResult<usize> {
        Ok(self.ring()?.max_record())
    }

    /// Bytes reserved and not yet released (the queue's footprint, including record headers).
    #[getter]
    fn used_bytes(&self) -> PyResult<u64> {
        Ok(self.ring()?.used_bytes())
    }

    /// Bytes of committed records the consumer has not read yet (including record headers).
    #[getter]
    fn pending_bytes(&self) -> PyResult<u64> {
        self.ring()?.pending_bytes().map_err(to_py)
    }

    /// Uncommitted records (producers killed mid-write) the consumer skipped, ever.
    #[getter]
    fn abandoned(&self) -> PyResult<u64> {
        Ok(self.ring()?.abandoned())
    }

    /// The release cursor: where a new consumer resumes reading.
    #[getter]
    fn release_offset(&self) -> PyResult<u64> {
        Ok(self.ring()?.release_cursor())
    }

    /// The consumer's read cursor: just past the last record read or skipped. `release(read_offset)`
    /// frees everything read, including abandoned records skipped after the last one returned.
    #[getter]
    fn read_offset(&self) -> PyResult<u64> {
        Ok(self.ring()?.read_cursor())
    }

    /// TEST ONLY: reserve a record of `nbytes` and stop without committing, exactly as a producer
    /// killed at `stage` would leave it ("reserved": header not written; "header": header written;
    /// "partial": header and half the payload written). Returns False when full.
    #[pyo3(signature = (nbytes, stage = "header"))]
    fn _debug_reserve_uncommitted(&self, nbytes: usize, stage: &str) -> PyResult<bool> {
        let stage = match stage {
            "reserved" => 0,
            "header" => 1,
            "partial" => 2,
            _ => {
                return Err(PyValueError::new_err(
                    "stage must be 'reserved', 'header' or 'partial'",
                ))
            }
        };
        self.ring()?
            .debug_reserve_uncommitted(nbytes, stage)
            .map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRing>()?;
    m.add("RingError", m.py().get_type::<RingError>())?;
    m.add("RecordTooLarge", m.py().get_type::<RecordTooLarge>())?;
    Ok(())
}
