//! One sign convention for singular vectors and principal axes.
//!
//! A singular vector is defined up to its sign. heatsql fixes it so results are the same at
//! every rank count and for every solver: in each column of `v` (d × k, one column per
//! component), the entry of largest magnitude is positive. Entries within a relative 1e-6 of
//! the largest count as ties, and the first of them decides: equal loadings (duplicated or
//! symmetric features) then get the same sign from every solver and rank count, instead of
//! one chosen by rounding.
//! The same flip applied to the matching left vectors (or scores) keeps `u · s · vᵀ` intact.

use tch::{Kind, Tensor};

/// Entries within this relative distance of a column's largest magnitude are ties.
const TIE: f64 = 1e-6;

/// The signs (±1, a length-k tensor of `v`'s dtype) that make each column of `v` (d × k) have
/// a positive entry of largest magnitude, and `v` with them applied.
pub fn flip_signs(v: &Tensor) -> (Tensor, Tensor) {
    if v.numel() == 0 {
        let k = v.size().get(1).copied().unwrap_or(0);
        return (Tensor::ones([k], (v.kind(), v.device())), v.shallow_clone());
    }
    let mags = v.abs();
    let near = mags.ge_tensor(&(mags.amax([0i64].as_slice(), true) * (1.0 - TIE)));
    // argmax returns the first maximal index: the first near-largest entry.
    let idx = near.to_kind(Kind::Int8).argmax(0, false);
    let at = v.gather(0, &idx.unsqueeze(0), false).squeeze_dim(0);
    let signs = at.ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0;
    let signs = signs.to_kind(v.kind());
    let flipped = v * signs.unsqueeze(0);
    (signs, flipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[f64]) -> Tensor {
        Tensor::from_slice(v).unsqueeze(1)
    }

    #[test]
    fn largest_entry_becomes_positive() {
        let (s, f) = flip_signs(&col(&[0.1, -0.9, 0.3]));
        assert_eq!(Vec::<f64>::try_from(&s).unwrap(), vec![-1.0]);
        assert_eq!(Vec::<f64>::try_from(&f.squeeze()).unwrap(), vec![-0.1, 0.9, -0.3]);
    }

    #[test]
    fn near_ties_are_decided_by_the_first_entry() {
        // -0.5 is the first of two magnitudes equal up to rounding, whichever is larger.
        for v in [[-0.5, 0.5 + 1e-12, 0.1], [-0.5 - 1e-12, 0.5, 0.1], [-0.5, 0.5, 0.1]] {
            let (s, _) = flip_signs(&col(&v));
            assert_eq!(Vec::<f64>::try_from(&s).unwrap(), vec![-1.0], "{v:?}");
        }
        // Beyond the tie tolerance the larger magnitude decides.
        let (s, _) = flip_signs(&col(&[-0.5, 0.5001, 0.1]));
        assert_eq!(Vec::<f64>::try_from(&s).unwrap(), vec![1.0]);
    }
}
