//! Gram matrices `YᵀY` of prepared rows: the CPU kernels of CholeskyQR2's two passes
//! ([`mod@crate::linalg::tsqr`]).
//!
//! A pass reads a rank's rows (rows × d, split along rows; f32 or f64, any strides) once, in
//! panels that stay in cache: each panel is packed row-major in f64, optionally centred and
//! scaled per column (`(x − mean) / scale`, PCA's view of the data) and optionally solved by an
//! upper triangular R (`Y = X R⁻¹`, CholeskyQR's `Q₁`), optionally copied out, and its Gram
//! product `PᵀP` is added to the pass's d × d sum. libtorch runs these shapes far from the
//! machine's peak (measured by `heatsql-bench-qr-kernels`, 2,000,000 × 32 on two threads: its
//! Gram by blocks 0.14–0.29 s and its triangular solve 0.54–0.64 s, against 0.064 s for this
//! Gram), and a pass here never materialises the prepared rows unless they are asked for.
//!
//! The Gram product computes only the tiles on and above the diagonal (about half the flops),
//! in 4 × 8 register tiles, and mirrors the upper triangle at the end. The triangular solve is
//! a forward substitution per row (backward stable like LAPACK's `trsm`), multiplying by the
//! reciprocals of R's diagonal: four rows at a time, columns in tiles of 8, each tile first
//! updated by the columns already solved (a 4 × 8 register tile), then transposed in registers
//! so that the substitution inside the tile runs the four rows' dependency chains side by side
//! in the vector lanes (one chain per row was latency-bound: 2.4 GFLOP/s at one thread, against
//! 19 now for 2,000,000 × 32 by `heatsql-bench-qr-kernels`). Both use AVX2 + FMA when the CPU
//! has them (plain Rust otherwise). Rows are split over libtorch's intra-op thread count, each
//! thread summing its own matrix; nothing else runs in the pass, so no thread pool competes
//! with it.

use tch::{TchError, Tensor};

use super::host::{Elements, HostMatrix, f64_mut};
use super::policy;
use super::simd::Variant;

/// Bytes of a packed panel: every tile of the upper triangle reads the panel once more, so it
/// should stay in L2 (512 rows of 32 f64 columns are 128 KiB).
const PANEL_BYTES: usize = 128 * 1024;

/// Fewest rows worth a thread of their own.
const ROWS_PER_THREAD: usize = 4096;

/// Rows of G in a register tile (and rows of a triangular-solve tile).
pub(super) const TI: usize = 4;
/// Columns of G in a register tile (two 4-lane registers; also columns of a solve tile).
pub(super) const TJ: usize = 8;

/// How a pass prepares each row before its Gram product (all on the CPU, f64, length d or
/// d × d row-major).
#[derive(Clone, Copy, Default)]
pub struct Prep<'a> {
    /// Column means and scales: the row becomes `(x − mean) / scale`.
    pub centring: Option<(&'a [f64], &'a [f64])>,
    /// An upper triangular R with a nonzero diagonal: the (centred) row y becomes `y R⁻¹`.
    pub solve: Option<&'a [f64]>,
}

/// Local. `blockᵀ · block` (d × d, symmetric) of a 2-D tensor: the kernel (f64) for CPU
/// f32/f64 tensors of any strides (f32 is read as f64) under [`super::Policy::Auto`],
/// libtorch's matmul (in `block`'s dtype) otherwise.
pub fn gram(block: &Tensor) -> Result<Tensor, TchError> {
    match prepared_gram(block, Prep::default(), None)? {
        Some(g) => Ok(g),
        None => block.f_tr()?.f_matmul(block),
    }
}

/// Local. One pass over `x` (rows × d, 2-D, f32/f64 on the CPU, any strides): Σ over rows of
/// `yᵀy` (d × d, f64, symmetric) with `y` the row prepared by `prep`, and the prepared rows
/// written to `out` when given (a contiguous rows × d f64 CPU tensor, not otherwise used
/// meanwhile). `Ok(None)` when the kernel does not take `x` (not such a tensor, or the policy
/// is [`super::Policy::TensorOnly`]): the caller then uses libtorch. Errors when `prep` or
/// `out` do not match `x`'s shape.
pub fn prepared_gram(x: &Tensor, prep: Prep<'_>, out: Option<&mut Tensor>) -> Result<Option<Tensor>, TchError> {
    let Some(v) = policy().variant() else {
        return Ok(None);
    };
    let Some(m) = HostMatrix::of(x) else {
        return Ok(None);
    };
    let (rows, d) = (m.rows, m.cols);
    let bad = |what: &str| {
        Err(TchError::Shape(format!(
            "prepared_gram: {what} does not match {rows} × {d}"
        )))
    };
    if let Some((m, s)) = prep.centring
        && (m.len() != d || s.len() != d)
    {
        return bad("centring");
    }
    if prep.solve.is_some_and(|r| r.len() != d * d) {
        return bad("R");
    }
    let out_slice = match out {
        Some(o) if o.size() != [rows as i64, d as i64] => return bad("out"),
        Some(o) => match f64_mut(o) {
            Some(s) => Some(s),
            None => return bad("out"),
        },
        None => None,
    };
    let g = match m.el {
        Elements::F64(data) => gram_of_slice(v, data, m.strides(), rows, d, prep, out_slice),
        Elements::F32(data) => gram_of_slice(v, data, m.strides(), rows, d, prep, out_slice),
    };
    Ok(Some(Tensor::f_from_slice(&g)?.f_reshape([d as i64, d as i64])?))
}

/// Local. `q ← q R⁻¹` in place for a contiguous rows × d f64 CPU tensor `q` (not otherwise
/// used meanwhile) and an upper triangular R (d × d row-major, nonzero diagonal), by the solve
/// of [`prepared_gram`] split over threads. `Ok(None)` (nothing done) when the kernel does not
/// take `q` (not such a tensor, or the policy is [`super::Policy::TensorOnly`]).
pub fn solve_rows_in_place(q: &mut Tensor, r: &[f64]) -> Result<Option<()>, TchError> {
    let Some(v) = policy().variant() else {
        return Ok(None);
    };
    let size = q.size();
    if size.len() != 2 {
        return Ok(None);
    }
    let (rows, d) = (size[0] as usize, size[1] as usize);
    let Some(all) = f64_mut(q) else {
        return Ok(None);
    };
    if r.len() != d * d {
        return Err(TchError::Shape(format!(
            "solve_rows_in_place: R does not match {rows} × {d}"
        )));
    }
    if rows * d == 0 {
        return Ok(Some(()));
    }
    let threads = threads_for(rows);
    let panel = panel_rows(d);
    let inv = reciprocal_diagonal(r, d);
    let solve = |part: &mut [f64]| {
        for p in part.chunks_mut(panel * d) {
            solve_panel(v, p, p.len() / d, d, r, &inv);
        }
    };
    if threads == 1 {
        solve(all);
    } else {
        std::thread::scope(|scope| {
            for part in all.chunks_mut(rows.div_ceil(threads) * d) {
                scope.spawn(move || solve(part));
            }
        });
    }
    Ok(Some(()))
}

/// Local. The pass of [`prepared_gram`] with `v` over the `rows` × d matrix in `x` with
/// `strides` (row, column), split over threads (each writes its own rows of `out`).
fn gram_of_slice<T: Element>(
    v: Variant,
    x: &[T],
    strides: (usize, usize),
    rows: usize,
    d: usize,
    prep: Prep<'_>,
    out: Option<&mut [f64]>,
) -> Vec<f64> {
    let threads = threads_for(rows);
    let mut g = vec![0.0; d * d];
    if d == 0 || rows == 0 {
        return g;
    }
    let per = rows.div_ceil(threads);
    // Each thread's share of `out` (or none).
    let mut outs: Vec<Option<&mut [f64]>> = match out {
        Some(o) => o.chunks_mut(per * d).map(Some).collect(),
        None => (0..threads).map(|_| None).collect(),
    };
    if threads == 1 {
        pass(v, x, strides, 0..rows, d, prep, outs.pop().flatten(), &mut g);
    } else {
        let parts: Vec<Vec<f64>> = std::thread::scope(|scope| {
            let jobs: Vec<_> = outs
                .into_iter()
                .enumerate()
                .map(|(t, o)| {
                    let range = (t * per).min(rows)..((t + 1) * per).min(rows);
                    scope.spawn(move || {
                        let mut g = vec![0.0; d * d];
                        pass(v, x, strides, range, d, prep, o, &mut g);
                        g
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for p in parts {
            g.iter_mut().zip(p).for_each(|(a, b)| *a += b);
        }
    }
    mirror_upper(&mut g, d);
    g
}

/// Threads for a pass over `rows` rows: libtorch's intra-op count, at most one per
/// [`ROWS_PER_THREAD`] rows, at least one.
pub(super) fn threads_for(rows: usize) -> usize {
    (tch::get_num_threads().max(1) as usize)
        .min(rows / ROWS_PER_THREAD)
        .max(1)
}

/// Rows of a packed panel of d columns: [`PANEL_BYTES`] of f64, a multiple of [`TI`].
fn panel_rows(d: usize) -> usize {
    ((PANEL_BYTES / (8 * d)).max(16) / TI) * TI
}

/// Copies the upper triangle of the row-major d × d `g` onto its lower one (the tiles also
/// wrote some entries below the diagonal; the upper triangle is the one computed completely).
fn mirror_upper(g: &mut [f64], d: usize) {
    for i in 0..d {
        for j in 0..i {
            g[i * d + j] = g[j * d + i];
        }
    }
}

/// Adds the Gram products of `rows` of `x` (strides (row, column)), prepared by `prep`, to
/// `g` (d × d; the tiles meeting the upper triangle), panel by panel; the prepared rows go
/// to `out` (rows.len() × d) when given.
#[allow(clippy::too_many_arguments)]
fn pass<T: Element>(
    v: Variant,
    x: &[T],
    strides: (usize, usize),
    rows: std::ops::Range<usize>,
    d: usize,
    prep: Prep<'_>,
    mut out: Option<&mut [f64]>,
    g: &mut [f64],
) {
    let inv = prep.solve.map(|r| reciprocal_diagonal(r, d));
    for_each_panel(v, x, strides, rows, d, prep.centring, |at, len, p| {
        if let (Some(r), Some(inv)) = (prep.solve, &inv) {
            solve_panel(v, p, len, d, r, inv);
        }
        if let Some(o) = out.as_deref_mut() {
            o[at * d..(at + len) * d].copy_from_slice(p);
        }
        for i0 in (0..d).step_by(TI) {
            // Column tiles that reach the diagonal or beyond.
            for j0 in ((i0 / TJ) * TJ..d).step_by(TJ) {
                tile_dispatch(v, p, d, 0..len, d, i0, j0, g);
            }
        }
    });
}

/// Calls `f(at, len, panel)` for consecutive panels of [`panel_rows`] rows of `rows` of `x`
/// (strides (row, column)), each packed row-major in f64 by [`pack_prepared`] with `centring`
/// (`panel`: len × d; `at`: its first row counted from `rows.start`).
#[allow(clippy::too_many_arguments)]
pub(super) fn for_each_panel<T: Element>(
    v: Variant,
    x: &[T],
    strides: (usize, usize),
    rows: std::ops::Range<usize>,
    d: usize,
    centring: Option<(&[f64], &[f64])>,
    mut f: impl FnMut(usize, usize, &mut [f64]),
) {
    let panel = panel_rows(d);
    let mut buf = vec![0.0; panel.min(rows.len()) * d];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + panel).min(rows.end);
        let len = r1 - r0;
        let p = &mut buf[..len * d];
        pack_prepared(v, x, strides, r0..r1, d, p, centring);
        f(r0 - rows.start, len, p);
        r0 = r1;
    }
}

/// An element type the kernels read (f32 or f64), converted to f64 as it is packed.
pub(super) trait Element: Copy + Into<f64> + Sync {
    /// `x` itself when the elements are f64 (packing then has a fast path).
    fn as_f64(x: &[Self]) -> Option<&[f64]>;
}
impl Element for f64 {
    fn as_f64(x: &[Self]) -> Option<&[f64]> {
        Some(x)
    }
}
impl Element for f32 {
    fn as_f64(_: &[Self]) -> Option<&[f64]> {
        None
    }
}

/// Packs `rows` of `x` (strides (row, column)) row-major into `p` (rows.len() × d), centred
/// and scaled per column (`(v − mean) / scale`) when `centring` is given. f64 columns stored
/// contiguously (as tables load) are transposed four rows × four columns at a time in AVX2
/// registers; anything else goes through [`pack`].
#[allow(clippy::too_many_arguments)]
fn pack_prepared<T: Element>(
    v: Variant,
    x: &[T],
    (rs, cs): (usize, usize),
    rows: std::ops::Range<usize>,
    d: usize,
    p: &mut [f64],
    centring: Option<(&[f64], &[f64])>,
) {
    match (v, T::as_f64(x)) {
        #[cfg(target_arch = "x86_64")]
        (Variant::Avx2, Some(xf)) if rs == 1 && cs > 1 => {
            // SAFETY: `v` is what `Variant::detect` found on this CPU; every element read is of
            // a row in `rows` and a column < d of `x` (asserted inside).
            unsafe { pack_columns_avx2(xf, cs, rows, d, p, centring) }
        }
        _ => match centring {
            Some((mean, scale)) => pack(x, (rs, cs), rows, d, p, |v, j| (v - mean[j]) / scale[j]),
            None => pack(x, (rs, cs), rows, d, p, |v, _| v),
        },
    }
}

/// [`pack_prepared`] for f64 columns stored contiguously (row stride 1, column stride `cs`):
/// per four columns and four rows, four loads along the columns, the centring, a transpose in
/// registers and four stores along the rows; the columns and rows beyond the last group of
/// four go one by one.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_columns_avx2(
    x: &[f64],
    cs: usize,
    rows: std::ops::Range<usize>,
    d: usize,
    p: &mut [f64],
    centring: Option<(&[f64], &[f64])>,
) {
    use std::arch::x86_64::*;
    let m = rows.len();
    if m == 0 || d == 0 {
        return;
    }
    assert!((rows.end - 1) + (d - 1) * cs < x.len() && p.len() >= m * d);
    if let Some((mean, scale)) = centring {
        assert!(mean.len() >= d && scale.len() >= d);
    }
    let prep = |v: f64, j: usize| match centring {
        Some((mean, scale)) => (v - mean[j]) / scale[j],
        None => v,
    };
    let (xp, pp) = (x.as_ptr(), p.as_mut_ptr());
    let (m4, d4) = (m / 4 * 4, d / 4 * 4);
    // SAFETY: every read is of row r < rows.end and column j < d (at r + j·cs < x.len()), every
    // write of row i < m and column j < d of `p` (asserted above).
    unsafe {
        for j in (0..d4).step_by(4) {
            let (sub, div) = match centring {
                Some((mean, scale)) => (
                    [0, 1, 2, 3].map(|t| _mm256_set1_pd(mean[j + t])),
                    [0, 1, 2, 3].map(|t| _mm256_set1_pd(scale[j + t])),
                ),
                None => ([_mm256_setzero_pd(); 4], [_mm256_set1_pd(1.0); 4]),
            };
            for i in (0..m4).step_by(4) {
                let r = rows.start + i;
                let mut c = [_mm256_setzero_pd(); 4];
                for (t, ct) in c.iter_mut().enumerate() {
                    let v = _mm256_loadu_pd(xp.add(r + (j + t) * cs));
                    *ct = if centring.is_some() {
                        _mm256_div_pd(_mm256_sub_pd(v, sub[t]), div[t])
                    } else {
                        v
                    };
                }
                let (r0, r1, r2, r3) = transpose4(c[0], c[1], c[2], c[3]);
                for (ii, row) in [r0, r1, r2, r3].into_iter().enumerate() {
                    _mm256_storeu_pd(pp.add((i + ii) * d + j), row);
                }
            }
        }
        for i in 0..m {
            let r = rows.start + i;
            let from = if i < m4 { d4 } else { 0 };
            for j in from..d {
                *pp.add(i * d + j) = prep(*xp.add(r + j * cs), j);
            }
        }
    }
}

/// Packs `rows` of `x` (strides (row, column)) row-major into `p` (rows.len() × d), each value
/// mapped by `f(value, column)`; reads along whichever axis is contiguous.
fn pack<T: Copy + Into<f64>>(
    x: &[T],
    (rs, cs): (usize, usize),
    rows: std::ops::Range<usize>,
    d: usize,
    p: &mut [f64],
    f: impl Fn(f64, usize) -> f64,
) {
    if cs <= rs {
        for (row, r) in p.chunks_exact_mut(d).zip(rows) {
            let base = r * rs;
            for (j, to) in row.iter_mut().enumerate() {
                *to = f(x[base + j * cs].into(), j);
            }
        }
    } else {
        for j in 0..d {
            for (i, r) in rows.clone().enumerate() {
                p[i * d + j] = f(x[r * rs + j * cs].into(), j);
            }
        }
    }
}

/// `1 / R[j, j]` for each of the d columns of the row-major d × d `r`.
fn reciprocal_diagonal(r: &[f64], d: usize) -> Vec<f64> {
    (0..d).map(|j| 1.0 / r[j * d + j]).collect()
}

/// Solves `p ← p R⁻¹` in place for the `m` rows of the row-major panel `p` (m × d), R upper
/// triangular (d × d row-major): forward substitution per row (backward stable like LAPACK's
/// `trsm`), multiplying by the reciprocals of R's diagonal (`inv`). With AVX2, four rows at a time:
/// per tile of 8 columns, the update by the columns already solved (4 × 8 register tile), then
/// the substitution inside the tile on the transposed tile, so that the four rows' chains run
/// side by side in the vector lanes; the columns after the last full tile and the rows after
/// the last group of four go the portable way.
fn solve_panel(v: Variant, p: &mut [f64], m: usize, d: usize, r: &[f64], inv: &[f64]) {
    let full = d / TJ * TJ;
    // The rows solved with AVX2 (whole groups of four); the rest go the portable way.
    let done = match v {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 if full > 0 => {
            let mut row = 0;
            while row + TI <= m {
                for k0 in (0..full).step_by(TJ) {
                    // SAFETY: `v` is what `Variant::detect` found on this CPU; rows row..row + 4
                    // < m and columns k0..k0 + 8 ≤ d lie inside `p` (asserted inside).
                    unsafe { solve_tile_avx2(p, d, row, k0, r, inv) };
                }
                for y in p[row * d..(row + TI) * d].chunks_exact_mut(d) {
                    solve_row(y, d, r, inv, full);
                }
                row += TI;
            }
            row
        }
        _ => 0,
    };
    for y in p[done * d..m * d].chunks_exact_mut(d) {
        solve_row(y, d, r, inv, 0);
    }
}

/// Forward substitution of one row from column `from` on (columns before it already solved):
/// `y[j] ← (y[j] − Σ_{i<j} y[i] R[i, j]) / R[j, j]`, the division as a product with `inv[j]`.
fn solve_row(y: &mut [f64], d: usize, r: &[f64], inv: &[f64], from: usize) {
    for j in from..d {
        let mut s = y[j];
        for i in 0..j {
            s -= y[i] * r[i * d + j];
        }
        y[j] = s * inv[j];
    }
}

/// One 4 rows × 8 columns tile of [`solve_panel`] with AVX2 + FMA: `p[row.., k0..k0+8] −=
/// p[row.., ..k0] · R[..k0, k0..k0+8]` (eight accumulators, per solved column four broadcasts
/// and two loads of R), then the tile transposed (one register per column, the four rows in
/// its lanes), solved column after column, transposed back and stored.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn solve_tile_avx2(p: &mut [f64], d: usize, row: usize, k0: usize, r: &[f64], inv: &[f64]) {
    use std::arch::x86_64::*;
    assert!((row + TI) * d <= p.len() && k0 + TJ <= d && r.len() >= d * d && inv.len() >= d);
    let pp = p.as_mut_ptr();
    let rp = r.as_ptr();
    // SAFETY: every access is of a row < row + 4 at a column < d of `p`, inside R, or at a
    // column < d of `inv` (all asserted above).
    unsafe {
        let mut acc = [_mm256_setzero_pd(); 2 * TI];
        for ii in 0..TI {
            let o = pp.add((row + ii) * d + k0);
            acc[2 * ii] = _mm256_loadu_pd(o);
            acc[2 * ii + 1] = _mm256_loadu_pd(o.add(4));
        }
        for j in 0..k0 {
            let b0 = _mm256_loadu_pd(rp.add(j * d + k0));
            let b1 = _mm256_loadu_pd(rp.add(j * d + k0 + 4));
            for ii in 0..TI {
                let a = _mm256_broadcast_sd(&*pp.add((row + ii) * d + j));
                acc[2 * ii] = _mm256_fnmadd_pd(a, b0, acc[2 * ii]);
                acc[2 * ii + 1] = _mm256_fnmadd_pd(a, b1, acc[2 * ii + 1]);
            }
        }
        // Rows → columns: c[t] holds column k0 + t of the four rows.
        let (c0, c1, c2, c3) = transpose4(acc[0], acc[2], acc[4], acc[6]);
        let (c4, c5, c6, c7) = transpose4(acc[1], acc[3], acc[5], acc[7]);
        let mut c = [c0, c1, c2, c3, c4, c5, c6, c7];
        for j in 0..TJ {
            let cj = _mm256_mul_pd(c[j], _mm256_broadcast_sd(&*inv.as_ptr().add(k0 + j)));
            c[j] = cj;
            for (t, ct) in c.iter_mut().enumerate().skip(j + 1) {
                let rjt = _mm256_broadcast_sd(&*rp.add((k0 + j) * d + k0 + t));
                *ct = _mm256_fnmadd_pd(cj, rjt, *ct);
            }
        }
        let (r0, r1, r2, r3) = transpose4(c[0], c[1], c[2], c[3]);
        let (r4, r5, r6, r7) = transpose4(c[4], c[5], c[6], c[7]);
        for (ii, (lo, hi)) in [(r0, r4), (r1, r5), (r2, r6), (r3, r7)].into_iter().enumerate() {
            let o = pp.add((row + ii) * d + k0);
            _mm256_storeu_pd(o, lo);
            _mm256_storeu_pd(o.add(4), hi);
        }
    }
}

/// The transpose of the 4 × 4 matrix whose rows are `a`, `b`, `c`, `e`.
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn transpose4(
    a: std::arch::x86_64::__m256d,
    b: std::arch::x86_64::__m256d,
    c: std::arch::x86_64::__m256d,
    e: std::arch::x86_64::__m256d,
) -> (
    std::arch::x86_64::__m256d,
    std::arch::x86_64::__m256d,
    std::arch::x86_64::__m256d,
    std::arch::x86_64::__m256d,
) {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_pd(a, b); // a0 b0 a2 b2
    let t1 = _mm256_unpackhi_pd(a, b); // a1 b1 a3 b3
    let t2 = _mm256_unpacklo_pd(c, e); // c0 e0 c2 e2
    let t3 = _mm256_unpackhi_pd(c, e); // c1 e1 c3 e3
    (
        _mm256_permute2f128_pd(t0, t2, 0x20),
        _mm256_permute2f128_pd(t1, t3, 0x20),
        _mm256_permute2f128_pd(t0, t2, 0x31),
        _mm256_permute2f128_pd(t1, t3, 0x31),
    )
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
    use tch::{Device, Kind};

    use super::*;
    use crate::kernels::{Policy, with_policy};

    fn reference(x: &Tensor) -> Tensor {
        let x = x.to_kind(Kind::Double);
        x.tr().matmul(&x)
    }

    /// max |a − b| ≤ 1e-12 · max(1, max |b|).
    fn close(a: &Tensor, b: &Tensor) -> bool {
        if b.numel() == 0 {
            return a.size() == b.size();
        }
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) <= 1e-12 * scale
    }

    fn to_vec(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous().reshape([-1])).expect("values")
    }

    fn mirrored(mut g: Vec<f64>, d: usize) -> Tensor {
        mirror_upper(&mut g, d);
        Tensor::from_slice(&g).reshape([d as i64, d as i64])
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
            let flat = to_vec(&x);
            for v in [Variant::detect(), Variant::Portable] {
                let mut g = vec![0.0; (d * d) as usize];
                let (n, d) = (rows as usize, d as usize);
                pass(v, &flat, (d, 1), 0..n, d, Prep::default(), None, &mut g);
                assert!(close(&mirrored(g, d), &want), "{v:?} {rows} × {d}");
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
        // f32 rows are read as f64.
        let f = x.to_kind(Kind::Float);
        let g = gram(&f).expect("f32");
        assert_eq!(g.kind(), Kind::Double);
        assert!(close(&g, &reference(&f)));
        // Integer tensors are not the kernel's: libtorch computes them.
        let i = Tensor::arange(12, (Kind::Int64, Device::Cpu)).reshape([4, 3]);
        assert!(prepared_gram(&i, Prep::default(), None).expect("ok").is_none());
    }

    /// A well-conditioned upper triangular R (d × d, positive diagonal).
    fn upper(d: i64) -> Tensor {
        let a = Tensor::randn([4 * d, d], (Kind::Double, Device::Cpu));
        a.tr().matmul(&a).linalg_cholesky(true)
    }

    #[test]
    fn centred_and_solved_rows_match_libtorch() {
        tch::manual_seed(5);
        for (rows, d) in [(0, 4), (3, 5), (37, 8), (1001, 16), (999, 32), (2050, 37), (20_000, 12)] {
            let base = Tensor::randn([rows, d], (Kind::Double, Device::Cpu)) * 3.0 + 1.5;
            let mean = Tensor::randn([d], (Kind::Double, Device::Cpu));
            let scale = Tensor::rand([d], (Kind::Double, Device::Cpu)) + 0.5;
            let r = upper(d);
            let y = r.linalg_solve_triangular(&((&base - &mean) / &scale), true, false, false);
            let want_g = y.tr().matmul(&y);
            let (m, s, rv) = (to_vec(&mean), to_vec(&scale), to_vec(&r));
            let prep = Prep {
                centring: Some((&m, &s)),
                solve: Some(&rv),
            };
            // Row-major and column-major rows, through the threaded entry point.
            for x in [base.shallow_clone(), base.tr().contiguous().tr()] {
                let mut out = Tensor::empty([rows, d], (Kind::Double, Device::Cpu));
                let g = prepared_gram(&x, prep, Some(&mut out)).expect("pass").expect("kernel");
                assert!(close(&out, &y), "rows {rows} × {d}");
                assert!(close(&g, &want_g), "G {rows} × {d}");
            }
            // Each variant, solve only (no centring).
            let y2 = r.linalg_solve_triangular(&base, true, false, false);
            let flat = to_vec(&base);
            for v in [Variant::detect(), Variant::Portable] {
                let (n, du) = (rows as usize, d as usize);
                let mut g = vec![0.0; du * du];
                let mut out = vec![0.0; n * du];
                let solve_only = Prep {
                    centring: None,
                    solve: Some(&rv),
                };
                pass(v, &flat, (du, 1), 0..n, du, solve_only, Some(&mut out), &mut g);
                let got = Tensor::from_slice(&out).reshape([rows, d]);
                assert!(close(&got, &y2), "{v:?} rows {rows} × {d}");
                assert!(close(&mirrored(g, du), &y2.tr().matmul(&y2)), "{v:?} G {rows} × {d}");
            }
        }
    }

    #[test]
    fn threads_split_rows_and_out() {
        tch::manual_seed(6);
        let before = tch::get_num_threads();
        tch::set_num_threads(3);
        let x = Tensor::randn([3 * ROWS_PER_THREAD as i64 + 7, 9], (Kind::Double, Device::Cpu));
        let r = upper(9);
        let rv = to_vec(&r);
        let mut out = Tensor::empty(x.size(), (Kind::Double, Device::Cpu));
        let prep = Prep {
            centring: None,
            solve: Some(&rv),
        };
        let g = prepared_gram(&x, prep, Some(&mut out)).expect("pass").expect("kernel");
        tch::set_num_threads(before);
        let y = r.linalg_solve_triangular(&x, true, false, false);
        assert!(close(&out, &y));
        assert!(close(&g, &y.tr().matmul(&y)));
    }

    #[test]
    fn mismatched_preparation_is_an_error() {
        let x = Tensor::ones([10, 3], (Kind::Double, Device::Cpu));
        let short = [0.0; 2];
        let bad = Prep {
            centring: Some((&short, &short)),
            solve: None,
        };
        assert!(prepared_gram(&x, bad, None).is_err());
        let r = [1.0; 4];
        let bad = Prep {
            centring: None,
            solve: Some(&r),
        };
        assert!(prepared_gram(&x, bad, None).is_err());
        let mut wrong = Tensor::empty([10, 4], (Kind::Double, Device::Cpu));
        assert!(prepared_gram(&x, Prep::default(), Some(&mut wrong)).is_err());
        let mut f32_out = Tensor::empty([10, 3], (Kind::Float, Device::Cpu));
        assert!(prepared_gram(&x, Prep::default(), Some(&mut f32_out)).is_err());
    }

    #[test]
    fn tensor_only_takes_libtorch_with_the_same_results() {
        tch::manual_seed(10);
        let x = Tensor::randn([2050, 37], (Kind::Double, Device::Cpu));
        // Row-major, column-major (as tables load) and a row window of it.
        let cm = x.tr().contiguous().tr();
        for b in [x.shallow_clone(), cm.shallow_clone(), cm.narrow(0, 5, 2000)] {
            let auto = with_policy(Policy::Auto, || gram(&b)).expect("kernel");
            let tensor = with_policy(Policy::TensorOnly, || gram(&b)).expect("libtorch");
            assert!(close(&auto, &tensor), "{:?} strides {:?}", b.size(), b.stride());
            assert!(close(&tensor, &reference(&b)));
        }
        // The entry points decline under TensorOnly (the callers then run libtorch) and run
        // under Auto.
        let r = to_vec(&upper(37));
        let prep = Prep {
            centring: None,
            solve: Some(&r),
        };
        with_policy(Policy::TensorOnly, || {
            assert!(prepared_gram(&x, prep, None).expect("ok").is_none());
            let mut q = x.copy();
            assert!(solve_rows_in_place(&mut q, &r).expect("ok").is_none());
            assert!(close(&q, &x), "untouched");
        });
        with_policy(Policy::Auto, || {
            assert!(prepared_gram(&x, prep, None).expect("ok").is_some());
            let mut q = x.copy();
            assert!(solve_rows_in_place(&mut q, &r).expect("ok").is_some());
            let rt = Tensor::from_slice(&r).reshape([37, 37]);
            assert!(close(&q, &rt.linalg_solve_triangular(&x, true, false, false)));
        });
    }
}
