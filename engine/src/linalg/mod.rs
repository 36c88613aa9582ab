//! Distributed linear algebra on row-split DNDarrays.
//!
//! * [`gram`]: Gram matrices of prepared (centred, triangular-solved) rows in one pass: the
//!   CPU kernels of CholeskyQR2.
//! * [`tsqr`]: QR of a tall-skinny (n × d, rows split) array: R replicated, Q row-split.
//! * [`skinny`]: X · W for a tall local block and a small W in one pass (the U of an SVD).
//! * [`sign`]: the project's sign convention for singular and principal vectors.
//! * [`svd`]: truncated SVD (TSQR, randomized, hierarchical).
//! * [`matmul`]: products of two row-split arrays (a ring for A·B; Aᵀ·B by one allreduce).

pub mod gram;
pub mod matmul;
pub mod sign;
pub mod skinny;
pub mod svd;
pub mod tsqr;

pub use matmul::{matmul, matmul_tn};
pub use sign::flip_signs;
pub use svd::{Method, Svd, svd};
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
