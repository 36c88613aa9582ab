//! Exact DMD through heatsql, per rank, against PyDMD on the same files in the same run.
//!
//! `mpirun -n P heatsql-bench-dmd [ROUNDS] [SNAPSHOTS FEATURES POINTS STEPS]` (default 4
//! rounds; 20,000 snapshots × 256 features and 1,000,000 points × 100 steps), rank 16. Two
//! files under `target/bench-data/`, generated once: 8 damped/growing oscillations (16 modes,
//! |λ| within 1 ± 4·10⁻⁵, so 20,000 steps neither explode nor vanish) mixed into the state by random modes, plus 10⁻³ normal noise.
//!
//! * `dmd_rows_<m>x<d>.parquet`: one snapshot per row, an Int64 time column `k` (in order),
//!   row groups of 2,048 rows: `dmd(t, order_by => 'k', rank => 16)` (the sort by `k` runs).
//! * `dmd_columns_<n>x<s>.parquet`: one state point per row, columns `s0` … in time order, row
//!   groups of 131,072 rows: `dmd(t, layout => 'columns', rank => 16)`.
//!
//! For each: the fit alone (`engine::ml::dmd::fit` on the loaded DNDarray) and the SQL call end
//! to end (eigenvalues output), medians after a warm-up. `scripts/bench.sh dmd` runs P = 1 and 2
//! and `benches/python/dmd_baseline.py` (pyarrow + `pydmd.DMD(svd_rank=16, exact=True)`).

use std::path::PathBuf;
use std::time::Instant;

use engine::ml::dmd::{DmdOptions, Layout, Rank, fit};
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
    let rounds = args.first().copied().unwrap_or(4).max(2);
    let (m, d) = (
        args.get(1).copied().unwrap_or(20_000),
        args.get(2).copied().unwrap_or(256),
    );
    let (n, s) = (
        args.get(3).copied().unwrap_or(1_000_000),
        args.get(4).copied().unwrap_or(100),
    );
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    let rows_file = dir.join(format!("dmd_rows_{m}x{d}.parquet"));
    let cols_file = dir.join(format!("dmd_columns_{n}x{s}.parquet"));
    if me == 0 {
        let mut g = benches::Xorshift(0x1234_5678_9abc_def1);
        let state = benches::data::Planted::new(d, m, &mut g);
        benches::data::write_with_noise(&rows_file, m, d, "x", Some("k"), 2048, |k, i| state.value(i, k));
        let state = benches::data::Planted::new(n, s, &mut g);
        benches::data::write_with_noise(&cols_file, n, s, "s", None, benches::ROW_GROUP_ROWS, |i, k| {
            state.value(i, k)
        });
        println!("files {} {}", rows_file.display(), cols_file.display());
    }
    comm.barrier();
    let time = |f: &mut dyn FnMut()| {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            f();
            comm.barrier();
            times.push(t.elapsed().as_secs_f64());
        }
        benches::median_after_warmup(times)
    };
    let opts = DmdOptions {
        rank: Rank::Fixed(16),
        dt: 1.0,
    };
    let mut lines = Vec::new();
    for (table, path, layout, call) in [
        (
            "snap",
            &rows_file,
            Layout::Rows,
            "dmd(snap, order_by => 'k', rank => 16)",
        ),
        (
            "grid",
            &cols_file,
            Layout::Columns,
            "dmd(grid, layout => 'columns', rank => 16)",
        ),
    ] {
        let mut spec = LoadSpec::new("dmd");
        spec.expected_rows = benches::open_table(&ctx, table, path).await;
        if layout == Layout::Rows {
            spec.keep = vec!["k".into()];
        }
        let t = Instant::now();
        let loaded = benches::load(&ctx, &format!("SELECT * FROM {table}"), &spec).await;
        comm.barrier();
        let load = t.elapsed().as_secs_f64();
        let mut top = 0.0;
        let fit_t = time(&mut || {
            let model = fit(&loaded.array, layout, &opts).expect("dmd");
            top = model.eigenvalues.abs().double_value(&[0]);
        });
        drop(loaded);
        let mut e2e = Vec::new();
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let mut stream = ctx
                .sql(&format!("SELECT * FROM {call}"))
                .await
                .expect("dmd query")
                .execute_local()
                .await
                .expect("dmd");
            while let Some(b) = stream.next().await {
                b.expect("dmd batch");
            }
            comm.barrier();
            e2e.push(t.elapsed().as_secs_f64());
        }
        let label = if layout == Layout::Rows {
            format!("rows {m} × {d}")
        } else {
            format!("columns {n} × {s}")
        };
        lines.push(format!(
            "heatsql P={p} dmd {label} rank 16: load {load:.3} s, fit {fit_t:.3} s, SQL end to end {:.3} s; |λ₁| {top:.6}",
            benches::median_after_warmup(e2e)
        ));
    }
    let mine = format!(
        "heatsql P={p} rank {me}: peak RSS {:.2} GB\n",
        benches::peak_rss() as f64 / 1e9
    );
    let (all, _) = comm.gatherv(mine.as_bytes(), 0).expect("gather").unwrap_or_default();
    if me == 0 {
        println!("DMD at P = {p} (median of {} rounds after a warm-up)", rounds - 1);
        for l in lines {
            println!("{l}");
        }
        print!("{}", String::from_utf8_lossy(&all));
    }
}
