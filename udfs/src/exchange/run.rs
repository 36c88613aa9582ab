//! Running a distributed plan: stages in one order on every rank, then this rank's output.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{ExecutionPlan, displayable};
use engine::Comm;
use futures::StreamExt;

use super::concat::MpiConcatExec;
use super::placement::Placement;
use super::stage::{Stage, computes};
use crate::agree::agree;
use crate::convert::{DenseScans, LoadInput};

/// A plan with its exchanges (from [`super::distribute`]) and its stages in the order they
/// run.
#[derive(Debug)]
pub struct DistributedPlan {
    plan: Arc<dyn ExecutionPlan>,
    placement: Vec<Placement>,
    stages: Vec<Arc<dyn Stage>>,
    size: usize,
}

impl DistributedPlan {
    pub(crate) fn new(
        plan: Arc<dyn ExecutionPlan>,
        placement: Vec<Placement>,
        stages: Vec<Arc<dyn Stage>>,
        size: usize,
    ) -> Self {
        DistributedPlan {
            plan,
            placement,
            stages,
            size,
        }
    }

    /// The rewritten plan (its root's partitions are placed as [`Self::placement`] says).
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }

    /// Where each output partition of the root lives.
    pub fn placement(&self) -> &[Placement] {
        &self.placement
    }

    /// The same plan with one more exchange at the root so that every rank holds the whole
    /// result in one partition, in partition order (unless it already does).
    pub fn gathered(mut self) -> Self {
        if self.placement == [Placement::Everywhere] {
            return self;
        }
        if self.size == 1 && self.placement.len() == 1 {
            return self;
        }
        let node = Arc::new(MpiConcatExec::new(Arc::clone(&self.plan), self.placement.clone(), None));
        self.stages.push(Arc::clone(&node) as Arc<dyn Stage>);
        self.placement = node.output_placement();
        self.plan = node;
        self
    }

    /// Makes the last gather below the root (reached through nodes with one input) deliver
    /// its rows to rank 0 only: for results wanted on rank 0 ([`Self::collect_on_root`]) or
    /// streamed by rank 0 alone ([`Self::local_stream`] of a plan whose root is everywhere).
    /// Nothing else holds a copy of the whole result.
    pub fn gather_to_root(&self) {
        let mut node = Arc::clone(&self.plan);
        loop {
            if let Some(stage) = self.stages.iter().find(|s| computes(s.as_ref(), node.as_ref())) {
                // A gather delivers to rank 0 only; any other stage (a shuffle, a table
                // function, whose inputs are laid out as it needs them) stays as it is.
                stage.deliver_to_root();
                return;
            }
            let children = node.children();
            if children.len() != 1 {
                return;
            }
            let next = Arc::clone(children[0]);
            node = next;
        }
    }

    /// The indented plan with its exchanges (`MpiShuffleExec`, `MpiGatherExec`, `MpiConcatExec`).
    pub fn display(&self) -> String {
        displayable(self.plan.as_ref()).indent(true).to_string()
    }

    /// Collective. Runs every stage, children first, in the same order on every rank.
    /// Errors are agreed: every rank returns the same error.
    /// With `heatsql.progress` on, each stage is reported as a `query` progress event when it
    /// starts (`2/3 MpiShuffleExec`), and the task finishes when the last one ends.
    pub async fn materialize(&self, comm: &'static Comm, ctx: Arc<TaskContext>, cancel: &AtomicBool) -> Result<()> {
        let progress = crate::settings::progress_enabled(&ctx);
        let total = self.stages.len() as u64;
        let result = async {
            // Checked again between batches by every stage, and by the final stage's reader.
            let cancelled = cancelled(comm, cancel);
            agree(comm, cancelled)?;
            for (i, stage) in self.stages.iter().enumerate() {
                if progress {
                    engine::progress::report("query", i as u64 + 1, Some(total), stage.stage_name());
                }
                stage.run(comm, Arc::clone(&ctx), cancel).await?;
            }
            Ok(())
        }
        .await;
        if progress && total > 0 {
            engine::progress::finish("query");
        }
        result
    }

    /// This rank's share of the result, after [`Self::materialize`]: the root partitions it
    /// owns (and, on rank 0, those present everywhere), in partition order. The rows of all
    /// ranks' streams, in rank order, are the result.
    pub fn local_stream(&self, comm: &'static Comm, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        super::in_order(&self.plan, self.mine(comm.rank()), ctx)
    }

    /// [`Self::local_stream`] for a load into a DNDarray: when this rank's share is partitions
    /// it owns of a root the session recognises as a dense source (the plain scan of a
    /// Parquet table, [`crate::convert::DenseScans`]), that source comes along.
    pub fn local_input(&self, comm: &'static Comm, ctx: Arc<TaskContext>) -> Result<LoadInput> {
        let me = comm.rank();
        let mine = self.mine(me);
        let own = !mine.is_empty() && mine.iter().all(|&p| self.placement[p] == Placement::Owned(me));
        let dense = if own {
            DenseScans::find(&ctx, self.plan.as_ref(), &mine)
        } else {
            None
        };
        Ok(LoadInput {
            stream: self.local_stream(comm, ctx)?,
            dense,
        })
    }

    /// The root partitions rank `me` serves: those it owns and, on rank 0, those present
    /// everywhere, in partition order.
    fn mine(&self, me: usize) -> Vec<usize> {
        (0..self.placement.len())
            .filter(|&i| match self.placement[i] {
                Placement::Owned(r) => r == me,
                Placement::Everywhere => me == 0,
            })
            .collect()
    }

    /// Collective. The whole result on every rank (materializes, gathers, agrees).
    pub async fn collect_everywhere(
        self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &AtomicBool,
    ) -> Result<Vec<RecordBatch>> {
        self.collect(comm, ctx, cancel, false).await
    }

    /// Collective. The whole result on rank 0 and nothing elsewhere (materializes, gathers to
    /// rank 0 only, agrees).
    pub async fn collect_on_root(
        self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &AtomicBool,
    ) -> Result<Vec<RecordBatch>> {
        self.collect(comm, ctx, cancel, true).await
    }

    async fn collect(
        self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &AtomicBool,
        root_only: bool,
    ) -> Result<Vec<RecordBatch>> {
        let plan = self.gathered();
        if root_only {
            plan.gather_to_root();
        }
        plan.materialize(comm, Arc::clone(&ctx), cancel).await?;
        let result = if root_only && comm.rank() != 0 {
            Ok(Vec::new())
        } else {
            match plan.plan.execute(0, ctx) {
                Ok(mut stream) => {
                    let mut batches = Vec::new();
                    loop {
                        if let Err(e) = cancelled(comm, cancel) {
                            break Err(e);
                        }
                        match stream.next().await {
                            Some(Ok(b)) => batches.push(b),
                            Some(Err(e)) => break Err(e),
                            None => break Ok(batches),
                        }
                    }
                }
                Err(e) => Err(e),
            }
        };
        plan.release();
        agree(comm, result)
    }

    /// Frees the rows held by the exchanges.
    pub fn release(&self) {
        for stage in &self.stages {
            stage.release();
        }
    }
}

/// The error of a query cancelled on this rank (see `HeatContext::cancel_flag`).
fn cancelled(comm: &Comm, cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(datafusion::error::DataFusionError::Execution(format!(
            "query cancelled on rank {}",
            comm.rank()
        )))
    } else {
        Ok(())
    }
}

/// A 64-bit FNV-1a digest of the plan as displayed (every node and its expressions).
pub fn fingerprint(plan: &dyn ExecutionPlan) -> u64 {
    let text = displayable(plan).indent(true).to_string();
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
