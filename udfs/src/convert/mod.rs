//! Conversions between Arrow record batches and DNDarrays.
//!
//! [`load`] drains this rank's batch stream into the local block of a row-split DNDarray
//! (n_local rows × d feature columns, f64 or f32; split axis 0; the global row order is the
//! stream's order, rank by rank), straight from the Parquet pages when the input is a plain
//! table scan ([`dense`]). [`to_batch`] turns a DNDarray's local rows back into a
//! record batch, next to pass-through ("keep") columns aligned row by row.

pub mod dense;
mod from_arrow;
mod to_arrow;

pub use dense::{DenseOut, DenseScans, DenseSource, LoadInput};
pub(crate) use from_arrow::is_numeric;
pub use from_arrow::{LoadSpec, Loaded, NullPolicy, load};
pub use to_arrow::to_batch;

/// Errors of the conversions; messages name the function, the column and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A column that does not exist.
    #[error("{function}: column '{column}' not found; available columns: {available}")]
    UnknownColumn {
        /// The SQL function (or API) that asked for the column.
        function: String,
        /// The missing column.
        column: String,
        /// The columns that exist.
        available: String,
    },
    /// A feature column that is not numeric.
    #[error(
        "{function}: column '{column}' is {data_type}; feature columns must be numeric (choose them with columns => ...)"
    )]
    NotNumeric {
        /// The SQL function.
        function: String,
        /// The column.
        column: String,
        /// Its Arrow type.
        data_type: String,
    },
    /// NULL or NaN values under `nulls => 'error'` (global counts per column).
    #[error("{function}: {detail}; filter them or pass nulls => 'drop'")]
    Nulls {
        /// The SQL function.
        function: String,
        /// e.g. "column 'x3' has 12 NULL values".
        detail: String,
    },
    /// Anything else about the input (no feature columns, shapes).
    #[error("{function}: {message}")]
    Invalid {
        /// The SQL function.
        function: String,
        /// What was wrong.
        message: String,
    },
    /// An error from the engine (communication, agreed errors).
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// An error from DataFusion or Arrow while reading the input.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl From<engine::CommError> for ConvertError {
    fn from(e: engine::CommError) -> Self {
        ConvertError::Engine(e.into())
    }
}

impl From<ConvertError> for datafusion::error::DataFusionError {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::Execution(other.to_string()),
        }
    }
}
