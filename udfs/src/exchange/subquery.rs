//! Uncorrelated scalar subqueries as a stage of their own.
//!
//! DataFusion evaluates them in `ScalarSubqueryExec` when its main input is first executed; here
//! the main input's exchanges run before that, as earlier stages, and a filter pushed into a
//! Parquet scan below a shuffle would read the subquery's value before it exists. So the
//! rewrite drops the `ScalarSubqueryExec` and runs its subqueries as a stage ahead of the main
//! input's stages; the expressions read the results container this stage fills.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::physical_planning_context::ScalarSubqueryResults;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryLink;
use engine::Comm;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::stage::Stage;
use crate::agree::agree;

/// The subqueries of one `ScalarSubqueryExec`, each planned to be present on every rank.
#[derive(Debug)]
pub struct SubqueryStage {
    links: Vec<ScalarSubqueryLink>,
    results: ScalarSubqueryResults,
}

impl SubqueryStage {
    pub(crate) fn new(links: Vec<ScalarSubqueryLink>, results: ScalarSubqueryResults) -> Self {
        SubqueryStage { links, results }
    }

    /// Collective (through the agreement). Evaluates every subquery on every rank (their rows
    /// are the same everywhere) and stores the values.
    async fn evaluate(&self, comm: &'static Comm, ctx: Arc<TaskContext>) -> Result<()> {
        let mut values = Vec::with_capacity(self.links.len());
        for link in &self.links {
            values.push(scalar(&link.plan, &ctx).await);
        }
        let values: Result<Vec<ScalarValue>> = values.into_iter().collect();
        let values = agree(comm, values)?;
        self.results.clear();
        for (link, value) in self.links.iter().zip(values) {
            self.results.set(link.index, value)?;
        }
        Ok(())
    }
}

impl Stage for SubqueryStage {
    fn stage_name(&self) -> &str {
        "scalar subqueries"
    }

    fn run<'a>(
        &'a self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        _cancel: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.evaluate(comm, ctx))
    }
}

/// One subquery's value: NULL for no row, the value for one row, an error for more (as in
/// DataFusion).
async fn scalar(plan: &Arc<dyn ExecutionPlan>, ctx: &Arc<TaskContext>) -> Result<ScalarValue> {
    let schema = plan.schema();
    if schema.fields().len() != 1 {
        return Err(DataFusionError::Internal(format!(
            "scalar subquery returns {} columns",
            schema.fields().len()
        )));
    }
    let mut value = None;
    let partitions = (0..plan.properties().output_partitioning().partition_count()).collect();
    let mut stream = super::in_order(plan, partitions, Arc::clone(ctx))?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if value.is_some() || batch.num_rows() > 1 {
            return Err(DataFusionError::Execution(
                "Scalar subquery returned more than one row".into(),
            ));
        }
        value = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
    }
    match value {
        Some(v) => Ok(v),
        None => ScalarValue::try_from(schema.field(0).data_type()),
    }
}
