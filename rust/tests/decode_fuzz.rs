//! Property tests: no input makes the decoder panic. Arbitrary bytes and mutations of valid
//! requests (protobuf and JSON, plain and compressed) either decode or give a `DecodeError`.
//! Case counts are bounded so this runs in seconds in CI.

use std::io::Write as _;

use _native::decode::{decode, Compression, Format, Options, Signal};
use _native::otlp::wire::{put_bytes, put_fixed32, put_fixed64, put_varint_field};
use proptest::prelude::*;

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

fn msg(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    f(&mut b);
    b
}

fn attrs(b: &mut Vec<u8>, field: u32) {
    let s = msg(|b| put_bytes(b, 1, b"v"));
    let i = msg(|b| put_varint_field(b, 3, 5));
    let d = msg(|b| put_fixed64(b, 4, 1.5f64.to_bits()));
    let arr = msg(|b| {
        put_bytes(
            b,
            5,
            &msg(|b| {
                put_bytes(b, 1, &s);
                put_bytes(b, 1, &i);
            }),
        )
    });
    let kvl = msg(|b| {
        put_bytes(
            b,
            6,
            &msg(|b| {
                put_bytes(
                    b,
                    1,
                    &msg(|b| {
                        put_bytes(b, 1, b"n");
                        put_bytes(b, 2, &d);
                    }),
                )
            }),
        )
    });
    for (k, v) in [
        (&b"s"[..], &s),
        (b"i", &i),
        (b"d", &d),
        (b"a", &arr),
        (b"m", &kvl),
    ] {
        put_bytes(
            b,
            field,
            &msg(|b| {
                put_bytes(b, 1, k);
                put_bytes(b, 2, v);
            }),
        );
    }
}

/// A valid request of `signal` exercising most fields.
fn valid(signal: Signal) -> Vec<u8> {
    let resource = msg(|b| attrs(b, 1));
    let scope = msg(|b| {
        put_bytes(b, 1, b"lib");
        put_bytes(b, 2, b"1.0");
        attrs(b, 3);
    });
    let items: Vec<Vec<u8>> = match signal {
        Signal::Traces => vec![msg(|b| {
            put_bytes(b, 1, &[1; 16]);
            put_bytes(b, 2, &[2; 8]);
            put_bytes(b, 4, &[3; 8]);
            put_bytes(b, 5, b"span");
            put_varint_field(b, 6, 2);
            put_fixed64(b, 7, 1);
            put_fixed64(b, 8, 2);
            attrs(b, 9);
            put_bytes(
                b,
                11,
                &msg(|b| {
                    put_fixed64(b, 1, 3);
                    put_bytes(b, 2, b"ev");
                    attrs(b, 3);
                }),
            );
            put_bytes(
                b,
                13,
                &msg(|b| {
                    put_bytes(b, 1, &[4; 16]);
                    put_bytes(b, 2, &[5; 8]);
                    attrs(b, 4);
                    put_fixed32(b, 6, 1);
                }),
            );
            put_bytes(
                b,
                15,
                &msg(|b| {
                    put_bytes(b, 2, b"err");
                    put_varint_field(b, 3, 2);
                }),
            );
            put_fixed32(b, 16, 1);
        })],
        Signal::Logs => vec![msg(|b| {
            put_fixed64(b, 1, 1);
            put_fixed64(b, 11, 2);
            put_varint_field(b, 2, 9);
            put_bytes(b, 3, b"INFO");
            put_bytes(b, 5, &msg(|b| put_bytes(b, 1, b"body")));
            attrs(b, 6);
            put_bytes(b, 9, &[1; 16]);
            put_bytes(b, 10, &[2; 8]);
        })],
        Signal::Metrics => {
            let exemplar = msg(|b| {
                attrs(b, 7);
                put_fixed64(b, 2, 1);
                put_fixed64(b, 3, 2.5f64.to_bits());
                put_bytes(b, 4, &[1; 8]);
                put_bytes(b, 5, &[2; 16]);
            });
            let number = msg(|b| {
                attrs(b, 7);
                put_fixed64(b, 3, 1);
                put_fixed64(b, 6, 7);
                put_bytes(b, 5, &exemplar);
            });
            let hist = msg(|b| {
                attrs(b, 9);
                put_fixed64(b, 4, 3);
                put_fixed64(b, 5, 1.0f64.to_bits());
                put_bytes(b, 6, &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
                put_bytes(b, 7, &1.0f64.to_bits().to_le_bytes());
                put_bytes(b, 8, &exemplar);
            });
            let exp = msg(|b| {
                attrs(b, 1);
                put_varint_field(b, 6, 3);
                put_bytes(
                    b,
                    8,
                    &msg(|b| {
                        put_varint_field(b, 1, 3);
                        put_bytes(b, 2, &[1, 2, 3]);
                    }),
                );
                put_bytes(b, 11, &exemplar);
            });
            let summary = msg(|b| {
                put_fixed64(b, 4, 1);
                put_bytes(
                    b,
                    6,
                    &msg(|b| {
                        put_fixed64(b, 1, 0.5f64.to_bits());
                        put_fixed64(b, 2, 1.0f64.to_bits());
                    }),
                );
            });
            vec![
                msg(|b| {
                    put_bytes(b, 1, b"g");
                    put_bytes(b, 5, &msg(|b| put_bytes(b, 1, &number)));
                }),
                msg(|b| {
                    put_bytes(b, 1, b"s");
                    put_bytes(
                        b,
                        7,
                        &msg(|b| {
                            put_bytes(b, 1, &number);
                            put_varint_field(b, 2, 2);
                            put_varint_field(b, 3, 1);
                        }),
                    );
                }),
                msg(|b| put_bytes(b, 9, &msg(|b| put_bytes(b, 1, &hist)))),
                msg(|b| put_bytes(b, 10, &msg(|b| put_bytes(b, 1, &exp)))),
                msg(|b| put_bytes(b, 11, &msg(|b| put_bytes(b, 1, &summary)))),
            ]
        }
    };
    let scoped = msg(|b| {
        put_bytes(b, 1, &scope);
        for it in &items {
            put_bytes(b, 2, it);
        }
        put_bytes(b, 3, b"https://schema");
    });
    let resourced = msg(|b| {
        put_bytes(b, 1, &resource);
        put_bytes(b, 2, &scoped);
    });
    msg(|b| put_bytes(b, 1, &resourced))
}

const JSON_TRACES: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},
"scopeSpans":[{"scope":{"name":"x"},"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708",
"name":"n","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":2,"attributes":[{"key":"a","value":{"arrayValue":{"values":
[{"intValue":"1"},{"doubleValue":1.5},{"kvlistValue":{"values":[{"key":"k","value":{"bytesValue":"AQI="}}]}}]}}}],
"events":[{"timeUnixNano":"3","name":"e"}],"status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;

fn opts(format: Format, compression: Compression) -> Options {
    Options {
        format,
        compression,
        max_decompressed_bytes: 1 << 20,
        ..Options::default()
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match m {
            Mutation::Flip(i, x) => b[i % n] ^= x,
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Insert(i, x) => {
                let at = i % n;
                b.splice(at..at, x.iter().copied());
            }
            Mutation::Remove(i, k) => {
                let at = i % n;
                b.drain(at..(at + k).min(n));
            }
        }
    }
    b
}

/// Decodes, asserting only that nothing panics and that success means consistent counts.
fn no_panic(signal: Signal, body: &[u8], o: &Options) {
    if let Ok(out) = decode(signal, body, o) {
        let rows: usize = out.blocks.iter().map(|b| b.1).sum();
        assert_eq!(rows as u64, out.stats.items);
    }
}

proptest! {
    // 1000 cases each by default (seconds); `make fuzz` sets PROPTEST_CASES for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), s in 0usize..3) {
        let signal = SIGNALS[s];
        no_panic(signal, &body, &opts(Format::Protobuf, Compression::None));
        no_panic(signal, &body, &opts(Format::Json, Compression::None));
        no_panic(signal, &body, &opts(Format::Protobuf, Compression::Gzip));
        no_panic(signal, &body, &opts(Format::Protobuf, Compression::Deflate));
    }

    #[test]
    fn mutated_valid_protobuf_never_panics(s in 0usize..3, muts in prop::collection::vec(mutation(), 1..4)) {
        let signal = SIGNALS[s];
        let valid = valid(signal);
        let body = apply(valid, &muts);
        no_panic(signal, &body, &opts(Format::Protobuf, Compression::None));
        no_panic(signal, &gzip(&body), &opts(Format::Protobuf, Compression::Gzip));
    }

    #[test]
    fn mutated_valid_json_never_panics(muts in prop::collection::vec(mutation(), 1..4)) {
        let body = apply(JSON_TRACES.as_bytes().to_vec(), &muts);
        no_panic(Signal::Traces, &body, &opts(Format::Json, Compression::None));
    }

    #[test]
    fn mutated_gzip_never_panics(muts in prop::collection::vec(mutation(), 1..3)) {
        let body = apply(gzip(&valid(Signal::Traces)), &muts);
        no_panic(Signal::Traces, &body, &opts(Format::Protobuf, Compression::Gzip));
    }
}

#[test]
fn valid_requests_decode() {
    let o = opts(Format::Protobuf, Compression::None);
    assert_eq!(
        decode(Signal::Traces, &valid(Signal::Traces), &o)
            .unwrap()
            .stats
            .items,
        1
    );
    assert_eq!(
        decode(Signal::Logs, &valid(Signal::Logs), &o)
            .unwrap()
            .stats
            .items,
        1
    );
    assert_eq!(
        decode(Signal::Metrics, &valid(Signal::Metrics), &o)
            .unwrap()
            .stats
            .items,
        5
    );
    let j = opts(Format::Json, Compression::None);
    assert_eq!(
        decode(Signal::Traces, JSON_TRACES.as_bytes(), &j)
            .unwrap()
            .stats
            .items,
        1
    );
}
