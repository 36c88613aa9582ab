//! Distributed A·B (both operands split by rows, the ring of `engine::linalg::matmul`) against
//! libtorch's local GEMM of the same matrices in the same run.
//!
//! `mpirun -n P heatsql-bench-matmul [N] [ROUNDS]` (default N = 4096, 4 rounds): A and B are
//! N × N f64 (normal entries from a seed, rows balanced over the ranks). Each round times the
//! ring product, then (on every rank, one process's full GEMM — the baseline a single node
//! would run) `A·B` by `Tensor::matmul` on the whole matrices. Rank 0 prints medians after a
//! warm-up and GFLOP/s (2N³ flops). `scripts/bench.sh matmul` runs P = 1 (the node's cores as
//! threads) and P = 2 (one thread per rank) and reports the ratios.

use std::time::Instant;

use engine::DNDarray;
use tch::Kind;

fn main() {
    engine::memory::retain_freed_memory();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(4096) as i64;
    let rounds = args.get(1).copied().unwrap_or(4).max(2);
    let comm = engine::runtime::start();
    let (p, me) = (comm.size(), comm.rank());
    let device = benches::device(comm);
    let opts = (Kind::Double, device);
    let a = DNDarray::randn(&[n, n], Some(0), 1, opts).expect("A");
    let b = DNDarray::randn(&[n, n], Some(0), 2, opts).expect("B");
    let (mut ring, mut local) = (Vec::new(), Vec::new());
    // The baseline's operands: the same matrices, whole, in this process.
    let (fa, fb) = if p == 1 {
        (a.local().shallow_clone(), b.local().shallow_clone())
    } else {
        (a.allgather().expect("gather A"), b.allgather().expect("gather B"))
    };
    let mut check = 0.0;
    for _ in 0..rounds {
        comm.barrier();
        let t = Instant::now();
        let c = engine::linalg::matmul(&a, &b).expect("matmul");
        benches::sync(device);
        comm.barrier();
        ring.push(t.elapsed().as_secs_f64());
        check = c.local().sum(Kind::Double).double_value(&[]);
        if p == 1 {
            let t = Instant::now();
            let full = fa.matmul(&fb);
            benches::sync(device);
            local.push(t.elapsed().as_secs_f64());
            check -= full.sum(Kind::Double).double_value(&[]);
        }
    }
    let gflops = |t: f64| 2.0 * (n as f64).powi(3) / t / 1e9;
    let ring = benches::median_after_warmup(ring);
    if me == 0 {
        let threads = tch::get_num_threads();
        print!(
            "heatsql P={p} × {threads} thread(s) on {}: ring matmul {n} × {n} · {n} × {n}: {ring:.3} s ({:.1} GFLOP/s)",
            benches::device_name(device),
            gflops(ring)
        );
        if p == 1 {
            let local = benches::median_after_warmup(local);
            println!(
                "; local libtorch GEMM {local:.3} s ({:.1} GFLOP/s); ring / local = {:.3} (|Σ difference| {:.1e})",
                gflops(local),
                local / ring,
                check.abs()
            );
        } else {
            println!();
        }
    }
}
