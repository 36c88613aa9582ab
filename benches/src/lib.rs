//! heatsql's benchmarks. Each reports ratios against a baseline measured in the same run (never
//! absolute times compared across runs or machines).
//!
//! * `heatsql-bench-load` (`src/bin/load.rs`): Parquet → DNDarray load rate per rank versus a
//!   plain single-process Parquet read of the same file.
//! * `heatsql-bench-sql`: plain SQL across ranks versus one DataFusion process.
//! * `heatsql-bench-pca`, `heatsql-bench-kmeans`, `heatsql-bench-svd`: the table functions end
//!   to end versus scikit-learn / numpy on the same file (`python/`).
//! * `heatsql-bench-matmul`: the ring matmul versus libtorch's local GEMM.
//!
//! * `heatsql-bench-dmd`: exact DMD versus PyDMD.
//! * `heatsql-bench-scaling` and `heatsql-bench-report` (`src/report/`): the one-command scaling
//!   report — load and every table function at several rank counts, the baselines, the
//!   machine's limits, `results.json`, a Markdown table and PNG plots.
//!
//! Each has a driver, `scripts/bench.sh NAME`. Generated data comes from [`data`].

/// The median of `times` (seconds, one per round) without the first round, a warm-up.
/// `times` holds at least two rounds.
pub fn median_after_warmup(mut times: Vec<f64>) -> f64 {
    times.remove(0);
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// The device this rank computes on: `HEATSQL_DEVICE` (`auto`, `cpu`, `cuda`; default `auto`)
/// resolved for its local rank, as the SQL functions resolve `heatsql.device`. Panics with the
/// reason when the setting cannot be used (a benchmark has nothing to fall back to).
pub fn device(comm: &heatsql::Comm) -> tch::Device {
    heatsql::DeviceSetting::from_env()
        .and_then(|s| s.resolve(comm.local_rank()))
        .unwrap_or_else(|e| panic!("HEATSQL_DEVICE: {e}"))
}

/// Waits for the work queued on `device` (CUDA runs asynchronously): call before reading a
/// clock. Nothing to wait for on the CPU.
pub fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// `cpu` or `cuda:N`, as the benchmarks print it.
pub use engine::device::name as device_name;

/// Peak resident memory of this process in bytes (`getrusage`).
pub fn peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss as u64 * 1024
    }
}

/// [`peak_rss`] in MB (2^20 bytes), as the benchmarks print it.
pub fn peak_rss_mb() -> f64 {
    peak_rss() as f64 / (1024.0 * 1024.0)
}

use std::path::Path;

pub mod data;
pub mod report;

pub use data::{ROW_GROUP_ROWS, Xorshift, write_f64_parquet, write_low_rank_parquet};

/// Collective. Registers the Parquet file at `path` as the distributed table `name`; returns
/// the rows this rank reads (the loader's capacity hint, `LoadSpec::expected_rows`).
pub async fn open_table(ctx: &heatsql::HeatContext, name: &str, path: &Path) -> Option<usize> {
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{}'",
        path.display()
    ))
    .await
    .expect("create");
    let provider = ctx.session().table_provider(name).await.expect("table");
    let table = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<connectors::DistributedParquetTable>()?;
    Some(table.rows_per_rank()[ctx.comm().rank()] as usize)
}

/// Collective. Runs `sql` and drains this rank's share into a row-split DNDarray by `spec`
/// (the load every benchmark times); panics on error, as benchmarks do.
pub async fn load(
    ctx: &heatsql::HeatContext,
    sql: &str,
    spec: &heatsql::convert::LoadSpec,
) -> heatsql::convert::Loaded {
    ctx.sql(sql)
        .await
        .expect("query")
        .to_dndarray(spec)
        .await
        .expect("load")
}
