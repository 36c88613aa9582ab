//! Multi-rank checks of the table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`,
//! `svd`, `matmul`, `dmd`) through SQL (the `heatsql-function-checks` program).
//!
//! `heatsql-function-checks FIXTURES SCRATCH [--only PREFIX] [-v]` under `mpirun -n P`: FIXTURES
//! is `heatsql/tests/fixtures/pca` (scikit-learn results on its bundled breast cancer dataset,
//! made by `make_fixture.py` there; the k-means and DMD fixtures sit beside it); rank 0 writes
//! generated tables and COPY output to SCRATCH. References: the fixtures, and tch on the gathered
//! input (every rank reads the whole input with an ordinary query and factors it in one
//! process). Rank 0 prints failures and `function checks at P=<p>: <n> passed, <m> failed`.
//!
//! [`setup`] writes the generated tables and registers every table (its `register/…` checks
//! count in every run); then [`run`] runs the [`SUBJECTS`] that `--only` selects.

pub mod dmd;
pub mod kmeans;
pub mod matmul;
pub mod pca;
pub mod sql;
pub mod svd;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use heatsql::HeatContext;
use tch::Tensor;

use crate::checker::Checker;

/// The subjects of `heatsql-function-checks`, in the order they run.
pub const SUBJECTS: [&str; 8] = [
    "sklearn",
    "lowrank",
    "sql",
    "kmeans",
    "kmeans/seeded",
    "svd",
    "matmul",
    "dmd",
];

/// Collective. Runs every subject that `c` selects, in order (`scratch`: where rank 0 writes).
pub async fn run(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    if c.subject("sklearn") {
        pca::check_sklearn(c, ctx).await;
    }
    if c.subject("lowrank") {
        pca::check_lowrank(c, ctx).await;
    }
    if c.subject("sql") {
        sql::check(c, ctx, scratch).await;
    }
    if c.subject("kmeans") {
        kmeans::check(c, ctx).await;
    }
    if c.subject("kmeans/seeded") {
        kmeans::check_seeded(c, ctx, scratch).await;
    }
    if c.subject("svd") {
        svd::check(c, ctx).await;
    }
    if c.subject("matmul") {
        matmul::check(c, ctx, scratch).await;
    }
    if c.subject("dmd") {
        dmd::check(c, ctx).await;
    }
}

/// Collective. Rank 0 writes the generated tables (low-rank, blobs) to `scratch`; every rank
/// registers them and the fixtures below `fixtures` (checks `register/<table>`, outside any
/// subject).
pub async fn setup(c: &mut Checker, ctx: &HeatContext, fixtures: &str, scratch: &str) {
    let lowrank = format!("{scratch}/lowrank.parquet");
    if ctx.comm().rank() == 0 {
        std::fs::create_dir_all(scratch).expect("scratch dir");
        write_lowrank(&lowrank);
        write_parquet(&format!("{scratch}/blobs.parquet"), &blobs_batch(), 250);
    }
    ctx.comm().barrier();
    let mut tables = vec![
        ("cancer".to_string(), format!("{fixtures}/cancer.parquet")),
        ("lowrank".into(), lowrank),
        ("blobs".into(), format!("{scratch}/blobs.parquet")),
    ];
    for m in ["raw", "std"] {
        for t in ["variance", "loadings", "scores"] {
            tables.push((format!("{m}_{t}"), format!("{fixtures}/{m}_{t}.parquet")));
        }
    }
    tables.push(("variance_k".into(), format!("{fixtures}/variance_k.parquet")));
    // The k-means fixture sits beside the PCA one.
    for (name, file) in [
        ("wine", "wine"),
        ("km_init", "init"),
        ("km_centroids", "centroids"),
        ("km_labels", "labels"),
        ("km_summary", "summary"),
    ] {
        tables.push((name.into(), format!("{fixtures}/../kmeans/{file}.parquet")));
    }
    // The DMD fixture too.
    for (name, file) in [
        ("macro", "macro"),
        ("macro_columns", "macro_columns"),
        ("dmd_eigs", "expected_eigs"),
        ("dmd_modes", "expected_modes"),
        ("dmd_series", "expected_series"),
    ] {
        tables.push((name.into(), format!("{fixtures}/../dmd/{file}.parquet")));
    }
    for (name, path) in &tables {
        let r = rows(
            ctx,
            &format!("CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{path}'"),
        )
        .await;
        c.check(&format!("register/{name}"), r.is_ok(), || format!("{r:?}"));
    }
}

/// Low-rank table: rows, features, rank, rows per row group.
pub(crate) const LR_ROWS: i64 = 3000;
pub(crate) const LR_COLS: usize = 12;
pub(crate) const LR_GROUP: usize = 250;

/// Exact solvers in f64: the spectrum within 1e-10 relative, vectors and scores within 1e-8.
pub(crate) const SPECTRUM_TOL: f64 = 1e-10;
pub(crate) const VECTOR_TOL: f64 = 1e-8;

/// The low-rank table: x_j = Σ_r u_r(id) σ_r b_rj + 1e-12 noise + 0.5 j (rank 3 of 12 once
/// centred, singular values in the ratio 5 : 3 : 2).
fn lowrank_batch() -> RecordBatch {
    let sigma = [5.0, 3.0, 2.0];
    let ids: Vec<i64> = (0..LR_ROWS).collect();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.clone()))];
    for j in 0..LR_COLS {
        let v: Vec<f64> = ids
            .iter()
            .map(|&i| {
                let t = i as f64;
                let mut x = 0.0;
                for (r, s) in sigma.iter().enumerate() {
                    // Orthogonal columns u_r over the rows, orthogonal rows b_r over the features.
                    let u = (std::f64::consts::TAU * (r + 1) as f64 * t / LR_ROWS as f64).sin();
                    let b = (std::f64::consts::PI * (r + 1) as f64 * (j as f64 + 0.5) / LR_COLS as f64).cos();
                    x += u * s * b;
                }
                x + 1e-12 * (t * 13.1 + j as f64).sin() + 0.5 * j as f64
            })
            .collect();
        fields.push(Field::new(format!("x{j}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from(v)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("lowrank batch")
}

/// Four planted blobs in 3-d (2,000 rows; row i in blob i % 4, centres ±6 on two axes,
/// spread 1): columns id, label, x, y, z.
fn blobs_batch() -> RecordBatch {
    let n = 2000i64;
    let centres = [[6.0, 0.0, 0.0], [-6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, -6.0, 0.0]];
    let noise = |i: i64, j: i64| {
        // Box–Muller on a hash of (i, j): deterministic, independent of the rank count.
        let h = |s: u64| {
            let mut z = s.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let (u1, u2) = (1.0 - h((i * 8 + j) as u64 * 2), h((i * 8 + j) as u64 * 2 + 1));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let ids: Vec<i64> = (0..n).collect();
    let label: Vec<i64> = ids.iter().map(|i| i % 4).collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int64Array::from(label.clone())),
    ];
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Int64, false),
    ];
    for (j, name) in ["x", "y", "z"].iter().enumerate() {
        let v: Vec<f64> = ids
            .iter()
            .map(|&i| centres[(i % 4) as usize][j] + noise(i, j as i64))
            .collect();
        cols.push(Arc::new(Float64Array::from(v)));
        fields.push(Field::new(*name, DataType::Float64, false));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("blobs batch")
}

/// Writes `b` to a Parquet file at `path` in row groups of `group` rows.
pub(crate) fn write_parquet(path: &str, b: &RecordBatch, group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).expect("create parquet");
    let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).expect("writer");
    w.write(b).expect("write");
    w.close().expect("close");
}

/// Writes the low-rank table to `path` in row groups of [`LR_GROUP`] rows.
fn write_lowrank(path: &str) {
    let b = lowrank_batch();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(LR_GROUP))
        .build();
    let file = std::fs::File::create(path).expect("create lowrank.parquet");
    let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).expect("writer");
    w.write(&b).expect("write");
    w.close().expect("close");
}

/// A query's complete result on every rank (errors agreed), or the error text.
pub(crate) async fn rows(ctx: &HeatContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// This rank's share of a query's result.
pub(crate) async fn local_rows(ctx: &HeatContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect_local().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The error of a statement on this rank, as text ("" when it succeeded).
pub(crate) async fn error_of(ctx: &HeatContext, sql: &str) -> String {
    match rows(ctx, sql).await {
        Ok(_) => String::new(),
        Err(e) => e,
    }
}

/// The named columns as an (rows × columns) f64 tensor (NULL → NaN).
pub(crate) fn matrix(batches: &[RecordBatch], names: &[String]) -> Result<Tensor, String> {
    let mut cols = Vec::with_capacity(names.len());
    for n in names {
        let mut v = Vec::new();
        for b in batches {
            let a = b.column_by_name(n).ok_or_else(|| format!("no column {n}"))?;
            let a = cast(a, &DataType::Float64).map_err(|e| e.to_string())?;
            let a = a.as_primitive::<Float64Type>();
            v.extend((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
        }
        cols.push(Tensor::from_slice(&v));
    }
    if cols.is_empty() {
        return Err("no columns".into());
    }
    Ok(Tensor::stack(&cols, 1))
}

/// Column `name` of `batches` cast to i64 (NULL slots keep the values stored under them).
pub(crate) fn int_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(name))
        .filter_map(|a| cast(a, &DataType::Int64).ok())
        .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

/// `pc1` … `pc<k>`.
pub(crate) fn pcs(k: usize) -> Vec<String> {
    (1..=k).map(|i| format!("pc{i}")).collect()
}

/// `list` as owned strings.
pub(crate) fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `c.close(tag, got, want, tol)` when the expected values could be read, else a failed check
/// saying why they could not.
pub(crate) fn close_or_fail<E: std::fmt::Display>(
    c: &mut Checker,
    tag: &str,
    got: Result<Tensor, E>,
    want: Result<Tensor, String>,
    tol: f64,
) {
    match want {
        Ok(w) => c.close(tag, got, &w, tol),
        Err(e) => c.check(tag, false, || e),
    }
}

/// Query `sql` and compare columns `cols` with `want` (rows × cols).
pub(crate) async fn close_sql(
    c: &mut Checker,
    ctx: &HeatContext,
    tag: &str,
    sql: &str,
    cols: &[String],
    want: &Tensor,
    tol: f64,
) {
    let got = rows(ctx, sql).await.and_then(|b| matrix(&b, cols));
    c.close(tag, got, want, tol);
}
