//! A DNDarray's local rows → an Arrow record batch.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use engine::DNDarray;
use tch::{Device, Kind};

use super::ConvertError;
use engine::device::MoveTo;

/// This rank's rows of a 2-dimensional, row-split (or replicated) `array` as a record batch:
/// the `keep` columns first (they must have one row per local row), then one Float64 (or
/// Float32, following the array's dtype) column per array column, named by `names`.
pub fn to_batch(
    function: &str,
    array: &DNDarray,
    names: &[String],
    keep: Option<&RecordBatch>,
) -> Result<RecordBatch, ConvertError> {
    let invalid = |message: String| ConvertError::Invalid {
        function: function.to_string(),
        message,
    };
    if array.ndim() != 2 || !matches!(array.split(), Some(0) | None) {
        return Err(invalid(format!(
            "expected rows × columns split along rows, got shape {:?} split {:?}",
            array.gshape(),
            array.split()
        )));
    }
    let local = array.local().moved_to(Device::Cpu);
    let (rows, cols) = (local.size()[0] as usize, local.size()[1] as usize);
    if names.len() != cols {
        return Err(invalid(format!("{} column names for {cols} columns", names.len())));
    }
    if let Some(k) = keep
        && k.num_rows() != rows
    {
        return Err(invalid(format!("{} keep rows for {rows} array rows", k.num_rows())));
    }
    let f32 = array.kind() == Kind::Float;
    let mut fields: Vec<Field> = keep
        .map(|k| k.schema().fields().iter().map(|f| f.as_ref().clone()).collect())
        .unwrap_or_default();
    let mut columns: Vec<ArrayRef> = keep.map(|k| k.columns().to_vec()).unwrap_or_default();
    for (j, name) in names.iter().enumerate() {
        let col = local.select(1, j as i64).contiguous();
        if f32 {
            let v: Vec<f32> = Vec::try_from(&col).map_err(|e: tch::TchError| invalid(e.to_string()))?;
            columns.push(Arc::new(Float32Array::from(v)));
            fields.push(Field::new(name, DataType::Float32, false));
        } else {
            let v: Vec<f64> =
                Vec::try_from(&col.to_kind(Kind::Double)).map_err(|e: tch::TchError| invalid(e.to_string()))?;
            columns.push(Arc::new(Float64Array::from(v)));
            fields.push(Field::new(name, DataType::Float64, false));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| ConvertError::DataFusion(e.into()))
}
