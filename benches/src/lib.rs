//! heatsql's benchmarks. Each reports ratios against a baseline measured in the same run (never
//! absolute times compared across runs or machines).
//!
//! * `heatsql-bench-load` (`src/bin/load.rs`): Parquet → DNDarray load rate per rank versus a
//!   plain single-process Parquet read of the same file.

use std::time::Instant;

/// Median of `runs` timed repetitions of `f` after one warm-up, in seconds.
pub fn median_seconds<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[times.len() / 2], last)
}
