//! `remote_write_v2_to_v1`: a Prometheus remote write 2.0 body as a 1.0 `WriteRequest` for
//! `decode_remote_write`.

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use super::decode::{snappy_compression, DecodeError};
use crate::prom::remote_write::unsnappy;
use crate::prom::remote_write_v2::to_v1;

/// Decompresses (snappy block format unless `compression` is None/"identity") a remote write 2.0
/// `Request` and rewrites it as an uncompressed 1.0 `WriteRequest` of at most
/// `max_decompressed_bytes` (GIL released). Returns (body, samples, exemplars).
#[pyfunction]
#[pyo3(signature = (body, *, compression = Some("snappy"), max_decompressed_bytes = 64 << 20))]
fn remote_write_v2_to_v1<'py>(
    py: Python<'py>,
    body: PyBackedBytes,
    compression: Option<&str>,
    max_decompressed_bytes: usize,
) -> PyResult<(Bound<'py, PyBytes>, u64, u64)> {
    let snappy = snappy_compression(compression)?;
    let (out, written) = py
        .detach(|| {
            let mut inflated = Vec::new();
            let msg: &[u8] = if snappy {
                unsnappy(&body, max_decompressed_bytes, &mut inflated)?;
                &inflated
            } else {
                &body
            };
            let mut out = Vec::new();
            to_v1(msg, &mut out, max_decompressed_bytes).map(|w| (out, w))
        })
        .map_err(|e| DecodeError::new_err(e.0))?;
    Ok((PyBytes::new(py, &out), written.samples, written.exemplars))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(remote_write_v2_to_v1, m)?)?;
    Ok(())
}
