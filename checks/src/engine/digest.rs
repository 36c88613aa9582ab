//! `engine-mpi-checks digest SEED`: a digest of seeded random arrays, to compare across P
//! (seeded random arrays are the same at every rank count).

use engine::{Comm, DNDarray};
use tch::{Kind, Tensor};

use super::F64;

/// Collective. Rank 0 prints `digest split=… sum=… weighted=…` for a 23 × 7 random array drawn
/// with `seed` in every split.
pub fn run(comm: &Comm, seed: u64) {
    for split in [Some(0), Some(1), None] {
        let a = DNDarray::randn(&[23, 7], split, seed, F64).expect("randn");
        let g = a.allgather().expect("allgather");
        let sum = g.sum(None::<Kind>).double_value(&[]);
        let wsum = (&g * Tensor::arange(23 * 7, F64).reshape([23, 7]))
            .sum(None::<Kind>)
            .double_value(&[]);
        if comm.rank() == 0 {
            println!("digest split={split:?} sum={sum:.17e} weighted={wsum:.17e}");
        }
    }
}
