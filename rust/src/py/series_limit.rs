//! `SeriesLimiter`: one receiver worker's active series per (tenant, metric), for
//! `max_series_per_metric` (the logic: `crate::series_limit`).

use std::sync::Arc;

use pyo3::prelude::*;

/// Active series per tenant and metric in this process; passed to `decode_remote_write`.
#[pyclass(frozen, module = "otelingest._native")]
pub struct SeriesLimiter {
    pub(crate) inner: Arc<crate::series_limit::SeriesLimiter>,
}

#[pymethods]
impl SeriesLimiter {
    #[new]
    #[pyo3(signature = (*, window_s = 3600, max_tracked = 1_000_000))]
    fn new(window_s: u32, max_tracked: usize) -> Self {
        SeriesLimiter {
            inner: Arc::new(crate::series_limit::SeriesLimiter::new(window_s, max_tracked)),
        }
    }

    /// Series tracked now, over all tenants and metrics.
    #[getter]
    fn tracked(&self) -> usize {
        self.inner.tracked()
    }

    /// New series let through unchecked because `max_tracked` series were already tracked.
    #[getter]
    fn untracked(&self) -> u64 {
        self.inner.untracked()
    }

    /// Forgets series idle for a window; returns how many are tracked after.
    fn sweep(&self) -> usize {
        self.inner.sweep(self.inner.now_s())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SeriesLimiter>()?;
    Ok(())
}
