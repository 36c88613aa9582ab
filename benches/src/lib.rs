//! heatsql's benchmarks. Each reports ratios against a baseline measured in the same run (never
//! absolute times compared across runs or machines).
//!
//! * `heatsql-bench-load` (`src/bin/load.rs`): Parquet → DNDarray load rate per rank versus a
//!   plain single-process Parquet read of the same file.

/// The median of `times` (seconds, one per round) without the first round, a warm-up.
/// `times` holds at least two rounds.
pub fn median_after_warmup(mut times: Vec<f64>) -> f64 {
    times.remove(0);
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}
