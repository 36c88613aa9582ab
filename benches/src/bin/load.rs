//! Parquet → DNDarray load rate per rank versus a plain single-process Parquet read.
//!
//! `mpirun -n P heatsql-bench-load [ROWS] [COLS] [ROUNDS]` (default 2,000,000 × 32 f64, row groups of
//! 131,072 rows, Snappy). The file is generated once under `target/bench-data/`. Rank 0 first
//! reads the whole file alone with the parquet crate's plain reader (decode to Arrow, nothing
//! else) — the baseline rate. Then all ranks load the table into a row-split DNDarray through
//! heatsql as users do (`CREATE EXTERNAL TABLE` + `HeatFrame::to_dndarray`, which is also what
//! the SQL functions do: this rank's row groups decoded straight into its tensor,
//! `connectors::dense`). Reported: each rank's rows per second and its ratio to the baseline
//! (target ≥ 0.90), and for comparison the load through Arrow batches (`convert::load` of the
//! scan's stream: decode, then copy into the tensor) and heatsql's scan alone. `[ROUNDS]`
//! (default 6) rounds each time the four measurements, interleaved; reported are medians
//! after the first round.
//!
//! At P > 1 the ranks share the machine's memory bandwidth and caches, which the
//! single-process baseline had to itself; each round therefore also times every rank reading
//! its own row groups plainly at the same moment, and reports the load against that too (what
//! heatsql adds, the machine's sharing factored out). A rank's load also ends with the ranks'
//! agreement, so a rank with fewer rows (row groups do not split evenly) waits for the others.
//!
//! Two ways to measure, both reported by `scripts/bench.sh load`:
//!
//! * **warm** (the default): all rounds in one process. The baseline's Arrow buffers then live in
//!   heap memory that earlier rounds already faulted in (the allocator keeps freed memory),
//!   while the load's tensor, like any allocation beyond glibc's mmap threshold, is fresh memory
//!   every time (on a virtual machine the cost of fresh memory varies from round to round).
//!
//! * **fresh** (`--once baseline|own|load`): one measurement per process, as a job or a shell
//!   session that loads a table once sees it; both sides start from fresh memory. The script
//!   runs the rounds as separate `mpirun` launches, interleaved, and `--summarize` reads their
//!   `once …` lines from standard input and reports medians after the first round.
//!
//! `HEATSQL_BENCH_BATCH=N` sets DataFusion's batch size and `HEATSQL_BENCH_SET="name = value;
//! …"` other session settings, to explore what the scan costs.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use engine::comm::ReduceOp;
use heatsql::HeatContext;
use heatsql::convert::{LoadSpec, load};

/// Uniform numbers in [0, 1) from one xorshift stream, column by column per chunk.
fn generate(path: &std::path::Path, rows: usize, cols: usize) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    benches::write_f64_parquet(path, cols, "c", rows, |n| {
        (0..cols)
            .map(|_| {
                (0..n)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 11) as f64 / (1u64 << 53) as f64
                    })
                    .collect()
            })
            .collect()
    });
}

/// The whole file decoded into Arrow batches held in memory (like pyarrow's `read_table`).
fn plain_read(path: &PathBuf) -> usize {
    plain_read_groups(path, None)
}

/// The row groups `groups` (all when `None`) decoded into Arrow batches held in memory.
fn plain_read_groups(path: &PathBuf, groups: Option<Vec<usize>>) -> usize {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open")).expect("reader");
    let builder = match groups {
        Some(g) => builder.with_row_groups(g),
        None => builder,
    };
    let reader = builder.with_batch_size(8192).build().expect("build");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    batches.iter().map(|b| b.num_rows()).sum()
}

/// This rank's row groups of the file (the table's assignment, `connectors::assign`).
fn own_row_groups(path: &PathBuf, rank: usize, ranks: usize) -> Vec<usize> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("open")).expect("reader");
    let rows: Vec<u64> = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as u64)
        .collect();
    let owner = connectors::assign::assign_row_groups(&rows, ranks);
    (0..rows.len()).filter(|&g| owner[g] == rank).collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // What the heatsql shell does too: keep freed decode buffers for reuse (engine::memory).
    let retained = engine::memory::retain_freed_memory();
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.iter().any(|a| a == "--summarize") {
        return summarize();
    }
    let once = all
        .iter()
        .position(|a| a == "--once")
        .and_then(|i| all.get(i + 1))
        .cloned();
    let args: Vec<usize> = all.iter().filter_map(|a| a.replace('_', "").parse().ok()).collect();
    let (rows, cols) = (
        args.first().copied().unwrap_or(2_000_000),
        args.get(1).copied().unwrap_or(32),
    );
    let rounds = args.get(2).copied().unwrap_or(6).max(2);
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/load_{rows}x{cols}.parquet"));
    if me == 0 {
        generate(&path, rows, cols);
    }
    comm.barrier();
    if let Ok(size) = std::env::var("HEATSQL_BENCH_BATCH") {
        ctx.sql(&format!("SET datafusion.execution.batch_size = {size}"))
            .await
            .expect("set");
    }
    // Extra session settings to explore, `;`-separated (`HEATSQL_BENCH_SET="datafusion.x = y"`).
    for set in std::env::var("HEATSQL_BENCH_SET").unwrap_or_default().split(';') {
        if !set.trim().is_empty() {
            ctx.sql(&format!("SET {set}")).await.expect("set");
        }
    }
    if let Some(kind) = once {
        return measure_once(&ctx, &kind, &path, rows).await;
    }
    // The table knows how many rows this rank reads: the loader's capacity hint.
    let expected = benches::open_table(&ctx, "t", &path).await.unwrap_or(0);
    // Rounds interleave the three measurements so that each sees the same machine and
    // allocator state; the first round is a warm-up.
    let (mut base_t, mut own_t, mut scan_t, mut stream_t, mut load_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut local_rows = 0;
    for _ in 0..rounds {
        // Baseline: rank 0 alone, plain parquet read of the whole file.
        comm.barrier();
        if me == 0 {
            let t = Instant::now();
            let n = plain_read(&path);
            base_t.push(t.elapsed().as_secs_f64());
            assert_eq!(n, rows);
        }
        // Every rank at once, a plain read of its own row groups: the baseline under the same
        // sharing of memory bandwidth and caches as the ranks' loads (P > 1).
        comm.barrier();
        let t = Instant::now();
        let n = plain_read_groups(&path, Some(own_row_groups(&path, me, p)));
        own_t.push(t.elapsed().as_secs_f64());
        assert_eq!(n, expected);
        // heatsql's scan alone: this rank's row groups into Arrow batches, no tensor.
        comm.barrier();
        let t = Instant::now();
        let batches = ctx
            .sql("SELECT * FROM t")
            .await
            .expect("query")
            .collect_local()
            .await
            .expect("collect");
        scan_t.push(t.elapsed().as_secs_f64());
        drop(batches);
        // The load through Arrow batches: the scan's stream drained into the tensor.
        comm.barrier();
        let t = Instant::now();
        let stream = ctx
            .sql("SELECT * FROM t")
            .await
            .expect("query")
            .execute_local()
            .await
            .expect("stream");
        let mut spec = LoadSpec::new("bench");
        spec.expected_rows = Some(expected);
        let loaded = load(ctx.comm(), stream, &spec).await.expect("load");
        stream_t.push(t.elapsed().as_secs_f64());
        assert_eq!(loaded.array.local().size()[0] as usize, expected);
        drop(loaded);
        // The load as users run it (`to_dndarray`, and the SQL functions): this rank's row
        // groups decoded straight into the rank's tensor (connectors::dense), agreed.
        comm.barrier();
        let t = Instant::now();
        let loaded = ctx
            .sql("SELECT * FROM t")
            .await
            .expect("query")
            .to_dndarray(&LoadSpec::new("bench"))
            .await
            .expect("load");
        load_t.push(t.elapsed().as_secs_f64());
        assert!(loaded.dense, "the plain scan was not read as a dense source");
        local_rows = loaded.array.local().size()[0] as usize;
    }

    let baseline = if me == 0 {
        rows as f64 / benches::median_after_warmup(base_t)
    } else {
        0.0
    };
    let baseline = comm.allreduce(&[baseline], ReduceOp::Max).expect("allreduce")[0];
    let [own_secs, scan_secs, stream_secs, secs] = [own_t, scan_t, stream_t, load_t].map(benches::median_after_warmup);
    let ratio = |secs: f64| local_rows as f64 / secs / baseline;
    let own = if p > 1 {
        format!(
            "; all ranks reading their own row groups at once {own_secs:.3} s, load/that {:.2}",
            own_secs / secs
        )
    } else {
        String::new()
    };
    let line = format!(
        "rank {me}/{p}: {local_rows} rows; load {secs:.3} s = {:.2} M rows/s; baseline {:.2} M rows/s; \
         load/baseline {:.2} (through Arrow batches {stream_secs:.3} s = {:.2}; scan alone {scan_secs:.3} s = {:.2}){own}\n",
        local_rows as f64 / secs / 1e6,
        baseline / 1e6,
        ratio(secs),
        ratio(stream_secs),
        ratio(scan_secs),
    );
    let (all, _) = comm.gatherv(line.as_bytes(), 0).expect("gather").unwrap_or_default();
    // Ranks finish together (the load ends agreed), so a rank with fewer rows shows a lower
    // rate; the mean over ranks is the table's rows per rank over the load's time.
    let slowest = comm.allreduce(&[secs], ReduceOp::Max).expect("allreduce")[0];
    if me == 0 {
        println!(
            "Parquet → DNDarray load, {rows} × {cols} f64, P = {p} (median of {} rounds after a warm-up; \
             allocator keeps freed memory: {retained})",
            rounds - 1
        );
        print!("{}", String::from_utf8_lossy(&all));
        if p > 1 {
            let mean = rows as f64 / p as f64 / slowest;
            println!(
                "mean over ranks: {:.2} M rows/s per rank; load/baseline {:.2}",
                mean / 1e6,
                mean / baseline
            );
        }
    }
}

/// `--once KIND`: one measurement in this fresh process; prints `once KIND P RANK ROWS SECS`
/// per rank (on rank 0, in rank order). `baseline`: rank 0 reads the whole file alone; `own`:
/// every rank at once reads its own row groups plainly; `load`: every rank loads its share.
async fn measure_once(ctx: &HeatContext, kind: &str, path: &std::path::Path, rows: usize) {
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let (n, secs) = match kind {
        "baseline" if me == 0 => {
            let t = Instant::now();
            let n = plain_read(&path.to_path_buf());
            assert_eq!(n, rows);
            (n, t.elapsed().as_secs_f64())
        }
        "baseline" => (0, 0.0),
        "own" => {
            let path = path.to_path_buf();
            let groups = own_row_groups(&path, me, p);
            comm.barrier();
            let t = Instant::now();
            let n = plain_read_groups(&path, Some(groups));
            (n, t.elapsed().as_secs_f64())
        }
        "load" => {
            benches::open_table(ctx, "t", path).await;
            comm.barrier();
            let t = Instant::now();
            let loaded = ctx
                .sql("SELECT * FROM t")
                .await
                .expect("query")
                .to_dndarray(&LoadSpec::new("bench"))
                .await
                .expect("load");
            assert!(loaded.dense, "the plain scan was not read as a dense source");
            (loaded.array.local().size()[0] as usize, t.elapsed().as_secs_f64())
        }
        other => panic!("--once {other}: expected baseline, own or load"),
    };
    let line = format!("once {kind} {p} {me} {n} {secs:.6}\n");
    let (all, _) = comm.gatherv(line.as_bytes(), 0).expect("gather").unwrap_or_default();
    if me == 0 {
        print!("{}", String::from_utf8_lossy(&all));
    }
}

/// `--summarize`: reads `once …` lines (several rounds of fresh-process measurements) from
/// standard input; prints each rank's median load rate after the first round against the
/// baseline's.
fn summarize() {
    use std::collections::BTreeMap;
    use std::io::BufRead;
    // (kind, P, rank) → (rows, seconds per round)
    let mut runs: BTreeMap<(String, usize, usize), (usize, Vec<f64>)> = BTreeMap::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || f[0] != "once" {
            continue;
        }
        let parse = |s: &str| s.parse::<usize>().expect("number");
        let key = (f[1].to_string(), parse(f[2]), parse(f[3]));
        let entry = runs.entry(key).or_insert((parse(f[4]), Vec::new()));
        entry.1.push(f[5].parse().expect("seconds"));
    }
    let Some((base_rows, base_times)) = runs.get(&("baseline".to_string(), 1, 0)).cloned() else {
        eprintln!("--summarize: no baseline lines on standard input");
        std::process::exit(1);
    };
    let rounds = base_times.len();
    let baseline = base_rows as f64 / benches::median_after_warmup(base_times);
    println!(
        "fresh processes (one measurement per process, median of {} rounds after a warm-up): baseline {:.2} M rows/s",
        rounds - 1,
        baseline / 1e6
    );
    for ((kind, p, rank), (rows, times)) in &runs {
        if kind != "load" || times.len() < 2 {
            continue;
        }
        let secs = benches::median_after_warmup(times.clone());
        let rate = *rows as f64 / secs;
        let own = match runs.get(&("own".to_string(), *p, *rank)) {
            Some((_, own)) if *p > 1 && own.len() >= 2 => {
                let own = benches::median_after_warmup(own.clone());
                format!(
                    "; all ranks reading their own row groups at once {own:.3} s, load/that {:.2}",
                    own / secs
                )
            }
            _ => String::new(),
        };
        println!(
            "  P = {p}, rank {rank}: {rows} rows; load {secs:.3} s = {:.2} M rows/s; load/baseline {:.2}{own}",
            rate / 1e6,
            rate / baseline
        );
    }
}
