//! Reductions over one axis or over all elements: sum, mean, var, min, max, argmin, argmax.
//!
//! Reducing an axis other than the split axis is local and keeps the split. Reducing the split
//! axis (or all elements of a split array) combines per-rank partial results with one
//! collective and yields a replicated array. Means and variances merge per-rank (count, mean,
//! M2) triples in rank order with Chan's update, which is stable and independent of P up to
//! rounding. Ranks holding zero entries take part without contributing.

use tch::{Kind, Tensor};

use super::DNDarray;
use crate::comm::ReduceOp;
use crate::device::MoveTo;
use crate::error::{EngineError, Result};

/// Whether `k` is a floating-point dtype.
pub(crate) fn is_float(k: Kind) -> bool {
    matches!(k, Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double)
}

/// Extremum kind for min/max/argmin/argmax.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extremum {
    Min,
    Max,
}

impl DNDarray {
    /// Collective. Sum over `axis`, or over all elements when `axis` is `None` (a 0-dimensional
    /// replicated result). Booleans and integers sum to int64.
    pub fn sum(&self, axis: Option<usize>) -> Result<DNDarray> {
        let name = "DNDarray::sum";
        let local = match axis {
            Some(x) => {
                self.check_axis(name, x)?;
                self.comm
                    .agree(self.local.f_sum_dim_intlist(x as i64, false, None::<Kind>))?
            }
            None => self.comm.agree(self.local.f_sum(None::<Kind>))?,
        };
        if self.reduces_split(axis) {
            let total = self.comm.allreduce_tensor(&local, ReduceOp::Sum)?;
            Ok(self.reduced(axis, total, true))
        } else {
            Ok(self.reduced(axis, local, false))
        }
    }

    /// Collective. Arithmetic mean over `axis` (or all elements); floating-point arrays only.
    pub fn mean(&self, axis: Option<usize>) -> Result<DNDarray> {
        Ok(self.moments("DNDarray::mean", axis)?.0)
    }

    /// Collective. Variance over `axis` (or all elements) with `ddof` delta degrees of freedom
    /// (0: population, 1: sample); floating-point arrays only.
    pub fn var(&self, axis: Option<usize>, ddof: i64) -> Result<DNDarray> {
        let (_, m2, n) = self.moments("DNDarray::var", axis)?;
        let denom = (n - ddof) as f64;
        let local = m2.local.f_div_scalar(denom)?;
        Ok(m2.with_local(local))
    }

    /// Collective. Minimum over `axis` (or all elements). NaN propagates.
    pub fn min(&self, axis: Option<usize>) -> Result<DNDarray> {
        self.extremum("DNDarray::min", axis, Extremum::Min)
    }

    /// Collective. Maximum over `axis` (or all elements). NaN propagates.
    pub fn max(&self, axis: Option<usize>) -> Result<DNDarray> {
        self.extremum("DNDarray::max", axis, Extremum::Max)
    }

    /// Collective. Global index of the minimum along `axis` (int64); with `axis = None` the index
    /// into the flattened global array (row-major). Ties give the first index; NaN counts as
    /// the minimum, as in torch.
    pub fn argmin(&self, axis: Option<usize>) -> Result<DNDarray> {
        self.arg_extremum("DNDarray::argmin", axis, Extremum::Min)
    }

    /// Collective. Global index of the maximum along `axis` (int64); see [`DNDarray::argmin`].
    pub fn argmax(&self, axis: Option<usize>) -> Result<DNDarray> {
        self.arg_extremum("DNDarray::argmax", axis, Extremum::Max)
    }

    /// Whether reducing `axis` involves the entries of other ranks.
    fn reduces_split(&self, axis: Option<usize>) -> bool {
        match (self.split, axis) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(s), Some(x)) => s == x,
        }
    }

    /// The result of reducing `axis` given its local tensor; `combined` when the tensor already
    /// holds the global result (replicated).
    fn reduced(&self, axis: Option<usize>, local: Tensor, combined: bool) -> DNDarray {
        let gshape = self.reduced_shape(axis);
        if combined || self.split.is_none() {
            return DNDarray::from_parts(self.comm, gshape, None, local, Vec::new());
        }
        let s = self.split.expect("split array");
        let split = match axis {
            Some(x) if x < s => s - 1,
            _ => s,
        };
        DNDarray::from_parts(self.comm, gshape, Some(split), local, self.counts.clone())
    }

    /// Number of elements reduced into each output element.
    fn reduced_len(&self, axis: Option<usize>) -> i64 {
        match axis {
            Some(x) => self.gshape[x],
            None => self.numel(),
        }
    }

    /// (mean, M2, n): mean and sum of squared deviations over `axis`, and the count n.
    fn moments(&self, name: &'static str, axis: Option<usize>) -> Result<(DNDarray, DNDarray, i64)> {
        if let Some(x) = axis {
            self.check_axis(name, x)?;
        }
        if !is_float(self.kind()) {
            return Err(EngineError::arg(
                name,
                format!("dtype {:?} is not floating point; convert it first", self.kind()),
            ));
        }
        let n = self.reduced_len(axis);
        let dims: Vec<i64> = match axis {
            Some(x) => vec![x as i64],
            None => (0..self.ndim() as i64).collect(),
        };
        let c = match axis {
            Some(x) => self.local.size()[x],
            None => self.local.numel() as i64,
        };
        let zeros_like_out = || {
            self.local
                .f_sum_dim_intlist(dims.as_slice(), false, None::<Kind>)
                .map(|t| t.zeros_like())
        };
        let (mean, m2) = if c == 0 {
            let z = self.comm.agree(zeros_like_out())?;
            (z.shallow_clone(), z)
        } else {
            let mean = self
                .comm
                .agree(self.local.f_mean_dim(dims.as_slice(), true, None::<Kind>))?;
            let dev = (&self.local - &mean).square();
            let m2 = dev.sum_dim_intlist(dims.as_slice(), false, None::<Kind>);
            (mean.squeeze_dims(dims.as_slice()), m2)
        };
        if !self.reduces_split(axis) {
            let m = self.reduced(axis, mean, false);
            let v = self.reduced(axis, m2, false);
            return Ok((m, v, n));
        }
        // Merge (count, mean, M2) over ranks in rank order (Chan et al.).
        let stacked = Tensor::stack(&[mean, m2], 0).unsqueeze(0);
        let all = self.comm.allgatherv_tensor(&stacked)?;
        let per_rank: Vec<i64> = match axis {
            Some(_) => self.counts.clone(),
            None => {
                let s = self.split.expect("split array");
                let rest: i64 = self
                    .gshape
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != s)
                    .map(|(_, &d)| d)
                    .product();
                self.counts.iter().map(|&c| c * rest).collect()
            }
        };
        let (mut na, mut mean_a, mut m2_a) = (0i64, all.get(0).get(0).zeros_like(), all.get(0).get(1).zeros_like());
        for (r, &nb) in per_rank.iter().enumerate() {
            if nb == 0 {
                continue;
            }
            let (mean_b, m2_b) = (all.get(r as i64).get(0), all.get(r as i64).get(1));
            let nt = na + nb;
            let delta = &mean_b - &mean_a;
            mean_a = &mean_a + &delta * (nb as f64 / nt as f64);
            m2_a = &m2_a + m2_b + delta.square() * ((na as f64) * (nb as f64) / nt as f64);
            na = nt;
        }
        Ok((self.reduced(axis, mean_a, true), self.reduced(axis, m2_a, true), n))
    }

    fn extremum(&self, name: &'static str, axis: Option<usize>, which: Extremum) -> Result<DNDarray> {
        self.check_nonempty(name, axis)?;
        let local_part = |t: &Tensor| -> std::result::Result<Tensor, tch::TchError> {
            match (axis, which) {
                (Some(x), Extremum::Min) => t.f_amin(x as i64, false),
                (Some(x), Extremum::Max) => t.f_amax(x as i64, false),
                (None, Extremum::Min) => t.f_min(),
                (None, Extremum::Max) => t.f_max(),
            }
        };
        if !self.reduces_split(axis) {
            let local = self.comm.agree(local_part(&self.local))?;
            return Ok(self.reduced(axis, local, false));
        }
        // Partial results of the ranks that hold entries, stacked in rank order.
        let c = self.local_extent(axis);
        let partial = if c > 0 {
            local_part(&self.local).map(|t| t.unsqueeze(0))
        } else {
            Ok(Tensor::empty(
                self.no_rows_shape(axis).as_slice(),
                (self.kind(), self.device()),
            ))
        };
        let partial = self.comm.agree(partial)?;
        let all = self.comm.allgatherv_tensor(&partial)?;
        // amin/amax propagate NaN, as min/max do.
        let out = match which {
            Extremum::Min => all.f_amin(0, false)?,
            Extremum::Max => all.f_amax(0, false)?,
        };
        Ok(self.reduced(axis, out, true))
    }

    fn arg_extremum(&self, name: &'static str, axis: Option<usize>, which: Extremum) -> Result<DNDarray> {
        self.check_nonempty(name, axis)?;
        let local_arg = |t: &Tensor, x: Option<usize>| -> std::result::Result<Tensor, tch::TchError> {
            match which {
                Extremum::Min => t.f_argmin(x.map(|x| x as i64), false),
                Extremum::Max => t.f_argmax(x.map(|x| x as i64), false),
            }
        };
        if !self.reduces_split(axis) {
            let local = self.comm.agree(local_arg(&self.local, axis))?;
            return Ok(self.reduced(axis, local, false));
        }
        let me = self.comm.rank();
        let s = self.split.expect("split array");
        let off = self.offsets()[me];
        let c = self.local_extent(axis);
        // This rank's best values and their global indices, as one row each (no row when the
        // rank holds no entries).
        let local = if c == 0 {
            let shape = self.no_rows_shape(axis);
            Ok((
                Tensor::empty(shape.as_slice(), (self.kind(), self.device())),
                Tensor::empty(shape.as_slice(), (Kind::Int64, self.device())),
            ))
        } else {
            local_arg(&self.local, axis).map(|li| match axis {
                Some(x) => {
                    let v = self
                        .local
                        .gather(x as i64, &li.unsqueeze(x as i64), false)
                        .squeeze_dim(x as i64);
                    (v.unsqueeze(0), (li + off).unsqueeze(0))
                }
                None => {
                    let flat = li.int64_value(&[]);
                    let v = self.local.flatten(0, -1).get(flat).unsqueeze(0);
                    (
                        v,
                        Tensor::from_slice(&[self.global_flat_index(flat, s, off)]).moved_to(self.device()),
                    )
                }
            })
        };
        let (vals, idx) = self.comm.agree(local)?;
        let all_v = self.comm.allgatherv_tensor(&vals)?;
        let all_i = self.comm.allgatherv_tensor(&idx)?;
        // Fold in rank order: a later candidate wins only if strictly better, or NaN over non-NaN;
        // on ties the lower global index wins.
        let (mut best_v, mut best_i) = (all_v.get(0), all_i.get(0));
        for r in 1..all_v.size()[0] {
            let (v, i) = (all_v.get(r), all_i.get(r));
            let better = match which {
                Extremum::Min => v.lt_tensor(&best_v),
                Extremum::Max => v.gt_tensor(&best_v),
            };
            let better = if is_float(self.kind()) {
                better
                    .logical_or(&v.isnan().logical_and(&best_v.isnan().logical_not()))
                    .logical_and(&best_v.isnan().logical_not())
            } else {
                better
            };
            let tie = v.eq_tensor(&best_v).logical_and(&i.lt_tensor(&best_i));
            let take = better.logical_or(&tie);
            best_v = v.where_self(&take, &best_v);
            best_i = i.where_self(&take, &best_i);
        }
        Ok(self.reduced(axis, best_i, true))
    }

    /// Shape of a stack of zero partial results of reducing `axis` (0 × the result's shape).
    fn no_rows_shape(&self, axis: Option<usize>) -> Vec<i64> {
        std::iter::once(0).chain(self.reduced_shape(axis)).collect()
    }

    /// Global shape of the result of reducing `axis` (all elements: a scalar).
    fn reduced_shape(&self, axis: Option<usize>) -> Vec<i64> {
        match axis {
            None => Vec::new(),
            Some(x) => self
                .gshape
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != x)
                .map(|(_, &d)| d)
                .collect(),
        }
    }

    /// Entries this rank contributes along `axis` (all its elements for `None`).
    fn local_extent(&self, axis: Option<usize>) -> i64 {
        match axis {
            Some(x) => self.local.size()[x],
            None => self.local.numel() as i64,
        }
    }

    /// The row-major index in the global array of this rank's local flat index `flat`.
    fn global_flat_index(&self, flat: i64, split: usize, offset: i64) -> i64 {
        let lshape = self.local.size();
        let mut rem = flat;
        let mut idx = vec![0i64; lshape.len()];
        for d in (0..lshape.len()).rev() {
            idx[d] = rem % lshape[d];
            rem /= lshape[d];
        }
        idx[split] += offset;
        idx.iter().zip(&self.gshape).fold(0i64, |acc, (&i, &g)| acc * g + i)
    }

    fn check_nonempty(&self, name: &'static str, axis: Option<usize>) -> Result<()> {
        if let Some(x) = axis {
            self.check_axis(name, x)?;
        }
        if self.reduced_len(axis) == 0 {
            return Err(EngineError::shape(name, "cannot reduce an empty axis (zero entries)"));
        }
        Ok(())
    }
}
