//! Prometheus remote write 1.0: a snappy-compressed (block format) `prompb.WriteRequest` into
//! Native blocks of `otel_prom_samples` (samples), `otel_prom_series` (each series' labels, once),
//! `otel_metrics_metadata` (metadata) and `otel_metrics_exemplars` (exemplars).
//!
//! The narrow layout (migration 0012, docs/promql.md "Throughput"): a sample is a
//! `(MetricName, ServiceName, SeriesId, TimeUnix, Value)` row; the labels go to `otel_prom_series`
//! once per series and UTC day, the first time this process sees the pair: a request's new pairs
//! are [`RemoteWriteDecoder::new_series`] and only count as written once the request is in a ring
//! ([`remember_series`]); a request refused and retried writes them again. `SeriesId` is computed
//! here exactly as `otel_metrics` computes it (`series_id.rs`), so a series keeps its id across
//! the two layouts.
//!
//! The protobuf (prometheus/prompb types.proto, remote.proto), read field by field like `wire.rs`:
//!
//! ```text
//! WriteRequest   { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//! TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2;
//!                  repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
//! Label          { string name = 1; string value = 2; }
//! Sample         { double value = 1; int64 timestamp = 2; }          // milliseconds
//! Exemplar       { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
//! MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4;
//!                  string unit = 5; }
//! ```
//!
//! How a series is stored so that it reads back exactly as written (the query side's half is
//! `promql.series_labels`/`MetricInfo`; design notes in docs/promql.md); as `otel_metrics` rows
//! before migration 0012, as `otel_prom_series` columns now:
//! - `MetricName` is `__name__` verbatim; `MetricType` Gauge, no unit: a remote-written sample is a
//!   plain float whatever its family's type (types come separately, as metadata), so the OTel ->
//!   Prometheus naming (unit suffixes, `_total`) must not apply to it.
//! - `Attributes` holds every label but `__name__` verbatim (job and instance too), so label names
//!   that are not valid OTel attribute names, or that OTel naming would rewrite, survive.
//! - The resource follows the OpenTelemetry Prometheus compatibility spec: `service.name` = job,
//!   `service.instance.id` = instance; `ServiceName` = job (`unknown_service` without one); and
//!   `otelingest.source` = `prometheus.remote_write`, with `ScopeName` = [`SCOPE_NAME`], tells the
//!   query side to name and label the series verbatim.
//!
//! Whole-request errors (`DecodeError`, HTTP 400): bad snappy, malformed protobuf, a series without
//! `__name__`, an empty or duplicated label name, invalid UTF-8, a timestamp outside what
//! nanoseconds in an Int64 hold, native histograms (not stored: refusing says so instead of
//! acknowledging samples that were dropped). A label with an empty value is absent, as in Prometheus.

use crate::error::{bail, Result};
use crate::native::{FixedCol, MapCol, MapRow, PodCol, StringCol};
use crate::otlp::wire::{is_utf8, Reader, Value};
use crate::prom::series_id::series_id;
use crate::series_limit::{Gate, SeriesLimiter};
use std::sync::Arc;
use crate::tables::{table, Limits, Stats, UNKNOWN_SERVICE};
use std::collections::HashSet;
use std::sync::Mutex;

/// `ScopeName` of every remote-written row: the query side names their metric verbatim.
pub const SCOPE_NAME: &[u8] = b"otelingest.prometheus.remote_write";
/// Resource attribute `otelingest.source` = [`SOURCE`] on every remote-written row: the query side
/// reads the labels of such a series verbatim (the rollups keep resources, not scopes).
pub const SOURCE_KEY: &[u8] = b"otelingest.source";
pub const SOURCE: &[u8] = b"prometheus.remote_write";
pub const METADATA_TABLE: &str = "otel_metrics_metadata";
pub const EXEMPLARS_TABLE: &str = "otel_metrics_exemplars";
pub const SAMPLES_TABLE: &str = "otel_prom_samples";
pub const SERIES_TABLE: &str = "otel_prom_series";
/// Beyond this many remembered (series, day) pairs the set starts over (a series written again is
/// one more row that `otel_prom_series`' merges fold away).
const MAX_REMEMBERED: usize = 1 << 20;
const DAY_NS: i64 = 86_400_000_000_000;

/// (series, day) pairs of this process whose labels are in a ring already.
static REMEMBERED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

fn remembered(key: u64) -> bool {
    let g = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().is_some_and(|set| set.contains(&key))
}

/// An iterator of a known length (the labels but `__name__`).
struct ExactLen<I>(I, usize);

impl<I: Iterator> Iterator for ExactLen<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.1, Some(self.1))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactLen<I> {}

/// Marks the new series of a request as written: call once the request's blocks are in a ring.
pub fn remember_series(keys: &[u64]) {
    if keys.is_empty() {
        return;
    }
    let mut g = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if set.len() + keys.len() > MAX_REMEMBERED {
        set.clear();
    }
    set.extend(keys.iter().copied());
}

/// |milliseconds| beyond this overflow Int64 nanoseconds.
const MAX_ABS_MS: i64 = i64::MAX / 1_000_000;

table! {
    /// `otel_metrics_metadata`: one row per `MetricMetadata` received.
    MetadataTable {
        time: PodCol<i64> = ("TimeUnix", "DateTime64(9)"),
        family: StringCol = ("MetricFamilyName", "String"),
        kind: StringCol = ("Type", "String"),
        unit: StringCol = ("Unit", "String"),
        help: StringCol = ("Help", "String"),
    }
}

table! {
    /// `otel_metrics_exemplars`: one row per remote-written exemplar.
    ExemplarsTable {
        time: PodCol<i64> = ("TimeUnix", "DateTime64(9)"),
        metric_name: StringCol = ("MetricName", "String"),
        service_name: StringCol = ("ServiceName", "String"),
        attributes: MapCol = ("Attributes", "Map(String, String)"),
        filtered_attributes: MapCol = ("FilteredAttributes", "Map(String, String)"),
        value: PodCol<f64> = ("Value", "Float64"),
        trace_id: FixedCol<16> = ("TraceId", "FixedString(16)"),
        span_id: FixedCol<8> = ("SpanId", "FixedString(8)"),
    }
}

table! {
    /// `otel_prom_samples`: one row per remote-written sample.
    SamplesTable {
        metric_name: StringCol = ("MetricName", "String"),
        service_name: StringCol = ("ServiceName", "String"),
        series_id: PodCol<u64> = ("SeriesId", "UInt64"),
        time: PodCol<i64> = ("TimeUnix", "DateTime64(9)"),
        value: PodCol<f64> = ("Value", "Float64"),
    }
}

table! {
    /// `otel_prom_series`: a series' labels, once per series and day (see the module doc).
    SeriesTable {
        time: PodCol<i64> = ("TimeUnix", "DateTime64(9)"),
        metric_name: StringCol = ("MetricName", "String"),
        service_name: StringCol = ("ServiceName", "String"),
        series_id: PodCol<u64> = ("SeriesId", "UInt64"),
        resource_attributes: MapCol = ("ResourceAttributes", "Map(String, String)"),
        attributes: MapCol = ("Attributes", "Map(String, String)"),
    }
}

/// `prompb.MetricMetadata.MetricType` as Prometheus' metadata API spells it.
fn metric_type(v: u64) -> &'static [u8] {
    match v {
        1 => b"counter",
        2 => b"gauge",
        3 => b"histogram",
        4 => b"gaugehistogram",
        5 => b"summary",
        6 => b"info",
        7 => b"stateset",
        _ => b"unknown",
    }
}

/// Decoder state reused across requests (the tables and scratch buffers).
#[derive(Default)]
pub struct RemoteWriteDecoder {
    pub samples: SamplesTable,
    pub series: SeriesTable,
    /// (series, day) keys of the `series` rows of the last decode: for [`remember_series`].
    pub new_series: Vec<u64>,
    /// Keys of `new_series`, for lookups.
    in_request: HashSet<u64>,
    pub metadata: MetadataTable,
    pub exemplars: ExemplarsTable,
    pub stats: Stats,
    /// Metadata entries and exemplars of the last decode.
    pub metadata_rows: u64,
    pub exemplar_rows: u64,
    inflated: Vec<u8>,
    labels: Vec<LabelAt>,
    attrs: MapRow,
    resource: MapRow,
    service: Vec<u8>,
    /// The current series' id.
    id: u64,
    /// Mixed into the remembered (series, day) keys: another tenant's same series has its own
    /// labels row.
    tenant_hash: u64,
    /// The tenant's series limit for the next decodes (`set_series_limit`).
    series_gate: Option<Gate>,
}

/// A label as byte ranges of the series message it was read from.
#[derive(Clone, Copy)]
struct LabelAt {
    key: (usize, usize),
    value: (usize, usize),
}

impl LabelAt {
    /// `k` and `v` must be sub-slices of `msg` (they are: the reader never copies).
    fn of(msg: &[u8], k: &[u8], v: &[u8]) -> Self {
        let base = msg.as_ptr() as usize;
        let at = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            (start, start + s.len())
        };
        LabelAt {
            key: at(k),
            value: at(v),
        }
    }

    fn key<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.key.0..self.key.1]
    }

    fn value<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        &msg[self.value.0..self.value.1]
    }
}

/// The labels of one series, borrowed from the request body.
struct SeriesLabels<'a> {
    name: &'a [u8],
    job: Option<&'a [u8]>,
    instance: Option<&'a [u8]>,
}

impl RemoteWriteDecoder {
    /// The tenant of every row of the next decodes (`TenantId`); the default tenant until set.
    pub fn set_tenant(&mut self, tenant: &[u8]) {
        self.samples.tenant.set(tenant);
        self.series.tenant.set(tenant);
        self.metadata.tenant.set(tenant);
        self.exemplars.tenant.set(tenant);
        self.tenant_hash = if tenant == crate::tables::DEFAULT_TENANT {
            0
        } else {
            crate::prom::series_id::city_hash64(tenant)
        };
    }

    /// The limiter and limit of active series per metric for the next decodes' tenant (set after
    /// `set_tenant`); None or a 0 limit: no limit. A new series over the limit has its samples
    /// and exemplars refused (`Stats::over_limit`, counted in `rejected`), the rest are decoded.
    pub fn set_series_limit(&mut self, limiter: Option<Arc<SeriesLimiter>>, limit: usize, tenant: &[u8]) {
        self.series_gate = Gate::new(limiter, limit, tenant);
    }

    /// Decompresses (when `snappy`) and decodes one `WriteRequest` into the three tables
    /// (cleared first). `received_ns` stamps the metadata rows.
    pub fn decode(
        &mut self,
        body: &[u8],
        snappy: bool,
        max_decompressed_bytes: usize,
        limits: &Limits,
        received_ns: i64,
    ) -> Result<()> {
        self.samples.clear();
        self.series.clear();
        self.new_series.clear();
        self.in_request.clear();
        self.metadata.clear();
        self.exemplars.clear();
        self.stats = Stats::default();
        self.metadata_rows = 0;
        self.exemplar_rows = 0;
        let mut inflated = std::mem::take(&mut self.inflated);
        let res = (|| {
            let msg: &[u8] = if snappy {
                unsnappy(body, max_decompressed_bytes, &mut inflated)?;
                &inflated
            } else {
                if body.len() > max_decompressed_bytes {
                    bail!("body exceeds {max_decompressed_bytes} bytes");
                }
                body
            };
            self.request(msg, limits, received_ns)
        })();
        if inflated.capacity() <= 16 << 20 {
            self.inflated = inflated;
        }
        res
    }

    fn request(&mut self, msg: &[u8], limits: &Limits, received_ns: i64) -> Result<()> {
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => self.series(v.bytes("WriteRequest.timeseries")?, limits)?,
                3 => self.metadata_entry(v.bytes("WriteRequest.metadata")?, received_ns)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn metadata_entry(&mut self, msg: &[u8], received_ns: i64) -> Result<()> {
        let (mut kind, mut family, mut help, mut unit): (u64, &[u8], &[u8], &[u8]) =
            (0, &[], &[], &[]);
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => kind = v.varint("MetricMetadata.type")?,
                2 => family = v.str("MetricMetadata.metric_family_name")?,
                4 => help = v.str("MetricMetadata.help")?,
                5 => unit = v.str("MetricMetadata.unit")?,
                _ => {}
            }
        }
        if family.is_empty() {
            bail!("MetricMetadata without metric_family_name");
        }
        let t = &mut self.metadata;
        t.time.push(received_ns);
        t.family.push(family);
        t.kind.push(metric_type(kind));
        t.unit.push(unit);
        t.help.push(help);
        t.rows += 1;
        self.metadata_rows += 1;
        Ok(())
    }

    fn series(&mut self, msg: &[u8], limits: &Limits) -> Result<()> {
        // First pass: the labels (they may come after the samples), kept as offsets into `msg` so
        // the scratch vector outlives the request without borrowing it.
        let mut labels = std::mem::take(&mut self.labels);
        labels.clear();
        let res = self.series_with(msg, limits, &mut labels);
        self.labels = labels;
        res
    }

    fn series_with(
        &mut self,
        msg: &[u8],
        limits: &Limits,
        labels: &mut Vec<LabelAt>,
    ) -> Result<()> {
        let mut has_samples = false;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => {
                    let (k, val) = label(v, "TimeSeries.labels")?;
                    if !val.is_empty() {
                        labels.push(LabelAt::of(msg, k, val));
                    }
                }
                2 => has_samples = true,
                4 => bail!("native histograms are not supported (series with histograms sent)"),
                _ => {}
            }
        }
        if labels.len() > limits.max_attributes + 1 {
            bail!("series has more than {} labels", limits.max_attributes + 1);
        }
        labels.sort_unstable_by(|a, b| a.key(msg).cmp(b.key(msg)));
        for w in labels.windows(2) {
            if w[0].key(msg) == w[1].key(msg) {
                bail!(
                    "duplicate label name {:?}",
                    String::from_utf8_lossy(w[0].key(msg))
                );
            }
        }
        let mut s = SeriesLabels {
            name: &[],
            job: None,
            instance: None,
        };
        self.attrs.clear();
        for l in labels.iter() {
            let (k, v) = (l.key(msg), l.value(msg));
            match k {
                b"__name__" => {
                    s.name = v;
                    continue;
                }
                b"job" => s.job = Some(v),
                b"instance" => s.instance = Some(v),
                _ => {}
            }
            self.attrs.push(k, v);
        }
        if s.name.is_empty() {
            bail!("series without a __name__ label");
        }
        self.resource.clear();
        self.service.clear();
        if let Some(job) = s.job {
            self.resource.push(b"service.name", job);
            self.service.extend_from_slice(job);
        } else {
            self.service.extend_from_slice(UNKNOWN_SERVICE);
        }
        if let Some(instance) = s.instance {
            self.resource.push(b"service.instance.id", instance);
        }
        self.resource.push(SOURCE_KEY, SOURCE);
        if !has_samples {
            return self.exemplars_of(msg, &s);
        }
        // mapSort order of the resource: otelingest.source < service.instance.id < service.name.
        let mut resource: [(&[u8], &[u8]); 3] = [(&[], &[]); 3];
        let mut n = 0;
        resource[n] = (SOURCE_KEY, SOURCE);
        n += 1;
        if let Some(instance) = s.instance {
            resource[n] = (b"service.instance.id", instance);
            n += 1;
        }
        if let Some(job) = s.job {
            resource[n] = (b"service.name", job);
            n += 1;
        }
        let attributes = labels
            .iter()
            .map(|l| (l.key(msg), l.value(msg)))
            .filter(|(k, _)| *k != b"__name__");
        self.id = series_id(
            s.name,
            &self.service,
            resource[..n].iter().copied(),
            ExactLen(attributes, labels.len() - 1),
        );
        if let Some(g) = &self.series_gate {
            if !g.admit(s.name, self.id) {
                let mut n = 0u64;
                let mut r = Reader::new(msg);
                while let Some((f, _)) = r.next()? {
                    n += (f == 2) as u64;
                }
                self.stats.rejected += n;
                self.stats.over_limit += n;
                if self.stats.rejection_reason.is_none() {
                    self.stats.rejection_reason = Some(g.reason(s.name));
                }
                return Ok(());
            }
        }
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == 2 {
                let (value, ms) = sample(v.bytes("TimeSeries.samples")?)?;
                self.push_sample(&s, value, ms)?;
            }
        }
        self.exemplars_of(msg, &s)
    }

    fn push_sample(&mut self, s: &SeriesLabels<'_>, value: f64, ms: i64) -> Result<()> {
        let time = millis_to_nanos(ms)?;
        let mut key = crate::prom::series_id::combine(self.id, time.div_euclid(DAY_NS) as u64);
        if self.tenant_hash != 0 {
            key = crate::prom::series_id::combine(key, self.tenant_hash);
        }
        if !self.in_request.contains(&key) && !remembered(key) {
            self.in_request.insert(key);
            self.new_series.push(key);
            let t = &mut self.series;
            t.time.push(time);
            t.metric_name.push(s.name);
            t.service_name.push(&self.service);
            t.series_id.push(self.id);
            t.resource_attributes.push_row(&self.resource);
            t.attributes.push_row(&self.attrs);
            t.rows += 1;
        }
        let t = &mut self.samples;
        t.metric_name.push(s.name);
        t.service_name.push(&self.service);
        t.series_id.push(self.id);
        t.time.push(time);
        t.value.push(value);
        t.rows += 1;
        self.stats.items += 1;
        Ok(())
    }

    fn exemplars_of(&mut self, msg: &[u8], s: &SeriesLabels<'_>) -> Result<()> {
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f != 3 {
                continue;
            }
            let (mut value, mut ms) = (0f64, 0i64);
            let (mut trace, mut span) = ([0u8; 16], [0u8; 8]);
            let t = &mut self.exemplars;
            let mut e = Reader::new(v.bytes("TimeSeries.exemplars")?);
            while let Some((f, v)) = e.next()? {
                match f {
                    1 => {
                        let (k, val) = label(v, "Exemplar.labels")?;
                        match k {
                            b"trace_id" | b"traceID" | b"traceId" => {
                                hex_id(val, &mut trace);
                            }
                            b"span_id" | b"spanID" | b"spanId" => {
                                hex_id(val, &mut span);
                            }
                            _ => {}
                        }
                        t.filtered_attributes.push_entry(k, val);
                    }
                    2 => value = v.double("Exemplar.value")?,
                    3 => ms = v.varint("Exemplar.timestamp")? as i64,
                    _ => {}
                }
            }
            t.filtered_attributes.end_row();
            t.time.push(millis_to_nanos(ms)?);
            t.metric_name.push(s.name);
            t.service_name.push(&self.service);
            t.attributes.push_row(&self.attrs);
            t.value.push(value);
            t.trace_id.push(&trace);
            t.span_id.push(&span);
            t.rows += 1;
            self.exemplar_rows += 1;
        }
        Ok(())
    }

    /// Takes the counts of the last decode.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// (table, rows, Native block) of each non-empty table of the last decode.
    pub fn blocks(&self) -> Vec<(&'static str, usize, Vec<u8>)> {
        let mut out = Vec::new();
        if self.samples.rows > 0 {
            out.push((SAMPLES_TABLE, self.samples.rows, self.samples.encode()));
        }
        if self.series.rows > 0 {
            out.push((SERIES_TABLE, self.series.rows, self.series.encode()));
        }
        if self.metadata.rows > 0 {
            out.push((METADATA_TABLE, self.metadata.rows, self.metadata.encode()));
        }
        if self.exemplars.rows > 0 {
            out.push((
                EXEMPLARS_TABLE,
                self.exemplars.rows,
                self.exemplars.encode(),
            ));
        }
        out
    }
}

/// A `Label` message: (name, value), both UTF-8, the name not empty.
fn label<'a>(v: Value<'a>, what: &str) -> Result<(&'a [u8], &'a [u8])> {
    let (mut k, mut val): (&[u8], &[u8]) = (&[], &[]);
    let mut r = Reader::new(v.bytes(what)?);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => k = v.str("Label.name")?,
            2 => val = v.str("Label.value")?,
            _ => {}
        }
    }
    if k.is_empty() {
        bail!("{what}: empty label name");
    }
    Ok((k, val))
}

/// A `Sample` message: (value, timestamp in ms).
fn sample(msg: &[u8]) -> Result<(f64, i64)> {
    let (mut value, mut ms) = (0f64, 0i64);
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => value = v.double("Sample.value")?,
            2 => ms = v.varint("Sample.timestamp")? as i64,
            _ => {}
        }
    }
    Ok((value, ms))
}

fn millis_to_nanos(ms: i64) -> Result<i64> {
    if !(-MAX_ABS_MS..=MAX_ABS_MS).contains(&ms) {
        bail!("sample timestamp {ms} ms is out of range");
    }
    Ok(ms * 1_000_000)
}

/// Fills `out` from a hex id of exactly its length; anything else leaves it zero (the label is kept
/// in FilteredAttributes either way).
fn hex_id<const N: usize>(s: &[u8], out: &mut [u8; N]) {
    if s.len() != 2 * N || !is_utf8(s) {
        return;
    }
    let mut tmp = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (hex(pair[0]), hex(pair[1])) else {
            return;
        };
        tmp[i] = hi << 4 | lo;
    }
    *out = tmp;
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Snappy block-format decompression with the size checked before any allocation.
pub(crate) fn unsnappy(body: &[u8], max: usize, out: &mut Vec<u8>) -> Result<()> {
    let n = match snap::raw::decompress_len(body) {
        Ok(n) => n,
        Err(e) => bail!("invalid snappy body: {e}"),
    };
    if n > max {
        bail!("decompressed body exceeds {max} bytes");
    }
    out.clear();
    out.resize(n, 0);
    if let Err(e) = snap::raw::Decoder::new().decompress(body, out) {
        bail!("invalid snappy body: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::wire::{put_bytes, put_fixed64, put_varint_field};

    const LIMITS: Limits = Limits {
        max_attributes: 128,
    };

    fn msg(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b);
        b
    }

    fn lab(k: &str, v: &str) -> Vec<u8> {
        msg(|b| {
            put_bytes(b, 1, k.as_bytes());
            put_bytes(b, 2, v.as_bytes());
        })
    }

    fn smp(v: f64, ms: i64) -> Vec<u8> {
        msg(|b| {
            put_fixed64(b, 1, v.to_bits());
            put_varint_field(b, 2, ms as u64);
        })
    }

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> Vec<u8> {
        msg(|b| {
            for (k, v) in labels {
                put_bytes(b, 1, &lab(k, v));
            }
            for &(v, t) in samples {
                put_bytes(b, 2, &smp(v, t));
            }
        })
    }

    fn request(series_list: &[Vec<u8>]) -> Vec<u8> {
        msg(|b| {
            for s in series_list {
                put_bytes(b, 1, s);
            }
        })
    }

    fn decode(body: &[u8]) -> Result<RemoteWriteDecoder> {
        let mut d = RemoteWriteDecoder::default();
        d.decode(body, false, 1 << 20, &LIMITS, 7)?;
        Ok(d)
    }

    fn i64s(c: &PodCol<i64>) -> Vec<i64> {
        c.data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn f64s(c: &PodCol<f64>) -> Vec<f64> {
        c.data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// The rendered map entries of a MapRow, for assertions.
    fn entries(row: &MapRow) -> Vec<(String, String)> {
        fn strings(mut b: &[u8], n: usize) -> Vec<String> {
            let mut out = Vec::new();
            for _ in 0..n {
                let len = b[0] as usize; // test strings are short: one-byte varuints
                out.push(String::from_utf8(b[1..1 + len].to_vec()).unwrap());
                b = &b[1 + len..];
            }
            out
        }
        strings(&row.keys, row.len)
            .into_iter()
            .zip(strings(&row.values, row.len))
            .collect()
    }

    #[test]
    fn one_row_per_sample_with_name_and_labels_verbatim() {
        let body = request(&[series(
            &[
                ("__name__", "node:cpu__rate_total"),
                ("job", "node"),
                ("instance", "h:9100"),
                ("a__b", "x"),
            ],
            &[(1.5, 1000), (f64::NAN, 2000)],
        )]);
        let d = decode(&body).unwrap();
        assert_eq!(d.samples.rows, 2);
        assert_eq!(d.stats.items, 2);
        assert_eq!(
            entries(&d.attrs),
            [("a__b", "x"), ("instance", "h:9100"), ("job", "node")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(
            entries(&d.resource),
            [
                ("service.name", "node"),
                ("service.instance.id", "h:9100"),
                ("otelingest.source", "prometheus.remote_write")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(d.service, b"node");
        assert_eq!(i64s(&d.samples.time), [1_000_000_000, 2_000_000_000]);
        let v = f64s(&d.samples.value);
        assert_eq!(v[0], 1.5);
        assert!(v[1].is_nan());
    }

    #[test]
    fn stale_marker_bits_are_kept() {
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let d = decode(&request(&[series(&[("__name__", "up")], &[(stale, 1)])])).unwrap();
        assert_eq!(f64s(&d.samples.value)[0].to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn empty_label_values_are_absent() {
        let d = decode(&request(&[series(
            &[("__name__", "up"), ("x", "")],
            &[(1.0, 1)],
        )]))
        .unwrap();
        assert!(entries(&d.attrs).is_empty());
        assert_eq!(d.service, UNKNOWN_SERVICE);
    }

    #[test]
    fn missing_name_is_an_error() {
        let e = decode(&request(&[series(&[("job", "x")], &[(1.0, 1)])]))
            .err()
            .unwrap();
        assert_eq!(e.0, "series without a __name__ label");
    }

    #[test]
    fn duplicate_label_is_an_error() {
        let e = decode(&request(&[series(
            &[("__name__", "up"), ("a", "1"), ("a", "2")],
            &[(1.0, 1)],
        )]))
        .err()
        .unwrap();
        assert_eq!(e.0, "duplicate label name \"a\"");
    }

    #[test]
    fn empty_label_name_is_an_error() {
        let e = decode(&request(&[series(&[("__name__", "up"), ("", "v")], &[])]))
            .err()
            .unwrap();
        assert_eq!(e.0, "TimeSeries.labels: empty label name");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let s = msg(|b| {
            put_bytes(b, 1, &lab("__name__", "up"));
            put_bytes(
                b,
                1,
                &msg(|b| {
                    put_bytes(b, 1, b"k");
                    put_bytes(b, 2, &[0xff, 0xfe]);
                }),
            );
        });
        let e = decode(&request(&[s])).err().unwrap();
        assert_eq!(e.0, "Label.value: invalid UTF-8");
    }

    #[test]
    fn timestamp_out_of_range_is_an_error() {
        let e = decode(&request(&[series(
            &[("__name__", "up")],
            &[(1.0, i64::MAX)],
        )]))
        .err()
        .unwrap();
        assert!(e.0.contains("out of range"), "{}", e.0);
    }

    #[test]
    fn negative_timestamps_decode() {
        let d = decode(&request(&[series(&[("__name__", "up")], &[(1.0, -5)])])).unwrap();
        assert_eq!(i64s(&d.samples.time), [-5_000_000]);
    }

    #[test]
    fn native_histograms_are_refused() {
        let s = msg(|b| {
            put_bytes(b, 1, &lab("__name__", "h"));
            put_bytes(b, 4, b"");
        });
        let e = decode(&request(&[s])).err().unwrap();
        assert!(e.0.starts_with("native histograms"), "{}", e.0);
    }

    #[test]
    fn too_many_labels_is_an_error() {
        let names: Vec<String> = (0..200).map(|i| format!("l{i:03}")).collect();
        let mut labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        labels.push(("__name__", "up"));
        let e = decode(&request(&[series(&labels, &[(1.0, 1)])]))
            .err()
            .unwrap();
        assert!(e.0.contains("more than"), "{}", e.0);
    }

    #[test]
    fn metadata_rows() {
        let m = msg(|b| {
            put_varint_field(b, 1, 1);
            put_bytes(b, 2, b"http_requests");
            put_bytes(b, 4, b"Requests.");
            put_bytes(b, 5, b"requests");
        });
        let body = msg(|b| put_bytes(b, 3, &m));
        let d = decode(&body).unwrap();
        assert_eq!(d.metadata.rows, 1);
        assert_eq!(d.metadata_rows, 1);
        assert_eq!(d.samples.rows, 0);
        assert_eq!(&d.metadata.kind.data[1..], b"counter");
        let blocks = d.blocks();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].0, METADATA_TABLE);
    }

    #[test]
    fn metadata_without_family_is_an_error() {
        let m = msg(|b| put_varint_field(b, 1, 2));
        let e = decode(&msg(|b| put_bytes(b, 3, &m))).err().unwrap();
        assert_eq!(e.0, "MetricMetadata without metric_family_name");
    }

    #[test]
    fn exemplars_with_trace_ids() {
        let ex = msg(|b| {
            put_bytes(b, 1, &lab("trace_id", "000102030405060708090a0b0c0d0e0f"));
            put_bytes(b, 1, &lab("span_id", "zz"));
            put_fixed64(b, 2, 3.0f64.to_bits());
            put_varint_field(b, 3, 1500);
        });
        let s = msg(|b| {
            put_bytes(b, 1, &lab("__name__", "rq"));
            put_bytes(b, 3, &ex);
        });
        let d = decode(&request(&[s])).unwrap();
        assert_eq!(d.samples.rows, 0);
        assert_eq!(d.exemplars.rows, 1);
        assert_eq!(d.exemplar_rows, 1);
        assert_eq!(d.exemplars.trace_id.data, (0u8..16).collect::<Vec<u8>>());
        assert_eq!(d.exemplars.span_id.data, vec![0u8; 8]);
        assert_eq!(i64s(&d.exemplars.time), [1_500_000_000]);
    }

    #[test]
    fn snappy_round_trip_and_errors() {
        let body = request(&[series(&[("__name__", "up")], &[(1.0, 1)])]);
        let packed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let mut d = RemoteWriteDecoder::default();
        d.decode(&packed, true, 1 << 20, &LIMITS, 0).unwrap();
        assert_eq!(d.samples.rows, 1);
        let e = d
            .decode(b"\xff\xff\xff", true, 1 << 20, &LIMITS, 0)
            .err()
            .unwrap();
        assert!(e.0.starts_with("invalid snappy body"), "{}", e.0);
        let e = d.decode(&packed, true, 4, &LIMITS, 0).err().unwrap();
        assert_eq!(e.0, "decompressed body exceeds 4 bytes");
        // Tables are cleared by each decode.
        assert_eq!(d.samples.rows, 0);
    }

    #[test]
    fn malformed_protobuf_is_an_error() {
        let body = request(&[series(&[("__name__", "up")], &[(1.0, 1)])]);
        for n in 1..body.len() {
            assert!(decode(&body[..n]).is_err() || n == 0, "prefix {n}");
        }
    }

    #[test]
    fn blocks_are_consistent() {
        let body = request(&[
            series(&[("__name__", "a"), ("job", "j")], &[(1.0, 1), (2.0, 2)]),
            series(&[("__name__", "b")], &[(3.0, 3)]),
        ]);
        let d = decode(&body).unwrap();
        let blocks = d.blocks();
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].0, blocks[0].1), (SAMPLES_TABLE, 3));
        assert_eq!(blocks[0].2.len(), d.samples.encoded_len());
        assert_eq!((blocks[1].0, blocks[1].1), (SERIES_TABLE, 2));
        assert_eq!(blocks[1].2.len(), d.series.encoded_len());
    }

    #[test]
    fn series_rows_once_per_series_and_day_until_remembered() {
        let day_ms = 86_400_000;
        let body = request(&[
            series(
                &[("__name__", "once_a"), ("job", "j")],
                &[(1.0, 1), (2.0, 2)],
            ),
            series(&[("__name__", "once_b")], &[(3.0, 3), (4.0, day_ms + 3)]),
        ]);
        let d = decode(&body).unwrap();
        assert_eq!(d.samples.rows, 4);
        assert_eq!(d.series.rows, 3); // a; b on two days
        let ids: Vec<u64> = d
            .samples
            .series_id
            .data
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[2], ids[3]);
        assert_ne!(ids[0], ids[2]);
        // Not yet in a ring: a retry writes the labels again; once remembered, not any more.
        assert_eq!(decode(&body).unwrap().series.rows, 3);
        remember_series(&d.new_series);
        let again = decode(&body).unwrap();
        assert_eq!((again.samples.rows, again.series.rows), (4, 0));
    }

    #[test]
    fn another_tenant_writes_its_own_series_labels() {
        let body = request(&[series(
            &[("__name__", "tenant_series"), ("job", "j")],
            &[(1.0, 1)],
        )]);
        let a = decode(&body).unwrap();
        assert_eq!(a.series.rows, 1);
        remember_series(&a.new_series);
        assert_eq!(decode(&body).unwrap().series.rows, 0);
        let mut d = RemoteWriteDecoder::default();
        d.set_tenant(b"team-b");
        d.decode(&body, false, 1 << 20, &LIMITS, 7).unwrap();
        assert_eq!((d.samples.rows, d.series.rows), (1, 1));
        assert_eq!(d.samples.tenant.value(), b"team-b");
    }

    #[test]
    fn new_series_over_the_tenant_limit_are_refused_the_rest_decoded() {
        let limiter = Arc::new(SeriesLimiter::new(3600, 1000));
        let body = request(&[
            series(&[("__name__", "lim_m"), ("pod", "a")], &[(1.0, 1), (2.0, 2)]),
            series(&[("__name__", "lim_m"), ("pod", "b")], &[(3.0, 3)]),
            series(&[("__name__", "lim_m"), ("pod", "c")], &[(4.0, 4), (5.0, 5)]),
            series(&[("__name__", "lim_other")], &[(6.0, 6)]),
        ]);
        let mut d = RemoteWriteDecoder::default();
        d.set_tenant(b"team-a");
        d.set_series_limit(Some(limiter.clone()), 2, b"team-a");
        d.decode(&body, false, 1 << 20, &LIMITS, 7).unwrap();
        let stats = d.take_stats();
        assert_eq!((stats.items, stats.rejected, stats.over_limit), (4, 2, 2));
        assert_eq!(d.samples.rows, 4);
        assert!(stats.rejection_reason.unwrap().contains("\"lim_m\""));
        // Another tenant has its own count.
        d.set_tenant(b"team-b");
        d.set_series_limit(Some(limiter), 2, b"team-b");
        d.decode(&body, false, 1 << 20, &LIMITS, 7).unwrap();
        assert_eq!(d.take_stats().over_limit, 2);
    }

}
