//! The engine's error type. Library code returns these and never panics on user input.

use crate::comm::CommError;

/// Errors raised by the engine (communication, shapes, arguments, libtorch).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A communication failure, or an error agreed across ranks (see [`crate::Comm::agree`]).
    #[error(transparent)]
    Comm(#[from] CommError),
    /// Shapes or layouts that do not fit the operation.
    #[error("{op}: {message}")]
    Shape {
        /// The operation that refused its input.
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// An argument outside its domain (an axis, a count, a dtype, a device).
    #[error("{op}: {message}")]
    Argument {
        /// The operation that refused its argument.
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl EngineError {
    pub(crate) fn shape(op: &'static str, message: impl Into<String>) -> Self {
        EngineError::Shape {
            op,
            message: message.into(),
        }
    }
    pub(crate) fn arg(op: &'static str, message: impl Into<String>) -> Self {
        EngineError::Argument {
            op,
            message: message.into(),
        }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
