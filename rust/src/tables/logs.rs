//! `ExportLogsServiceRequest` -> `otel_logs` rows, one per log record.

use super::{check_id, decoder, id, nanos, table, AttrCount, Limits};
use crate::anyvalue;
use crate::error::Result;
use crate::native::{FixedCol, MapCol, PodCol, StringCol};
use crate::otlp::wire::Reader;

pub const TABLE: &str = "otel_logs";

table! {
    /// The columns of `otel_logs`.
    LogsTable {
        timestamp: PodCol<i64> = ("Timestamp", "DateTime64(9)"),
        observed_timestamp: PodCol<i64> = ("ObservedTimestamp", "DateTime64(9)"),
        trace_id: FixedCol<16> = ("TraceId", "FixedString(16)"),
        span_id: FixedCol<8> = ("SpanId", "FixedString(8)"),
        trace_flags: PodCol<u32> = ("TraceFlags", "UInt32"),
        severity_text: StringCol = ("SeverityText", "String"),
        severity_number: PodCol<u8> = ("SeverityNumber", "UInt8"),
        service_name: StringCol = ("ServiceName", "String"),
        body: StringCol = ("Body", "String"),
        event_name: StringCol = ("EventName", "String"),
        resource_attributes: MapCol = ("ResourceAttributes", "Map(String, String)"),
        resource_schema_url: StringCol = ("ResourceSchemaUrl", "String"),
        scope_name: StringCol = ("ScopeName", "String"),
        scope_version: StringCol = ("ScopeVersion", "String"),
        scope_attributes: MapCol = ("ScopeAttributes", "Map(String, String)"),
        scope_schema_url: StringCol = ("ScopeSchemaUrl", "String"),
        log_attributes: MapCol = ("LogAttributes", "Map(String, String)"),
        dropped_attributes_count: PodCol<u32> = ("DroppedAttributesCount", "UInt32"),
    }
}

decoder! {
    /// Decoder state reused across requests.
    LogsDecoder(LogsTable, TABLE) {
        names: [
            "ExportLogsServiceRequest.resource_logs",
            "ResourceLogs",
            "ScopeLogs",
        ],
        item: record,
    }
}

impl LogsDecoder {
    fn record(&mut self, msg: &[u8], limits: &Limits) -> Result<()> {
        let (mut time, mut observed, mut severity, mut flags, mut dropped) =
            (0u64, 0u64, 0u64, 0u32, 0u32);
        let empty: &[u8] = &[];
        let (mut severity_text, mut body, mut trace_id, mut span_id, mut event_name) =
            (empty, empty, empty, empty, empty);
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => time = v.fixed64("LogRecord.time_unix_nano")?,
                2 => severity = v.varint("LogRecord.severity_number")?,
                3 => severity_text = v.str("LogRecord.severity_text")?,
                5 => body = v.bytes("LogRecord.body")?,
                7 => dropped = v.uint32("LogRecord.dropped_attributes_count")?,
                8 => flags = v.fixed32("LogRecord.flags")?,
                9 => trace_id = v.bytes("LogRecord.trace_id")?,
                10 => span_id = v.bytes("LogRecord.span_id")?,
                11 => observed = v.fixed64("LogRecord.observed_time_unix_nano")?,
                12 => event_name = v.str("LogRecord.event_name")?,
                _ => {}
            }
        }
        let (Some(tid), Some(sid)) = (id::<16>(trace_id), id::<8>(span_id)) else {
            let reason = check_id(trace_id, 16, "trace_id")
                .and(check_id(span_id, 8, "span_id"))
                .unwrap_err();
            self.stats
                .reject(|| format!("log record rejected: {reason}"));
            return Ok(());
        };
        let t = &mut self.table;
        let body_text = anyvalue::render(body, &mut self.scratch)?;
        t.body.push(body_text);
        t.timestamp
            .push(nanos(if time == 0 { observed } else { time }));
        t.observed_timestamp.push(nanos(observed));
        t.trace_id.push(&tid);
        t.span_id.push(&sid);
        t.trace_flags.push(flags);
        t.severity_text.push(severity_text);
        t.severity_number
            .push(if severity <= 255 { severity as u8 } else { 0 });
        t.event_name.push(event_name);
        t.dropped_attributes_count.push(dropped);
        let mut count = AttrCount::new(limits, "log record");
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            if f == 6 {
                count.put(
                    v,
                    "LogRecord.attributes",
                    &mut t.log_attributes,
                    &mut self.scratch,
                )?;
            }
        }
        t.log_attributes.end_row();
        t.rows += 1;
        self.stats.items += 1;
        Ok(())
    }
}
