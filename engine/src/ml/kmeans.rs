//! k-means clustering of a row-split (n × d) array.
//!
//! Lloyd iterations: each rank computes the squared distances of its rows to the k centroids
//! in the GEMM form ‖x‖² − 2·x·cᵀ + ‖c‖² (clamped at 0), assigns each row to its nearest
//! centroid (the first on ties), and accumulates the per-cluster sums, counts and squared
//! distances in the same pass; ONE allreduce of k × (d + 2) values then gives the new
//! centroids and the inertia. On the CPU the pass is the fused kernel of `kernels/nearest.rs`
//! (blocks of rows in cache, nothing of size n × k stored); on other devices, and under
//! [`crate::kernels::Policy::TensorOnly`], the same formula runs as tensor
//! operations on chunks of rows. Centroids are replicated and kept in f64.
//!
//! Initialisation, identical on every rank:
//!
//! * [`Init::Parallel`] (k-means‖, Bahmani et al.): one uniformly drawn row, then `rounds`
//!   rounds in which every row joins the candidates with probability min(1, l·D²/ΣD²) (D: its
//!   distance to the nearest candidate, l = `oversampling` · k), drawn from a stream keyed by
//!   the row's global index, so the candidates do not depend on the rank count. The candidates,
//!   weighted by the rows nearest to each, are reduced to k by weighted k-means++ and Lloyd
//!   iterations on every rank.
//! * [`Init::PlusPlus`] (k-means++): each next centroid is a row drawn with probability
//!   proportional to D² (distributed: one allreduce of the total, one allgather of the per-rank
//!   sums, the row fetched by one allreduce).
//! * [`Init::Random`]: k distinct rows drawn uniformly. [`Init::Centroids`]: given centroids.
//!
//! `tol` is scikit-learn's: iterations stop when the squared Frobenius norm of the centroid
//! shift is at most `tol` × the mean of the column variances. After the last iteration the
//! rows are assigned once more, so sizes and inertia belong to the returned centroids. A
//! cluster left empty is re-seeded with the row farthest from its centroid (ties: the lowest
//! global row index), the next empty one with the next farthest row. `n_init` runs with seeds
//! `seed`, `seed + 1`, …; the lowest inertia wins (the first when inertias agree to a relative
//! 1e-9, so that rounding does not pick the winner).

use tch::{Kind, Tensor};

use crate::comm::ReduceOp;
use crate::dndarray::DNDarray;
use crate::error::{EngineError, Result};
use crate::rng::{uniform, uniform_tensor};

use crate::device::MoveTo;
use crate::kernels::nearest::{Need, nearest};

const OP: &str = "kmeans";

/// Rows per chunk of the distance computation (bounds the n × k temporary).
const CHUNK_ROWS: i64 = 65_536;

/// How the first centroids are chosen.
#[derive(Debug)]
pub enum Init {
    /// k-means‖ with `rounds` sampling rounds and `oversampling` · k expected rows per round.
    Parallel {
        /// Sampling rounds.
        rounds: usize,
        /// Expected rows drawn per round, as a multiple of k.
        oversampling: f64,
    },
    /// k-means++ (D² sampling).
    PlusPlus,
    /// k distinct rows drawn uniformly.
    Random,
    /// These centroids (k × d).
    Centroids(Tensor),
}

impl Init {
    /// The name SQL uses.
    pub fn name(&self) -> &'static str {
        match self {
            Init::Parallel { .. } => "k-means||",
            Init::PlusPlus => "k-means++",
            Init::Random => "random",
            Init::Centroids(_) => "given",
        }
    }
}

/// Options of [`fit`].
#[derive(Debug)]
pub struct KMeansOptions {
    /// Clusters (1 ≤ k ≤ n).
    pub k: i64,
    /// Initialisation.
    pub init: Init,
    /// Most Lloyd iterations per run (≥ 1).
    pub max_iter: usize,
    /// Relative tolerance (scikit-learn's; ≥ 0).
    pub tol: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Runs; the lowest inertia wins (≥ 1; given centroids run once).
    pub n_init: usize,
    /// Report each iteration (iteration, inertia) as a `kmeans` progress event.
    pub progress: bool,
}

/// A fitted k-means model; everything is replicated.
#[derive(Debug)]
pub struct KMeansModel {
    /// Centroids (k × d, f64).
    pub centroids: Tensor,
    /// Rows assigned to each centroid.
    pub sizes: Vec<i64>,
    /// Sum of squared distances of each cluster's rows to its centroid.
    pub cluster_inertia: Vec<f64>,
    /// Sum of squared distances of all rows to their centroids.
    pub inertia: f64,
    /// Lloyd iterations run (of the winning run).
    pub iterations: usize,
    /// Whether the winning run met `tol` before `max_iter`.
    pub converged: bool,
    /// The seed of the winning run.
    pub seed: u64,
}

/// Per-cluster sums (k × d), counts (k) and squared distances (k) of one assignment pass.
struct Pass {
    sums: Tensor,
    counts: Tensor,
    inertia: Tensor,
}

/// Squared distances (rows × k, f64, ≥ 0) of `x` (rows × d, f64) to `c` (k × d) with `c2 = ‖c‖²`.
fn sq_distances(x: &Tensor, c: &Tensor, c2: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
    let x2 = x.f_square()?.f_sum_dim_intlist(1, true, Kind::Double)?;
    let cross = x.f_matmul(&c.f_tr()?)?;
    (x2 - cross * 2.0 + c2.unsqueeze(0)).f_clamp_min(0.0)
}

/// Calls `f` on a rank's rows `local` in f64 chunks with the chunk's first local row.
fn for_chunks(
    local: &Tensor,
    mut f: impl FnMut(i64, &Tensor) -> std::result::Result<(), tch::TchError>,
) -> std::result::Result<(), tch::TchError> {
    let rows = local.size()[0];
    let mut at = 0;
    while at < rows {
        let len = CHUNK_ROWS.min(rows - at);
        // A contiguous f64 copy of the chunk: tables load column-major, and the row-wise
        // distance and assignment kernels are several times faster on rows.
        f(at, &local.narrow(0, at, len).to_kind(Kind::Double).f_contiguous()?)?;
        at += len;
    }
    Ok(())
}

/// This rank's part of a nearest-centroid pass: what `need` asked for, as tensors on the
/// rows' device (labels int64 and squared distances f64, n_local; totals k × (d + 2): sums,
/// counts, squared distances).
struct LocalPass {
    labels: Option<Tensor>,
    sq: Option<Tensor>,
    totals: Option<Tensor>,
}

/// A rank's nearest-centroid pass over its rows `local` against `c` (k × d, f64): the fused
/// kernel (`kernels/nearest.rs`) for host rows, the same formula by tensor operations per
/// chunk on other devices (and under [`Policy::TensorOnly`]).
fn local_pass(local: &Tensor, c: &Tensor, need: Need) -> std::result::Result<LocalPass, tch::TchError> {
    let (k, d) = (c.size()[0], c.size()[1]);
    let dev = local.device();
    let cv: Vec<f64> = Vec::<f64>::try_from(&c.moved_to(tch::Device::Cpu).to_kind(Kind::Double).reshape([-1]))?;
    if let Some(r) = nearest(local, &cv, k as usize, need) {
        let totals = r.totals.map(|t| {
            Tensor::cat(
                &[
                    Tensor::from_slice(&t.sums).reshape([k, d]),
                    Tensor::from_slice(&t.counts).unsqueeze(1),
                    Tensor::from_slice(&t.inertia).unsqueeze(1),
                ],
                1,
            )
        });
        return Ok(LocalPass {
            labels: need.labels.then(|| Tensor::from_slice(&r.labels)),
            sq: need.sq.then(|| Tensor::from_slice(&r.sq)),
            totals,
        });
    }
    let c = c.moved_to(dev).to_kind(Kind::Double);
    let c2 = c.f_square()?.f_sum_dim_intlist(1, false, Kind::Double)?;
    let mut sums = Tensor::f_zeros([k, d], (Kind::Double, dev))?;
    let mut counts = Tensor::f_zeros([k], (Kind::Double, dev))?;
    let mut inertia = Tensor::f_zeros([k], (Kind::Double, dev))?;
    let (mut labels, mut sqs) = (Vec::new(), Vec::new());
    for_chunks(local, |_, xc| {
        let (min, label) = sq_distances(xc, &c, &c2)?.f_min_dim(1, false)?;
        if need.totals {
            // One-hot (rows × k) assignment: the sums are one GEMM, counts and inertia two GEMVs.
            let onehot = Tensor::f_zeros([xc.size()[0], k], (Kind::Double, dev))?.f_scatter_value(
                1,
                &label.unsqueeze(1),
                1.0,
            )?;
            let oh_t = onehot.f_tr()?;
            sums = sums.f_addmm(&oh_t, xc)?;
            counts = counts.f_add(&onehot.f_sum_dim_intlist(0, false, Kind::Double)?)?;
            inertia = inertia.f_addmv(&oh_t, &min)?;
        }
        if need.labels {
            labels.push(label);
        }
        if need.sq {
            sqs.push(min);
        }
        Ok(())
    })?;
    let cat = |parts: Vec<Tensor>, kind: Kind| -> std::result::Result<Tensor, tch::TchError> {
        if parts.is_empty() {
            Tensor::f_zeros([0], (kind, dev))
        } else {
            Tensor::f_cat(&parts, 0)
        }
    };
    Ok(LocalPass {
        labels: if need.labels {
            Some(cat(labels, Kind::Int64)?)
        } else {
            None
        },
        sq: if need.sq { Some(cat(sqs, Kind::Double)?) } else { None },
        totals: if need.totals {
            Some(Tensor::f_cat(&[sums, counts.unsqueeze(1), inertia.unsqueeze(1)], 1)?)
        } else {
            None
        },
    })
}

/// Collective. One assignment pass against `c` (k × d, f64): local sums, counts and squared
/// distances, then one allreduce of k × (d + 2).
fn assign(x: &DNDarray, c: &Tensor) -> Result<Pass> {
    let comm = x.comm();
    let d = c.size()[1];
    let need = Need {
        totals: true,
        ..Need::default()
    };
    let local = comm.agree(local_pass(x.local(), c, need).map(|p| p.totals.unwrap_or_default()))?;
    let all = comm.allreduce_tensor(&local, ReduceOp::Sum)?.moved_to(tch::Device::Cpu);
    Ok(Pass {
        sums: all.narrow(1, 0, d),
        counts: all.select(1, d),
        inertia: all.select(1, d + 1),
    })
}

/// Collective. The rows at the global `indices` (m × d, f64), fetched with one allreduce.
fn rows_at(x: &DNDarray, indices: &[i64]) -> Result<Tensor> {
    let comm = x.comm();
    let d = x.gshape()[1];
    let start = x.offsets()[comm.rank()];
    let n_local = x.lshape()[0];
    let mut out = Tensor::zeros([indices.len() as i64, d], (Kind::Double, tch::Device::Cpu));
    let local = (|| {
        for (j, &g) in indices.iter().enumerate() {
            if g >= start && g < start + n_local {
                out.get(j as i64).f_copy_(
                    &x.local()
                        .get(g - start)
                        .to_kind(Kind::Double)
                        .moved_to(tch::Device::Cpu),
                )?;
            }
        }
        Ok::<_, tch::TchError>(())
    })();
    comm.agree(local)?;
    out = comm.allreduce_tensor(&out, ReduceOp::Sum)?;
    Ok(out)
}

/// Stream ids: every random draw of a run comes from `uniform(stream(seed, purpose), i)`.
fn stream(seed: u64, purpose: u64) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ purpose.wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// k distinct global row indices drawn uniformly (the same on every rank).
fn distinct_rows(n: i64, k: i64, seed: u64) -> Vec<i64> {
    let s = stream(seed, 1);
    let mut out: Vec<i64> = Vec::with_capacity(k as usize);
    let mut i = 0u64;
    while (out.len() as i64) < k {
        let g = ((uniform(s, i) * n as f64) as i64).min(n - 1);
        if !out.contains(&g) {
            out.push(g);
        }
        i += 1;
    }
    out
}

/// Collective. This rank's squared distance of each row to the nearest of `c` (n_local, f64).
fn nearest_sq(x: &DNDarray, c: &Tensor) -> Result<Tensor> {
    let need = Need {
        sq: true,
        ..Need::default()
    };
    Ok(x.comm()
        .agree(local_pass(x.local(), c, need).map(|p| p.sq.unwrap_or_default()))?)
}

/// Collective. The global index of the row drawn with probability ∝ `w` (this rank's weights,
/// n_local, ≥ 0) for the uniform number `u` in [0, 1); `None` when every weight is 0.
fn draw_weighted(x: &DNDarray, w: &Tensor, u: f64) -> Result<Option<i64>> {
    let comm = x.comm();
    let local_sum = w.sum(Kind::Double).double_value(&[]);
    let sums = comm.allgather(&[local_sum])?;
    let total: f64 = sums.iter().sum();
    if total <= 0.0 {
        return Ok(None);
    }
    let target = u * total;
    // The rank whose cumulative range holds the target (the last non-empty one on rounding).
    let mut acc = 0.0;
    let mut owner = sums.iter().rposition(|&s| s > 0.0).unwrap_or(0);
    for (r, &s) in sums.iter().enumerate() {
        if s > 0.0 && target < acc + s {
            owner = r;
            break;
        }
        acc += s;
    }
    let mut found = [-1i64];
    if comm.rank() == owner {
        // On the rows' device: the first row whose cumulative weight passes the target (the
        // last with weight, on rounding); one index crosses to the host.
        let cum = w.cumsum(0, Kind::Double);
        let local_target = target - acc;
        let first_above = cum.gt(local_target).nonzero();
        let i = if first_above.size()[0] > 0 {
            first_above.int64_value(&[0, 0])
        } else {
            let positive = cum.gt(0.0).nonzero();
            let m = positive.size()[0];
            if m > 0 { positive.int64_value(&[m - 1, 0]) } else { 0 }
        };
        found[0] = x.offsets()[owner] + i;
    }
    comm.bcast(&mut found, owner)?;
    Ok(Some(found[0]))
}

/// Collective. k-means++ over this rank's rows: k centroids (k × d, f64).
fn plus_plus(x: &DNDarray, k: i64, seed: u64) -> Result<Tensor> {
    let n = x.gshape()[0];
    let s = stream(seed, 2);
    let first = distinct_rows(n, 1, seed)[0];
    let mut chosen = vec![first];
    let mut centers = rows_at(x, &[first])?;
    let mut d2 = nearest_sq(x, &centers)?;
    for j in 1..k {
        let g = match draw_weighted(x, &d2, uniform(s, j as u64))? {
            Some(g) => g,
            // Every row sits on a centroid: any row not chosen yet.
            None => (0..n).find(|g| !chosen.contains(g)).unwrap_or(0),
        };
        chosen.push(g);
        let c = rows_at(x, &[g])?;
        d2 = x.comm().agree(d2.f_minimum(&nearest_sq(x, &c)?))?;
        centers = Tensor::cat(&[&centers, &c], 0);
    }
    Ok(centers)
}

/// k-means++ on weighted points held by every rank (m × d, weights m): k rows of `p`.
fn weighted_plus_plus(p: &Tensor, w: &Tensor, k: i64, seed: u64) -> Tensor {
    let s = stream(seed, 4);
    let m = p.size()[0];
    let pick = |weights: &Tensor, u: f64| -> i64 {
        let cum: Vec<f64> = Vec::<f64>::try_from(&weights.cumsum(0, Kind::Double)).unwrap_or_default();
        let total = cum.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return 0;
        }
        cum.iter().position(|&c| c > u * total).unwrap_or(m as usize - 1) as i64
    };
    let mut idx = vec![pick(w, uniform(s, 0))];
    let mut centers = p.get(idx[0]).unsqueeze(0);
    for j in 1..k {
        let c2 = centers.square().sum_dim_intlist(1, false, Kind::Double);
        let d2 = sq_distances(p, &centers, &c2)
            .map(|t| t.amin([1i64].as_slice(), false))
            .unwrap_or_else(|_| Tensor::zeros([m], (Kind::Double, tch::Device::Cpu)));
        let mut weights = &d2 * w;
        if weights.sum(Kind::Double).double_value(&[]) <= 0.0 {
            weights = w.shallow_clone();
        }
        let mut g = pick(&weights, uniform(s, j as u64));
        if idx.contains(&g) {
            g = (0..m).find(|i| !idx.contains(i)).unwrap_or(g);
        }
        idx.push(g);
        centers = Tensor::cat(&[&centers, &p.get(g).unsqueeze(0)], 0);
    }
    centers
}

/// Collective. k-means‖: candidates by D² oversampling, reduced to k on every rank.
fn parallel(x: &DNDarray, k: i64, rounds: usize, oversampling: f64, seed: u64) -> Result<Tensor> {
    let comm = x.comm();
    let n = x.gshape()[0];
    let start = x.offsets()[comm.rank()];
    let first = distinct_rows(n, 1, seed)[0];
    let mut candidates = rows_at(x, &[first])?;
    let mut d2 = nearest_sq(x, &candidates)?;
    let l = oversampling * k as f64;
    for round in 0..rounds {
        let total = comm.allreduce(&[d2.sum(Kind::Double).double_value(&[])], ReduceOp::Sum)?[0];
        if total <= 0.0 {
            break;
        }
        let s = stream(seed, 100 + round as u64);
        // Row i joins with probability min(1, l·D²ᵢ/ΣD²), its uniform number drawn for its
        // global index, on the rows' device (nothing of length n_local crosses to the host).
        let u = uniform_tensor(s, start, d2.size()[0], d2.device());
        let idx = u.lt_tensor(&(&d2 * l / total).clamp_max(1.0)).nonzero().squeeze_dim(1);
        let mine = comm.agree(x.local().f_index_select(0, &idx).map(|t| t.to_kind(Kind::Double)))?;
        let new = comm.allgatherv_tensor(&mine.moved_to(tch::Device::Cpu))?;
        if new.size()[0] == 0 {
            continue;
        }
        d2 = comm.agree(d2.f_minimum(&nearest_sq(x, &new)?))?;
        candidates = Tensor::cat(&[&candidates, &new], 0);
    }
    if candidates.size()[0] <= k {
        // Too few distinct candidates (tiny or degenerate data): k-means++ on the rows.
        return plus_plus(x, k, seed);
    }
    let weights = assign(x, &candidates)?.counts;
    let mut centers = weighted_plus_plus(&candidates, &weights, k, seed);
    // A few weighted Lloyd steps on the candidates (replicated, identical everywhere).
    for _ in 0..10 {
        let c2 = centers.square().sum_dim_intlist(1, false, Kind::Double);
        let Ok(dist) = sq_distances(&candidates, &centers, &c2) else {
            break;
        };
        let label = dist.argmin(1, false);
        let sums = Tensor::zeros_like(&centers).index_add(0, &label, &(&candidates * weights.unsqueeze(1)));
        let counts = Tensor::zeros([k], (Kind::Double, tch::Device::Cpu)).index_add(0, &label, &weights);
        let keep = counts.gt(0.0).unsqueeze(1);
        centers = (sums / counts.clamp_min(1e-300).unsqueeze(1)).where_self(&keep, &centers);
    }
    Ok(centers)
}

/// Collective. Replaces the centroids of empty clusters (`counts` 0) by the rows farthest
/// from `old`'s nearest centroid (ties: lowest global index).
fn reseed_empty(x: &DNDarray, old: &Tensor, new: &mut Tensor, counts: &Tensor) -> Result<()> {
    let comm = x.comm();
    let counts: Vec<f64> = Vec::<f64>::try_from(counts).map_err(EngineError::from)?;
    let empty: Vec<usize> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0.0)
        .map(|(j, _)| j)
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    let m = empty.len();
    let d2 = nearest_sq(x, old)?;
    let start = x.offsets()[comm.rank()];
    // This rank's m farthest rows (ties: lowest index), sorted on the rows' device; only those
    // m values and indices cross to the host.
    let (vals, order) = d2.sort_stable(true, 0, true);
    let top = (m as i64).min(vals.size()[0]);
    let vals: Vec<f64> =
        Vec::<f64>::try_from(&vals.narrow(0, 0, top).moved_to(tch::Device::Cpu)).map_err(EngineError::from)?;
    let order: Vec<i64> =
        Vec::<i64>::try_from(&order.narrow(0, 0, top).moved_to(tch::Device::Cpu)).map_err(EngineError::from)?;
    let mut mine: Vec<f64> = Vec::with_capacity(2 * m);
    for (v, i) in vals.iter().zip(&order) {
        mine.push(*v);
        mine.push((start + i) as f64);
    }
    let (all, _) = comm.allgatherv(&mine)?;
    let mut cands: Vec<(f64, i64)> = all.chunks(2).map(|p| (p[0], p[1] as i64)).collect();
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let picks: Vec<i64> = cands.iter().take(m).map(|c| c.1).collect();
    let rows = rows_at(x, &picks)?;
    for (r, &j) in empty.iter().enumerate().take(picks.len()) {
        new.get(j as i64).copy_(&rows.get(r as i64));
    }
    Ok(())
}

fn validate(x: &DNDarray, opts: &KMeansOptions) -> Result<()> {
    crate::linalg::check_row_split_float(OP, x)?;
    let (n, d) = (x.gshape()[0], x.gshape()[1]);
    if opts.k < 1 || opts.k > n {
        return Err(EngineError::arg(
            OP,
            format!(
                "k = {} is out of range; expected 1 ≤ k ≤ the number of rows ({n})",
                opts.k
            ),
        ));
    }
    if opts.max_iter < 1 || opts.n_init < 1 {
        return Err(EngineError::arg(
            OP,
            format!("max_iter = {} and n_init = {} must be ≥ 1", opts.max_iter, opts.n_init),
        ));
    }
    if !(opts.tol >= 0.0 && opts.tol.is_finite()) {
        return Err(EngineError::arg(
            OP,
            format!("tol = {} must be a finite value ≥ 0", opts.tol),
        ));
    }
    if let Init::Parallel { rounds, oversampling } = opts.init
        && (rounds < 1 || oversampling.is_nan() || oversampling <= 0.0)
    {
        return Err(EngineError::arg(
            OP,
            format!("k-means|| needs rounds ≥ 1 and oversampling > 0, got {rounds} and {oversampling}"),
        ));
    }
    if let Init::Centroids(c) = &opts.init
        && c.size() != [opts.k, d]
    {
        return Err(EngineError::shape(
            OP,
            format!("initial centroids have shape {:?}; expected {} × {d}", c.size(), opts.k),
        ));
    }
    Ok(())
}

/// Collective. The mean over the columns of their (population) variances: one pass over this
/// rank's rows for the local means and variances, combined across ranks by Chan's formula
/// (M2 = Σ_r [M2_r + n_r (μ_r − μ)²]) with two allreduces of d values.
fn mean_column_variance(x: &DNDarray) -> Result<f64> {
    let comm = x.comm();
    let (n, d) = (x.gshape()[0] as f64, x.gshape()[1]);
    let n_local = x.lshape()[0];
    let local = comm.agree((|| {
        if n_local == 0 {
            let z = Tensor::f_zeros([d], (Kind::Double, tch::Device::Cpu))?;
            return Ok::<_, tch::TchError>((z.shallow_clone(), z));
        }
        let (var, mean) = x.local().to_kind(Kind::Double).f_var_mean_dim(0, false, false)?;
        Ok((var.moved_to(tch::Device::Cpu), mean.moved_to(tch::Device::Cpu)))
    })())?;
    let (var, mean) = local;
    let mu = comm.allreduce_tensor(&(&mean * n_local as f64), ReduceOp::Sum)? / n;
    let m2 = (var + (&mean - &mu).square()) * n_local as f64;
    let m2 = comm.allreduce_tensor(&m2, ReduceOp::Sum)?;
    Ok((m2 / n).mean(Kind::Double).double_value(&[]))
}

/// Collective. Fits k-means to `x` (n × d, split along rows, float32 or float64). Errors (the
/// same on every rank): layout or dtype, k outside 1..=n, max_iter/n_init < 1, tol < 0, initial
/// centroids of the wrong shape.
pub fn fit(x: &DNDarray, opts: &KMeansOptions) -> Result<KMeansModel> {
    let comm = x.comm();
    comm.agree(validate(x, opts))?;
    // scikit-learn's tolerance: tol × the mean column variance (no pass over the rows for 0).
    let tol = if opts.tol > 0.0 {
        opts.tol * mean_column_variance(x)?
    } else {
        0.0
    };
    let runs = if matches!(opts.init, Init::Centroids(_)) {
        1
    } else {
        opts.n_init
    };
    let mut best: Option<KMeansModel> = None;
    for run in 0..runs {
        let seed = opts.seed.wrapping_add(run as u64);
        let model = lloyd(x, opts, seed, tol)?;
        // Lower by more than rounding (sums in another order differ in the last bits): ties
        // keep the earlier run, so the winner does not depend on how the rows are split.
        if best.as_ref().is_none_or(|b| model.inertia < b.inertia * (1.0 - 1e-9)) {
            best = Some(model);
        }
    }
    best.ok_or_else(|| EngineError::arg(OP, "no run"))
}

/// Collective. One run: initialisation, Lloyd iterations, the final assignment.
fn lloyd(x: &DNDarray, opts: &KMeansOptions, seed: u64, tol: f64) -> Result<KMeansModel> {
    let k = opts.k;
    let mut centers = match &opts.init {
        Init::Centroids(c) => c.to_kind(Kind::Double).moved_to(tch::Device::Cpu),
        Init::Random => rows_at(x, &distinct_rows(x.gshape()[0], k, seed))?,
        Init::PlusPlus => plus_plus(x, k, seed)?,
        Init::Parallel { rounds, oversampling } => parallel(x, k, *rounds, *oversampling, seed)?,
    };
    let mut iterations = 0;
    let mut converged = false;
    while iterations < opts.max_iter {
        let pass = assign(x, &centers)?;
        let mut new = &pass.sums / pass.counts.clamp_min(1.0).unsqueeze(1);
        reseed_empty(x, &centers, &mut new, &pass.counts)?;
        let shift = (&new - &centers).square().sum(Kind::Double).double_value(&[]);
        centers = new;
        iterations += 1;
        if opts.progress {
            let inertia = pass.inertia.sum(Kind::Double).double_value(&[]);
            crate::progress::report(
                "kmeans",
                iterations as u64,
                Some(opts.max_iter as u64),
                &format!("inertia {inertia:.6e}"),
            );
        }
        if shift <= tol {
            converged = true;
            break;
        }
    }
    if opts.progress {
        crate::progress::finish("kmeans");
    }
    let last = assign(x, &centers)?;
    let sizes: Vec<i64> = Vec::<f64>::try_from(&last.counts)
        .map_err(EngineError::from)?
        .iter()
        .map(|c| *c as i64)
        .collect();
    let cluster_inertia: Vec<f64> = Vec::<f64>::try_from(&last.inertia).map_err(EngineError::from)?;
    Ok(KMeansModel {
        inertia: cluster_inertia.iter().sum(),
        centroids: centers,
        sizes,
        cluster_inertia,
        iterations,
        converged,
        seed,
    })
}

/// Collective. Each row's nearest centroid (first on ties) and its Euclidean distance, split
/// like `x` (n, int64 and f64). `centroids` is k × d, replicated.
pub fn predict(x: &DNDarray, centroids: &Tensor) -> Result<(DNDarray, DNDarray)> {
    let comm = x.comm();
    let d = x.gshape().get(1).copied().unwrap_or(0);
    comm.agree(
        if x.ndim() != 2 || x.split() != Some(0) || centroids.size().get(1) != Some(&d) {
            Err(EngineError::shape(
                OP,
                format!(
                    "expected rows × {} columns split along rows, got shape {:?} split {:?}",
                    centroids.size().get(1).copied().unwrap_or(0),
                    x.gshape(),
                    x.split()
                ),
            ))
        } else {
            Ok(())
        },
    )?;
    let need = Need {
        labels: true,
        sq: true,
        ..Need::default()
    };
    let local = local_pass(x.local(), centroids, need)
        .and_then(|p| Ok((p.labels.unwrap_or_default(), p.sq.unwrap_or_default().f_sqrt()?)));
    let (labels, dists) = comm.agree(local)?;
    Ok((
        DNDarray::from_pieces_in(comm, labels, 0)?,
        DNDarray::from_pieces_in(comm, dists, 0)?,
    ))
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;
    use crate::kernels::{Policy, with_policy};

    #[test]
    fn tensor_only_pass_matches_the_kernel() {
        tch::manual_seed(13);
        let x = Tensor::randn([5000, 9], (Kind::Double, Device::Cpu));
        let c = Tensor::randn([6, 9], (Kind::Double, Device::Cpu));
        let need = Need {
            labels: true,
            sq: true,
            totals: true,
        };
        // Row-major, column-major (as tables load) and f32 rows.
        for rows in [x.shallow_clone(), x.tr().contiguous().tr(), x.to_kind(Kind::Float)] {
            let auto = with_policy(Policy::Auto, || local_pass(&rows, &c, need)).expect("kernel");
            let tensor = with_policy(Policy::TensorOnly, || local_pass(&rows, &c, need)).expect("tensor path");
            let (al, tl) = (auto.labels.expect("labels"), tensor.labels.expect("labels"));
            assert!(al.equal(&tl), "labels of {:?} strides {:?}", rows.kind(), rows.stride());
            for (a, t, tol) in [
                (auto.sq.expect("sq"), tensor.sq.expect("sq"), 1e-12),
                (auto.totals.expect("totals"), tensor.totals.expect("totals"), 1e-10),
            ] {
                let err = (&a - &t).abs().max().double_value(&[]);
                assert!(err <= tol * (1.0 + t.abs().max().double_value(&[])), "{err}");
            }
        }
    }
}
