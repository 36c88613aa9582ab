//! [`HeatContext`]: a DataFusion session in which every rank runs the same statements.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{TimeZone, Utc};

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::{CopyToSource, CopyToStatement, DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement as SQLStatement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use engine::Comm;

use crate::frame::HeatFrame;
use crate::settings::{JOIN_DYNAMIC_FILTERS, partitions_per_rank};

/// A heatsql session: DataFusion with distributed Parquet tables, MPI exchanges, distributed
/// `COPY TO` and heatsql's table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`,
/// `svd`, `matmul`, `dmd`).
///
/// SPMD: every rank creates a `HeatContext` and runs the same statements in the same order.
/// Tables are split row-wise over the ranks; [`HeatContext::sql`] plans a statement the same way
/// on every rank (with `target_partitions` = P × the threads of a rank, [`partitions_per_rank`])
/// and the returned [`HeatFrame`]
/// runs it with MPI exchanges where rows must meet, so every query returns exactly what
/// single-process DataFusion returns on the whole data.
///
/// ```no_run
/// # async fn job() -> heatsql::datafusion::error::Result<()> {
/// use heatsql::HeatContext;
///
/// // Run under `mpirun -n P`: every rank executes these lines.
/// let ctx = HeatContext::new();
/// ctx.sql("CREATE EXTERNAL TABLE points STORED AS PARQUET LOCATION 'data/points/'")
///     .await?;
/// // A small result every rank needs (the same batches everywhere) ...
/// let n = ctx.sql("SELECT count(*) AS n FROM points").await?.collect().await?;
/// // ... one only rank 0 prints ...
/// let top = ctx
///     .sql("SELECT id, x FROM points ORDER BY x DESC LIMIT 10")
///     .await?
///     .collect_on_root()
///     .await?;
/// // ... and a large one written where it was computed, one part file per rank.
/// ctx.sql("COPY (SELECT id, x * 2 AS y FROM points) TO 'out/y/' STORED AS PARQUET")
///     .await?;
/// # let _ = (n, top);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HeatContext {
    ctx: SessionContext,
    comm: &'static Comm,
    cancel: Arc<AtomicBool>,
}

impl Default for HeatContext {
    fn default() -> Self {
        Self::new()
    }
}

impl HeatContext {
    /// A session planning with [`partitions_per_rank`] partitions per rank (partition i of a
    /// table is part of rank i mod P's share; a rank runs its partitions in parallel),
    /// distributed `STORED AS PARQUET` tables, and MPI initialised.
    ///
    /// Settings that assume one process are off: file-scan work stealing (a partition would
    /// read row groups of partitions other ranks read) and, with several ranks, join dynamic
    /// filters (they wait for every build partition inside one process, and there each rank
    /// runs only its own; one rank runs them all, so it keeps them on, as DataFusion does). TopK
    /// and aggregate dynamic filters stay on: a bound from this rank's rows is valid globally.
    /// See [`crate::REQUIRED_SETTINGS`].
    pub fn new() -> Self {
        let comm = engine::runtime::start();
        let config = SessionConfig::new()
            .with_target_partitions(comm.size() * partitions_per_rank(comm))
            .with_information_schema(true)
            .set_bool("datafusion.optimizer.repartition_file_scans", false)
            .set_bool(JOIN_DYNAMIC_FILTERS, comm.size() == 1)
            .set_bool("datafusion.execution.enable_file_stream_work_stealing", false)
            .with_option_extension(udfs::settings::HeatsqlOptions::default())
            // DNDarray loads of plain Parquet scans decode straight into the tensor.
            .with_extension(Arc::new(crate::dense::parquet_dense_scans()));
        let state = SessionStateBuilder::new().with_config(config).with_default_features();
        let state = udfs::functions::install_in_builder(connectors::install_in_builder(state, comm)).build();
        let ctx = SessionContext::new_with_state(state);
        HeatContext {
            ctx,
            comm,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A flag that cancels the running query (and the next one, if none runs) on every rank
    /// when set on any rank: each rank checks it between batches, and the query's next stage
    /// fails everywhere with "query cancelled on rank r". Cleared when that query ends.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Sets the [`Self::cancel_flag`].
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The DataFusion session.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The communicator (rank, size, collectives).
    pub fn comm(&self) -> &'static Comm {
        self.comm
    }

    /// Collective. Registers the Parquet data at `location` (file, directory, glob or URL) as the
    /// distributed table `name`.
    pub async fn register_parquet(&self, name: &str, location: &str) -> Result<()> {
        let table = connectors::DistributedParquetTable::open(self.comm, location, &self.ctx.state()).await?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Collective. Registers `local`, this rank's rows, as the table `name` split row-wise over
    /// the ranks: its rows are rank 0's, then rank 1's, and so on (a rank may hold none). Every
    /// rank passes the same `schema`; queries see one table, as with Parquet tables. This is
    /// how results computed per rank (for instance from a DNDarray) come back into SQL.
    ///
    /// ```no_run
    /// # async fn job(ctx: &heatsql::HeatContext) -> heatsql::datafusion::error::Result<()> {
    /// // This rank's share of a query, transformed locally, registered again.
    /// let frame = ctx.sql("SELECT id, x FROM points").await?;
    /// let schema = frame.schema();
    /// let mine = frame.collect_local().await?;
    /// ctx.register_batches("mine", schema, mine).await?;
    /// let total = ctx.sql("SELECT count(*) FROM mine").await?.collect().await?;
    /// # let _ = total;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn register_batches(&self, name: &str, schema: SchemaRef, local: Vec<RecordBatch>) -> Result<()> {
        let table = connectors::RankSplitMemTable::try_new(self.comm, schema, local)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Collective. Registers a row-split (n × d) DNDarray as the table `name`: the `keep`
    /// columns of this rank's rows (if any, one row per local array row) followed by one float
    /// column per array column, named by `columns`. Row r of the table is global row r of the
    /// array.
    pub async fn register_array(
        &self,
        name: &str,
        array: &engine::DNDarray,
        columns: &[String],
        keep: Option<&RecordBatch>,
    ) -> Result<()> {
        // A replicated array would put its rows in the table once per rank.
        let batch = match array.split() {
            Some(0) => udfs::convert::to_batch(name, array, columns, keep).map_err(DataFusionError::from),
            other => Err(DataFusionError::Plan(format!(
                "register_array '{name}': expected an array split along rows (split 0), got split {other:?}"
            ))),
        };
        let batch = udfs::agree::agree(self.comm, batch)?;
        self.register_batches(name, batch.schema(), vec![batch]).await
    }

    /// Collective. Plans one SQL statement (DDL such as `CREATE EXTERNAL TABLE` runs now);
    /// the returned frame runs a query when collected. `COPY … TO … STORED AS PARQUET` writes
    /// one part per rank atomically and returns one row (`count`, the rows written on all
    /// ranks). `EXPLAIN` shows the distributed plan with its MPI exchanges. A planning error on
    /// any rank is returned on every rank.
    pub async fn sql(&self, sql: &str) -> Result<HeatFrame> {
        // One query start time everywhere: `now()` is folded into the plan while optimizing,
        // and plans must be the same on every rank.
        let start = self
            .comm
            .bcast_vec(vec![Utc::now().timestamp_nanos_opt().unwrap_or(0)], 0)
            .map_err(|e| DataFusionError::External(Box::new(e)))?[0];
        let mut state = self.ctx.state();
        state.execution_props_mut().query_execution_start_time = Some(Utc.timestamp_nanos(start));
        let planned = self.plan_sql(sql, &state).await;
        let frame = udfs::agree::agree(self.comm, planned)?;
        Ok(frame)
    }

    async fn plan_sql(&self, sql: &str, state: &SessionState) -> Result<HeatFrame> {
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?;
        if statements.len() != 1 {
            return Err(DataFusionError::Plan(format!(
                "expected one SQL statement, got {}",
                statements.len()
            )));
        }
        let mut statement = statements.pop_front().expect("one statement");
        udfs::functions::rewrite::relation_arguments_as_queries(&mut statement)?;
        match statement {
            DFStatement::CopyTo(copy) if is_parquet(&copy) => self.copy_to(copy, state).await,
            other => {
                let plan = state.statement_to_plan(other).await?;
                if let LogicalPlan::Explain(explain) = &plan
                    && !explain.verbose
                {
                    let inner = self.frame(self.dataframe(state, LogicalPlan::clone(&explain.plan)).await?);
                    return self.explain(inner).await;
                }
                Ok(self.frame(self.dataframe(state, plan).await?))
            }
        }
    }

    /// A logical plan as a frame: DDL and session statements run now (DataFusion's way, except
    /// `CREATE TABLE … AS`, whose query runs distributed); queries are planned with `state`.
    async fn dataframe(&self, state: &SessionState, plan: LogicalPlan) -> Result<DataFrame> {
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => self.create_table_as(state, create).await,
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => self.ctx.execute_logical_plan(plan).await,
            query => Ok(DataFrame::new(state.clone(), query)),
        }
    }

    /// `CREATE TABLE name AS query`: the query runs across the ranks and every rank keeps the
    /// same in-memory copy of its result (so later queries see identical tables everywhere).
    async fn create_table_as(&self, state: &SessionState, create: CreateMemoryTable) -> Result<DataFrame> {
        let empty = DataFrame::new(state.clone(), LogicalPlanBuilder::empty(false).build()?);
        let exists = self.ctx.table_exist(create.name.clone())?;
        if exists && create.if_not_exists {
            return Ok(empty);
        }
        if exists && !create.or_replace {
            return Err(DataFusionError::Execution(format!(
                "Table '{}' already exists",
                create.name
            )));
        }
        if create.temporary {
            return Err(DataFusionError::NotImplemented(
                "temporary tables are not supported".into(),
            ));
        }
        let input = DataFrame::new(state.clone(), LogicalPlan::clone(&create.input));
        let schema = Arc::new(input.schema().as_arrow().clone());
        let batches = self.frame(input).collect().await?;
        let table = MemTable::try_new(schema, vec![batches])?
            .with_constraints(create.constraints)
            .with_column_defaults(create.column_defaults.into_iter().collect());
        if exists {
            self.ctx.deregister_table(create.name.clone())?;
        }
        self.ctx.register_table(create.name, Arc::new(table))?;
        Ok(empty)
    }

    fn frame(&self, df: DataFrame) -> HeatFrame {
        HeatFrame::new(df, self.comm, Arc::clone(&self.cancel))
    }

    /// `EXPLAIN`: the logical plan and the distributed physical plan (what runs on every rank).
    async fn explain(&self, inner: HeatFrame) -> Result<HeatFrame> {
        let state = self.ctx.state();
        let options = &state.config().options().explain;
        let (logical_only, physical_only) = (options.logical_plan_only, options.physical_plan_only);
        let mut kinds = Vec::new();
        let mut texts = Vec::new();
        if !physical_only {
            kinds.push("logical_plan".to_string());
            let optimized = inner.dataframe().clone().into_optimized_plan()?;
            texts.push(optimized.display_indent().to_string());
        }
        if !logical_only {
            kinds.push("physical_plan".to_string());
            texts.push(inner.distributed_plan().await?.display());
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("plan_type", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(datafusion::arrow::array::StringArray::from(kinds)),
                Arc::new(datafusion::arrow::array::StringArray::from(texts)),
            ],
        )?;
        Ok(self.frame(self.ctx.read_batch(batch)?))
    }

    async fn copy_to(&self, copy: CopyToStatement, state: &SessionState) -> Result<HeatFrame> {
        if !copy.partitioned_by.is_empty() {
            return Err(DataFusionError::Plan(
                "COPY: PARTITIONED BY is not supported for distributed output".into(),
            ));
        }
        let source = match copy.source {
            CopyToSource::Query(q) => {
                let plan = state
                    .statement_to_plan(DFStatement::Statement(Box::new(SQLStatement::Query(q))))
                    .await?;
                self.dataframe(state, plan).await?
            }
            CopyToSource::Relation(name) => self.ctx.table(name.to_string()).await?,
        };
        let options: Vec<(String, String)> = copy.options.into_iter().map(|(k, v)| (k, value_text(v))).collect();
        // Each rank writes its share of the result; the part files in rank order hold the rows
        // in the query's order. Errors are agreed inside.
        let stream = self.frame(source).execute_local().await?;
        let rows = connectors::copy::copy_to_parquet(&self.ctx, self.comm, stream, &copy.target, &options).await?;
        let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(UInt64Array::from(vec![rows]))])?;
        Ok(self.frame(self.ctx.read_batch(batch)?))
    }
}

fn is_parquet(copy: &CopyToStatement) -> bool {
    match &copy.stored_as {
        Some(s) => s.eq_ignore_ascii_case("parquet"),
        None => copy.target.ends_with('/') || copy.target.ends_with(".parquet"),
    }
}

fn value_text(v: Value) -> String {
    match v {
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::EscapedStringLiteral(s) => s,
        Value::Number(n, _) => n.to_string(),
        other => other.to_string(),
    }
}
