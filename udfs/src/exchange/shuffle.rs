//! [`MpiShuffleExec`]: rows to output partitions by DataFusion's own partitioner across ranks
//! (what `RepartitionExec` does in one process).

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::core::{Exchange, ExchangeCore, only_child};
use super::keyfilter::KeyFilterSide;
use super::placement::Placement;
use super::rounds::Route;

/// A shuffle: each row to its output partition by `partitioning` (hash with DataFusion's fixed
/// seed, round-robin or range); output partition i of n lives on rank
/// [`Placement::owner`]`(i, n, P)`. All-to-all in bounded rounds of Arrow IPC buffers.
pub struct MpiShuffleExec {
    partitioning: Partitioning,
    core: ExchangeCore,
    props: Arc<PlanProperties>,
    /// A shuffle into a hash join that shares a key filter with the join's other shuffle.
    key_filter: Mutex<Option<KeyFilterSide>>,
}

impl fmt::Debug for MpiShuffleExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiShuffleExec")
            .field("partitioning", &self.partitioning)
            .field("core", &self.core)
            .finish()
    }
}

impl MpiShuffleExec {
    /// A shuffle of `input` (whose partitions are placed as `input_placement` says) into
    /// `partitioning`.
    pub fn new(partitioning: Partitioning, input: Arc<dyn ExecutionPlan>, input_placement: Vec<Placement>) -> Self {
        let core = ExchangeCore::new("MpiShuffleExec", input, input_placement);
        let props = PlanProperties::new(
            core.fused_equivalences(),
            partitioning.clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        MpiShuffleExec {
            partitioning,
            core,
            props: Arc::new(props),
            key_filter: Mutex::new(None),
        }
    }

    /// The output partitioning.
    pub fn partitioning(&self) -> &Partitioning {
        &self.partitioning
    }

    /// Where each output partition lives with `ranks` ranks.
    pub fn output_placement(&self, ranks: usize) -> Vec<Placement> {
        let n = self.partitioning.partition_count();
        (0..n)
            .map(|i| Placement::Owned(Placement::owner(i, n, ranks)))
            .collect()
    }

    /// Makes this shuffle one side of a join key filter (see `keyfilter`).
    pub(super) fn set_key_filter(&self, side: KeyFilterSide) {
        *self.key_filter.lock().unwrap_or_else(|e| e.into_inner()) = Some(side);
    }
}

impl Exchange for MpiShuffleExec {
    const NAME: &'static str = "MpiShuffleExec";

    fn core(&self) -> &ExchangeCore {
        &self.core
    }

    fn shuffle(&self) -> Option<(Route, usize)> {
        Some((
            Route::Shuffle(self.partitioning.clone()),
            self.partitioning.partition_count(),
        ))
    }

    fn key_filter(&self) -> Option<KeyFilterSide> {
        self.key_filter.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl DisplayAs for MpiShuffleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MpiShuffleExec: partitioning={}", self.partitioning)?;
        match self.key_filter() {
            Some(KeyFilterSide::Build(_)) => write!(f, ", key_filter=build"),
            Some(KeyFilterSide::Probe(_)) => write!(f, ", key_filter=probe"),
            None => Ok(()),
        }
    }
}

impl ExecutionPlan for MpiShuffleExec {
    fn name(&self) -> &str {
        "MpiShuffleExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.core.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        if let Partitioning::Hash(exprs, _) = &self.partitioning {
            for e in exprs {
                if f(e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let input = only_child(Self::NAME, children)?;
        let node = MpiShuffleExec::new(self.partitioning.clone(), input, self.core.input_placement.clone());
        if let Some(side) = self.key_filter() {
            node.set_key_filter(side);
        }
        Ok(Arc::new(node))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.core.stream(partition..partition + 1, None)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.core.metrics())
    }
}
