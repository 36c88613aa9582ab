//! Exact dynamic mode decomposition (Tu et al. 2014; PyDMD's `DMD(exact=True)`).
//!
//! Snapshots x₀ … x_{m−1} (each a state of d values), X = [x₀ … x_{m−2}], Y = [x₁ … x_{m−1}]:
//! the best linear map A with Y ≈ A X, projected on the leading r left singular vectors of X
//! (X ≈ U Σ Vᵀ): Ã = Uᵀ Y V Σ⁻¹ (r × r). Its eigenvalues λ are the discrete-time eigenvalues,
//! its eigenvectors W give the exact modes Φ = Y V Σ⁻¹ W, the amplitudes b solve Φ b ≈ x₀ in
//! least squares, and x_k ≈ Re(Φ diag(λᵏ) b) reconstructs (k < m) and forecasts (k ≥ m).
//! Continuous-time eigenvalues: ω = ln(λ) / dt (growth rate Re ω, frequency Im ω / 2π).
//!
//! Two layouts of the data matrix D, both split along rows:
//!
//! * [`Layout::Rows`]: D is m × d, one snapshot per row, in time order (time split across
//!   ranks). X's SVD is the TSQR of D's first m − 1 rows (Dᵀ = X): the R factor (≤ d × d) is
//!   replicated, U (d × r) is replicated and V's rows V_t = x_tᵀ U Σ⁻¹ are computed where x_t
//!   lives. Y V = Σ_t x_{t+1} V_t pairs each row with the next one: a rank's last row meets
//!   the first row of the next rank that has rows (a one-row halo: the first rows of all
//!   ranks, P × d values, are allgathered). One allreduce of d × r. Φ (d × r) is replicated.
//! * [`Layout::Columns`]: D is n × m, one state point per row (state split across ranks, the
//!   large-state case), one snapshot per column. X's SVD: the TSQR of X's rows (R ≤ (m − 1)²),
//!   V (m − 1 × r) replicated, U = X V Σ⁻¹ row-split. Ã from local products Uᵀ Y and one
//!   allreduce. Φ is row-split like D; the amplitudes come from the TSQR of Y V Σ⁻¹ (Φ = Q_B R_B
//!   W, so b solves the small system R_B W b = Q_Bᵀ x₀, one allreduce for Q_Bᵀ x₀).
//!
//! Rank: a number, an energy fraction (the smallest r whose σ² cover it, PyDMD's 0 < svd_rank
//! < 1) or, by default, the optimal hard threshold of Gavish and Donoho (PyDMD's svd_rank = 0).
//! Modes are ordered by |λ| descending, then Im λ descending (a conjugate pair: the positive
//! frequency first); each eigenvector of Ã is scaled to unit norm with its largest entry real
//! and positive, so modes and amplitudes are the same at every P. All arithmetic is f64.

use tch::{Device, Kind, Tensor};

use crate::comm::{Comm, ReduceOp};
use crate::device::MoveTo;
use crate::dndarray::{DNDarray, offsets};
use crate::error::{EngineError, Result};
use crate::linalg::{tsqr, tsqr_r};

const OP: &str = "dmd";

/// Where the snapshots are in the data matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One snapshot per row (m × d), rows in time order.
    Rows,
    /// One state point per row (n × m), one snapshot per column, columns in time order.
    Columns,
}

/// How many modes to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rank {
    /// Exactly this many (1 ≤ r ≤ min(state size, m − 1), and no more than X's numerical rank).
    Fixed(i64),
    /// The fewest whose squared singular values cover this fraction (0 < e ≤ 1) of X's energy.
    Energy(f64),
    /// The optimal hard threshold for singular values (Gavish–Donoho; at least one mode).
    Optimal,
}

/// Options of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DmdOptions {
    /// Which modes to keep.
    pub rank: Rank,
    /// Time between snapshots (for the continuous-time eigenvalues); > 0.
    pub dt: f64,
}

/// A fitted DMD.
#[derive(Debug)]
pub struct Dmd {
    /// The layout the data had.
    pub layout: Layout,
    /// Discrete-time eigenvalues λ (r, complex128), ordered (see the module documentation).
    pub eigenvalues: Tensor,
    /// Amplitudes b (r, complex128): Φ b ≈ x₀ in least squares.
    pub amplitudes: Tensor,
    /// Singular values of X (all min(state size, m − 1) of them, descending, f64).
    pub singular_values: Tensor,
    /// Time between snapshots.
    pub dt: f64,
    /// Number of snapshots m.
    pub snapshots: i64,
    /// Exact modes (complex128): `Rows`: replicated, d × r; `Columns`: this rank's state
    /// points, n_local × r (split like the input).
    pub modes: Tensor,
    /// `Rows`: the global index of this rank's first snapshot and its number of snapshots.
    local_snapshots: (i64, i64),
}

impl Dmd {
    /// The number of modes r.
    pub fn rank(&self) -> i64 {
        self.eigenvalues.size()[0]
    }

    /// Continuous-time eigenvalues ω = ln(λ) / dt (r, complex128).
    pub fn continuous_eigenvalues(&self) -> Tensor {
        self.eigenvalues.log() / self.dt
    }

    /// Local. The model's snapshots x_k = Re(Φ diag(λᵏ) b) at the time indices `k` (0 is the
    /// first snapshot; k ≥ m forecasts): `Rows`: one row per k, len(k) × d; `Columns`: this
    /// rank's state points, n_local × len(k). f64.
    pub fn at(&self, k: &[i64]) -> Result<Tensor> {
        let dev = self.modes.device();
        let pows = powers(&self.eigenvalues, k)?.moved_to(dev); // len(k) × r
        let weighted = self.modes.f_mul(&self.amplitudes.moved_to(dev).unsqueeze(0))?; // state × r
        let x = match self.layout {
            Layout::Rows => pows.f_matmul(&weighted.tr())?,
            Layout::Columns => weighted.f_matmul(&pows.tr())?,
        };
        Ok(x.real().contiguous())
    }

    /// Local. The reconstruction of this rank's part of the input: `Rows`: its snapshots
    /// (n_local × d); `Columns`: its state points at every snapshot (n_local × m).
    pub fn reconstruction(&self) -> Result<Tensor> {
        let k: Vec<i64> = match self.layout {
            Layout::Rows => {
                let (start, len) = self.local_snapshots;
                (start..start + len).collect()
            }
            Layout::Columns => (0..self.snapshots).collect(),
        };
        self.at(&k)
    }

    /// Local. The `steps` snapshots after the last: `Rows`: steps × d (the same on every rank);
    /// `Columns`: this rank's state points, n_local × steps.
    pub fn forecast(&self, steps: i64) -> Result<Tensor> {
        let k: Vec<i64> = (self.snapshots..self.snapshots + steps.max(0)).collect();
        self.at(&k)
    }
}

/// λᵏ for each k (rows) and λ (columns), complex128; 0⁰ = 1.
fn powers(lambda: &Tensor, k: &[i64]) -> Result<Tensor> {
    let kk = Tensor::from_slice(k).to_kind(Kind::Double).unsqueeze(1); // len × 1
    let p = (lambda.log().unsqueeze(0) * kk.to_kind(Kind::ComplexDouble)).exp();
    // log 0 = −∞: λ = 0 gives 0 for k > 0, and 1 at k = 0.
    let zero = lambda.abs().eq(0.0).unsqueeze(0);
    let at0 = kk.eq(0.0);
    let fixed = at0
        .to_kind(Kind::Double)
        .expand([k.len() as i64, lambda.size()[0]], false)
        .to_kind(Kind::ComplexDouble);
    Ok(p.f_where_self(&zero.logical_not(), &fixed)?)
}

/// Collective. Exact DMD of `x` (split along rows; float32 or float64; see [`Layout`]; zero-row
/// ranks allowed). Errors, the same on every rank: layout or dtype, fewer than 2 snapshots,
/// a rank out of range or above X's numerical rank, dt ≤ 0.
pub fn fit(x: &DNDarray, layout: Layout, opts: &DmdOptions) -> Result<Dmd> {
    let comm = x.comm();
    comm.agree(crate::linalg::check_row_split_float(OP, x))?;
    if !(opts.dt.is_finite() && opts.dt > 0.0) {
        return Err(EngineError::arg(
            OP,
            format!("dt = {} must be a positive number", opts.dt),
        ));
    }
    let (rows, cols) = (x.gshape()[0], x.gshape()[1]);
    let (m, state) = match layout {
        Layout::Rows => (rows, cols),
        Layout::Columns => (cols, rows),
    };
    if m < 2 {
        return Err(EngineError::shape(
            OP,
            format!("needs at least 2 snapshots; the input has {m}"),
        ));
    }
    if state < 1 {
        return Err(EngineError::shape(OP, "the snapshots have no values"));
    }
    let counts = x.counts().to_vec();
    let me = comm.rank();
    let start = offsets(&counts)[me];
    let local = comm.agree(x.local().f_to_kind(Kind::Double))?;
    let dev = local.device();
    let n_local = local.size()[0];
    let dmd = match layout {
        Layout::Rows => {
            // X's rows: every snapshot but the last one (which the last rank with rows holds).
            let holds_last = n_local > 0 && start + n_local == rows;
            let x_rows = local.narrow(0, 0, n_local - i64::from(holds_last));
            let r_factor = tsqr_r(&DNDarray::from_pieces_in(comm, x_rows.shallow_clone(), 0)?)?;
            let (_, s, w) = comm.agree(r_factor.f_svd(true, true))?;
            let r = choose_rank(&s, opts.rank, state, m)?;
            let s_all = s.moved_to(Device::Cpu);
            let (s, u) = (s.narrow(0, 0, r), w.narrow(1, 0, r)); // U of X = W (d × r)
            let inv = s.reciprocal();
            // V's rows where the snapshots are, then Σ_t x_{t+1} V_t with the halo row.
            let v_local = comm.agree(x_rows.f_matmul(&(&u * inv.unsqueeze(0))))?; // n' × r
            let firsts = comm.allgatherv_tensor(&local.narrow(0, 0, n_local.min(1)))?;
            let nonempty: Vec<usize> = (0..counts.len()).filter(|&q| counts[q] > 0).collect();
            let next = nonempty.iter().position(|&q| q == me).and_then(|i| nonempty.get(i + 1));
            let y_local = match next {
                Some(&q) => {
                    let at = nonempty.iter().position(|&p| p == q).expect("listed") as i64;
                    Tensor::f_cat(&[&local.narrow(0, 1, n_local - 1), &firsts.narrow(0, at, 1)], 0)?
                }
                None => local.narrow(0, 1.min(n_local), n_local - 1.min(n_local)),
            };
            let yv = comm.agree(y_local.tr().f_matmul(&v_local))?;
            let yv = comm.allreduce_tensor(&yv, ReduceOp::Sum)?; // d × r
            // Replicated and small from here: on the CPU.
            let b_mat = (&yv * inv.unsqueeze(0)).moved_to(Device::Cpu); // Y V Σ⁻¹ (d × r)
            let a_tilde = u.moved_to(Device::Cpu).tr().matmul(&b_mat);
            let (lambda, eig) = eigen(comm, &a_tilde)?;
            let x0 = firsts
                .narrow(0, 0, 1)
                .squeeze_dim(0)
                .moved_to(Device::Cpu)
                .to_kind(Kind::ComplexDouble);
            let modes = b_mat.to_kind(Kind::ComplexDouble).matmul(&eig);
            let amps = comm.agree(
                modes
                    .f_linalg_lstsq(&x0.unsqueeze(1), None, "gelsd")
                    .map(|(sol, _, _, _)| sol.squeeze_dim(1)),
            )?;
            Dmd {
                layout,
                eigenvalues: lambda,
                amplitudes: amps,
                singular_values: s_all,
                dt: opts.dt,
                snapshots: m,
                modes,
                local_snapshots: (start, n_local),
            }
        }
        Layout::Columns => {
            let x_cols = local.narrow(1, 0, m - 1);
            let y_cols = local.narrow(1, 1, m - 1);
            let r_factor = tsqr_r(&DNDarray::from_pieces_in(comm, x_cols.shallow_clone(), 0)?)?;
            let (_, s, w) = comm.agree(r_factor.f_svd(true, true))?; // X = Q U_R Σ Wᵀ: V = W
            let r = choose_rank(&s, opts.rank, state, m)?;
            let s_all = s.moved_to(Device::Cpu);
            let (s, v) = (s.narrow(0, 0, r), w.narrow(1, 0, r)); // V ((m − 1) × r)
            let inv = s.reciprocal();
            let vs = &v * inv.unsqueeze(0); // V Σ⁻¹
            let u_local = comm.agree(x_cols.f_matmul(&vs))?; // n_local × r
            let uty = comm.agree(u_local.tr().f_matmul(&y_cols))?; // r × (m − 1)
            let uty = comm.allreduce_tensor(&uty, ReduceOp::Sum)?;
            let a_tilde = uty.matmul(&vs).moved_to(Device::Cpu);
            let (lambda, eig) = eigen(comm, &a_tilde)?;
            // Φ = B W with B = Y V Σ⁻¹ (row-split); b from B's TSQR.
            let b_local = comm.agree(y_cols.f_matmul(&vs))?;
            let (q_b, r_b) = tsqr(&DNDarray::from_pieces_in(comm, b_local.shallow_clone(), 0)?)?;
            let x0 = local.narrow(1, 0, 1);
            let qtx = comm.agree(q_b.local().tr().f_matmul(&x0))?;
            let qtx = comm.allreduce_tensor(&qtx, ReduceOp::Sum)?; // ≤ r × 1
            let small = r_b.moved_to(Device::Cpu).to_kind(Kind::ComplexDouble).matmul(&eig);
            let qtx = qtx.moved_to(Device::Cpu).to_kind(Kind::ComplexDouble);
            let amps = comm.agree(
                small
                    .f_linalg_lstsq(&qtx, None, "gelsd")
                    .map(|(sol, _, _, _)| sol.squeeze_dim(1)),
            )?;
            let modes = comm.agree(b_local.to_kind(Kind::ComplexDouble).f_matmul(&eig.moved_to(dev)))?;
            Dmd {
                layout,
                eigenvalues: lambda,
                amplitudes: amps,
                singular_values: s_all,
                dt: opts.dt,
                snapshots: m,
                modes,
                local_snapshots: (0, 0),
            }
        }
    };
    Ok(dmd)
}

/// Collective (every rank computes the same). Eigenvalues of Ã (r, complex) and its
/// eigenvectors (r × r), ordered and normalised (see the module documentation).
fn eigen(comm: &Comm, a_tilde: &Tensor) -> Result<(Tensor, Tensor)> {
    let (lambda, w) = comm.agree(a_tilde.moved_to(Device::Cpu).f_linalg_eig())?;
    let re = Vec::<f64>::try_from(lambda.real().contiguous())?;
    let im = Vec::<f64>::try_from(lambda.imag().contiguous())?;
    let mut order: Vec<usize> = (0..re.len()).collect();
    let modulus = |i: usize| re[i].hypot(im[i]);
    order.sort_by(|&a, &b| modulus(b).total_cmp(&modulus(a)).then(im[b].total_cmp(&im[a])));
    let idx = Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let lambda = lambda.index_select(0, &idx);
    let w = w.index_select(1, &idx);
    // Unit columns with the largest entry real and positive.
    let norms = w.abs().square().sum_dim_intlist(0, true, Kind::Double).sqrt();
    let w = &w / norms.to_kind(Kind::ComplexDouble);
    let big = w.abs().argmax(0, true); // 1 × r
    let top = w.gather(0, &big, false);
    let phase = &top / top.abs().to_kind(Kind::ComplexDouble);
    let w = &w * phase.conj_physical();
    Ok((lambda, w))
}

/// The number of modes for `rank` from X's singular values `s` (descending), with X
/// (state × (m − 1)).
fn choose_rank(s: &Tensor, rank: Rank, state: i64, m: i64) -> Result<i64> {
    let s: Vec<f64> = Vec::<f64>::try_from(s.moved_to(Device::Cpu).contiguous())?;
    let q = s.len() as i64;
    let max = s.first().copied().unwrap_or(0.0);
    // Singular values above rounding: the numerical rank of X.
    let tol = max * f64::EPSILON * (state.max(m - 1) as f64);
    let numerical = s.iter().filter(|&&v| v > tol).count() as i64;
    if numerical == 0 {
        return Err(EngineError::arg(
            OP,
            "the snapshots are all zero; there is nothing to decompose",
        ));
    }
    let r = match rank {
        Rank::Fixed(r) => {
            if r < 1 || r > q {
                return Err(EngineError::arg(
                    OP,
                    format!(
                        "rank = {r} is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1) = {q} \
                         ({m} snapshots of {state} values)"
                    ),
                ));
            }
            if r > numerical {
                return Err(EngineError::arg(
                    OP,
                    format!("rank = {r} exceeds the numerical rank of the snapshots ({numerical})"),
                ));
            }
            r
        }
        Rank::Energy(e) => {
            if !(e > 0.0 && e <= 1.0) {
                return Err(EngineError::arg(
                    OP,
                    format!("energy = {e} is out of range; expected 0 < energy ≤ 1"),
                ));
            }
            let total: f64 = s.iter().map(|v| v * v).sum();
            let mut acc = 0.0;
            let mut r = q;
            for (i, v) in s.iter().enumerate() {
                acc += v * v / total;
                if acc >= e {
                    r = i as i64 + 1;
                    break;
                }
            }
            r.min(numerical)
        }
        Rank::Optimal => {
            let (a, b) = (state.min(m - 1) as f64, state.max(m - 1) as f64);
            let beta = a / b;
            let omega = 0.56 * beta.powi(3) - 0.95 * beta.powi(2) + 1.82 * beta + 1.43;
            let mut sorted = s.clone();
            sorted.sort_by(f64::total_cmp);
            let mid = sorted.len() / 2;
            let median = if sorted.len().is_multiple_of(2) {
                (sorted[mid - 1] + sorted[mid]) / 2.0
            } else {
                sorted[mid]
            };
            let tau = median * omega;
            (s.iter().filter(|&&v| v > tau).count() as i64).clamp(1, numerical)
        }
    };
    Ok(r)
}
