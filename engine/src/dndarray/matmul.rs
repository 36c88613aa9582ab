//! Local matrix products with a replicated operand.

use tch::Tensor;

use super::DNDarray;
use crate::comm::ReduceOp;
use crate::device::MoveTo;
use crate::error::{EngineError, Result};

impl DNDarray {
    /// Collective. `self · b` for a 2-dimensional `self` (n × k) and a matrix `b` (k × m) that
    /// every rank holds in full.
    ///
    /// * rows split (split 0): each rank multiplies its rows; the result is n × m, rows split
    ///   with the same counts; no communication.
    /// * columns split (split 1): each rank multiplies its columns by its rows of `b`; one
    ///   allreduce of n × m; the result is replicated.
    /// * replicated: a local product; the result is replicated.
    ///
    /// `b` is checked on every rank; a rank whose `b` does not fit makes every rank fail.
    pub fn matmul(&self, b: &Tensor) -> Result<DNDarray> {
        let name = "DNDarray::matmul";
        self.check_2d(name)?;
        let (n, k) = (self.gshape[0], self.gshape[1]);
        let check = if b.dim() != 2 || b.size()[0] != k {
            Err(EngineError::shape(
                name,
                format!(
                    "cannot multiply {n} × {k} by {:?}: inner dimensions must agree",
                    b.size()
                ),
            ))
        } else if b.kind() != self.kind() {
            Err(EngineError::arg(
                name,
                format!(
                    "dtype {:?} of the operand differs from the array's {:?}",
                    b.kind(),
                    self.kind()
                ),
            ))
        } else {
            Ok(())
        };
        self.comm.agree(check)?;
        let b = b.moved_to(self.device());
        let m = b.size()[1];
        match self.split {
            Some(0) => {
                let out = self.comm.agree(self.local.f_matmul(&b))?;
                Ok(DNDarray::from_parts(
                    self.comm,
                    vec![n, m],
                    Some(0),
                    out,
                    self.counts.clone(),
                ))
            }
            Some(_) => {
                let me = self.comm.rank();
                let rows = b.narrow(0, self.offsets()[me], self.counts[me]);
                let partial = self.comm.agree(self.local.f_matmul(&rows))?;
                let out = self.comm.allreduce_tensor(&partial, ReduceOp::Sum)?;
                Ok(DNDarray::from_parts(self.comm, vec![n, m], None, out, Vec::new()))
            }
            None => {
                let out = self.comm.agree(self.local.f_matmul(&b))?;
                Ok(DNDarray::from_parts(self.comm, vec![n, m], None, out, Vec::new()))
            }
        }
    }

    /// Collective. `a · self` for a matrix `a` (m × n) that every rank holds in full and a
    /// 2-dimensional `self` (n × k).
    ///
    /// * rows split: each rank multiplies its columns of `a` by its rows; one allreduce of m × k;
    ///   the result is replicated (this is how Aᵀ·B-style products avoid moving rows).
    /// * columns split: a local product; the result is m × k, columns split likewise.
    /// * replicated: a local product; the result is replicated.
    pub fn left_matmul(&self, a: &Tensor) -> Result<DNDarray> {
        let name = "DNDarray::left_matmul";
        self.check_2d(name)?;
        let (n, k) = (self.gshape[0], self.gshape[1]);
        let check = if a.dim() != 2 || a.size()[1] != n {
            Err(EngineError::shape(
                name,
                format!(
                    "cannot multiply {:?} by {n} × {k}: inner dimensions must agree",
                    a.size()
                ),
            ))
        } else if a.kind() != self.kind() {
            Err(EngineError::arg(
                name,
                format!(
                    "dtype {:?} of the operand differs from the array's {:?}",
                    a.kind(),
                    self.kind()
                ),
            ))
        } else {
            Ok(())
        };
        self.comm.agree(check)?;
        let a = a.moved_to(self.device());
        let m = a.size()[0];
        match self.split {
            Some(0) => {
                let me = self.comm.rank();
                let cols = a.narrow(1, self.offsets()[me], self.counts[me]);
                let partial = self.comm.agree(cols.f_matmul(&self.local))?;
                let out = self.comm.allreduce_tensor(&partial, ReduceOp::Sum)?;
                Ok(DNDarray::from_parts(self.comm, vec![m, k], None, out, Vec::new()))
            }
            split => {
                let out = self.comm.agree(a.f_matmul(&self.local))?;
                Ok(DNDarray::from_parts(
                    self.comm,
                    vec![m, k],
                    split,
                    out,
                    self.counts.clone(),
                ))
            }
        }
    }

    fn check_2d(&self, name: &'static str) -> Result<()> {
        if self.ndim() == 2 {
            Ok(())
        } else {
            Err(EngineError::shape(
                name,
                format!("expected a 2-dimensional array, got shape {:?}", self.gshape),
            ))
        }
    }
}
