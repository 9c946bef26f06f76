//! `ExportMetricsServiceRequest` -> `otel_metrics` rows, one per data point of any of the five
//! metric types. Columns a type does not use get their defaults (0, empty arrays, NULL).
//! Gauge/Sum int points store `Value` as f64 and the exact `ValueInt`; double points leave
//! `ValueInt` NULL. `Sum`/`Min`/`Max` are NULL when the point does not carry them.

use super::{check_id, decoder, id, nanos, table, AttrCount, Limits};
use crate::error::Result;
use crate::native::{ArrayCol, FixedCol, MapCol, NullableCol, PodCol, StringCol};
use crate::otlp::wire::{for_each_fixed64, for_each_varint, sint32, Reader};
use crate::prom::series_id::series_id;

pub const TABLE: &str = "otel_metrics";

const METRIC_TYPE: &str =
    "Enum8('Gauge' = 1, 'Sum' = 2, 'Histogram' = 3, 'ExponentialHistogram' = 4, 'Summary' = 5)";
const TEMPORALITY: &str = "Enum8('Unspecified' = 0, 'Delta' = 1, 'Cumulative' = 2)";

table! {
    /// The columns of `otel_metrics` (all but the MATERIALIZED `SeriesId`).
    MetricsTable {
        time: PodCol<i64> = ("TimeUnix", "DateTime64(9)"),
        start_time: PodCol<i64> = ("StartTimeUnix", "DateTime64(9)"),
        metric_name: StringCol = ("MetricName", "String"),
        metric_description: StringCol = ("MetricDescription", "String"),
        metric_unit: StringCol = ("MetricUnit", "String"),
        metric_type: PodCol<i8> = ("MetricType", METRIC_TYPE),
        temporality: PodCol<i8> = ("AggregationTemporality", TEMPORALITY),
        is_monotonic: PodCol<u8> = ("IsMonotonic", "Bool"),
        service_name: StringCol = ("ServiceName", "String"),
        resource_attributes: MapCol = ("ResourceAttributes", "Map(String, String)"),
        resource_schema_url: StringCol = ("ResourceSchemaUrl", "String"),
        scope_name: StringCol = ("ScopeName", "String"),
        scope_version: StringCol = ("ScopeVersion", "String"),
        scope_attributes: MapCol = ("ScopeAttributes", "Map(String, String)"),
        scope_schema_url: StringCol = ("ScopeSchemaUrl", "String"),
        attributes: MapCol = ("Attributes", "Map(String, String)"),
        flags: PodCol<u32> = ("Flags", "UInt32"),
        value: PodCol<f64> = ("Value", "Float64"),
        value_int: NullableCol<i64> = ("ValueInt", "Nullable(Int64)"),
        count: PodCol<u64> = ("Count", "UInt64"),
        sum: NullableCol<f64> = ("Sum", "Nullable(Float64)"),
        min: NullableCol<f64> = ("Min", "Nullable(Float64)"),
        max: NullableCol<f64> = ("Max", "Nullable(Float64)"),
        bucket_counts: ArrayCol<PodCol<u64>> = ("BucketCounts", "Array(UInt64)"),
        explicit_bounds: ArrayCol<PodCol<f64>> = ("ExplicitBounds", "Array(Float64)"),
        scale: PodCol<i32> = ("Scale", "Int32"),
        zero_count: PodCol<u64> = ("ZeroCount", "UInt64"),
        zero_threshold: PodCol<f64> = ("ZeroThreshold", "Float64"),
        positive_offset: PodCol<i32> = ("PositiveOffset", "Int32"),
        positive_bucket_counts: ArrayCol<PodCol<u64>> = ("PositiveBucketCounts", "Array(UInt64)"),
        negative_offset: PodCol<i32> = ("NegativeOffset", "Int32"),
        negative_bucket_counts: ArrayCol<PodCol<u64>> = ("NegativeBucketCounts", "Array(UInt64)"),
        quantile: ArrayCol<PodCol<f64>> = ("QuantileValues.Quantile", "Array(Float64)"),
        quantile_value: ArrayCol<PodCol<f64>> = ("QuantileValues.Value", "Array(Float64)"),
        exemplar_attributes: ArrayCol<MapCol> = ("Exemplars.FilteredAttributes", "Array(Map(String, String))"),
        exemplar_time: ArrayCol<PodCol<i64>> = ("Exemplars.TimeUnix", "Array(DateTime64(9))"),
        exemplar_value: ArrayCol<PodCol<f64>> = ("Exemplars.Value", "Array(Float64)"),
        exemplar_span_id: ArrayCol<FixedCol<8>> = ("Exemplars.SpanId", "Array(FixedString(8))"),
        exemplar_trace_id: ArrayCol<FixedCol<16>> = ("Exemplars.TraceId", "Array(FixedString(16))"),
    }
}

/// The five metric types, with their `MetricType` enum value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Gauge = 1,
    Sum = 2,
    Histogram = 3,
    ExponentialHistogram = 4,
    Summary = 5,
}

/// Field numbers of the parts every point type has.
struct Layout {
    attributes: u32,
    flags: u32,
    exemplars: u32,
}

impl Kind {
    fn layout(self) -> Layout {
        match self {
            Kind::Gauge | Kind::Sum => Layout {
                attributes: 7,
                flags: 8,
                exemplars: 5,
            },
            Kind::Histogram => Layout {
                attributes: 9,
                flags: 10,
                exemplars: 8,
            },
            Kind::ExponentialHistogram => Layout {
                attributes: 1,
                flags: 10,
                exemplars: 11,
            },
            Kind::Summary => Layout {
                attributes: 7,
                flags: 8,
                exemplars: 0,
            },
        }
    }
}

/// The metric a point belongs to.
struct MetricInfo<'a> {
    name: &'a [u8],
    description: &'a [u8],
    unit: &'a [u8],
    kind: Kind,
    temporality: u64,
    monotonic: bool,
}

decoder! {
    /// Decoder state reused across requests.
    MetricsDecoder(MetricsTable, TABLE) {
        names: [
            "ExportMetricsServiceRequest.resource_metrics",
            "ResourceMetrics",
            "ScopeMetrics",
        ],
        item: metric,
    }
}

impl MetricsDecoder {
    fn metric(&mut self, msg: &[u8], limits: &Limits) -> Result<()> {
        let (mut name, mut description, mut unit): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        // `data` is a oneof: the last of gauge/sum/histogram/exponential_histogram/summary wins.
        let mut data: Option<(Kind, &[u8])> = None;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            let kind = match f {
                1 => {
                    name = v.str("Metric.name")?;
                    continue;
                }
                2 => {
                    description = v.str("Metric.description")?;
                    continue;
                }
                3 => {
                    unit = v.str("Metric.unit")?;
                    continue;
                }
                5 => Kind::Gauge,
                7 => Kind::Sum,
                9 => Kind::Histogram,
                10 => Kind::ExponentialHistogram,
                11 => Kind::Summary,
                _ => continue,
            };
            data = Some((kind, v.bytes("Metric.data")?));
        }
        let Some((kind, data)) = data else {
            return Ok(());
        };
        let mut info = MetricInfo {
            name,
            description,
            unit,
            kind,
            temporality: 0,
            monotonic: false,
        };
        let mut d = Reader::new(data);
        while let Some((f, v)) = d.next()? {
            match (kind, f) {
                (Kind::Sum | Kind::Histogram | Kind::ExponentialHistogram, 2) => {
                    info.temporality = v.varint("aggregation_temporality")?;
                }
                (Kind::Sum, 3) => info.monotonic = v.varint("Sum.is_monotonic")? != 0,
                _ => {}
            }
        }
        let mut d = Reader::new(data);
        while let Some((f, v)) = d.next()? {
            if f == 1 {
                self.point(&info, v.bytes("data_points")?, limits)?;
            }
        }
        Ok(())
    }

    fn point(&mut self, m: &MetricInfo<'_>, msg: &[u8], limits: &Limits) -> Result<()> {
        let layout = m.kind.layout();
        let (mut start, mut time, mut flags, mut count) = (0u64, 0u64, 0u32, 0u64);
        let (mut value, mut value_int): (f64, Option<i64>) = (0.0, None);
        let (mut sum, mut min, mut max): (Option<f64>, Option<f64>, Option<f64>) =
            (None, None, None);
        let (mut scale, mut zero_count, mut zero_threshold) = (0i32, 0u64, 0f64);
        let (mut positive, mut negative): (&[u8], &[u8]) = (&[], &[]);
        let mut bad: Option<String> = None;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == layout.flags {
                flags = v.uint32("flags")?;
                continue;
            }
            if f == layout.exemplars {
                if let Err(e) = check_exemplar_ids(v.bytes("exemplars")?)? {
                    bad.get_or_insert(e);
                }
                continue;
            }
            match (m.kind, f) {
                (_, 2) => start = v.fixed64("start_time_unix_nano")?,
                (_, 3) => time = v.fixed64("time_unix_nano")?,
                (Kind::Gauge | Kind::Sum, 4) => {
                    value = v.double("NumberDataPoint.as_double")?;
                    value_int = None;
                }
                (Kind::Gauge | Kind::Sum, 6) => {
                    let i = v.fixed64("NumberDataPoint.as_int")? as i64;
                    value = i as f64;
                    value_int = Some(i);
                }
                (Kind::Histogram | Kind::ExponentialHistogram | Kind::Summary, 4) => {
                    count = v.fixed64("count")?
                }
                (Kind::Histogram | Kind::ExponentialHistogram | Kind::Summary, 5) => {
                    sum = Some(v.double("sum")?)
                }
                (Kind::Histogram, 11) | (Kind::ExponentialHistogram, 12) => {
                    min = Some(v.double("min")?)
                }
                (Kind::Histogram, 12) | (Kind::ExponentialHistogram, 13) => {
                    max = Some(v.double("max")?)
                }
                (Kind::ExponentialHistogram, 6) => scale = sint32(v.varint("scale")?),
                (Kind::ExponentialHistogram, 7) => zero_count = v.fixed64("zero_count")?,
                (Kind::ExponentialHistogram, 8) => positive = v.bytes("positive")?,
                (Kind::ExponentialHistogram, 9) => negative = v.bytes("negative")?,
                (Kind::ExponentialHistogram, 14) => zero_threshold = v.double("zero_threshold")?,
                _ => {}
            }
        }
        if let Some(reason) = bad {
            self.stats
                .reject(|| format!("data point rejected: {reason}"));
            return Ok(());
        }
        if self.series_gate.is_some() {
            let id = self.series_id(m.name, msg, layout.attributes, limits)?;
            if let Some(g) = &self.series_gate {
                if !g.admit(m.name, id) {
                    self.stats.over_limit += 1;
                    let stats = &mut self.stats;
                    stats.reject(|| g.reason(m.name));
                    return Ok(());
                }
            }
        }
        // Summary's sum is a plain double: present (0 by default) on every summary point.
        if m.kind == Kind::Summary && sum.is_none() {
            sum = Some(0.0);
        }

        let t = &mut self.table;
        t.time.push(nanos(time));
        t.start_time.push(nanos(start));
        t.metric_name.push(m.name);
        t.metric_description.push(m.description);
        t.metric_unit.push(m.unit);
        t.metric_type.push(m.kind as i8);
        t.temporality.push(if m.temporality <= 2 {
            m.temporality as i8
        } else {
            0
        });
        t.is_monotonic.push(m.monotonic as u8);
        t.flags.push(flags);
        t.value.push(value);
        t.value_int.push(value_int);
        t.count.push(count);
        t.sum.push(sum);
        t.min.push(min);
        t.max.push(max);
        t.scale.push(scale);
        t.zero_count.push(zero_count);
        t.zero_threshold.push(zero_threshold);
        t.positive_offset
            .push(buckets(positive, &mut t.positive_bucket_counts)?);
        t.negative_offset
            .push(buckets(negative, &mut t.negative_bucket_counts)?);

        let mut attr_count = AttrCount::new(limits, "data point");
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == layout.attributes {
                attr_count.put(v, "attributes", &mut t.attributes, &mut self.scratch)?;
                continue;
            }
            if f == layout.exemplars {
                exemplar(t, v.bytes("exemplars")?, &mut self.scratch, limits)?;
                continue;
            }
            match (m.kind, f) {
                (Kind::Histogram, 6) => {
                    for_each_fixed64(v, "bucket_counts", |c| t.bucket_counts.inner.push(c))?
                }
                (Kind::Histogram, 7) => for_each_fixed64(v, "explicit_bounds", |b| {
                    t.explicit_bounds.inner.push(f64::from_bits(b))
                })?,
                (Kind::Summary, 6) => {
                    let (mut q, mut qv) = (0f64, 0f64);
                    let mut s = Reader::new(v.bytes("quantile_values")?);
                    while let Some((f, v)) = s.next()? {
                        match f {
                            1 => q = v.double("ValueAtQuantile.quantile")?,
                            2 => qv = v.double("ValueAtQuantile.value")?,
                            _ => {}
                        }
                    }
                    t.quantile.inner.push(q);
                    t.quantile_value.inner.push(qv);
                }
                _ => {}
            }
        }
        t.attributes.end_row();
        t.end_point();
        self.stats.items += 1;
        Ok(())
    }
}

impl MetricsDecoder {
    /// The point's `SeriesId` as `otel_metrics` computes it (`cityHash64(MetricName, ServiceName,
    /// mapSort(ResourceAttributes), mapSort(Attributes))`), from the attributes rendered as they
    /// will be stored (a first pass, only when a series limit applies).
    fn series_id(&mut self, name: &[u8], msg: &[u8], attributes: u32, limits: &Limits) -> Result<u64> {
        let mut row = std::mem::take(&mut self.gate_row);
        row.clear();
        let mut count = AttrCount::new(limits, "data point");
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == attributes {
                count.put(v, "attributes", &mut row, &mut self.scratch)?;
            }
        }
        let mut attrs = row.entries();
        let mut resource = self.resource.attrs.entries();
        // mapSort: by key, byte order.
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        resource.sort_by(|a, b| a.0.cmp(b.0));
        let id = series_id(
            name,
            &self.resource.service,
            resource.iter().copied(),
            attrs.iter().copied(),
        );
        self.gate_row = row;
        Ok(id)
    }
}

impl MetricsTable {
    /// Closes the point's array columns (buckets, bounds, quantiles, exemplars: whatever was pushed
    /// into them, possibly nothing) and counts the row.
    pub(crate) fn end_point(&mut self) {
        self.bucket_counts.end_row();
        self.explicit_bounds.end_row();
        self.quantile.end_row();
        self.quantile_value.end_row();
        self.exemplar_attributes.end_row();
        self.exemplar_time.end_row();
        self.exemplar_value.end_row();
        self.exemplar_span_id.end_row();
        self.exemplar_trace_id.end_row();
        self.rows += 1;
    }
}

/// Exponential histogram buckets: pushes the counts (closing the row), returns the offset.
fn buckets(msg: &[u8], col: &mut ArrayCol<PodCol<u64>>) -> Result<i32> {
    let mut offset = 0;
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => offset = sint32(v.varint("Buckets.offset")?),
            2 => for_each_varint(v, "Buckets.bucket_counts", |c| col.inner.push(c))?,
            _ => {}
        }
    }
    col.end_row();
    Ok(offset)
}

/// `Ok(Err(reason))` when an exemplar's id has the wrong length.
fn check_exemplar_ids(msg: &[u8]) -> Result<std::result::Result<(), String>> {
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        let checked = match f {
            4 => check_id(v.bytes("Exemplar.span_id")?, 8, "exemplar span_id"),
            5 => check_id(v.bytes("Exemplar.trace_id")?, 16, "exemplar trace_id"),
            _ => Ok(()),
        };
        if checked.is_err() {
            return Ok(checked);
        }
    }
    Ok(Ok(()))
}

/// Writes an exemplar whose ids were checked in the first pass.
fn exemplar(
    t: &mut MetricsTable,
    msg: &[u8],
    scratch: &mut Vec<u8>,
    limits: &Limits,
) -> Result<()> {
    let (mut time, mut value, mut span_id, mut trace_id): (u64, f64, &[u8], &[u8]) =
        (0, 0.0, &[], &[]);
    let mut count = AttrCount::new(limits, "exemplar");
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            2 => time = v.fixed64("Exemplar.time_unix_nano")?,
            3 => value = v.double("Exemplar.as_double")?,
            6 => value = v.fixed64("Exemplar.as_int")? as i64 as f64,
            4 => span_id = v.bytes("Exemplar.span_id")?,
            5 => trace_id = v.bytes("Exemplar.trace_id")?,
            7 => {
                count.put(
                    v,
                    "Exemplar.filtered_attributes",
                    &mut t.exemplar_attributes.inner,
                    scratch,
                )?;
            }
            _ => {}
        }
    }
    t.exemplar_attributes.inner.end_row();
    t.exemplar_time.inner.push(nanos(time));
    t.exemplar_value.inner.push(value);
    t.exemplar_span_id
        .inner
        .push(&id::<8>(span_id).unwrap_or_default());
    t.exemplar_trace_id
        .inner
        .push(&id::<16>(trace_id).unwrap_or_default());
    Ok(())
}
