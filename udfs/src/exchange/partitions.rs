//! Reading several partitions of one plan: each runs as a task of its own.
//!
//! DataFusion runs the partitions of a plan together, and some operators depend on that: a
//! hash join with a dynamic filter (on when one rank runs the query) waits until every one of
//! its build partitions has been collected before any partition probes. A reader that polls
//! partition 0 to its end before it polls partition 1 would wait forever. So every place in
//! heatsql that reads several partitions of a plan (an exchange's input, this rank's share of
//! the result, a table function's input, a scalar subquery) starts each partition as a
//! DataFusion [`SpawnedTask`], which also puts a rank's partitions on its cores.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::{EmptyRecordBatchStream, RecordBatchStreamAdapter};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};

/// What a partition's task sends: its non-empty batches tagged with the partition, or the
/// error that ended it.
pub(super) type Tagged = Result<(usize, RecordBatch)>;

/// Batches a partition's task may have buffered ahead of its reader (then it waits).
pub(super) const BUFFERED_PER_PARTITION: usize = 2;

/// Runs partition `i` of `input` as a task sending its non-empty batches to `tx` (stopping
/// after an error, or when the receiver is gone).
pub(super) fn spawn_partition(
    input: Arc<dyn ExecutionPlan>,
    i: usize,
    ctx: Arc<TaskContext>,
    mut tx: mpsc::Sender<Tagged>,
) -> SpawnedTask<()> {
    SpawnedTask::spawn(async move {
        let mut stream = match input.execute(i, ctx) {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        while let Some(next) = stream.next().await {
            let stop = next.is_err();
            let item = match next {
                Ok(b) if b.num_rows() == 0 => continue,
                Ok(b) => Ok((i, b)),
                Err(e) => Err(e),
            };
            // The receiver is gone when its reader stopped (a LIMIT, a failure elsewhere).
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    })
}

/// Waits for a partition's task: an error if it did not finish (it panicked or was cancelled).
pub(super) async fn join(task: SpawnedTask<()>) -> Result<()> {
    task.join()
        .await
        .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))
}

/// Partitions `partitions` of `plan` as one stream, their batches in the order the partitions
/// are listed (partition order when sorted). Every partition runs at once, as a task of its
/// own with at most [`BUFFERED_PER_PARTITION`] batches ahead of the reader; dropping the stream
/// stops them. A partition whose task panicked is an error, not an end. One partition is
/// executed in place; none is an empty stream.
pub fn in_order(
    plan: &Arc<dyn ExecutionPlan>,
    partitions: Vec<usize>,
    ctx: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let schema = plan.schema();
    match partitions[..] {
        [] => return Ok(Box::pin(EmptyRecordBatchStream::new(schema))),
        [only] => return plan.execute(only, ctx),
        _ => {}
    }
    let runs: Vec<(mpsc::Receiver<Tagged>, Option<SpawnedTask<()>>)> = partitions
        .into_iter()
        .map(|i| {
            let (tx, rx) = mpsc::channel(BUFFERED_PER_PARTITION);
            let task = spawn_partition(Arc::clone(plan), i, Arc::clone(&ctx), tx);
            (rx, Some(task))
        })
        .collect();
    let batches = futures::stream::unfold((runs, 0usize), |(mut runs, mut at)| async move {
        while at < runs.len() {
            let (rx, task) = &mut runs[at];
            match rx.next().await {
                Some(Ok((_, batch))) => return Some((Ok(batch), (runs, at))),
                Some(Err(e)) => {
                    // The query fails: the other partitions stop when the stream is dropped.
                    let end = runs.len();
                    return Some((Err(e), (runs, end)));
                }
                None => {
                    let joined = match task.take() {
                        Some(task) => join(task).await,
                        None => Ok(()),
                    };
                    at += 1;
                    if let Err(e) = joined {
                        let end = runs.len();
                        return Some((Err(e), (runs, end)));
                    }
                }
            }
        }
        None
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::error::Result;
    use datafusion::execution::{SendableRecordBatchStream, TaskContext};
    use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
    use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
    use futures::StreamExt;
    use tokio::sync::Barrier;

    /// `n` partitions of three one-row batches each (partition i: 10·i, 10·i + 1, 10·i + 2).
    /// Every partition first waits until all `n` have started, as a partitioned hash join's
    /// dynamic filter waits for every build partition; partition `panics`, if any, panics.
    struct Waiting {
        props: Arc<PlanProperties>,
        barrier: Arc<Barrier>,
        panics: Option<usize>,
    }

    impl Waiting {
        fn plan(n: usize, panics: Option<usize>) -> Arc<dyn ExecutionPlan> {
            let props = PlanProperties::new(
                EquivalenceProperties::new(schema()),
                Partitioning::UnknownPartitioning(n),
                EmissionType::Incremental,
                Boundedness::Bounded,
            );
            Arc::new(Waiting {
                props: Arc::new(props),
                barrier: Arc::new(Barrier::new(n)),
                panics,
            })
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    impl fmt::Debug for Waiting {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("Waiting")
        }
    }

    impl DisplayAs for Waiting {
        fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("Waiting")
        }
    }

    impl ExecutionPlan for Waiting {
        fn name(&self) -> &str {
            "Waiting"
        }
        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }
        fn properties(&self) -> &Arc<PlanProperties> {
            &self.props
        }
        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            Vec::new()
        }
        fn with_new_children(self: Arc<Self>, _c: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
            Ok(self)
        }
        fn execute(&self, partition: usize, _ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
            let (barrier, panics) = (Arc::clone(&self.barrier), self.panics);
            let rows = futures::stream::once(async move {
                barrier.wait().await;
                assert_ne!(panics, Some(partition), "partition {partition} panics");
                futures::stream::iter((0..3).map(move |j| {
                    let v = Int64Array::from(vec![10 * partition as i64 + j]);
                    Ok(RecordBatch::try_new(schema(), vec![Arc::new(v)])?)
                }))
            })
            .flatten();
            Ok(Box::pin(RecordBatchStreamAdapter::new(schema(), rows)))
        }
    }

    async fn values(plan: &Arc<dyn ExecutionPlan>, partitions: Vec<usize>) -> Result<Vec<i64>> {
        let mut stream = super::in_order(plan, partitions, Arc::new(TaskContext::default()))?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.extend(batch?.column(0).as_primitive::<Int64Type>().values().iter().copied());
        }
        Ok(out)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn partitions_that_wait_for_each_other_come_in_the_order_listed() {
        let plan = Waiting::plan(3, None);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), values(&plan, vec![0, 1, 2])).await;
        let got = got.expect("in_order waited forever").expect("no error");
        assert_eq!(got, vec![0, 1, 2, 10, 11, 12, 20, 21, 22]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_partition_that_panics_is_an_error() {
        let plan = Waiting::plan(2, Some(1));
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), values(&plan, vec![0, 1])).await;
        let err = got.expect("in_order waited forever").expect_err("a panic is an error");
        assert!(err.to_string().contains("partition 1 panics"), "{err}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_or_no_partition() {
        let plan = Waiting::plan(1, None);
        assert_eq!(values(&plan, vec![0]).await.expect("one"), vec![0, 1, 2]);
        assert!(values(&plan, vec![]).await.expect("none").is_empty());
    }
}
