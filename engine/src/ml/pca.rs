//! Principal component analysis of a row-split (n × d) array.
//!
//! Always centred (column means from one allreduce); optionally standardised (each column
//! divided by its population standard deviation, as scikit-learn's `StandardScaler`; constant
//! columns keep scale 1). Solvers:
//!
//! * [`Solver::Covariance`]: the centred Gram matrix (d × d), accumulated in row chunks on
//!   each rank and summed with one allreduce (its diagonal gives the column variances), then
//!   a symmetric eigendecomposition replicated on every rank. Exact; two passes over the data
//!   (column sums, then the Gram matrix) and no temporary larger than a chunk. Loses accuracy
//!   when the condition number of the data exceeds about 1e8 (it is squared).
//! * [`Solver::Tsqr`]: the R factor of the centred data by TSQR ([`mod@crate::linalg::tsqr`]),
//!   then the SVD of R (d × d). Exact and stable; needs a centred copy of the rank's rows.
//! * [`Solver::Randomized`]: Halko, Martinsson and Tropp's randomized range finder with
//!   `oversamples` extra columns and `power_iter` power iterations re-orthonormalised by QR
//!   (TSQR for the tall factor), seeded; for k ≪ d. X is never centred in place: products with
//!   the centred data are formed as `X·Ω − 1·(μ·Ω)`.
//! * [`Solver::Hierarchical`]: each rank reduces its centred (and scaled) rows to a truncated
//!   SVD of rank r = k + `oversamples` (from a QR of its rows accumulated in chunks), the
//!   r × d factors `Σ_r V_rᵀ` are allgathered and merged pairwise up a binary tree (stack two,
//!   SVD, truncate to r), identically on every rank. Its error estimate is Heat's:
//!   √(Σ discarded σ²) / ‖X‖_F over every truncation, the last one to k included (an upper bound on
//!   the relative Frobenius error of the rank-k approximation). Exact when the data has rank ≤ r.
//! * [`Solver::Auto`]: [`auto_pca`]: covariance when d ≤ 1024; otherwise randomized (default
//!   knobs) when k ≤ d / 10 and TSQR when not.
//!
//! [`Solver`] is the one solver type of PCA and the SVD ([`crate::linalg::solver`]), with
//! the defaults of its knobs.
//!
//! Every solver reports the singular values, the explained variance `s² / (n − 1)`, and its
//! ratio to the total variance (the sum of the column variances, computed exactly for every
//! solver). Components follow [`crate::linalg::flip_signs`], so results are the same at every
//! P. Scores ([`transform`]) are computed on each rank for its rows; X is never gathered.

use tch::{Kind, Tensor};

use crate::comm::ReduceOp;
use crate::device::MoveTo;
use crate::dndarray::DNDarray;
use crate::error::{EngineError, Result};
use crate::linalg::flip_signs;
pub use crate::linalg::solver::{Solver, auto_pca};
use crate::linalg::svd::{CHUNK_ROWS, Centring, by_hierarchical, by_randomized, by_tsqr, for_centred_chunks};

const OP: &str = "pca";

/// How many components to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Components {
    /// Exactly k (1 ≤ k ≤ min(n, d)).
    Count(i64),
    /// The fewest components whose cumulative explained variance ratio reaches this fraction
    /// (0 < f ≤ 1); exact solvers only.
    Variance(f64),
}

/// Options of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcaOptions {
    /// Components to keep.
    pub components: Components,
    /// The solver.
    pub solver: Solver,
    /// Divide each column by its standard deviation after centring.
    pub standardize: bool,
}

/// A fitted PCA model; every tensor is replicated (the same on every rank).
#[derive(Debug)]
pub struct PcaModel {
    /// Column means (d).
    pub mean: Tensor,
    /// Column scales (d): standard deviations with `standardize`, else ones.
    pub scale: Tensor,
    /// Principal axes, one column per component (d × k), signs by [`flip_signs`].
    pub components: Tensor,
    /// Singular values of the centred (and scaled) data (k).
    pub singular_values: Tensor,
    /// Variance along each component, `s² / (n − 1)` (k).
    pub explained_variance: Tensor,
    /// `explained_variance` divided by the total variance (k).
    pub explained_variance_ratio: Tensor,
    /// Rows of the data.
    pub n_samples: i64,
    /// The solver that ran (never `Auto`).
    pub solver: Solver,
    /// The hierarchical solver's estimate of the relative Frobenius error of the rank-k
    /// approximation (`None` for the other solvers: exact, or randomized without an estimate).
    pub error_estimate: Option<f64>,
}

impl PcaModel {
    /// The number of components kept.
    pub fn k(&self) -> i64 {
        self.components.size()[1]
    }
}

/// Collective. Fits PCA to `x` (n × d, rows split along axis 0, float32 or float64).
/// Errors (the same on every rank): wrong layout or dtype, fewer than 2 rows, k outside
/// 1..=min(n, d), a variance fraction outside (0, 1] or with the randomized solver.
pub fn fit(x: &DNDarray, opts: &PcaOptions) -> Result<PcaModel> {
    let comm = x.comm();
    comm.agree(validate(x, opts))?;
    let (n, d) = (x.gshape()[0], x.gshape()[1]);
    let kind = x.kind();
    let mean = column_means(x)?;
    let want = match opts.components {
        Components::Count(k) => Some(k),
        Components::Variance(_) => None,
    };
    let solver = match opts.solver {
        Solver::Auto => auto_pca(d, want),
        s => s,
    };
    // Singular values (descending) and right singular vectors (d × m) of the centred (and
    // scaled) data, with the column variances and scales.
    let mut error_estimate = None;
    let (s, v, var, scale) = match solver {
        Solver::Covariance => {
            // The Gram matrix's diagonal holds the centred sums of squares: no extra pass.
            let gram = centred_gram(x, &mean)?;
            let var = gram.diagonal(0, 0, 1) / ((n - 1) as f64);
            let scale = scales(&var, n, opts.standardize);
            let gram = gram / scale.outer(&scale);
            let (s, v) = eigen(x, &gram)?;
            (s, v, var, scale)
        }
        Solver::Tsqr => {
            let var = column_m2(x, &mean)? / ((n - 1) as f64);
            let scale = scales(&var, n, opts.standardize);
            let (s, v) = by_tsqr(
                x,
                Some(Centring {
                    mean: &mean,
                    scale: &scale,
                }),
            )?;
            (s, v, var, scale)
        }
        Solver::Randomized {
            oversamples,
            power_iter,
            seed,
        } => {
            let var = column_m2(x, &mean)? / ((n - 1) as f64);
            let scale = scales(&var, n, opts.standardize);
            let (s, v) = by_randomized(
                x,
                Some(Centring {
                    mean: &mean,
                    scale: &scale,
                }),
                want.unwrap_or(1),
                oversamples,
                power_iter,
                seed,
            )?;
            (s, v, var, scale)
        }
        Solver::Hierarchical { oversamples } => {
            let var = column_m2(x, &mean)? / ((n - 1) as f64);
            let scale = scales(&var, n, opts.standardize);
            let k = want.unwrap_or(1);
            let (s, v, discarded) = by_hierarchical(
                x,
                Some(Centring {
                    mean: &mean,
                    scale: &scale,
                }),
                k,
                oversamples,
            )?;
            // ‖X‖_F² of the centred, scaled data, and what the last truncation to k drops.
            let total = (&var / scale.square()).sum(Kind::Double).double_value(&[]) * ((n - 1) as f64);
            let tail = s
                .narrow(0, k, s.size()[0] - k)
                .square()
                .sum(Kind::Double)
                .double_value(&[]);
            error_estimate = Some(if total > 0.0 {
                ((discarded + tail) / total).sqrt()
            } else {
                0.0
            });
            (s, v, var, scale)
        }
        Solver::Auto => unreachable!("resolved above"),
    };
    let total_var = (&var / scale.square()).sum(Kind::Double).double_value(&[]);
    let explained = s.square() / ((n - 1) as f64);
    let ratio = &explained / total_var;
    let k = match opts.components {
        Components::Count(k) => k,
        Components::Variance(f) => {
            let cumulative: Vec<f64> = Vec::try_from(&ratio.cumsum(0, Kind::Double))?;
            // The fewest components reaching f (rounding: compare with a small slack).
            let k = cumulative
                .iter()
                .position(|&c| c >= f - 1e-12)
                .map_or(cumulative.len(), |i| i + 1);
            k as i64
        }
    };
    let (_, components) = flip_signs(&v.narrow(1, 0, k));
    Ok(PcaModel {
        mean: mean.to_kind(kind),
        scale: scale.to_kind(kind),
        components: components.to_kind(kind),
        singular_values: s.narrow(0, 0, k).to_kind(kind),
        explained_variance: explained.narrow(0, 0, k).to_kind(kind),
        explained_variance_ratio: ratio.narrow(0, 0, k).to_kind(kind),
        n_samples: n,
        solver,
        error_estimate,
    })
}

/// Collective. The scores of `x`'s rows (n × k, split along rows like `x`):
/// `((x − mean) / scale) · components`, computed by each rank for its rows.
pub fn transform(x: &DNDarray, model: &PcaModel) -> Result<DNDarray> {
    project(x, &model.mean, &model.scale, &model.components)
}

/// Collective. `((x − mean) / scale) · components` for `x` (n × d, split along rows) and a
/// model given by its parts (replicated): `mean` and `scale` (d), `components` (d × k). The
/// result (n × k) is split like `x`; each rank computes its rows, in `x`'s dtype.
pub fn project(x: &DNDarray, mean: &Tensor, scale: &Tensor, components: &Tensor) -> Result<DNDarray> {
    let comm = x.comm();
    let d = components.size()[0];
    let check = if x.ndim() != 2 || x.split() != Some(0) || x.gshape()[1] != d {
        Err(EngineError::shape(
            OP,
            format!(
                "expected rows × {d} columns split along rows, got shape {:?} split {:?}",
                x.gshape(),
                x.split()
            ),
        ))
    } else if mean.size() != [d] || scale.size() != [d] {
        Err(EngineError::shape(
            OP,
            format!(
                "mean and scale must have {d} entries, got {:?} and {:?}",
                mean.size(),
                scale.size()
            ),
        ))
    } else {
        Ok(())
    };
    comm.agree(check)?;
    let device = x.device();
    let w = (components / scale.unsqueeze(1)).to_kind(x.kind()).moved_to(device);
    // One fused GEMM: −(mean · w) + x · w (the shift broadcast over the rows).
    let shift = -mean.unsqueeze(0).to_kind(x.kind()).moved_to(device).matmul(&w);
    let local = comm.agree(shift.f_addmm(x.local(), &w))?;
    DNDarray::from_pieces_in(comm, local, 0)
}

/// Collective. The scores of [`project`], written over `x`'s own memory instead of new memory
/// (which on many systems costs more than the product: every fresh page faults), returned
/// transposed: k × n_local, row j holding component j's scores of this rank's rows, each row
/// contiguous (ready to become a column; rows may be further apart than n_local). `x` is
/// consumed; the result is a view into its storage. Rows are processed in chunks, each
/// chunk's scores (a small temporary) written over input already read:
///
/// * column-major x (how `convert::load` lays out a table's columns: d rows of n): chunk
///   [a, b)'s scores overwrite features 0..k of rows [a, b);
/// * row-major x with d ≥ 2k: chunk [a, b)'s scores overwrite elements [a·k, b·k), and the
///   transposed copy then goes to elements [n·k, 2·n·k);
/// * otherwise (or on a GPU) the scores go to new memory.
pub fn project_into(x: DNDarray, mean: &Tensor, scale: &Tensor, components: &Tensor) -> Result<Tensor> {
    let comm = x.comm();
    let (d, k) = (components.size()[0], components.size()[1]);
    let shape_ok = x.ndim() == 2 && x.split() == Some(0) && x.gshape()[1] == d;
    let local = x.into_local();
    // Local work only (each rank may take another path), then one agreement.
    let scores = (|| {
        if !shape_ok || mean.size() != [d] || scale.size() != [d] {
            return Err(EngineError::shape(
                OP,
                format!(
                    "expected rows × {d} columns split along rows and {d} means and scales, got {:?}, {:?} and {:?}",
                    local.size(),
                    mean.size(),
                    scale.size()
                ),
            ));
        }
        let device = local.device();
        let w = (components / scale.unsqueeze(1)).to_kind(local.kind()).moved_to(device);
        let shift = -mean.unsqueeze(0).to_kind(local.kind()).moved_to(device).matmul(&w); // 1 × k
        let n = local.size()[0];
        let cpu = device == tch::Device::Cpu;
        let xt = local.tr(); // d × n
        if cpu && (xt.stride()[1] == 1 || n <= 1) {
            let (wt, shift_t) = (w.tr(), shift.tr()); // k × d, k × 1
            let mut at = 0;
            while at < n {
                let len = CHUNK_ROWS.min(n - at);
                let s = shift_t.f_addmm(&wt, &xt.narrow(1, at, len))?;
                xt.narrow(0, 0, k).narrow(1, at, len).f_copy_(&s)?;
                at += len;
            }
            return Ok(xt.narrow(0, 0, k));
        }
        if cpu && local.is_contiguous() && d >= 2 * k {
            let flat = local.f_view([-1])?;
            let mut at = 0;
            while at < n {
                let len = CHUNK_ROWS.min(n - at);
                let s = shift.f_addmm(&local.narrow(0, at, len), &w)?;
                flat.narrow(0, at * k, len * k).f_copy_(&s.f_reshape([-1])?)?;
                at += len;
            }
            let rows = flat.narrow(0, 0, n * k).f_view([n, k])?;
            let mut cols = flat.narrow(0, n * k, n * k).f_view([k, n])?;
            cols.f_copy_(&rows.tr())?;
            return Ok(cols);
        }
        Ok(shift
            .f_addmm(&local, &w)?
            .moved_to(tch::Device::Cpu)
            .tr()
            .f_contiguous()?)
    })();
    comm.agree_nested(scores)
}

fn validate(x: &DNDarray, opts: &PcaOptions) -> Result<()> {
    crate::linalg::check_row_split_float(OP, x)?;
    let (n, d) = (x.gshape()[0], x.gshape()[1]);
    if n < 2 {
        return Err(EngineError::arg(OP, format!("{n} rows; PCA needs at least 2")));
    }
    let most = n.min(d);
    match (opts.components, opts.solver) {
        (Components::Count(k), _) if k < 1 || k > most => Err(EngineError::arg(
            OP,
            format!("k = {k} is out of range; expected 1 ≤ k ≤ min(rows, columns) = {most}"),
        )),
        (Components::Variance(f), _) if !(f > 0.0 && f <= 1.0) => Err(EngineError::arg(
            OP,
            format!("the fraction of the variance to keep, {f}, is out of range; expected a fraction in (0, 1]"),
        )),
        (Components::Variance(_), Solver::Randomized { .. } | Solver::Hierarchical { .. }) => Err(EngineError::arg(
            OP,
            format!(
                "a fraction of the variance needs every component, which the {} solver does not compute; \
                 use the covariance or tsqr solver, or a number of components k",
                opts.solver.name()
            ),
        )),
        (_, Solver::Hierarchical { oversamples }) if oversamples < 0 => Err(EngineError::arg(
            OP,
            format!("oversamples = {oversamples}; expected a value ≥ 0"),
        )),
        (
            _,
            Solver::Randomized {
                oversamples,
                power_iter,
                ..
            },
        ) if oversamples < 0 || power_iter < 0 => Err(EngineError::arg(
            OP,
            format!("oversamples = {oversamples}, power_iter = {power_iter}; expected values ≥ 0"),
        )),
        _ => Ok(()),
    }
}

/// Collective. Column means (d, f64): local sums accumulated in f64, one allreduce.
fn column_means(x: &DNDarray) -> Result<Tensor> {
    let comm = x.comm();
    let sums = comm.agree(x.local().f_sum_dim_intlist(0, false, Kind::Double))?;
    let sums = comm.allreduce_tensor(&sums, ReduceOp::Sum)?;
    Ok(sums / (x.gshape()[0] as f64))
}

/// Collective. Centred sums of squares per column (d, f64), in chunks; one allreduce.
fn column_m2(x: &DNDarray, mean: &Tensor) -> Result<Tensor> {
    let comm = x.comm();
    let d = x.gshape()[1];
    let local = (|| {
        let mut m2 = Tensor::f_zeros([d], (Kind::Double, x.local().device()))?;
        for_centred_chunks(x, mean, |c| {
            m2 = m2.f_add(&c.square().sum_dim_intlist(0, false, Kind::Double))?;
            Ok(())
        })?;
        Ok::<_, tch::TchError>(m2)
    })();
    let local = comm.agree(local)?;
    Ok(comm.allreduce_tensor(&local, ReduceOp::Sum)?)
}

/// Column scales: population standard deviations with `standardize` (scikit-learn's
/// StandardScaler; constant columns keep 1), else ones.
fn scales(var: &Tensor, n: i64, standardize: bool) -> Tensor {
    if standardize {
        let sd = (var * ((n - 1) as f64 / n as f64)).sqrt();
        sd.where_self(&sd.gt(0.0), &sd.ones_like())
    } else {
        var.ones_like()
    }
}

/// Collective. The centred Gram matrix Σ (x − μ)ᵀ(x − μ) (d × d, f64), accumulated in row
/// chunks on each rank and summed with one allreduce.
fn centred_gram(x: &DNDarray, mean: &Tensor) -> Result<Tensor> {
    let comm = x.comm();
    let d = x.gshape()[1];
    let local = (|| {
        let mut g = Tensor::f_zeros([d, d], (Kind::Double, x.local().device()))?;
        for_centred_chunks(x, mean, |c| {
            g = g.f_addmm(&c.tr(), c)?;
            Ok(())
        })?;
        Ok::<_, tch::TchError>(g)
    })();
    let local = comm.agree(local)?;
    Ok(comm.allreduce_tensor(&local, ReduceOp::Sum)?)
}

/// Eigendecomposition of the (replicated) Gram matrix: (s, v) with s descending.
fn eigen(x: &DNDarray, gram: &Tensor) -> Result<(Tensor, Tensor)> {
    let (evals, evecs) = x.comm().agree(gram.f_linalg_eigh("L"))?;
    // Ascending → descending; tiny negative eigenvalues from rounding are zero.
    let evals = evals.flip([0]).clamp_min(0.0);
    Ok((evals.sqrt(), evecs.flip([1])))
}
