//! Element-wise binary operations on aligned layouts.

use tch::Tensor;

use super::DNDarray;
use crate::error::{EngineError, Result};

/// An element-wise binary operation (NumPy/torch type promotion applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b` (true division)
    Div,
    /// element-wise maximum
    Maximum,
    /// element-wise minimum
    Minimum,
}

impl BinaryOp {
    fn apply(self, a: &Tensor, b: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
        match self {
            BinaryOp::Add => a.f_add(b),
            BinaryOp::Sub => a.f_sub(b),
            BinaryOp::Mul => a.f_mul(b),
            BinaryOp::Div => a.f_div(b),
            BinaryOp::Maximum => a.f_maximum(b),
            BinaryOp::Minimum => a.f_minimum(b),
        }
    }
}

impl DNDarray {
    /// Collective. `op` applied element by element to two arrays of the same global shape.
    ///
    /// The result takes `self`'s layout, or `other`'s when `self` is replicated and `other` is
    /// not. A replicated operand is sliced locally; an operand split along the same axis with
    /// other counts is redistributed; one split along another axis is resplit (all-to-all).
    pub fn binary(&self, other: &DNDarray, op: BinaryOp) -> Result<DNDarray> {
        let name = "DNDarray::binary";
        if self.gshape != other.gshape {
            return Err(EngineError::shape(
                name,
                format!("shapes {:?} and {:?} differ", self.gshape, other.gshape),
            ));
        }
        if self.split.is_none() && other.split.is_some() {
            let lhs = other.align(self)?;
            let out = self.comm.agree(op.apply(&lhs, &other.local))?;
            return Ok(DNDarray::from_parts(
                self.comm,
                other.gshape.clone(),
                other.split,
                out,
                other.counts.clone(),
            ));
        }
        let rhs = self.align(other)?;
        let out = self.comm.agree(op.apply(&self.local, &rhs))?;
        Ok(DNDarray::from_parts(
            self.comm,
            self.gshape.clone(),
            self.split,
            out,
            self.counts.clone(),
        ))
    }

    /// `self + other` (see [`DNDarray::binary`]).
    pub fn add(&self, other: &DNDarray) -> Result<DNDarray> {
        self.binary(other, BinaryOp::Add)
    }

    /// `self - other` (see [`DNDarray::binary`]).
    pub fn sub(&self, other: &DNDarray) -> Result<DNDarray> {
        self.binary(other, BinaryOp::Sub)
    }

    /// `self * other` element-wise (see [`DNDarray::binary`]).
    pub fn mul(&self, other: &DNDarray) -> Result<DNDarray> {
        self.binary(other, BinaryOp::Mul)
    }

    /// `self / other` element-wise (see [`DNDarray::binary`]).
    pub fn div(&self, other: &DNDarray) -> Result<DNDarray> {
        self.binary(other, BinaryOp::Div)
    }

    /// Collective. `other`'s local tensor in `self`'s layout (same global shape assumed).
    fn align(&self, other: &DNDarray) -> Result<Tensor> {
        match (self.split, other.split) {
            (None, None) => Ok(other.local.shallow_clone()),
            (Some(a), None) => {
                let me = self.comm.rank();
                Ok(other.local.narrow(a as i64, self.offsets()[me], self.counts[me]))
            }
            (Some(a), Some(b)) => {
                let moved = if a == b {
                    other.shallow_clone()
                } else {
                    other.resplit(Some(a))?
                };
                Ok(moved.redistribute(&self.counts)?.into_local())
            }
            (None, Some(_)) => Ok(other.allgather()?),
        }
    }
}
