//! OTLP/JSON -> protobuf wire bytes, so JSON bodies go through the same table builders.
//!
//! Accepts what real senders write (the OTLP/JSON spec and the OTel JS exporter and Collector):
//! camelCase field names (snake_case too, as protobuf JSON allows); trace/span ids as hex strings;
//! `bytesValue` as base64; 64-bit integers as strings or numbers; enums as numbers or names
//! (`"kind": 2` or `"SPAN_KIND_SERVER"`); doubles as numbers or `"NaN"`, `"Infinity"`,
//! `"-Infinity"`; `null` as absent. Unknown fields are ignored. A value of the wrong JSON type is a
//! `DecodeError` naming the field. serde_json caps nesting at 128 levels (no stack overflow).
//! Duplicate keys are written twice (the last wins for scalars, as protobuf merging does).
//!
//! Nested messages are written with 5-byte (padded) length varints patched after the fact, so the
//! transcoding is one pass with no intermediate buffers; the wire reader accepts padded varints.

use base64::Engine as _;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use crate::error::{DecodeError, Result};
use crate::otlp::wire::{put_key, put_varint};

#[derive(Clone, Copy)]
enum Kind {
    Msg(&'static Msg),
    Str,
    /// bytes as base64 (AnyValue.bytes_value).
    Base64,
    /// trace/span ids as hex.
    Id,
    Bool,
    Varint,
    Enum(fn(&str) -> Option<u64>),
    Fixed64,
    Fixed32,
    Double,
    SInt32,
}

/// A field, named in camelCase; [`KeySeed`] also accepts the snake_case spelling.
struct Field {
    num: u32,
    camel: &'static str,
    kind: Kind,
    repeated: bool,
}

struct Msg {
    name: &'static str,
    fields: &'static [Field],
}

const fn f(num: u32, camel: &'static str, kind: Kind) -> Field {
    Field {
        num,
        camel,
        kind,
        repeated: false,
    }
}

const fn rep(num: u32, camel: &'static str, kind: Kind) -> Field {
    Field {
        num,
        camel,
        kind,
        repeated: true,
    }
}

fn enum_by_prefix(name: &str, prefix: &str, names: &[&str]) -> Option<u64> {
    let short = name.strip_prefix(prefix).unwrap_or(name);
    names.iter().position(|n| *n == short).map(|i| i as u64)
}

fn span_kind(n: &str) -> Option<u64> {
    enum_by_prefix(
        n,
        "SPAN_KIND_",
        &[
            "UNSPECIFIED",
            "INTERNAL",
            "SERVER",
            "CLIENT",
            "PRODUCER",
            "CONSUMER",
        ],
    )
}

fn status_code(n: &str) -> Option<u64> {
    enum_by_prefix(n, "STATUS_CODE_", &["UNSET", "OK", "ERROR"])
}

fn temporality(n: &str) -> Option<u64> {
    enum_by_prefix(
        n,
        "AGGREGATION_TEMPORALITY_",
        &["UNSPECIFIED", "DELTA", "CUMULATIVE"],
    )
}

fn severity(n: &str) -> Option<u64> {
    const NAMES: [&str; 25] = [
        "UNSPECIFIED",
        "TRACE",
        "TRACE2",
        "TRACE3",
        "TRACE4",
        "DEBUG",
        "DEBUG2",
        "DEBUG3",
        "DEBUG4",
        "INFO",
        "INFO2",
        "INFO3",
        "INFO4",
        "WARN",
        "WARN2",
        "WARN3",
        "WARN4",
        "ERROR",
        "ERROR2",
        "ERROR3",
        "ERROR4",
        "FATAL",
        "FATAL2",
        "FATAL3",
        "FATAL4",
    ];
    enum_by_prefix(n, "SEVERITY_NUMBER_", &NAMES)
}

static ANY_VALUE: Msg = Msg {
    name: "AnyValue",
    fields: &[
        f(1, "stringValue", Kind::Str),
        f(2, "boolValue", Kind::Bool),
        f(3, "intValue", Kind::Varint),
        f(4, "doubleValue", Kind::Double),
        f(5, "arrayValue", Kind::Msg(&ARRAY_VALUE)),
        f(6, "kvlistValue", Kind::Msg(&KV_LIST)),
        f(7, "bytesValue", Kind::Base64),
    ],
};
static ARRAY_VALUE: Msg = Msg {
    name: "ArrayValue",
    fields: &[rep(1, "values", Kind::Msg(&ANY_VALUE))],
};
static KV_LIST: Msg = Msg {
    name: "KeyValueList",
    fields: &[rep(1, "values", Kind::Msg(&KEY_VALUE))],
};
static KEY_VALUE: Msg = Msg {
    name: "KeyValue",
    fields: &[f(1, "key", Kind::Str), f(2, "value", Kind::Msg(&ANY_VALUE))],
};
const ATTRS: Kind = Kind::Msg(&KEY_VALUE);

static RESOURCE: Msg = Msg {
    name: "Resource",
    fields: &[
        rep(1, "attributes", ATTRS),
        f(2, "droppedAttributesCount", Kind::Varint),
    ],
};
static SCOPE: Msg = Msg {
    name: "InstrumentationScope",
    fields: &[
        f(1, "name", Kind::Str),
        f(2, "version", Kind::Str),
        rep(3, "attributes", ATTRS),
        f(4, "droppedAttributesCount", Kind::Varint),
    ],
};

/// The envelope of a signal's items, the same for the three signals:
/// `Export*ServiceRequest` (repeated `Resource*` = 1) > `Resource*` (resource = 1, repeated
/// `Scope*` = 2, schema_url = 3) > `Scope*` (scope = 1, repeated items = 2, schema_url = 3).
macro_rules! envelope {
    (
        $request:ident: $request_name:literal > $resources:literal,
        $resource:ident: $resource_name:literal > $scopes:literal,
        $scope:ident: $scope_name:literal > $items:literal: $item:ident $(,)?
    ) => {
        static $request: Msg = Msg {
            name: $request_name,
            fields: &[rep(1, $resources, Kind::Msg(&$resource))],
        };
        static $resource: Msg = Msg {
            name: $resource_name,
            fields: &[
                f(1, "resource", Kind::Msg(&RESOURCE)),
                rep(2, $scopes, Kind::Msg(&$scope)),
                f(3, "schemaUrl", Kind::Str),
            ],
        };
        static $scope: Msg = Msg {
            name: $scope_name,
            fields: &[
                f(1, "scope", Kind::Msg(&SCOPE)),
                rep(2, $items, Kind::Msg(&$item)),
                f(3, "schemaUrl", Kind::Str),
            ],
        };
    };
}

// --- traces ---
envelope! {
    TRACES_REQUEST: "ExportTraceServiceRequest" > "resourceSpans",
    RESOURCE_SPANS: "ResourceSpans" > "scopeSpans",
    SCOPE_SPANS: "ScopeSpans" > "spans": SPAN,
}
static SPAN: Msg = Msg {
    name: "Span",
    fields: &[
        f(1, "traceId", Kind::Id),
        f(2, "spanId", Kind::Id),
        f(3, "traceState", Kind::Str),
        f(4, "parentSpanId", Kind::Id),
        f(16, "flags", Kind::Fixed32),
        f(5, "name", Kind::Str),
        f(6, "kind", Kind::Enum(span_kind)),
        f(7, "startTimeUnixNano", Kind::Fixed64),
        f(8, "endTimeUnixNano", Kind::Fixed64),
        rep(9, "attributes", ATTRS),
        f(10, "droppedAttributesCount", Kind::Varint),
        rep(11, "events", Kind::Msg(&EVENT)),
        f(12, "droppedEventsCount", Kind::Varint),
        rep(13, "links", Kind::Msg(&LINK)),
        f(14, "droppedLinksCount", Kind::Varint),
        f(15, "status", Kind::Msg(&STATUS)),
    ],
};
static EVENT: Msg = Msg {
    name: "Span.Event",
    fields: &[
        f(1, "timeUnixNano", Kind::Fixed64),
        f(2, "name", Kind::Str),
        rep(3, "attributes", ATTRS),
        f(4, "droppedAttributesCount", Kind::Varint),
    ],
};
static LINK: Msg = Msg {
    name: "Span.Link",
    fields: &[
        f(1, "traceId", Kind::Id),
        f(2, "spanId", Kind::Id),
        f(3, "traceState", Kind::Str),
        rep(4, "attributes", ATTRS),
        f(5, "droppedAttributesCount", Kind::Varint),
        f(6, "flags", Kind::Fixed32),
    ],
};
static STATUS: Msg = Msg {
    name: "Status",
    fields: &[
        f(2, "message", Kind::Str),
        f(3, "code", Kind::Enum(status_code)),
    ],
};

// --- logs ---
envelope! {
    LOGS_REQUEST: "ExportLogsServiceRequest" > "resourceLogs",
    RESOURCE_LOGS: "ResourceLogs" > "scopeLogs",
    SCOPE_LOGS: "ScopeLogs" > "logRecords": LOG_RECORD,
}
static LOG_RECORD: Msg = Msg {
    name: "LogRecord",
    fields: &[
        f(1, "timeUnixNano", Kind::Fixed64),
        f(11, "observedTimeUnixNano", Kind::Fixed64),
        f(2, "severityNumber", Kind::Enum(severity)),
        f(3, "severityText", Kind::Str),
        f(5, "body", Kind::Msg(&ANY_VALUE)),
        rep(6, "attributes", ATTRS),
        f(7, "droppedAttributesCount", Kind::Varint),
        f(8, "flags", Kind::Fixed32),
        f(9, "traceId", Kind::Id),
        f(10, "spanId", Kind::Id),
        f(12, "eventName", Kind::Str),
    ],
};

// --- metrics ---
envelope! {
    METRICS_REQUEST: "ExportMetricsServiceRequest" > "resourceMetrics",
    RESOURCE_METRICS: "ResourceMetrics" > "scopeMetrics",
    SCOPE_METRICS: "ScopeMetrics" > "metrics": METRIC,
}
static METRIC: Msg = Msg {
    name: "Metric",
    fields: &[
        f(1, "name", Kind::Str),
        f(2, "description", Kind::Str),
        f(3, "unit", Kind::Str),
        f(5, "gauge", Kind::Msg(&GAUGE)),
        f(7, "sum", Kind::Msg(&SUM)),
        f(9, "histogram", Kind::Msg(&HISTOGRAM)),
        f(10, "exponentialHistogram", Kind::Msg(&EXP_HISTOGRAM)),
        f(11, "summary", Kind::Msg(&SUMMARY)),
        rep(12, "metadata", ATTRS),
    ],
};
static GAUGE: Msg = Msg {
    name: "Gauge",
    fields: &[rep(1, "dataPoints", Kind::Msg(&NUMBER_POINT))],
};
static SUM: Msg = Msg {
    name: "Sum",
    fields: &[
        rep(1, "dataPoints", Kind::Msg(&NUMBER_POINT)),
        f(2, "aggregationTemporality", Kind::Enum(temporality)),
        f(3, "isMonotonic", Kind::Bool),
    ],
};
static HISTOGRAM: Msg = Msg {
    name: "Histogram",
    fields: &[
        rep(1, "dataPoints", Kind::Msg(&HISTOGRAM_POINT)),
        f(2, "aggregationTemporality", Kind::Enum(temporality)),
    ],
};
static EXP_HISTOGRAM: Msg = Msg {
    name: "ExponentialHistogram",
    fields: &[
        rep(1, "dataPoints", Kind::Msg(&EXP_HISTOGRAM_POINT)),
        f(2, "aggregationTemporality", Kind::Enum(temporality)),
    ],
};
static SUMMARY: Msg = Msg {
    name: "Summary",
    fields: &[rep(1, "dataPoints", Kind::Msg(&SUMMARY_POINT))],
};
static EXEMPLAR: Msg = Msg {
    name: "Exemplar",
    fields: &[
        rep(7, "filteredAttributes", ATTRS),
        f(2, "timeUnixNano", Kind::Fixed64),
        f(3, "asDouble", Kind::Double),
        f(6, "asInt", Kind::Fixed64),
        f(4, "spanId", Kind::Id),
        f(5, "traceId", Kind::Id),
    ],
};
static NUMBER_POINT: Msg = Msg {
    name: "NumberDataPoint",
    fields: &[
        rep(7, "attributes", ATTRS),
        f(2, "startTimeUnixNano", Kind::Fixed64),
        f(3, "timeUnixNano", Kind::Fixed64),
        f(4, "asDouble", Kind::Double),
        f(6, "asInt", Kind::Fixed64),
        rep(5, "exemplars", Kind::Msg(&EXEMPLAR)),
        f(8, "flags", Kind::Varint),
    ],
};
static HISTOGRAM_POINT: Msg = Msg {
    name: "HistogramDataPoint",
    fields: &[
        rep(9, "attributes", ATTRS),
        f(2, "startTimeUnixNano", Kind::Fixed64),
        f(3, "timeUnixNano", Kind::Fixed64),
        f(4, "count", Kind::Fixed64),
        f(5, "sum", Kind::Double),
        rep(6, "bucketCounts", Kind::Fixed64),
        rep(7, "explicitBounds", Kind::Double),
        rep(8, "exemplars", Kind::Msg(&EXEMPLAR)),
        f(10, "flags", Kind::Varint),
        f(11, "min", Kind::Double),
        f(12, "max", Kind::Double),
    ],
};
static BUCKETS: Msg = Msg {
    name: "ExponentialHistogramDataPoint.Buckets",
    fields: &[
        f(1, "offset", Kind::SInt32),
        rep(2, "bucketCounts", Kind::Varint),
    ],
};
static EXP_HISTOGRAM_POINT: Msg = Msg {
    name: "ExponentialHistogramDataPoint",
    fields: &[
        rep(1, "attributes", ATTRS),
        f(2, "startTimeUnixNano", Kind::Fixed64),
        f(3, "timeUnixNano", Kind::Fixed64),
        f(4, "count", Kind::Fixed64),
        f(5, "sum", Kind::Double),
        f(6, "scale", Kind::SInt32),
        f(7, "zeroCount", Kind::Fixed64),
        f(8, "positive", Kind::Msg(&BUCKETS)),
        f(9, "negative", Kind::Msg(&BUCKETS)),
        f(10, "flags", Kind::Varint),
        rep(11, "exemplars", Kind::Msg(&EXEMPLAR)),
        f(12, "min", Kind::Double),
        f(13, "max", Kind::Double),
        f(14, "zeroThreshold", Kind::Double),
    ],
};
static QUANTILE: Msg = Msg {
    name: "SummaryDataPoint.ValueAtQuantile",
    fields: &[f(1, "quantile", Kind::Double), f(2, "value", Kind::Double)],
};
static SUMMARY_POINT: Msg = Msg {
    name: "SummaryDataPoint",
    fields: &[
        rep(7, "attributes", ATTRS),
        f(2, "startTimeUnixNano", Kind::Fixed64),
        f(3, "timeUnixNano", Kind::Fixed64),
        f(4, "count", Kind::Fixed64),
        f(5, "sum", Kind::Double),
        rep(6, "quantileValues", Kind::Msg(&QUANTILE)),
        f(8, "flags", Kind::Varint),
    ],
};

/// Which export request a JSON body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Traces,
    Logs,
    Metrics,
}

/// Transcodes an OTLP/JSON export request into protobuf wire bytes in `out` (cleared first).
///
/// Streaming: serde drives the descriptors above directly, no JSON tree is built, so the memory
/// used is the output (at most a few times the body) whatever the body's shape.
pub fn transcode(body: &[u8], request: Request, out: &mut Vec<u8>) -> Result<()> {
    let msg = match request {
        Request::Traces => &TRACES_REQUEST,
        Request::Logs => &LOGS_REQUEST,
        Request::Metrics => &METRICS_REQUEST,
    };
    out.clear();
    let mut de = serde_json::Deserializer::from_slice(body);
    let res = MsgSeed { msg, out }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    res.map_err(|e| match e.classify() {
        Category::Data => DecodeError(e.to_string()),
        _ => DecodeError(format!("invalid JSON: {e}")),
    })
}

/// A message: a JSON object whose known keys are written as fields, unknown keys skipped.
struct MsgSeed<'o> {
    msg: &'static Msg,
    out: &'o mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for MsgSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Visitor methods that refuse every JSON type but the ones a visitor implements.
macro_rules! refuse {
    ($($method:ident($($t:ty)?)),*) => {$(
        fn $method<E: de::Error>(self $(, _: $t)?) -> std::result::Result<(), E> {
            Err(E::custom(self.expected()))
        }
    )*};
}

impl<'de> Visitor<'de> for MsgSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: expected a JSON object", self.msg.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(field) = map.next_key_seed(KeySeed(self.msg))? {
            match field {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(field) => map.next_value_seed(FieldSeed {
                    msg: self.msg,
                    field,
                    out: self.out,
                    in_array: false,
                })?,
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    refuse!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        Err(de::Error::custom(self.expected()))
    }
}

impl MsgSeed<'_> {
    fn expected(&self) -> String {
        format!("{}: expected a JSON object", self.msg.name)
    }
}

/// A key: its field in `msg` (camelCase or snake_case), or None for an unknown key.
struct KeySeed(&'static Msg);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<&'static Field>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Option<&'static Field>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> std::result::Result<Self::Value, E> {
        Ok(self
            .0
            .fields
            .iter()
            .find(|f| f.camel == k || is_snake_case_of(k, f.camel)))
    }
}

/// Whether `key` is `camel` in snake_case (`timeUnixNano` -> `time_unix_nano`).
fn is_snake_case_of(key: &str, camel: &str) -> bool {
    let mut k = key.bytes();
    for c in camel.bytes() {
        if c.is_ascii_uppercase() {
            if k.next() != Some(b'_') || k.next() != Some(c.to_ascii_lowercase()) {
                return false;
            }
        } else if k.next() != Some(c) {
            return false;
        }
    }
    k.next().is_none()
}

/// One field's value (or, for a repeated field outside its array, the array).
struct FieldSeed<'o> {
    msg: &'static Msg,
    field: &'static Field,
    out: &'o mut Vec<u8>,
    /// An element of a repeated field's array.
    in_array: bool,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl FieldSeed<'_> {
    fn what(&self) -> String {
        format!("{}.{}", self.msg.name, self.field.camel)
    }

    fn err<E: de::Error>(&self, want: &str) -> E {
        E::custom(format!("{}: expected {want}", self.what()))
    }

    fn want(&self) -> &'static str {
        if self.field.repeated && !self.in_array {
            return "a JSON array";
        }
        match self.field.kind {
            Kind::Msg(_) => "a JSON object",
            Kind::Str => "a string",
            Kind::Base64 => "a base64 string",
            Kind::Id => "a hex string",
            Kind::Bool => "true or false",
            Kind::Varint | Kind::SInt32 | Kind::Fixed64 | Kind::Fixed32 => "an integer",
            Kind::Enum(_) => "an enum name or number",
            Kind::Double => "a number",
        }
    }

    /// Whether this value is one scalar (not the array of a repeated field).
    fn scalar<E: de::Error>(&self) -> std::result::Result<(), E> {
        if self.field.repeated && !self.in_array {
            return Err(self.err("a JSON array"));
        }
        Ok(())
    }

    fn put_int<E: de::Error>(self, n: u64) -> std::result::Result<(), E> {
        self.scalar()?;
        let num = self.field.num;
        match self.field.kind {
            Kind::Varint | Kind::Enum(_) => {
                put_key(self.out, num, 0);
                put_varint(self.out, n);
            }
            Kind::SInt32 => {
                let i = n as i64 as i32;
                put_key(self.out, num, 0);
                put_varint(self.out, ((i << 1) ^ (i >> 31)) as u32 as u64);
            }
            Kind::Fixed64 => {
                put_key(self.out, num, 1);
                self.out.extend_from_slice(&n.to_le_bytes());
            }
            Kind::Fixed32 => {
                if n > u32::MAX as u64 {
                    return Err(E::custom(format!(
                        "{}: {n} does not fit 32 bits",
                        self.what()
                    )));
                }
                put_key(self.out, num, 5);
                self.out.extend_from_slice(&(n as u32).to_le_bytes());
            }
            Kind::Double => {
                // Only reached for integers written where a double is expected.
                put_key(self.out, num, 1);
                self.out
                    .extend_from_slice(&(n as i64 as f64).to_bits().to_le_bytes());
            }
            _ => return Err(self.err(self.want())),
        }
        Ok(())
    }

    fn put_double<E: de::Error>(self, d: f64) -> std::result::Result<(), E> {
        self.scalar()?;
        put_key(self.out, self.field.num, 1);
        self.out.extend_from_slice(&d.to_bits().to_le_bytes());
        Ok(())
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: expected {}", self.what(), self.want())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(()) // null: absent
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<(), E> {
        self.scalar()?;
        if !matches!(self.field.kind, Kind::Bool) {
            return Err(self.err(self.want()));
        }
        put_key(self.out, self.field.num, 0);
        put_varint(self.out, b as u64);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<(), E> {
        match self.field.kind {
            Kind::Double => self.put_double(n as f64),
            _ => self.put_int(n),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<(), E> {
        match self.field.kind {
            Kind::Double => self.put_double(n as f64),
            _ => self.put_int(n as u64),
        }
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<(), E> {
        match self.field.kind {
            Kind::Double => self.put_double(f),
            Kind::Varint | Kind::SInt32 | Kind::Fixed64 | Kind::Fixed32 | Kind::Enum(_)
                if f.fract() == 0.0 && f >= i64::MIN as f64 && f < u64::MAX as f64 =>
            {
                self.put_int(if f < 0.0 { f as i64 as u64 } else { f as u64 })
            }
            _ => Err(self.err(self.want())),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<(), E> {
        self.scalar()?;
        let num = self.field.num;
        match self.field.kind {
            Kind::Str => put_len(self.out, num, s.as_bytes()),
            Kind::Base64 => {
                let b = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| E::custom(format!("{}: invalid base64", self.what())))?;
                put_len(self.out, num, &b);
            }
            Kind::Id => {
                let Some(b) = hex(s.as_bytes()) else {
                    return Err(E::custom(format!(
                        "{}: invalid hex id {:?}",
                        self.what(),
                        truncate(s)
                    )));
                };
                put_len(self.out, num, &b);
            }
            Kind::Enum(names) => match names(s).or_else(|| s.parse().ok()) {
                Some(n) => return self.put_int(n),
                None => {
                    return Err(E::custom(format!(
                        "{}: unknown enum value {:?}",
                        self.what(),
                        truncate(s)
                    )))
                }
            },
            Kind::Varint | Kind::SInt32 | Kind::Fixed64 | Kind::Fixed32 => {
                match s
                    .parse::<u64>()
                    .ok()
                    .or_else(|| s.parse::<i64>().ok().map(|i| i as u64))
                {
                    Some(n) => return self.put_int(n),
                    None => return Err(self.err("an integer")),
                }
            }
            Kind::Double => {
                let d = match s {
                    "NaN" => Some(f64::NAN),
                    "Infinity" => Some(f64::INFINITY),
                    "-Infinity" => Some(f64::NEG_INFINITY),
                    s => s.parse().ok(),
                };
                return match d {
                    Some(d) => self.put_double(d),
                    None => Err(self.err("a number")),
                };
            }
            Kind::Bool | Kind::Msg(_) => return Err(self.err(self.want())),
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        if !self.field.repeated || self.in_array {
            return Err(self.err(self.want()));
        }
        while seq
            .next_element_seed(FieldSeed {
                msg: self.msg,
                field: self.field,
                out: self.out,
                in_array: true,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        self.scalar()?;
        let Kind::Msg(m) = self.field.kind else {
            return Err(self.err(self.want()));
        };
        let out = self.out;
        put_key(out, self.field.num, 2);
        let at = out.len();
        out.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x00]);
        MsgSeed { msg: m, out }.visit_map(map)?;
        let len = out.len() - at - 5;
        if len >= 1 << 28 {
            return Err(de::Error::custom(format!("{}: message too large", m.name)));
        }
        for i in 0..4 {
            out[at + i] = ((len >> (7 * i)) as u8 & 0x7f) | 0x80;
        }
        out[at + 4] = (len >> 28) as u8;
        Ok(())
    }
}

fn put_len(out: &mut Vec<u8>, num: u32, b: &[u8]) {
    put_key(out, num, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn hex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks_exact(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::wire::{Reader, Value};

    #[test]
    fn span_fields() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10",
            "spanId":"0102030405060708","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1700000000000000000",
            "endTimeUnixNano":1700000000000000001,"status":{"code":2}}]}]}]}"#;
        let mut out = Vec::new();
        transcode(body, Request::Traces, &mut out).unwrap();
        let rs = Reader::new(&out)
            .next()
            .unwrap()
            .unwrap()
            .1
            .bytes("")
            .unwrap();
        let ss = Reader::new(rs)
            .next()
            .unwrap()
            .unwrap()
            .1
            .bytes("")
            .unwrap();
        let span = Reader::new(ss)
            .next()
            .unwrap()
            .unwrap()
            .1
            .bytes("")
            .unwrap();
        let mut r = Reader::new(span);
        let mut seen = Vec::new();
        while let Some((f, v)) = r.next().unwrap() {
            match (f, v) {
                (1, Value::Len(b)) => assert_eq!(b, (1..=16).collect::<Vec<u8>>()),
                (6, Value::Varint(k)) => assert_eq!(k, 2),
                (7, Value::Fixed64(t)) => assert_eq!(t, 1_700_000_000_000_000_000),
                (8, Value::Fixed64(t)) => assert_eq!(t, 1_700_000_000_000_000_001),
                _ => {}
            }
            seen.push(f);
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2, 6, 7, 8, 15]);
    }

    #[test]
    fn snake_case_keys_match_exactly() {
        assert!(is_snake_case_of(
            "start_time_unix_nano",
            "startTimeUnixNano"
        ));
        assert!(is_snake_case_of("name", "name"));
        for near in [
            "startTimeUnixNano",
            "start_time_unix_nan",
            "start_time_unix_nanos",
            "start_Time_unix_nano",
            "starttime_unix_nano",
            "start__time_unix_nano",
        ] {
            assert!(!is_snake_case_of(near, "startTimeUnixNano"), "{near}");
        }
    }

    #[test]
    fn wrong_types_are_errors() {
        let mut out = Vec::new();
        for body in [
            &br#"[]"#[..],
            br#"{"resourceSpans":{}}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        ] {
            assert!(
                transcode(body, Request::Traces, &mut out).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
