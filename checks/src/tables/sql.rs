//! `sql`: plain SQL across ranks: global answers, agreed errors, plan fingerprints,
//! cancellation, EXPLAIN, CREATE TABLE AS, file sinks written once, results on rank 0 only or
//! left distributed.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use heatsql::HeatContext;

use super::{POINTS, error_of, explain, ids};
use crate::checker::Checker;

/// Collective. The `sql` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    answers_and_errors(c, ctx).await;
    writes_and_results(c, ctx).await;
}

/// Global answers everywhere; an error on one rank's rows, a plan that differs between ranks
/// and a cancellation on one rank reach every rank; EXPLAIN shows the exchanges.
async fn answers_and_errors(c: &mut Checker, ctx: &HeatContext) {
    let (p, me) = (c.comm.size(), c.comm.rank());
    let sums = match ctx.sql("SELECT count(*), sum(id) FROM points").await {
        Ok(f) => f
            .collect()
            .await
            .map(|b| format!("{:?}", b.first().map(|b| (b.column(0).clone(), b.column(1).clone())))),
        Err(e) => Err(e),
    };
    let sums = sums.unwrap_or_else(|e| e.to_string());
    c.check(
        "sql/global_aggregate_everywhere",
        sums.contains("72") && sums.contains("2556"),
        || sums.clone(),
    );
    // An error raised only by rows the last rank holds ('bad' is row 65), in the first stage
    // (below a shuffle) and in the last one: every rank returns it, quickly.
    for (name, sql) in [
        ("shuffled", "SELECT k, sum(CAST(label AS INT)) FROM points GROUP BY k"),
        ("gathered", "SELECT id, CAST(label AS INT) FROM points"),
    ] {
        let t = std::time::Instant::now();
        let e = error_of(ctx, sql).await;
        let secs = t.elapsed().as_secs_f64();
        c.check(
            &format!("sql/error_on_one_rank_everywhere/{name}"),
            e.contains("bad"),
            || format!("'{e}'"),
        );
        c.check(&format!("sql/error_within_seconds/{name}"), secs < 10.0, || {
            format!("{secs:.1} s")
        });
    }
    // Ranks that plan differently (here: a view whose text depends on the rank) are refused.
    let view = ctx
        .sql(&format!("CREATE VIEW skew AS SELECT id FROM points WHERE id < {me}"))
        .await;
    c.check("sql/view_created", view.is_ok(), || format!("{view:?}"));
    let e = error_of(ctx, "SELECT count(*) FROM skew").await;
    if p > 1 {
        c.check(
            "sql/plan_mismatch_refused",
            e.contains("plan differs between ranks"),
            || format!("'{e}'"),
        );
    } else {
        c.check("sql/single_rank_plan_runs", e.is_empty(), || format!("'{e}'"));
    }
    // Cancelling on one rank cancels the query on every rank; the next query runs.
    if me == p - 1 {
        ctx.cancel();
    }
    let e = error_of(ctx, "SELECT k, count(*) FROM points GROUP BY k").await;
    c.check(
        "sql/cancel_everywhere",
        e.contains(&format!("query cancelled on rank {}", p - 1)),
        || format!("'{e}'"),
    );
    let e = error_of(ctx, "SELECT k, count(*) FROM points GROUP BY k").await;
    c.check("sql/runs_after_cancel", e.is_empty(), || format!("'{e}'"));
    // EXPLAIN shows the exchanges.
    let plan = explain(ctx, "SELECT k, count(*) FROM points GROUP BY k ORDER BY k").await;
    let shuffles = plan.contains("MpiShuffleExec: partitioning=Hash([k@0]");
    c.check(
        "sql/explain_shows_exchanges",
        shuffles == (p > 1) && (p == 1 || plan.contains("MpiGatherExec")),
        || plan.clone(),
    );
}

/// CREATE TABLE AS keeps the same copy everywhere, now() is one instant, a file sink is
/// written once, results wanted on rank 0 or left distributed.
async fn writes_and_results(c: &mut Checker, ctx: &HeatContext) {
    let (p, me) = (c.comm.size(), c.comm.rank());
    // CREATE TABLE AS runs distributed: every rank keeps the same copy (random() included).
    let created = ctx
        .sql("CREATE TABLE noisy AS SELECT id, random() AS v FROM points")
        .await;
    c.check("sql/ctas_created", created.is_ok(), || format!("{created:?}"));
    let local = match ctx.session().table("noisy").await {
        Ok(df) => df.collect().await.map(|b| {
            b.iter()
                .flat_map(|b| {
                    b.column(1)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .values()
                        .to_vec()
                })
                .map(f64::to_bits)
                .fold(0u64, |h, v| h.rotate_left(5) ^ v)
        }),
        Err(e) => Err(e),
    };
    let digest = local.unwrap_or(0);
    let all = c.comm.allgather(&[digest]).unwrap_or_default();
    c.check(
        "sql/ctas_same_copy_everywhere",
        digest != 0 && all.iter().all(|&d| d == digest),
        || format!("{all:?}"),
    );
    // now() is one instant on every rank (plans equal, the same answer).
    let e = error_of(
        ctx,
        "SELECT count(*) FROM points WHERE now() > TIMESTAMP '2000-01-01' AND id < 5",
    )
    .await;
    c.check("sql/now_is_one_instant", e.is_empty(), || format!("'{e}'"));
    // A file sink is written once (by rank 0), not once per rank.
    let csv = format!("{}/csv-{p}/", std::env::temp_dir().display());
    if me == 0 {
        std::fs::remove_dir_all(&csv).ok();
    }
    c.comm.barrier();
    let e = error_of(
        ctx,
        &format!("CREATE EXTERNAL TABLE out_csv (id BIGINT) STORED AS CSV LOCATION '{csv}'"),
    )
    .await;
    c.check("sql/csv_table_created", e.is_empty(), || format!("'{e}'"));
    let e = error_of(ctx, "INSERT INTO out_csv SELECT id FROM points WHERE id < 10").await;
    c.check("sql/insert_into_csv", e.is_empty(), || format!("'{e}'"));
    let (_, written) = ids(ctx, "SELECT id FROM out_csv ORDER BY id").await.unwrap_or_default();
    let mut written = written;
    written.sort_unstable();
    c.check(
        "sql/insert_written_once",
        written == (0..10).collect::<Vec<i64>>(),
        || format!("{written:?}"),
    );
    // A result wanted on rank 0 only: there in full and in order, nothing elsewhere.
    let rooted = match ctx.sql("SELECT id FROM points WHERE id % 5 = 0 ORDER BY id DESC").await {
        Ok(f) => f.collect_on_root().await,
        Err(e) => Err(e),
    };
    let rooted: Vec<i64> = rooted
        .unwrap_or_default()
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let want: Vec<i64> = if me == 0 {
        (0..POINTS).rev().filter(|i| i % 5 == 0).collect()
    } else {
        Vec::new()
    };
    c.check("sql/collect_on_root", rooted == want, || format!("{rooted:?}"));
    // A result left distributed: the groups are spread over the ranks (none twice).
    let local = match ctx.sql("SELECT k, count(*) AS n FROM points GROUP BY k").await {
        Ok(f) => f.collect_local().await,
        Err(e) => Err(e),
    };
    let groups: Vec<i64> = local
        .unwrap_or_default()
        .iter()
        .flat_map(|b| {
            datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)
                .map(|a| a.as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default()
        })
        .collect();
    let (mut all, _) = c.comm.allgatherv(&groups).unwrap_or_default();
    all.sort_unstable();
    c.check(
        "sql/local_result_partitions_groups",
        all == (0..7).collect::<Vec<i64>>(),
        || format!("mine {groups:?}, all {all:?}"),
    );
}
