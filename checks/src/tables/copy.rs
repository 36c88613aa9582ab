//! `copy`: COPY TO round trips (count, order, values with NULLs, one part per rank), a
//! non-empty target refused, and a failure on one rank reported everywhere, leaving nothing.

use heatsql::HeatContext;

use super::{POINTS, copied_rows, error_of, ids, is_range};
use crate::checker::Checker;

/// Collective. The `copy` subject (COPY writes below `out`).
pub async fn check(c: &mut Checker, ctx: &HeatContext, out: &str) {
    let p = c.comm.size();
    let target = format!("{out}/copy/");
    let count = match copied_rows(
        ctx,
        &format!("COPY (SELECT * FROM points) TO '{target}' STORED AS PARQUET"),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            c.check("copy/round_trip_write", false, || e.to_string());
            None
        }
    };
    c.check("copy/count", count == Some(POINTS as u64), || format!("{count:?}"));
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE copied STORED AS PARQUET LOCATION '{target}'"
        ))
        .await;
    c.check("copy/read_back", r.is_ok(), || format!("{r:?}"));
    let (_, all) = ids(ctx, "SELECT id FROM copied").await.unwrap_or_default();
    c.check("copy/round_trip_order", is_range(&all, 0, POINTS), || {
        format!("{all:?}")
    });
    // Values survive, NULLs included: compare the non-id columns as text, row by row.
    let text = |sql: &'static str| async move {
        let b = match ctx.sql(sql).await {
            Ok(d) => d.collect().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let (a, b) = (text("SELECT * FROM points").await, text("SELECT * FROM copied").await);
    c.check("copy/round_trip_values", !a.is_empty() && a == b, || {
        format!("{a}\n!=\n{b}")
    });
    let files = ctx.session().table_provider("copied").await.ok();
    let n = files
        .as_ref()
        .and_then(|t| {
            (t.as_ref() as &dyn std::any::Any)
                .downcast_ref::<connectors::DistributedParquetTable>()
                .map(|t| t.files().len())
        })
        .unwrap_or(0);
    c.check("copy/one_part_per_rank", n == p, || format!("{n} files"));
    // Copying into a non-empty location is refused.
    let e = error_of(
        ctx,
        &format!("COPY (SELECT * FROM points) TO '{target}' STORED AS PARQUET"),
    )
    .await;
    c.check("copy/refuses_non_empty_target", e.contains("already exists"), || {
        e.clone()
    });
    // A failure on one rank only (the row with label 'bad' lives on the last rank): every rank
    // errors and nothing remains.
    let failing = format!("{out}/failing/");
    let e = error_of(
        ctx,
        &format!("COPY (SELECT id, CAST(label AS INT) AS v FROM points) TO '{failing}' STORED AS PARQUET"),
    )
    .await;
    c.check(
        "copy/failure_reported_everywhere",
        e.contains("bad") || e.contains("Cast"),
        || format!("'{e}'"),
    );
    let leftover = ctx
        .register_parquet("leftover", &failing)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.check("copy/failure_leaves_nothing", leftover.contains("not found"), || {
        format!("'{leftover}'")
    });
}
