//! heatsql's table functions (`pca`, `pca_project`, …): SQL calls planned into plan nodes
//! that turn their input relation into a row-split DNDarray and run an `engine` algorithm.
//!
//! The shared layer:
//! * [`registry`]: the one list of functions ([`FunctionDef`]: name, inputs, arguments,
//!   planner); the relation planner and the rewrite derive what they need from it.
//! * [`args`]: named arguments and their checks.
//! * [`features`]: feature and keep columns resolved against an input, output schemas, and
//!   the run preamble every function shares (the agreed device, the load).
//! * [`output`]: tensors and models to and from Arrow (columns, batches, model tables).
//! * [`plan`]: the [`FunctionRelationPlanner`] (a DataFusion `RelationPlanner`) and the
//!   logical node [`FunctionNode`] whose children are the relation arguments (so projections
//!   and filters reach the Parquet scans).
//! * [`exec`]: [`FunctionExec`], the physical node. It is a collective stage of the distributed
//!   plan: when the stage runs (never while planning or under EXPLAIN), it drains this rank's
//!   share of each input, calls the function, and serves the output batches from memory.
//! * [`rewrite`]: table names given as relation arguments become subqueries before planning
//!   (DataFusion resolves a statement's tables first, and only sees those in relations).
//!
//! One file per function, holding only what is its own: [`pca`], [`pca_project`], [`kmeans`],
//! [`kmeans_predict`], [`svd`], [`matmul`], [`dmd`] (its time axis in `series`).
//!
//! A function is a [`TableFunction`]: its output schema is fixed when it is planned, and its
//! [`TableFunction::run`] is collective.

pub mod args;
pub mod dmd;
pub mod exec;
pub mod features;
pub mod kmeans;
pub mod kmeans_predict;
pub mod matmul;
pub mod output;
pub mod pca;
pub mod pca_project;
pub mod plan;
pub mod registry;
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

use datafusion::logical_expr::LogicalPlan;

use self::args::{ArgKind, ArgSpec, Args, COMMON};
use crate::convert::LoadInput;
use crate::settings::HeatsqlOptions;

pub use exec::{FunctionExec, FunctionExtensionPlanner, FunctionQueryPlanner, install_in_builder};
pub use plan::{FunctionNode, FunctionRelationPlanner};
pub use registry::{Call, FUNCTIONS};

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

/// A function's output: its columns (fixed at planning time) and where its rows are.
#[derive(Debug, Clone)]
pub struct Output {
    /// The output columns.
    pub schema: SchemaRef,
    /// Where the output rows are.
    pub layout: Layout,
}

impl Output {
    /// `schema`, laid out as `layout`.
    pub fn new(schema: SchemaRef, layout: Layout) -> Self {
        Output { schema, layout }
    }
}

/// A planned call of a table function (its arguments checked and resolved). Its name, inputs
/// and argument list are in its [`FunctionDef`].
pub trait TableFunction: fmt::Debug + Send + Sync {
    /// The resolved arguments as EXPLAIN shows them (`k=3, solver=covariance, …`); also the
    /// call's identity when plans are compared.
    fn describe(&self) -> String;

    /// The output columns and where the rows are.
    fn output(&self) -> &Output;

    /// Collective: every rank calls it with its share of each input (all rows of a
    /// [`Layout::Replicated`] input; a stream, with a dense source when the input is a plain
    /// Parquet scan: pass it to [`crate::convert::load`] whole) and returns its output rows.
    /// The inputs come in [`Planned`] order: the positional inputs, then the models. Errors
    /// must be agreed before any collective that follows them (the `engine` and `convert`
    /// calls do that).
    fn run<'a>(&'a self, inputs: Vec<LoadInput>, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Vec<RecordBatch>>>;
}

/// A function's planner: the checked arguments and the session settings in, the planned call
/// and its relations out.
pub type PlanFn = fn(Args, &HeatsqlOptions) -> Result<Planned>;

/// One table function: what the registry knows about it before planning.
pub struct FunctionDef {
    /// The SQL name (`pca`), matched case-insensitively.
    pub name: &'static str,
    /// The physical node's name in EXPLAIN (`PcaExec`).
    pub exec_name: &'static str,
    /// The positional relation arguments, by name for messages (`["input"]`, `["a", "b"]`);
    /// their rows are split over the ranks ([`Layout::RowSplit`]).
    pub inputs: &'static [&'static str],
    /// The function's own named arguments, in groups (its own list, shared lists such as
    /// [`args::SOLVER_ARGS`]); the feature arguments of [`COMMON`] follow them.
    /// Relation-valued ones (models, initial centroids) are read whole on every rank
    /// ([`Layout::Replicated`]).
    pub args: &'static [&'static [ArgSpec]],
    /// The planner.
    pub plan: PlanFn,
}

impl fmt::Debug for FunctionDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionDef").field("name", &self.name).finish()
    }
}

impl FunctionDef {
    /// Every named argument the function accepts: its own, then [`COMMON`].
    pub fn specs(&self) -> Vec<ArgSpec> {
        self.args
            .iter()
            .copied()
            .flatten()
            .chain(COMMON.iter())
            .copied()
            .collect()
    }

    /// Whether the named argument `name` (lower case) takes a relation.
    pub fn takes_relation(&self, name: &str) -> bool {
        self.args
            .iter()
            .copied()
            .flatten()
            .any(|a| a.name == name && matches!(a.kind, ArgKind::Relation | ArgKind::TextOrRelation))
    }
}

/// What a planner returns: the call and its relations.
pub struct Planned {
    /// The resolved call.
    pub function: Arc<dyn TableFunction>,
    /// The positional inputs, in [`FunctionDef::inputs`] order (row-split).
    pub inputs: Vec<LogicalPlan>,
    /// The relation-valued named arguments the call reads (replicated), in the order its
    /// [`TableFunction::run`] expects them after the inputs.
    pub models: Vec<LogicalPlan>,
}

impl Planned {
    /// A call over positional `inputs` only.
    pub fn new(function: impl TableFunction + 'static, inputs: Vec<LogicalPlan>) -> Self {
        Planned {
            function: Arc::new(function),
            inputs,
            models: Vec::new(),
        }
    }

    /// The same call, also reading the relations `models` whole on every rank.
    pub fn with_models(mut self, models: Vec<LogicalPlan>) -> Self {
        self.models = models;
        self
    }
}

/// An error of a function at execution time, as a DataFusion error.
pub(crate) fn exec_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}
