//! Multi-rank checks of distributed Parquet tables, Table → DNDarray → Arrow, plain SQL across
//! ranks, joins and COPY TO (the `heatsql-table-checks` program).
//!
//! `heatsql-table-checks gen BASE` writes the fixtures below BASE (a local directory or an
//! object_store URL such as `s3://bucket/prefix`); `heatsql-table-checks check BASE OUT
//! [--only PREFIX] [-v]` runs the checks under `mpirun -n P` (OUT: where COPY writes; a fresh
//! location per run). Rank 0 prints failures and `table checks at P=<p>: <n> passed, <m> failed`.
//!
//! Fixture columns are functions of the global row index `id`, so every rank can check its own
//! rows without a reference copy: `x = sin(id)`, `y = id / 4` (f32), `k = id % 7` (i32),
//! `d = id / 4` as decimal(12, 2), `label = "r<id>"`.
//!
//! [`setup`] registers the tables every subject reads (its checks count in every run); then
//! [`run`] runs the [`SUBJECTS`] that `--only` selects.

pub mod arrays;
pub mod copy;
pub mod dense;
pub mod fixtures;
pub mod joins;
pub mod parquet;
pub mod sql;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use heatsql::HeatContext;

use crate::checker::Checker;

/// The subjects of `heatsql-table-checks check`, in the order they run.
pub const SUBJECTS: [&str; 6] = ["tables", "arrays", "dense", "sql", "joins", "copy"];

/// Collective. Runs every subject that `c` selects, in order: the fixtures below `base`, COPY
/// output below `out`.
pub async fn run(c: &mut Checker, ctx: &HeatContext, base: &str, out: &str) {
    if c.subject("tables") {
        parquet::check(c, ctx, base).await;
    }
    if c.subject("arrays") {
        arrays::check(c, ctx).await;
    }
    if c.subject("dense") {
        dense::check(c, ctx, base).await;
    }
    if c.subject("sql") {
        sql::check(c, ctx).await;
    }
    if c.subject("joins") {
        joins::check(c, ctx, out).await;
    }
    if c.subject("copy") {
        copy::check(c, ctx, out).await;
    }
}

/// Collective. Registers the tables that several subjects read: `points` (a directory of
/// files), `empty` (an empty file) and `single` (one row group); checks `tables/create_directory`
/// and `tables/empty_file_registers`, outside any subject.
pub async fn setup(c: &mut Checker, ctx: &HeatContext, base: &str) {
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE points STORED AS PARQUET LOCATION '{base}/points/'"
        ))
        .await;
    c.check("tables/create_directory", r.is_ok(), || format!("{r:?}"));
    let r = ctx.register_parquet("empty", &format!("{base}/empty.parquet")).await;
    c.check("tables/empty_file_registers", r.is_ok(), || format!("{r:?}"));
    ctx.register_parquet("single", &format!("{base}/single_rg.parquet"))
        .await
        .ok();
}

/// Rows of the `points` files.
pub(crate) const POINTS: i64 = 72;

/// Column `x` of row `id`.
pub(crate) fn x_of(id: i64) -> f64 {
    (id as f64).sin()
}

/// Rows of `ints.parquet`.
pub(crate) const INT_ROWS: i64 = 50;

/// `ints.parquet`'s u64 column: above i64::MAX.
pub(crate) fn u64_of(id: i64) -> u64 {
    u64::MAX - 3 * id as u64
}

/// This rank's `id` column of a query, and all ranks' ids in rank order.
pub(crate) async fn ids(c: &HeatContext, sql: &str) -> datafusion::error::Result<(Vec<i64>, Vec<i64>)> {
    let local = match c.sql(sql).await {
        Ok(df) => df.collect_local().await,
        Err(e) => Err(e),
    };
    // A failure on one rank must not leave the others in the allgather below.
    let batches = c
        .comm()
        .agree(local)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let mine: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let (all, _) = c
        .comm()
        .allgatherv(&mine)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    Ok((mine, all))
}

/// The error of a statement on this rank, as text ("" when it succeeded).
pub(crate) async fn error_of(c: &HeatContext, sql: &str) -> String {
    match c.sql(sql).await {
        Ok(df) => match df.collect().await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

/// Whether `v` is `lo..hi` in order.
pub(crate) fn is_range(v: &[i64], lo: i64, hi: i64) -> bool {
    v.len() as i64 == hi - lo && v.iter().enumerate().all(|(i, &x)| x == lo + i as i64)
}

/// The plan of `sql` as EXPLAIN prints it ("" when it cannot be planned).
pub(crate) async fn explain(ctx: &HeatContext, sql: &str) -> String {
    let Ok(df) = ctx.sql(&format!("EXPLAIN {sql}")).await else {
        return String::new();
    };
    let batches = df.collect().await.unwrap_or_default();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The row count a `COPY … TO` statement returns (`None` if it ran but returned no row).
pub(crate) async fn copied_rows(ctx: &HeatContext, copy: &str) -> datafusion::error::Result<Option<u64>> {
    let batches = ctx.sql(copy).await?.collect().await?;
    Ok(batches.first().map(|b| {
        b.column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0)
    }))
}
