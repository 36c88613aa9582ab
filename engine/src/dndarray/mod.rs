//! The distributed n-dimensional array (after Heat's DNDarray).
//!
//! A [`DNDarray`] has a global shape, at most one split axis and, on every rank, a local
//! `tch::Tensor`. With `split = Some(a)` rank `r` holds the contiguous slab
//! `offsets[r] .. offsets[r] + counts[r]` of axis `a` (ranks in order; a rank may hold zero);
//! with `split = None` every rank holds the whole array (replicated). The layout is *balanced*
//! when the first `n % P` ranks hold `n / P + 1` entries and the others `n / P`.
//!
//! Every method is collective unless its documentation says "local": all ranks call it, in the
//! same order. Errors are agreed: when one rank fails, every rank returns the same error.

mod elementwise;
mod factories;
mod layout;
mod matmul;
mod reduce;

use std::fmt;

use tch::{Device, Kind, Tensor};

use crate::comm::Comm;
use crate::device::MoveTo;
use crate::error::{EngineError, Result};

pub use elementwise::BinaryOp;
pub use layout::{balanced_counts, offsets};

/// A distributed n-dimensional array: global shape, split axis, local tensor per rank.
pub struct DNDarray {
    /// Global shape.
    gshape: Vec<i64>,
    /// The distributed axis, or `None` when every rank holds the whole array.
    split: Option<usize>,
    /// This rank's slab (the whole array when replicated).
    local: Tensor,
    /// Entries of the split axis held by each rank (empty when replicated).
    counts: Vec<i64>,
    /// The communicator the array lives on: every collective of its methods runs on it.
    comm: &'static Comm,
}

impl fmt::Debug for DNDarray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DNDarray")
            .field("gshape", &self.gshape)
            .field("split", &self.split)
            .field("counts", &self.counts)
            .field("kind", &self.local.kind())
            .field("device", &self.local.device())
            .finish()
    }
}

impl DNDarray {
    /// Local. Assembles a DNDarray on `comm` from parts already known to form a valid layout.
    pub(crate) fn from_parts(
        comm: &'static Comm,
        gshape: Vec<i64>,
        split: Option<usize>,
        local: Tensor,
        counts: Vec<i64>,
    ) -> Self {
        debug_assert!(split.is_none() || counts.len() == comm.size());
        DNDarray {
            gshape,
            split,
            local,
            counts,
            comm,
        }
    }

    /// Builds a DNDarray on the world communicator split along `split` from each rank's piece;
    /// see [`DNDarray::from_pieces_in`].
    pub fn from_pieces(local: Tensor, split: usize) -> Result<Self> {
        Self::from_pieces_in(Comm::world(), local, split)
    }

    /// Builds a DNDarray on `comm` split along `split` from each rank's piece (the pieces, in
    /// rank order, are the slabs of the global array). Checks across the ranks of `comm` that
    /// every piece has the same dtype, number of dimensions and extents outside the split axis;
    /// a rank may pass a piece with zero entries along `split`.
    pub fn from_pieces_in(comm: &'static Comm, local: Tensor, split: usize) -> Result<Self> {
        let op = "DNDarray::from_pieces";
        let all = comm.allgather_shapes(op, &local)?;
        let (k0, s0) = &all[0];
        if split >= s0.len() {
            return Err(EngineError::arg(
                op,
                format!("split axis {split} is out of range for {} dimensions", s0.len()),
            ));
        }
        for (r, (k, s)) in all.iter().enumerate() {
            if k != k0 {
                return Err(EngineError::shape(
                    op,
                    format!("rank {r} has dtype {k:?} but rank 0 has {k0:?}"),
                ));
            }
            let same_outside = s.len() == s0.len() && (0..s.len()).all(|i| i == split || s[i] == s0[i]);
            if !same_outside {
                return Err(EngineError::shape(
                    op,
                    format!(
                        "rank {r} has shape {s:?} but rank 0 has {s0:?}; pieces must agree outside split axis {split}"
                    ),
                ));
            }
        }
        let counts: Vec<i64> = all.iter().map(|(_, s)| s[split]).collect();
        let mut gshape = s0.clone();
        gshape[split] = counts.iter().sum();
        Ok(DNDarray {
            gshape,
            split: Some(split),
            local,
            counts,
            comm,
        })
    }

    /// Local. Builds a DNDarray on the world communicator from a tensor that every rank holds
    /// in full; see [`DNDarray::from_replicated_in`].
    pub fn from_replicated(t: &Tensor, split: Option<usize>) -> Result<Self> {
        Self::from_replicated_in(Comm::world(), t, split)
    }

    /// Local. Builds a DNDarray on `comm` from a tensor that every rank holds in full (the same
    /// values everywhere), keeping this rank's balanced slab of `split` (`None`: keep it all).
    pub fn from_replicated_in(comm: &'static Comm, t: &Tensor, split: Option<usize>) -> Result<Self> {
        let op = "DNDarray::from_replicated";
        let gshape = t.size();
        match split {
            None => Ok(Self::from_parts(comm, gshape, None, t.shallow_clone(), Vec::new())),
            Some(a) if a >= gshape.len() => Err(EngineError::arg(
                op,
                format!("split axis {a} is out of range for {} dimensions", gshape.len()),
            )),
            Some(a) => {
                let counts = balanced_counts(gshape[a], comm.size());
                let off = offsets(&counts)[comm.rank()];
                let local = t.narrow(a as i64, off, counts[comm.rank()]);
                Ok(Self::from_parts(comm, gshape, Some(a), local, counts))
            }
        }
    }

    /// Global shape.
    pub fn gshape(&self) -> &[i64] {
        &self.gshape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.gshape.len()
    }

    /// Number of elements of the global array.
    pub fn numel(&self) -> i64 {
        self.gshape.iter().product()
    }

    /// The split axis (`None`: replicated).
    pub fn split(&self) -> Option<usize> {
        self.split
    }

    /// This rank's tensor.
    pub fn local(&self) -> &Tensor {
        &self.local
    }

    /// This rank's tensor, consuming the array.
    pub fn into_local(self) -> Tensor {
        self.local
    }

    /// Shape of this rank's tensor.
    pub fn lshape(&self) -> Vec<i64> {
        self.local.size()
    }

    /// Entries of the split axis held by each rank (empty when replicated).
    pub fn counts(&self) -> &[i64] {
        &self.counts
    }

    /// Where each rank's slab starts along the split axis (empty when replicated).
    pub fn offsets(&self) -> Vec<i64> {
        offsets(&self.counts)
    }

    /// Whether the layout is balanced (always true when replicated).
    pub fn is_balanced(&self) -> bool {
        match self.split {
            None => true,
            Some(a) => self.counts == balanced_counts(self.gshape[a], self.comm.size()),
        }
    }

    /// Element type.
    pub fn kind(&self) -> Kind {
        self.local.kind()
    }

    /// Device of the local tensor.
    pub fn device(&self) -> Device {
        self.local.device()
    }

    /// The communicator.
    pub fn comm(&self) -> &'static Comm {
        self.comm
    }

    /// Local. The same array with its local tensor moved to `device`.
    pub fn to_device(&self, device: Device) -> Self {
        self.with_local(self.local.moved_to(device))
    }

    /// Local. The same array with its elements converted to `kind`.
    pub fn to_kind(&self, kind: Kind) -> Self {
        self.with_local(self.local.to_kind(kind))
    }

    /// Local. A shallow copy (the local tensor shares storage).
    pub fn shallow_clone(&self) -> Self {
        self.with_local(self.local.shallow_clone())
    }

    fn with_local(&self, local: Tensor) -> Self {
        DNDarray {
            gshape: self.gshape.clone(),
            split: self.split,
            local,
            counts: self.counts.clone(),
            comm: self.comm,
        }
    }

    fn check_axis(&self, op: &'static str, axis: usize) -> Result<()> {
        if axis < self.ndim() {
            Ok(())
        } else {
            Err(EngineError::arg(
                op,
                format!("axis {axis} is out of range for a {}-dimensional array", self.ndim()),
            ))
        }
    }
}
