//! [`HeatContext`]: a DataFusion session in which every rank runs the same statements.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::parser::{CopyToSource, CopyToStatement, DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement as SQLStatement, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use engine::Comm;

/// A heatsql session: DataFusion with distributed Parquet tables and distributed `COPY TO`.
///
/// SPMD: every rank creates a `HeatContext` and runs the same statements in the same order.
/// Tables are split row-wise: a query returns, on each rank, the rows computed from that rank's
/// share. (Until MPI exchanges land — issue #4 — that is exact for row-wise queries: projections,
/// filters and scalar expressions; aggregates, joins, sorts and limits are per rank.)
pub struct HeatContext {
    ctx: SessionContext,
    comm: &'static Comm,
}

impl Default for HeatContext {
    fn default() -> Self {
        Self::new()
    }
}

impl HeatContext {
    /// A session with one partition per rank (every rank plans alike and keeps its rows in
    /// order), distributed `STORED AS PARQUET` tables, and MPI initialised.
    pub fn new() -> Self {
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_information_schema(true)
            .set_bool("datafusion.optimizer.repartition_file_scans", false)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true);
        let ctx = SessionContext::new_with_config(config);
        connectors::install(&ctx);
        HeatContext {
            ctx,
            comm: Comm::world(),
        }
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
        let table = connectors::DistributedParquetTable::open(location, &self.ctx.state()).await?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Collective. Runs one SQL statement. `COPY … TO … STORED AS PARQUET` writes one part per
    /// rank atomically and returns one row (`count`, the rows written on all ranks).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?;
        if statements.len() != 1 {
            return Err(DataFusionError::Plan(format!(
                "expected one SQL statement, got {}",
                statements.len()
            )));
        }
        let statement = statements.pop_front().expect("one statement");
        match statement {
            DFStatement::CopyTo(copy) if is_parquet(&copy) => self.copy_to(copy).await,
            other => {
                let plan = self.ctx.state().statement_to_plan(other).await?;
                self.ctx.execute_logical_plan(plan).await
            }
        }
    }

    async fn copy_to(&self, copy: CopyToStatement) -> Result<DataFrame> {
        if !copy.partitioned_by.is_empty() {
            return Err(DataFusionError::Plan(
                "COPY: PARTITIONED BY is not supported for distributed output".into(),
            ));
        }
        let source = match copy.source {
            CopyToSource::Query(q) => {
                let plan = self
                    .ctx
                    .state()
                    .statement_to_plan(DFStatement::Statement(Box::new(SQLStatement::Query(q))))
                    .await?;
                self.ctx.execute_logical_plan(plan).await?
            }
            CopyToSource::Relation(name) => self.ctx.table(name.to_string()).await?,
        };
        let options: Vec<(String, String)> = copy.options.into_iter().map(|(k, v)| (k, value_text(v))).collect();
        let stream = source.execute_stream().await;
        // A planning failure on one rank must not leave the others waiting in COPY.
        let stream = self
            .comm
            .agree(stream)
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let rows = connectors::copy::copy_to_parquet(&self.ctx, stream, &copy.target, &options).await?;
        let schema = Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(UInt64Array::from(vec![rows]))])?;
        self.ctx.read_batch(batch)
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
