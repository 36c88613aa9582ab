//! Gram matrices `XᵀX` of f64 blocks of rows (rows × d, any strides), meant for CholeskyQR2's
//! two passes ([`crate::linalg::tsqr`]).
//!
//! libtorch runs this shape (a d × d result from a long inner dimension) as a general GEMM at a
//! fraction of the machine's peak (measured by `heatsql-bench-qr-kernels`: 2,000,000 × 32 in
//! 0.064 s against libtorch's 0.18 s by blocks). Not yet used by `tsqr`: wired into
//! `gram_of_blocks` it made the whole SVD slower at one rank with two threads (Σ, V of the
//! same matrix loaded from Parquet: 0.40 s before, 0.51–0.76 s with it); why is still open.
//! The kernel computes only the tiles on and above the diagonal (about half the flops), in 4 × 8 register
//! tiles with AVX2 + FMA when the CPU has them (plain Rust otherwise), over row panels that
//! stay in cache, and mirrors the upper triangle at the end. Rows are split over libtorch's
//! intra-op thread count, each thread summing its own matrix.

use tch::{Device, Kind, TchError, Tensor};

use crate::simd::Variant;

/// Rows per cache panel: every tile of the upper triangle reads the panel once more, so it
/// should stay in L2 (512 rows of 32 f64 columns are 128 KiB).
const PANEL_BYTES: usize = 128 * 1024;

/// Fewest rows worth a thread of their own.
const ROWS_PER_THREAD: usize = 4096;

/// Rows of G in a register tile.
const TI: usize = 4;
/// Columns of G in a register tile (two 4-lane registers).
const TJ: usize = 8;

/// Local. `blockᵀ · block` (d × d, f64, symmetric) of a 2-D f64 tensor. CPU tensors run the
/// kernel in place whatever their strides (row-major rows directly; other layouts, such as the
/// column-major rows tables load into, packed panel by panel); tensors on another device use
/// libtorch's matmul.
pub fn gram(block: &Tensor) -> Result<Tensor, TchError> {
    let size = block.size();
    if size.len() != 2 || block.kind() != Kind::Double || block.device() != Device::Cpu {
        return block.f_tr()?.f_matmul(block);
    }
    let (rows, d) = (size[0] as usize, size[1] as usize);
    let strides = block.stride();
    let (rs, cs) = (strides[0] as usize, strides[1] as usize);
    let extent = if rows == 0 || d == 0 {
        0
    } else {
        (rows - 1) * rs + (d - 1) * cs + 1
    };
    // SAFETY: a CPU f64 tensor of rows × d with strides (rs, cs) reads its elements at
    // r·rs + j·cs < extent from its data pointer (storage offset included); the slice lives no
    // longer than `block` and is only read.
    let x: &[f64] = if extent == 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(block.data_ptr() as *const f64, extent) }
    };
    let g = gram_of_slice(x, (rs, cs), rows, d);
    Tensor::f_from_slice(&g)?.f_reshape([d as i64, d as i64])
}

/// Local. XᵀX (d × d, row-major, symmetric) of the `rows` × d matrix in `x` with `strides`
/// (row, column), split over threads.
fn gram_of_slice(x: &[f64], strides: (usize, usize), rows: usize, d: usize) -> Vec<f64> {
    let threads = (tch::get_num_threads().max(1) as usize)
        .min(rows / ROWS_PER_THREAD)
        .max(1);
    let v = Variant::detect();
    let mut g = if threads == 1 {
        let mut g = vec![0.0; d * d];
        upper_add(v, x, strides, 0..rows, d, &mut g);
        g
    } else {
        let per = rows.div_ceil(threads);
        let parts: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (t * per).min(rows)..((t + 1) * per).min(rows);
                    scope.spawn(move || {
                        let mut g = vec![0.0; d * d];
                        upper_add(v, x, strides, range, d, &mut g);
                        g
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut g = vec![0.0; d * d];
        for p in parts {
            g.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
        g
    };
    // Mirror: the tiles also wrote some entries below the diagonal; the upper triangle is the
    // one that was computed completely.
    for i in 0..d {
        for j in 0..i {
            g[i * d + j] = g[j * d + i];
        }
    }
    g
}

/// Adds the products of `rows` (of `x` with `strides` (row, column)) to every tile of `g`
/// (d × d) that meets the upper triangle, panel by panel. Rows with unit column stride are
/// read in place; any other layout is first packed into a row-major panel.
fn upper_add(v: Variant, x: &[f64], (rs, cs): (usize, usize), rows: std::ops::Range<usize>, d: usize, g: &mut [f64]) {
    if d == 0 || rows.is_empty() {
        return;
    }
    let panel = (PANEL_BYTES / (8 * d)).max(16);
    let in_place = cs == 1 || d == 1;
    let mut buf = if in_place { Vec::new() } else { vec![0.0; panel * d] };
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + panel).min(rows.end);
        let (data, ld, span) = if in_place {
            (x, rs, r0..r1)
        } else {
            let len = r1 - r0;
            for j in 0..d {
                for (r, to) in (r0..r1).zip((0..len).map(|i| i * d + j)) {
                    buf[to] = x[r * rs + j * cs];
                }
            }
            (&buf[..], d, 0..len)
        };
        for i0 in (0..d).step_by(TI) {
            // Column tiles that reach the diagonal or beyond.
            for j0 in ((i0 / TJ) * TJ..d).step_by(TJ) {
                tile_dispatch(v, data, ld, span.clone(), d, i0, j0, g);
            }
        }
        r0 = r1;
    }
}

/// One register tile: `g[i0.., j0..] += Σ_r x[r, i0..]ᵀ x[r, j0..]` over `rows`.
#[allow(clippy::too_many_arguments)]
fn tile_dispatch(
    v: Variant,
    x: &[f64],
    ld: usize,
    rows: std::ops::Range<usize>,
    d: usize,
    i0: usize,
    j0: usize,
    g: &mut [f64],
) {
    match v {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 if i0 + TI <= d && j0 + TJ <= d => {
            // SAFETY: `v` is what `Variant::detect` found on this CPU; the tile lies inside
            // the d columns (checked in this arm) and the rows inside `x` (asserted inside).
            unsafe { tile_avx2(x, ld, rows, d, i0, j0, g) }
        }
        _ => tile_portable(x, ld, rows, d, i0, j0, g),
    }
}

/// [`tile_dispatch`] in plain Rust, for any tile (also the partial ones at the edges).
fn tile_portable(x: &[f64], ld: usize, rows: std::ops::Range<usize>, d: usize, i0: usize, j0: usize, g: &mut [f64]) {
    let (ni, nj) = (TI.min(d - i0), TJ.min(d - j0));
    let mut acc = [[0.0f64; TJ]; TI];
    for r in rows {
        let row = &x[r * ld..r * ld + d];
        for (ii, a) in acc.iter_mut().enumerate().take(ni) {
            let xi = row[i0 + ii];
            for (jj, s) in a.iter_mut().enumerate().take(nj) {
                *s += xi * row[j0 + jj];
            }
        }
    }
    for (ii, a) in acc.iter().enumerate().take(ni) {
        for (jj, s) in a.iter().enumerate().take(nj) {
            g[(i0 + ii) * d + j0 + jj] += s;
        }
    }
}

/// [`tile_portable`] for a full 4 × 8 tile with AVX2 + FMA: eight accumulators, per row two
/// loads of x[r, j0..j0+8] and four broadcasts of x[r, i0..i0+4].
///
/// # Safety
/// The CPU must have AVX2 and FMA; `i0 + 4 ≤ d` and `j0 + 8 ≤ d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(x: &[f64], ld: usize, rows: std::ops::Range<usize>, d: usize, i0: usize, j0: usize, g: &mut [f64]) {
    use std::arch::x86_64::*;
    if rows.is_empty() {
        return;
    }
    // Every read below is of row r < rows.end at a column < d ≤ ld.
    assert!((rows.end - 1) * ld + d <= x.len() && i0 + TI <= d && j0 + TJ <= d && g.len() >= d * d);
    let xp = x.as_ptr();
    let mut acc = [_mm256_setzero_pd(); 2 * TI];
    for r in rows {
        // SAFETY: inside `x` (asserted above).
        unsafe {
            let p = xp.add(r * ld);
            let b0 = _mm256_loadu_pd(p.add(j0));
            let b1 = _mm256_loadu_pd(p.add(j0 + 4));
            for ii in 0..TI {
                let a = _mm256_broadcast_sd(&*p.add(i0 + ii));
                acc[2 * ii] = _mm256_fmadd_pd(a, b0, acc[2 * ii]);
                acc[2 * ii + 1] = _mm256_fmadd_pd(a, b1, acc[2 * ii + 1]);
            }
        }
    }
    for ii in 0..TI {
        let at = (i0 + ii) * d + j0;
        // SAFETY: g[at..at + 8] is inside g (asserted above).
        unsafe {
            let o = g.as_mut_ptr().add(at);
            _mm256_storeu_pd(o, _mm256_add_pd(_mm256_loadu_pd(o), acc[2 * ii]));
            _mm256_storeu_pd(o.add(4), _mm256_add_pd(_mm256_loadu_pd(o.add(4)), acc[2 * ii + 1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &Tensor) -> Tensor {
        x.tr().matmul(x)
    }

    fn close(a: &Tensor, b: &Tensor) -> bool {
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) <= 1e-12 * scale
    }

    #[test]
    fn agrees_with_libtorch_for_every_shape_and_variant() {
        tch::manual_seed(3);
        for (rows, d) in [
            (0, 5),
            (1, 1),
            (7, 3),
            (9, 4),
            (33, 8),
            (100, 13),
            (513, 32),
            (2000, 37),
            (9000, 9),
        ] {
            let x = Tensor::randn([rows, d], (Kind::Double, Device::Cpu));
            let want = reference(&x);
            let got = gram(&x).expect("gram");
            assert!(close(&got, &want), "{rows} × {d}");
            let xs = x.contiguous();
            let flat = Vec::<f64>::try_from(xs.reshape([-1])).expect("flat");
            for v in [Variant::detect(), Variant::Portable] {
                let mut g = vec![0.0; (d * d) as usize];
                upper_add(v, &flat, (d as usize, 1), 0..rows as usize, d as usize, &mut g);
                let (d, n) = (d as usize, g.len());
                for i in 0..d {
                    for j in 0..i {
                        g[i * d + j] = g[j * d + i];
                    }
                }
                let got = Tensor::from_slice(&g[..n]).reshape([d as i64, d as i64]);
                assert!(close(&got, &want), "{v:?} {rows} × {d}");
            }
        }
    }

    #[test]
    fn strided_and_narrowed_blocks() {
        tch::manual_seed(4);
        let x = Tensor::randn([300, 40], (Kind::Double, Device::Cpu));
        // A column slice (row stride 40 > 16 columns), a row slice, and a transposed view.
        let cols = x.narrow(1, 3, 16);
        assert!(close(&gram(&cols).expect("gram"), &reference(&cols)));
        let rows = x.narrow(0, 17, 100);
        assert!(close(&gram(&rows).expect("gram"), &reference(&rows)));
        let t = x.narrow(0, 0, 40).tr();
        assert!(close(&gram(&t).expect("gram"), &reference(&t)));
        // Column-major, as tables load (columns a power of two apart), and a column slice of it.
        let cm = Tensor::randn([4096, 12], (Kind::Double, Device::Cpu))
            .tr()
            .contiguous()
            .tr();
        assert!(close(&gram(&cm).expect("gram"), &reference(&cm)));
        let part = cm.narrow(0, 100, 3000).narrow(1, 1, 10);
        assert!(close(&gram(&part).expect("gram"), &reference(&part)));
        let f = x.to_kind(Kind::Float);
        assert!(gram(&f).expect("f32 by libtorch").size() == [40, 40]);
    }
}
