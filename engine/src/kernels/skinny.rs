//! Products `X · W` of a tall rank-local block X (rows × d, rows split across ranks) and a
//! small replicated W (d × k): the last pass of a truncated SVD (`U = X V Σ⁻¹`).
//!
//! libtorch's GEMM runs this shape (millions of rows, d and k in the tens) well below the
//! machine's speed, mostly when X is stored column by column as tables load
//! (`heatsql-bench-qr-kernels`). The kernel here reads X once in panels packed row-major in
//! f64 (as [`super::gram`] does), multiplies each group of four rows by W in 4 × 8
//! register tiles with AVX2 + FMA (plain Rust for the edges and other CPUs) and writes the
//! result row-major; rows are split over libtorch's intra-op thread count.

use tch::{Device, Kind, TchError, Tensor};

use super::gram::{Element, TI, TJ, for_each_panel, threads_for};
use super::host::{Elements, HostMatrix, f64_mut, f64_values};
use super::policy;
use super::simd::Variant;

/// Local. `x · w` (rows × k, f64, contiguous) for `x` (rows × d, 2-D, f32/f64 on the CPU, any
/// strides) and `w` (d × k, any float dtype and layout); `Ok(None)` when the kernel does not
/// take `x` (not such a tensor, or the policy is [`super::Policy::TensorOnly`]): the caller
/// then uses libtorch. Errors when `w`'s shape does not match `x`.
pub fn times_small(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>, TchError> {
    let Some(v) = policy().variant() else {
        return Ok(None);
    };
    let Some(m) = HostMatrix::of(x) else {
        return Ok(None);
    };
    let (rows, d) = (m.rows, m.cols);
    if w.dim() != 2 || w.size()[0] != d as i64 {
        return Err(TchError::Shape(format!(
            "times_small: W of shape {:?} does not match {rows} × {d}",
            w.size()
        )));
    }
    let k = w.size()[1] as usize;
    let wv = f64_values(w)?;
    if rows == 0 || d == 0 || k == 0 {
        return Ok(Some(Tensor::f_zeros(
            [rows as i64, k as i64],
            (Kind::Double, Device::Cpu),
        )?));
    }
    // Every element is written below.
    let mut out = Tensor::f_empty([rows as i64, k as i64], (Kind::Double, Device::Cpu))?;
    let Some(o) = f64_mut(&mut out) else {
        return Ok(None);
    };
    match m.el {
        Elements::F64(data) => split_rows(v, data, m.strides(), rows, d, &wv, k, o),
        Elements::F32(data) => split_rows(v, data, m.strides(), rows, d, &wv, k, o),
    }
    Ok(Some(out))
}

/// Runs [`pass`] with `v` on each thread's share of the rows (and of `out`).
#[allow(clippy::too_many_arguments)]
fn split_rows<T: Element>(
    v: Variant,
    x: &[T],
    strides: (usize, usize),
    rows: usize,
    d: usize,
    w: &[f64],
    k: usize,
    out: &mut [f64],
) {
    let threads = threads_for(rows);
    let per = rows.div_ceil(threads);
    if threads == 1 {
        pass(v, x, strides, 0..rows, d, w, k, out);
        return;
    }
    std::thread::scope(|scope| {
        for (t, o) in out.chunks_mut(per * k).enumerate() {
            let range = t * per..(t * per + o.len() / k);
            scope.spawn(move || pass(v, x, strides, range, d, w, k, o));
        }
    });
}

/// `out ← x[rows] · w` (rows.len() × k row-major), panel by panel.
#[allow(clippy::too_many_arguments)]
fn pass<T: Element>(
    v: Variant,
    x: &[T],
    strides: (usize, usize),
    rows: std::ops::Range<usize>,
    d: usize,
    w: &[f64],
    k: usize,
    out: &mut [f64],
) {
    for_each_panel(v, x, strides, rows, d, None, |at, len, p| {
        panel_times(v, p, len, d, w, k, &mut out[at * k..(at + len) * k]);
    });
}

/// `o ← p · w` for the `m` rows of the packed panel `p` (m × d): 4 × 8 tiles with AVX2, the
/// rest in plain Rust.
fn panel_times(v: Variant, p: &[f64], m: usize, d: usize, w: &[f64], k: usize, o: &mut [f64]) {
    let full = k / TJ * TJ;
    // The rows multiplied with AVX2 (whole groups of four); the rest go the portable way.
    let done = match v {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 if full > 0 => {
            let mut row = 0;
            while row + TI <= m {
                for c0 in (0..full).step_by(TJ) {
                    // SAFETY: `v` is what `Variant::detect` found on this CPU; rows row..row + 4
                    // < m and columns c0..c0 + 8 ≤ k lie inside `p`, `w` and `o` (asserted
                    // inside).
                    unsafe { tile_avx2(p, d, row, c0, w, k, o) };
                }
                row_times(
                    &p[row * d..(row + TI) * d],
                    d,
                    w,
                    k,
                    full,
                    &mut o[row * k..(row + TI) * k],
                );
                row += TI;
            }
            row
        }
        _ => 0,
    };
    row_times(&p[done * d..m * d], d, w, k, 0, &mut o[done * k..m * k]);
}

/// Columns `from..k` of `o ← p · w`, row by row.
fn row_times(p: &[f64], d: usize, w: &[f64], k: usize, from: usize, o: &mut [f64]) {
    if from == k {
        return;
    }
    for (row, out) in p.chunks_exact(d).zip(o.chunks_exact_mut(k)) {
        let out = &mut out[from..];
        out.fill(0.0);
        for (j, &a) in row.iter().enumerate() {
            for (t, &b) in out.iter_mut().zip(&w[j * k + from..(j + 1) * k]) {
                *t += a * b;
            }
        }
    }
}

/// `o[row.., c0..c0+8] = p[row.., ..] · w[.., c0..c0+8]` for four rows with AVX2 + FMA: eight
/// accumulators, per column of p two loads of w and four broadcasts.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(p: &[f64], d: usize, row: usize, c0: usize, w: &[f64], k: usize, o: &mut [f64]) {
    use std::arch::x86_64::*;
    assert!((row + TI) * d <= p.len() && c0 + TJ <= k && w.len() >= d * k && (row + TI) * k <= o.len());
    let (pp, wp) = (p.as_ptr(), w.as_ptr());
    // SAFETY: every access is inside `p`, `w` or `o` (asserted above).
    unsafe {
        let mut acc = [_mm256_setzero_pd(); 2 * TI];
        for j in 0..d {
            let b0 = _mm256_loadu_pd(wp.add(j * k + c0));
            let b1 = _mm256_loadu_pd(wp.add(j * k + c0 + 4));
            for ii in 0..TI {
                let a = _mm256_broadcast_sd(&*pp.add((row + ii) * d + j));
                acc[2 * ii] = _mm256_fmadd_pd(a, b0, acc[2 * ii]);
                acc[2 * ii + 1] = _mm256_fmadd_pd(a, b1, acc[2 * ii + 1]);
            }
        }
        for ii in 0..TI {
            let at = o.as_mut_ptr().add((row + ii) * k + c0);
            _mm256_storeu_pd(at, acc[2 * ii]);
            _mm256_storeu_pd(at.add(4), acc[2 * ii + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Policy, with_policy};

    /// max |a − b| ≤ 1e-12 · max(1, max |b|).
    fn close(a: &Tensor, b: &Tensor) -> bool {
        if b.numel() == 0 {
            return a.size() == b.size();
        }
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) <= 1e-12 * scale
    }

    #[test]
    fn agrees_with_libtorch_for_every_shape_layout_and_thread_count() {
        tch::manual_seed(7);
        let before = tch::get_num_threads();
        for threads in [1, 3] {
            tch::set_num_threads(threads);
            for (rows, d, k) in [
                (0, 4, 3),
                (1, 1, 1),
                (5, 3, 8),
                (9, 32, 8),
                (513, 32, 8),
                (1000, 13, 20),
                (2050, 37, 5),
                (13_000, 16, 16),
            ] {
                let x = Tensor::randn([rows, d], (Kind::Double, Device::Cpu));
                let w = Tensor::randn([d, k], (Kind::Double, Device::Cpu));
                let want = x.matmul(&w);
                // Row-major, column-major (as tables load), a column slice, and f32.
                let layouts = [
                    x.shallow_clone(),
                    x.tr().contiguous().tr(),
                    Tensor::cat(&[&x, &x], 1).narrow(1, d, d),
                ];
                for xl in layouts {
                    let got = times_small(&xl, &w).expect("ok").expect("kernel");
                    assert!(close(&got, &want), "{threads} threads, {rows} × {d} · {d} × {k}");
                }
                let xf = x.to_kind(Kind::Float);
                let got = times_small(&xf, &w).expect("ok").expect("kernel");
                assert!(close(&got, &xf.to_kind(Kind::Double).matmul(&w)), "f32 {rows} × {d}");
            }
        }
        tch::set_num_threads(before);
    }

    #[test]
    fn both_variants_and_bad_shapes() {
        tch::manual_seed(8);
        let (m, d, k) = (37usize, 19usize, 11usize);
        let p = Tensor::randn([m as i64, d as i64], (Kind::Double, Device::Cpu));
        let w = Tensor::randn([d as i64, k as i64], (Kind::Double, Device::Cpu));
        let flat = |t: &Tensor| Vec::<f64>::try_from(t.contiguous().reshape([-1])).expect("values");
        let (pv, wv) = (flat(&p), flat(&w));
        let want = p.matmul(&w);
        for v in [Variant::detect(), Variant::Portable] {
            let mut o = vec![f64::NAN; m * k];
            panel_times(v, &pv, m, d, &wv, k, &mut o);
            let got = Tensor::from_slice(&o).reshape([m as i64, k as i64]);
            assert!(close(&got, &want), "{v:?}");
        }
        let x = Tensor::ones([10, 3], (Kind::Double, Device::Cpu));
        assert!(times_small(&x, &Tensor::ones([4, 2], (Kind::Double, Device::Cpu))).is_err());
        let i = Tensor::ones([10, 3], (Kind::Int64, Device::Cpu));
        assert!(
            times_small(&i, &Tensor::ones([3, 2], (Kind::Double, Device::Cpu)))
                .expect("ok")
                .is_none()
        );
        // TensorOnly: declined (the caller runs libtorch); Auto: the kernel.
        let w = Tensor::ones([3, 2], (Kind::Double, Device::Cpu));
        assert!(
            with_policy(Policy::TensorOnly, || times_small(&x, &w))
                .expect("ok")
                .is_none()
        );
        assert!(with_policy(Policy::Auto, || times_small(&x, &w)).expect("ok").is_some());
    }
}
