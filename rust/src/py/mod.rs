//! PyO3 bindings: the only modules that know about Python. Each submodule registers its own
//! functions and classes into the one flat `otelingest._native` module.

use pyo3::prelude::*;

mod decode;
mod remote_write_v2;
pub mod ring;
mod series_limit;

/// Version of the native extension, equal to the package version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    decode::register(m)?;
    remote_write_v2::register(m)?;
    ring::register(m)?;
    series_limit::register(m)?;
    Ok(())
}
