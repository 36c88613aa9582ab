//! Plain SQL across ranks: the 22 TPC-H queries (DataFusion's benchmark texts, data from
//! `tpchgen`, see `heatsql_sql_tests::tpch`) through heatsql, and optionally plain
//! single-process DataFusion on the same files, in the same process.
//!
//! `mpirun -n P heatsql-bench-sql [SF] [ROUNDS] [OUT.tsv] [LABEL] [--no-datafusion]` (default
//! SF 1, 3 rounds; row groups of 100,000 rows, generated once under
//! `target/bench-data/tpch-sf<SF>`). Each round runs every query through heatsql (all ranks,
//! the result collected on rank 0) and, on rank 0 unless `--no-datafusion`, through a plain
//! DataFusion `SessionContext` with its default configuration reading the same files. Results
//! are compared (floats to 1e-9 relative; a mismatch aborts the benchmark). Reported per query:
//! medians after a warm-up round, heatsql / DataFusion, and each rank's peak RSS. With
//! `OUT.tsv`, rank 0 appends `LABEL query seconds` lines (`datafusion query seconds` for the
//! reference) and `LABEL rss MB,MB,…` (peak RSS per rank), which `scripts/bench.sh sql` turns
//! into the report. `HEATSQL_BENCH_MEMORY_LIMIT` sets the per-rank memory pool.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use heatsql::HeatContext;
use heatsql_sql_tests::tpch;

/// Appends a line to the report file, if there is one.
fn append(out: &Option<String>, line: &str) {
    if let Some(path) = out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open report");
        writeln!(f, "{line}").expect("write report");
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    heatsql::memory::retain_freed_memory();
    let all: Vec<String> = std::env::args().skip(1).collect();
    let reference = !all.iter().any(|a| a == "--no-datafusion");
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let sf: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3).max(2);
    let out = args.get(2).map(|s| s.to_string());
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let threads = heatsql::partitions_per_rank(comm);
    let label = args
        .get(3)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("heatsql P={p} x{threads}"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/tpch-sf{sf}"));
    let generated = if me == 0 {
        tpch::generate(&dir, sf, 100_000)
    } else {
        Ok(())
    };
    comm.agree(generated).expect("generate TPC-H");
    let plain = SessionContext::new();
    for sql in tpch::ddl(&dir) {
        ctx.sql(&sql)
            .await
            .expect("heatsql table")
            .collect()
            .await
            .expect("ddl");
        if me == 0 && reference {
            plain.sql(&sql).await.expect("datafusion table");
        }
    }
    if let Ok(limit) = std::env::var("HEATSQL_BENCH_MEMORY_LIMIT") {
        let set = format!("SET datafusion.runtime.memory_limit = '{limit}'");
        ctx.sql(&set).await.expect("memory limit").collect().await.expect("set");
    }
    let mut report = Vec::new();
    let (mut total_ours, mut total_theirs) = (0.0, 0.0);
    for q in 1..=22 {
        let statements = tpch::query(q).expect("query text");
        let result = tpch::result_statement(&statements);
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let mut got = None;
            for (i, s) in statements.iter().enumerate() {
                let frame = ctx.sql(s).await.expect("plan");
                let schema = frame.schema();
                let batches = frame
                    .collect_on_root()
                    .await
                    .unwrap_or_else(|e| panic!("q{q}: heatsql: {e}"));
                if i == result {
                    got = Some((batches, schema));
                }
            }
            ours.push(t.elapsed().as_secs_f64());
            comm.barrier();
            if me == 0 && reference {
                let t = Instant::now();
                let mut want = None;
                for (i, s) in statements.iter().enumerate() {
                    let df = plain.sql(s).await.expect("plan");
                    let schema = Arc::new(df.schema().as_arrow().clone());
                    let batches = df.collect().await.unwrap_or_else(|e| panic!("q{q}: DataFusion: {e}"));
                    if i == result {
                        want = Some((batches, schema));
                    }
                }
                theirs.push(t.elapsed().as_secs_f64());
                let (g, gs) = got.take().expect("result");
                let (w, ws) = want.expect("result");
                if let Err(e) = tpch::compare(&g, &gs, &w, &ws) {
                    panic!("q{q}: heatsql and DataFusion disagree: {e}");
                }
            }
        }
        let ours = benches::median_after_warmup(ours);
        if me == 0 {
            let theirs = if reference {
                benches::median_after_warmup(theirs)
            } else {
                f64::NAN
            };
            total_ours += ours;
            total_theirs += theirs;
            report.push(format!(
                "q{q:<3} heatsql {ours:>8.3} s   datafusion {theirs:>8.3} s   heatsql/datafusion {:.2}",
                ours / theirs
            ));
            append(&out, &format!("{label}\tq{q}\t{ours:.6}"));
            if reference {
                append(&out, &format!("datafusion\tq{q}\t{theirs:.6}"));
            }
        }
    }
    let rss = comm.gather(&[benches::peak_rss_mb()], 0).expect("gather rss");
    if let Some(rss) = &rss {
        let per: Vec<String> = rss.iter().map(|m| format!("{m:.0}")).collect();
        append(&out, &format!("{label}\trss\t{}", per.join(",")));
    }
    if me == 0 {
        let partitions = plain.state().config().target_partitions();
        println!(
            "TPC-H SF {sf}, {label}: P = {p}, {threads} partition(s) per rank (median of {} rounds after a \
             warm-up; plain DataFusion with target_partitions = {partitions})",
            rounds - 1
        );
        for line in report {
            println!("{line}");
        }
        println!(
            "total heatsql {total_ours:.3} s   datafusion {total_theirs:.3} s   heatsql/datafusion {:.2}",
            total_ours / total_theirs
        );
        if let Some(rss) = rss {
            let per: Vec<String> = rss.iter().map(|m| format!("{m:.0} MB")).collect();
            println!("peak RSS per rank: {}", per.join(", "));
        }
    }
}
