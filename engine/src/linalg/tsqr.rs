//! TSQR: QR of a tall-skinny, row-split (n × d) array.
//!
//! Each rank factors its rows (`A_r = Q_r R_r`), the small factors `R_r` (at most d × d each)
//! are allgathered in rank order and factored once more (`[R_0; …; R_{P-1}] = Q̂ R`) on every
//! rank, identically: R (min(n, d) × d) is replicated, and this rank's rows of Q are
//! `Q_r · Q̂_r` (Q̂_r: its block of Q̂), so Q (n × min(n, d)) is row-split like A. One collective
//! of P · d² values; A is never gathered. (A reduction tree would replace the one allgather
//! for very many ranks; at P · d² ≪ n · d it is not needed.) R is normalised to a non-negative
//! diagonal, which makes the factorisation unique for full-rank A and independent of P.

use tch::{Kind, Tensor};

use crate::dndarray::DNDarray;
use crate::error::Result;

/// Collective. The R factor of `a` (n × d, split 0; floating point), replicated:
/// min(n, d) × d, upper triangular with a non-negative diagonal.
pub fn tsqr_r(a: &DNDarray) -> Result<Tensor> {
    Ok(factor(a, false)?.1)
}

/// Collective. `a = Q · R` with Q (n × min(n, d)) split along rows like `a` and R
/// (min(n, d) × d) replicated, upper triangular with a non-negative diagonal.
pub fn tsqr(a: &DNDarray) -> Result<(DNDarray, Tensor)> {
    let (q, r) = factor(a, true)?;
    Ok((q.expect("Q was asked for"), r))
}

fn factor(a: &DNDarray, want_q: bool) -> Result<(Option<DNDarray>, Tensor)> {
    let op = "tsqr";
    let comm = a.comm();
    comm.agree(super::check_row_split_float(op, a))?;
    let local = a.local();
    // Local reduced QR: Q_r (n_r × m_r), R_r (m_r × d), m_r = min(n_r, d).
    let (q_local, r_local) = comm.agree(Tensor::f_linalg_qr(local, "reduced"))?;
    let stacked = comm.allgatherv_tensor(&r_local)?;
    let (q_hat, r) = comm.agree(Tensor::f_linalg_qr(&stacked, "reduced"))?;
    // A non-negative diagonal of R: flip rows of R and the matching columns of Q.
    let m = r.size()[0];
    let diag = r.diagonal(0, 0, 1);
    let signs = (diag.ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0).to_kind(r.kind());
    let r = &r * signs.unsqueeze(1);
    if !want_q {
        return Ok((None, r));
    }
    let counts = comm.allgather(&[r_local.size()[0]])?;
    let start: i64 = counts[..comm.rank()].iter().sum();
    let block = q_hat.narrow(0, start, counts[comm.rank()]) * signs.unsqueeze(0);
    let q = comm.agree(q_local.f_matmul(&block))?;
    let q = DNDarray::from_pieces(q.reshape([local.size()[0], m]), 0)?;
    Ok((Some(q), r))
}
