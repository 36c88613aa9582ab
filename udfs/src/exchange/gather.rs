//! [`MpiGatherExec`]: every input partition on every rank, partitions kept (the inputs of
//! sorted merges, and of nodes that must see every partition at once).

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::core::{Exchange, ExchangeCore, only_child};
use super::placement::Placement;

/// A gather that keeps partitions: output partition i is input partition i, on every rank
/// (or on rank 0 only, [`Stage::deliver_to_root`]).
#[derive(Debug)]
pub struct MpiGatherExec {
    core: ExchangeCore,
    props: Arc<PlanProperties>,
}

impl MpiGatherExec {
    /// A gather of `input`, whose partitions are placed as `input_placement` says.
    pub fn new(input: Arc<dyn ExecutionPlan>, input_placement: Vec<Placement>) -> Self {
        let props = Arc::clone(input.properties());
        MpiGatherExec {
            core: ExchangeCore::new("MpiGatherExec", input, input_placement),
            props,
        }
    }

    /// Where each output partition lives: everywhere.
    pub fn output_placement(&self) -> Vec<Placement> {
        vec![Placement::Everywhere; self.core.input_placement.len()]
    }
}

impl Exchange for MpiGatherExec {
    const NAME: &'static str = "MpiGatherExec";

    fn core(&self) -> &ExchangeCore {
        &self.core
    }
}

impl DisplayAs for MpiGatherExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MpiGatherExec: partitions={}", self.core.input_placement.len())
    }
}

impl ExecutionPlan for MpiGatherExec {
    fn name(&self) -> &str {
        "MpiGatherExec"
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
        Ok(Arc::new(MpiGatherExec::new(input, self.core.input_placement.clone())))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.core.stream(partition..partition + 1, None)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.core.metrics())
    }
}
