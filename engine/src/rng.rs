//! A counter-based random stream: element `i` of a seeded stream depends only on `(seed, i)`,
//! so a distributed array draws the same global values at every rank count.

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64 random bits of element `i` of stream `seed`.
fn bits(seed: u64, i: u64) -> u64 {
    mix(mix_seed(seed).wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Uniform in [0, 1) with 53 random bits.
pub(crate) fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal (Box–Muller on two uniforms of the element's own sub-stream).
pub(crate) fn normal(seed: u64, i: u64) -> f64 {
    let u1 = 1.0 - uniform(seed, 2 * i); // (0, 1]
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Uniform in [0, 1) with 24 random bits (exactly representable in f32).
pub(crate) fn uniform_f32(seed: u64, i: u64) -> f32 {
    (bits(seed, i) >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// [`uniform`] of elements `start, start + 1, …, start + n − 1` of stream `seed`, computed on
/// `device` (f64, bit for bit the values [`uniform`] gives): draws for a rank's rows without
/// moving them to the host. 64-bit arithmetic on int64 tensors wraps like `u64`'s; logical
/// right shifts are arithmetic shifts with the sign bits masked off.
pub(crate) fn uniform_tensor(seed: u64, start: i64, n: i64, device: tch::Device) -> tch::Tensor {
    use tch::{Kind, Tensor};
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let shr = |z: &Tensor, s: u32| {
        z.bitwise_right_shift_tensor_scalar(s as i64)
            .bitwise_and(((1u64 << (64 - s)) - 1) as i64)
    };
    let mix = |z: Tensor| {
        let z = z.bitwise_xor_tensor(&shr(&z, 30)) * (0xbf58_476d_1ce4_e5b9u64 as i64);
        let z = z.bitwise_xor_tensor(&shr(&z, 27)) * (0x94d0_49bb_1331_11ebu64 as i64);
        z.bitwise_xor_tensor(&shr(&z, 31))
    };
    let i = Tensor::arange_start(start, start + n, (Kind::Int64, device));
    let bits = mix(i * (GOLDEN as i64) + (mix_seed(seed) as i64));
    shr(&bits, 11).to_kind(Kind::Double) * (1.0 / (1u64 << 53) as f64)
}

/// The per-stream constant of [`bits`]: `mix(seed ^ GOLDEN)`.
fn mix_seed(seed: u64) -> u64 {
    mix(seed ^ 0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_draws_equal_the_scalar_ones_bit_for_bit() {
        for (seed, start) in [
            (0u64, 0i64),
            (7, 12_345),
            (u64::MAX, (1 << 40) + 3),
            (0x1234_5678_9abc_def0, 999_999_937),
        ] {
            let t = uniform_tensor(seed, start, 4099, tch::Device::Cpu);
            let got = Vec::<f64>::try_from(&t).unwrap();
            for (j, g) in got.iter().enumerate() {
                let want = uniform(seed, (start + j as i64) as u64);
                assert_eq!(g.to_bits(), want.to_bits(), "seed {seed} element {}", start + j as i64);
            }
        }
        assert_eq!(uniform_tensor(3, 5, 0, tch::Device::Cpu).size(), [0]);
    }

    #[test]
    fn streams_are_reproducible_and_roughly_uniform() {
        assert_eq!(uniform(7, 12345), uniform(7, 12345));
        assert_ne!(uniform(7, 1), uniform(8, 1));
        let n = 100_000u64;
        let mean = (0..n).map(|i| uniform(1, i)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let xs: Vec<f64> = (0..n).map(|i| normal(3, i)).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.02, "mean {m} var {v}");
        assert!((0..n).all(|i| (0.0..1.0).contains(&uniform(9, i))));
        assert!((0..n).all(|i| (0.0..1.0).contains(&uniform_f32(9, i))));
    }
}
