//! `joins`: hash joins with DataFusion's dynamic filters and heatsql's key filters, forced into
//! partitioned mode, read every way a rank reads a plan's partitions.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use heatsql::HeatContext;

use super::{POINTS, copied_rows, error_of, explain, ids};
use crate::checker::Checker;

/// Hash joins and DataFusion's dynamic filters: on with one rank, where every partition of a
/// join runs in this process (so whatever reads several partitions must run them at once: a
/// partitioned join's filter waits for all its build partitions), off with several. Joins
/// are forced into partitioned mode; each way a rank reads a plan's partitions is used: the
/// final result, this rank's stream (`COPY TO`), a scalar subquery, a table function's input.
/// Collective: the `joins` subject (COPY writes below `out`).
pub async fn check(c: &mut Checker, ctx: &HeatContext, out: &str) {
    let p = c.comm.size();
    let set = |threshold: &'static str, rows: &'static str| async move {
        let a = error_of(
            ctx,
            &format!("SET datafusion.optimizer.hash_join_single_partition_threshold = {threshold}"),
        )
        .await;
        let b = error_of(
            ctx,
            &format!("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = {rows}"),
        )
        .await;
        a + &b
    };
    let e = set("0", "0").await;
    c.check("joins/partitioned_mode_set", e.is_empty(), || format!("'{e}'"));
    let join = "SELECT a.id FROM points a JOIN points b ON a.id = b.id WHERE b.k = 3";
    let want: Vec<i64> = (0..POINTS).filter(|i| i % 7 == 3).collect();
    let plan = explain(ctx, join).await;
    c.check(
        "joins/dynamic_filter_only_with_one_rank",
        plan.contains("DynamicFilter") == (p == 1),
        || plan.clone(),
    );
    // Across ranks, the two shuffles into the join share a filter of the build keys.
    let filtered = plan.contains("key_filter=build") && plan.contains("key_filter=probe");
    c.check("joins/key_filter_only_across_ranks", filtered == (p > 1), || {
        plan.clone()
    });
    let (_, mut all) = ids(ctx, join).await.unwrap_or_default();
    all.sort_unstable();
    c.check("joins/result", all == want, || format!("{all:?}"));
    // Joins that keep probe rows without a match, or test for their absence, keep their answers.
    let others: Vec<i64> = (0..POINTS).filter(|i| i % 7 != 3).collect();
    let every: Vec<i64> = (0..POINTS).collect();
    let cases = [
        (
            "left_join",
            "SELECT a.id FROM points a LEFT JOIN (SELECT id FROM points WHERE k = 3) b ON a.id = b.id",
            &every,
        ),
        (
            "left_join_unmatched",
            "SELECT a.id FROM points a LEFT JOIN (SELECT id FROM points WHERE k = 3) b ON a.id = b.id \
             WHERE b.id IS NULL",
            &others,
        ),
        (
            "anti_join",
            "SELECT id FROM points a WHERE NOT EXISTS (SELECT 1 FROM points b WHERE b.id = a.id AND b.k = 3)",
            &others,
        ),
        (
            "semi_join",
            "SELECT id FROM points WHERE id IN (SELECT id FROM points WHERE k = 3)",
            &want,
        ),
    ];
    for filters in ["true", "false"] {
        let e = error_of(ctx, &format!("SET heatsql.join_key_filters = {filters}")).await;
        c.check("joins/key_filters_set", e.is_empty(), || format!("'{e}'"));
        for (name, sql, expected) in &cases {
            let (_, mut got) = ids(ctx, sql).await.unwrap_or_default();
            got.sort_unstable();
            c.check(
                &format!("joins/{name}/key_filters_{filters}"),
                &got == *expected,
                || format!("{got:?}"),
            );
        }
    }
    let plan = explain(ctx, join).await;
    c.check("joins/key_filters_off", !plan.contains("key_filter"), || plan.clone());
    let (_, mut all) = ids(ctx, join).await.unwrap_or_default();
    all.sort_unstable();
    c.check("joins/result_without_key_filters", all == want, || format!("{all:?}"));
    let e = error_of(ctx, "SET heatsql.join_key_filters = true").await;
    c.check("joins/key_filters_set_back", e.is_empty(), || format!("'{e}'"));
    // This rank's stream of the join, written where it was computed.
    let target = format!("{out}/joined/");
    let count = copied_rows(ctx, &format!("COPY ({join}) TO '{target}' STORED AS PARQUET"))
        .await
        .ok()
        .flatten();
    c.check("joins/copy_count", count == Some(want.len() as u64), || {
        format!("{count:?}")
    });
    // A scalar subquery over the join: max id with k = 3 is 66, five ids lie above it.
    let n = match ctx
        .sql(&format!(
            "SELECT count(*) FROM points WHERE id > (SELECT max(a.id) FROM ({join}) a)"
        ))
        .await
    {
        Ok(df) => df
            .collect()
            .await
            .map(|b| b.first().map(|b| b.column(0).as_primitive::<Int64Type>().value(0))),
        Err(e) => Err(e),
    };
    c.check("joins/scalar_subquery", matches!(n, Ok(Some(5))), || format!("{n:?}"));
    // A table function reading the join: one score row per joined row.
    let (_, mut scored) = ids(
        ctx,
        "SELECT id FROM pca((SELECT a.id, a.x, CAST(b.id AS DOUBLE) AS z FROM points a \
         JOIN points b ON a.id = b.id WHERE b.k = 3), k => 1, keep => 'id')",
    )
    .await
    .unwrap_or_default();
    scored.sort_unstable();
    c.check("joins/table_function_input", scored == want, || format!("{scored:?}"));
    let e = set("1048576", "131072").await;
    c.check("joins/defaults_set_back", e.is_empty(), || format!("'{e}'"));
}
