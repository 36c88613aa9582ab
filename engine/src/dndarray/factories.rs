//! Arrays created in place: zeros, ones, full, arange and seeded random arrays whose global
//! values do not depend on the number of ranks. Created from nothing, they live on the world
//! communicator.

use tch::{Device, Kind, Tensor};

use super::{DNDarray, balanced_counts, offsets};
use crate::comm::Comm;
use crate::device::MoveTo;
use crate::error::{EngineError, Result};
use crate::rng;

/// This rank's local shape, counts and offset for a balanced layout of `shape` along `split`
/// over the ranks of `comm`.
fn local_layout(
    op: &'static str,
    comm: &Comm,
    shape: &[i64],
    split: Option<usize>,
) -> Result<(Vec<i64>, Vec<i64>, i64)> {
    if let Some(d) = shape.iter().find(|&&d| d < 0) {
        return Err(EngineError::arg(op, format!("negative extent {d} in shape {shape:?}")));
    }
    match split {
        None => Ok((shape.to_vec(), Vec::new(), 0)),
        Some(a) if a >= shape.len() => Err(EngineError::arg(
            op,
            format!("split axis {a} is out of range for {} dimensions", shape.len()),
        )),
        Some(a) => {
            let counts = balanced_counts(shape[a], comm.size());
            let off = offsets(&counts)[comm.rank()];
            let mut lshape = shape.to_vec();
            lshape[a] = counts[comm.rank()];
            Ok((lshape, counts, off))
        }
    }
}

/// Row-major global indices of this rank's elements, in local row-major order.
fn global_indices(shape: &[i64], split: Option<usize>, lshape: &[i64], off: i64) -> impl Iterator<Item = u64> {
    let s = split.unwrap_or(0).min(shape.len().saturating_sub(1));
    let outer: i64 = shape[..s.min(shape.len())].iter().product();
    let (n_s, c) = if shape.is_empty() {
        (1, 1)
    } else {
        (shape[s], lshape[s])
    };
    let inner: i64 = if shape.is_empty() {
        1
    } else {
        shape[s + 1..].iter().product()
    };
    (0..outer).flat_map(move |o| {
        (0..c).flat_map(move |j| (0..inner).map(move |k| (((o * n_s + off + j) * inner) + k) as u64))
    })
}

impl DNDarray {
    /// Local. An array of `value` with global `shape`, balanced along `split`.
    pub fn full(shape: &[i64], value: f64, split: Option<usize>, options: (Kind, Device)) -> Result<DNDarray> {
        let comm = Comm::world();
        let (lshape, counts, _) = local_layout("DNDarray::full", comm, shape, split)?;
        let local = Tensor::f_full(lshape.as_slice(), value, options)?;
        Ok(DNDarray::from_parts(comm, shape.to_vec(), split, local, counts))
    }

    /// Local. An array of zeros (see [`DNDarray::full`]).
    pub fn zeros(shape: &[i64], split: Option<usize>, options: (Kind, Device)) -> Result<DNDarray> {
        Self::full(shape, 0.0, split, options)
    }

    /// Local. An array of ones (see [`DNDarray::full`]).
    pub fn ones(shape: &[i64], split: Option<usize>, options: (Kind, Device)) -> Result<DNDarray> {
        Self::full(shape, 1.0, split, options)
    }

    /// Local. The 1-dimensional array `0, 1, …, n − 1`, balanced along axis 0 (`split = Some(0)`)
    /// or replicated.
    pub fn arange(n: i64, split: Option<usize>, options: (Kind, Device)) -> Result<DNDarray> {
        let comm = Comm::world();
        let (lshape, counts, off) = local_layout("DNDarray::arange", comm, &[n], split)?;
        let local = Tensor::f_arange_start(off, off + lshape[0], options)?;
        Ok(DNDarray::from_parts(comm, vec![n], split, local, counts))
    }

    /// Local. Uniform random numbers in [0, 1). Element `i` (row-major global index) is drawn
    /// from a counter-based stream keyed by `(seed, i)`, so the global array is the same for
    /// every number of ranks. `kind` must be floating point.
    pub fn rand(shape: &[i64], split: Option<usize>, seed: u64, options: (Kind, Device)) -> Result<DNDarray> {
        Self::random("DNDarray::rand", shape, split, seed, options, false)
    }

    /// Local. Standard normal random numbers, rank-count independent like [`DNDarray::rand`].
    pub fn randn(shape: &[i64], split: Option<usize>, seed: u64, options: (Kind, Device)) -> Result<DNDarray> {
        Self::random("DNDarray::randn", shape, split, seed, options, true)
    }

    fn random(
        op: &'static str,
        shape: &[i64],
        split: Option<usize>,
        seed: u64,
        options: (Kind, Device),
        normal: bool,
    ) -> Result<DNDarray> {
        let (kind, device) = options;
        if !matches!(kind, Kind::Float | Kind::Double) {
            return Err(EngineError::arg(
                op,
                format!("dtype {kind:?} is not supported; use Float or Double"),
            ));
        }
        let comm = Comm::world();
        let (lshape, counts, off) = local_layout(op, comm, shape, split)?;
        let idx = global_indices(shape, split, &lshape, off);
        let local = match (kind, normal) {
            (Kind::Float, false) => Tensor::from_slice(&idx.map(|i| rng::uniform_f32(seed, i)).collect::<Vec<f32>>()),
            (Kind::Float, true) => Tensor::from_slice(&idx.map(|i| rng::normal(seed, i) as f32).collect::<Vec<f32>>()),
            (_, false) => Tensor::from_slice(&idx.map(|i| rng::uniform(seed, i)).collect::<Vec<f64>>()),
            (_, true) => Tensor::from_slice(&idx.map(|i| rng::normal(seed, i)).collect::<Vec<f64>>()),
        };
        let local = local.reshape(lshape.as_slice()).moved_to(device);
        Ok(DNDarray::from_parts(comm, shape.to_vec(), split, local, counts))
    }
}
