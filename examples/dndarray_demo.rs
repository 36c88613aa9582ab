//! The foundation demo: a distributed array across MPI ranks, checked against one process.
//!
//! `mpirun -n 2 target/debug/examples/dndarray_demo [ROWS]` (the README's demo command runs it).
//! Every rank generates its rows of a low-rank dataset X (ROWS × 8, rows split over ranks) from
//! a seeded counter-based stream — the same numbers at any rank count — then the ranks move rows
//! between layouts, reduce, and multiply, and rank 0 compares each result with libtorch on the
//! gathered array.

use engine::comm::ReduceOp;
use heatsql::{Comm, DNDarray, EngineError};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn main() {
    let comm = heatsql::start();
    if let Err(e) = run(comm) {
        eprintln!("rank {}: demo failed: {e}", comm.rank());
        std::process::exit(1);
    }
}

fn say(comm: &Comm, s: impl AsRef<str>) {
    if comm.rank() == 0 {
        println!("{}", s.as_ref());
    }
}

fn run(comm: &'static Comm) -> Result<(), EngineError> {
    let rows: i64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let (p, d, k) = (comm.size(), 8i64, 3i64);
    say(
        comm,
        format!("heatsql DNDarray demo: {p} rank(s), X is {rows} rows × {d} columns, rows split over ranks\n"),
    );

    // X = Z · M + 0.01 · noise, Z: rows × 3 (split 0), M: 3 × 8 replicated.
    let z = DNDarray::randn(&[rows, k], Some(0), 1, F64)?;
    let m = DNDarray::randn(&[k, d], None, 2, F64)?.into_local();
    let noise = DNDarray::randn(&[rows, d], Some(0), 3, F64)?;
    let scale = DNDarray::full(&[rows, d], 0.01, Some(0), F64)?;
    let x = z.matmul(&m)?.add(&noise.mul(&scale)?)?;
    say(
        comm,
        format!(
            "1. generated X; rows per rank {:?} (balanced: {})",
            x.counts(),
            x.is_balanced()
        ),
    );

    // Unbalance on purpose (everything on the last rank), then balance with minimal movement.
    let mut skew = vec![0i64; p];
    skew[p - 1] = rows;
    let skewed = x.redistribute(&skew)?;
    let balanced = skewed.balance()?;
    say(
        comm,
        format!(
            "2. redistributed to {:?}, balanced back to {:?}",
            skewed.counts(),
            balanced.counts()
        ),
    );

    // Column statistics: reductions over the split axis merge per-rank partial results.
    let mean = balanced.mean(Some(0))?.into_local();
    let var = balanced.var(Some(0), 1)?.into_local();
    let colmax = balanced.max(Some(0))?.into_local();
    let argmax = balanced.argmax(Some(0))?.into_local();
    // Resplit to columns (an all-to-all, no gather), then per-row norms become column work.
    let by_col = balanced.resplit(Some(1))?;
    say(
        comm,
        format!("3. resplit rows → columns: columns per rank {:?}", by_col.counts()),
    );
    let total = by_col.sum(None)?.into_local().double_value(&[]);
    // Project onto the row space of M (Mᵀ replicated, 8 × 3): local products, rows stay split.
    let proj = balanced.matmul(&m.tr())?;
    // Weighted column sums w · P with a replicated weight row: local products + one allreduce.
    let w = Tensor::linspace(0.0, 1.0, rows, F64).unsqueeze(0);
    let wsum = proj.left_matmul(&w)?.into_local();

    // Rank 0 checks everything against libtorch on the whole array.
    let whole = balanced.gather(0)?;
    let bytes = comm.allreduce(&[x.local().numel() as u64 * 8], ReduceOp::Max)?[0];
    let verdict = match whole {
        None => Ok(()),
        Some(xw) => report(&xw, &m, &w, [&mean, &var, &colmax, &argmax, &wsum], total, bytes),
    };
    comm.agree(verdict)?;
    Ok(())
}

/// Rank 0: compares the distributed results with libtorch on the gathered array.
fn report(xw: &Tensor, m: &Tensor, w: &Tensor, r: [&Tensor; 5], total: f64, bytes: u64) -> Result<(), String> {
    let [mean, var, colmax, argmax, wsum] = r;
    {
        // Relative difference: max |a − b| / max |b|.
        let diff = |a: &Tensor, b: &Tensor| {
            let a = a.to_kind(Kind::Double);
            let b = b.to_kind(Kind::Double);
            (&a - &b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-300)
        };
        let proj = xw.matmul(&m.tr());
        let checks = [
            ("column means", diff(mean, &xw.mean_dim(0, false, None::<Kind>))),
            ("column variances (ddof 1)", diff(var, &xw.var_correction(0, 1, false))),
            ("column maxima", diff(colmax, &xw.amax(0, false))),
            ("argmax rows", diff(argmax, &xw.argmax(0, false))),
            ("sum of all entries", diff(&Tensor::from(total), &xw.sum(None::<Kind>))),
            ("weighted column sums of the projection", diff(wsum, &w.matmul(&proj))),
        ];
        println!("4. results versus libtorch on the gathered array (max relative difference):");
        for (what, e) in checks {
            println!("   {what:<40} {e:.2e}");
        }
        println!("\ncolumn means:     {:?}", round(mean));
        println!("column variances: {:?}", round(var));
        println!(
            "\nthe largest rank held {:.1} MB of X; differences are at rounding level.",
            bytes as f64 / 1e6
        );
        if checks.iter().any(|(_, e)| *e > 1e-10) {
            return Err("a distributed result differs from the single-process reference".into());
        }
    }
    Ok(())
}

fn round(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t)
        .unwrap_or_default()
        .iter()
        .map(|v| (v * 1000.0).round() / 1000.0)
        .collect()
}
