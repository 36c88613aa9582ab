//! [`RankSplitMemTable`]: record batches held in memory, split row-wise over the ranks.
//!
//! Each rank contributes its own rows (for instance a DNDarray's local rows turned back into
//! Arrow); the table's rows are rank 0's rows, then rank 1's, and so on. Like a
//! [`crate::DistributedParquetTable`], its scan has P × k partitions (k per rank), partition r·k
//! being rank r's rows, and its schema and statistics are global (the same on every rank), so every rank
//! plans the same way and the exchanges of `udfs::exchange` treat it as a rank-split leaf
//! ([`crate::table::is_rank_split_scan`] recognises [`RankSplitMemoryExec`]).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use engine::Comm;

use crate::error::{ConnectorError, Result};

/// In-memory batches distributed row-wise: this rank holds its own rows only.
#[derive(Debug)]
pub struct RankSplitMemTable {
    /// The global schema (the same on every rank).
    schema: SchemaRef,
    /// This rank's rows.
    local: Vec<RecordBatch>,
    /// Rows held by each rank.
    rows_per_rank: Vec<u64>,
    /// This rank.
    rank: usize,
}

impl RankSplitMemTable {
    /// Collective over `comm`. A table of every rank's `local` batches, which must have `schema`'s columns
    /// (names, types, nullability). Every rank must pass the same schema: a rank whose schema
    /// differs from rank 0's is an error on every rank showing both.
    pub fn try_new(comm: &Comm, schema: SchemaRef, local: Vec<RecordBatch>) -> Result<Self> {
        let checked = local
            .iter()
            .find(|b| column_list(&b.schema()) != column_list(&schema))
            .map_or(Ok(()), |b| {
                Err(ConnectorError::Register(format!(
                    "a batch has columns ({}) but the table's schema is ({})",
                    column_list(&b.schema()),
                    column_list(&schema)
                )))
            });
        comm.agree(checked)?;
        let text = column_list(&schema);
        let (all, counts) = comm.allgatherv(text.as_bytes())?;
        let mut at = 0;
        for (r, c) in counts.iter().enumerate() {
            let theirs = String::from_utf8_lossy(&all[at..at + c]);
            if theirs != text {
                return Err(ConnectorError::Register(format!(
                    "rank {r} has columns ({theirs}) but rank 0 has ({})",
                    String::from_utf8_lossy(&all[..counts[0]])
                )));
            }
            at += c;
        }
        let rows: u64 = local.iter().map(|b| b.num_rows() as u64).sum();
        let rows_per_rank = comm.allgather(&[rows])?;
        Ok(RankSplitMemTable {
            schema,
            local,
            rows_per_rank,
            rank: comm.rank(),
        })
    }

    /// Rows held by each rank.
    pub fn rows_per_rank(&self) -> &[u64] {
        &self.rows_per_rank
    }

    /// Rows of all ranks.
    pub fn num_rows(&self) -> u64 {
        self.rows_per_rank.iter().sum()
    }
}

/// `name type [NOT NULL], …`: what must match between batches and across ranks.
fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            let null = if f.is_nullable() { "" } else { " NOT NULL" };
            format!("{} {}{null}", f.name(), f.data_type())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait::async_trait]
impl TableProvider for RankSplitMemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(self.num_rows() as usize)))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let ranks = self.rows_per_rank.len();
        let partitions = ranks * (state.config().target_partitions() / ranks).max(1);
        let (schema, local) = match projection {
            Some(p) => (
                Arc::new(self.schema.project(p)?),
                self.local.iter().map(|b| b.project(p)).collect::<Result<Vec<_>, _>>()?,
            ),
            None => (Arc::clone(&self.schema), self.local.clone()),
        };
        Ok(Arc::new(RankSplitMemoryExec::new(
            schema,
            local,
            self.rows_per_rank.clone(),
            self.rank,
            partitions,
        )))
    }
}

/// The scan of a [`RankSplitMemTable`]: `target_partitions` = P × k partitions, partition r·k
/// being rank r's rows and the others empty (this rank can produce only its own rows; the
/// other partitions are empty here). Its display shows
/// nothing rank-specific, so plans are the same on every rank.
#[derive(Debug)]
pub struct RankSplitMemoryExec {
    /// Output columns.
    schema: SchemaRef,
    /// This rank's rows.
    local: Vec<RecordBatch>,
    /// Rows held by each rank (the partition statistics).
    rows_per_rank: Vec<u64>,
    /// This rank.
    rank: usize,
    /// Partitioning (unknown partitions), ordering, boundedness.
    properties: Arc<PlanProperties>,
}

impl RankSplitMemoryExec {
    fn new(
        schema: SchemaRef,
        local: Vec<RecordBatch>,
        rows_per_rank: Vec<u64>,
        rank: usize,
        partitions: usize,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(rows_per_rank.len())),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        RankSplitMemoryExec {
            schema,
            local,
            rows_per_rank,
            rank,
            properties: Arc::new(properties),
        }
    }
}

impl RankSplitMemoryExec {
    /// The partition holding rank `rank`'s rows (the first of its k).
    fn first_partition(&self, rank: usize) -> usize {
        let per_rank = self.properties.output_partitioning().partition_count() / self.rows_per_rank.len().max(1);
        rank * per_rank.max(1)
    }
}

impl DisplayAs for RankSplitMemoryExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "RankSplitMemoryExec: partitions={}",
            self.properties.output_partitioning().partition_count()
        )
    }
}

impl ExecutionPlan for RankSplitMemoryExec {
    fn name(&self) -> &'static str {
        "RankSplitMemoryExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let batches = if partition == self.first_partition(self.rank) {
            self.local.clone()
        } else {
            Vec::new()
        };
        Ok(Box::pin(MemoryStream::try_new(
            batches,
            Arc::clone(&self.schema),
            None,
        )?))
    }

    fn statistics_from_inputs(&self, _inputs: &[Arc<Statistics>], args: &StatisticsArgs) -> DFResult<Arc<Statistics>> {
        let per_rank = self.properties.output_partitioning().partition_count() / self.rows_per_rank.len().max(1);
        let rows = match args.partition() {
            Some(p) if p % per_rank.max(1) == 0 => self.rows_per_rank.get(p / per_rank.max(1)).copied().unwrap_or(0),
            Some(_) => 0,
            None => self.rows_per_rank.iter().sum(),
        };
        Ok(Arc::new(
            Statistics::new_unknown(&self.schema).with_num_rows(Precision::Exact(rows as usize)),
        ))
    }
}
