//! Tensors and models to and from Arrow: float columns that share a tensor's memory, a
//! rank's output rows cut into batches, replicated vectors as columns, and model tables
//! (loadings, centroids) read back as f64 values.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, new_null_array};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use tch::{Device, Kind, Tensor};

use super::exec_error;
use engine::device::MoveTo;

/// Keeps a tensor's storage alive while Arrow buffers point into it.
struct TensorOwner(#[allow(dead_code)] Mutex<Tensor>);

/// The rows of `t` (c × n, f64 or f32) as c Arrow columns of n values that share `t`'s memory
/// when each row is contiguous (rows may lie further apart); otherwise `t` is moved to the CPU
/// and made contiguous first, which copies.
pub fn float_columns(t: Tensor) -> Result<Vec<ArrayRef>> {
    let bad = |m: String| DataFusionError::Internal(format!("float_columns: {m}"));
    if t.dim() != 2 {
        return Err(bad(format!("expected a 2-d tensor, got {:?}", t.size())));
    }
    let t = if t.device() == Device::Cpu && (t.stride()[1] == 1 || t.size()[1] <= 1) {
        t
    } else {
        t.moved_to(Device::Cpu).contiguous()
    };
    let (c, n) = (t.size()[0] as usize, t.size()[1] as usize);
    let row_stride = t.stride()[0] as usize;
    let kind = t.kind();
    let elt = match kind {
        Kind::Double => 8,
        Kind::Float => 4,
        other => return Err(bad(format!("expected float64 or float32, got {other:?}"))),
    };
    if n == 0 || c == 0 {
        let empty = |_| -> ArrayRef {
            if kind == Kind::Float {
                Arc::new(Float32Array::from(Vec::<f32>::new()))
            } else {
                Arc::new(Float64Array::from(Vec::<f64>::new()))
            }
        };
        return Ok((0..c).map(empty).collect());
    }
    let base = t.data_ptr() as *mut u8;
    let owner = Arc::new(TensorOwner(Mutex::new(t)));
    let mut out: Vec<ArrayRef> = Vec::with_capacity(c);
    for j in 0..c {
        // SAFETY: row j of a c × n tensor whose rows are contiguous is n elements at
        // base + j·row_stride·elt, inside the storage `owner` keeps alive (and nothing writes
        // to it any more).
        let buffer = unsafe {
            let ptr = NonNull::new(base.add(j * row_stride * elt)).ok_or_else(|| bad("null data pointer".into()))?;
            Buffer::from_custom_allocation(ptr, n * elt, owner.clone())
        };
        if kind == Kind::Float {
            out.push(Arc::new(Float32Array::new(ScalarBuffer::new(buffer, 0, n), None)));
        } else {
            out.push(Arc::new(Float64Array::new(ScalarBuffer::new(buffer, 0, n), None)));
        }
    }
    Ok(out)
}

/// `batch` cut into zero-copy slices of at most `batch_size` rows.
pub fn slices(batch: &RecordBatch, batch_size: usize) -> Vec<RecordBatch> {
    let (rows, step) = (batch.num_rows(), batch_size.max(1));
    (0..rows)
        .step_by(step)
        .map(|at| batch.slice(at, step.min(rows - at)))
        .collect()
}

/// A replicated 1-d tensor as f64 values.
pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    Vec::<f64>::try_from(&t.moved_to(Device::Cpu).to_kind(Kind::Double).contiguous()).map_err(exec_error)
}

/// `v` as an Arrow float column of `data_type` (Float64, or cast to Float32).
pub fn float_array(v: Vec<f64>, data_type: &DataType) -> Result<ArrayRef> {
    let a: ArrayRef = Arc::new(Float64Array::from(v));
    if data_type == &DataType::Float64 {
        Ok(a)
    } else {
        Ok(cast(&a, data_type)?)
    }
}

/// This rank's score rows (keep columns, pc1 … pck, NULL columns up to `width`), cut into
/// batches of at most `batch_size` rows. `scores_t` is k × n_local (row j: component j), each
/// row becoming a column without a copy.
pub fn scores_batches(
    scores_t: Tensor,
    width: usize,
    schema: &SchemaRef,
    keep: Option<&RecordBatch>,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let rows = scores_t.size()[1] as usize;
    if keep.is_some_and(|k| k.num_rows() != rows) {
        return Err(DataFusionError::Internal("pca: keep rows and score rows differ".into()));
    }
    let mut columns: Vec<ArrayRef> = keep.map(|k| k.columns().to_vec()).unwrap_or_default();
    columns.extend(float_columns(scores_t)?);
    let have = columns.len();
    for field in schema.fields().iter().skip(have).take(width) {
        columns.push(new_null_array(field.data_type(), rows));
    }
    Ok(slices(&RecordBatch::try_new(Arc::clone(schema), columns)?, batch_size))
}

/// This rank's assignment rows: keep columns, cluster, distance; in batches.
pub fn assignment_batches(
    schema: &SchemaRef,
    keep: Option<&RecordBatch>,
    labels: &Tensor,
    distances: &Tensor,
    batch_size: usize,
) -> Result<Vec<RecordBatch>> {
    let labels: Vec<i64> = Vec::try_from(&labels.moved_to(Device::Cpu)).map_err(exec_error)?;
    let distances: Vec<f64> =
        Vec::try_from(&distances.moved_to(Device::Cpu).to_kind(Kind::Double)).map_err(exec_error)?;
    let mut columns: Vec<ArrayRef> = keep.map(|k| k.columns().to_vec()).unwrap_or_default();
    columns.push(Arc::new(Int64Array::from(labels)));
    columns.push(Arc::new(Float64Array::from(distances)));
    Ok(slices(&RecordBatch::try_new(Arc::clone(schema), columns)?, batch_size))
}

/// Column `name` of a model table as Float64 (cast from any numeric type).
pub fn f64_column(batch: &RecordBatch, name: &str) -> Result<Float64Array> {
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
pub fn finite_matrix(
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

/// A centroids table read back: k × d (f64), rows in cluster order 0 … k − 1; `origin` starts
/// its errors (`kmeans_predict: centroids =>`).
pub fn read_centroids(batches: &[RecordBatch], features: &[String], origin: &str) -> Result<Tensor> {
    let bad = |m: String| DataFusionError::Execution(format!("{origin} {m}"));
    let Some(first) = batches.first() else {
        return Err(bad("has no rows".into()));
    };
    let batch = concat_batches(&first.schema(), batches)?;
    let k = batch.num_rows();
    let clusters = cast(
        batch
            .column_by_name("cluster")
            .ok_or_else(|| bad("has no column 'cluster'".into()))?,
        &DataType::Int64,
    )?;
    let clusters = clusters
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("cluster column".into()))?;
    let mut order: Vec<Option<usize>> = vec![None; k];
    for i in 0..k {
        let c = if clusters.is_null(i) { -1 } else { clusters.value(i) };
        if c < 0 || c as usize >= k || order[c as usize].is_some() {
            return Err(bad(format!(
                "must number its {k} clusters 0 … {} once each (row {} has cluster {c})",
                k - 1,
                i + 1
            )));
        }
        order[c as usize] = Some(i);
    }
    let order: Vec<i64> = order.into_iter().map(|o| o.unwrap_or(0) as i64).collect();
    Ok(finite_matrix(&batch, features, bad)?.index_select(0, &Tensor::from_slice(&order)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn float_columns_share_the_tensor_rows_and_keep_the_dtype() {
        let t = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape([2, 3]);
        let cols = float_columns(t).unwrap_or_default();
        assert_eq!(cols.len(), 2);
        let c1 = cols[1]
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| a.values().to_vec());
        assert_eq!(c1, Some(vec![4.0, 5.0, 6.0]));
        let f = Tensor::from_slice(&[1.0f32, 2.0]).reshape([1, 2]);
        let cols = float_columns(f).unwrap_or_default();
        assert!(cols[0].as_any().is::<Float32Array>());
        // A transposed (non-contiguous) tensor is copied, with the same values.
        let t = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).reshape([2, 2]).tr();
        let cols = float_columns(t).unwrap_or_default();
        let c0 = cols[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|a| a.values().to_vec());
        assert_eq!(c0, Some(vec![1.0, 3.0]));
        assert!(float_columns(Tensor::from_slice(&[1i64, 2])).is_err());
    }

    #[test]
    fn slices_cut_batches_without_losing_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from((0..10).collect::<Vec<i64>>()))])
            .unwrap_or_else(|e| panic!("{e}"));
        let parts = slices(&batch, 4);
        assert_eq!(parts.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(slices(&batch, 0).len(), 10);
        assert!(slices(&batch.slice(0, 0), 4).is_empty());
    }

    #[test]
    fn float_array_casts_to_the_output_type() {
        let a = float_array(vec![1.5, 2.5], &DataType::Float32).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.data_type(), &DataType::Float32);
        let a = float_array(vec![1.5], &DataType::Float64).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.data_type(), &DataType::Float64);
    }
}
