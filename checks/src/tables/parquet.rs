//! `tables`: distributed Parquet tables: rows per rank add up in file order, global
//! statistics, projection and filter pushdown, globs, empty files, one row group read by many
//! ranks, and errors on every rank (corrupt, missing, conflicting).

use engine::comm::ReduceOp;
use heatsql::HeatContext;

use super::{POINTS, error_of, explain, ids, is_range};
use crate::checker::Checker;

/// Collective. The `tables` subject (the fixtures below `base`; `points`, `empty` and `single`
/// are registered by [`super::setup`]).
pub async fn check(c: &mut Checker, ctx: &HeatContext, base: &str) {
    let (p, me) = (c.comm.size(), c.comm.rank());
    // Rows per rank add up and keep the file order; each rank's ids are contiguous.
    match ids(ctx, "SELECT id FROM points").await {
        Ok((mine, all)) => {
            c.check("tables/rows_add_up_in_order", is_range(&all, 0, POINTS), || {
                format!("{all:?}")
            });
            let contiguous = mine.windows(2).all(|w| w[1] == w[0] + 1);
            c.check("tables/rank_rows_contiguous", contiguous, || format!("{mine:?}"));
            let provider = ctx.session().table_provider("points").await.expect("table");
            let t = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<connectors::DistributedParquetTable>();
            let per_rank = t.map(|t| t.rows_per_rank().to_vec()).unwrap_or_default();
            let ok = per_rank.len() == p
                && per_rank[me] as usize == mine.len()
                && per_rank.iter().sum::<u64>() == POINTS as u64;
            c.check("tables/rows_per_rank_reported", ok, || {
                format!("{per_rank:?} vs local {}", mine.len())
            });
        }
        Err(e) => c.check("tables/rows_add_up_in_order", false, || e.to_string()),
    }
    // Global schema and statistics are the same on every rank.
    let stats = ctx
        .session()
        .table_provider("points")
        .await
        .ok()
        .and_then(|t| t.statistics());
    let rows = stats
        .as_ref()
        .and_then(|s| s.num_rows.get_value().copied())
        .unwrap_or(0) as u64;
    let max_rows = c.comm.allreduce(&[rows], ReduceOp::Max).unwrap_or_default();
    c.check(
        "tables/global_statistics",
        rows == POINTS as u64 && max_rows == vec![rows],
        || format!("{stats:?}"),
    );
    // Projection and filter pushdown, visible in EXPLAIN, and correct rows.
    let (_, all) = ids(ctx, "SELECT id, x FROM points WHERE id >= 30 AND id < 40")
        .await
        .unwrap_or_default();
    c.check("tables/filter_rows", is_range(&all, 30, 40), || format!("{all:?}"));
    let plan = explain(ctx, "SELECT id, x FROM points WHERE id >= 30 AND id < 40").await;
    let pushed = plan.contains("projection=[id, x]") && plan.contains("predicate=") && plan.contains("DataSourceExec");
    c.check("tables/explain_shows_pushdown", pushed, || plan.clone());
    // A glob selects the same files.
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE globbed STORED AS PARQUET LOCATION '{base}/points/part-*.parquet'"
        ))
        .await;
    c.check("tables/create_glob", r.is_ok(), || format!("{r:?}"));
    let (_, all) = ids(ctx, "SELECT id FROM globbed").await.unwrap_or_default();
    c.check("tables/glob_rows", is_range(&all, 0, POINTS), || format!("{all:?}"));
    // An empty file.
    let (mine, all) = ids(ctx, "SELECT id FROM empty").await.unwrap_or((vec![1], vec![1]));
    c.check("tables/empty_file_no_rows", mine.is_empty() && all.is_empty(), || {
        format!("{all:?}")
    });
    // One row group, read by P ranks: one rank reads it all.
    let (mine, all) = ids(ctx, "SELECT id FROM single").await.unwrap_or_default();
    let holders = c
        .comm
        .allreduce(&[u64::from(!mine.is_empty())], ReduceOp::Sum)
        .unwrap_or_default();
    c.check(
        "tables/single_row_group",
        is_range(&all, 0, 10) && holders == vec![1],
        || format!("{all:?} held by {holders:?}"),
    );
    // Errors on every rank: corrupt file, missing path, conflicting schemas.
    for (name, loc, want) in [
        ("corrupt", format!("{base}/corrupt.parquet"), "cannot read"),
        ("missing", format!("{base}/no/such/dir/"), "not found"),
        ("missing_file", format!("{base}/nothing.parquet"), "not found"),
        ("conflict", format!("{base}/conflict/"), "conflicts"),
    ] {
        let e = error_of(
            ctx,
            &format!("CREATE EXTERNAL TABLE bad_{name} STORED AS PARQUET LOCATION '{loc}'"),
        )
        .await;
        c.check(&format!("tables/error_{name}"), e.contains(want), || {
            format!("error was '{e}'")
        });
    }
}
