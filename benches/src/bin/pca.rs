//! Parquet → PCA end to end through heatsql's Rust API, per rank, with peak memory.
//!
//! `mpirun -n P heatsql-bench-pca [ROWS] [COLS] [K] [ROUNDS] [sql]` (default 2,000,000 × 32 f64,
//! k = 8, 4 rounds). The data is low-rank (rank 8 plus 1 % noise, an offset per column),
//! generated once under `target/bench-data/` with row groups of 131,072 rows. Each round:
//! load (`SELECT * FROM t` → row-split DNDarray), fit (`engine::ml::pca`, covariance solver),
//! scores (transform, kept on each rank). Rank 0 prints medians after the first round and each
//! rank's peak resident memory (`getrusage`), next to the rank's share of the data.
//! `scripts/bench.sh pca` runs it at P = 1 and 2 and, in the same run, pyarrow + scikit-learn
//! `PCA(svd_solver='full')` on the same file (`benches/python/pca_baseline.py`).
//!
//! With the argument `sql` it instead runs the SQL call users write, `SELECT * FROM pca(t, k =>
//! K, solver => 'covariance')`, end to end: its scores stay on their ranks (`execute_local`,
//! each rank draining its own stream of Arrow batches), as a `COPY … TO` would consume them.
//! Each mode runs in its own processes, so the peak memory is that mode's.

use std::path::PathBuf;
use std::time::Instant;

use engine::ml::pca::{Components, PcaOptions, Solver, fit, transform};
use futures::StreamExt;
use heatsql::HeatContext;
use heatsql::convert::LoadSpec;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    engine::memory::retain_freed_memory();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(2_000_000);
    let cols = args.get(1).copied().unwrap_or(32);
    let k = args.get(2).copied().unwrap_or(8) as i64;
    let rounds = args.get(3).copied().unwrap_or(4).max(2);
    let sql_mode = std::env::args().any(|a| a == "sql");
    let mut ratio = f64::NAN;
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/pca_{rows}x{cols}.parquet"));
    if me == 0 {
        benches::write_low_rank_parquet(&path, rows, cols);
        // The file for the Python baseline.
        println!("file {}", path.display());
    }
    comm.barrier();
    let mut spec = LoadSpec::new("pca");
    spec.expected_rows = benches::open_table(&ctx, "t", &path).await;
    spec.device = benches::device(comm);
    let opts = PcaOptions {
        components: Components::Count(k),
        solver: Solver::Covariance,
        standardize: false,
    };
    let share_of = |rows: usize| rows as f64 * cols as f64 * 8.0;
    let limit = |share: f64| (2.0 * share + 0.4e9) / 1e9;
    let line = if sql_mode {
        // The SQL call, end to end: plan, load, fit, scores as Arrow batches drained per rank.
        let sql = format!("SELECT * FROM pca(t, k => {k}, solver => 'covariance')");
        let (mut times, mut rows_here) = (Vec::new(), 0);
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let mut stream = ctx
                .sql(&sql)
                .await
                .expect("pca query")
                .execute_local()
                .await
                .expect("pca");
            rows_here = 0;
            while let Some(batch) = stream.next().await {
                rows_here += batch.expect("pca batch").num_rows();
            }
            times.push(t.elapsed().as_secs_f64());
        }
        let share = share_of(rows_here);
        format!(
            "heatsql P={p} rank {me} SQL pca(t, k => {k}): {rows_here} rows; end to end {:.3} s; peak RSS {:.2} GB \
             for a {:.2} GB share (limit 2 × share + 0.4 GB = {:.2} GB)\n",
            benches::median_after_warmup(times),
            benches::peak_rss() as f64 / 1e9,
            share / 1e9,
            limit(share)
        )
    } else {
        let (mut load_t, mut fit_t, mut score_t) = (Vec::new(), Vec::new(), Vec::new());
        let mut local_rows = 0;
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let loaded = benches::load(&ctx, "SELECT * FROM t", &spec).await;
            load_t.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let model = fit(&loaded.array, &opts).expect("fit");
            benches::sync(spec.device);
            fit_t.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let scores = transform(&loaded.array, &model).expect("scores");
            benches::sync(spec.device);
            score_t.push(t.elapsed().as_secs_f64());
            local_rows = scores.lshape()[0] as usize;
            ratio = model.explained_variance_ratio.sum(tch::Kind::Double).double_value(&[]);
        }
        let (load, fit_s, score) = (
            benches::median_after_warmup(load_t),
            benches::median_after_warmup(fit_t),
            benches::median_after_warmup(score_t),
        );
        let share = share_of(local_rows);
        format!(
            "heatsql P={p} rank {me} API on {}: {local_rows} rows; load {load:.3} s, fit {fit_s:.3} s, scores {score:.3} s, \
             end to end {:.3} s; peak RSS {:.2} GB for a {:.2} GB share (limit 2 × share + 0.4 GB = {:.2} GB)\n",
            benches::device_name(spec.device),
            load + fit_s + score,
            benches::peak_rss() as f64 / 1e9,
            share / 1e9,
            limit(share)
        )
    };
    let (all, _) = comm.gatherv(line.as_bytes(), 0).expect("gather").unwrap_or_default();
    if me == 0 {
        if !sql_mode {
            println!(
                "PCA k = {k} of {rows} × {cols} (covariance solver; median of {} rounds after a warm-up); \
                 explained variance ratio of the {k} components {ratio:.6}",
                rounds - 1
            );
        }
        print!("{}", String::from_utf8_lossy(&all));
    }
}
