//! `heatsql-tpch`: the 22 TPC-H queries on heatsql under `mpirun`, each compared with
//! single-process DataFusion on the same Parquet files (see `heatsql_sql_tests::tpch`).
//!
//! `mpirun -n P heatsql-tpch [--sf 0.1] [--data DIR] [--row-group-rows N] [--round-bytes N]
//! [--memory-limit SIZE] [--queries 1,5,18]`
//!
//! Rank 0 generates the tables when missing (default `<workspace>/target/tpch-sf<SF>`, row
//! groups of 10,000 rows at SF 0.1 so that every rank reads several); every rank then runs each
//! query through one `HeatContext` (with `SET heatsql.exchange_round_bytes` and
//! `SET datafusion.runtime.memory_limit` when given), rank 0 also through a plain DataFusion
//! session, and prints `q5: ok (0.41 s, DataFusion 0.12 s)` or what differs. The last line is
//! `tpch at P=3: 22 passed, 0 failed`; the exit status is 0 only when every query passed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use heatsql::HeatContext;
use heatsql::datafusion::prelude::SessionContext;
use heatsql_sql_tests::tpch;

struct Args {
    sf: f64,
    data: Option<PathBuf>,
    row_group_rows: Option<usize>,
    round_bytes: Option<usize>,
    memory_limit: Option<String>,
    queries: Vec<usize>,
}

const USAGE: &str = "usage: heatsql-tpch [--sf 0.1] [--data DIR] [--row-group-rows N] [--round-bytes N] \
                     [--memory-limit SIZE] [--queries 1,5,18]";

fn parse() -> Result<Args, String> {
    let mut a = Args {
        sf: 0.1,
        data: None,
        row_group_rows: None,
        round_bytes: None,
        memory_limit: None,
        queries: (1..=22).collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--sf" => a.sf = value("--sf")?.parse().map_err(|e| format!("--sf: {e}"))?,
            "--data" => a.data = Some(PathBuf::from(value("--data")?)),
            "--row-group-rows" => {
                a.row_group_rows = Some(
                    value("--row-group-rows")?
                        .parse()
                        .map_err(|e| format!("--row-group-rows: {e}"))?,
                )
            }
            "--round-bytes" => {
                a.round_bytes = Some(
                    value("--round-bytes")?
                        .parse()
                        .map_err(|e| format!("--round-bytes: {e}"))?,
                )
            }
            "--memory-limit" => a.memory_limit = Some(value("--memory-limit")?),
            "--queries" => {
                a.queries = value("--queries")?
                    .split(',')
                    .map(|q| q.trim().trim_start_matches('q').parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--queries: {e}"))?;
                if a.queries.iter().any(|&q| !(1..=22).contains(&q)) {
                    return Err("--queries: numbers 1..=22".into());
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("heatsql-tpch: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let me = comm.rank();
    let dir = args
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/tpch-sf{}", args.sf)));
    let row_group_rows = args
        .row_group_rows
        .unwrap_or_else(|| ((args.sf * 100_000.0) as usize).clamp(1_000, 1_000_000));
    let generated = if me == 0 {
        tpch::generate(&dir, args.sf, row_group_rows)
    } else {
        Ok(())
    };
    if let Err(e) = comm.agree(generated) {
        if me == 0 {
            eprintln!("heatsql-tpch: {e}");
        }
        return ExitCode::from(1);
    }
    let mut setup: Vec<String> = tpch::ddl(&dir);
    if let Some(n) = args.round_bytes {
        setup.push(format!("SET heatsql.exchange_round_bytes = {n}"));
    }
    if let Some(m) = &args.memory_limit {
        setup.push(format!("SET datafusion.runtime.memory_limit = '{m}'"));
    }
    let reference = SessionContext::new();
    for s in &setup {
        if let Err(e) = async { ctx.sql(s).await?.collect().await }.await {
            if me == 0 {
                eprintln!("heatsql-tpch: {s}: {e}");
            }
            return ExitCode::from(1);
        }
        if me == 0
            && s.starts_with("CREATE")
            && let Err(e) = async { reference.sql(s).await?.collect().await }.await
        {
            eprintln!("heatsql-tpch: DataFusion: {s}: {e}");
            return ExitCode::from(1);
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for &q in &args.queries {
        let verdict = query(&ctx, &reference, q, me).await;
        match comm.agree(verdict) {
            Ok(line) => {
                passed += 1;
                if me == 0 {
                    println!("q{q}: {line}");
                }
            }
            Err(e) => {
                failed += 1;
                if me == 0 {
                    println!("q{q}: FAILED: {e}");
                }
            }
        }
    }
    if me == 0 {
        println!("tpch at P={}: {passed} passed, {failed} failed", comm.size());
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs query `q` on heatsql (every rank) and, on rank 0, on DataFusion; rank 0 compares.
async fn query(ctx: &HeatContext, reference: &SessionContext, q: usize, me: usize) -> Result<String, String> {
    let statements = tpch::query(q).map_err(|e| e.to_string())?;
    let result = tpch::result_statement(&statements);
    let mut got = None;
    let start = Instant::now();
    for (i, s) in statements.iter().enumerate() {
        let frame = ctx.sql(s).await.map_err(|e| format!("heatsql: {e}"))?;
        let schema = frame.schema();
        let batches = frame.collect_on_root().await.map_err(|e| format!("heatsql: {e}"))?;
        if i == result {
            got = Some((batches, schema));
        }
    }
    let heatsql_s = start.elapsed().as_secs_f64();
    if me != 0 {
        return Ok(String::new());
    }
    let start = Instant::now();
    let mut want = None;
    for (i, s) in statements.iter().enumerate() {
        let df = reference.sql(s).await.map_err(|e| format!("DataFusion: {e}"))?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| format!("DataFusion: {e}"))?;
        if i == result {
            want = Some((batches, schema));
        }
    }
    let datafusion_s = start.elapsed().as_secs_f64();
    let (got, got_schema) = got.expect("the result statement ran");
    let (want, want_schema) = want.expect("the result statement ran");
    tpch::compare(&got, &got_schema, &want, &want_schema)?;
    let rows: usize = want.iter().map(|b| b.num_rows()).sum();
    Ok(format!(
        "ok, {rows} rows ({heatsql_s:.2} s, DataFusion {datafusion_s:.2} s)"
    ))
}
