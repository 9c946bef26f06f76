//! Prometheus protocols: remote write 1.0 (`prompb.WriteRequest`) into the metric tables.

pub mod remote_write;
pub mod series_id;
