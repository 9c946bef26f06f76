//! Native blocks inserted into a real ClickHouse (the embedded server, started from the venv's
//! Python) and read back: every column type the table builders use, then one decoded request of
//! each signal into the real schema of `sql/migrations/0001_base.sql` (and 0008 for the trace kinds).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use _native::decode::{decode, Options, Signal};
use _native::native::{encode_block, ArrayCol, FixedCol, MapCol, NullableCol, PodCol, StringCol};
use _native::otlp::wire::{put_bytes, put_fixed32, put_fixed64, put_varint_field};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The embedded server process; stopped (SIGTERM, then SIGKILL) and its directory removed on drop.
struct Server {
    child: Child,
    root: PathBuf,
    url: String,
}

impl Server {
    fn start() -> Server {
        let python = std::env::var("PYO3_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
        let root =
            std::env::temp_dir().join(format!("otelingest-native-test-{}", std::process::id()));
        for sub in ["data", "etc", "log"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let (http, tcp) = (free_port(), free_port());
        let child = Command::new(&python)
            .args(["-m", "otelingest.clickhouse.embedded"])
            .arg(&root)
            .args([http.to_string(), tcp.to_string(), "0".into()])
            .env("PYTHONPATH", repo_root().join("python"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("log/stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (run `make install` first)",
                    python.display()
                )
            });
        let mut server = Server {
            child,
            root,
            url: format!("http://127.0.0.1:{http}"),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut r) = ureq::get(&format!("{}/ping", server.url)).call() {
                if r.body_mut().read_to_string().unwrap_or_default().trim() == "Ok." {
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let err =
                    std::fs::read_to_string(server.root.join("log/stderr.log")).unwrap_or_default();
                panic!("embedded ClickHouse exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "embedded ClickHouse did not answer /ping"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn query(&self, sql: &str) -> String {
        let mut r = ureq::post(&self.url)
            .config()
            .http_status_as_error(false)
            .build()
            .send(sql.as_bytes())
            .unwrap();
        let status = r.status();
        let body = r.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "{sql}\n-> {status}: {body}");
        body
    }

    fn insert(&self, table: &str, block: &[u8]) {
        let q = format!("INSERT INTO {table} FORMAT Native");
        let mut r = ureq::post(&format!("{}/?query={}", self.url, percent(&q)))
            .config()
            .http_status_as_error(false)
            .build()
            .send(block)
            .unwrap();
        let status = r.status();
        let body = r.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "{q} -> {status}: {body}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn now_nanos() -> u64 {
    // A minute ago: rows older than the tables' retention are dropped by TTL on insert.
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60)
        * 1_000_000_000
}

/// The versioned schema's raw tables (0001) and the attribute kinds the trace builder writes (0008),
/// rendered for one database (no cluster, 30-day retention).
fn create_schema(server: &Server, db: &str) {
    server.query(&format!("CREATE DATABASE {db}"));
    for file in ["0001_base.sql", "0008_attribute_kinds.sql"] {
        apply(server, db, file);
    }
}

fn apply(server: &Server, db: &str, file: &str) {
    let sql = std::fs::read_to_string(repo_root().join("sql/migrations").join(file)).unwrap();
    let mut text = String::new();
    for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
        text.push_str(line);
        text.push('\n');
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').unwrap() + i;
        let key = &rest[i + 2..end];
        out.push_str(&match key.split_once(':') {
            None if key == "db" => db.to_string(),
            None => String::new(),
            Some(("table", t)) => format!("{db}.{t}"),
            Some(("engine", e)) => e.to_string(),
            Some(("ttl", _)) => "30".to_string(),
            Some(_) => panic!("unknown placeholder {key}"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    for stmt in out.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        server.query(stmt);
    }
}

fn every_column_type(server: &Server) {
    server.query(
        "CREATE TABLE types (
            ts DateTime64(9), fs16 FixedString(16), fs8 FixedString(8), s String, lc LowCardinality(String),
            u8 UInt8, u32 UInt32, u64 UInt64, i32 Int32, f64 Float64, b Bool,
            e8 Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2),
            m Map(LowCardinality(String), String),
            ni Nullable(Int64), nf Nullable(Float64),
            au64 Array(UInt64), af64 Array(Float64),
            n Nested(t DateTime64(9), name LowCardinality(String), attrs Map(LowCardinality(String), String), id FixedString(8))
        ) ENGINE = MergeTree ORDER BY tuple()",
    );
    let rows = 2;
    let mut ts = PodCol::<i64>::default();
    let mut fs16 = FixedCol::<16>::default();
    let mut fs8 = FixedCol::<8>::default();
    let (mut s, mut lc) = (StringCol::default(), StringCol::default());
    let mut u8c = PodCol::<u8>::default();
    let mut u32c = PodCol::<u32>::default();
    let mut u64c = PodCol::<u64>::default();
    let mut i32c = PodCol::<i32>::default();
    let mut f64c = PodCol::<f64>::default();
    let mut b = PodCol::<u8>::default();
    let mut e8 = PodCol::<i8>::default();
    let mut m = MapCol::default();
    let mut ni = NullableCol::<i64>::default();
    let mut nf = NullableCol::<f64>::default();
    let mut au64 = ArrayCol::<PodCol<u64>>::default();
    let mut af64 = ArrayCol::<PodCol<f64>>::default();
    let mut nt = ArrayCol::<PodCol<i64>>::default();
    let mut nname = ArrayCol::<StringCol>::default();
    let mut nattrs = ArrayCol::<MapCol>::default();
    let mut nid = ArrayCol::<FixedCol<8>>::default();

    ts.push(1_700_000_000_123_456_789);
    ts.push(0);
    fs16.push(&[0xab; 16]);
    fs16.push(&[0; 16]);
    fs8.push(&[1, 2, 3, 4, 5, 6, 7, 8]);
    fs8.push(&[0; 8]);
    s.push("héllo".as_bytes());
    s.push(b"");
    lc.push(b"svc");
    lc.push(b"svc");
    u8c.push(255);
    u8c.push(0);
    u32c.push(u32::MAX);
    u32c.push(1);
    u64c.push(u64::MAX);
    u64c.push(2);
    i32c.push(-5);
    i32c.push(i32::MAX);
    f64c.push(1.5);
    f64c.push(-0.25);
    b.push(1);
    b.push(0);
    e8.push(2);
    e8.push(0);
    m.push_entry(b"k1", b"v1");
    m.push_entry(b"k2", b"");
    m.end_row();
    m.end_row();
    ni.push(Some(-9_007_199_254_740_993));
    ni.push(None);
    nf.push(None);
    nf.push(Some(2.5));
    au64.inner.push(1);
    au64.inner.push(u64::MAX);
    au64.end_row();
    au64.end_row();
    af64.end_row();
    af64.inner.push(0.5);
    af64.end_row();
    // Nested: row 1 has two elements, row 2 none.
    nt.inner.push(1_700_000_000_000_000_001);
    nt.inner.push(1_700_000_000_000_000_002);
    nname.inner.push(b"a");
    nname.inner.push(b"b");
    nattrs.inner.push_entry(b"x", b"1");
    nattrs.inner.end_row();
    nattrs.inner.end_row();
    nid.inner.push(&[9; 8]);
    nid.inner.push(&[0; 8]);
    for c in [
        &mut nt as &mut dyn FnEndRow,
        &mut nname,
        &mut nattrs,
        &mut nid,
    ] {
        c.end_row_twice_first_full();
    }
    let block = encode_block(
        rows,
        &[
            ("ts", "DateTime64(9)", &ts),
            ("fs16", "FixedString(16)", &fs16),
            ("fs8", "FixedString(8)", &fs8),
            ("s", "String", &s),
            ("lc", "String", &lc),
            ("u8", "UInt8", &u8c),
            ("u32", "UInt32", &u32c),
            ("u64", "UInt64", &u64c),
            ("i32", "Int32", &i32c),
            ("f64", "Float64", &f64c),
            ("b", "Bool", &b),
            ("e8", "Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2)", &e8),
            ("m", "Map(String, String)", &m),
            ("ni", "Nullable(Int64)", &ni),
            ("nf", "Nullable(Float64)", &nf),
            ("au64", "Array(UInt64)", &au64),
            ("af64", "Array(Float64)", &af64),
            ("n.t", "Array(DateTime64(9))", &nt),
            ("n.name", "Array(String)", &nname),
            ("n.attrs", "Array(Map(String, String))", &nattrs),
            ("n.id", "Array(FixedString(8))", &nid),
        ],
    );
    server.insert("types", &block);
    let got = server.query(
        "SELECT toUnixTimestamp64Nano(ts), hex(fs16), hex(fs8), s, lc, u8, u32, u64, i32, f64, b, e8, m, ni, nf,
                au64, af64, arrayMap(x -> toUnixTimestamp64Nano(x), n.t), n.name, n.attrs, arrayMap(x -> hex(x), n.id),
                toTypeName(lc)
         FROM types ORDER BY u64 DESC FORMAT TSV",
    );
    let want = [
        "1700000000123456789\tABABABABABABABABABABABABABABABAB\t0102030405060708\théllo\tsvc\t255\t4294967295\t18446744073709551615\t-5\t1.5\ttrue\tERROR\t{'k1':'v1','k2':''}\t-9007199254740993\t\\N\t[1,18446744073709551615]\t[]\t[1700000000000000001,1700000000000000002]\t['a','b']\t[{'x':'1'},{}]\t['0909090909090909','0000000000000000']\tLowCardinality(String)",
        "0\t00000000000000000000000000000000\t0000000000000000\t\tsvc\t0\t1\t2\t2147483647\t-0.25\tfalse\tUNSET\t{}\t\\N\t2.5\t[]\t[0.5]\t[]\t[]\t[]\t[]\tLowCardinality(String)",
    ];
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}

/// Closes the first row with every element pushed so far and the second with none.
trait FnEndRow {
    fn end_row_twice_first_full(&mut self);
}

impl<C: _native::native::Column> FnEndRow for ArrayCol<C> {
    fn end_row_twice_first_full(&mut self) {
        self.end_row();
        self.end_row();
    }
}

fn any_str(s: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes(&mut b, 1, s);
    b
}

fn key_value(k: &[u8], any: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes(&mut b, 1, k);
    put_bytes(&mut b, 2, any);
    b
}

/// Wraps `item` as Export*ServiceRequest { resource { service.name }, scope { name }, item }.
fn request(item_field: u32, item: &[u8], scope_item_field: u32) -> Vec<u8> {
    let mut resource = Vec::new();
    put_bytes(
        &mut resource,
        1,
        &key_value(b"service.name", &any_str(b"svc")),
    );
    let mut scope = Vec::new();
    put_bytes(&mut scope, 1, b"lib");
    let mut scope_items = Vec::new();
    put_bytes(&mut scope_items, 1, &scope);
    put_bytes(&mut scope_items, scope_item_field, item);
    let mut rs = Vec::new();
    put_bytes(&mut rs, 1, &resource);
    put_bytes(&mut rs, 2, &scope_items);
    let _ = item_field;
    let mut req = Vec::new();
    put_bytes(&mut req, 1, &rs);
    req
}

fn decoded_requests_into_real_schema(server: &Server) {
    let db = "otel_native_test";
    create_schema(server, db);
    let t = now_nanos();

    let mut span = Vec::new();
    put_bytes(&mut span, 1, &[7; 16]);
    put_bytes(&mut span, 2, &[8; 8]);
    put_bytes(&mut span, 5, b"GET /");
    put_varint_field(&mut span, 6, 2);
    put_fixed64(&mut span, 7, t);
    put_fixed64(&mut span, 8, t + 1_000);
    put_bytes(
        &mut span,
        9,
        &key_value(b"http.status_code", &{
            let mut b = Vec::new();
            put_varint_field(&mut b, 3, 200);
            b
        }),
    );
    put_fixed32(&mut span, 16, 1);
    let out = decode(Signal::Traces, &request(1, &span, 2), &Options::default()).unwrap();
    server.insert(&format!("{db}.otel_traces"), &out.blocks[0].2);
    let got = server.query(&format!(
        "SELECT hex(TraceId), SpanName, SpanKind, Duration, ServiceName, ScopeName, SpanAttributes, Flags,
                toUnixTimestamp64Nano(Timestamp) = {t}, IsRoot, SpanAttributeKinds
         FROM {db}.otel_traces JOIN {db}.otel_trace_index USING (TraceId) FORMAT TSV"
    ));
    assert_eq!(got.trim(), "07070707070707070707070707070707\tGET /\tSERVER\t1000\tsvc\tlib\t{'http.status_code':'200'}\t1\t1\t1\ti");

    let mut log = Vec::new();
    put_fixed64(&mut log, 11, t);
    put_varint_field(&mut log, 2, 9);
    put_bytes(&mut log, 3, b"INFO");
    put_bytes(&mut log, 5, &any_str(b"hello"));
    let out = decode(Signal::Logs, &request(1, &log, 2), &Options::default()).unwrap();
    server.insert(&format!("{db}.otel_logs"), &out.blocks[0].2);
    let got = server.query(&format!(
        "SELECT Timestamp = ObservedTimestamp, SeverityNumber, SeverityText, Body, ServiceName, hex(TraceId) FROM {db}.otel_logs FORMAT TSV"
    ));
    assert_eq!(
        got.trim(),
        "1\t9\tINFO\thello\tsvc\t00000000000000000000000000000000"
    );

    let mut point = Vec::new();
    put_fixed64(&mut point, 3, t);
    put_fixed64(&mut point, 6, (-7i64) as u64);
    let mut sum = Vec::new();
    put_bytes(&mut sum, 1, &point);
    put_varint_field(&mut sum, 2, 2);
    put_varint_field(&mut sum, 3, 1);
    let mut metric = Vec::new();
    put_bytes(&mut metric, 1, b"requests");
    put_bytes(&mut metric, 7, &sum);
    let out = decode(
        Signal::Metrics,
        &request(1, &metric, 2),
        &Options::default(),
    )
    .unwrap();
    server.insert(&format!("{db}.otel_metrics"), &out.blocks[0].2);
    let got = server.query(&format!(
        "SELECT MetricName, MetricType, AggregationTemporality, IsMonotonic, Value, ValueInt, Sum, SeriesId != 0
         FROM {db}.otel_metrics FORMAT TSV"
    ));
    assert_eq!(
        got.trim(),
        "requests\tSum\tCumulative\ttrue\t-7\t-7\t\\N\t1"
    );
}

#[test]
fn native_blocks_round_trip_through_clickhouse() {
    let server = Server::start();
    every_column_type(&server);
    decoded_requests_into_real_schema(&server);
}
