//! `otelingest._native`: the hot path of otelingest.
//!
//! Plain Rust modules hold the logic so `cargo test` covers them without Python; `py` alone
//! knows about PyO3 and exposes one flat module.

pub mod anyvalue;
pub mod decode;
pub mod error;
pub mod native;
pub mod otlp;
pub mod prom;
pub mod py;
pub mod ring;
pub mod series_limit;
pub mod tables;

#[cfg(feature = "extension-module")]
use pyo3::prelude::*;

/// The Python module `otelingest._native`.
#[cfg(feature = "extension-module")]
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}
