//! The types every table function shares: [`FunctionDef`] (what the registry knows before
//! planning), [`Planned`] (what a planner returns), [`TableFunction`] (a planned call),
//! [`Output`], [`Layout`] and [`RunContext`].

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use engine::Comm;
use futures::future::BoxFuture;

use datafusion::logical_expr::LogicalPlan;

use super::args::{ArgKind, ArgSpec, Args, COMMON};
use crate::convert::LoadInput;
use crate::settings::HeatsqlOptions;

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
    pub comm: &'static Comm,
    /// The task (session settings, batch size).
    pub task: &'a Arc<TaskContext>,
    /// The device the call computes on, once resolved ([`super::features::FeatureArgs::device`]
    /// sets it); `EXPLAIN ANALYZE` shows it.
    pub device: &'a std::sync::OnceLock<tch::Device>,
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
