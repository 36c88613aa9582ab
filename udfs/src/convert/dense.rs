//! Inputs a load can read without Arrow batches: [`DenseSource`], [`LoadInput`], [`DenseScans`].
//!
//! A [`DenseSource`] writes a rank's rows straight into column-major memory (the local tensor
//! of a row-split DNDarray is n_local × d, stored column by column), one write of the data
//! instead of Arrow batches plus a copy. `connectors::DenseScan` is one: the plain scan of a
//! distributed Parquet table. This crate does not know Parquet; a session registers how to
//! recognise such plans with a [`DenseScans`] extension of its `SessionConfig`, and
//! [`load`](super::load) uses the source when the load asks for nothing it cannot give (keep
//! columns; types other than floats and integers).

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

/// Column-major destination of a [`DenseSource::read`]: column `j` at `[j · stride, j · stride + rows)`.
pub enum DenseOut<'a> {
    /// f64 values.
    F64(&'a mut [f64]),
    /// f32 values.
    F32(&'a mut [f32]),
}

/// A rank's rows, readable straight into column-major memory.
pub trait DenseSource: Send + Sync + fmt::Debug {
    /// The columns (the same as the stream's schema it stands for).
    fn schema(&self) -> SchemaRef;

    /// Whether a column of this type can be read.
    fn supports(&self, data_type: &DataType) -> bool;

    /// Prepares the read (e.g. reads footers); returns the rows this rank will read.
    fn open(&mut self) -> BoxFuture<'_, Result<usize>>;

    /// Writes `columns` (schema indices) of every row into `out`, column `j` of `columns` at
    /// `[j · stride, j · stride + rows)`, NULL as NaN; returns each column's NULL + NaN count.
    /// Call after [`Self::open`].
    fn read<'a>(
        &'a mut self,
        columns: &'a [usize],
        out: DenseOut<'a>,
        stride: usize,
    ) -> BoxFuture<'a, Result<Vec<u64>>>;
}

/// What recognises dense sources in plans: partitions `ps` of a plan (in order), or `None`.
pub type DenseScanFn = dyn Fn(&dyn ExecutionPlan, &[usize], &TaskContext) -> Option<Box<dyn DenseSource>> + Send + Sync;

/// A `SessionConfig` extension: how this session finds [`DenseSource`]s for plan partitions.
pub struct DenseScans(Arc<DenseScanFn>);

impl fmt::Debug for DenseScans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DenseScans")
    }
}

impl DenseScans {
    /// The extension calling `find`.
    pub fn new(
        find: impl Fn(&dyn ExecutionPlan, &[usize], &TaskContext) -> Option<Box<dyn DenseSource>> + Send + Sync + 'static,
    ) -> Self {
        DenseScans(Arc::new(find))
    }

    /// Partitions `partitions` of `plan`, in that order, as one dense source, if the session's
    /// extension recognises it.
    pub fn find(ctx: &TaskContext, plan: &dyn ExecutionPlan, partitions: &[usize]) -> Option<Box<dyn DenseSource>> {
        let scans = ctx.session_config().get_extension::<DenseScans>()?;
        (scans.0)(plan, partitions, ctx)
    }
}

/// What [`load`](super::load) reads: this rank's batch stream, and the same rows as a
/// [`DenseSource`] when the plan has one (then the stream is dropped unread).
pub struct LoadInput {
    /// The rows as Arrow batches.
    pub stream: SendableRecordBatchStream,
    /// The same rows, readable without batches.
    pub dense: Option<Box<dyn DenseSource>>,
}

impl LoadInput {
    /// The batch stream (for inputs not loaded into arrays).
    pub fn into_stream(self) -> SendableRecordBatchStream {
        self.stream
    }

    /// The input's columns.
    pub fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }
}

impl From<SendableRecordBatchStream> for LoadInput {
    fn from(stream: SendableRecordBatchStream) -> Self {
        LoadInput { stream, dense: None }
    }
}

impl fmt::Debug for LoadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadInput").field("dense", &self.dense).finish()
    }
}
