//! One sign convention for singular vectors and principal axes.
//!
//! A singular vector is defined up to its sign. heatsql fixes it so results are the same at
//! every rank count and for every solver: in each column of `v` (d × k, one column per
//! component), the entry of largest magnitude is positive (the first such entry on ties).
//! The same flip applied to the matching left vectors (or scores) keeps `u · s · vᵀ` intact.

use tch::{Kind, Tensor};

/// The signs (±1, a length-k tensor of `v`'s dtype) that make each column of `v` (d × k) have
/// a positive entry of largest magnitude, and `v` with them applied.
pub fn flip_signs(v: &Tensor) -> (Tensor, Tensor) {
    if v.numel() == 0 {
        let k = v.size().get(1).copied().unwrap_or(0);
        return (Tensor::ones([k], (v.kind(), v.device())), v.shallow_clone());
    }
    let idx = v.abs().argmax(0, false);
    let at = v.gather(0, &idx.unsqueeze(0), false).squeeze_dim(0);
    let signs = at.ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0;
    let signs = signs.to_kind(v.kind());
    let flipped = v * signs.unsqueeze(0);
    (signs, flipped)
}
