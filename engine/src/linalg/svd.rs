//! Truncated SVD of a row-split (n × d) array: X ≈ U Σ Vᵀ with U (n × k) split along rows like
//! X, Σ (k) and V (d × k) replicated.
//!
//! Solvers (the [`Solver`]s PCA uses, here on the data as it is; PCA passes its centring and
//! scaling):
//!
//! * [`Solver::Tsqr`]: the R factor by TSQR ([`mod@crate::linalg::tsqr`]), then the SVD of R
//!   (min(n, d) × d) on every rank. Exact.
//! * [`Solver::Randomized`]: Halko–Martinsson–Tropp range finder with oversamples and power
//!   iterations (TSQR for the tall factor), seeded: the same numbers at every P.
//! * [`Solver::Hierarchical`]: local truncated SVDs of rank k + oversamples merged pairwise up a
//!   binary tree, identically on every rank (Heat's `hsvd`); exact when rank(X) ≤ k + oversamples.
//! * [`Solver::Auto`]: [`auto_svd`]: TSQR when d ≤ 1024 or k > d / 10; randomized (default
//!   knobs) otherwise.
//!
//! [`Solver::Covariance`] is PCA's alone: the SVD refuses it.
//!
//! V follows [`crate::linalg::flip_signs`] and U the same signs, so results agree at every P.
//! U = X V Σ⁻¹ is computed on each rank for its rows by [`crate::kernels::skinny`] on the CPU
//! (columns of U for zero singular values are zero).

use tch::{Kind, TchError, Tensor};

use crate::comm::ReduceOp;
use crate::device::MoveTo;
use crate::dndarray::DNDarray;
use crate::error::{EngineError, Result};
use crate::kernels::skinny::times_small;
use crate::linalg::flip_signs;
use crate::linalg::solver::{Solver, auto_svd};
use crate::linalg::tsqr::{local_r, prepared, tsqr, tsqr_r_of};

const OP: &str = "svd";

/// Rows per chunk when a pass copies the rank's rows (bounds the temporary).
pub(crate) const CHUNK_ROWS: i64 = 65_536;

/// A truncated SVD.
#[derive(Debug)]
pub struct Svd {
    /// Left singular vectors (n × k), split along rows like the input (when asked for).
    pub u: Option<DNDarray>,
    /// Singular values (k, descending, f64).
    pub s: Tensor,
    /// Right singular vectors (d × k, f64), replicated.
    pub v: Tensor,
    /// The solver that ran (`Auto` resolved).
    pub solver: Solver,
}

/// Collective. The leading k singular triplets of `x` (n × d, split along rows, float32 or
/// float64; zero-row ranks allowed) by `solver`; U (in `x`'s dtype) only when `want_u` (one
/// more pass over the rows). Σ and V are f64. Errors (the same on every rank): layout or
/// dtype, k < 1 or k > min(n, d), negative oversamples/power_iter, the covariance solver.
pub fn svd(x: &DNDarray, k: i64, solver: Solver, want_u: bool) -> Result<Svd> {
    let comm = x.comm();
    comm.agree(super::check_row_split_float(OP, x))?;
    let (n, d) = (x.gshape()[0], x.gshape()[1]);
    let bad = match solver {
        Solver::Randomized {
            oversamples,
            power_iter,
            ..
        } => oversamples < 0 || power_iter < 0,
        Solver::Hierarchical { oversamples } => oversamples < 0,
        _ => false,
    };
    if k < 1 {
        return Err(EngineError::arg(OP, format!("k = {k} is out of range; expected k ≥ 1")));
    }
    if k > n.min(d) {
        return Err(EngineError::arg(
            OP,
            format!("k = {k} exceeds min(rows, columns) = {}", n.min(d)),
        ));
    }
    if bad {
        return Err(EngineError::arg(OP, "oversamples and power_iter must be ≥ 0"));
    }
    if solver == Solver::Covariance {
        return Err(EngineError::arg(
            OP,
            "the covariance solver computes principal components only; expected the auto, tsqr, \
             randomized or hierarchical solver",
        ));
    }
    let solver = match solver {
        Solver::Auto => auto_svd(d, k),
        s => s,
    };
    let (s, v) = match solver {
        Solver::Tsqr => by_tsqr(x, None)?,
        Solver::Randomized {
            oversamples,
            power_iter,
            seed,
        } => by_randomized(x, None, k, oversamples, power_iter, seed)?,
        Solver::Hierarchical { oversamples } => {
            let (s, v, _) = by_hierarchical(x, None, k, oversamples)?;
            (s, v)
        }
        Solver::Auto | Solver::Covariance => unreachable!("resolved or refused above"),
    };
    let s = s.narrow(0, 0, k).moved_to(tch::Device::Cpu);
    let (_, v) = flip_signs(&v.narrow(1, 0, k).moved_to(tch::Device::Cpu));
    // U = X V Σ⁻¹ on each rank's rows; a zero singular value gives a zero column.
    let u = if want_u {
        let inv = s.where_self(&s.gt(0.0), &s.ones_like()).reciprocal() * s.gt(0.0).to_kind(Kind::Double);
        let dev = x.device();
        let w = (&v * inv.unsqueeze(0)).moved_to(dev);
        let u = comm.agree(times_local(x.local(), &w).and_then(|u| u.f_to_kind(x.kind())))?;
        Some(DNDarray::from_pieces_in(comm, u, 0)?)
    } else {
        None
    };
    Ok(Svd { u, s, v, solver })
}

/// Local. `rows · w` (f64) for a rank's rows and a small `w` (d × k, f64, on the rows'
/// device): the kernel of [`crate::kernels::skinny`] where it applies, libtorch otherwise.
fn times_local(rows: &Tensor, w: &Tensor) -> std::result::Result<Tensor, TchError> {
    match times_small(rows, w)? {
        Some(u) => Ok(u),
        None => rows.f_to_kind(Kind::Double)?.f_matmul(w),
    }
}

/// Calls `f` on the rank's rows in chunks of [`CHUNK_ROWS`], centred (f64): no temporary
/// larger than a chunk.
pub(crate) fn for_centred_chunks(
    x: &DNDarray,
    mean: &Tensor,
    mut f: impl FnMut(&Tensor) -> std::result::Result<(), TchError>,
) -> std::result::Result<(), TchError> {
    let local = x.local();
    let mu = mean.moved_to(local.device());
    let rows = local.size()[0];
    let mut at = 0;
    while at < rows {
        let len = CHUNK_ROWS.min(rows - at);
        let c = local.narrow(0, at, len).to_kind(Kind::Double).f_sub(&mu)?;
        f(&c)?;
        at += len;
    }
    Ok(())
}

/// PCA's view of the data: the solvers factor `(x − mean) / scale` (both d, f64) instead of
/// `x` itself.
#[derive(Clone, Copy)]
pub(crate) struct Centring<'a> {
    /// Column means (d).
    pub mean: &'a Tensor,
    /// Column scales (d; ones when not standardising).
    pub scale: &'a Tensor,
}

/// `centring`'s mean and scale on `dev`.
fn on_device(centring: Option<Centring<'_>>, dev: tch::Device) -> Option<(Tensor, Tensor)> {
    centring.map(|c| (c.mean.moved_to(dev), c.scale.moved_to(dev)))
}

/// SVD of the TSQR R factor of the data (centred and scaled with `centring`), accumulated in
/// blocks: no copy of the rank's rows.
pub(crate) fn by_tsqr(x: &DNDarray, centring: Option<Centring<'_>>) -> Result<(Tensor, Tensor)> {
    let comm = x.comm();
    let c = on_device(centring, x.local().device());
    let r = tsqr_r_of(x, c.as_ref().map(|(m, s)| (m, s)))?;
    // torch.svd (reduced): (U, S, V) with V, not Vᵀ.
    let (_, s, v) = comm.agree(r.f_svd(true, true))?;
    Ok((s, v))
}

/// Randomized SVD of the centred (and scaled) data: (s, v) for the leading k + oversamples.
#[allow(clippy::too_many_arguments)]
pub(crate) fn by_randomized(
    x: &DNDarray,
    centring: Option<Centring<'_>>,
    k: i64,
    oversamples: i64,
    power_iter: i64,
    seed: u64,
) -> Result<(Tensor, Tensor)> {
    let comm = x.comm();
    let (n, d) = (x.gshape()[0], x.gshape()[1]);
    let l = k.saturating_add(oversamples).min(n.min(d));
    let dev = x.local().device();
    // Work in f64 on the scaled data: Xs = X / scale (X itself without centring, no copy for
    // f64), centred products subtract the scaled mean.
    let (xs, mu) = match centring {
        Some(c) => (
            comm.agree(x.local().to_kind(Kind::Double).f_div(&c.scale.moved_to(dev)))?,
            Some((c.mean / c.scale).moved_to(dev).unsqueeze(0)), // 1 × d
        ),
        None => (comm.agree(x.local().f_to_kind(Kind::Double))?, None),
    };
    let omega = DNDarray::randn(&[d, l], None, seed, (Kind::Double, dev))?.into_local();
    // Y = Xc · Ω, orthonormalised (Q row-split).
    let times = |w: &Tensor| -> Result<DNDarray> {
        let y = comm.agree(xs.f_matmul(w).and_then(|t| match &mu {
            Some(mu) => t.f_sub(&mu.matmul(w)),
            None => Ok(t),
        }))?;
        DNDarray::from_pieces_in(comm, y, 0)
    };
    // Xcᵀ · Q: local products and one allreduce (d × l).
    let t_times = |q: &DNDarray| -> Result<Tensor> {
        let ql = q.local();
        let part = comm.agree(xs.tr().f_matmul(ql).and_then(|t| match &mu {
            Some(mu) => {
                let colsum = ql.sum_dim_intlist(0, true, Kind::Double); // 1 × l
                t.f_sub(&mu.tr().matmul(&colsum))
            }
            None => Ok(t),
        }))?;
        Ok(comm.allreduce_tensor(&part, ReduceOp::Sum)?)
    };
    let (mut q, _) = tsqr(&times(&omega)?)?;
    for _ in 0..power_iter {
        let z = t_times(&q)?;
        let (z, _) = comm.agree(Tensor::f_linalg_qr(&z, "reduced"))?;
        q = tsqr(&times(&z)?)?.0;
    }
    // B = Qᵀ Xc (l × d) = (Xcᵀ Q)ᵀ; its SVD gives the singular values and right vectors.
    let b = t_times(&q)?.tr();
    let (_, s, v) = comm.agree(b.f_svd(true, true))?;
    Ok((s, v))
}

/// Collective. Hierarchical SVD of the centred (and scaled) data: (s, v) of the merged rank-r
/// factor (r = k + oversamples, at most d) and the sum of the squared singular values the
/// truncations discarded.
pub(crate) fn by_hierarchical(
    x: &DNDarray,
    centring: Option<Centring<'_>>,
    k: i64,
    oversamples: i64,
) -> Result<(Tensor, Tensor, f64)> {
    let comm = x.comm();
    let d = x.gshape()[1];
    let r = k.saturating_add(oversamples).min(d);
    // This rank's rows → R (≤ d × d, accumulated in blocks), then its truncated SVD Σ Vᵀ.
    let c = on_device(centring, x.local().device());
    let local = local_r(x.local(), |b| prepared(b, c.as_ref().map(|(m, s)| (m, s)))).and_then(|acc| truncate(&acc, r));
    let (factor, discarded) = comm.agree(local)?;
    let stacked = comm.allgatherv_tensor(&factor)?;
    let rows = comm.allgather(&[factor.size()[0]])?;
    let local_discarded: f64 = comm.allgather(&[discarded])?.iter().sum();
    // The tree: blocks in rank order, merged pairwise level by level (the same on every rank).
    let merged = comm.agree((|| {
        let mut blocks: Vec<Tensor> = Vec::with_capacity(rows.len());
        let mut at = 0;
        for &m in &rows {
            blocks.push(stacked.narrow(0, at, m));
            at += m;
        }
        let mut discarded = local_discarded;
        while blocks.len() > 1 {
            let mut next = Vec::with_capacity(blocks.len().div_ceil(2));
            for pair in blocks.chunks(2) {
                if pair.len() == 1 {
                    next.push(pair[0].shallow_clone());
                    continue;
                }
                let (f, lost) = truncate(&Tensor::f_cat(&[&pair[0], &pair[1]], 0)?, r)?;
                discarded += lost;
                next.push(f);
            }
            blocks = next;
        }
        let (_, s, v) = blocks[0].f_svd(true, true)?;
        Ok::<_, TchError>((s, v, discarded))
    })())?;
    Ok(merged)
}

/// The rank-r truncation `Σ_r V_rᵀ` (≤ r × d) of `a`'s SVD and the sum of the squared singular
/// values beyond r.
fn truncate(a: &Tensor, r: i64) -> std::result::Result<(Tensor, f64), TchError> {
    let d = a.size()[1];
    if a.size()[0] == 0 {
        return Ok((Tensor::f_zeros([0, d], (Kind::Double, a.device()))?, 0.0));
    }
    let (_, s, v) = a.f_svd(true, true)?;
    let keep = r.min(s.size()[0]);
    let lost = s
        .narrow(0, keep, s.size()[0] - keep)
        .square()
        .sum(Kind::Double)
        .double_value(&[]);
    let f = s.narrow(0, 0, keep).unsqueeze(1) * v.narrow(1, 0, keep).tr();
    Ok((f, lost))
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::kernels::{Policy, with_policy};

    #[test]
    fn tensor_only_gives_the_same_u() {
        tch::manual_seed(11);
        let x = Tensor::randn([3000, 24], (Kind::Double, Device::Cpu));
        let w = Tensor::randn([24, 8], (Kind::Double, Device::Cpu));
        // Row-major, column-major (as tables load) and f32 rows.
        for rows in [x.shallow_clone(), x.tr().contiguous().tr(), x.to_kind(Kind::Float)] {
            let auto = with_policy(Policy::Auto, || times_local(&rows, &w)).expect("kernel");
            let tensor = with_policy(Policy::TensorOnly, || times_local(&rows, &w)).expect("libtorch");
            let scale = tensor.abs().max().double_value(&[]).max(1.0);
            let err = (&auto - &tensor).abs().max().double_value(&[]);
            assert!(
                err <= 1e-12 * scale,
                "{:?} strides {:?}: {err}",
                rows.kind(),
                rows.stride()
            );
        }
    }
}
