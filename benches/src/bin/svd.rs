//! Truncated SVD of a tall-skinny Parquet table through heatsql, per rank, against numpy's SVD
//! of the same file in the same run.
//!
//! `mpirun -n P heatsql-bench-svd [ROWS] [COLS] [K] [ROUNDS]` (default 2,000,000 × 32 f64,
//! k = 8, 4 rounds) on the low-rank file of `heatsql-bench-pca` (generated once under
//! `target/bench-data/`). Two parts, medians after a warm-up round:
//!
//! * API: load (`SELECT * FROM t` → row-split DNDarray) once, then `engine::linalg::svd` by
//!   each method, Σ and V only and with U (U stays on the ranks, split like the rows, as numpy's
//!   U is in memory).
//! * SQL, end to end (plan, load, factor, Arrow batches drained per rank):
//!   `SELECT * FROM svd(t, k => K, method => 'tsqr', output => 'u' | 's')`.
//!
//! Rank 0 prints the results and every rank's peak resident memory. `scripts/bench.sh svd`
//! runs P = 1 and 2 and `benches/python/svd_baseline.py` (pyarrow + `np.linalg.svd(x,
//! full_matrices=False)`) on the same file, and prints the ratios.

use std::path::PathBuf;
use std::time::Instant;

use engine::linalg::{Solver, svd};
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
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/pca_{rows}x{cols}.parquet"));
    if me == 0 {
        benches::write_low_rank_parquet(&path, rows, cols);
        println!("file {}", path.display());
    }
    comm.barrier();
    let mut spec = LoadSpec::new("svd");
    spec.expected_rows = benches::open_table(&ctx, "t", &path).await;
    spec.device = benches::device(comm);
    let time = |f: &mut dyn FnMut()| {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            f();
            benches::sync(spec.device);
            comm.barrier();
            times.push(t.elapsed().as_secs_f64());
        }
        benches::median_after_warmup(times)
    };
    let mut lines = Vec::new();
    // The API: load once, then each method.
    let mut load_t = Vec::new();
    let mut loaded = None;
    for _ in 0..rounds {
        comm.barrier();
        let t = Instant::now();
        let frame = ctx.sql("SELECT * FROM t").await.expect("query");
        loaded = Some(frame.to_dndarray(&spec).await.expect("load"));
        comm.barrier();
        load_t.push(t.elapsed().as_secs_f64());
    }
    let x = loaded.expect("loaded").array;
    lines.push(format!("load {:.3} s", benches::median_after_warmup(load_t)));
    let methods = [
        ("tsqr", Solver::Tsqr),
        (
            "randomized",
            Solver::Randomized {
                oversamples: 10,
                power_iter: 4,
                seed: 0,
            },
        ),
        ("hierarchical", Solver::Hierarchical { oversamples: 10 }),
    ];
    let mut top = Vec::new();
    for (name, method) in methods {
        for want_u in [false, true] {
            let mut s0 = 0.0;
            let t = time(&mut || {
                let r = svd(&x, k, method, want_u).expect("svd");
                s0 = r.s.double_value(&[0]);
            });
            top.push(s0);
            let what = if want_u { "U, Σ, V" } else { "Σ, V" };
            lines.push(format!("API svd {name} ({what}) {t:.3} s"));
        }
    }
    drop(x);
    // SQL end to end.
    for output in ["s", "u"] {
        let sql = format!("SELECT * FROM svd(t, k => {k}, method => 'tsqr', output => '{output}')");
        let mut rows_here = 0;
        let mut times = Vec::new();
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let mut stream = ctx
                .sql(&sql)
                .await
                .expect("svd query")
                .execute_local()
                .await
                .expect("svd");
            rows_here = 0;
            while let Some(batch) = stream.next().await {
                rows_here += batch.expect("svd batch").num_rows();
            }
            comm.barrier();
            times.push(t.elapsed().as_secs_f64());
        }
        lines.push(format!(
            "SQL svd(t, k => {k}, method => 'tsqr', output => '{output}') end to end {:.3} s ({rows_here} rows on rank {me})",
            benches::median_after_warmup(times)
        ));
    }
    let mine = format!(
        "heatsql P={p} rank {me}: peak RSS {:.2} GB\n",
        benches::peak_rss() as f64 / 1e9
    );
    let (all, _) = comm.gatherv(mine.as_bytes(), 0).expect("gather").unwrap_or_default();
    if me == 0 {
        println!(
            "SVD k = {k} of {rows} × {cols} at P = {p} (median of {} rounds after a warm-up; σ₁ by method {:?})",
            rounds - 1,
            top
        );
        for l in lines {
            println!("heatsql P={p} {l}");
        }
        print!("{}", String::from_utf8_lossy(&all));
    }
}
