//! Per-table builders: walk an OTLP export request (protobuf wire bytes) and write its items
//! straight into the Native columns of `otel_traces`, `otel_logs` and `otel_metrics`.
//!
//! Each item is read in two passes over its own bytes: the first collects scalars and checks the
//! ids (an id of the wrong length rejects the item, the rest of the request is kept), the second
//! writes the repeated parts (attributes, events, links, exemplars...) into the columns. Nothing is
//! written for a rejected item, so a block never holds half a row. Any malformed byte is a
//! `DecodeError` for the whole request.
//!
//! The request itself is walked once ([`walk`]); the resource and scope columns, the same on
//! every row of a scope, are appended in bulk once the scope's items are done, so the resource,
//! scope and schema URLs may come anywhere in their messages.
//!
//! More than `max_attributes` attributes on one item (resource, scope, span, event, link, log
//! record, data point, exemplar) is a `DecodeError`: such a request is hostile or misconfigured,
//! and truncating attributes silently would lose data the sender believes stored.

pub mod logs;
pub mod metrics;
pub mod traces;

use crate::anyvalue;
use crate::error::{bail, Result};
use crate::native::{MapCol, MapRow};
use crate::otlp::wire::{Reader, Value};

/// Declares a table builder: the column fields, their Native names and declared types, and
/// `clear`/`encode` over all of them in declaration order.
macro_rules! table {
    ($(#[$m:meta])* $name:ident { $($field:ident : $ty:ty = ($col:literal, $cty:expr)),* $(,)? }) => {
        $(#[$m])*
        pub struct $name {
            $(pub $field: $ty,)*
            /// The tenant of every row (`TenantId`, docs/tenancy.md): one value per block, set
            /// before a request is decoded; the tables' sorting keys lead with it.
            pub tenant: $crate::native::ConstCol,
            /// Rows written.
            pub rows: usize,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: Default::default(),)*
                    tenant: $crate::native::ConstCol::new($crate::tables::DEFAULT_TENANT),
                    rows: 0,
                }
            }
        }

        impl $name {
            pub fn clear(&mut self) {
                $($crate::native::Column::clear(&mut self.$field);)*
                $crate::native::Column::clear(&mut self.tenant);
                self.rows = 0;
            }

            fn block_columns(&self) -> Vec<$crate::native::BlockColumn<'_>> {
                vec![
                    ("TenantId", "String", self.tenant.with_rows(self.rows) as &dyn $crate::native::Column),
                    $(($col, $cty, &self.$field as &dyn $crate::native::Column),)*
                ]
            }

            /// Bytes of the Native block of all rows written since `clear`.
            pub fn encoded_len(&self) -> usize {
                $crate::native::block_len(self.rows, &self.block_columns())
            }

            /// Writes the Native block into `buf` of exactly `encoded_len()` bytes.
            pub fn encode_into(&self, buf: &mut [u8]) {
                $crate::native::encode_block_into(self.rows, &self.block_columns(), buf)
            }

            /// The Native block of all rows written since `clear`.
            pub fn encode(&self) -> Vec<u8> {
                $crate::native::encode_block(self.rows, &self.block_columns())
            }
        }
    };
}
pub(crate) use table;

pub const UNKNOWN_SERVICE: &[u8] = b"unknown_service";
/// The tenant of rows written with tenancy off, and of every row written before tenancy.
pub const DEFAULT_TENANT: &[u8] = b"default";

/// Limits applied while decoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_attributes: usize,
}

/// Counts of one decode.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Items written.
    pub items: u64,
    /// Items dropped as invalid or refused (includes `over_limit`).
    pub rejected: u64,
    /// Items refused because their series was new and over the tenant's series limit.
    pub over_limit: u64,
    /// Why the first rejected item was dropped.
    pub rejection_reason: Option<String>,
}

impl Stats {
    pub fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.rejection_reason.is_none() {
            self.rejection_reason = Some(reason());
        }
    }
}

/// The current resource, rendered once and repeated on every row of its items.
#[derive(Default)]
pub struct Resource {
    pub service: Vec<u8>,
    pub attrs: MapRow,
    /// One kind letter per attribute ([`anyvalue::kind`]), for tables that store them.
    pub kinds: Vec<u8>,
    pub schema_url: Vec<u8>,
}

/// The current instrumentation scope, rendered once.
#[derive(Default)]
pub struct Scope {
    pub name: Vec<u8>,
    pub version: Vec<u8>,
    pub attrs: MapRow,
    pub schema_url: Vec<u8>,
}

/// Where rendered attributes go: a map column row or a kept-aside row.
pub trait MapSink {
    fn entry(&mut self, k: &[u8], v: &[u8]);
}

impl MapSink for MapCol {
    #[inline]
    fn entry(&mut self, k: &[u8], v: &[u8]) {
        self.push_entry(k, v);
    }
}

impl MapSink for MapRow {
    #[inline]
    fn entry(&mut self, k: &[u8], v: &[u8]) {
        self.push(k, v);
    }
}

/// Counts the attributes of one item against the limit.
pub struct AttrCount {
    n: usize,
    max: usize,
    what: &'static str,
}

impl AttrCount {
    #[inline]
    pub fn new(limits: &Limits, what: &'static str) -> Self {
        AttrCount {
            n: 0,
            max: limits.max_attributes,
            what,
        }
    }

    #[inline]
    fn add(&mut self) -> Result<()> {
        self.n += 1;
        if self.n > self.max {
            bail!("{} has more than {} attributes", self.what, self.max);
        }
        Ok(())
    }

    /// Counts one attribute (a KeyValue message, `v`) and renders it into `sink`; returns its key
    /// and rendered value.
    #[inline]
    pub fn put<'a>(
        &mut self,
        v: Value<'a>,
        what: &str,
        sink: &mut impl MapSink,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(&'a [u8], &'a [u8])> {
        self.put_with_kind(v, what, sink, scratch, None)
    }

    /// As [`AttrCount::put`], also appending the value's kind letter to `kinds`.
    #[inline]
    pub fn put_typed<'a>(
        &mut self,
        v: Value<'a>,
        what: &str,
        sink: &mut impl MapSink,
        scratch: &'a mut Vec<u8>,
        kinds: &mut Vec<u8>,
    ) -> Result<(&'a [u8], &'a [u8])> {
        self.put_with_kind(v, what, sink, scratch, Some(kinds))
    }

    #[inline(always)]
    fn put_with_kind<'a>(
        &mut self,
        v: Value<'a>,
        what: &str,
        sink: &mut impl MapSink,
        scratch: &'a mut Vec<u8>,
        kinds: Option<&mut Vec<u8>>,
    ) -> Result<(&'a [u8], &'a [u8])> {
        self.add()?;
        let (k, v) = anyvalue::key_value(v.bytes(what)?)?;
        if let Some(kinds) = kinds {
            kinds.push(anyvalue::kind(v)?);
        }
        let text = anyvalue::render(v, scratch)?;
        sink.entry(k, text);
        Ok((k, text))
    }
}

/// Reads a Resource message (attributes = 1).
fn read_resource(
    msg: &[u8],
    res: &mut Resource,
    scratch: &mut Vec<u8>,
    limits: &Limits,
) -> Result<()> {
    let mut found_service = false;
    let mut count = AttrCount::new(limits, "resource");
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        if f == 1 {
            let (k, text) = count.put_typed(
                v,
                "Resource.attributes",
                &mut res.attrs,
                scratch,
                &mut res.kinds,
            )?;
            if k == b"service.name" {
                res.service.clear();
                res.service.extend_from_slice(text);
                found_service = true;
            }
        }
    }
    if !found_service {
        res.service.clear();
        res.service.extend_from_slice(UNKNOWN_SERVICE);
    }
    Ok(())
}

/// A table decoder: what [`walk`] and the signal dispatch in `decode` need to drive it.
pub trait ItemDecoder {
    /// The table its rows are for.
    const TABLE: &'static str;
    /// Message names for errors: `[request, Resource*, Scope*]`.
    const NAMES: [&'static str; 3];
    /// Decodes one request, appending rows to the table (cleared first).
    fn decode(&mut self, body: &[u8], limits: &Limits) -> Result<()>;
    /// The tenant of the rows of the next decodes.
    fn set_tenant(&mut self, tenant: &[u8]);
    /// Rows written so far.
    fn rows(&self) -> usize;
    /// Decodes one item (span, log record, metric) into rows.
    fn item(&mut self, msg: &[u8], limits: &Limits) -> Result<()>;
    fn envelope(&mut self) -> (&mut Resource, &mut Scope, &mut Vec<u8>);
    /// Appends the current resource's columns to the last `n` rows.
    fn fill_resource(&mut self, n: usize);
    /// Appends the current scope's columns to the last `n` rows.
    fn fill_scope(&mut self, n: usize);
    /// The counts of the last decode (leaves them zero).
    fn take_stats(&mut self) -> Stats;
    /// Bytes of the Native block of the rows written.
    fn encoded_len(&self) -> usize;
    /// Writes the Native block into `buf` of exactly `encoded_len()` bytes.
    fn encode_into(&self, buf: &mut [u8]);
}

/// Declares a table's decoder: its state reused across requests (the table, the counts, the
/// current resource and scope, scratch space) and its [`ItemDecoder`] impl, in which the method
/// `$item` decodes one item. The table has the standard resource/scope columns.
macro_rules! decoder {
    ($(#[$m:meta])* $name:ident($table:ty, $table_name:expr) {
        names: [$request:literal, $resource:literal, $scope:literal $(,)?],
        item: $item:ident
        $(, resource_kinds: $rkinds:ident)? $(,)?
    }) => {
        $(#[$m])*
        #[derive(Default)]
        pub struct $name {
            pub table: $table,
            pub stats: $crate::tables::Stats,
            resource: $crate::tables::Resource,
            scope: $crate::tables::Scope,
            scratch: Vec<u8>,
            /// Kind letters of the current item's attributes (tables that store them).
            pub kinds: Vec<u8>,
            /// The tenant's series limit (metrics only; `decode::decode_rows_limited`).
            pub series_gate: Option<$crate::series_limit::Gate>,
            /// An item's attributes rendered aside, for its series id (with `series_gate`).
            #[allow(dead_code)] // read by the metrics decoder only
            gate_row: $crate::native::MapRow,
        }

        impl $crate::tables::ItemDecoder for $name {
            const TABLE: &'static str = $table_name;
            const NAMES: [&'static str; 3] = [$request, $resource, $scope];

            fn decode(
                &mut self,
                body: &[u8],
                limits: &$crate::tables::Limits,
            ) -> $crate::error::Result<()> {
                self.table.clear();
                self.stats = $crate::tables::Stats::default();
                $crate::tables::walk(self, body, limits)
            }

            fn rows(&self) -> usize {
                self.table.rows
            }

            fn set_tenant(&mut self, tenant: &[u8]) {
                self.table.tenant.set(tenant);
            }

            fn item(
                &mut self,
                msg: &[u8],
                limits: &$crate::tables::Limits,
            ) -> $crate::error::Result<()> {
                self.$item(msg, limits)
            }

            fn envelope(
                &mut self,
            ) -> (&mut $crate::tables::Resource, &mut $crate::tables::Scope, &mut Vec<u8>) {
                (&mut self.resource, &mut self.scope, &mut self.scratch)
            }

            fn fill_resource(&mut self, n: usize) {
                let (t, r) = (&mut self.table, &self.resource);
                for _ in 0..n {
                    t.service_name.push(&r.service);
                    t.resource_attributes.push_row(&r.attrs);
                    $(t.$rkinds.push(&r.kinds);)?
                    t.resource_schema_url.push(&r.schema_url);
                }
            }

            fn fill_scope(&mut self, n: usize) {
                let (t, s) = (&mut self.table, &self.scope);
                for _ in 0..n {
                    t.scope_name.push(&s.name);
                    t.scope_version.push(&s.version);
                    t.scope_attributes.push_row(&s.attrs);
                    t.scope_schema_url.push(&s.schema_url);
                }
            }

            fn take_stats(&mut self) -> $crate::tables::Stats {
                std::mem::take(&mut self.stats)
            }

            fn encoded_len(&self) -> usize {
                self.table.encoded_len()
            }

            fn encode_into(&self, buf: &mut [u8]) {
                self.table.encode_into(buf)
            }
        }
    };
}
pub(crate) use decoder;

/// Walks an `Export*ServiceRequest` (resource_* = 1) > `Resource*` (resource = 1, scope_* = 2,
/// schema_url = 3) > `Scope*` (scope = 1, items = 2, schema_url = 3), in one pass.
///
/// The resource and scope columns are filled in bulk after each scope's and resource's items:
/// protobuf allows the resource, scope and schema URLs after the items, and filling afterwards
/// avoids a second pass over the items' bytes.
pub fn walk<D: ItemDecoder>(d: &mut D, body: &[u8], limits: &Limits) -> Result<()> {
    let [request, resource_msg, scope_msg] = D::NAMES;
    let mut r = Reader::new(body);
    while let Some((f, v)) = r.next()? {
        if f != 1 {
            continue;
        }
        let msg = v.bytes(request)?;
        let start = d.rows();
        {
            let (res, _, _) = d.envelope();
            res.attrs.clear();
            res.kinds.clear();
            res.schema_url.clear();
            res.service.clear();
            res.service.extend_from_slice(UNKNOWN_SERVICE);
        }
        let mut rr = Reader::new(msg);
        while let Some((f, v)) = rr.next()? {
            match f {
                1 => {
                    let (res, _, scratch) = d.envelope();
                    res.attrs.clear();
                    res.kinds.clear();
                    read_resource(v.bytes(resource_msg)?, res, scratch, limits)?;
                }
                2 => walk_scope(d, v.bytes(resource_msg)?, limits, scope_msg)?,
                3 => {
                    let (res, _, _) = d.envelope();
                    res.schema_url.clear();
                    res.schema_url.extend_from_slice(v.str(resource_msg)?);
                }
                _ => {}
            }
        }
        let n = d.rows() - start;
        d.fill_resource(n);
    }
    Ok(())
}

fn walk_scope<D: ItemDecoder>(d: &mut D, msg: &[u8], limits: &Limits, what: &str) -> Result<()> {
    let start = d.rows();
    {
        let (_, scope, _) = d.envelope();
        scope.name.clear();
        scope.version.clear();
        scope.attrs.clear();
        scope.schema_url.clear();
    }
    let mut r = Reader::new(msg);
    while let Some((f, v)) = r.next()? {
        match f {
            1 => {
                let (_, scope, scratch) = d.envelope();
                read_scope(v.bytes(what)?, scope, scratch, limits)?;
            }
            2 => d.item(v.bytes(what)?, limits)?,
            3 => {
                let (_, scope, _) = d.envelope();
                scope.schema_url.clear();
                scope.schema_url.extend_from_slice(v.str(what)?);
            }
            _ => {}
        }
    }
    let n = d.rows() - start;
    d.fill_scope(n);
    Ok(())
}

/// Reads an InstrumentationScope message.
fn read_scope(msg: &[u8], scope: &mut Scope, scratch: &mut Vec<u8>, limits: &Limits) -> Result<()> {
    scope.name.clear();
    scope.version.clear();
    scope.attrs.clear();
    let mut count = AttrCount::new(limits, "scope");
    let mut s = Reader::new(msg);
    while let Some((f, v)) = s.next()? {
        match f {
            1 => scope
                .name
                .extend_from_slice(v.str("InstrumentationScope.name")?),
            2 => scope
                .version
                .extend_from_slice(v.str("InstrumentationScope.version")?),
            3 => {
                count.put(
                    v,
                    "InstrumentationScope.attributes",
                    &mut scope.attrs,
                    scratch,
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// An id as its fixed-size bytes: empty means all zero; any other length is invalid.
#[inline]
pub fn id<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    if b.is_empty() {
        Some([0; N])
    } else {
        b.try_into().ok()
    }
}

/// A `fixed64` nanosecond timestamp as a DateTime64(9) value.
#[inline]
pub fn nanos(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Checks an id's length; `Err` carries the reason an item is rejected.
#[inline]
pub fn check_id(b: &[u8], want: usize, what: &str) -> std::result::Result<(), String> {
    if b.is_empty() || b.len() == want {
        Ok(())
    } else {
        Err(format!(
            "{what} has {} bytes, expected {want} (or empty)",
            b.len()
        ))
    }
}
