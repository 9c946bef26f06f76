//! `otel_metrics.SeriesId` computed in Rust, bit for bit as ClickHouse computes its MATERIALIZED
//! expression `cityHash64(MetricName, ServiceName, mapSort(ResourceAttributes), mapSort(Attributes))`,
//! so that a remote-written series keeps one id whether its samples are narrow rows
//! (`otel_prom_samples`, migration 0012) or `otel_metrics` rows written before it.
//!
//! ClickHouse's `cityHash64` is CityHash64 of CityHash v1.0.2 (not the later revisions). With
//! several arguments, or for the elements of an array, hashes are chained with `Hash128to64(prev,
//! next)`; an array (a `Map` is `Array(Tuple(key, value))`) starts from `IntHash64(len ^ SALT)`
//! and chains each element; a tuple chains its fields. `tests/` checks this against ClickHouse.

const K0: u64 = 0xc3a5_c85c_97cb_3127;
const K1: u64 = 0xb492_b66f_be98_f273;
const K2: u64 = 0x9ae1_6a3b_2f90_404f;
const K3: u64 = 0xc949_d7c7_509e_6557;
const KMUL: u64 = 0x9ddf_ea08_eb38_2d69;
/// ClickHouse's `IntHash64Impl` salts the array length before `intHash64`.
const ARRAY_SALT: u64 = 0x4cf2_d2ba_ae6d_a887;

/// CityHash v1.0.2 `Hash128to64(lo, hi)`: ClickHouse's `combineHashes` for `cityHash64`.
#[inline]
pub fn combine(lo: u64, hi: u64) -> u64 {
    let mut a = (lo ^ hi).wrapping_mul(KMUL);
    a ^= a >> 47;
    let mut b = (hi ^ a).wrapping_mul(KMUL);
    b ^= b >> 47;
    b.wrapping_mul(KMUL)
}

/// ClickHouse `intHash64` (the murmur3 finalizer) of `x ^ ARRAY_SALT`: how an array's hash starts.
#[inline]
fn array_start(len: usize) -> u64 {
    let mut x = (len as u64) ^ ARRAY_SALT;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[inline]
fn fetch64(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
}

#[inline]
fn fetch32(s: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes")) as u64
}

#[inline]
fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

fn len_0_to_16(s: &[u8]) -> u64 {
    let len = s.len();
    if len > 8 {
        let a = fetch64(s, 0);
        let b = fetch64(s, len - 8);
        return combine(a, b.wrapping_add(len as u64).rotate_right(len as u32)) ^ b;
    }
    if len >= 4 {
        let a = fetch32(s, 0);
        return combine((len as u64).wrapping_add(a << 3), fetch32(s, len - 4));
    }
    if len > 0 {
        let (a, b, c) = (s[0] as u32, s[len >> 1] as u32, s[len - 1] as u32);
        let y = a.wrapping_add(b << 8);
        let z = (len as u32).wrapping_add(c << 2);
        return shift_mix((y as u64).wrapping_mul(K2) ^ (z as u64).wrapping_mul(K3))
            .wrapping_mul(K2);
    }
    K2
}

fn len_17_to_32(s: &[u8]) -> u64 {
    let len = s.len();
    let a = fetch64(s, 0).wrapping_mul(K1);
    let b = fetch64(s, 8);
    let c = fetch64(s, len - 8).wrapping_mul(K2);
    let d = fetch64(s, len - 16).wrapping_mul(K0);
    combine(
        a.wrapping_sub(b)
            .rotate_right(43)
            .wrapping_add(c.rotate_right(30))
            .wrapping_add(d),
        a.wrapping_add((b ^ K3).rotate_right(20))
            .wrapping_sub(c)
            .wrapping_add(len as u64),
    )
}

fn weak_32(w: u64, x: u64, y: u64, z: u64, mut a: u64, mut b: u64) -> (u64, u64) {
    a = a.wrapping_add(w);
    b = b.wrapping_add(a).wrapping_add(z).rotate_right(21);
    let c = a;
    a = a.wrapping_add(x).wrapping_add(y);
    b = b.wrapping_add(a.rotate_right(44));
    (a.wrapping_add(z), b.wrapping_add(c))
}

fn weak_32_at(s: &[u8], at: usize, a: u64, b: u64) -> (u64, u64) {
    weak_32(
        fetch64(s, at),
        fetch64(s, at + 8),
        fetch64(s, at + 16),
        fetch64(s, at + 24),
        a,
        b,
    )
}

fn len_33_to_64(s: &[u8]) -> u64 {
    let len = s.len();
    let mut z = fetch64(s, 24);
    let mut a = fetch64(s, 0).wrapping_add(
        (len as u64)
            .wrapping_add(fetch64(s, len - 16))
            .wrapping_mul(K0),
    );
    let mut b = a.wrapping_add(z).rotate_right(52);
    let mut c = a.rotate_right(37);
    a = a.wrapping_add(fetch64(s, 8));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(fetch64(s, 16));
    let vf = a.wrapping_add(z);
    let vs = b.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    a = fetch64(s, 16).wrapping_add(fetch64(s, len - 32));
    z = fetch64(s, len - 8);
    b = a.wrapping_add(z).rotate_right(52);
    c = a.rotate_right(37);
    a = a.wrapping_add(fetch64(s, len - 24));
    c = c.wrapping_add(a.rotate_right(7));
    a = a.wrapping_add(fetch64(s, len - 16));
    let wf = a.wrapping_add(z);
    let ws = b.wrapping_add(a.rotate_right(31)).wrapping_add(c);
    let r = shift_mix(
        vf.wrapping_add(ws)
            .wrapping_mul(K2)
            .wrapping_add(wf.wrapping_add(vs).wrapping_mul(K0)),
    );
    shift_mix(r.wrapping_mul(K0).wrapping_add(vs)).wrapping_mul(K2)
}

/// CityHash64 of CityHash v1.0.2: ClickHouse's `cityHash64(s)` of one String.
pub fn city_hash64(s: &[u8]) -> u64 {
    let len = s.len();
    if len <= 16 {
        return len_0_to_16(s);
    }
    if len <= 32 {
        return len_17_to_32(s);
    }
    if len <= 64 {
        return len_33_to_64(s);
    }
    let mut x = fetch64(s, 0);
    let mut y = fetch64(s, len - 16) ^ K1;
    let mut z = fetch64(s, len - 56) ^ K0;
    let mut v = weak_32_at(s, len - 64, len as u64, y);
    let mut w = weak_32_at(s, len - 32, (len as u64).wrapping_mul(K1), K0);
    z = z.wrapping_add(shift_mix(v.1).wrapping_mul(K1));
    x = z.wrapping_add(x).rotate_right(39).wrapping_mul(K1);
    y = y.rotate_right(33).wrapping_mul(K1);
    let mut at = 0;
    let mut left = (len - 1) & !63;
    loop {
        x = x
            .wrapping_add(y)
            .wrapping_add(v.0)
            .wrapping_add(fetch64(s, at + 16))
            .rotate_right(37)
            .wrapping_mul(K1);
        y = y
            .wrapping_add(v.1)
            .wrapping_add(fetch64(s, at + 48))
            .rotate_right(42)
            .wrapping_mul(K1);
        x ^= w.1;
        y ^= v.0;
        z = (z ^ w.0).rotate_right(33);
        v = weak_32_at(s, at, v.1.wrapping_mul(K1), x.wrapping_add(w.0));
        w = weak_32_at(s, at + 32, z.wrapping_add(w.1), y);
        std::mem::swap(&mut z, &mut x);
        at += 64;
        left -= 64;
        if left == 0 {
            break;
        }
    }
    combine(
        combine(v.0, w.0)
            .wrapping_add(shift_mix(y).wrapping_mul(K1))
            .wrapping_add(z),
        combine(v.1, w.1).wrapping_add(x),
    )
}

/// Chains `mapSort(map)` into `h` as a non-first argument of `cityHash64`: the entries must be
/// sorted by key (byte order, as `mapSort` sorts String keys) and keys unique.
pub fn chain_map<'a>(
    mut h: u64,
    sorted: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    h = combine(h, array_start(sorted.len()));
    for (k, v) in sorted {
        h = combine(h, combine(city_hash64(k), city_hash64(v)));
    }
    h
}

/// `cityHash64(MetricName, ServiceName, mapSort(resource), mapSort(attributes))` with both maps'
/// entries already sorted by key.
pub fn series_id<'a>(
    name: &[u8],
    service: &[u8],
    resource: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    attributes: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    let h = combine(city_hash64(name), city_hash64(service));
    chain_map(chain_map(h, resource), attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from ClickHouse 26.9 (`SELECT cityHash64(...)`).
    #[test]
    fn strings_and_arguments_as_clickhouse() {
        assert_eq!(city_hash64(b"a"), 2603192927274642682);
        let (a, b) = (city_hash64(b"a"), city_hash64(b"b"));
        assert_eq!(combine(a, b), 7468329322676821011);
        let m = [(&b"a"[..], &b"2"[..]), (&b"x"[..], &b"1"[..])];
        let none: [(&[u8], &[u8]); 0] = [];
        assert_eq!(
            series_id(b"a", b"b", m.iter().copied(), none.iter().copied()),
            10164408378372493232
        );
    }

    #[test]
    fn every_length_class_as_clickhouse() {
        // cityHash64 of 'a', 'h', 'o', ... (byte 97 + 7i mod 26) of each length.
        for (n, want) in [
            (0, 11160318154034397263u64),
            (3, 9326811929869430901),
            (4, 14271945767400165103),
            (7, 5407576278025459152),
            (8, 16218213257056838089),
            (9, 4918638456089231642),
            (16, 12283835963537903118),
            (17, 8099677216467987132),
            (31, 310297576330617007),
            (32, 8743296266067237776),
            (33, 479772079190785112),
            (50, 17522856265689764494),
            (64, 1854395591480767239),
            (65, 16764174874202791190),
            (100, 7456325570131921291),
            (127, 3748642079054094780),
            (128, 13853765893861349808),
            (129, 12559867421193648767),
            (200, 9072963857481285365),
            (300, 694881161954880650),
        ] {
            let s: Vec<u8> = (0..n).map(|i| 97 + ((i * 7) % 26) as u8).collect();
            assert_eq!(city_hash64(&s), want, "length {n}");
        }
    }
}
