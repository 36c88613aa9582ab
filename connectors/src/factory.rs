//! `CREATE EXTERNAL TABLE … STORED AS PARQUET` for distributed tables.

use std::sync::Arc;

use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::CreateExternalTable;
use datafusion::prelude::SessionContext;

use engine::Comm;

use crate::error::ConnectorError;
use crate::table::DistributedParquetTable;

/// Creates [`DistributedParquetTable`]s for `STORED AS PARQUET` over a communicator.
/// Collective: every rank of it must execute the same `CREATE EXTERNAL TABLE` statement.
pub struct DistributedParquetFactory {
    comm: &'static Comm,
}

impl std::fmt::Debug for DistributedParquetFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedParquetFactory")
            .field("ranks", &self.comm.size())
            .finish()
    }
}

impl DistributedParquetFactory {
    /// The factory whose tables are split over the ranks of `comm`.
    pub fn new(comm: &'static Comm) -> Self {
        DistributedParquetFactory { comm }
    }
}

#[async_trait::async_trait]
impl TableProviderFactory for DistributedParquetFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let location = match cmd.locations.as_slice() {
            [one] => one,
            many => {
                return Err(ConnectorError::Location {
                    location: many.join(", "),
                    detail: "give one location (a file, directory, glob or URL)".into(),
                }
                .into());
            }
        };
        if !cmd.table_partition_cols.is_empty() {
            return Err(ConnectorError::Location {
                location: location.clone(),
                detail: "PARTITIONED BY is not supported for distributed tables".into(),
            }
            .into());
        }
        let table = DistributedParquetTable::open(self.comm, location, state).await?;
        if !cmd.schema.fields().is_empty() {
            let declared: Vec<_> = cmd
                .schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
            let actual: Vec<_> = table
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect();
            if declared != actual {
                return Err(ConnectorError::Location {
                    location: location.clone(),
                    detail: format!("declared columns {declared:?} differ from the files' columns {actual:?}"),
                }
                .into());
            }
        }
        Ok(Arc::new(table))
    }
}

/// Makes `STORED AS PARQUET` create tables distributed over `comm` in `ctx`.
pub fn install(ctx: &SessionContext, comm: &'static Comm) {
    ctx.state_ref()
        .write()
        .table_factories_mut()
        .insert("PARQUET".into(), Arc::new(DistributedParquetFactory::new(comm)));
}

/// The same, on a state builder (call after `with_default_features`).
pub fn install_in_builder(builder: SessionStateBuilder, comm: &'static Comm) -> SessionStateBuilder {
    builder.with_table_factory("PARQUET".into(), Arc::new(DistributedParquetFactory::new(comm)))
}
