//! ClickHouse Native format: column builders and blocks.
//!
//! A block, as ClickHouse 26.9 reads it over HTTP (`INSERT ... FORMAT Native`) and as this module
//! writes it (checked by dumping `SELECT ... FORMAT Native` from the server: there is no
//! custom-serialization byte after the type name on this path):
//!
//! ```text
//! varuint columns, varuint rows, then per column:
//!   varuint len + name, varuint len + type name, column data
//! ```
//!
//! Column data, per type:
//! - fixed-width numbers (UInt8/32/64, Int8/32/64, Float64, Bool, Enum8, DateTime64(9) as Int64
//!   nanoseconds): the values little-endian, back to back;
//! - `String`: per row varuint length + bytes; `FixedString(N)`: N raw bytes per row;
//! - `Array(T)`: UInt64 cumulative end offsets, one per row, then the flattened `T` column;
//! - `Map(K, V)`: like `Array(Tuple(K, V))`: offsets, then the keys column, then the values column;
//! - `Nullable(T)`: one byte per row (1 = NULL), then the `T` column (a default value under NULLs).
//!
//! Blocks declare `String` for `LowCardinality(String)` columns and `Map(String, String)` for
//! `Map(LowCardinality(String), String)`: ClickHouse converts on insert, so no dictionaries here.
//! Timestamps must be declared `DateTime64(9)`: an `Int64` column inserted into `DateTime64(9)` is
//! read as seconds. Several blocks for one table concatenate into one INSERT body.

/// Appends `v` as a ClickHouse varuint (LEB128).
#[inline]
pub fn put_varuint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
/// Splits a string serialized by `put_varuint(len)` + bytes (as `MapRow::push` writes it) off
/// the front of `b`; `b` must hold whole strings (it does: only `push` writes them).
fn take_string(b: &[u8]) -> (&[u8], &[u8]) {
    let (mut len, mut shift, mut i) = (0usize, 0u32, 0usize);
    while i < b.len() {
        let byte = b[i];
        i += 1;
        len |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = (i + len).min(b.len());
    (&b[i..end], &b[end..])
}

fn varuint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A column's serialized data.
pub trait Column {
    /// Rows held (for the consistency check of a block).
    fn rows(&self) -> usize;
    /// Bytes `encode` appends.
    fn encoded_len(&self) -> usize;
    fn encode(&self, out: &mut SliceWriter<'_>);
    fn clear(&mut self);
}

/// Writes consecutive byte strings into a buffer sized in advance (e.g. a new Python `bytes`).
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, pos: 0 }
    }

    /// Panics if the buffer is too small: `encoded_len` and `encode` disagree, a bug.
    #[inline]
    pub fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }

    #[inline]
    pub fn put_varuint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.put(&[(v as u8) | 0x80]);
            v >>= 7;
        }
        self.put(&[v as u8]);
    }

    pub fn written(&self) -> usize {
        self.pos
    }
}

/// `String` (or `LowCardinality(String)`): varuint length + bytes per row.
#[derive(Default)]
pub struct StringCol {
    pub data: Vec<u8>,
    rows: usize,
}

impl StringCol {
    #[inline]
    pub fn push(&mut self, s: &[u8]) {
        put_varuint(&mut self.data, s.len() as u64);
        self.data.extend_from_slice(s);
        self.rows += 1;
    }

    /// Appends `n` rows already serialized in this column's layout.
    #[inline]
    pub fn extend_serialized(&mut self, bytes: &[u8], n: usize) {
        self.data.extend_from_slice(bytes);
        self.rows += n;
    }
}

impl Column for StringCol {
    fn rows(&self) -> usize {
        self.rows
    }
    fn encoded_len(&self) -> usize {
        self.data.len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        out.put(&self.data);
    }
    fn clear(&mut self) {
        self.data.clear();
        self.rows = 0;
    }
}

/// One value on every row (`TenantId`): the value is kept serialized once and repeated when the
/// block is encoded, so the builders never write it per row. The row count is the block's, set when
/// the block's columns are listed (a `Cell`, as listing takes `&self`).
pub struct ConstCol {
    serialized: Vec<u8>,
    rows: std::cell::Cell<usize>,
}

impl ConstCol {
    pub fn new(value: &[u8]) -> Self {
        let mut c = ConstCol {
            serialized: Vec::new(),
            rows: std::cell::Cell::new(0),
        };
        c.set(value);
        c
    }

    /// The value of every row from now on.
    pub fn set(&mut self, value: &[u8]) {
        self.serialized.clear();
        put_varuint(&mut self.serialized, value.len() as u64);
        self.serialized.extend_from_slice(value);
    }

    /// The value, as set.
    pub fn value(&self) -> &[u8] {
        let mut n = 0;
        while self.serialized[n] & 0x80 != 0 {
            n += 1;
        }
        &self.serialized[n + 1..]
    }

    /// Makes the column `rows` rows long (the block it is listed in).
    pub fn with_rows(&self, rows: usize) -> &Self {
        self.rows.set(rows);
        self
    }
}

impl Column for ConstCol {
    fn rows(&self) -> usize {
        self.rows.get()
    }
    fn encoded_len(&self) -> usize {
        self.serialized.len() * self.rows.get()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        for _ in 0..self.rows.get() {
            out.put(&self.serialized);
        }
    }
    fn clear(&mut self) {
        self.rows.set(0);
    }
}

/// `FixedString(N)`: N raw bytes per row.
pub struct FixedCol<const N: usize> {
    pub data: Vec<u8>,
}

impl<const N: usize> Default for FixedCol<N> {
    fn default() -> Self {
        FixedCol { data: Vec::new() }
    }
}

impl<const N: usize> FixedCol<N> {
    #[inline]
    pub fn push(&mut self, v: &[u8; N]) {
        self.data.extend_from_slice(v);
    }
}

impl<const N: usize> Column for FixedCol<N> {
    fn rows(&self) -> usize {
        self.data.len() / N
    }
    fn encoded_len(&self) -> usize {
        self.data.len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        out.put(&self.data);
    }
    fn clear(&mut self) {
        self.data.clear();
    }
}

/// A fixed-width little-endian value.
pub trait Pod: Copy + Default {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl Pod for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
pod!(u8, i8, u32, i32, u64, i64, f64);

/// A fixed-width number column (UInt*, Int*, Float64, Bool, Enum8, DateTime64(9)).
pub struct PodCol<T: Pod> {
    pub data: Vec<u8>,
    _t: std::marker::PhantomData<T>,
}

impl<T: Pod> Default for PodCol<T> {
    fn default() -> Self {
        PodCol {
            data: Vec::new(),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Pod> PodCol<T> {
    #[inline]
    pub fn push(&mut self, v: T) {
        v.put(&mut self.data);
    }
}

impl<T: Pod> Column for PodCol<T> {
    fn rows(&self) -> usize {
        self.data.len() / T::SIZE
    }
    fn encoded_len(&self) -> usize {
        self.data.len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        out.put(&self.data);
    }
    fn clear(&mut self) {
        self.data.clear();
    }
}

/// `Nullable(T)`: null map, then values.
pub struct NullableCol<T: Pod> {
    nulls: Vec<u8>,
    values: PodCol<T>,
}

impl<T: Pod> Default for NullableCol<T> {
    fn default() -> Self {
        NullableCol {
            nulls: Vec::new(),
            values: PodCol::default(),
        }
    }
}

impl<T: Pod> NullableCol<T> {
    #[inline]
    pub fn push(&mut self, v: Option<T>) {
        self.nulls.push(v.is_none() as u8);
        self.values.push(v.unwrap_or_default());
    }
}

impl<T: Pod> Column for NullableCol<T> {
    fn rows(&self) -> usize {
        self.nulls.len()
    }
    fn encoded_len(&self) -> usize {
        self.nulls.len() + self.values.encoded_len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        out.put(&self.nulls);
        self.values.encode(out);
    }
    fn clear(&mut self) {
        self.nulls.clear();
        self.values.clear();
    }
}

/// `Array(T)`: push elements into `inner`, then `end_row()`.
#[derive(Default)]
pub struct ArrayCol<C: Column> {
    offsets: PodCol<u64>,
    total: u64,
    pub inner: C,
}

impl<C: Column> ArrayCol<C> {
    /// Closes the current row: its elements are those pushed into `inner` since the last call.
    #[inline]
    pub fn end_row(&mut self) {
        self.total = self.inner.rows() as u64;
        self.offsets.push(self.total);
    }
}

impl<C: Column> Column for ArrayCol<C> {
    fn rows(&self) -> usize {
        self.offsets.rows()
    }
    fn encoded_len(&self) -> usize {
        self.offsets.encoded_len() + self.inner.encoded_len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        self.offsets.encode(out);
        self.inner.encode(out);
    }
    fn clear(&mut self) {
        self.offsets.clear();
        self.inner.clear();
        self.total = 0;
    }
}

/// A rendered `Map(String, String)` row kept aside (resource and scope attributes are repeated on
/// every row of their items): keys and values already in `String` column layout.
#[derive(Default)]
pub struct MapRow {
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    pub len: usize,
}

impl MapRow {
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.len = 0;
    }

    /// The (key, value) entries in the order pushed.
    pub fn entries(&self) -> Vec<(&[u8], &[u8])> {
        let (mut ks, mut vs) = (&self.keys[..], &self.values[..]);
        let mut out = Vec::with_capacity(self.len);
        for _ in 0..self.len {
            let (k, rest) = take_string(ks);
            ks = rest;
            let (v, rest) = take_string(vs);
            vs = rest;
            out.push((k, v));
        }
        out
    }

    #[inline]
    pub fn push(&mut self, k: &[u8], v: &[u8]) {
        put_varuint(&mut self.keys, k.len() as u64);
        self.keys.extend_from_slice(k);
        put_varuint(&mut self.values, v.len() as u64);
        self.values.extend_from_slice(v);
        self.len += 1;
    }
}

/// `Map(String, String)`: push entries, then `end_row()`.
#[derive(Default)]
pub struct MapCol {
    offsets: PodCol<u64>,
    pub keys: StringCol,
    pub values: StringCol,
}

impl MapCol {
    #[inline]
    pub fn push_entry(&mut self, k: &[u8], v: &[u8]) {
        self.keys.push(k);
        self.values.push(v);
    }

    #[inline]
    pub fn end_row(&mut self) {
        self.offsets.push(self.keys.rows() as u64);
    }

    /// Appends a whole pre-rendered row.
    #[inline]
    pub fn push_row(&mut self, row: &MapRow) {
        self.keys.extend_serialized(&row.keys, row.len);
        self.values.extend_serialized(&row.values, row.len);
        self.end_row();
    }
}

impl Column for MapCol {
    fn rows(&self) -> usize {
        self.offsets.rows()
    }
    fn encoded_len(&self) -> usize {
        self.offsets.encoded_len() + self.keys.encoded_len() + self.values.encoded_len()
    }
    fn encode(&self, out: &mut SliceWriter<'_>) {
        self.offsets.encode(out);
        self.keys.encode(out);
        self.values.encode(out);
    }
    fn clear(&mut self) {
        self.offsets.clear();
        self.keys.clear();
        self.values.clear();
    }
}

/// One column of a block: name, declared type, data.
pub type BlockColumn<'a> = (&'static str, &'static str, &'a dyn Column);

/// Bytes of the block of `rows` rows over `cols`.
///
/// Panics if a column does not hold `rows` rows: the table builders write every column of every
/// row, and a mismatch would make ClickHouse misread the whole INSERT.
pub fn block_len(rows: usize, cols: &[BlockColumn<'_>]) -> usize {
    let mut len = varuint_len(cols.len() as u64) + varuint_len(rows as u64);
    for (name, ty, col) in cols {
        assert_eq!(
            col.rows(),
            rows,
            "column {name} holds {} rows, block has {rows}",
            col.rows()
        );
        len +=
            varuint_len(name.len() as u64) + name.len() + varuint_len(ty.len() as u64) + ty.len();
        len += col.encoded_len();
    }
    len
}

/// Serializes the block into `buf`, which must be exactly `block_len` bytes.
pub fn encode_block_into(rows: usize, cols: &[BlockColumn<'_>], buf: &mut [u8]) {
    let mut out = SliceWriter::new(buf);
    out.put_varuint(cols.len() as u64);
    out.put_varuint(rows as u64);
    for (name, ty, col) in cols {
        out.put_varuint(name.len() as u64);
        out.put(name.as_bytes());
        out.put_varuint(ty.len() as u64);
        out.put(ty.as_bytes());
        col.encode(&mut out);
    }
    assert_eq!(out.written(), out.buf.len(), "block length mismatch");
}

/// Serializes a block of `rows` rows into a new exactly-sized buffer.
pub fn encode_block(rows: usize, cols: &[BlockColumn<'_>]) -> Vec<u8> {
    let mut out = vec![0; block_len(rows, cols)];
    encode_block_into(rows, cols, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layout_matches_clickhouse_dump() {
        // `SELECT 'ab' AS s, map('a','b') AS m, [1,2]::Array(UInt64) AS a,
        //  CAST(NULL AS Nullable(Int64)) AS n FORMAT Native` from ClickHouse 26.9.
        let mut s = StringCol::default();
        s.push(b"ab");
        let mut m = MapCol::default();
        m.push_entry(b"a", b"b");
        m.end_row();
        let mut a = ArrayCol::<PodCol<u64>>::default();
        a.inner.push(1);
        a.inner.push(2);
        a.end_row();
        let mut n = NullableCol::<i64>::default();
        n.push(None);
        let block = encode_block(
            1,
            &[
                ("s", "String", &s),
                ("m", "Map(String, String)", &m),
                ("a", "Array(UInt64)", &a),
                ("n", "Nullable(Int64)", &n),
            ],
        );
        let mut want = vec![4u8, 1, 1, b's', 6];
        want.extend_from_slice(b"String\x02ab\x01m\x13Map(String, String)");
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b']);
        want.extend_from_slice(b"\x01a\x0dArray(UInt64)");
        want.extend_from_slice(&[
            2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        ]);
        want.extend_from_slice(b"\x01n\x0fNullable(Int64)\x01");
        want.extend_from_slice(&[0; 8]);
        assert_eq!(block, want);
    }

    #[test]
    fn const_column_is_the_value_on_every_row() {
        let mut c = ConstCol::new(b"default");
        c.set(b"team-a");
        assert_eq!(c.value(), b"team-a");
        let mut s = StringCol::default();
        for _ in 0..3 {
            s.push(b"team-a");
        }
        let as_const = encode_block(3, &[("TenantId", "String", c.with_rows(3))]);
        let as_strings = encode_block(3, &[("TenantId", "String", &s)]);
        assert_eq!(as_const, as_strings);
        assert_eq!(
            encode_block(0, &[("TenantId", "String", c.with_rows(0))]).len(),
            2 + 9 + 7
        );
    }
}
