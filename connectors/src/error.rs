//! The connectors' error type.

use datafusion::error::DataFusionError;

/// Errors of the Parquet sources and sinks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The location names nothing that exists.
    #[error("parquet: path '{0}' not found")]
    NotFound(String),
    /// The location exists but holds no Parquet files.
    #[error("parquet: no Parquet files at '{0}'")]
    NoFiles(String),
    /// Files whose schemas cannot form one table.
    #[error("parquet: schema of '{file}' conflicts with '{first}': {detail}")]
    SchemaConflict {
        /// The first file (its schema is the table's).
        first: String,
        /// The conflicting file.
        file: String,
        /// Which column differs and how.
        detail: String,
    },
    /// A file that cannot be read as Parquet (truncated, corrupt, unreadable).
    #[error("parquet: cannot read '{file}': {detail}")]
    Unreadable {
        /// The file.
        file: String,
        /// The reader's message.
        detail: String,
    },
    /// A location that cannot be used (bad URL, unsupported scheme, missing credentials).
    #[error("parquet: location '{location}': {detail}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// Batches registered as a rank-split table that do not form one table.
    #[error("register_batches: {0}")]
    Register(String),
    /// COPY TO refused its target or failed to write.
    #[error("COPY: {0}")]
    Copy(String),
    /// A communication error or an error agreed across ranks.
    #[error(transparent)]
    Comm(#[from] engine::CommError),
    /// An error from DataFusion.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// An error from the object store.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl From<ConnectorError> for DataFusionError {
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::DataFusion(e) => e,
            other => DataFusionError::Execution(other.to_string()),
        }
    }
}

/// The connectors' result type.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
