//! [`MpiConcatExec`]: every input partition on every rank, concatenated in partition order
//! into one partition (what `CoalescePartitionsExec` does in one process, but in a defined
//! order), at most `fetch` rows.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::core::{Exchange, ExchangeCore, only_child};
use super::placement::Placement;

/// A gather into one partition, on every rank (or on rank 0 only,
/// [`Stage::deliver_to_root`]): broadcast build sides, final aggregates, results.
#[derive(Debug)]
pub struct MpiConcatExec {
    fetch: Option<usize>,
    core: ExchangeCore,
    props: Arc<PlanProperties>,
}

impl MpiConcatExec {
    /// A concatenation of `input`'s partitions (placed as `input_placement` says), at most
    /// `fetch` rows.
    pub fn new(input: Arc<dyn ExecutionPlan>, input_placement: Vec<Placement>, fetch: Option<usize>) -> Self {
        let core = ExchangeCore::new("MpiConcatExec", input, input_placement);
        let eq = if core.input_placement.len() == 1 {
            core.input.properties().equivalence_properties().clone()
        } else {
            core.fused_equivalences()
        };
        let props = PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        MpiConcatExec {
            fetch,
            core,
            props: Arc::new(props),
        }
    }

    /// Where the output partition lives: everywhere.
    pub fn output_placement(&self) -> Vec<Placement> {
        vec![Placement::Everywhere]
    }
}

impl Exchange for MpiConcatExec {
    const NAME: &'static str = "MpiConcatExec";

    fn core(&self) -> &ExchangeCore {
        &self.core
    }
}

impl DisplayAs for MpiConcatExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.fetch {
            None => write!(f, "MpiConcatExec"),
            Some(n) => write!(f, "MpiConcatExec: fetch={n}"),
        }
    }
}

impl ExecutionPlan for MpiConcatExec {
    fn name(&self) -> &str {
        "MpiConcatExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.core.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(Self::NAME, children)?;
        Ok(Arc::new(MpiConcatExec::new(
            input,
            self.core.input_placement.clone(),
            self.fetch,
        )))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "MpiConcatExec has no partition {partition}"
            )));
        }
        // Every input partition in partition order, at most `fetch` rows.
        self.core.stream(0..self.core.buffer_count(), self.fetch)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.core.metrics())
    }
}
