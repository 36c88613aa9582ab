//! [`HeatFrame`]: a planned statement, run across the ranks when collected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::DataFrame;
use engine::Comm;
use futures::TryStreamExt;
use udfs::convert::LoadInput;
use udfs::exchange::{DistributedPlan, distribute, fingerprint};

/// A statement planned by [`crate::HeatContext::sql`]. Every method that runs it is collective:
/// all ranks call the same method on the same statement.
pub struct HeatFrame {
    df: DataFrame,
    comm: &'static Comm,
    cancel: Arc<AtomicBool>,
}

impl std::fmt::Debug for HeatFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeatFrame").field("schema", &self.schema()).finish()
    }
}

impl HeatFrame {
    pub(crate) fn new(df: DataFrame, comm: &'static Comm, cancel: Arc<AtomicBool>) -> Self {
        HeatFrame { df, comm, cancel }
    }

    /// The result's columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(self.df.schema().inner())
    }

    /// The DataFusion frame (logical plan and session). Collecting it with DataFusion's own
    /// methods would run every partition in this process: use the methods of `HeatFrame`.
    pub fn dataframe(&self) -> &DataFrame {
        &self.df
    }

    /// Collective. The physical plan, checked to be the same on every rank (a fingerprint of
    /// the plan text is compared), with MPI exchanges inserted.
    pub async fn distributed_plan(&self) -> Result<DistributedPlan> {
        self.check_settings()?;
        let planned = self.df.clone().create_physical_plan().await;
        let plan = udfs::agree::agree(self.comm, planned)?;
        let mine = fingerprint(plan.as_ref());
        let all = self
            .comm
            .allgather(&[mine])
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if let Some(rank) = all.iter().position(|&f| f != all[0]) {
            return Err(DataFusionError::Plan(format!(
                "the plan differs between ranks (rank {rank}'s plan is not rank 0's): every rank must run \
                 the same statements in the same order on the same tables"
            )));
        }
        let key_filters = udfs::settings::join_key_filters_enabled(&self.df.task_ctx());
        distribute(
            plan,
            self.comm.size(),
            &connectors::table::is_rank_split_scan,
            key_filters,
        )
    }

    /// The settings of [`crate::settings::REQUIRED_SETTINGS`] still hold (the same on every rank).
    fn check_settings(&self) -> Result<()> {
        let task = self.df.task_ctx();
        let entries = task.session_config().options().entries();
        let ranks = self.comm.size();
        for (name, want) in crate::settings::REQUIRED_SETTINGS {
            let have = entries.iter().find(|e| e.key == name).and_then(|e| e.value.clone());
            if name == "datafusion.execution.target_partitions" {
                let partitions = have.as_deref().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                if partitions == 0 || partitions % ranks != 0 {
                    let k = crate::settings::partitions_per_rank(self.comm);
                    return Err(DataFusionError::Plan(format!(
                        "heatsql runs distributed plans with {name} a multiple of the number of ranks ({ranks}), \
                         not {}; set it back (SET {name} = {})",
                        have.as_deref().unwrap_or("unset"),
                        ranks * k
                    )));
                }
                continue;
            }
            if name == crate::settings::JOIN_DYNAMIC_FILTERS && ranks == 1 {
                // One rank runs every partition of a join: DataFusion's own behaviour holds.
                continue;
            }
            if have.as_deref() != Some(want) {
                return Err(DataFusionError::Plan(format!(
                    "heatsql runs distributed plans with {name} = {want}; set it back (SET {name} = {want})"
                )));
            }
        }
        Ok(())
    }

    /// Collective. The complete result, on every rank (the same batches everywhere). Any
    /// rank's error (or cancellation) is the error on every rank.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        let result = self.collect_inner().await;
        self.cancel.store(false, Ordering::Relaxed);
        result
    }

    async fn collect_inner(&self) -> Result<Vec<RecordBatch>> {
        let plan = self.distributed_plan().await?;
        let ctx = self.df.task_ctx();
        plan.collect_everywhere(self.comm, Arc::new(ctx), &self.cancel).await
    }

    /// Collective. The complete result on rank 0, nothing on the other ranks (which hold no
    /// copy of it at any point): what a shell prints. Errors are agreed.
    pub async fn collect_on_root(self) -> Result<Vec<RecordBatch>> {
        let result = async {
            let plan = self.distributed_plan().await?;
            let ctx = Arc::new(self.df.task_ctx());
            plan.collect_on_root(self.comm, ctx, &self.cancel).await
        }
        .await;
        self.cancel.store(false, Ordering::Relaxed);
        result
    }

    /// Collective. This rank's share of the result, left distributed: the rows of all ranks,
    /// in rank order, are the result (in the query's order when it has an ORDER BY). For
    /// feeding COPY TO or a DNDarray without gathering. Every exchange has run (and agreed)
    /// when this returns; errors in the last stage surface while the stream is read.
    pub async fn execute_local(self) -> Result<SendableRecordBatchStream> {
        let result = self.local_input().await.map(LoadInput::into_stream);
        self.cancel.store(false, Ordering::Relaxed);
        result
    }

    /// Runs every stage and opens this rank's share (with its dense source, when the result
    /// is a plain Parquet scan): what [`Self::execute_local`] and [`Self::to_dndarray`] read.
    async fn local_input(&self) -> Result<LoadInput> {
        let plan = self.distributed_plan().await?;
        let ctx = Arc::new(self.df.task_ctx());
        // A result that ends in a gather (ORDER BY) is streamed by rank 0 alone.
        plan.gather_to_root();
        plan.materialize(self.comm, Arc::clone(&ctx), &self.cancel).await?;
        plan.local_input(self.comm, ctx)
    }

    /// Collective. The result as a row-split DNDarray (n × d, split along rows, this rank
    /// holding its share of the result in order), the feature columns chosen, converted and
    /// checked for NULL/NaN as `spec` says, with the keep columns aligned row by row. The rows
    /// never leave their rank (see [`udfs::convert::load`]).
    ///
    /// ```no_run
    /// # async fn job(ctx: &heatsql::HeatContext) -> Result<(), Box<dyn std::error::Error>> {
    /// use heatsql::convert::LoadSpec;
    ///
    /// let mut spec = LoadSpec::new("centre");
    /// spec.keep = vec!["id".into()];
    /// let loaded = ctx.sql("SELECT id, x, y FROM points").await?.to_dndarray(&spec).await?;
    /// // rows × 2, split along rows; the column means are replicated (one allreduce).
    /// let mean = loaded.array.mean(Some(0))?;
    /// let centred = heatsql::DNDarray::from_pieces(loaded.array.local() - mean.local(), 0)?;
    /// ctx.register_array("centred", &centred, &loaded.columns, loaded.keep.as_ref()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn to_dndarray(self, spec: &udfs::convert::LoadSpec) -> Result<udfs::convert::Loaded> {
        let result = async {
            // Opening this rank's streams can fail on one rank only.
            let input = udfs::agree::agree(self.comm, self.local_input().await)?;
            udfs::convert::load(self.comm, input, spec)
                .await
                .map_err(DataFusionError::from)
        }
        .await;
        self.cancel.store(false, Ordering::Relaxed);
        result
    }

    /// Collective. This rank's share of the result (see [`Self::execute_local`]) collected,
    /// with errors agreed.
    pub async fn collect_local(self) -> Result<Vec<RecordBatch>> {
        let comm = self.comm;
        let local = match self.execute_local().await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await,
            Err(e) => Err(e),
        };
        udfs::agree::agree(comm, local)
    }
}
