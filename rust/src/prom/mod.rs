//! Prometheus protocols: remote write 1.0 (`prompb.WriteRequest`) into the metric tables, and 2.0
//! (`io.prometheus.write.v2.Request`) rewritten as 1.0.

pub mod remote_write;
pub mod remote_write_v2;
pub mod series_id;
