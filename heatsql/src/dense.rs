//! Parquet scans as dense sources: `connectors::DenseScan` behind `udfs::convert::DenseSource`,
//! and the session extension that finds them in plans (installed by [`crate::HeatContext`]).

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;
use udfs::convert::{DenseOut, DenseScans, DenseSource};

/// Partitions of a plain distributed Parquet scan, opened on first use.
#[derive(Debug)]
struct ParquetDense {
    scan: connectors::DenseScan,
    open: Option<connectors::dense::OpenDenseScan>,
}

impl DenseSource for ParquetDense {
    fn schema(&self) -> SchemaRef {
        std::sync::Arc::clone(self.scan.schema())
    }

    fn supports(&self, data_type: &DataType) -> bool {
        connectors::dense::is_dense_type(data_type)
    }

    fn open(&mut self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let open = self.scan.open().await?;
            let rows = open.rows();
            self.open = Some(open);
            Ok(rows)
        })
    }

    fn read<'a>(
        &'a mut self,
        columns: &'a [usize],
        out: DenseOut<'a>,
        stride: usize,
    ) -> BoxFuture<'a, Result<Vec<u64>>> {
        Box::pin(async move {
            let open = self
                .open
                .as_ref()
                .ok_or_else(|| DataFusionError::Internal("dense scan read before it was opened".into()))?;
            let counts = match out {
                DenseOut::F64(out) => open.read_into(columns, out, stride).await?,
                DenseOut::F32(out) => open.read_into(columns, out, stride).await?,
            };
            Ok(counts)
        })
    }
}

fn find(plan: &dyn ExecutionPlan, partitions: &[usize], ctx: &TaskContext) -> Option<Box<dyn DenseSource>> {
    let scan = connectors::DenseScan::from_plan(plan, partitions, ctx)?;
    Some(Box::new(ParquetDense { scan, open: None }))
}

/// The session extension recognising plain scans of distributed Parquet tables.
pub(crate) fn parquet_dense_scans() -> DenseScans {
    DenseScans::new(find)
}
