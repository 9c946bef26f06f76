//! `otelingest._native.RingFile`, `RingProducer`, `RingConsumer`: the Python face of
//! [`crate::ring`], one class per role.
//!
//! The supervisor opens ring files (`RingFile.open_or_create`) and reads their figures; a receiver
//! attaches a `RingProducer` (thread-safe: pushes are serialized inside, with the GIL released
//! during the copy); a writer attaches a `RingConsumer` (one thread at a time).
//! `otelingest._native.testing` holds what only the tests use.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ring::{
    self,
    testing::{abandon_push, Stage},
    Consumer, Producer, RingError as CoreError,
};

pyo3::create_exception!(
    otelingest._native,
    RingError,
    PyValueError,
    "The ring file is corrupt or incompatible, or its role is held by another live handle."
);
pyo3::create_exception!(
    otelingest._native,
    RingBusy,
    RingError,
    "Another live process (or handle) already holds this ring's producer or consumer role."
);
pyo3::create_exception!(
    otelingest._native,
    RecordTooLarge,
    PyValueError,
    "The record can never fit in this ring (larger than max_record); not the same as full."
);

fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::Io(e) => e.into(),
        CoreError::TooLarge { .. } => RecordTooLarge::new_err(e.to_string()),
        CoreError::Invalid(m) => PyValueError::new_err(m),
        CoreError::Busy(_) => RingBusy::new_err(e.to_string()),
        CoreError::Corrupt(_) => RingError::new_err(e.to_string()),
    }
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

/// A Rust handle behind a Python object: `None` once closed.
struct Held<T>(Mutex<Option<T>>);

impl<T> Held<T> {
    fn new(t: T) -> Self {
        Held(Mutex::new(Some(t)))
    }

    fn guard(&self) -> MutexGuard<'_, Option<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the handle, waiting for another thread's call to finish. Callers that hold the
    /// GIL must not keep it while `f` runs long (pushes run inside `py.detach`).
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> PyResult<R> {
        self.guard()
            .as_mut()
            .map(f)
            .ok_or_else(|| PyValueError::new_err("ring is closed"))
    }

    /// Like `with`, but a call already running on another thread is an error, not a wait.
    fn with_alone<R>(&self, what: &str, f: impl FnOnce(&mut T) -> R) -> PyResult<R> {
        let mut guard = match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(format!(
                    "{what} methods called from two threads at once"
                )))
            }
        };
        guard
            .as_mut()
            .map(f)
            .ok_or_else(|| PyValueError::new_err("ring is closed"))
    }

    fn close(&self) {
        *self.guard() = None;
    }
}

/// A ring file without a role: created or opened by the supervisor, observed by anyone.
#[pyclass(frozen, module = "otelingest._native", name = "RingFile")]
pub struct PyRingFile(Held<ring::RingFile>);

#[pymethods]
impl PyRingFile {
    /// Create (or atomically replace) the ring file at `path` with `capacity_bytes` of data area.
    #[staticmethod]
    fn create(py: Python<'_>, path: PathBuf, capacity_bytes: u64) -> PyResult<Self> {
        let ring = py.detach(|| ring::RingFile::create(&path, capacity_bytes));
        Ok(PyRingFile(Held::new(ring.map_err(to_py)?)))
    }

    /// Daemon start-up: keep a valid existing ring (and its unreleased records), else create it.
    #[staticmethod]
    fn open_or_create(py: Python<'_>, path: PathBuf, capacity_bytes: u64) -> PyResult<Self> {
        let ring = py.detach(|| ring::RingFile::open_or_create(&path, capacity_bytes));
        Ok(PyRingFile(Held::new(ring.map_err(to_py)?)))
    }

    /// Map an existing ring file, validating its header.
    #[staticmethod]
    fn attach(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let ring = py.detach(|| ring::RingFile::attach(&path));
        Ok(PyRingFile(Held::new(ring.map_err(to_py)?)))
    }

    fn close(&self) {
        self.0.close()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self
            .0
            .with(|r| (r.path().display().to_string(), r.capacity()))
        {
            Ok((path, cap)) => format!("RingFile({path:?}, capacity={cap})"),
            Err(_) => "RingFile(<closed>)".to_string(),
        }
    }

    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        self.0.with(|r| r.path().to_owned())
    }

    #[getter]
    fn capacity(&self) -> PyResult<u64> {
        self.0.with(|r| r.capacity())
    }

    #[getter]
    fn max_record(&self) -> PyResult<usize> {
        self.0.with(|r| r.max_record())
    }

    #[getter]
    fn used_bytes(&self) -> PyResult<u64> {
        self.0.with(|r| r.used_bytes())
    }

    #[getter]
    fn release_offset(&self) -> PyResult<u64> {
        self.0.with(|r| r.release_cursor())
    }
}

/// The single producer of a ring (a receiver). Thread-safe: pushes are serialized inside.
#[pyclass(frozen, module = "otelingest._native", name = "RingProducer")]
pub struct PyRingProducer(Held<Producer>);

#[pymethods]
impl PyRingProducer {
    /// Attach to the ring file at `path` as its only producer.
    #[staticmethod]
    fn attach(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let p = py.detach(|| Producer::attach(&path));
        Ok(PyRingProducer(Held::new(p.map_err(to_py)?)))
    }

    /// Push one record; False when the ring is full. Never blocks on the consumer; the GIL is
    /// released while waiting for another thread's push and while copying.
    fn try_push(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        let buf = contiguous(record)?;
        // SAFETY: `buf` is contiguous and alive for the whole closure.
        let pushed = py.detach(|| self.0.with(|p| p.push(unsafe { as_slice(&buf) })));
        buf.release(py);
        pushed?.map_err(to_py)
    }

    /// Push the concatenation of `parts` as one record, each part copied once straight into the
    /// ring; False when full. The GIL is released as in `try_push`.
    fn try_push_parts(&self, py: Python<'_>, parts: &Bound<'_, PyAny>) -> PyResult<bool> {
        let bufs = parts
            .try_iter()?
            .map(|p| contiguous(&p?))
            .collect::<PyResult<Vec<_>>>()?;
        let pushed = py.detach(|| {
            // SAFETY: every buffer is contiguous and alive for the whole closure.
            let slices: Vec<&[u8]> = bufs.iter().map(|b| unsafe { as_slice(b) }).collect();
            self.0.with(|p| p.push_parts(&slices))
        });
        for b in bufs {
            b.release(py);
        }
        pushed?.map_err(to_py)
    }

    /// Give up the producer role (after a push in flight) and unmap. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.0.close())
    }

    #[getter]
    fn max_record(&self) -> PyResult<usize> {
        self.0.with(|p| p.ring().max_record())
    }

    #[getter]
    fn used_bytes(&self) -> PyResult<u64> {
        self.0.with(|p| p.ring().used_bytes())
    }
}

/// The single consumer of a ring (a writer). One thread at a time.
#[pyclass(frozen, module = "otelingest._native", name = "RingConsumer")]
pub struct PyRingConsumer(Held<Consumer>);

impl PyRingConsumer {
    fn call<R>(&self, f: impl FnOnce(&mut Consumer) -> R) -> PyResult<R> {
        self.0.with_alone("RingConsumer", f)
    }
}

#[pymethods]
impl PyRingConsumer {
    /// Attach to the ring file at `path` as its only consumer; reading starts at the release
    /// cursor.
    #[staticmethod]
    fn attach(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let c = py.detach(|| Consumer::attach(&path));
        Ok(PyRingConsumer(Held::new(c.map_err(to_py)?)))
    }

    /// The next record as `(end_offset, payload)`, or None if none is published.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyBytes>)>> {
        let got = self.call(|c| {
            c.read_with(|payload| {
                PyBytes::new_with(py, payload.len(), |dst| {
                    payload.copy_to(dst);
                    Ok(())
                })
            })
        })?;
        match got.map_err(to_py)? {
            None => Ok(None),
            Some((end, bytes)) => Ok(Some((end, bytes?))),
        }
    }

    /// Records before `offset` are durable elsewhere; free their space (a no-op for an offset at
    /// or behind the release cursor).
    fn release(&self, offset: u64) -> PyResult<()> {
        self.call(|c| c.release(offset))?.map_err(to_py)
    }

    /// Restart reading at the release cursor.
    fn rewind(&self) -> PyResult<()> {
        self.call(|c| c.rewind())
    }

    /// Give up the consumer role and unmap. Idempotent.
    fn close(&self) -> PyResult<()> {
        match self.0 .0.try_lock() {
            Ok(mut g) => *g = None,
            Err(TryLockError::Poisoned(p)) => *p.into_inner() = None,
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "RingConsumer.close() while a consumer call is running",
                ))
            }
        }
        Ok(())
    }

    #[getter]
    fn used_bytes(&self) -> PyResult<u64> {
        self.0.with(|c| c.ring().used_bytes())
    }

    /// Bytes of records published and not yet read (headers included).
    #[getter]
    fn pending_bytes(&self) -> PyResult<u64> {
        self.call(|c| c.pending_bytes())?.map_err(to_py)
    }

    #[getter]
    fn release_offset(&self) -> PyResult<u64> {
        self.0.with(|c| c.ring().release_cursor())
    }

    /// Just past the last record read: `release(read_offset)` frees everything read.
    #[getter]
    fn read_offset(&self) -> PyResult<u64> {
        self.0.with(|c| c.read_cursor())
    }
}

/// TEST ONLY: reserve a record of `nbytes` and stop without publishing it, exactly as a producer
/// killed at `stage` would leave it ("reserved": nothing written; "header": header written;
/// "partial": header and half the payload written). Returns False when full.
#[pyfunction]
#[pyo3(name = "abandon_push", signature = (producer, nbytes, stage = "header"))]
fn py_abandon_push(producer: &PyRingProducer, nbytes: usize, stage: &str) -> PyResult<bool> {
    let stage = match stage {
        "reserved" => Stage::Reserved,
        "header" => Stage::Header,
        "partial" => Stage::Partial,
        _ => {
            return Err(PyValueError::new_err(
                "stage must be 'reserved', 'header' or 'partial'",
            ))
        }
    };
    producer
        .0
        .with(|p| abandon_push(p, nbytes, stage))?
        .map_err(to_py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRingFile>()?;
    m.add_class::<PyRingProducer>()?;
    m.add_class::<PyRingConsumer>()?;
    m.add("RingError", m.py().get_type::<RingError>())?;
    m.add("RingBusy", m.py().get_type::<RingBusy>())?;
    m.add("RecordTooLarge", m.py().get_type::<RecordTooLarge>())?;
    let testing = PyModule::new(m.py(), "testing")?;
    testing.add_function(wrap_pyfunction!(py_abandon_push, &testing)?)?;
    m.add_submodule(&testing)?;
    Ok(())
}
