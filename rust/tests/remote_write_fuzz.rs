//! Property tests: no input makes the remote-write decoder panic. Arbitrary bytes (plain and
//! snappy) and mutations of a valid `WriteRequest` either decode or give a `DecodeError`; whatever
//! decodes encodes into blocks of consistent columns (encoding asserts that). Case counts are
//! bounded so this runs in seconds; `make fuzz` runs more.

use _native::otlp::wire::{put_bytes, put_fixed64, put_varint_field};
use _native::prom::remote_write::RemoteWriteDecoder;
use _native::tables::Limits;
use proptest::prelude::*;

const LIMITS: Limits = Limits { max_attributes: 16 };

fn msg(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    f(&mut b);
    b
}

fn label(k: &[u8], v: &[u8]) -> Vec<u8> {
    msg(|b| {
        put_bytes(b, 1, k);
        put_bytes(b, 2, v);
    })
}

/// A WriteRequest with two series (samples, an exemplar) and one metadata entry.
fn valid() -> Vec<u8> {
    let sample = |v: f64, t: u64| {
        msg(|b| {
            put_fixed64(b, 1, v.to_bits());
            put_varint_field(b, 2, t);
        })
    };
    let exemplar = msg(|b| {
        put_bytes(
            b,
            1,
            &label(b"trace_id", b"000102030405060708090a0b0c0d0e0f"),
        );
        put_fixed64(b, 2, 1.0f64.to_bits());
        put_varint_field(b, 3, 5);
    });
    let s1 = msg(|b| {
        put_bytes(b, 1, &label(b"__name__", b"up"));
        put_bytes(b, 1, &label(b"job", b"node"));
        put_bytes(b, 1, &label(b"instance", b"h:1"));
        put_bytes(b, 2, &sample(1.0, 1000));
        put_bytes(b, 2, &sample(f64::NAN, 2000));
        put_bytes(b, 3, &exemplar);
    });
    let s2 = msg(|b| {
        put_bytes(b, 2, &sample(3.0, 3000));
        put_bytes(b, 1, &label(b"__name__", b"x:y"));
    });
    let meta = msg(|b| {
        put_varint_field(b, 1, 1);
        put_bytes(b, 2, b"up");
        put_bytes(b, 4, b"help");
        put_bytes(b, 5, b"unit");
    });
    msg(|b| {
        put_bytes(b, 1, &s1);
        put_bytes(b, 1, &s2);
        put_bytes(b, 3, &meta);
    })
}

fn run(body: &[u8], snappy: bool) {
    let mut d = RemoteWriteDecoder::default();
    if d.decode(body, snappy, 1 << 20, &LIMITS, 0).is_ok() {
        let _ = d.blocks();
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        match *m {
            Mutation::Flip(i, x) => {
                let n = b.len();
                b[i % n] ^= x | 1;
            }
            Mutation::Truncate(i) => {
                let n = b.len();
                b.truncate(i % n);
            }
            Mutation::Insert(i, x) => {
                let n = b.len();
                b.insert(i % n, x);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), snappy in any::<bool>()) {
        run(&body, snappy);
    }

    #[test]
    fn mutated_valid_request_never_panics(muts in prop::collection::vec(mutation(), 1..4)) {
        run(&apply(valid(), &muts), false);
    }

    #[test]
    fn mutated_snappy_never_panics(muts in prop::collection::vec(mutation(), 1..3)) {
        let packed = snap::raw::Encoder::new().compress_vec(&valid()).unwrap();
        run(&apply(packed, &muts), true);
    }
}

#[test]
fn valid_request_decodes() {
    let mut d = RemoteWriteDecoder::default();
    d.decode(&valid(), false, 1 << 20, &LIMITS, 0).unwrap();
    assert_eq!(d.stats.items, 3);
    assert_eq!(d.metadata_rows, 1);
    assert_eq!(d.exemplar_rows, 1);
    let tables: Vec<&str> = d.blocks().iter().map(|b| b.0).collect();
    assert_eq!(
        tables,
        [
            "otel_prom_samples",
            "otel_prom_series",
            "otel_metrics_metadata",
            "otel_metrics_exemplars"
        ]
    );
}
