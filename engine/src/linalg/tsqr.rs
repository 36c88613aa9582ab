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
//! When only R is wanted, a rank factors its rows block by block ([`QR_BLOCK_ROWS`] rows at a
//! time, `[R; next block]`, R only): the Householder panel of a tall-skinny matrix is
//! level-2 BLAS, so factoring cache-sized blocks instead of all rows at once saves a pass over
//! memory per column, and no Q of the rank's rows is ever formed.

use tch::{Kind, TchError, Tensor};

use crate::comm::Comm;
use crate::dndarray::DNDarray;
use crate::error::Result;

/// Rows per block when a rank accumulates its R factor (a block of 32 f64 columns is 1 MiB).
pub(crate) const QR_BLOCK_ROWS: i64 = 4096;

/// Collective. The R factor of `a` (n × d, split 0; floating point), replicated:
/// min(n, d) × d, upper triangular with a non-negative diagonal, in `a`'s dtype.
pub fn tsqr_r(a: &DNDarray) -> Result<Tensor> {
    a.comm().agree(super::check_row_split_float("tsqr", a))?;
    tsqr_r_of(a, Ok)
}

/// Collective. `a = Q · R` with Q (n × min(n, d)) split along rows like `a` and R
/// (min(n, d) × d) replicated, upper triangular with a non-negative diagonal.
pub fn tsqr(a: &DNDarray) -> Result<(DNDarray, Tensor)> {
    let comm = a.comm();
    comm.agree(super::check_row_split_float("tsqr", a))?;
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
    let q = DNDarray::from_pieces(q.reshape([local.size()[0], m]), 0)?;
    Ok((q, r))
}

/// Collective. The replicated R factor (as [`tsqr_r`]) of the rows `prep` makes of `a`'s
/// rows, block by block (`prep` maps a block of rows to the block to factor, e.g. centred
/// f64; it must keep the row count and give every block the same columns and dtype).
/// `a` is split along rows (the caller checks).
pub(crate) fn tsqr_r_of(
    a: &DNDarray,
    prep: impl FnMut(Tensor) -> std::result::Result<Tensor, TchError>,
) -> Result<Tensor> {
    let comm = a.comm();
    let r_local = comm.agree(local_r(a.local(), prep))?;
    Ok(merge(comm, &r_local, false)?.1)
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
