//! k-means end to end through SQL, per rank, against scikit-learn in the same run.
//!
//! `mpirun -n P heatsql-bench-kmeans [ROWS] [COLS] [K] [ROUNDS]` (default 2,000,000 × 16 f64,
//! k = 8, 4 rounds). The data: 8 overlapping Gaussian blobs (centres drawn in [−1, 1]^d, unit
//! spread), generated once under `target/bench-data/` with row groups of 131,072 rows, and the
//! first k rows as the initial centroids (`kmeans_<rows>x<cols>_init.parquet`). Each round runs
//! `SELECT * FROM kmeans(t, k => K, init => init, max_iter => 20, tol => 0, output =>
//! 'summary')`: exactly 20 Lloyd iterations (tol 0 stops only when nothing moves), load
//! included. Rank 0 prints the median after a warm-up and the iterations run.
//! `scripts/bench.sh kmeans` runs it at P = 1 and 2 and, in the same run, scikit-learn `KMeans`
//! with the same initial centroids and `max_iter = 20, tol = 0` on the same file
//! (`benches/python/kmeans_baseline.py`).

use std::path::PathBuf;
use std::time::Instant;

use heatsql::HeatContext;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    engine::memory::retain_freed_memory();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(2_000_000);
    let cols = args.get(1).copied().unwrap_or(16);
    let k = args.get(2).copied().unwrap_or(8);
    let rounds = args.get(3).copied().unwrap_or(4).max(2);
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    let path = dir.join(format!("kmeans_v2_{rows}x{cols}.parquet"));
    let init = dir.join(format!("kmeans_v2_{rows}x{cols}_init{k}.parquet"));
    if me == 0 {
        // The initial centroids are the data's first rows: written together.
        benches::data::write_blobs_parquet(&path, &init, rows, cols, k, benches::ROW_GROUP_ROWS);
        println!("file {} {}", path.display(), init.display());
    }
    comm.barrier();
    for (name, file) in [("t", &path), ("init", &init)] {
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{}'",
            file.display()
        ))
        .await
        .expect("create");
    }
    let sql = format!("SELECT * FROM kmeans(t, k => {k}, init => init, max_iter => 20, tol => 0, output => 'summary')");
    let mut times = Vec::new();
    let mut summary = String::new();
    for _ in 0..rounds {
        comm.barrier();
        let t = Instant::now();
        let batches = ctx.sql(&sql).await.expect("kmeans").collect().await.expect("kmeans");
        times.push(t.elapsed().as_secs_f64());
        summary = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map(|t| t.to_string())
            .unwrap_or_default();
    }
    let median = benches::median_after_warmup(times);
    if me == 0 {
        println!(
            "heatsql P={p}: kmeans k = {k} of {rows} × {cols}, 20 iterations, load included: {median:.3} s \
             (median of {} rounds after a warm-up)\n{summary}",
            rounds - 1
        );
    }
}
