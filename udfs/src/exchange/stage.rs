//! [`Stage`]: one collective step of a distributed plan's execution. Exchanges, uncorrelated
//! scalar subqueries and table function calls are stages; [`super::DistributedPlan`] runs them
//! in one order on every rank, children before parents.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use engine::Comm;
use futures::future::BoxFuture;

/// One collective step of a distributed plan (see the module documentation).
pub trait Stage: fmt::Debug + Send + Sync {
    /// The stage as progress reports name it (`MpiShuffleExec`, `PcaExec`, `scalar subqueries`).
    fn stage_name(&self) -> &str;

    /// Collective. Runs the stage and keeps its output for the plan node to serve. Errors are
    /// agreed (every rank returns the same one); `cancel` is checked as the stage reads.
    fn run<'a>(
        &'a self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<()>>;

    /// Forgets what the stage holds (after the query).
    fn release(&self) {}

    /// The plan node the stage computes, if it is one (a subquery stage is not).
    fn node(&self) -> Option<&dyn ExecutionPlan> {
        None
    }

    /// Makes a stage that copies rows to every rank deliver them to rank 0 only (for results
    /// only rank 0 reads); false when the stage is not such a copy and is left alone.
    fn deliver_to_root(&self) -> bool {
        false
    }
}

/// Whether `stage` computes the plan node `node` (the same object).
pub fn computes(stage: &dyn Stage, node: &dyn ExecutionPlan) -> bool {
    stage
        .node()
        .is_some_and(|n| std::ptr::addr_eq(n as *const dyn ExecutionPlan, node as *const dyn ExecutionPlan))
}
