//! [`ExchangeExec`]: a plan node whose output is computed once per query by a collective
//! ([`ExchangeExec::materialize`], in bounded rounds) and then served from its buffers (memory,
//! or spill files beyond the session's memory pool).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use engine::Comm;

use super::buffer::StageBuffers;
use super::keyfilter::KeyFilterSide;
use super::placement::Placement;
use super::rounds::{self, ExchangeMetrics, Feed, KeyStep, Route};

/// What an exchange does with its input's partitions.
#[derive(Debug, Clone)]
pub enum ExchangeKind {
    /// Rows to output partitions by DataFusion's own partitioner (hash with its fixed seed,
    /// round-robin or range); output partition i lives on rank i mod P.
    Shuffle(Partitioning),
    /// Every input partition on every rank, partitions kept (inputs of sorted merges, and of
    /// nodes that must see all partitions).
    Gather,
    /// Every input partition on every rank, concatenated in partition order into one partition
    /// (what `CoalescePartitionsExec` does in one process, but in a defined order), at most
    /// `fetch` rows.
    Concat {
        /// Row limit of the merged partition.
        fetch: Option<usize>,
    },
}

/// An MPI exchange in a distributed plan (see the module documentation of `exchange`).
pub struct ExchangeExec {
    kind: ExchangeKind,
    input: Arc<dyn ExecutionPlan>,
    input_placement: Vec<Placement>,
    props: Arc<PlanProperties>,
    output: Mutex<Option<StageBuffers>>,
    metrics: ExecutionPlanMetricsSet,
    exchange_metrics: ExchangeMetrics,
    /// A gather whose rows only rank 0 needs (the last one below the root): the others hold
    /// nothing.
    root_only: AtomicBool,
    /// A shuffle into a hash join that shares a key filter with the join's other shuffle.
    key_filter: Mutex<Option<KeyFilterSide>>,
}

impl fmt::Debug for ExchangeExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeExec")
            .field("kind", &self.kind)
            .field("input_placement", &self.input_placement)
            .finish()
    }
}

impl ExchangeExec {
    /// An exchange over `input`, whose output partitions are placed as `input_placement` says.
    pub fn new(kind: ExchangeKind, input: Arc<dyn ExecutionPlan>, input_placement: Vec<Placement>) -> Self {
        let n_in = input.properties().output_partitioning().partition_count();
        // Like RepartitionExec: equalities and constants survive, orderings do not (partitions
        // are cut and concatenated), nor constants of single partitions once they are fused.
        let fused = || {
            let mut eq = input.properties().equivalence_properties().clone();
            eq.clear_orderings();
            if n_in > 1 {
                eq.clear_per_partition_constants();
            }
            eq
        };
        let props = match &kind {
            ExchangeKind::Shuffle(p) => {
                PlanProperties::new(fused(), p.clone(), EmissionType::Final, Boundedness::Bounded)
            }
            ExchangeKind::Gather => input.properties().as_ref().clone(),
            ExchangeKind::Concat { .. } => PlanProperties::new(
                if n_in == 1 {
                    input.properties().equivalence_properties().clone()
                } else {
                    fused()
                },
                Partitioning::UnknownPartitioning(1),
                EmissionType::Final,
                Boundedness::Bounded,
            ),
        };
        let metrics = ExecutionPlanMetricsSet::new();
        let exchange_metrics = ExchangeMetrics::new(&metrics);
        ExchangeExec {
            kind,
            input,
            input_placement,
            props: Arc::new(props),
            output: Mutex::new(None),
            metrics,
            exchange_metrics,
            root_only: AtomicBool::new(false),
            key_filter: Mutex::new(None),
        }
    }

    /// Makes this shuffle one side of a join key filter (see `keyfilter`).
    pub(super) fn set_key_filter(&self, side: KeyFilterSide) {
        *self.key_filter.lock().unwrap_or_else(|e| e.into_inner()) = Some(side);
    }

    fn key_filter(&self) -> Option<KeyFilterSide> {
        self.key_filter.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What this exchange does.
    pub fn kind(&self) -> &ExchangeKind {
        &self.kind
    }

    /// Makes a gather deliver its rows to rank 0 only (see [`super::DistributedPlan`]);
    /// returns false for a shuffle, which is left alone.
    pub fn set_root_only(&self) -> bool {
        let gathering = !matches!(self.kind, ExchangeKind::Shuffle(_));
        if gathering {
            self.root_only.store(true, Ordering::Relaxed);
        }
        gathering
    }

    /// Where each output partition lives.
    pub fn output_placement(&self, size: usize) -> Vec<Placement> {
        match &self.kind {
            ExchangeKind::Shuffle(p) => {
                let n = p.partition_count();
                (0..n).map(|i| Placement::Owned(Placement::owner(i, n, size))).collect()
            }
            ExchangeKind::Gather => vec![Placement::Everywhere; self.input_placement.len()],
            ExchangeKind::Concat { .. } => vec![Placement::Everywhere],
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<StageBuffers>> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Collective. Reads the input partitions this rank contributes and moves their rows in
    /// rounds of bounded size (`heatsql.exchange_round_bytes`, see `rounds`), keeping this
    /// rank's output partitions (in memory under the session's memory pool, spilled beyond).
    /// `cancel` is checked between batches; an error or a cancelled rank makes the stage fail
    /// on every rank with the same error.
    pub async fn materialize(&self, comm: &Comm, ctx: Arc<TaskContext>, cancel: &AtomicBool) -> Result<()> {
        let me = comm.rank();
        let gathering = !matches!(self.kind, ExchangeKind::Shuffle(_));
        let root_only = self.root_only.load(Ordering::Relaxed);
        engine::comm::abort::test_panic_point("exchange", me);
        let round_bytes = comm
            .agree(crate::settings::exchange_round_bytes(&ctx))
            .map_err(agreed)?;
        // Owned partitions are contributed by their owner. A partition present everywhere is
        // contributed once, by rank 0, to a shuffle; a gather reads it locally on every rank
        // that receives rows.
        let receives = !root_only || me == 0;
        let runs: Vec<usize> = (0..self.input_placement.len())
            .filter(|&i| match self.input_placement[i] {
                Placement::Owned(r) => r == me,
                Placement::Everywhere => (gathering && receives) || (!gathering && me == 0),
            })
            .collect();
        let n_in = self.input_placement.len();
        let schema = self.input.schema();
        let (route, n_out) = match &self.kind {
            ExchangeKind::Shuffle(p) => (Route::Shuffle(p.clone()), p.partition_count()),
            ExchangeKind::Gather | ExchangeKind::Concat { .. } => (
                Route::Gather {
                    to_root: root_only,
                    local: self
                        .input_placement
                        .iter()
                        .map(|p| *p == Placement::Everywhere)
                        .collect(),
                },
                n_in,
            ),
        };
        let mut out = StageBuffers::new(self.kind_name(), n_out, Arc::clone(&schema), &ctx, &self.metrics);
        // Every rank has the same plan, so every rank takes the same collectives.
        let key_filter = self.key_filter();
        let step = match &key_filter {
            None => KeyStep::None,
            Some(KeyFilterSide::Build(f)) => {
                f.start_build(&ctx);
                KeyStep::Build(f)
            }
            Some(KeyFilterSide::Probe(f)) => f.probe().map_or(KeyStep::None, KeyStep::Probe),
        };
        let feed = Feed::new(Arc::clone(&self.input), Arc::clone(&ctx), runs);
        rounds::run(
            comm,
            &route,
            schema,
            feed,
            n_in,
            &mut out,
            round_bytes,
            cancel,
            &self.exchange_metrics,
            step,
        )
        .await?;
        if let Some(KeyFilterSide::Build(f)) = &key_filter {
            // Collective: the stage succeeded on every rank (its result is agreed).
            f.finish_build(comm)?;
        }
        *self.lock() = Some(out);
        Ok(())
    }

    /// Forgets the materialized rows (after the query); spill files are deleted.
    pub fn release(&self) {
        *self.lock() = None;
        if let Some(KeyFilterSide::Build(f)) = self.key_filter() {
            f.release();
        }
    }
}

/// The first `n` rows of `batches` (zero-copy slices).
pub fn first_rows(batches: &[RecordBatch], n: usize) -> Vec<RecordBatch> {
    let mut left = n;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    out
}

/// An agreed error (see `engine::Comm::agree`) as a DataFusion error carrying the failing
/// rank's own message (not wrapped twice in "Execution error:").
pub fn agreed(e: engine::CommError) -> DataFusionError {
    match e {
        // The original error text, as every rank now reports it.
        engine::CommError::Agreed { message, .. } => {
            if let Some(inner) = message.strip_prefix("Execution error: ") {
                DataFusionError::Execution(inner.to_string())
            } else if let Some(inner) = message.strip_prefix("Error during planning: ") {
                DataFusionError::Plan(inner.to_string())
            } else {
                DataFusionError::Execution(message)
            }
        }
        other => external(other),
    }
}

fn external(e: engine::CommError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ExchangeExec {
    /// The exchange as EXPLAIN names it (`MpiShuffleExec`, `MpiGatherExec`, `MpiConcatExec`).
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            ExchangeKind::Shuffle(_) => "MpiShuffleExec",
            ExchangeKind::Gather => "MpiGatherExec",
            ExchangeKind::Concat { .. } => "MpiConcatExec",
        }
    }
}

impl DisplayAs for ExchangeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.kind {
            ExchangeKind::Shuffle(p) => {
                write!(f, "MpiShuffleExec: partitioning={p}")?;
                match self.key_filter() {
                    Some(KeyFilterSide::Build(_)) => write!(f, ", key_filter=build"),
                    Some(KeyFilterSide::Probe(_)) => write!(f, ", key_filter=probe"),
                    None => Ok(()),
                }
            }
            ExchangeKind::Gather => write!(f, "MpiGatherExec: partitions={}", self.input_placement.len()),
            ExchangeKind::Concat { fetch: None } => write!(f, "MpiConcatExec"),
            ExchangeKind::Concat { fetch: Some(n) } => write!(f, "MpiConcatExec: fetch={n}"),
        }
    }
}

impl ExecutionPlan for ExchangeExec {
    fn name(&self) -> &str {
        "ExchangeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        if let ExchangeKind::Shuffle(Partitioning::Hash(exprs, _)) = &self.kind {
            for e in exprs {
                if f(e)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] =
            <[_; 1]>::try_from(children).map_err(|_| DataFusionError::Internal("ExchangeExec has one child".into()))?;
        let node = ExchangeExec::new(self.kind.clone(), input, self.input_placement.clone());
        if let Some(side) = self.key_filter() {
            node.set_key_filter(side);
        }
        Ok(Arc::new(node))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let guard = self.lock();
        let output = guard
            .as_ref()
            .ok_or_else(|| DataFusionError::Internal("ExchangeExec executed before its stage ran".into()))?;
        match self.kind {
            // One partition: every input partition in partition order, at most `fetch` rows.
            ExchangeKind::Concat { fetch } if partition == 0 => output.stream(0..output.buffer_count(), fetch),
            ExchangeKind::Concat { .. } => Err(DataFusionError::Internal(format!(
                "MpiConcatExec has no partition {partition}"
            ))),
            _ if partition < output.buffer_count() => output.stream(partition..partition + 1, None),
            _ => Err(DataFusionError::Internal(format!(
                "ExchangeExec has no partition {partition}"
            ))),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
