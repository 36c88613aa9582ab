//! The local kernels behind TSQR's R factor, one process, in one run: the ratios that decide
//! how a rank factors its rows (no MPI).
//!
//! `heatsql-bench-qr-kernels [ROWS] [COLS] [ROUNDS] [THREADS]` (default 2,000,000 × 32 f64,
//! 5 rounds, libtorch's thread count). Median after a warm-up round of:
//!
//! * Householder R of `[R; block]` accumulated block by block, for several block heights;
//! * the Gram matrix XᵀX, at once and accumulated over blocks;
//! * CholeskyQR2's R (Gram, Cholesky, X·R₁⁻¹ by blocks with its Gram, Cholesky, R₂·R₁);
//! * the SVD's last pass U = X·W (W: d × 8) by libtorch and by `engine::kernels::skinny`.
//!
//! Each line states seconds and the rate in GFLOP/s of the nominal flops (2·n·d² for a
//! Householder R or a Gram matrix; n·d² for a triangular solve).

use std::time::Instant;

use tch::{Device, Kind, Tensor};

fn time(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut t = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = Instant::now();
        f();
        t.push(s.elapsed().as_secs_f64());
    }
    benches::median_after_warmup(t)
}

fn householder_r(x: &Tensor, block: i64) -> Tensor {
    let n = x.size()[0];
    let mut acc: Option<Tensor> = None;
    let mut at = 0;
    while at < n {
        let len = block.min(n - at);
        let b = x.narrow(0, at, len);
        let stacked = match &acc {
            Some(r) => Tensor::cat(&[r, &b], 0),
            None => b,
        };
        acc = Some(Tensor::linalg_qr(&stacked, "r").1);
        at += len;
    }
    acc.expect("rows")
}

fn gram_blocks(x: &Tensor, block: i64) -> Tensor {
    let (n, d) = (x.size()[0], x.size()[1]);
    let mut g = Tensor::zeros([d, d], (Kind::Double, Device::Cpu));
    let mut at = 0;
    while at < n {
        let len = block.min(n - at);
        let b = x.narrow(0, at, len);
        let _ = g.addmm_(&b.tr(), &b);
        at += len;
    }
    g
}

/// CholeskyQR2's R; Q₁'s blocks by triangular solves, or (`by_inverse`) by a GEMM with R₁⁻¹.
fn cholesky_qr2(x: &Tensor, block: i64, by_inverse: bool) -> Tensor {
    let (n, d) = (x.size()[0], x.size()[1]);
    let r1 = gram_blocks(x, block).linalg_cholesky(true);
    let r1_inv = inverse_upper(&r1);
    let mut g2 = Tensor::zeros([d, d], (Kind::Double, Device::Cpu));
    let mut at = 0;
    while at < n {
        let len = block.min(n - at);
        let b = x.narrow(0, at, len);
        let q = if by_inverse {
            b.matmul(&r1_inv)
        } else {
            r1.linalg_solve_triangular(&b, true, false, false)
        };
        let _ = g2.addmm_(&q.tr(), &q);
        at += len;
    }
    g2.linalg_cholesky(true).matmul(&r1)
}

/// R⁻¹ of an upper triangular R (d × d).
fn inverse_upper(r: &Tensor) -> Tensor {
    let eye = Tensor::eye(r.size()[0], (r.kind(), r.device()));
    r.linalg_solve_triangular(&eye, true, true, false)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(2_000_000) as i64;
    let d = args.get(1).copied().unwrap_or(32) as i64;
    let rounds = args.get(2).copied().unwrap_or(5).max(2);
    if let Some(&t) = args.get(3) {
        tch::set_num_threads(t as i32);
    }
    tch::manual_seed(0);
    let x = Tensor::randn([n, d], (Kind::Double, Device::Cpu));
    let nd2 = (n * d * d) as f64;
    println!(
        "qr kernels: {n} × {d} f64, {} threads, median of {} rounds after a warm-up",
        tch::get_num_threads(),
        rounds - 1
    );
    let line = |what: &str, s: f64, flops: f64| println!("{what:<40} {s:.3} s {:6.1} GFLOP/s", flops / s / 1e9);
    let reference = householder_r(&x, n);
    for block in [256, 512, 1024, 2048, 4096, 16384] {
        let s = time(rounds, || {
            let _ = householder_r(&x, block);
        });
        line(&format!("householder R, blocks of {block} rows"), s, 2.0 * nd2);
    }
    let s = time(rounds, || {
        let _ = x.tr().matmul(&x);
    });
    line("gram XᵀX at once", s, 2.0 * nd2);
    for block in [1024, 2048, 4096, 16384, 65536] {
        let s = time(rounds, || {
            let _ = gram_blocks(&x, block);
        });
        line(&format!("gram XᵀX, blocks of {block} rows"), s, 2.0 * nd2);
    }
    for block in [4096, 16384, 65536, n] {
        let s = time(rounds, || {
            let mut g = Tensor::zeros([d, d], (Kind::Double, Device::Cpu));
            let mut at = 0;
            while at < n {
                let len = block.min(n - at);
                let _ = g.f_add_(&engine::kernels::gram::gram(&x.narrow(0, at, len)).expect("gram"));
                at += len;
            }
        });
        line(&format!("gram XᵀX, heatsql kernel, blocks of {block}"), s, 2.0 * nd2);
    }
    // Column-major rows, as tables load.
    let xc = x.tr().contiguous().tr();
    let s = time(rounds, || {
        let _ = xc.tr().matmul(&xc);
    });
    line("gram XᵀX, column-major, libtorch at once", s, 2.0 * nd2);
    let s = time(rounds, || {
        let _ = engine::kernels::gram::gram(&xc).expect("gram");
    });
    line("gram XᵀX, column-major, heatsql kernel", s, 2.0 * nd2);
    let r1 = x.tr().matmul(&x).linalg_cholesky(true);
    let s = time(rounds, || {
        let _ = r1.linalg_solve_triangular(&x, true, false, false);
    });
    line("X·R⁻¹ (triangular solve) at once", s, nd2);
    let r1_inv = inverse_upper(&r1);
    let s = time(rounds, || {
        let _ = x.matmul(&r1_inv);
    });
    line("X·R⁻¹ (GEMM by the inverse) at once", s, 2.0 * nd2);
    for (block, by_inverse) in [
        (4096, false),
        (16384, false),
        (65536, false),
        (2048, true),
        (4096, true),
        (16384, true),
        (65536, true),
    ] {
        let mut r = None;
        let s = time(rounds, || r = Some(cholesky_qr2(&x, block, by_inverse)));
        let r = r.expect("ran");
        // Both R factors have positive diagonals for full-rank X: compare them directly.
        let signs = reference.diagonal(0, 0, 1).sign().unsqueeze(1);
        let err = (&r - &reference * signs).abs().max().double_value(&[]) / r.abs().max().double_value(&[]);
        let how = if by_inverse {
            "GEMM by R₁⁻¹"
        } else {
            "triangular solves"
        };
        line(&format!("choleskyQR2 R, {how}, blocks of {block} rows"), s, 6.0 * nd2);
        println!("  max |R − R_householder| / max |R| = {err:.1e}");
    }
    // What tsqr runs on the CPU: two passes of the heatsql kernels (the second solves by R₁
    // panel by panel and sums the Gram matrix of the solved rows), row-major and column-major.
    for (what, rows) in [("row-major", &x), ("column-major", &xc)] {
        let mut r = None;
        let s = time(rounds, || r = Some(cholesky_qr2_kernels(rows)));
        let r = r.expect("ran");
        let signs = reference.diagonal(0, 0, 1).sign().unsqueeze(1);
        let err = (&r - &reference * signs).abs().max().double_value(&[]) / r.abs().max().double_value(&[]);
        line(&format!("choleskyQR2 R, heatsql kernels, {what}"), s, 6.0 * nd2);
        println!("  max |R − R_householder| / max |R| = {err:.1e}");
    }
    let mut q = x.copy();
    let rv = Vec::<f64>::try_from(r1.contiguous().reshape([-1])).expect("R");
    let s = time(rounds, || {
        q.copy_(&x);
        engine::kernels::gram::solve_rows_in_place(&mut q, &rv).expect("solve");
    });
    line("X·R⁻¹ in place, heatsql kernel (incl. a copy)", s, nd2);
    // The SVD's last pass: U = X · W (W: d × 8), row-major and column-major X.
    let w = Tensor::randn([d, 8], (Kind::Double, Device::Cpu));
    let flops = 2.0 * (n * d * 8) as f64;
    for (what, rows) in [("row-major", &x), ("column-major", &xc)] {
        let s = time(rounds, || {
            let _ = rows.matmul(&w);
        });
        line(&format!("U = X·W (k = 8), libtorch, {what}"), s, flops);
        let s = time(rounds, || {
            let _ = engine::kernels::skinny::times_small(rows, &w)
                .expect("times")
                .expect("kernel");
        });
        line(&format!("U = X·W (k = 8), heatsql kernel, {what}"), s, flops);
    }
}

/// CholeskyQR2's R by the heatsql kernels (as `tsqr` runs it on one rank).
fn cholesky_qr2_kernels(x: &Tensor) -> Tensor {
    use engine::kernels::gram::{Prep, prepared_gram};
    let g = prepared_gram(x, Prep::default(), None).expect("pass").expect("kernel");
    let r1 = g.linalg_cholesky(true);
    let rv = Vec::<f64>::try_from(r1.contiguous().reshape([-1])).expect("R");
    let prep = Prep {
        centring: None,
        solve: Some(&rv),
    };
    let g2 = prepared_gram(x, prep, None).expect("pass").expect("kernel");
    g2.linalg_cholesky(true).matmul(&r1)
}
