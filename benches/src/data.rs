//! Deterministic generated datasets of the benchmarks (Parquet files of Float64 columns): the
//! same bytes on every run for the same arguments, written atomically (temporary name, then
//! rename) and only when missing.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
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
    chunk: impl FnMut(usize) -> Vec<Vec<f64>>,
) {
    write_f64_parquet_grouped(path, cols, prefix, rows, ROW_GROUP_ROWS, chunk)
}

/// [`write_f64_parquet`] with row groups of `group_rows` rows.
pub fn write_f64_parquet_grouped(
    path: &Path,
    cols: usize,
    prefix: &str,
    rows: usize,
    group_rows: usize,
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
        .set_max_row_group_row_count(Some(group_rows.max(1)))
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
    write_low_rank_parquet_grouped(path, rows, cols, ROW_GROUP_ROWS)
}

/// [`write_low_rank_parquet`] with row groups of `group_rows` rows.
pub fn write_low_rank_parquet_grouped(path: &Path, rows: usize, cols: usize, group_rows: usize) {
    let rank = 8.min(cols);
    let mut g = Xorshift(0x9e37_79b9_7f4a_7c15);
    let m: Vec<f64> = (0..rank * cols).map(|_| g.normal()).collect();
    write_f64_parquet_grouped(path, cols, "x", rows, group_rows, |n| {
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

/// Writes the k-means benchmark data to `path` and its first `k` rows, the initial centroids, to
/// `init` (unless `init` exists; then both are taken as written together): `rows` × `cols`
/// draws from 8 overlapping Gaussian blobs (centres uniform in [−1, 1]^cols, unit spread),
/// deterministic, in row groups of `group_rows` rows. The same seed gives the same leading
/// rows for every `rows`.
pub fn write_blobs_parquet(path: &Path, init: &Path, rows: usize, cols: usize, k: usize, group_rows: usize) {
    if init.exists() && path.exists() {
        return;
    }
    std::fs::remove_file(path).ok();
    let mut g = Xorshift(0x2545_f491_4f6c_dd1d);
    let centres: Vec<f64> = (0..8 * cols).map(|_| 2.0 * g.uniform() - 1.0).collect();
    let mut first: Vec<Vec<f64>> = vec![Vec::new(); cols];
    write_f64_parquet_grouped(path, cols, "x", rows, group_rows, |n| {
        let mut data = vec![vec![0.0f64; n]; cols];
        for i in 0..n {
            let c = (g.uniform() * 8.0) as usize % 8;
            for (j, col) in data.iter_mut().enumerate() {
                col[i] = centres[c * cols + j] + g.normal();
            }
        }
        for (j, col) in data.iter().enumerate() {
            let need = k.saturating_sub(first[j].len());
            first[j].extend(col.iter().take(need));
        }
        data
    });
    write_f64_parquet(init, cols, "x", k, |n| first.iter().map(|c| c[..n].to_vec()).collect());
}

/// Writes a `rows` × `cols` matrix of standard normal entries (stream `seed`) to `path` in
/// row groups of `group_rows` rows, unless it exists.
pub fn write_normal_parquet(path: &Path, rows: usize, cols: usize, seed: u64, group_rows: usize) {
    let mut g = Xorshift(seed);
    write_f64_parquet_grouped(path, cols, "x", rows, group_rows, |n| {
        let mut data = vec![vec![0.0f64; n]; cols];
        for i in 0..n {
            for col in data.iter_mut() {
                col[i] = g.normal();
            }
        }
        data
    });
}

/// The DMD benchmarks' planted dynamics: 8 conjugate pairs ρ_j e^{±iθ_j} (|λ| within
/// 1 ± 4·10⁻⁵) mixed into a state of `n` values by random modes (n × 16: the cosine and sine
/// parts per pair), tabulated for `steps` times.
pub struct Planted {
    /// steps × 16: ρ_jᵏ cos(θ_j k), ρ_jᵏ sin(θ_j k).
    dynamics: Vec<f64>,
    /// n × 16 random modes.
    modes: Vec<f64>,
}

impl Planted {
    /// A state of `n` values over `steps` times, modes drawn from `g`.
    pub fn new(n: usize, steps: usize, g: &mut Xorshift) -> Planted {
        let mut dynamics = Vec::with_capacity(steps * 16);
        for k in 0..steps {
            for j in 0..8 {
                let (rho, theta) = (1.0 + 1e-5 * (j as f64 - 3.5), 0.01 + 0.05 * j as f64);
                let a = f64::powi(rho, k as i32);
                let (s, c) = (theta * k as f64).sin_cos();
                dynamics.extend([a * c, a * s]);
            }
        }
        let modes = (0..n * 16).map(|_| g.normal()).collect();
        Planted { dynamics, modes }
    }

    /// The noise-free value of state entry `i` at time `k`.
    pub fn value(&self, i: usize, k: usize) -> f64 {
        let (m, t) = (&self.modes[i * 16..i * 16 + 16], &self.dynamics[k * 16..k * 16 + 16]);
        m.iter().zip(t).map(|(a, b)| a * b).sum()
    }
}

/// Writes `rows` rows of `lead` (an optional Int64 column holding the row index) and `cols`
/// Float64 columns `{prefix}0…` of `value(row, col)` plus 10⁻³ standard normal noise, in row
/// groups of `group` rows, unless `path` exists.
pub fn write_with_noise(
    path: &Path,
    rows: usize,
    cols: usize,
    prefix: &str,
    lead: Option<&str>,
    group: usize,
    value: impl Fn(usize, usize) -> f64,
) {
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut fields: Vec<Field> = lead.iter().map(|n| Field::new(*n, DataType::Int64, false)).collect();
    fields.extend((0..cols).map(|j| Field::new(format!("{prefix}{j}"), DataType::Float64, false)));
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group))
        .build();
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).expect("create");
    let mut w = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).expect("writer");
    let mut noise = Xorshift(0x5eed);
    for start in (0..rows).step_by(group) {
        let n = group.min(rows - start);
        let mut arrays: Vec<ArrayRef> = Vec::new();
        if lead.is_some() {
            arrays.push(Arc::new(Int64Array::from(
                (start as i64..(start + n) as i64).collect::<Vec<_>>(),
            )));
        }
        for j in 0..cols {
            let v: Vec<f64> = (start..start + n)
                .map(|i| value(i, j) + 1e-3 * noise.normal())
                .collect();
            arrays.push(Arc::new(Float64Array::from(v)));
        }
        w.write(&RecordBatch::try_new(Arc::clone(&schema), arrays).expect("batch"))
            .expect("write");
    }
    w.close().expect("close");
    std::fs::rename(&tmp, path).expect("rename");
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
