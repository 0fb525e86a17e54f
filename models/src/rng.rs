//! Small, self-contained, seeded randomness and hashing for the pure-Rust model state.
//!
//! Written here rather than taken from `rand` so that the bits of an initialised embedding row
//! or a SimHash projection depend only on this file: a checkpoint written today and a table
//! rebuilt from the same seed next year agree bitwise, whatever version of `rand` is in the tree.
//!
//! - [`mix64`]: the SplitMix64 finaliser, a bijective 64-bit mixer used as the id hash.
//! - [`SplitMix64`]: the SplitMix64 generator (Steele, Lea, Flood 2014), and standard normals
//!   from it by the Box-Muller transform.
//! - [`IdHasher`]: a `Hasher` for u64 keys built on [`mix64`], with no per-process random state,
//!   so hash-map behaviour is reproducible.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Bool, Device, Int, Tensor};

/// burn's device RNG is process-wide: seeding it and drawing from it (network initialisation,
/// dropout) must not interleave with another trainer doing the same, or runs stop being
/// reproducible. Trainers hold this lock from `seed` to the last draw.
static BURN_RNG: Mutex<()> = Mutex::new(());

/// Takes the process-wide lock of burn's RNG (a poisoned lock guards no data: recovered).
pub(crate) fn burn_rng_lock() -> MutexGuard<'static, ()> {
    BURN_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Builds a network from burn's RNG seeded with `seed`, the way every trainer does: holds
/// [`burn_rng_lock`], seeds, runs `build`, and draws every parameter of the module `network`
/// picks out of the result before releasing the lock (`None`: nothing was built, e.g. an
/// error).
///
/// The last step matters because burn initialises a parameter on its first use, not when the
/// module is built: a network used only after the lock is released would draw its initial
/// weights from whatever state another thread left the process-wide RNG in (a concurrent
/// trainer's per-step seed, its own lazy parameters), so two identical runs side by side would
/// start from different weights.
pub(crate) fn build_seeded<T, M: Module>(
    device: &Device,
    seed: u64,
    build: impl FnOnce() -> T,
    network: impl FnOnce(&T) -> Option<&M>,
) -> T {
    let _rng = burn_rng_lock();
    device.seed(seed);
    let built = build();
    if let Some(net) = network(&built) {
        initialise_lazy_params(net);
    }
    built
}

/// Draws every parameter of `module` that is still lazy (see [`build_seeded`]).
fn initialise_lazy_params<M: Module>(module: &M) {
    struct Initialise;
    impl ModuleVisitor for Initialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Initialise);
}

/// SplitMix64 finaliser: a fast bijective mixer with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose stream is a function of `seed` only.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator for the stream `(seed, domain, key)`; distinct triples give unrelated streams.
    pub(crate) fn keyed(seed: u64, domain: u64, key: u64) -> Self {
        Self::new(mix64(mix64(seed ^ domain.rotate_left(32)) ^ key))
    }

    /// The generator's whole state: `SplitMix64::new(g.state())` continues the stream of `g`.
    pub(crate) fn state(&self) -> u64 {
        self.0
    }

    /// Uniform in `0..n` (`n > 0`) by the multiply-high method (bias below 2^-32 for the
    /// sizes used here).
    #[inline]
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A pair of independent standard normal samples (Box-Muller).
    #[inline]
    pub(crate) fn normal_pair(&mut self) -> (f64, f64) {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }

    /// A standard normal sample (the first of a Box-Muller pair).
    pub(crate) fn normal(&mut self) -> f64 {
        self.normal_pair().0
    }

    /// Fills `out` with normal samples of standard deviation `std`, both values of every
    /// Box-Muller pair used in order.
    pub(crate) fn fill_normal(&mut self, out: &mut [f32], std: f32) {
        let std = f64::from(std);
        let mut pairs = out.chunks_exact_mut(2);
        for pair in &mut pairs {
            let (a, b) = self.normal_pair();
            pair[0] = (a * std) as f32;
            pair[1] = (b * std) as f32;
        }
        if let [last] = pairs.into_remainder() {
            *last = (self.normal() * std) as f32;
        }
    }
}

/// A `Hasher` for integer keys: [`mix64`] of the key, no random state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-integer keys; FNV-1a then mixed.
        let mut h = self.0 ^ 0xCBF2_9CE4_8422_2325;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
        self.0 = mix64(h);
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = mix64(self.0 ^ x);
    }

    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
}

/// Builds [`IdHasher`]s.
pub(crate) type IdBuildHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, Distribution, TensorData};

    use super::*;

    fn draw(device: &Device) -> TensorData {
        Tensor::<1>::random([4], Distribution::Normal(0.0, 1.0), device).into_data()
    }

    fn weights(linear: &Linear) -> TensorData {
        linear.weight.val().into_data()
    }

    #[test]
    fn lazy_parameters_are_drawn_at_once_from_the_seeded_state() {
        let _rng = burn_rng_lock();
        let device = Device::flex();
        device.seed(3);
        let reference = LinearConfig::new(3, 2).init(&device);
        let reference = weights(&reference); // drawn right after seeding
        device.seed(3);
        let built = LinearConfig::new(3, 2).init(&device);
        initialise_lazy_params(&built);
        device.seed(99); // another trainer moves the RNG on before `built` is used
        let _ = draw(&device);
        assert_eq!(weights(&built), reference);
    }

    #[test]
    fn loading_a_record_draws_nothing_from_the_rng() {
        // `SrpArtifact::restore_net` builds and loads a network without the RNG lock: that is
        // only sound while loading every parameter from a record draws no random value.
        let _rng = burn_rng_lock();
        let device = Device::flex();
        let source = LinearConfig::new(3, 2).init(&device);
        initialise_lazy_params(&source);
        device.seed(5);
        let expected = draw(&device);
        device.seed(5);
        let loaded = LinearConfig::new(3, 2)
            .init(&device)
            .load_record(source.clone().into_record());
        assert_eq!(weights(&loaded), weights(&source));
        assert_eq!(draw(&device), expected);
    }

    #[test]
    fn splitmix_matches_published_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation by S. Vigna).
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut g = SplitMix64::new(7);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let x = g.normal();
            s += x;
            s2 += x * x;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn fill_normal_uses_both_values_of_each_pair() {
        let mut out = [0.0f32; 5];
        SplitMix64::new(3).fill_normal(&mut out, 2.0);
        let mut g = SplitMix64::new(3);
        let (a, b) = g.normal_pair();
        let (c, d) = g.normal_pair();
        let (e, _) = g.normal_pair();
        let expected = [a, b, c, d, e].map(|x| (x * 2.0) as f32);
        assert_eq!(out, expected);
        // The pair is uncorrelated in aggregate.
        let mut g = SplitMix64::new(8);
        let n = 100_000;
        let cov: f64 = (0..n)
            .map(|_| {
                let (x, y) = g.normal_pair();
                x * y
            })
            .sum::<f64>()
            / n as f64;
        assert!(cov.abs() < 0.02, "{cov}");
    }
}
