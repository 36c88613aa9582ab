//! One SQL query on a directory of Parquet tables through heatsql, and on rank 0 through plain
//! single-process DataFusion on the same files, in one run (the TPC-DS q72 benchmark,
//! `scripts/bench.sh tpcds`).
//!
//! `mpirun -n P heatsql-bench-query DIR QUERY.sql [ROUNDS] [--no-datafusion]`: every
//! sub-directory of DIR is a table of that name. Prints per round the seconds of heatsql and
//! of DataFusion, the medians after a warm-up, and each rank's peak RSS; the results are
//! compared (floats to 1e-9 relative) and a mismatch fails. `HEATSQL_BENCH_MEMORY_LIMIT` sets
//! the per-rank memory pool of heatsql's session.
//! DataFusion's session takes `DATAFUSION_*` settings from the environment.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::prelude::{SessionConfig, SessionContext};
use heatsql::HeatContext;
use heatsql_sql_tests::tpch;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    heatsql::memory::retain_freed_memory();
    let all: Vec<String> = std::env::args().skip(1).collect();
    let reference = !all.iter().any(|a| a == "--no-datafusion");
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    if args.len() < 2 {
        eprintln!("usage: heatsql-bench-query DIR QUERY.sql [ROUNDS] [--no-datafusion]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(args[0]);
    let text = std::fs::read_to_string(args[1]).expect("read the query");
    let query: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let query = query.trim().trim_end_matches(';').to_string();
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3).max(2);
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    // DataFusion's defaults, and any `DATAFUSION_*` settings from the environment (for
    // example `DATAFUSION_OPTIMIZER_ENABLE_JOIN_DYNAMIC_FILTER_PUSHDOWN=false`).
    let plain = SessionContext::new_with_config(SessionConfig::from_env().expect("DATAFUSION_* settings"));
    let mut tables: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the table directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    tables.sort();
    for t in &tables {
        let sql = format!(
            "CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{}/'",
            dir.join(t).display()
        );
        ctx.sql(&sql).await.expect("table").collect().await.expect("ddl");
        if me == 0 && reference {
            plain.sql(&sql).await.expect("datafusion table");
        }
    }
    if let Ok(limit) = std::env::var("HEATSQL_BENCH_MEMORY_LIMIT") {
        let set = format!("SET datafusion.runtime.memory_limit = '{limit}'");
        ctx.sql(&set).await.expect("memory limit").collect().await.expect("set");
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        comm.barrier();
        let t = Instant::now();
        let frame = ctx.sql(&query).await.expect("plan");
        let schema = frame.schema();
        let got = frame.collect_on_root().await.unwrap_or_else(|e| panic!("heatsql: {e}"));
        ours.push(t.elapsed().as_secs_f64());
        comm.barrier();
        if me == 0 && reference {
            let t = Instant::now();
            let df = plain.sql(&query).await.expect("plan");
            let want_schema = Arc::new(df.schema().as_arrow().clone());
            let want = df.collect().await.unwrap_or_else(|e| panic!("DataFusion: {e}"));
            theirs.push(t.elapsed().as_secs_f64());
            if let Err(e) = tpch::compare(&got, &schema, &want, &want_schema) {
                panic!("heatsql and DataFusion disagree: {e}");
            }
        }
        if me == 0 {
            println!(
                "round {round}: heatsql {:.3} s{}",
                ours[round],
                theirs
                    .get(round)
                    .map(|t| format!(", datafusion {t:.3} s"))
                    .unwrap_or_default()
            );
        }
    }
    let rss = comm.gather(&[benches::peak_rss_mb()], 0).expect("gather rss");
    if me == 0 {
        let threads = heatsql::partitions_per_rank(comm);
        let theirs = if reference {
            benches::median_after_warmup(theirs)
        } else {
            f64::NAN
        };
        let ours = benches::median_after_warmup(ours);
        let per: Vec<String> = rss.unwrap_or_default().iter().map(|m| format!("{m:.0} MB")).collect();
        println!(
            "{}: P = {p}, {threads} partition(s) per rank: heatsql {ours:.3} s, datafusion {theirs:.3} s, \
             heatsql/datafusion {:.2}; peak RSS per rank: {}",
            args[1],
            ours / theirs,
            per.join(", ")
        );
    }
}
