//! The report's datasets: one Parquet file per operation and row scale (1 for strong scaling,
//! P for weak scaling), generated deterministically by [`crate::data`] and cached. Each file
//! has `--row-groups` row groups (default 24) of equal rows, so that 1, 2, 3 and 4 ranks get
//! equal shares (ranks read whole row groups).

use std::path::{Path, PathBuf};

use super::options::Options;

/// The input of one operation at one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The Parquet file (rows × cols Float64).
    pub file: PathBuf,
    /// The k-means initial centroids (its first k rows), when the operation needs them.
    pub init: Option<PathBuf>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// The operation's k (components, triplets, clusters or DMD rank; unused by load/matmul).
    pub k: i64,
    /// Rows per row group.
    pub group_rows: usize,
}

/// Side of the square matmul operand at row scale `scale`: n·scale^(1/3) (equal flops per
/// rank at scale = P), rounded to a multiple of 8.
pub fn matmul_side(n: usize, scale: usize) -> usize {
    let side = n as f64 * (scale as f64).cbrt();
    ((side / 8.0).round() as usize * 8).max(8)
}

/// The dataset of `op` at row scale `scale` (weak scaling multiplies the rows by P; matmul
/// its side by P^(1/3)).
pub fn dataset(o: &Options, op: &str, scale: usize) -> Dataset {
    let mut d = named(o, op, scale);
    d.group_rows = d.rows.div_ceil(o.row_groups).max(1);
    d
}

fn named(o: &Options, op: &str, scale: usize) -> Dataset {
    let (dir, g) = (&o.data_dir, o.row_groups);
    let rows = o.rows * scale;
    match op {
        "kmeans" => Dataset {
            file: dir.join(format!("report_kmeans_{rows}x{}_g{g}.parquet", o.kmeans_cols)),
            init: Some(dir.join(format!(
                "report_kmeans_{rows}x{}_g{g}_init{}.parquet",
                o.kmeans_cols, o.clusters
            ))),
            rows,
            cols: o.kmeans_cols,
            k: o.clusters,
            group_rows: 0,
        },
        "dmd" => {
            let n = o.dmd_points * scale;
            Dataset {
                file: dir.join(format!("report_dmd_{n}x{}_g{g}.parquet", o.dmd_steps)),
                init: None,
                rows: n,
                cols: o.dmd_steps,
                k: o.dmd_rank,
                group_rows: 0,
            }
        }
        "matmul" => {
            let n = matmul_side(o.matmul_n, scale);
            Dataset {
                file: dir.join(format!("report_matmul_{n}_g{g}.parquet")),
                init: None,
                rows: n,
                cols: n,
                k: 0,
                group_rows: 0,
            }
        }
        // load, pca, svd: the low-rank table of heatsql-bench-pca / -svd.
        _ => Dataset {
            file: dir.join(format!("report_lowrank_{rows}x{}_g{g}.parquet", o.cols)),
            init: None,
            rows,
            cols: o.cols,
            k: o.k,
            group_rows: 0,
        },
    }
}

/// Writes `d` for `op` unless it is cached.
pub fn generate(op: &str, d: &Dataset) {
    let file: &Path = &d.file;
    match op {
        "kmeans" => crate::data::write_blobs_parquet(
            file,
            d.init.as_deref().expect("init"),
            d.rows,
            d.cols,
            d.k as usize,
            d.group_rows,
        ),
        "dmd" => {
            let mut g = crate::Xorshift(0x0d0d_5eed_1234_abcd);
            let state = crate::data::Planted::new(d.rows, d.cols, &mut g);
            crate::data::write_with_noise(file, d.rows, d.cols, "s", None, d.group_rows, |i, k| state.value(i, k));
        }
        "matmul" => crate::data::write_normal_parquet(file, d.rows, d.cols, 0x6d61_746d_756c, d.group_rows),
        _ => crate::data::write_low_rank_parquet_grouped(file, d.rows, d.cols, d.group_rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_scaling_sizes() {
        let o = Options::default();
        assert_eq!(dataset(&o, "pca", 2).rows, 2 * o.rows);
        assert_eq!(dataset(&o, "dmd", 4).rows, 4 * o.dmd_points);
        assert_eq!(matmul_side(2048, 1), 2048);
        // 2048 · 2^(1/3) = 2580.3 → 2584 (a multiple of 8); flops grow by 2.00 ± 1 %.
        assert_eq!(matmul_side(2048, 2), 2584);
        let ratio = (2584f64 / 2048.0).powi(3);
        assert!((ratio - 2.0).abs() < 0.02, "{ratio}");
        assert!(dataset(&o, "kmeans", 1).init.is_some());
        assert_eq!(dataset(&o, "load", 1).file, dataset(&o, "svd", 1).file);
        // 24 equal row groups: 1, 2, 3 and 4 ranks read equal shares.
        assert_eq!(dataset(&o, "pca", 1).group_rows, o.rows.div_ceil(24));
        assert_eq!(dataset(&o, "matmul", 1).group_rows * 24, 2064);
    }
}
