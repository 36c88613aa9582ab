//! heatsql's data sources and sinks.
//!
//! * [`location`]: a table location (file, directory, glob or object_store URL) and its files.
//! * [`assign`]: which row groups each rank reads (contiguous ranges, balanced by rows).
//! * [`table`]: [`DistributedParquetTable`], a DataFusion table whose scan reads this rank's
//!   row groups and whose schema and statistics are the global ones.
//! * [`factory`]: `CREATE EXTERNAL TABLE … STORED AS PARQUET` creates distributed tables.
//! * [`memory`]: [`RankSplitMemTable`], in-memory batches split row-wise (each rank its own).
//! * [`copy`]: `COPY (query) TO 'dir/' STORED AS PARQUET`, one part file per rank, atomic.
//! * [`dense`]: [`DenseScan`], a rank's share of a plain table scan decoded straight into
//!   column-major memory (the DNDarray load's fast path).
//!
//! Every rank runs the same statements; the functions here that communicate say so and are
//! collective (they use `engine::comm`, the only MPI layer).

pub mod assign;
pub mod copy;
pub mod dense;
pub mod error;
pub mod factory;
pub mod location;
pub mod memory;
pub mod table;

pub use dense::DenseScan;
pub use error::ConnectorError;
pub use factory::{DistributedParquetFactory, install, install_in_builder};
pub use memory::RankSplitMemTable;
pub use table::DistributedParquetTable;

/// The DataFusion version the workspace is built against.
pub const DATAFUSION_VERSION: &str = datafusion::DATAFUSION_VERSION;
