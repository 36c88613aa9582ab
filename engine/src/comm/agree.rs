//! Agreement: an error on any rank becomes the same error on every rank.

use super::collectives::ReduceOp;
use super::{Comm, CommError};

impl Comm {
    /// Collective. Returns `Ok(value)` on every rank if every rank passed `Ok`; otherwise every
    /// rank (the failing ones included) returns [`CommError::Agreed`] naming the lowest failing
    /// rank and its message. Costs one allreduce of one integer, plus one broadcast on failure.
    pub fn agree<T, E: std::fmt::Display>(&self, local: Result<T, E>) -> Result<T, CommError> {
        let flag = match &local {
            Ok(_) => self.size as u64,
            Err(_) => self.rank as u64,
        };
        let first = self.allreduce(&[flag], ReduceOp::Min)?[0] as usize;
        if first == self.size {
            return Ok(local.unwrap_or_else(|_| unreachable!("no rank failed")));
        }
        let message = match &local {
            Err(e) if self.rank == first => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        let message = self.bcast_vec(message, first)?;
        Err(CommError::Agreed {
            rank: first,
            message: String::from_utf8_lossy(&message).into_owned(),
        })
    }

    /// Like [`Comm::agree`], but an error that is itself an agreed error keeps its first rank
    /// and message instead of being wrapped again.
    pub fn agree_nested<T>(&self, local: Result<T, crate::EngineError>) -> Result<T, crate::EngineError> {
        match local {
            Err(crate::EngineError::Comm(e @ CommError::Agreed { .. })) => Err(e.into()),
            other => self.agree(other).map_err(Into::into),
        }
    }
}
