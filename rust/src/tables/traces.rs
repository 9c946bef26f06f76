//! `ExportTraceServiceRequest` -> `otel_traces` rows, one per span.

use super::{check_id, decoder, id, nanos, table, AttrCount, Limits};
use crate::error::Result;
use crate::native::{ArrayCol, FixedCol, MapCol, PodCol, StringCol};
use crate::otlp::wire::Reader;

pub const TABLE: &str = "otel_traces";

const SPAN_KIND: &str = "Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5)";
const STATUS_CODE: &str = "Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2)";

table! {
    /// The columns of `otel_traces`.
    TracesTable {
        timestamp: PodCol<i64> = ("Timestamp", "DateTime64(9)"),
        trace_id: FixedCol<16> = ("TraceId", "FixedString(16)"),
        span_id: FixedCol<8> = ("SpanId", "FixedString(8)"),
        parent_span_id: FixedCol<8> = ("ParentSpanId", "FixedString(8)"),
        trace_state: StringCol = ("TraceState", "String"),
        flags: PodCol<u32> = ("Flags", "UInt32"),
        span_name: StringCol = ("SpanName", "String"),
        span_kind: PodCol<i8> = ("SpanKind", SPAN_KIND),
        service_name: StringCol = ("ServiceName", "String"),
        resource_attributes: MapCol = ("ResourceAttributes", "Map(String, String)"),
        resource_schema_url: StringCol = ("ResourceSchemaUrl", "String"),
        scope_name: StringCol = ("ScopeName", "String"),
        scope_version: StringCol = ("ScopeVersion", "String"),
        scope_attributes: MapCol = ("ScopeAttributes", "Map(String, String)"),
        scope_schema_url: StringCol = ("ScopeSchemaUrl", "String"),
        span_attributes: MapCol = ("SpanAttributes", "Map(String, String)"),
        duration: PodCol<u64> = ("Duration", "UInt64"),
        status_code: PodCol<i8> = ("StatusCode", STATUS_CODE),
        status_message: StringCol = ("StatusMessage", "String"),
        dropped_attributes_count: PodCol<u32> = ("DroppedAttributesCount", "UInt32"),
        dropped_events_count: PodCol<u32> = ("DroppedEventsCount", "UInt32"),
        dropped_links_count: PodCol<u32> = ("DroppedLinksCount", "UInt32"),
        events_timestamp: ArrayCol<PodCol<i64>> = ("Events.Timestamp", "Array(DateTime64(9))"),
        events_name: ArrayCol<StringCol> = ("Events.Name", "Array(String)"),
        events_attributes: ArrayCol<MapCol> = ("Events.Attributes", "Array(Map(String, String))"),
        events_dropped: ArrayCol<PodCol<u32>> = ("Events.DroppedAttributesCount", "Array(UInt32)"),
        links_trace_id: ArrayCol<FixedCol<16>> = ("Links.TraceId", "Array(FixedString(16))"),
        links_span_id: ArrayCol<FixedCol<8>> = ("Links.SpanId", "Array(FixedString(8))"),
        links_trace_state: ArrayCol<StringCol> = ("Links.TraceState", "Array(String)"),
        links_attributes: ArrayCol<MapCol> = ("Links.Attributes", "Array(Map(String, String))"),
        links_flags: ArrayCol<PodCol<u32>> = ("Links.Flags", "Array(UInt32)"),
        links_dropped: ArrayCol<PodCol<u32>> = ("Links.DroppedAttributesCount", "Array(UInt32)"),
        // One kind letter per map entry, in map order (anyvalue::kind; migration 0008).
        resource_attribute_kinds: StringCol = ("ResourceAttributeKinds", "String"),
        span_attribute_kinds: StringCol = ("SpanAttributeKinds", "String"),
    }
}

decoder! {
    /// Decoder state reused across requests (thread-local in the bindings).
    TracesDecoder(TracesTable, TABLE) {
        names: [
            "ExportTraceServiceRequest.resource_spans",
            "ResourceSpans",
            "ScopeSpans",
        ],
        item: span,
        resource_kinds: resource_attribute_kinds,
    }
}

#[derive(Default)]
struct SpanFields<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a [u8],
    name: &'a [u8],
    kind: u64,
    start: u64,
    end: u64,
    dropped_attributes: u32,
    dropped_events: u32,
    dropped_links: u32,
    status: &'a [u8],
    flags: u32,
}

impl TracesDecoder {
    fn span(&mut self, msg: &[u8], limits: &Limits) -> Result<()> {
        let mut s = SpanFields::default();
        let mut bad: Option<String> = None;
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => s.trace_id = v.bytes("Span.trace_id")?,
                2 => s.span_id = v.bytes("Span.span_id")?,
                3 => s.trace_state = v.str("Span.trace_state")?,
                4 => s.parent_span_id = v.bytes("Span.parent_span_id")?,
                5 => s.name = v.str("Span.name")?,
                6 => s.kind = v.varint("Span.kind")?,
                7 => s.start = v.fixed64("Span.start_time_unix_nano")?,
                8 => s.end = v.fixed64("Span.end_time_unix_nano")?,
                10 => s.dropped_attributes = v.uint32("Span.dropped_attributes_count")?,
                12 => s.dropped_events = v.uint32("Span.dropped_events_count")?,
                13 => {
                    let mut l = Reader::new(v.bytes("Span.links")?);
                    while let Some((f, v)) = l.next()? {
                        let checked = match f {
                            1 => check_id(v.bytes("Link.trace_id")?, 16, "link trace_id"),
                            2 => check_id(v.bytes("Link.span_id")?, 8, "link span_id"),
                            _ => Ok(()),
                        };
                        if let Err(e) = checked {
                            bad.get_or_insert(e);
                        }
                    }
                }
                14 => s.dropped_links = v.uint32("Span.dropped_links_count")?,
                15 => s.status = v.bytes("Span.status")?,
                16 => s.flags = v.fixed32("Span.flags")?,
                _ => {}
            }
        }
        let ids = (
            id::<16>(s.trace_id),
            id::<8>(s.span_id),
            id::<8>(s.parent_span_id),
        );
        let (Some(trace_id), Some(span_id), Some(parent_span_id)) = ids else {
            let reason = check_id(s.trace_id, 16, "trace_id")
                .and(check_id(s.span_id, 8, "span_id"))
                .and(check_id(s.parent_span_id, 8, "parent_span_id"))
                .unwrap_err();
            self.stats.reject(|| format!("span rejected: {reason}"));
            return Ok(());
        };
        if let Some(reason) = bad {
            self.stats.reject(|| format!("span rejected: {reason}"));
            return Ok(());
        }
        let mut status_message: &[u8] = &[];
        let mut status_code = 0u64;
        let mut st = Reader::new(s.status);
        while let Some((f, v)) = st.next()? {
            match f {
                2 => status_message = v.str("Status.message")?,
                3 => status_code = v.varint("Status.code")?,
                _ => {}
            }
        }

        let t = &mut self.table;
        t.timestamp.push(nanos(s.start));
        t.trace_id.push(&trace_id);
        t.span_id.push(&span_id);
        t.parent_span_id.push(&parent_span_id);
        t.trace_state.push(s.trace_state);
        t.flags.push(s.flags);
        t.span_name.push(s.name);
        t.span_kind.push(if s.kind <= 5 { s.kind as i8 } else { 0 });
        t.duration.push(s.end.saturating_sub(s.start));
        t.status_code.push(if status_code <= 2 {
            status_code as i8
        } else {
            0
        });
        t.status_message.push(status_message);
        t.dropped_attributes_count.push(s.dropped_attributes);
        t.dropped_events_count.push(s.dropped_events);
        t.dropped_links_count.push(s.dropped_links);

        // Second pass: attributes, events, links straight into their columns.
        let mut count = AttrCount::new(limits, "span");
        self.kinds.clear();
        let mut r = Reader::new(msg);
        while let Some((f, v)) = r.next()? {
            match f {
                9 => {
                    count.put_typed(
                        v,
                        "Span.attributes",
                        &mut t.span_attributes,
                        &mut self.scratch,
                        &mut self.kinds,
                    )?;
                }
                11 => event(t, v.bytes("Span.events")?, &mut self.scratch, limits)?,
                13 => link(t, v.bytes("Span.links")?, &mut self.scratch, limits)?,
                _ => {}
            }
        }
        t.span_attributes.end_row();
        t.span_attribute_kinds.push(&self.kinds);
        t.events_timestamp.end_row();
        t.events_name.end_row();
        t.events_attributes.end_row();
        t.events_dropped.end_row();
        t.links_trace_id.end_row();
        t.links_span_id.end_row();
        t.links_trace_state.end_row();
        t.links_attributes.end_row();
        t.links_flags.end_row();
        t.links_dropped.end_row();
        t.rows += 1;
        self.stats.items += 1;
        Ok(())
    }
}

fn event(t: &mut TracesTable, msg: &[u8], scratch: &mut Vec<u8>, limits: &Limits) -> Result<()> {
    let (mut time, mut name, mut dropped): (u64, &[u8], u32) = (0, &[], 0);
    let mut count = AttrCount::new(limits, "span event");
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => time = v.fixed64("Event.time_unix_nano")?,
            2 => name = v.str("Event.name")?,
            3 => {
                count.put(
                    v,
                    "Event.attributes",
                    &mut t.events_attributes.inner,
                    scratch,
                )?;
            }
            4 => dropped = v.uint32("Event.dropped_attributes_count")?,
            _ => {}
        }
    }
    t.events_timestamp.inner.push(nanos(time));
    t.events_name.inner.push(name);
    t.events_attributes.inner.end_row();
    t.events_dropped.inner.push(dropped);
    Ok(())
}

/// Writes a link whose ids were checked in the first pass.
fn link(t: &mut TracesTable, msg: &[u8], scratch: &mut Vec<u8>, limits: &Limits) -> Result<()> {
    let (mut trace_id, mut span_id, mut state, mut dropped, mut flags): (
        &[u8],
        &[u8],
        &[u8],
        u32,
        u32,
    ) = (&[], &[], &[], 0, 0);
    let mut count = AttrCount::new(limits, "span link");
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => trace_id = v.bytes("Link.trace_id")?,
            2 => span_id = v.bytes("Link.span_id")?,
            3 => state = v.str("Link.trace_state")?,
            4 => {
                count.put(v, "Link.attributes", &mut t.links_attributes.inner, scratch)?;
            }
            5 => dropped = v.uint32("Link.dropped_attributes_count")?,
            6 => flags = v.fixed32("Link.flags")?,
            _ => {}
        }
    }
    t.links_trace_id
        .inner
        .push(&id::<16>(trace_id).unwrap_or_default());
    t.links_span_id
        .inner
        .push(&id::<8>(span_id).unwrap_or_default());
    t.links_trace_state.inner.push(state);
    t.links_attributes.inner.end_row();
    t.links_flags.inner.push(flags);
    t.links_dropped.inner.push(dropped);
    Ok(())
}
