//! [`ExchangeExec`]: a plan node whose output is computed once per query by a collective
//! ([`ExchangeExec::materialize`]) and then served from memory.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use engine::Comm;
use futures::StreamExt;

use super::ipc;
use super::placement::Placement;

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
    output: Mutex<Option<Vec<Vec<RecordBatch>>>>,
    /// A gather whose rows only rank 0 needs (the last one below the root): the others hold
    /// nothing.
    root_only: AtomicBool,
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
        ExchangeExec {
            kind,
            input,
            input_placement,
            props: Arc::new(props),
            output: Mutex::new(None),
            root_only: AtomicBool::new(false),
        }
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
            ExchangeKind::Shuffle(p) => (0..p.partition_count()).map(|i| Placement::Owned(i % size)).collect(),
            ExchangeKind::Gather => vec![Placement::Everywhere; self.input_placement.len()],
            ExchangeKind::Concat { .. } => vec![Placement::Everywhere],
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Vec<RecordBatch>>>> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Collective. Drains the input partitions this rank contributes, agrees on success with
    /// every rank, exchanges the rows and keeps this rank's output partitions. `cancel` is
    /// checked between batches; a cancelled rank makes the stage fail on every rank.
    pub async fn materialize(&self, comm: &Comm, ctx: Arc<TaskContext>, cancel: &AtomicBool) -> Result<()> {
        let me = comm.rank();
        let gathering = !matches!(self.kind, ExchangeKind::Shuffle(_));
        let root_only = self.root_only.load(Ordering::Relaxed);
        // Owned partitions are contributed by their owner. A partition present everywhere is
        // contributed once, by rank 0, to a shuffle; a gather reads it locally on every rank
        // that receives rows.
        let runs: Vec<usize> = (0..self.input_placement.len())
            .filter(|&i| match self.input_placement[i] {
                Placement::Owned(r) => r == me,
                Placement::Everywhere => (gathering && !root_only) || me == 0,
            })
            .collect();
        let drained = self.drain(&runs, &ctx, cancel, me).await;
        let drained = comm.agree(drained).map_err(agreed)?;
        let n_in = self.input_placement.len();
        let schema = self.input.schema();
        let output = match &self.kind {
            ExchangeKind::Shuffle(partitioning) => {
                let size = comm.size();
                let n_out = partitioning.partition_count();
                // One send buffer, destinations in rank order (no second copy for alltoallv).
                let mut send = Vec::new();
                let mut counts = vec![0usize; size];
                let mut pieces: Vec<Vec<Vec<RecordBatch>>> = vec![vec![Vec::new(); n_out]; size];
                let cut = (|| {
                    for (i, batches) in drained {
                        let mut partitioner = BatchPartitioner::try_new(partitioning.clone(), Time::new(), i, n_in)?;
                        for batch in batches {
                            partitioner.partition(batch, |out, piece| {
                                pieces[out % size][out].push(piece);
                                Ok(())
                            })?;
                        }
                    }
                    for (dest, parts) in pieces.iter().enumerate() {
                        let before = send.len();
                        for (out, batches) in parts.iter().enumerate() {
                            ipc::encode(&mut send, &schema, out, batches)?;
                        }
                        counts[dest] = send.len() - before;
                    }
                    Ok::<_, DataFusionError>(())
                })();
                comm.agree(cut).map_err(agreed)?;
                let (received, _) = comm.alltoallv(&send, &counts).map_err(external)?;
                let mut output = vec![Vec::new(); n_out];
                let decoded = ipc::decode(&received, |out, batch| {
                    output
                        .get_mut(out)
                        .ok_or_else(|| DataFusionError::Internal(format!("exchange: partition {out} received")))?
                        .push(batch);
                    Ok(())
                });
                comm.agree(decoded).map_err(agreed)?;
                output
            }
            ExchangeKind::Gather | ExchangeKind::Concat { .. } => {
                let mut output = vec![Vec::new(); n_in];
                let owned_anywhere = self.input_placement.iter().any(|p| matches!(p, Placement::Owned(_)));
                let mut send = Vec::new();
                let encoded = (|| {
                    for (i, batches) in drained {
                        match self.input_placement[i] {
                            Placement::Everywhere => output[i] = batches,
                            Placement::Owned(_) => ipc::encode(&mut send, &schema, i, &batches)?,
                        }
                    }
                    Ok::<_, DataFusionError>(())
                })();
                comm.agree(encoded).map_err(agreed)?;
                if owned_anywhere {
                    let received = if root_only {
                        comm.gatherv(&send, 0)
                            .map_err(external)?
                            .map(|r| r.0)
                            .unwrap_or_default()
                    } else {
                        comm.allgatherv(&send).map_err(external)?.0
                    };
                    let decoded = ipc::decode(&received, |i, batch| {
                        output
                            .get_mut(i)
                            .ok_or_else(|| DataFusionError::Internal(format!("exchange: partition {i} received")))?
                            .push(batch);
                        Ok(())
                    });
                    comm.agree(decoded).map_err(agreed)?;
                }
                match self.kind {
                    ExchangeKind::Concat { fetch } => vec![first_rows(&output.concat(), fetch.unwrap_or(usize::MAX))],
                    _ => output,
                }
            }
        };
        *self.lock() = Some(output);
        Ok(())
    }

    /// Executes and collects the input partitions `runs`.
    async fn drain(
        &self,
        runs: &[usize],
        ctx: &Arc<TaskContext>,
        cancel: &AtomicBool,
        me: usize,
    ) -> Result<Vec<(usize, Vec<RecordBatch>)>> {
        let cancelled = || DataFusionError::Execution(format!("query cancelled on rank {me}"));
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        let mut drained = Vec::with_capacity(runs.len());
        for &i in runs {
            let mut stream = self.input.execute(i, Arc::clone(ctx))?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                if cancel.load(Ordering::Relaxed) {
                    return Err(cancelled());
                }
                let batch = batch?;
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
            }
            drained.push((i, batches));
        }
        Ok(drained)
    }

    /// Forgets the materialized rows (after the query).
    pub fn release(&self) {
        *self.lock() = None;
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
            ExchangeKind::Shuffle(p) => write!(f, "MpiShuffleExec: partitioning={p}"),
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
        Ok(Arc::new(ExchangeExec::new(
            self.kind.clone(),
            input,
            self.input_placement.clone(),
        )))
    }

    fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let guard = self.lock();
        let output = guard
            .as_ref()
            .ok_or_else(|| DataFusionError::Internal("ExchangeExec executed before its stage ran".into()))?;
        let batches = output
            .get(partition)
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("ExchangeExec has no partition {partition}")))?;
        Ok(Box::pin(MemoryStream::try_new(batches, self.input.schema(), None)?))
    }
}
