//! The machine's limits the report compares against: the f64 GEMM rate of libtorch (the
//! product every dense kernel aspires to) and the memory bandwidth (a STREAM triad), each at
//! one thread and at every core.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};

/// Measured limits, at 1 thread and at `cores` threads.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Cores of the machine (threads of the second measurement).
    pub cores: usize,
    /// Side of the GEMM operands.
    pub gemm_n: i64,
    /// f64 GEMM GFLOP/s (2n³ per product, best of 7 after a warm-up: a peak, as STREAM's) at 1
    /// and `cores` threads.
    pub gemm_gflops: [f64; 2],
    /// Triad `a = b + s·c` GB/s (24 bytes per element, best of 5) at 1 and `cores` threads.
    pub triad_gbs: [f64; 2],
}

impl Limits {
    /// Measures both limits (a few seconds).
    pub fn measure(cores: usize) -> Limits {
        let gemm_n = 2048;
        let before = tch::get_num_threads();
        let gemm_gflops = [gemm(gemm_n, 1), gemm(gemm_n, cores)];
        tch::set_num_threads(before);
        let triad_gbs = [triad(1), triad(cores)];
        Limits {
            cores,
            gemm_n,
            gemm_gflops,
            triad_gbs,
        }
    }

    /// GEMM GFLOP/s available to `threads` threads: linear in the threads up to the cores.
    pub fn gemm_at(&self, threads: usize) -> f64 {
        scaled(self.gemm_gflops, threads, self.cores)
    }

    /// Memory GB/s available to `threads` threads (as [`Self::gemm_at`]).
    pub fn bandwidth_at(&self, threads: usize) -> f64 {
        scaled(self.triad_gbs, threads, self.cores)
    }

    /// The JSON form kept in results.json.
    pub fn to_json(&self) -> Value {
        json!({
            "cores": self.cores,
            "gemm_n": self.gemm_n,
            "gemm_gflops_1_thread": self.gemm_gflops[0],
            "gemm_gflops_all_cores": self.gemm_gflops[1],
            "triad_gbs_1_thread": self.triad_gbs[0],
            "triad_gbs_all_cores": self.triad_gbs[1],
        })
    }
}

/// `one` at 1 thread, `all` at `cores`: min(threads · one, all), never below `one`.
fn scaled([one, all]: [f64; 2], threads: usize, cores: usize) -> f64 {
    if threads >= cores {
        all.max(one)
    } else {
        (threads as f64 * one).min(all.max(one))
    }
}

fn gemm(n: i64, threads: usize) -> f64 {
    tch::set_num_threads(threads as i32);
    let opts = (Kind::Double, Device::Cpu);
    tch::manual_seed(0);
    let (a, b) = (Tensor::randn([n, n], opts), Tensor::randn([n, n], opts));
    let _ = a.matmul(&b);
    let best = (0..7)
        .map(|_| {
            let s = Instant::now();
            let c = a.matmul(&b);
            black_box(c.double_value(&[0, 0]));
            s.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// STREAM's triad over three arrays of 2²⁵ f64 (256 MiB each, far beyond the caches).
fn triad(threads: usize) -> f64 {
    let n = 1usize << 25;
    let (mut a, b, c) = (vec![0.0f64; n], vec![1.0f64; n], vec![2.0f64; n]);
    let chunk = n.div_ceil(threads.max(1));
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let s = Instant::now();
        std::thread::scope(|scope| {
            for ((a, b), c) in a.chunks_mut(chunk).zip(b.chunks(chunk)).zip(c.chunks(chunk)) {
                scope.spawn(move || {
                    for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                        *x = y + 3.0 * z;
                    }
                });
            }
        });
        black_box(&a);
        best = best.min(s.elapsed().as_secs_f64());
    }
    24.0 * n as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_scale_with_threads_up_to_the_cores() {
        let l = Limits {
            cores: 4,
            gemm_n: 8,
            gemm_gflops: [10.0, 35.0],
            triad_gbs: [8.0, 12.0],
        };
        assert_eq!(l.gemm_at(1), 10.0);
        assert_eq!(l.gemm_at(2), 20.0);
        assert_eq!(l.gemm_at(4), 35.0);
        assert_eq!(l.gemm_at(8), 35.0);
        assert_eq!(l.bandwidth_at(2), 12.0);
    }
}
