//! Layouts: which entries of the split axis each rank holds, and moving between layouts
//! (balance, redistribute, resplit, gather).

use tch::Tensor;

use super::DNDarray;
use crate::error::{EngineError, Result};

/// The balanced layout of `n` entries over `p` ranks: the first `n % p` ranks hold one more.
pub fn balanced_counts(n: i64, p: usize) -> Vec<i64> {
    let p = p.max(1) as i64;
    (0..p).map(|r| n / p + i64::from(r < n % p)).collect()
}

/// Exclusive prefix sums of `counts`: where each rank's slab starts.
pub fn offsets(counts: &[i64]) -> Vec<i64> {
    counts
        .iter()
        .scan(0i64, |acc, &c| {
            let o = *acc;
            *acc += c;
            Some(o)
        })
        .collect()
}

/// The overlap of `[a, a + la)` and `[b, b + lb)` as `(start, len)`, relative to `a`.
fn overlap(a: i64, la: i64, b: i64, lb: i64) -> (i64, i64) {
    let lo = a.max(b);
    let hi = (a + la).min(b + lb);
    if hi <= lo { (0, 0) } else { (lo - a, hi - lo) }
}

impl DNDarray {
    /// Collective. Moves to the balanced layout of the split axis (see [`DNDarray::redistribute`]).
    pub fn balance(&self) -> Result<DNDarray> {
        match self.split {
            None => Ok(self.shallow_clone()),
            Some(a) => self.redistribute(&balanced_counts(self.gshape[a], self.comm.size())),
        }
    }

    /// Collective. Moves entries of the split axis so that rank `r` holds `target[r]` of them,
    /// keeping the global order. Only entries whose owner changes travel (one all-to-all);
    /// every rank must pass the same `target` (checked).
    pub fn redistribute(&self, target: &[i64]) -> Result<DNDarray> {
        let op = "DNDarray::redistribute";
        let Some(a) = self.split else {
            return Err(EngineError::arg(
                op,
                "the array is replicated (split none); use resplit to distribute it",
            ));
        };
        let p = self.comm.size();
        if target.len() != p || target.iter().any(|&c| c < 0) || target.iter().sum::<i64>() != self.gshape[a] {
            return Err(EngineError::arg(
                op,
                format!(
                    "target {target:?} must have {p} non-negative counts summing to {} (axis {a})",
                    self.gshape[a]
                ),
            ));
        }
        let all: Vec<i64> = self.comm.allgather(target)?;
        if let Some(r) = (0..p).find(|&r| all[r * p..(r + 1) * p] != all[..p]) {
            return Err(EngineError::arg(
                op,
                format!(
                    "rank {r} asked for target {:?} but rank 0 for {:?}",
                    &all[r * p..(r + 1) * p],
                    &all[..p]
                ),
            ));
        }
        if target == self.counts.as_slice() {
            return Ok(self.shallow_clone());
        }
        let me = self.comm.rank();
        let (mine, toff) = (self.offsets()[me], offsets(target));
        let chunks: Vec<Tensor> = (0..p)
            .map(|s| {
                let (start, len) = overlap(mine, self.counts[me], toff[s], target[s]);
                self.local.narrow(a as i64, start, len)
            })
            .collect();
        let received = self.comm.alltoallv_tensor(&chunks)?;
        let local = Tensor::cat(&received, a as i64);
        Ok(DNDarray::from_parts(
            self.comm,
            self.gshape.clone(),
            Some(a),
            local,
            target.to_vec(),
        ))
    }

    /// Collective. Changes the split axis: `Some(a) → None` allgathers (every rank then holds the
    /// whole array), the current axis keeps the layout, `None → Some(b)` keeps each rank's balanced slab (no communication),
    /// `Some(a) → Some(b)` is one all-to-all in which every rank sends each other rank only the
    /// block it will own (never a full gather). The result is balanced along the new axis.
    pub fn resplit(&self, split: Option<usize>) -> Result<DNDarray> {
        let op = "DNDarray::resplit";
        if let Some(b) = split {
            self.check_axis(op, b)?;
        }
        match (self.split, split) {
            (x, y) if x == y => Ok(self.shallow_clone()),
            (Some(_), None) => Ok(DNDarray::from_parts(
                self.comm,
                self.gshape.clone(),
                None,
                self.allgather()?,
                Vec::new(),
            )),
            (None, Some(b)) => DNDarray::from_replicated_in(self.comm, &self.local, Some(b)),
            (Some(a), Some(b)) => {
                let p = self.comm.size();
                let target = balanced_counts(self.gshape[b], p);
                let toff = offsets(&target);
                let chunks: Vec<Tensor> = (0..p)
                    .map(|s| self.local.narrow(b as i64, toff[s], target[s]))
                    .collect();
                let received = self.comm.alltoallv_tensor(&chunks)?;
                let local = Tensor::cat(&received, a as i64);
                Ok(DNDarray::from_parts(
                    self.comm,
                    self.gshape.clone(),
                    Some(b),
                    local,
                    target,
                ))
            }
            _ => unreachable!("all split pairs are covered"),
        }
    }

    /// Collective. The whole array on `root` (`None` on the other ranks).
    pub fn gather(&self, root: usize) -> Result<Option<Tensor>> {
        match self.split {
            None => Ok((self.comm.rank() == root).then(|| self.local.shallow_clone())),
            Some(a) => {
                let t = self.local.movedim(a as i64, 0);
                Ok(self.comm.gatherv_tensor(&t, root)?.map(|g| g.movedim(0, a as i64)))
            }
        }
    }

    /// Collective. The whole array on every rank.
    pub fn allgather(&self) -> Result<Tensor> {
        match self.split {
            None => Ok(self.local.shallow_clone()),
            Some(a) => {
                let t = self.local.movedim(a as i64, 0);
                Ok(self.comm.allgatherv_tensor(&t)?.movedim(0, a as i64))
            }
        }
    }

    /// Local. Swaps axes `d0` and `d1`: the local tensor is transposed and the split axis is
    /// relabelled; no data moves.
    pub fn transpose(&self, d0: usize, d1: usize) -> Result<DNDarray> {
        let op = "DNDarray::transpose";
        self.check_axis(op, d0)?;
        self.check_axis(op, d1)?;
        let mut gshape = self.gshape.clone();
        gshape.swap(d0, d1);
        let split = self.split.map(|s| {
            if s == d0 {
                d1
            } else if s == d1 {
                d0
            } else {
                s
            }
        });
        let local = self.local.transpose(d0 as i64, d1 as i64);
        Ok(DNDarray::from_parts(
            self.comm,
            gshape,
            split,
            local,
            self.counts.clone(),
        ))
    }

    /// Local. The transpose of a 2-dimensional array (rows × columns → columns × rows; a row
    /// split becomes a column split).
    pub fn t(&self) -> Result<DNDarray> {
        if self.ndim() != 2 {
            return Err(EngineError::shape(
                "DNDarray::t",
                format!("expected 2 dimensions, got {}", self.ndim()),
            ));
        }
        self.transpose(0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_counts_spread_the_remainder_first() {
        assert_eq!(balanced_counts(10, 4), vec![3, 3, 2, 2]);
        assert_eq!(balanced_counts(3, 4), vec![1, 1, 1, 0]);
        assert_eq!(balanced_counts(0, 2), vec![0, 0]);
        assert_eq!(offsets(&[3, 0, 2]), vec![0, 3, 3]);
    }

    #[test]
    fn overlaps() {
        assert_eq!(overlap(0, 5, 3, 4), (3, 2));
        assert_eq!(overlap(3, 4, 0, 5), (0, 2));
        assert_eq!(overlap(0, 2, 5, 1), (0, 0));
    }
}
