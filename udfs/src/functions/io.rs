//! What the functions share around their numerics: the common argument list, saved models
//! read back from Arrow, output rows cut into batches, inputs put in order.

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use tch::Tensor;

use super::args::{ArgKind, ArgSpec, Args, arg};

/// Arguments every function over feature columns takes.
pub(super) const COMMON: [ArgSpec; 5] = [
    arg("columns", ArgKind::Text),
    arg("keep", ArgKind::Text),
    arg("dtype", ArgKind::Text),
    arg("nulls", ArgKind::Text),
    arg("device", ArgKind::Text),
];

/// A function's own arguments followed by [`COMMON`].
pub(super) fn specs(own: &[ArgSpec]) -> Vec<ArgSpec> {
    own.iter().chain(COMMON.iter()).copied().collect()
}

/// `[a, b, c]` for EXPLAIN.
pub(super) fn names(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

/// `batch` cut into zero-copy slices of at most `batch_size` rows.
pub(super) fn slices(batch: &RecordBatch, batch_size: usize) -> Vec<RecordBatch> {
    let (rows, step) = (batch.num_rows(), batch_size.max(1));
    (0..rows)
        .step_by(step)
        .map(|at| batch.slice(at, step.min(rows - at)))
        .collect()
}

/// Column `name` of a model table as Float64 (cast from any numeric type).
pub(super) fn f64_column(batch: &RecordBatch, name: &str) -> Result<Float64Array> {
    let a = batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("model column {name} missing")))?;
    let a = cast(a, &DataType::Float64)?;
    a.as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal(format!("model column {name} is not Float64")))
}

/// The named columns of a model table as a rows × columns f64 tensor; a NULL or non-finite
/// value is an error `bad("column '…' has NULL or non-finite values")`.
pub(super) fn finite_matrix(
    batch: &RecordBatch,
    columns: &[String],
    bad: impl Fn(String) -> DataFusionError,
) -> Result<Tensor> {
    let mut cols = Vec::with_capacity(columns.len());
    for name in columns {
        let a = f64_column(batch, name)?;
        if a.null_count() > 0 || a.values().iter().any(|v| !v.is_finite()) {
            return Err(bad(format!("column '{name}' has NULL or non-finite values")));
        }
        cols.push(Tensor::from_slice(a.values()));
    }
    Ok(Tensor::stack(&cols, 1))
}

/// Defaults of the randomized/hierarchical solvers: extra directions (or kept triplets) and
/// power iterations.
pub(super) const OVERSAMPLES: i64 = 10;
pub(super) const POWER_ITER: i64 = 4;

/// `oversamples`, `power_iter` and `seed` of `pca`'s solvers and `svd`'s methods (`what`:
/// "solver" or "method", `name`: the one given): refused for a solver that does not use them
/// (unless `auto`), ≥ 0, else the defaults.
pub(super) fn solver_knobs(args: &Args, what: &str, name: &str) -> Result<(i64, i64, u64)> {
    for (a, used_by) in [
        ("oversamples", &["randomized", "hierarchical"][..]),
        ("power_iter", &["randomized"][..]),
        ("seed", &["randomized"][..]),
    ] {
        if args.has(a) && name != "auto" && !used_by.contains(&name) {
            let list = used_by
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(args.error(format!("{a} applies to {what} => {list}, not '{name}'")));
        }
    }
    let non_negative = |a: &str, default: i64| -> Result<i64> {
        match args.int(a) {
            Some(v) if v < 0 => Err(args.error(format!("{a} = {v} is out of range; expected a value ≥ 0"))),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    };
    Ok((
        non_negative("oversamples", OVERSAMPLES)?,
        non_negative("power_iter", POWER_ITER)?,
        args.int("seed").unwrap_or(0) as u64,
    ))
}

/// Collective. `input` with its rows sorted across ranks by the column `order` (named by the
/// argument `argument` of `function`; see [`crate::exchange::order_rows`]), or `input` itself
/// when no order is given. Duplicate positions are refused.
pub(super) async fn ordered(
    input: crate::convert::LoadInput,
    function: &str,
    argument: &str,
    order: Option<&str>,
    comm: &engine::Comm,
) -> Result<crate::convert::LoadInput> {
    let Some(column) = order else {
        return Ok(input);
    };
    let input = input.into_stream();
    let schema = input.schema();
    let key = crate::exchange::OrderKey {
        function,
        argument,
        column,
        unique: true,
    };
    let rows = crate::exchange::order_rows(input, &key, comm).await?;
    let sorted: datafusion::execution::SendableRecordBatchStream =
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(rows.into_iter().map(Ok)),
        ));
    Ok(sorted.into())
}
