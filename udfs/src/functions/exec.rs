//! [`FunctionExec`]: the physical node of a table function call, and the planners that create
//! it from a [`super::FunctionNode`].
//!
//! The node is a stage of the distributed plan ([`crate::exchange::Stage`]): the stage runs
//! the call once per query, collectively, in the same order on every rank as the exchanges;
//! executing the node afterwards serves the rows this rank computed. Nothing communicates
//! while planning or under EXPLAIN.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use engine::Comm;
use futures::future::BoxFuture;

use super::Call;
use super::plan::FunctionNode;
use super::{Layout, RunContext};
use crate::agree::agree;
use crate::convert::{DenseScans, LoadInput};
use crate::exchange::{Placement, Stage};

/// A table function call in a physical plan (see the module documentation).
pub struct FunctionExec {
    /// The resolved call.
    call: Call,
    /// The inputs (relation arguments).
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    /// Where each input partition lives (set by the distributed rewrite).
    input_placement: Vec<Vec<Placement>>,
    /// Output partitions of a row-split output (`target_partitions`).
    size: usize,
    /// Ranks (the first partition rank r owns, [`Placement::first_of`], holds its rows of a
    /// row-split output; set when placed).
    ranks: usize,
    props: Arc<PlanProperties>,
    /// This rank and its output rows, once the stage ran.
    output: Mutex<Option<(usize, Vec<RecordBatch>)>>,
    /// The device the last run computed on (EXPLAIN ANALYZE shows it).
    ran_on: Mutex<Option<tch::Device>>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for FunctionExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionExec").field("call", &self.call).finish()
    }
}

impl FunctionExec {
    /// The node for `call` over `inputs`, with `size` output partitions (row-split outputs;
    /// `target_partitions`). Until the distributed rewrite places them, every input partition
    /// counts as present on every rank.
    pub fn new(call: Call, inputs: Vec<Arc<dyn ExecutionPlan>>, size: usize) -> Self {
        let input_placement = inputs
            .iter()
            .map(|i| vec![Placement::Everywhere; i.properties().output_partitioning().partition_count()])
            .collect();
        Self::with_placement(call, inputs, input_placement, size, size)
    }

    fn with_placement(
        call: Call,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        input_placement: Vec<Vec<Placement>>,
        size: usize,
        ranks: usize,
    ) -> Self {
        let partitions = match call.output_layout() {
            Layout::RowSplit => size,
            Layout::Replicated => 1,
        };
        let props = PlanProperties::new(
            EquivalenceProperties::new(call.schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        FunctionExec {
            call,
            inputs,
            input_placement,
            size,
            ranks: ranks.max(1),
            props: Arc::new(props),
            output: Mutex::new(None),
            ran_on: Mutex::new(None),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The same call over `inputs`, placed as `placement` says, for `ranks` ranks (the
    /// distributed rewrite).
    pub fn placed(&self, inputs: Vec<Arc<dyn ExecutionPlan>>, placement: Vec<Vec<Placement>>, ranks: usize) -> Self {
        Self::with_placement(self.call.clone(), inputs, placement, self.size, ranks)
    }

    /// The call.
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// Where the output partitions live.
    pub fn output_placement(&self) -> Vec<Placement> {
        match self.call.output_layout() {
            Layout::RowSplit => (0..self.size)
                .map(|i| Placement::Owned(Placement::owner(i, self.size, self.ranks)))
                .collect(),
            Layout::Replicated => vec![Placement::Everywhere],
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(usize, Vec<RecordBatch>)>> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This rank's stream of input `i`: the partitions it owns (and on rank 0 those present
    /// everywhere) for a row-split input, every partition for a replicated one, in partition
    /// order. A row-split input of which this rank owns every partition it reads comes with
    /// those partitions as a dense source when the session recognises one
    /// ([`crate::convert::DenseScans`]): the plain scan of a Parquet table.
    fn input(&self, i: usize, me: usize, ctx: &Arc<TaskContext>) -> Result<LoadInput> {
        let layout = self.call.input_layouts[i];
        let placement = &self.input_placement[i];
        let mine: Vec<usize> = (0..placement.len())
            .filter(|&p| match (layout, placement[p]) {
                (Layout::Replicated, Placement::Everywhere) => true,
                (Layout::Replicated, Placement::Owned(_)) => false,
                (Layout::RowSplit, Placement::Owned(r)) => r == me,
                (Layout::RowSplit, Placement::Everywhere) => me == 0,
            })
            .collect();
        if layout == Layout::Replicated && mine.len() != placement.len() {
            return Err(DataFusionError::Internal(format!(
                "{}: input {i} must be present on every rank",
                self.call.name()
            )));
        }
        let input = &self.inputs[i];
        let own = !mine.is_empty() && mine.iter().all(|&p| placement[p] == Placement::Owned(me));
        let dense = if layout == Layout::RowSplit && own {
            DenseScans::find(ctx, input.as_ref(), &mine)
        } else {
            None
        };
        let stream = crate::exchange::in_order(input, mine, Arc::clone(ctx))?;
        Ok(LoadInput { stream, dense })
    }

    /// Collective. Runs the call on this rank's inputs and keeps its output; errors are
    /// agreed (every rank returns the same one). `cancel` is checked before the call.
    async fn materialize(&self, comm: &'static Comm, ctx: Arc<TaskContext>, cancel: &AtomicBool) -> Result<()> {
        let me = comm.rank();
        let start = Instant::now();
        let streams = if cancel.load(Ordering::Relaxed) {
            Err(DataFusionError::Execution(format!("query cancelled on rank {me}")))
        } else {
            (0..self.inputs.len())
                .map(|i| self.input(i, me, &ctx))
                .collect::<Result<Vec<_>>>()
        };
        let streams = agree(comm, streams)?;
        // The session's heatsql.cpu_kernels, for this call (stages run one at a time).
        engine::kernels::set_policy(crate::settings::kernel_policy(&ctx));
        let (traffic, transfers) = (comm.traffic(), engine::device::transfers());
        let device = std::sync::OnceLock::new();
        let run = self
            .call
            .run(
                streams,
                RunContext {
                    comm,
                    task: &ctx,
                    device: &device,
                },
            )
            .await;
        let batches = agree(comm, run)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let (traffic, transfers) = (
            comm.traffic().since(traffic),
            engine::device::transfers().since(transfers),
        );
        let m = &self.metrics;
        MetricBuilder::new(m).output_rows(0).add(rows);
        MetricBuilder::new(m).elapsed_compute(0).add_duration(start.elapsed());
        for (name, bytes) in [
            ("mpi_bytes_sent", traffic.sent),
            ("mpi_bytes_received", traffic.received),
            ("host_to_device_bytes", transfers.host_to_device),
            ("device_to_host_bytes", transfers.device_to_host),
        ] {
            MetricBuilder::new(m).counter(name, 0).add(bytes as usize);
        }
        *self.ran_on.lock().unwrap_or_else(|e| e.into_inner()) = device.get().copied();
        *self.lock() = Some((me, batches));
        Ok(())
    }
}

impl Stage for FunctionExec {
    fn stage_name(&self) -> &str {
        self.call.exec_name()
    }

    fn run<'a>(
        &'a self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.materialize(comm, ctx, cancel))
    }

    /// Forgets the output rows (after the query).
    fn release(&self) {
        *self.lock() = None;
    }

    fn node(&self) -> Option<&dyn ExecutionPlan> {
        Some(self)
    }
}

impl DisplayAs for FunctionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.call.exec_name(), self.call.describe())?;
        // After a run (EXPLAIN ANALYZE): where this rank computed.
        match *self.ran_on.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(d) => write!(f, ", ran_on={}", engine::device::name(d)),
            None => Ok(()),
        }
    }
}

impl ExecutionPlan for FunctionExec {
    fn name(&self) -> &str {
        self.call.exec_name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        self.call
            .input_layouts
            .iter()
            .map(|l| match l {
                Layout::RowSplit => Distribution::UnspecifiedDistribution,
                Layout::Replicated => Distribution::SinglePartition,
            })
            .collect()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.inputs.len() {
            return Err(DataFusionError::Internal(format!(
                "{} has {} inputs, got {}",
                self.call.exec_name(),
                self.inputs.len(),
                children.len()
            )));
        }
        // New inputs with the same partitions keep where those partitions live (a rewrite of
        // a placed plan); inputs with other partitions count as present everywhere, as before
        // the distributed rewrite.
        let placement = children
            .iter()
            .zip(&self.input_placement)
            .map(|(c, old)| {
                let n = c.properties().output_partitioning().partition_count();
                if old.len() == n {
                    old.clone()
                } else {
                    vec![Placement::Everywhere; n]
                }
            })
            .collect();
        Ok(Arc::new(FunctionExec::with_placement(
            self.call.clone(),
            children,
            placement,
            self.size,
            self.ranks,
        )))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let guard = self.lock();
        let (me, output) = guard.as_ref().ok_or_else(|| {
            DataFusionError::Internal(format!("{} executed before its stage ran", self.call.exec_name()))
        })?;
        let batches = match self.call.output_layout() {
            Layout::RowSplit if partition == Placement::first_of(*me, self.size, self.ranks) => output.clone(),
            Layout::Replicated if partition == 0 => output.clone(),
            _ => Vec::new(),
        };
        Ok(Box::pin(MemoryStream::try_new(batches, self.call.schema(), None)?))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Plans a [`FunctionNode`] into a [`FunctionExec`] (`target_partitions` output partitions for
/// row-split outputs, partition r < P holding rank r's rows).
#[derive(Debug, Default)]
pub struct FunctionExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for FunctionExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<FunctionNode>() else {
            return Ok(None);
        };
        let size = session.config().target_partitions();
        Ok(Some(Arc::new(FunctionExec::new(
            node.call.clone(),
            physical_inputs.to_vec(),
            size,
        ))))
    }
}

/// DataFusion's physical planner with [`FunctionExtensionPlanner`].
#[derive(Debug, Default)]
pub struct FunctionQueryPlanner;

#[async_trait]
impl QueryPlanner for FunctionQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(FunctionExtensionPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Installs the table functions in a session state builder: the relation planner and the
/// query planner that plans their nodes.
pub fn install_in_builder(
    builder: datafusion::execution::SessionStateBuilder,
) -> datafusion::execution::SessionStateBuilder {
    builder
        .with_query_planner(Arc::new(FunctionQueryPlanner))
        .with_relation_planners(vec![Arc::new(super::FunctionRelationPlanner)])
}
