use super::*;
use crate::rng::SplitMix64;

fn random_vectors(rng: &mut SplitMix64, n: usize, dim: usize) -> Vec<f32> {
    (0..n * dim).map(|_| rng.normal() as f32).collect()
}

/// Bit `b` set when the plain dot product with column `b`, summed over `d` in order, is > 0.
fn naive_code(h: &SimHash, x: &[f32]) -> u64 {
    let mut code = 0;
    for b in 0..h.bits() as usize {
        let mut y = 0.0f32;
        for (d, &xd) in x.iter().enumerate() {
            y += xd * h.coefficient(d, b);
        }
        if y > 0.0 {
            code |= 1 << b;
        }
    }
    code
}

/// Sort-based reference: indices of the first `valid_len` codes ordered by (distance, index),
/// truncated to `k`.
fn naive_top_k(target: u64, codes: &[u64], valid_len: usize, k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..valid_len.min(codes.len()) as u32).collect();
    idx.sort_by_key(|&i| ((codes[i as usize] ^ target).count_ones(), i));
    idx.truncate(k);
    idx
}

#[test]
fn encode_agrees_with_a_naive_reference() {
    let mut rng = SplitMix64::new(1);
    for (dim, bits) in [(1, 8), (7, 32), (16, 33), (64, 64), (33, 16), (5, 1)] {
        let h = SimHash::new(dim, bits, 42).expect("valid");
        let n = 50;
        let xs = random_vectors(&mut rng, n, dim);
        let mut codes = vec![0u64; n];
        h.encode(&xs, &mut codes).expect("shapes");
        for (i, x) in xs.chunks_exact(dim).enumerate() {
            assert_eq!(
                codes[i],
                naive_code(&h, x),
                "dim {dim} bits {bits} vector {i}"
            );
            assert_eq!(
                codes[i] >> bits.min(63) >> u32::from(bits == 64),
                0,
                "high bits clear"
            );
            assert_eq!(h.encode_one(x).expect("one"), codes[i]);
        }
        // Bits are balanced over random inputs (each hyperplane splits space in half).
        let ones: u32 = codes.iter().map(|c| c.count_ones()).sum();
        let fraction = f64::from(ones) / (n as f64 * f64::from(bits));
        assert!(bits < 16 || (0.35..0.65).contains(&fraction), "{fraction}");
    }
}

#[test]
fn thirty_two_bit_codes_are_the_low_bits_of_sixty_four_bit_codes() {
    let mut rng = SplitMix64::new(2);
    let (h32, h64) = (
        SimHash::new(24, 32, 9).expect("valid"),
        SimHash::new(24, 64, 9).expect("valid"),
    );
    let xs = random_vectors(&mut rng, 20, 24);
    let (mut a, mut b) = (vec![0; 20], vec![0; 20]);
    h32.encode(&xs, &mut a).expect("shapes");
    h64.encode(&xs, &mut b).expect("shapes");
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(*a, b & 0xFFFF_FFFF);
    }
}

#[test]
fn projection_is_seeded_and_shapes_are_checked() {
    assert_eq!(
        SimHash::new(8, 32, 3).expect("valid"),
        SimHash::new(8, 32, 3).expect("valid")
    );
    assert_ne!(
        SimHash::new(8, 32, 3).expect("valid"),
        SimHash::new(8, 32, 4).expect("valid")
    );
    assert!(SimHash::new(8, 0, 3).is_err());
    assert!(SimHash::new(8, 65, 3).is_err());
    assert!(SimHash::new(0, 32, 3).is_err());
    let h = SimHash::new(4, 32, 0).expect("valid");
    let mut out = [0u64; 2];
    assert!(h.encode(&[0.0; 7], &mut out).is_err());
    // Zero vectors hash to zero (no y > 0).
    h.encode(&[0.0; 8], &mut out).expect("shapes");
    assert_eq!(out, [0, 0]);
}

#[test]
fn similar_vectors_get_closer_codes_than_unrelated_ones() {
    // Random-hyperplane LSH: P(bit differs) = angle / pi.
    let (dim, n) = (32, 500);
    let h = SimHash::new(dim, 64, 7).expect("valid");
    let mut rng = SplitMix64::new(3);
    let x = random_vectors(&mut rng, n, dim);
    let noise = random_vectors(&mut rng, n, dim);
    let other = random_vectors(&mut rng, n, dim);
    let near: Vec<f32> = x.iter().zip(&noise).map(|(a, e)| a + 0.3 * e).collect();
    let (mut cx, mut cn, mut co) = (vec![0; n], vec![0; n], vec![0; n]);
    h.encode(&x, &mut cx).expect("shapes");
    h.encode(&near, &mut cn).expect("shapes");
    h.encode(&other, &mut co).expect("shapes");
    let mean = |a: &[u64], b: &[u64]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(a, b)| f64::from((a ^ b).count_ones()))
            .sum::<f64>()
            / n as f64
    };
    let (d_near, d_other) = (mean(&cx, &cn), mean(&cx, &co));
    // Expected: near ~ 64 * atan(0.3) / pi ~ 5.9, unrelated ~ 32.
    assert!((3.0..9.0).contains(&d_near), "near {d_near}");
    assert!((29.0..35.0).contains(&d_other), "unrelated {d_other}");
    // And per pair, the near vector wins in the vast majority of cases.
    let wins = (0..n)
        .filter(|&i| (cx[i] ^ cn[i]).count_ones() < (cx[i] ^ co[i]).count_ones())
        .count();
    assert!(wins > n * 95 / 100, "{wins} of {n}");
}

#[test]
fn top_k_agrees_with_a_sort_based_reference() {
    let mut scratch = TopKScratch::new();
    let mut out = vec![0u32; 80];
    for seed in 0..300u64 {
        let mut rng = SplitMix64::new(seed);
        let len = (rng.next_u64() % 70) as usize;
        // Few distinct codes (many ties) for some seeds, full 64-bit codes for others.
        let mask = if seed % 3 == 0 {
            u64::MAX
        } else {
            0b1111 << (seed % 50)
        };
        let codes: Vec<u64> = (0..len).map(|_| rng.next_u64() & mask).collect();
        let target = rng.next_u64() & mask;
        let valid = match seed % 4 {
            0 => len,
            1 => 0,
            _ => (rng.next_u64() % (len as u64 + 1)) as usize,
        };
        let k = (rng.next_u64() % 80) as usize;
        out.fill(u32::MAX);
        let n = top_k_by_hamming(target, &codes, valid, k, &mut scratch, &mut out[..k]);
        let expected = naive_top_k(target, &codes, valid, k);
        assert_eq!(n, k.min(valid), "seed {seed}");
        assert_eq!(&out[..n], &expected[..], "seed {seed}");
        assert!(
            out[n..].iter().all(|&x| x == u32::MAX),
            "nothing past the count"
        );
    }
}

#[test]
fn top_k_clamps_valid_len_and_k() {
    let codes = [3u64, 1, 0];
    let mut out = [9u32; 2];
    let n = top_k_by_hamming(0, &codes, 10, 5, &mut TopKScratch::new(), &mut out);
    assert_eq!((n, out), (2, [2, 1]));
    let n = top_k_by_hamming(0, &[], 0, 5, &mut TopKScratch::new(), &mut out);
    assert_eq!(n, 0);
}

#[test]
fn batched_top_k_matches_rows_and_pads_with_zeros() {
    let (batch, len, k) = (6, 40, 8);
    let mut rng = SplitMix64::new(77);
    let targets: Vec<u64> = (0..batch).map(|_| rng.next_u64()).collect();
    let codes: Vec<u64> = (0..batch * len).map(|_| rng.next_u64() & 0xFF).collect();
    let valid: Vec<u32> = vec![40, 0, 3, 8, 17, 39];
    let mut out = vec![u32::MAX; batch * k];
    let mut counts = vec![u32::MAX; batch];
    let mut scratch = TopKScratch::new();
    top_k_by_hamming_batch(
        &targets,
        &codes,
        &valid,
        k,
        &mut scratch,
        &mut out,
        &mut counts,
    )
    .expect("shapes");
    for b in 0..batch {
        let expected = naive_top_k(
            targets[b],
            &codes[b * len..(b + 1) * len],
            valid[b] as usize,
            k,
        );
        assert_eq!(counts[b] as usize, expected.len());
        let row = &out[b * k..(b + 1) * k];
        assert_eq!(&row[..expected.len()], &expected[..]);
        assert!(row[expected.len()..].iter().all(|&x| x == 0));
    }
    // Shape errors.
    assert!(
        top_k_by_hamming_batch(
            &targets,
            &codes[1..],
            &valid,
            k,
            &mut scratch,
            &mut out,
            &mut counts
        )
        .is_err()
    );
    assert!(
        top_k_by_hamming_batch(
            &targets,
            &codes,
            &valid[1..],
            k,
            &mut scratch,
            &mut out,
            &mut counts
        )
        .is_err()
    );
    assert!(
        top_k_by_hamming_batch(
            &targets,
            &codes,
            &valid,
            k + 1,
            &mut scratch,
            &mut out,
            &mut counts
        )
        .is_err()
    );
}

/// Throughput probe, run on demand:
/// `cargo test -p ctrflow-models --lib simhash_throughput_probe -- --ignored --nocapture`.
/// Prints rates; asserts nothing about time.
#[test]
#[ignore = "throughput probe, run on demand"]
fn simhash_throughput_probe() {
    let (dim, n, batch, len, k) = (32, 100_000, 256, 1000, 64);
    let mut rng = SplitMix64::new(5);
    let xs = random_vectors(&mut rng, n, dim);
    let mut codes = vec![0u64; n];
    for bits in [32, 64] {
        let h = SimHash::new(dim, bits, 1).expect("valid");
        let start = std::time::Instant::now();
        h.encode(&xs, &mut codes).expect("shapes");
        let s = start.elapsed().as_secs_f64();
        eprintln!(
            "encode dim {dim} bits {bits}: {:.2} M vectors/s",
            n as f64 / s / 1e6
        );
    }
    let seq: Vec<u64> = (0..batch * len).map(|i| codes[i % n]).collect();
    let targets: Vec<u64> = codes[..batch].to_vec();
    let valid = vec![len as u32; batch];
    let (mut out, mut counts) = (vec![0u32; batch * k], vec![0u32; batch]);
    let mut scratch = TopKScratch::new();
    let start = std::time::Instant::now();
    for _ in 0..10 {
        top_k_by_hamming_batch(
            &targets,
            &seq,
            &valid,
            k,
            &mut scratch,
            &mut out,
            &mut counts,
        )
        .expect("shapes");
    }
    let s = start.elapsed().as_secs_f64();
    eprintln!(
        "top-{k} of L={len}: {:.1} M behaviours/s ({:.2} us per candidate)",
        (10 * batch * len) as f64 / s / 1e6,
        s / (10 * batch) as f64 * 1e6
    );
}
