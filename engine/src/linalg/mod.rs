//! Distributed linear algebra on row-split DNDarrays.
//!
//! * [`tsqr`](mod@tsqr): QR of a tall-skinny (n × d, rows split) array: R replicated, Q row-split.
//! * [`sign`]: the project's sign convention for singular and principal vectors.
//! * [`svd`](mod@svd): truncated SVD (TSQR, randomized, hierarchical).
//! * [`solver`]: the one [`Solver`] type of the SVD and PCA, its defaults and what `Auto`
//!   chooses.
//! * [`matmul`](mod@matmul): products of two row-split arrays (a ring for A·B; Aᵀ·B by one
//!   allreduce).
//!
//! The CPU kernels these call (Gram matrices of prepared rows, tall × small products) are in
//! [`crate::kernels`].

pub mod matmul;
pub mod sign;
pub mod solver;
pub mod svd;
pub mod tsqr;

pub use matmul::{matmul, matmul_tn};
pub use sign::flip_signs;
pub use solver::{DEFAULT_OVERSAMPLES, DEFAULT_POWER_ITER, DEFAULT_SEED, Solver, auto_pca, auto_svd};
pub use svd::{Svd, svd};
pub use tsqr::{QrAlgorithm, tsqr, tsqr_r, tsqr_r_reporting, tsqr_reporting};

use tch::Kind;

use crate::dndarray::DNDarray;
use crate::error::{EngineError, Result};

/// Local. `a` is a 2-dimensional float32/float64 array split along rows, or the error
/// naming `op` and what was expected.
pub(crate) fn check_row_split_float(op: &'static str, a: &DNDarray) -> Result<()> {
    if a.ndim() != 2 || a.split() != Some(0) {
        return Err(EngineError::shape(
            op,
            format!(
                "expected rows × columns split along rows, got shape {:?} split {:?}",
                a.gshape(),
                a.split()
            ),
        ));
    }
    if !matches!(a.kind(), Kind::Float | Kind::Double) {
        return Err(EngineError::arg(
            op,
            format!("dtype {:?}; expected float32 or float64", a.kind()),
        ));
    }
    Ok(())
}
