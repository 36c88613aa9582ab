//! heatsql's table functions (`pca`, `pca_project`, …): SQL calls planned into plan nodes
//! that turn their input relation into a row-split DNDarray and run an `engine` algorithm.
//!
//! * [`args`]: named arguments and their checks.
//! * [`plan`]: the [`FunctionRelationPlanner`] (a DataFusion `RelationPlanner`) that recognises
//!   the functions in `FROM` and plans their relation arguments, and the logical node
//!   [`FunctionNode`] whose children are those relations (so projections and filters reach the
//!   Parquet scans).
//! * [`exec`]: [`FunctionExec`], the physical node. It is a collective stage of the distributed
//!   plan: when the stage runs (never while planning or under EXPLAIN), it drains this rank's
//!   share of each input, calls the function, and serves the output batches from memory.
//! * [`pca`]: `pca(...)` and `pca_project(...)`.
//! * [`kmeans`]: `kmeans(...)` and `kmeans_predict(...)`.
//! * [`svd`], [`matmul`], [`dmd`]: `svd(...)`, `matmul(a, b, ...)`, `dmd(...)` (its time axis
//!   in `series`).
//! * [`rewrite`]: table names given as relation arguments become subqueries before planning
//!   (DataFusion resolves a statement's tables first, and only sees those in relations).
//!
//! A function is a [`TableFunction`]: its output schema is fixed when it is planned, and its
//! [`TableFunction::run`] is collective.

pub mod args;
mod columns;
pub mod dmd;
pub mod exec;
mod io;
pub mod kmeans;
pub mod matmul;
pub mod pca;
pub mod plan;
pub mod rewrite;
mod series;
pub mod svd;

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use engine::Comm;
use futures::future::BoxFuture;

use crate::convert::LoadInput;

pub use exec::{FunctionExec, FunctionExtensionPlanner, FunctionQueryPlanner, install_in_builder};
pub use plan::{FunctionNode, FunctionRelationPlanner};

/// How the rows of a function's input or output are laid out over the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Split by rows: each rank holds its share, in global row order rank by rank (an input
    /// is read where it lives; an output row sits on the rank of its input row).
    RowSplit,
    /// The same complete rows on every rank (models, small results).
    Replicated,
}

/// What a [`TableFunction::run`] gets besides its inputs.
pub struct RunContext<'a> {
    /// The communicator.
    pub comm: &'a Comm,
    /// The task (session settings, batch size).
    pub task: &'a Arc<TaskContext>,
}

/// A planned call of a table function (its arguments checked and resolved).
pub trait TableFunction: fmt::Debug + Send + Sync {
    /// The SQL name (`pca`).
    fn name(&self) -> &'static str;

    /// The physical node's name in EXPLAIN (`PcaExec`).
    fn exec_name(&self) -> &'static str;

    /// The resolved arguments as EXPLAIN shows them (`k=3, solver=covariance, …`); also the
    /// call's identity when plans are compared.
    fn describe(&self) -> String;

    /// The output columns, fixed at planning time.
    fn schema(&self) -> SchemaRef;

    /// Where the output rows are.
    fn output_layout(&self) -> Layout;

    /// Where each input's rows must be (one entry per child, in order).
    fn input_layouts(&self) -> Vec<Layout>;

    /// Collective: every rank calls it with its share of each input (all rows of a
    /// [`Layout::Replicated`] input; a stream, with a dense source when the input is a plain
    /// Parquet scan: pass it to [`crate::convert::load`] whole) and returns its output rows. Errors must be agreed
    /// before any collective that follows them (the `engine` and `convert` calls do that).
    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>>;
}

/// The functions [`FunctionRelationPlanner`] knows, by SQL name.
pub const FUNCTIONS: [&str; 7] = ["pca", "pca_project", "kmeans", "kmeans_predict", "svd", "matmul", "dmd"];

/// An error of a function at execution time, as a DataFusion error.
pub(crate) fn exec_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}
