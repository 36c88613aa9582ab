//! Errors agreed over the ranks, with their kind.
//!
//! A collective step must fail on every rank when it fails on one ([`engine::Comm::agree`]).
//! [`agree`] does that for DataFusion results: every rank returns the error of the lowest
//! failing rank as an [`AgreedError`], which keeps the error's kind (a planning error stays a
//! planning error, an execution error an execution error) and its own message, so it is not
//! wrapped again ("Execution error: Execution error: …") on the ranks that did not raise it.

use datafusion::error::DataFusionError;
use engine::{Comm, CommError};

/// What kind of DataFusion error an agreed error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An error while planning (`DataFusionError::Plan`): bad SQL, bad arguments.
    Plan,
    /// An error while executing (`DataFusionError::Execution`).
    Execution,
    /// Memory or disk ran out (`DataFusionError::ResourcesExhausted`).
    ResourcesExhausted,
    /// A feature heatsql or DataFusion does not have (`DataFusionError::NotImplemented`).
    NotImplemented,
    /// Any other error, carried by its message.
    Other,
}

impl ErrorKind {
    /// The kind of `e` and its own message (without the kind's prefix).
    pub fn of(e: &DataFusionError) -> (ErrorKind, String) {
        match e {
            DataFusionError::Plan(m) => (ErrorKind::Plan, m.clone()),
            DataFusionError::Execution(m) => (ErrorKind::Execution, m.clone()),
            DataFusionError::ResourcesExhausted(m) => (ErrorKind::ResourcesExhausted, m.clone()),
            DataFusionError::NotImplemented(m) => (ErrorKind::NotImplemented, m.clone()),
            DataFusionError::External(inner) => match inner.downcast_ref::<AgreedError>() {
                Some(a) => (a.kind, a.message.clone()),
                None => (ErrorKind::Other, e.to_string()),
            },
            other => (ErrorKind::Other, other.to_string()),
        }
    }

    /// One byte for the kind on the wire.
    fn tag(self) -> char {
        match self {
            ErrorKind::Plan => 'P',
            ErrorKind::Execution => 'E',
            ErrorKind::ResourcesExhausted => 'R',
            ErrorKind::NotImplemented => 'N',
            ErrorKind::Other => 'O',
        }
    }

    fn from_tag(tag: Option<char>) -> ErrorKind {
        match tag {
            Some('P') => ErrorKind::Plan,
            Some('E') => ErrorKind::Execution,
            Some('R') => ErrorKind::ResourcesExhausted,
            Some('N') => ErrorKind::NotImplemented,
            _ => ErrorKind::Other,
        }
    }
}

/// An error one rank raised, now known to every rank.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgreedError {
    /// The lowest rank that failed.
    pub rank: usize,
    /// The error's kind.
    pub kind: ErrorKind,
    /// The error's own message.
    pub message: String,
}

impl From<AgreedError> for DataFusionError {
    fn from(e: AgreedError) -> Self {
        match e.kind {
            ErrorKind::Plan => DataFusionError::Plan(e.message),
            ErrorKind::Execution | ErrorKind::Other => DataFusionError::Execution(e.message),
            ErrorKind::ResourcesExhausted => DataFusionError::ResourcesExhausted(e.message),
            ErrorKind::NotImplemented => DataFusionError::NotImplemented(e.message),
        }
    }
}

/// How an error travels in [`Comm::agree`]'s message: its kind's tag, then its message.
struct Wire(ErrorKind, String);

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0.tag(), self.1)
    }
}

/// Collective. `local` on every rank if every rank passed `Ok`; otherwise every rank returns
/// the lowest failing rank's error, of its kind and with its message.
pub fn agree<T>(comm: &Comm, local: datafusion::error::Result<T>) -> datafusion::error::Result<T> {
    let local = local.map_err(|e| {
        let (kind, message) = ErrorKind::of(&e);
        Wire(kind, message)
    });
    match comm.agree(local) {
        Ok(v) => Ok(v),
        Err(CommError::Agreed { rank, message }) => {
            let mut chars = message.chars();
            let kind = ErrorKind::from_tag(chars.next());
            Err(AgreedError {
                rank,
                kind,
                message: chars.as_str().to_string(),
            }
            .into())
        }
        Err(other) => Err(comm_error(other)),
    }
}

/// An error of the comm layer as a DataFusion error. An agreed error of another type (an
/// engine or conversion error: their messages carry no kind) becomes an execution error with
/// the failing rank's message.
pub fn comm_error(e: CommError) -> DataFusionError {
    match e {
        CommError::Agreed { message, .. } => DataFusionError::Execution(message),
        other => DataFusionError::External(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_survive_the_wire() {
        for e in [
            DataFusionError::Plan("pca: k = 0 is out of range".into()),
            DataFusionError::Execution("query cancelled on rank 1".into()),
            DataFusionError::ResourcesExhausted("no memory".into()),
            DataFusionError::NotImplemented("recursive".into()),
        ] {
            let (kind, message) = ErrorKind::of(&e);
            let text = Wire(kind, message.clone()).to_string();
            let mut chars = text.chars();
            assert_eq!(ErrorKind::from_tag(chars.next()), kind);
            assert_eq!(chars.as_str(), message);
            let back: DataFusionError = AgreedError { rank: 0, kind, message }.into();
            assert_eq!(back.to_string(), e.to_string());
        }
    }

    #[test]
    fn other_errors_keep_their_text_and_agreed_errors_are_not_wrapped_again() {
        let e = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::ComputeError("x".into())),
            None,
        );
        assert_eq!(ErrorKind::of(&e), (ErrorKind::Other, e.to_string()));
        let agreed = AgreedError {
            rank: 2,
            kind: ErrorKind::Plan,
            message: "bad".into(),
        };
        let wrapped = DataFusionError::External(Box::new(agreed));
        assert_eq!(ErrorKind::of(&wrapped), (ErrorKind::Plan, "bad".to_string()));
    }
}
