//! heatsql's data sources and sinks (distributed Parquet and object_store scans, COPY TO).
//!
//! Not built yet: issue #3 ("Distributed tables from Parquet and object stores") fills this
//! crate. It depends on DataFusion (and its re-exported arrow/parquet/object_store) and on the
//! engine, so the workspace already builds the whole stack together.

/// The DataFusion version the workspace is built against (re-exported for the facade).
pub const DATAFUSION_VERSION: &str = datafusion::DATAFUSION_VERSION;
