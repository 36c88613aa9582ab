//! Multi-rank checks of `engine::comm`, `engine::DNDarray`, `engine::linalg` and `engine::ml`
//! against tch on the whole array (the `engine-mpi-checks` program).
//!
//! Run under `mpirun -n P` (P = 1..4) by `checks/tests/engine.rs`. Every check runs on every
//! rank; the verdict of a check is the AND over ranks; rank 0 prints failures and a summary line
//! `engine checks at P=<p>: <n> passed, <m> failed`. Exit status 0 only if all passed.
//!
//! Suites: `all` (default; `--only PREFIX` runs the [`SUBJECTS`] it selects), `digest SEED`
//! ([`digest`]: prints a digest of a seeded random array, to compare across P), `fail-matmul`,
//! `fail-pieces` ([`fail`]: one rank fails inside an operation; every rank must report the same
//! error and exit with status 3).

pub mod comm;
pub mod digest;
pub mod dmd;
pub mod dndarray;
pub mod fail;
pub mod kmeans;
pub mod linalg;
pub mod pca;

use engine::dndarray::{balanced_counts, offsets};
use engine::{Comm, DNDarray};
use tch::{Device, Kind, Tensor};

use crate::checker::Checker;

/// A subject: its name (the prefix of its checks' names) and the function that checks it.
pub type Subject = (&'static str, fn(&mut Checker));

/// The subjects of `engine-mpi-checks all`, in the order they run.
pub const SUBJECTS: [Subject; 13] = [
    ("comm", comm::check),
    ("pca", pca::check),
    ("kmeans", kmeans::check),
    ("linalg/matmul", linalg::check_matmul),
    ("linalg/tsqr", linalg::check_tsqr),
    ("linalg/svd", linalg::check_svd),
    ("dmd", dmd::check),
    ("dndarray/layouts", dndarray::check_layouts),
    ("dndarray/reductions", dndarray::check_reductions),
    ("dndarray/binary", dndarray::check_binary),
    ("dndarray/matmul", dndarray::check_matmul),
    ("dndarray/factory", dndarray::check_factories),
    ("dndarray/pieces", dndarray::check_pieces_errors),
];

/// Collective. Runs every subject that `c` selects, in order.
pub fn run(c: &mut Checker) {
    for (name, check) in SUBJECTS {
        if c.subject(name) {
            check(c);
        }
    }
}

/// f64 on the CPU.
pub(crate) const F64: (Kind, Device) = (Kind::Double, Device::Cpu);
/// f32 on the CPU.
pub(crate) const F32: (Kind, Device) = (Kind::Float, Device::Cpu);

/// Per-rank counts of `n` entries for a named layout at P ranks (rank-independent).
pub(crate) fn layout(name: &str, n: i64, p: usize) -> Vec<i64> {
    let mut c = vec![0i64; p];
    match name {
        "balanced" => return balanced_counts(n, p),
        "first" => c[0] = n,
        "last" => c[p - 1] = n,
        // Rank r gets a share proportional to r (rank 0 gets none), the rest to the last rank.
        _ => {
            let w: i64 = (0..p as i64).sum();
            for (r, x) in c.iter_mut().enumerate() {
                *x = if w == 0 { 0 } else { n * r as i64 / w };
            }
            let rest = n - c.iter().sum::<i64>();
            c[p - 1] += rest;
        }
    }
    c
}

/// The named row layouts of [`layout`].
pub(crate) const LAYOUTS: [&str; 4] = ["balanced", "first", "last", "ramp"];

/// This rank's piece of `x` along `split` for `counts`, as a DNDarray.
pub(crate) fn pieces(comm: &Comm, x: &Tensor, split: usize, counts: &[i64]) -> engine::Result<DNDarray> {
    let off = offsets(counts)[comm.rank()];
    DNDarray::from_pieces(x.narrow(split as i64, off, counts[comm.rank()]), split)
}

/// A standard normal `shape` drawn in f64 with `seed` (tch's generator), cast to `kind`.
pub(crate) fn reference(shape: &[i64], seed: i64, kind: Kind) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Double, Device::Cpu)).to_kind(kind)
}
