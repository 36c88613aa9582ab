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
//! Each has a driver in `scripts/bench-*.sh`.

/// The median of `times` (seconds, one per round) without the first round, a warm-up.
/// `times` holds at least two rounds.
pub fn median_after_warmup(mut times: Vec<f64>) -> f64 {
    times.remove(0);
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Peak resident memory of this process in bytes (`getrusage`).
pub fn peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss as u64 * 1024
    }
}

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;

/// Rows per row group of the generated benchmark files.
pub const ROW_GROUP_ROWS: usize = 131_072;

/// Writes `rows` rows of `cols` non-null Float64 columns named `{prefix}0`, `{prefix}1`, …
/// (Snappy, row groups of [`ROW_GROUP_ROWS`]) to `path`, unless it exists. `chunk(n)` returns
/// the next `n` rows as `cols` columns. The file appears only when complete (written under a
/// temporary name, then renamed).
pub fn write_f64_parquet(
    path: &Path,
    cols: usize,
    prefix: &str,
    rows: usize,
    mut chunk: impl FnMut(usize) -> Vec<Vec<f64>>,
) {
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let fields: Vec<Field> = (0..cols)
        .map(|j| Field::new(format!("{prefix}{j}"), DataType::Float64, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let tmp = path.with_extension("tmp");
    let mut w =
        ArrowWriter::try_new(File::create(&tmp).expect("create"), Arc::clone(&schema), Some(props)).expect("writer");
    for start in (0..rows).step_by(65_536) {
        let n = 65_536.min(rows - start);
        let arrays: Vec<ArrayRef> = chunk(n)
            .into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
            .collect();
        w.write(&RecordBatch::try_new(Arc::clone(&schema), arrays).expect("batch"))
            .expect("write");
    }
    w.close().expect("close");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Writes the low-rank benchmark matrix of `heatsql-bench-pca` and `heatsql-bench-svd` to
/// `path` (unless it exists): rows × cols = Z (rows × 8) · M (8 × cols) + an offset j per
/// column j + 0.01 standard normal noise, Z's column r scaled by 8 − r, deterministic.
pub fn write_low_rank_parquet(path: &Path, rows: usize, cols: usize) {
    let rank = 8.min(cols);
    let mut g = Xorshift(0x9e37_79b9_7f4a_7c15);
    let m: Vec<f64> = (0..rank * cols).map(|_| g.normal()).collect();
    write_f64_parquet(path, cols, "x", rows, |n| {
        let mut data = vec![vec![0.0f64; n]; cols];
        for i in 0..n {
            let z: Vec<f64> = (0..rank).map(|r| g.normal() * (rank - r) as f64).collect();
            for (j, col) in data.iter_mut().enumerate() {
                let signal: f64 = (0..rank).map(|r| z[r] * m[r * cols + j]).sum();
                col[i] = signal + j as f64 + 0.01 * g.normal();
            }
        }
        data
    });
}

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

/// A deterministic random stream for generated benchmark data (xorshift64; Box–Muller
/// normals), the same on every run.
pub struct Xorshift(pub u64);

impl Xorshift {
    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
