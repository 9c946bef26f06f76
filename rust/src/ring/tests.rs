use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::header::{Rec, KIND_RECORD};
use super::testing::{abandon_push, Stage};
use super::*;

/// A ring file's path in a directory of its own, removed with the directory when dropped: the
/// tests run in parallel threads of one process, so a shared directory could not be removed.
struct TmpPath(PathBuf);

impl AsRef<Path> for TmpPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpPath {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn tmp_path(name: &str) -> TmpPath {
    let dir = std::env::temp_dir().join(format!("otelingest-ring-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TmpPath(dir.join("ring"))
}

/// A fresh ring and both its ends.
fn pair(name: &str, capacity: u64) -> (Producer, Consumer) {
    let path = tmp_path(name);
    let producer = Producer::new(RingFile::create(&path, capacity).unwrap()).unwrap();
    (producer, Consumer::attach(&path).unwrap())
}

/// xorshift64*: deterministic test randomness without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A self-checking record: producer id, sequence number, filler, checksum of all before it.
fn make_record(producer: u32, seq: u64, len: usize) -> Vec<u8> {
    let len = len.max(20);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&producer.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    let mut x = seq.wrapping_mul(31).wrapping_add(u64::from(producer));
    while v.len() < len - 8 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((x >> 56) as u8);
    }
    let sum = fnv(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn check_record(v: &[u8]) -> (u32, u64) {
    let n = v.len();
    assert!(n >= 20, "record too short: {n}");
    assert_eq!(
        fnv(&v[..n - 8]),
        u64::from_le_bytes(v[n - 8..].try_into().unwrap()),
        "checksum"
    );
    (
        u32::from_le_bytes(v[..4].try_into().unwrap()),
        u64::from_le_bytes(v[4..12].try_into().unwrap()),
    )
}

#[test]
fn fill_full_release_and_reuse() {
    let (mut p, mut c) = pair("fill", 4096);
    assert_eq!(p.ring().capacity(), 4096);
    assert_eq!(p.ring().max_record(), 2040);
    let rec = [7u8; 100]; // 8 + 104 = 112 bytes
    let mut pushed = 0;
    while p.push(&rec).unwrap() {
        pushed += 1;
    }
    assert_eq!(pushed, 4096 / 112);
    assert_eq!(p.ring().used_bytes(), 36 * 112);
    assert_eq!(c.pending_bytes().unwrap(), 36 * 112);
    let (end, data) = c.read().unwrap().unwrap();
    assert_eq!((end, data.as_slice()), (112, &rec[..]));
    assert_eq!(c.pending_bytes().unwrap(), 35 * 112);
    // Read but not released: still full.
    assert!(!p.push(&rec).unwrap());
    c.release(end).unwrap();
    assert_eq!(p.ring().used_bytes(), 35 * 112);
    // 112 freed at the front + 64 spare at the tail: the next record pads the tail and wraps.
    assert!(p.push(&rec).unwrap());
    assert_eq!(p.ring().write_cursor(), 4096 + 112);
    assert_eq!(
        c.pending_bytes().unwrap(),
        36 * 112,
        "padding is not pending"
    );
    let mut n = 0;
    let mut last = 0;
    while let Some((end, data)) = c.read().unwrap() {
        assert_eq!(data, rec);
        n += 1;
        last = end;
    }
    assert_eq!((n, last), (36, 4096 + 112));
    c.release(last).unwrap();
    assert_eq!(p.ring().used_bytes(), 0);
}

#[test]
fn empty_and_exact_sizes() {
    let (mut p, mut c) = pair("sizes", 4096);
    assert!(c.read().unwrap().is_none());
    for len in [0usize, 1, 7, 8, 9, 2040] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        assert!(p.push(&data).unwrap());
        let (end, got) = c.read().unwrap().unwrap();
        assert_eq!(got, data);
        c.release(end).unwrap();
    }
    match p.push(&[0u8; 2041]) {
        Err(RingError::TooLarge {
            len: 2041,
            max: 2040,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn push_parts_is_one_record() {
    let (mut p, mut c) = pair("parts", 8192);
    assert!(p
        .push_parts(&[b"env:", b"", b"block-one|", b"block-two"])
        .unwrap());
    assert_eq!(c.read().unwrap().unwrap().1, b"env:block-one|block-two");
    assert!(c.read().unwrap().is_none());
}

#[test]
fn slot_is_invisible_until_committed() {
    let (mut p, mut c) = pair("slot", 8192);
    let mut slot = p.reserve(10).unwrap().unwrap();
    slot.put(b"hello");
    assert_eq!(slot.remaining(), 5);
    assert!(c.read().unwrap().is_none(), "not published yet");
    slot.put(b"world");
    slot.commit();
    assert_eq!(c.read().unwrap().unwrap().1, b"helloworld");
}

#[test]
fn wraps_around_many_times() {
    let (mut p, mut c) = pair("wrap", 4096);
    let mut rng = Rng(42);
    let (mut sent, mut got) = (0u64, 0u64);
    while p.ring().write_cursor() < 200 * 4096 {
        // Push a random burst, read some, release some: cursors wrap at every offset.
        for _ in 0..rng.below(6) {
            let rec = make_record(0, sent, 20 + rng.below(1500) as usize);
            if p.push(&rec).unwrap() {
                sent += 1;
            }
        }
        let mut last = None;
        for _ in 0..rng.below(6) {
            if let Some((end, data)) = c.read().unwrap() {
                assert_eq!(check_record(&data), (0, got));
                got += 1;
                last = Some(end);
            }
        }
        if let Some(end) = last {
            c.release(end).unwrap();
        }
        assert!(p.ring().used_bytes() <= 4096);
    }
    while let Some((end, data)) = c.read().unwrap() {
        assert_eq!(check_record(&data), (0, got));
        got += 1;
        c.release(end).unwrap();
    }
    assert_eq!(got, sent);
    assert!(sent > 500);
}

#[test]
fn rewind_rereads_unreleased_and_new_consumer_resumes() {
    let path = tmp_path("rewind");
    let mut p = Producer::new(RingFile::create(&path, 8192).unwrap()).unwrap();
    for i in 0..5u8 {
        assert!(p.push(&[i; 10]).unwrap());
    }
    let mut c = Consumer::attach(&path).unwrap();
    let (e0, _) = c.read().unwrap().unwrap();
    let (_e1, _) = c.read().unwrap().unwrap();
    c.release(e0).unwrap();
    let (_, d) = c.read().unwrap().unwrap();
    assert_eq!(d, [2u8; 10]);
    c.rewind();
    assert_eq!(c.read().unwrap().unwrap().1, [1u8; 10]);
    // Releasing past what was read is refused; releasing again behind the cursor is a no-op.
    assert!(matches!(c.release(e0 + 1000), Err(RingError::Invalid(_))));
    c.release(e0 - 8).unwrap();
    assert_eq!(p.ring().release_cursor(), e0);
    // Killed without releasing what it read last: a new consumer resumes at the release cursor.
    drop(c);
    let mut c2 = Consumer::attach(&path).unwrap();
    let rest: Vec<u8> = std::iter::from_fn(|| c2.read().unwrap().map(|(_, d)| d[0])).collect();
    assert_eq!(rest, [1, 2, 3, 4]);
}

#[test]
fn each_role_has_one_holder_until_it_is_dropped() {
    let path = tmp_path("roles");
    let p = Producer::new(RingFile::create(&path, 8192).unwrap()).unwrap();
    let c = Consumer::attach(&path).unwrap();
    assert!(matches!(
        Producer::attach(&path),
        Err(RingError::Busy("producer"))
    ));
    assert!(matches!(
        Consumer::attach(&path),
        Err(RingError::Busy("consumer"))
    ));
    // Role-free handles (the supervisor's) are always allowed.
    assert_eq!(RingFile::attach(&path).unwrap().used_bytes(), 0);
    drop((p, c));
    let _p = Producer::attach(&path).unwrap();
    let _c = Consumer::attach(&path).unwrap();
}

#[test]
fn open_or_create_keeps_unreleased_records() {
    let path = tmp_path("reopen");
    let _ = std::fs::remove_file(&path);
    let mut p = Producer::new(RingFile::open_or_create(&path, 8192).unwrap()).unwrap();
    assert!(p.push(b"acknowledged").unwrap());
    drop(p);
    // Daemon restart, even with a new capacity: the unreleased record is kept.
    let ring = RingFile::open_or_create(&path, 16384).unwrap();
    assert_eq!(ring.capacity(), 8192);
    let mut c = Consumer::new(ring).unwrap();
    let (end, data) = c.read().unwrap().unwrap();
    assert_eq!(data, b"acknowledged");
    c.release(end).unwrap();
    drop(c);
    // Empty now: the new capacity takes effect.
    assert_eq!(
        RingFile::open_or_create(&path, 16384).unwrap().capacity(),
        16384
    );
}

#[test]
fn corrupt_files_are_refused_on_attach() {
    let path = tmp_path("corrupt");
    drop(RingFile::create(&path, 4096).unwrap());
    let good = std::fs::read(&path).unwrap();
    type Corruption = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: [(&str, Corruption); 7] = [
        ("magic", Box::new(|b| b[0] ^= 1)),
        ("version", Box::new(|b| b[8] = 9)),
        (
            "capacity",
            Box::new(|b| b[16..24].copy_from_slice(&8192u64.to_le_bytes())),
        ),
        (
            "odd capacity",
            Box::new(|b| b[16..24].copy_from_slice(&4100u64.to_le_bytes())),
        ),
        (
            "write cursor",
            Box::new(|b| b[64..72].copy_from_slice(&100_000u64.to_le_bytes())),
        ),
        (
            "release beyond write",
            Box::new(|b| b[128..136].copy_from_slice(&8u64.to_le_bytes())),
        ),
        ("truncated", Box::new(|b| b.truncate(100))),
    ];
    for (what, corrupt) in cases {
        let mut bytes = good.clone();
        corrupt(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        match RingFile::attach(&path) {
            Err(RingError::Corrupt(_)) => {}
            other => panic!("{what}: expected Corrupt, got {other:?}"),
        }
    }
    std::fs::write(&path, &good).unwrap();
    RingFile::attach(&path).unwrap();
}

#[test]
fn corrupt_record_header_is_an_error_not_a_panic() {
    let (mut p, mut c) = pair("badrec", 4096);
    assert!(p.push(&[1u8; 16]).unwrap());
    for bad in [
        Rec {
            len: 5000,
            kind: KIND_RECORD,
        }
        .pack(), // past write / max
        Rec { len: 16, kind: 0 }.pack(),  // no such kind
        Rec { len: 16, kind: 2 }.pack(),  // padding that does not end the lap
        Rec { len: 100, kind: 1 }.pack(), // past the write cursor
    ] {
        p.ring().word(0).store(bad, Ordering::Release);
        assert!(matches!(c.read(), Err(RingError::Corrupt(_))), "{bad:#x}");
        assert!(matches!(c.pending_bytes(), Err(RingError::Corrupt(_))));
    }
    // A write cursor moved backwards or beyond the capacity is refused too.
    p.ring()
        .word(0)
        .store(Rec { len: 16, kind: 1 }.pack(), Ordering::Release);
    p.ring().header().write.0.store(1 << 20, Ordering::Release);
    assert_eq!(c.read().unwrap().unwrap().1, [1u8; 16]);
    assert!(matches!(c.read(), Err(RingError::Corrupt(_))));
}

/// A producer killed at any stage of a push: the consumer never sees a byte of that record, the
/// next producer resumes at the published cursor, and the space is reused.
#[test]
fn unpublished_push_is_never_read_and_the_next_producer_overwrites_it() {
    for stage in [Stage::Reserved, Stage::Header, Stage::Partial] {
        let path = tmp_path(&format!("abandon-{stage:?}"));
        let mut p = Producer::new(RingFile::create(&path, 8192).unwrap()).unwrap();
        let mut c = Consumer::attach(&path).unwrap();
        assert!(p.push(b"before").unwrap());
        assert!(abandon_push(&mut p, 1000, stage).unwrap());
        drop(p); // killed
        assert_eq!(c.read().unwrap().unwrap().1, b"before");
        assert!(c.read().unwrap().is_none(), "{stage:?}: nothing published");
        assert_eq!(c.pending_bytes().unwrap(), 0);
        let mut p = Producer::attach(&path).unwrap();
        assert!(p.push(b"after").unwrap());
        let (end, data) = c.read().unwrap().unwrap();
        assert_eq!((data.as_slice(), end), (&b"after"[..], 32), "{stage:?}");
        c.release(end).unwrap();
        for _ in 0..4 {
            let big = vec![0x5A; p.ring().max_record()];
            assert!(p.push(&big).unwrap());
            let (end, got) = c.read().unwrap().unwrap();
            assert_eq!(got, big);
            c.release(end).unwrap();
        }
    }
}

/// One producer thread, one consumer thread, random sizes: every record exactly once, in order,
/// intact; the ring wraps many times and fills up.
#[test]
fn stress_one_producer_one_consumer() {
    const COUNT: u64 = 40_000;
    let (mut p, mut c) = pair("stress", 64 * 1024);
    let producer = std::thread::spawn(move || {
        let mut rng = Rng(0x9E37_79B9);
        let mut full = 0u64;
        for seq in 0..COUNT {
            let len = match rng.below(10) {
                0 => 20 + rng.below(p.ring().max_record() as u64 - 20) as usize,
                _ => 20 + rng.below(2000) as usize,
            };
            let rec = make_record(0, seq, len);
            while !p.push(&rec).unwrap() {
                full += 1;
                std::thread::yield_now();
            }
        }
        (full, p.ring().write_cursor() / p.ring().capacity())
    });
    let mut next = 0u64;
    let mut rng = Rng(7);
    while next < COUNT {
        match c.read_with(|p| check_record(&p.to_vec())).unwrap() {
            Some((end, (0, seq))) => {
                assert_eq!(seq, next, "out of order");
                next += 1;
                // Release in random batches, so reads run ahead of releases.
                if rng.below(4) == 0 {
                    c.release(end).unwrap();
                }
            }
            Some((_, (id, _))) => panic!("unknown producer {id}"),
            None => {
                c.release(c.read_cursor()).unwrap();
                std::thread::yield_now();
            }
        }
    }
    let (full, laps) = producer.join().unwrap();
    assert!(
        c.read().unwrap().is_none(),
        "no record beyond the expected ones"
    );
    assert!(laps > 20, "wrapped {laps} times");
    assert!(full > 0, "the ring filled up at least once");
}

/// Producers "killed" mid-push at random (at every stage) and replaced, while a consumer reads
/// and a consumer is itself replaced now and then without releasing: every record a producer
/// published arrives intact and in order, none of the abandoned bytes ever does, and after a
/// consumer replacement exactly the unreleased tail is delivered again.
#[test]
fn stress_with_producers_and_consumers_dying() {
    const COUNT: u64 = 20_000;
    let path = tmp_path("stress-die");
    drop(RingFile::create(&path, 32 * 1024).unwrap());
    let producer = {
        let path = path.0.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(0xD1E);
            let mut p = Producer::attach(&path).unwrap();
            let mut deaths = 0u64;
            for seq in 0..COUNT {
                if rng.below(200) == 0 {
                    let stage =
                        [Stage::Reserved, Stage::Header, Stage::Partial][rng.below(3) as usize];
                    if abandon_push(&mut p, rng.below(3000) as usize, stage).unwrap() {
                        deaths += 1;
                        drop(p);
                        p = Producer::attach(&path).unwrap();
                    }
                }
                let rec = make_record(1, seq, 20 + rng.below(3000) as usize);
                while !p.push(&rec).unwrap() {
                    std::thread::yield_now();
                }
            }
            deaths
        })
    };
    let mut c = Consumer::attach(&path).unwrap();
    let mut rng = Rng(99);
    // Records read but not released, as (end, seq): what a replacement must deliver again.
    let mut unreleased: VecDeque<(u64, u64)> = VecDeque::new();
    let mut next = 0u64;
    let mut replaced = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next < COUNT {
        assert!(Instant::now() < deadline, "stuck after {next} records");
        match c.read_with(|p| check_record(&p.to_vec())).unwrap() {
            Some((end, (1, seq))) => {
                assert_eq!(seq, next, "out of order");
                next += 1;
                unreleased.push_back((end, seq));
                if rng.below(8) == 0 {
                    c.release(end).unwrap();
                    unreleased.clear();
                }
                if rng.below(500) == 0 {
                    drop(c); // killed: the records read since the last release come again
                    c = Consumer::attach(&path).unwrap();
                    replaced += 1;
                    if let Some(&(_, first)) = unreleased.front() {
                        next = first;
                    }
                    unreleased.clear();
                }
            }
            Some((_, (id, _))) => panic!("unknown producer {id}"),
            None => {
                c.release(c.read_cursor()).unwrap();
                unreleased.clear();
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    let deaths = producer.join().unwrap();
    assert!(c.read().unwrap().is_none());
    assert!(
        deaths > 20 && replaced > 5,
        "{deaths} producer deaths, {replaced} consumer deaths"
    );
}

/// Throughput figure, not a test: `cargo test --release --lib ring::tests::throughput --
/// --ignored --nocapture`. One producer thread, one consumer thread, 64 KiB records.
#[test]
#[ignore]
fn throughput_64k_records() {
    const RECORD: usize = 64 * 1024;
    const COUNT: u64 = 50_000;
    let (mut p, mut c) = pair("throughput", 64 << 20);
    let producer = std::thread::spawn(move || {
        let rec = vec![0x5Au8; RECORD];
        for _ in 0..COUNT {
            while !p.push(&rec).unwrap() {
                std::hint::spin_loop();
            }
        }
    });
    let started = Instant::now();
    let mut buf = vec![0u8; RECORD];
    let mut n = 0;
    let mut sum = 0u64;
    while n < COUNT {
        if let Some((end, first)) = c
            .read_with(|p| {
                p.copy_to(&mut buf);
                buf[0]
            })
            .unwrap()
        {
            sum += u64::from(first);
            n += 1;
            if n % 64 == 0 {
                c.release(end).unwrap();
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    producer.join().unwrap();
    assert_eq!(sum, COUNT * 0x5A);
    println!(
        "{COUNT} records of {RECORD} B in {secs:.3} s: {:.0} records/s, {:.0} MB/s",
        COUNT as f64 / secs,
        (COUNT as usize * RECORD) as f64 / secs / 1e6
    );
}
