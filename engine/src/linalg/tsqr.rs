//! TSQR: QR of a tall-skinny, row-split (n × d) array.
//!
//! Each rank factors its rows (`A_r = Q_r R_r`), the small factors `R_r` (at most d × d each)
//! are allgathered in rank order and factored once more (`[R_0; …; R_{P-1}] = Q̂ R`) on every
//! rank, identically: R (min(n, d) × d) is replicated, and this rank's rows of Q are
//! `Q_r · Q̂_r` (Q̂_r: its block of Q̂), so Q (n × min(n, d)) is row-split like A. One collective
//! of P · d² values; A is never gathered. (A reduction tree would replace the one allgather
//! for very many ranks; at P · d² ≪ n · d it is not needed.) R is normalised to a non-negative
//! diagonal, which makes the factorisation unique for full-rank A and independent of P.
//!
//! When only R is wanted, a rank factors its rows block by block (`QR_BLOCK_ROWS` rows at a
//! time, `[R; next block]`, R only): the Householder panel of a tall-skinny matrix is
//! level-2 BLAS, so factoring cache-sized blocks instead of all rows at once saves a pass over
//! memory per column, and no Q of the rank's rows is ever formed.
//!
//! **CholeskyQR2 first.** Householder QR of a tall-skinny matrix runs at level-2 BLAS speed;
//! CholeskyQR2 (Fukaya, Nakatsukasa, Yanagisawa, Yamamoto 2014) runs at GEMM speed and needs
//! one allreduce of d × d per step instead of an allgather: `G = AᵀA` (local Gram matrices,
//! one allreduce), `R₁ = chol(G)`; `Q₁ = A R₁⁻¹` (triangular solves, block by block, never
//! stored when only R is wanted), `G₂ = Q₁ᵀQ₁` (one allreduce), `R₂ = chol(G₂)`, `R = R₂ R₁`,
//! `Q = Q₁ R₂⁻¹`. It is as accurate as Householder (backward error and loss of orthogonality
//! O(ε)) as long as Q₁ is nearly orthonormal, which is measured, not assumed: when G is not
//! numerically positive definite or `‖G₂ − I‖_F` exceeds [`ORTHOGONALITY_LIMIT`] (κ(A) beyond
//! about 10⁷ in f64: rank-deficient, wide or badly scaled data), every rank falls back to
//! Householder TSQR, so the result is always the accurate one. Blocks are computed in f64
//! (f32 input is promoted block by block) and R is returned in the input's dtype.
//!
//! On the CPU both passes run the kernels of [`crate::kernels::gram`]: one read of the rank's
//! rows per pass, centring and the solve by R₁ applied panel by panel in cache, Q₁ stored only
//! when Q is wanted. On other devices the passes are libtorch's, in blocks of
//! `GRAM_BLOCK_ROWS` rows.

use tch::{Device, Kind, TchError, Tensor};

use crate::comm::{Comm, ReduceOp};
use crate::device::MoveTo;
use crate::dndarray::DNDarray;
use crate::error::Result;
use crate::kernels::f64_values;
use crate::kernels::gram::{Prep, prepared_gram, solve_rows_in_place};

/// Rows per block when a rank accumulates its Householder R factor (a block of 32 f64 columns
/// is 256 KiB: Householder panels are level-2 BLAS, so the block should stay in cache).
pub(crate) const QR_BLOCK_ROWS: i64 = 1024;

/// Rows per block of CholeskyQR2's Gram matrices and triangular solves off the CPU.
pub(crate) const GRAM_BLOCK_ROWS: i64 = 16_384;

/// The largest `‖Q₁ᵀQ₁ − I‖_F` (Q₁ = A R₁⁻¹ after CholeskyQR's first step) for which the
/// second step is trusted; beyond it the factorisation falls back to Householder TSQR.
/// Loss of orthogonality of Q₁ grows like κ(A)² ε, so this admits κ(A) up to about 3·10⁷
/// in f64; after the second step Q's loss of orthogonality is O(ε).
pub const ORTHOGONALITY_LIMIT: f64 = 0.1;

/// How a TSQR factor was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrAlgorithm {
    /// Two rounds of Cholesky QR on allreduced Gram matrices (GEMM speed).
    CholeskyQr2,
    /// Local Householder QRs whose R factors are allgathered and factored again.
    Householder,
}

/// Collective. The R factor of `a` (n × d, split 0; floating point), replicated:
/// min(n, d) × d, upper triangular with a non-negative diagonal, in `a`'s dtype.
pub fn tsqr_r(a: &DNDarray) -> Result<Tensor> {
    Ok(tsqr_r_reporting(a)?.0)
}

/// Collective. [`tsqr_r`] and the algorithm that produced R (the same on every rank).
pub fn tsqr_r_reporting(a: &DNDarray) -> Result<(Tensor, QrAlgorithm)> {
    a.comm().agree(super::check_row_split_float("tsqr", a))?;
    let kind = a.kind();
    let (r, how) = tsqr_r_of_reporting(a, None)?;
    Ok((a.comm().agree(r.f_to_kind(kind))?, how))
}

/// Collective. `a = Q · R` with Q (n × min(n, d)) split along rows like `a` and R
/// (min(n, d) × d) replicated, upper triangular with a non-negative diagonal.
pub fn tsqr(a: &DNDarray) -> Result<(DNDarray, Tensor)> {
    let (q, r, _) = tsqr_reporting(a)?;
    Ok((q, r))
}

/// Collective. [`tsqr`] and the algorithm that produced Q and R (the same on every rank).
pub fn tsqr_reporting(a: &DNDarray) -> Result<(DNDarray, Tensor, QrAlgorithm)> {
    let comm = a.comm();
    comm.agree(super::check_row_split_float("tsqr", a))?;
    if let Some((q, r)) = cholesky_qr2(a, true, None)? {
        let kind = a.kind();
        let q = comm.agree(q.expect("Q was asked for").f_to_kind(kind))?;
        let r = comm.agree(r.f_to_kind(kind))?;
        return Ok((DNDarray::from_pieces_in(comm, q, 0)?, r, QrAlgorithm::CholeskyQr2));
    }
    let local = a.local();
    // Local reduced QR: Q_r (n_r × m_r), R_r (m_r × d), m_r = min(n_r, d).
    let (q_local, r_local) = comm.agree(Tensor::f_linalg_qr(local, "reduced"))?;
    let (q_hat, r, signs) = merge(comm, &r_local, true)?;
    let q_hat = q_hat.expect("Q̂ was asked for");
    let m = r.size()[0];
    let counts = comm.allgather(&[r_local.size()[0]])?;
    let start: i64 = counts[..comm.rank()].iter().sum();
    let block = q_hat.narrow(0, start, counts[comm.rank()]) * signs.unsqueeze(0);
    let q = comm.agree(q_local.f_matmul(&block))?;
    let q = DNDarray::from_pieces_in(comm, q.reshape([local.size()[0], m]), 0)?;
    Ok((q, r, QrAlgorithm::Householder))
}

/// Column means and scales (d each, f64, on the rows' device): rows are factored as
/// `(x − mean) / scale`.
pub(crate) type Centring<'a> = Option<(&'a Tensor, &'a Tensor)>;

/// Local. `block` (rows of x) as the f64 rows the solvers factor: centred and scaled when
/// `centring` is given (tensors already on the block's device), else `block` itself
/// (no copy for f64).
pub(crate) fn prepared(block: Tensor, centring: Centring<'_>) -> std::result::Result<Tensor, TchError> {
    let block = block.f_to_kind(Kind::Double)?;
    match centring {
        Some((mean, scale)) => block.f_sub(mean)?.f_div(scale),
        None => Ok(block),
    }
}

/// Collective. The replicated R factor (as [`tsqr_r`], f64) of `a`'s rows prepared by
/// [`prepared`] with `centring`. `a` is split along rows (the caller checks).
pub(crate) fn tsqr_r_of(a: &DNDarray, centring: Centring<'_>) -> Result<Tensor> {
    Ok(tsqr_r_of_reporting(a, centring)?.0)
}

/// Collective. [`tsqr_r_of`] and the algorithm that produced R.
fn tsqr_r_of_reporting(a: &DNDarray, centring: Centring<'_>) -> Result<(Tensor, QrAlgorithm)> {
    if let Some((_, r)) = cholesky_qr2(a, false, centring)? {
        return Ok((r, QrAlgorithm::CholeskyQr2));
    }
    let comm = a.comm();
    let r_local = comm.agree(local_r(a.local(), |b| prepared(b, centring)))?;
    Ok((merge(comm, &r_local, false)?.1, QrAlgorithm::Householder))
}

/// Collective. CholeskyQR2 of `a`'s rows prepared with `centring` (see the module documentation):
/// `Some((Q when asked for, R))` in f64, R upper triangular with a positive diagonal, or
/// `None` on every rank when `a` is wide, G is not numerically positive definite or Q₁ is too
/// far from orthonormal (the caller then runs Householder TSQR).
fn cholesky_qr2(a: &DNDarray, want_q: bool, centring: Centring<'_>) -> Result<Option<(Option<Tensor>, Tensor)>> {
    let comm = a.comm();
    let (n, d) = (a.gshape()[0], a.gshape()[1]);
    if d == 0 || n < d {
        return Ok(None);
    }
    let rows = a.local();
    let dev = rows.device();
    // Step 1: G = AᵀA, R₁ = chol(G).
    let g = comm.agree(gram_of_prepared(rows, d, centring, None, None))?;
    let g = comm.allreduce_tensor(&g, ReduceOp::Sum)?;
    let Some(r1) = all_agree(comm, comm.agree(cholesky_upper(&g))?)? else {
        return Ok(None);
    };
    // Step 2: Q₁ = A R₁⁻¹ (stored in Q's memory only when Q is wanted), G₂ = Q₁ᵀQ₁,
    // R₂ = chol(G₂).
    let r1 = r1.moved_to(dev);
    let n_local = rows.size()[0];
    let mut q = if want_q {
        Some(comm.agree(Tensor::f_empty([n_local, d], (Kind::Double, dev)))?)
    } else {
        None
    };
    let g2 = comm.agree(gram_of_prepared(rows, d, centring, Some(&r1), q.as_mut()))?;
    let g2 = comm.allreduce_tensor(&g2, ReduceOp::Sum)?;
    let step2 = comm.agree((|| {
        let eye = Tensor::f_eye(d, (Kind::Double, g2.device()))?;
        let loss = g2
            .f_sub(&eye)?
            .f_square()?
            .f_sum(Kind::Double)?
            .f_sqrt()?
            .f_double_value(&[])?;
        if loss.is_nan() || loss > ORTHOGONALITY_LIMIT {
            return Ok(None);
        }
        cholesky_upper(&g2)
    })())?;
    let Some(r2) = all_agree(comm, step2)? else {
        return Ok(None);
    };
    let r2 = r2.moved_to(dev);
    let r = comm.agree(r2.f_matmul(&r1))?;
    let Some(mut q) = q else {
        return Ok(Some((None, r)));
    };
    // Q = Q₁ R₂⁻¹ in place (R₂ is within ORTHOGONALITY_LIMIT of I: perfectly conditioned).
    comm.agree(solve_in_place(&mut q, &r2))?;
    Ok(Some((Some(q), r)))
}

/// Local. `q ← q R⁻¹` in place for a rank's rows `q` (n × d, f64, contiguous) and the upper
/// triangular `r` (d × d, on `q`'s device): [`solve_rows_in_place`]'s kernel on the CPU, else
/// libtorch's triangular solves in blocks of [`GRAM_BLOCK_ROWS`] rows.
fn solve_in_place(q: &mut Tensor, r: &Tensor) -> std::result::Result<(), TchError> {
    if q.device() == Device::Cpu && solve_rows_in_place(q, &f64_values(r)?)?.is_some() {
        return Ok(());
    }
    let n = q.size()[0];
    let mut at = 0;
    while at < n {
        let len = GRAM_BLOCK_ROWS.min(n - at);
        let mut block = q.narrow(0, at, len);
        let solved = r.f_linalg_solve_triangular(&block, true, false, false)?;
        block.f_copy_(&solved)?;
        at += len;
    }
    Ok(())
}

/// Local. Σ over the rank's `rows` (n × d) of `yᵀy` (d × d, f64; zeros for zero rows), y a row
/// [`prepared`] with `centring` and then solved by the upper triangular `solve` (y R⁻¹) when
/// given; the y are written to `out` (a contiguous n × d f64 tensor on the rows' device) when
/// given. CPU rows run [`prepared_gram`]'s single pass; other devices run libtorch in blocks of
/// [`GRAM_BLOCK_ROWS`] rows.
fn gram_of_prepared(
    rows: &Tensor,
    d: i64,
    centring: Centring<'_>,
    solve: Option<&Tensor>,
    mut out: Option<&mut Tensor>,
) -> std::result::Result<Tensor, TchError> {
    if rows.device() == Device::Cpu {
        let c = match centring {
            Some((m, s)) => Some((f64_values(m)?, f64_values(s)?)),
            None => None,
        };
        let r = solve.map(f64_values).transpose()?;
        let prep = Prep {
            centring: c.as_ref().map(|(m, s)| (&m[..], &s[..])),
            solve: r.as_deref(),
        };
        if let Some(g) = prepared_gram(rows, prep, out.as_deref_mut())? {
            return Ok(g);
        }
    }
    let n = rows.size()[0];
    let mut g = Tensor::f_zeros([d, d], (Kind::Double, rows.device()))?;
    let mut at = 0;
    while at < n {
        let len = GRAM_BLOCK_ROWS.min(n - at);
        let mut b = prepared(rows.narrow(0, at, len), centring)?;
        if let Some(r) = solve {
            b = r.f_linalg_solve_triangular(&b, true, false, false)?;
        }
        if let Some(o) = &out {
            o.narrow(0, at, len).f_copy_(&b)?;
        }
        let _ = g.f_addmm_(&b.tr(), &b)?;
        at += len;
    }
    Ok(g)
}

/// Local. The upper Cholesky factor of the symmetric `g` (R with `g = RᵀR`, positive
/// diagonal), or `None` when `g` is not numerically positive definite or not finite.
fn cholesky_upper(g: &Tensor) -> std::result::Result<Option<Tensor>, TchError> {
    let (r, info) = g.f_linalg_cholesky_ex(true, false)?;
    let finite = r.f_isfinite()?.f_all()?.f_int64_value(&[])? == 1;
    Ok((info.f_int64_value(&[])? == 0 && finite).then_some(r))
}

/// Collective. `local` on every rank when every rank has `Some`, else `None` everywhere (the
/// same decision on every rank even if reductions differed in the last bit).
fn all_agree(comm: &Comm, local: Option<Tensor>) -> Result<Option<Tensor>> {
    let all = comm.allreduce(&[u64::from(local.is_some())], ReduceOp::Min)?[0] == 1;
    Ok(if all { local } else { None })
}

/// Local. An R factor (min(rows, d) × d, signs not normalised) of `prep` applied to `rows` in
/// blocks of [`QR_BLOCK_ROWS`]: R ← R of `[R; prep(block)]`. Zero rows give 0 × d.
pub(crate) fn local_r(
    rows: &Tensor,
    mut prep: impl FnMut(Tensor) -> std::result::Result<Tensor, TchError>,
) -> std::result::Result<Tensor, TchError> {
    let n = rows.size()[0];
    let mut acc: Option<Tensor> = None;
    let mut at = 0;
    loop {
        let len = QR_BLOCK_ROWS.min(n - at);
        let block = prep(rows.narrow(0, at, len))?;
        let stacked = match &acc {
            Some(r) => Tensor::f_cat(&[r, &block], 0)?,
            None => block,
        };
        acc = Some(Tensor::f_linalg_qr(&stacked, "r")?.1);
        at += len;
        if at >= n {
            return Ok(acc.expect("one block at least"));
        }
    }
}

/// Collective. Factors the allgathered local R factors (rank order) on every rank: (Q̂ when
/// asked for, R with a non-negative diagonal, the signs applied to R's rows).
fn merge(comm: &Comm, r_local: &Tensor, want_q: bool) -> Result<(Option<Tensor>, Tensor, Tensor)> {
    let stacked = comm.allgatherv_tensor(r_local)?;
    let (q_hat, r) = comm.agree(Tensor::f_linalg_qr(&stacked, if want_q { "reduced" } else { "r" }))?;
    // A non-negative diagonal of R: flip rows of R (and the matching columns of Q).
    let diag = r.diagonal(0, 0, 1);
    let signs = (diag.ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0).to_kind(r.kind());
    let r = &r * signs.unsqueeze(1);
    Ok((want_q.then_some(q_hat), r, signs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Policy, with_policy};

    /// max |a − b| ≤ 1e-12 · max(1, max |b|).
    fn close(a: &Tensor, b: &Tensor) -> bool {
        let scale = b.abs().max().double_value(&[]).max(1.0);
        (a - b).abs().max().double_value(&[]) <= 1e-12 * scale
    }

    #[test]
    fn tensor_only_passes_match_the_kernels() {
        tch::manual_seed(12);
        let (n, d) = (5000, 19);
        let x = Tensor::randn([n, d], (Kind::Double, Device::Cpu)) * 2.0 + 0.5;
        let mean = Tensor::randn([d], (Kind::Double, Device::Cpu));
        let scale = Tensor::rand([d], (Kind::Double, Device::Cpu)) + 0.5;
        let a = Tensor::randn([4 * d, d], (Kind::Double, Device::Cpu));
        let r = a.tr().matmul(&a).linalg_cholesky(true);
        // Column-major rows (as tables load) and f32 rows, centred and solved, Q written out.
        for rows in [x.tr().contiguous().tr(), x.to_kind(Kind::Float)] {
            let run = |p: Policy| {
                with_policy(p, || {
                    let mut out = Tensor::empty([n, d], (Kind::Double, Device::Cpu));
                    let g = gram_of_prepared(&rows, d, Some((&mean, &scale)), Some(&r), Some(&mut out)).expect("pass");
                    let g0 = gram_of_prepared(&rows, d, None, None, None).expect("pass");
                    (g, g0, out)
                })
            };
            let (g, g0, out) = run(Policy::Auto);
            let (tg, tg0, tout) = run(Policy::TensorOnly);
            assert!(close(&g, &tg), "G {:?}", rows.kind());
            assert!(close(&g0, &tg0), "G₀ {:?}", rows.kind());
            assert!(close(&out, &tout), "Y {:?}", rows.kind());
        }
        // The in-place solve of Q.
        let solve = |p: Policy| {
            with_policy(p, || {
                let mut q = x.copy();
                solve_in_place(&mut q, &r).expect("solve");
                q
            })
        };
        assert!(close(&solve(Policy::Auto), &solve(Policy::TensorOnly)));
    }
}
