//! A rank's Arrow batches → the local block of a row-split DNDarray.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Schema, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::execution::SendableRecordBatchStream;
use engine::comm::ReduceOp;
use engine::{Comm, DNDarray};
use futures::TryStreamExt;
use tch::{Device, Kind, Tensor};

use super::ConvertError;
use super::dense::{DenseOut, DenseSource, LoadInput};

/// What to do with rows holding NULL or NaN in a feature column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NullPolicy {
    /// Refuse the input; the error names each column and its global count.
    #[default]
    Error,
    /// Drop those rows (and their keep columns).
    Drop,
}

/// Which columns become the array, and how.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The function named in error messages (e.g. `pca`).
    pub function: String,
    /// Feature columns in order; `None`: every numeric column not in `keep`.
    pub columns: Option<Vec<String>>,
    /// Pass-through columns returned alongside, row-aligned with the array.
    pub keep: Vec<String>,
    /// `Kind::Double` or `Kind::Float`.
    pub kind: Kind,
    /// NULL/NaN handling.
    pub nulls: NullPolicy,
    /// Device of the array's local tensor.
    pub device: Device,
    /// Rows this rank expects (a capacity hint, e.g. the table's rows for this rank). With it
    /// and `nulls = Error`, batches are decoded as they arrive into a tensor allocated once,
    /// and each batch is released right away; more rows than expected still work.
    pub expected_rows: Option<usize>,
}

impl LoadSpec {
    /// Every numeric column as f64 on the CPU, NULLs refused.
    pub fn new(function: &str) -> Self {
        LoadSpec {
            function: function.to_string(),
            columns: None,
            keep: Vec::new(),
            kind: Kind::Double,
            nulls: NullPolicy::Error,
            device: Device::Cpu,
            expected_rows: None,
        }
    }
}

/// The result of [`load`].
#[derive(Debug)]
pub struct Loaded {
    /// The features: global rows × d columns, split along rows (axis 0), unbalanced as read.
    pub array: DNDarray,
    /// Names of the feature columns, in array column order.
    pub columns: Vec<String>,
    /// This rank's keep columns, one row per local array row (absent when `keep` is empty).
    pub keep: Option<RecordBatch>,
    /// Whether the rows were decoded straight from the source into the array (a
    /// [`DenseSource`]) rather than through Arrow batches. The same on every rank.
    pub dense: bool,
}

pub(crate) fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
    )
}

/// Feature and keep column indices, validated against the schema (the same on every rank).
fn resolve(schema: &Schema, spec: &LoadSpec) -> Result<(Vec<usize>, Vec<usize>), ConvertError> {
    let f = &spec.function;
    let index = |name: &str| {
        schema.index_of(name).map_err(|_| ConvertError::UnknownColumn {
            function: f.clone(),
            column: name.to_string(),
            available: schema
                .fields()
                .iter()
                .map(|c| c.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    };
    let keep = spec.keep.iter().map(|k| index(k)).collect::<Result<Vec<_>, _>>()?;
    let features = match &spec.columns {
        Some(cols) => cols.iter().map(|c| index(c)).collect::<Result<Vec<_>, _>>()?,
        None => (0..schema.fields().len())
            .filter(|i| !keep.contains(i) && is_numeric(schema.field(*i).data_type()))
            .collect(),
    };
    for &i in &features {
        let field = schema.field(i);
        if !is_numeric(field.data_type()) {
            return Err(ConvertError::NotNumeric {
                function: f.clone(),
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            });
        }
    }
    if features.is_empty() {
        return Err(ConvertError::Invalid {
            function: f.clone(),
            message: "the input has no numeric columns".into(),
        });
    }
    if !matches!(spec.kind, Kind::Double | Kind::Float) {
        return Err(ConvertError::Invalid {
            function: f.clone(),
            message: format!("dtype {:?} is not supported; expected float64 or float32", spec.kind),
        });
    }
    Ok((features, keep))
}

/// Per row: false when any feature column is NULL or NaN there.
fn valid_rows(batch: &RecordBatch, features: &[usize]) -> BooleanArray {
    let n = batch.num_rows();
    let mut valid = vec![true; n];
    for &c in features {
        let col = batch.column(c);
        for (r, v) in valid.iter_mut().enumerate() {
            if col.is_null(r) {
                *v = false;
            }
        }
        let nan = |r: usize| match col.data_type() {
            DataType::Float64 => col.as_primitive::<Float64Type>().value(r).is_nan(),
            DataType::Float32 => col.as_primitive::<Float32Type>().value(r).is_nan(),
            DataType::Float16 => col.as_primitive::<Float16Type>().value(r).is_nan(),
            _ => false,
        };
        if matches!(
            col.data_type(),
            DataType::Float64 | DataType::Float32 | DataType::Float16
        ) {
            for (r, v) in valid.iter_mut().enumerate() {
                if *v && nan(r) {
                    *v = false;
                }
            }
        }
    }
    BooleanArray::from(valid)
}

/// Collective over `comm`. Reads `input` (this rank's rows) into a row-split DNDarray on `comm`
/// (see [`LoadSpec`]).
///
/// When the input has a [`DenseSource`] (a plain scan of a Parquet table, see
/// [`super::dense`]) and no keep columns are asked for, the feature columns are decoded
/// straight into the rank's tensor, one column chunk at a time. Otherwise the batch stream is
/// drained and each feature column is copied into its slot of the tensor (one copy from the
/// Arrow buffers; integers and decimals are converted on the way). Both give the same array.
/// NULL/NaN counts are summed over ranks, so an error names each column's global count on
/// every rank. Any rank's failure (a read error, a bad column) is an error on every rank.
pub async fn load(comm: &'static Comm, input: impl Into<LoadInput>, spec: &LoadSpec) -> Result<Loaded, ConvertError> {
    let LoadInput { stream, dense } = input.into();
    let schema = stream.schema();
    let (features, keep) = comm.agree(resolve(&schema, spec))?;
    // The plan, and so the choice, is the same on every rank; agreed all the same, since the
    // two paths communicate differently.
    let dense = dense.filter(|d| {
        keep.is_empty()
            && d.schema().fields().len() == schema.fields().len()
            && d.schema()
                .fields()
                .iter()
                .zip(schema.fields())
                .all(|(a, b)| a.name() == b.name())
            && features.iter().all(|&i| d.supports(schema.field(i).data_type()))
    });
    let everywhere = comm.allreduce(&[u64::from(dense.is_some())], ReduceOp::Min)?[0] == 1;
    if let (Some(dense), true) = (dense, everywhere) {
        drop(stream);
        return load_dense(comm, dense, &schema, &features, spec).await;
    }
    if let (Some(cap), NullPolicy::Error) = (spec.expected_rows, spec.nulls) {
        let streamed = decode_stream(stream, &features, &keep, spec.kind, cap).await;
        let (local, counts, keep_parts) = comm.agree(streamed)?;
        let counts = comm.allreduce(&counts, ReduceOp::Sum)?;
        if counts.iter().any(|&c| c > 0) {
            return Err(null_error(&schema, &features, &counts, spec));
        }
        let keep = if keep.is_empty() {
            None
        } else {
            let projected = Arc::new(
                schema
                    .project(&keep)
                    .map_err(datafusion::error::DataFusionError::from)?,
            );
            Some(comm.agree(concat_batches(&projected, &keep_parts))?)
        };
        let array = DNDarray::from_pieces_in(comm, engine::device::upload(&local, spec.device), 0)?;
        let columns = features.iter().map(|&i| schema.field(i).name().clone()).collect();
        return Ok(Loaded {
            array,
            columns,
            keep,
            dense: false,
        });
    }
    let batches: Result<Vec<RecordBatch>, _> = stream.try_collect().await;
    let batches = comm.agree(batches)?;
    // Decode everything, counting NULL/NaN per column on the way (one pass over the data).
    let decoded = comm.agree(decode(&batches, &features, None, spec.kind))?;
    let counts = comm.allreduce(&decoded.1, ReduceOp::Sum)?;
    if spec.nulls == NullPolicy::Error && counts.iter().any(|&c| c > 0) {
        return Err(null_error(&schema, &features, &counts, spec));
    }
    // Rows to drop somewhere (on any rank): decode again without them.
    let drop = spec.nulls == NullPolicy::Drop && counts.iter().any(|&c| c > 0);
    let masks: Option<Vec<BooleanArray>> = drop.then(|| batches.iter().map(|b| valid_rows(b, &features)).collect());
    let local = if drop {
        comm.agree(decode(&batches, &features, masks.as_deref(), spec.kind))?.0
    } else {
        decoded.0
    };
    let keep = if keep.is_empty() {
        None
    } else {
        Some(comm.agree(keep_columns(&schema, &batches, &keep, masks.as_deref()))?)
    };
    let array = DNDarray::from_pieces_in(comm, engine::device::upload(&local, spec.device), 0)?;
    let columns = features.iter().map(|&i| schema.field(i).name().clone()).collect();
    Ok(Loaded {
        array,
        columns,
        keep,
        dense: false,
    })
}

/// [`load`] through a dense source: the features decoded into a (d × rows) tensor, read as
/// its transpose. NULLs arrive as NaN; under `nulls = Drop` the rows holding NaN anywhere are
/// removed afterwards (one local copy, only when some rank has such rows).
async fn load_dense(
    comm: &'static Comm,
    mut dense: Box<dyn DenseSource>,
    schema: &Schema,
    features: &[usize],
    spec: &LoadSpec,
) -> Result<Loaded, ConvertError> {
    let rows = comm.agree(dense.open().await)?;
    let d = features.len();
    let t = Tensor::empty([d as i64, rows as i64], (spec.kind, Device::Cpu));
    engine::memory::prepare_for_filling(&t);
    let read = if rows == 0 {
        Ok(vec![0; d])
    } else {
        // SAFETY: `t` is a fresh contiguous CPU tensor of `spec.kind` (checked by `resolve`)
        // with d · rows elements, and no other reference to its storage exists during the read.
        let out = match spec.kind {
            // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
            // only this function references, with at least this many elements.
            Kind::Float => DenseOut::F32(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, d * rows) }),
            // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
            // only this function references, with at least this many elements.
            _ => DenseOut::F64(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f64, d * rows) }),
        };
        dense.read(features, out, rows).await
    };
    let counts = comm.allreduce(&comm.agree(read)?, ReduceOp::Sum)?;
    let mut local = t;
    if counts.iter().any(|&c| c > 0) {
        if spec.nulls == NullPolicy::Error {
            return Err(null_error(schema, features, &counts, spec));
        }
        let good = local.isnan().any_dim(0, false).logical_not();
        local = local.index_select(1, &good.nonzero().squeeze_dim(1));
    }
    let array = DNDarray::from_pieces_in(comm, engine::device::upload(&local.tr(), spec.device), 0)?;
    let columns = features.iter().map(|&i| schema.field(i).name().clone()).collect();
    Ok(Loaded {
        array,
        columns,
        keep: None,
        dense: true,
    })
}

/// The error naming each feature column's global NULL/NaN count.
fn null_error(schema: &Schema, features: &[usize], counts: &[u64], spec: &LoadSpec) -> ConvertError {
    let detail: Vec<String> = features
        .iter()
        .zip(counts)
        .filter(|(_, c)| **c > 0)
        .map(|(&i, c)| format!("column '{}' has {c} NULL/NaN values", schema.field(i).name()))
        .collect();
    ConvertError::Nulls {
        function: spec.function.clone(),
        detail: detail.join(", "),
    }
}

type Streamed = (Tensor, Vec<u64>, Vec<RecordBatch>);

/// Decodes batches as they arrive into a (features × capacity) column-major tensor, growing
/// it when more rows come than expected; keeps only the keep columns of each batch.
async fn decode_stream(
    mut stream: SendableRecordBatchStream,
    features: &[usize],
    keep: &[usize],
    kind: Kind,
    capacity: usize,
) -> Result<Streamed, datafusion::error::DataFusionError> {
    use futures::StreamExt;
    let d = features.len();
    let mut cap = capacity.max(1);
    let mut t = Tensor::empty([d as i64, cap as i64], (kind, Device::Cpu));
    engine::memory::prepare_for_filling(&t);
    let (mut at, mut counts, mut keep_parts) = (0usize, vec![0u64; d], Vec::new());
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let b = batch.num_rows();
        if at + b > cap {
            cap = (2 * cap).max(at + b);
            let bigger = Tensor::empty([d as i64, cap as i64], (kind, Device::Cpu));
            engine::memory::prepare_for_filling(&bigger);
            bigger.narrow(1, 0, at as i64).copy_(&t.narrow(1, 0, at as i64));
            t = bigger;
        }
        // SAFETY: `t` is a contiguous CPU tensor of `kind` with d · cap elements that only this
        // function references; each slice lives for one call.
        let c = match kind {
            Kind::Float => fill_batch(
                // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
                // only this function references, with at least this many elements.
                unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, d * cap) },
                &batch,
                features,
                at,
                cap,
            )?,
            _ => fill_batch(
                // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
                // only this function references, with at least this many elements.
                unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f64, d * cap) },
                &batch,
                features,
                at,
                cap,
            )?,
        };
        counts.iter_mut().zip(c).for_each(|(a, c)| *a += c);
        if !keep.is_empty() {
            keep_parts.push(batch.project(keep)?);
        }
        at += b;
    }
    Ok((t.narrow(1, 0, at as i64).tr(), counts, keep_parts))
}

/// Writes one batch's feature columns at row `at` of a column-major buffer with `cap` rows per
/// column; returns each column's NULL + NaN count.
fn fill_batch<T: Target>(
    out: &mut [T],
    batch: &RecordBatch,
    features: &[usize],
    at: usize,
    cap: usize,
) -> Result<Vec<u64>, datafusion::error::DataFusionError> {
    let mut counts = Vec::with_capacity(features.len());
    for (j, &c) in features.iter().enumerate() {
        let col = batch.column(c);
        let dst = &mut out[j * cap + at..(j + 1) * cap];
        let (_, nans) = fill_column(dst, col, None)?;
        counts.push((col.null_count() + nans) as u64);
    }
    Ok(counts)
}

/// The local (rows × features) tensor, stored column by column (a transposed view), and the
/// NULL + NaN count of each feature column among the rows decoded.
fn decode(
    batches: &[RecordBatch],
    features: &[usize],
    masks: Option<&[BooleanArray]>,
    kind: Kind,
) -> Result<(Tensor, Vec<u64>), datafusion::error::DataFusionError> {
    let rows: usize = match masks {
        Some(m) => m.iter().map(|m| m.true_count()).sum(),
        None => batches.iter().map(|b| b.num_rows()).sum(),
    };
    let d = features.len();
    let t = Tensor::empty([d as i64, rows as i64], (kind, Device::Cpu));
    engine::memory::prepare_for_filling(&t);
    let mut counts = vec![0u64; d];
    if rows > 0 {
        // SAFETY: `t` is a fresh contiguous CPU tensor of `kind` with d · rows elements, and no
        // other reference to its storage exists while the slice is alive.
        counts = match kind {
            Kind::Float => fill_all(
                // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
                // only this function references, with at least this many elements.
                unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, d * rows) },
                batches,
                features,
                masks,
                rows,
            )?,
            _ => fill_all(
                // SAFETY: as stated above: `t` is a contiguous CPU tensor of this element type that
                // only this function references, with at least this many elements.
                unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f64, d * rows) },
                batches,
                features,
                masks,
                rows,
            )?,
        };
    }
    Ok((t.tr(), counts))
}

/// A float the tensor can hold.
trait Target: Copy {
    fn from_f64(v: f64) -> Self;
    fn is_nan(&self) -> bool;
    /// `out` as f64 when `Self` is f64 (a plain copy then suffices).
    fn as_f64(out: &mut [Self]) -> Option<&mut [f64]>;
    /// `out` as f32 when `Self` is f32.
    fn as_f32(out: &mut [Self]) -> Option<&mut [f32]>;
}
impl Target for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
    fn is_nan(&self) -> bool {
        f64::is_nan(*self)
    }
    fn as_f64(out: &mut [Self]) -> Option<&mut [f64]> {
        Some(out)
    }
    fn as_f32(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
impl Target for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn is_nan(&self) -> bool {
        f32::is_nan(*self)
    }
    fn as_f64(_: &mut [Self]) -> Option<&mut [f64]> {
        None
    }
    fn as_f32(out: &mut [Self]) -> Option<&mut [f32]> {
        Some(out)
    }
}

fn fill_all<T: Target>(
    out: &mut [T],
    batches: &[RecordBatch],
    features: &[usize],
    masks: Option<&[BooleanArray]>,
    rows: usize,
) -> Result<Vec<u64>, datafusion::error::DataFusionError> {
    let mut counts = vec![0u64; features.len()];
    for (j, &c) in features.iter().enumerate() {
        let col_out = &mut out[j * rows..(j + 1) * rows];
        let mut at = 0;
        for (b, batch) in batches.iter().enumerate() {
            let mask = masks.map(|m| &m[b]);
            let col = batch.column(c);
            let (n, nans) = fill_column(&mut col_out[at..], col, mask)?;
            let nulls = if mask.is_some() { 0 } else { col.null_count() };
            counts[j] += (nulls + nans) as u64;
            at += n;
        }
    }
    Ok(counts)
}

/// Writes the (unmasked) values of `col` into `out`; returns how many were written and how
/// many of them are NaN (counted on the way: one pass over the data).
fn fill_column<T: Target>(
    out: &mut [T],
    col: &ArrayRef,
    mask: Option<&BooleanArray>,
) -> Result<(usize, usize), datafusion::error::DataFusionError> {
    /// `FLOAT`: the source can hold NaN (integers and decimals cannot).
    fn prim<P: ArrowPrimitiveType, T: Target, const FLOAT: bool>(
        out: &mut [T],
        col: &ArrayRef,
        mask: Option<&BooleanArray>,
        f: impl Fn(P::Native) -> f64,
    ) -> (usize, usize) {
        let values = col.as_primitive::<P>().values();
        let mut nans = 0;
        match mask {
            None => {
                for (o, &v) in out.iter_mut().zip(values.iter()) {
                    *o = T::from_f64(f(v));
                    if FLOAT {
                        nans += usize::from(o.is_nan());
                    }
                }
                (values.len(), nans)
            }
            Some(m) => {
                let mut n = 0;
                for (r, &v) in values.iter().enumerate() {
                    if m.value(r) {
                        out[n] = T::from_f64(f(v));
                        if FLOAT {
                            nans += usize::from(out[n].is_nan());
                        }
                        n += 1;
                    }
                }
                (n, nans)
            }
        }
    }
    // Same type, every row: a plain memory copy (the fastest way into fresh pages), then a
    // read-only NaN count over the cache-hot source.
    if mask.is_none() {
        let nans = |v: &[f64]| v.iter().filter(|x| x.is_nan()).count();
        if let (DataType::Float64, Some(dst)) = (col.data_type(), T::as_f64(out)) {
            let values = col.as_primitive::<Float64Type>().values();
            dst[..values.len()].copy_from_slice(values);
            return Ok((values.len(), nans(values)));
        }
        if let (DataType::Float32, Some(dst)) = (col.data_type(), T::as_f32(out)) {
            let values = col.as_primitive::<Float32Type>().values();
            dst[..values.len()].copy_from_slice(values);
            return Ok((values.len(), values.iter().filter(|x| x.is_nan()).count()));
        }
    }
    Ok(match col.data_type() {
        DataType::Float64 => prim::<Float64Type, T, true>(out, col, mask, |v| v),
        DataType::Float32 => prim::<Float32Type, T, true>(out, col, mask, f64::from),
        DataType::Float16 => prim::<Float16Type, T, true>(out, col, mask, f64::from),
        DataType::Int8 => prim::<Int8Type, T, false>(out, col, mask, f64::from),
        DataType::Int16 => prim::<Int16Type, T, false>(out, col, mask, f64::from),
        DataType::Int32 => prim::<Int32Type, T, false>(out, col, mask, f64::from),
        DataType::Int64 => prim::<Int64Type, T, false>(out, col, mask, |v| v as f64),
        DataType::UInt8 => prim::<UInt8Type, T, false>(out, col, mask, f64::from),
        DataType::UInt16 => prim::<UInt16Type, T, false>(out, col, mask, f64::from),
        DataType::UInt32 => prim::<UInt32Type, T, false>(out, col, mask, f64::from),
        DataType::UInt64 => prim::<UInt64Type, T, false>(out, col, mask, |v| v as f64),
        _ => {
            // Decimals and anything else numeric: Arrow's cast kernel, then the f64 path
            // (a decimal has no NaN).
            let cast = datafusion::arrow::compute::cast(col, &DataType::Float64)?;
            prim::<Float64Type, T, false>(out, &cast, mask, |v| v)
        }
    })
}

/// This rank's keep columns as one batch, filtered like the features.
fn keep_columns(
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
    keep: &[usize],
    masks: Option<&[BooleanArray]>,
) -> Result<RecordBatch, datafusion::error::DataFusionError> {
    let projected = Arc::new(schema.project(keep)?);
    let parts: Vec<RecordBatch> = batches
        .iter()
        .enumerate()
        .map(|(b, batch)| {
            let p = batch.project(keep)?;
            match masks {
                Some(m) => filter_record_batch(&p, &m[b]),
                None => Ok(p),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(concat_batches(&projected, &parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Float32Array, Float64Array, Int32Array, StringArray, UInt8Array};
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_plan::memory::MemoryStream;

    /// id (Int64), x (Float64, NULL in row 1), y (Int32), s (Utf8), d (Decimal128(5, 2), NaN-free),
    /// z (Float32, NaN in row 2).
    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("y", DataType::Int32, false),
            Field::new("s", DataType::Utf8, false),
            Field::new("d", DataType::Decimal128(5, 2), false),
            Field::new("z", DataType::Float32, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![10, 11, 12])),
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])),
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(
                    Decimal128Array::from(vec![125, -250, 1])
                        .with_precision_and_scale(5, 2)
                        .unwrap(),
                ),
                Arc::new(Float32Array::from(vec![0.5, 1.0, f32::NAN])),
            ],
        )
        .unwrap()
    }

    fn spec(columns: Option<&[&str]>, keep: &[&str]) -> LoadSpec {
        LoadSpec {
            columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            keep: keep.iter().map(|s| s.to_string()).collect(),
            ..LoadSpec::new("pca")
        }
    }

    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        let t = t.to_kind(Kind::Double).contiguous();
        (0..t.size()[0])
            .map(|i| Vec::<f64>::try_from(t.get(i)).unwrap())
            .collect()
    }

    #[test]
    fn default_features_are_the_numeric_columns_not_kept() {
        let b = batch();
        let (features, keep) = resolve(&b.schema(), &spec(None, &["id"])).unwrap();
        assert_eq!(features, [1, 2, 4, 5]);
        assert_eq!(keep, [0]);
        let (features, _) = resolve(&b.schema(), &spec(Some(&["z", "x"]), &[])).unwrap();
        assert_eq!(features, [5, 1], "named columns keep their order");
    }

    #[test]
    fn resolve_names_the_column_and_what_was_expected() {
        let schema = batch().schema();
        let err = |s: LoadSpec| resolve(&schema, &s).unwrap_err().to_string();
        assert_eq!(
            err(spec(Some(&["nope"]), &[])),
            "pca: column 'nope' not found; available columns: id, x, y, s, d, z"
        );
        assert_eq!(
            err(spec(None, &["gone"])),
            "pca: column 'gone' not found; available columns: id, x, y, s, d, z"
        );
        assert_eq!(
            err(spec(Some(&["x", "s"]), &[])),
            "pca: column 's' is Utf8; feature columns must be numeric (choose them with columns => ...)"
        );
        let only_text = Schema::new(vec![Field::new("s", DataType::Utf8, false)]);
        assert_eq!(
            resolve(&only_text, &spec(None, &[])).unwrap_err().to_string(),
            "pca: the input has no numeric columns"
        );
        let ints = LoadSpec {
            kind: Kind::Int64,
            ..spec(None, &[])
        };
        assert_eq!(
            err(ints),
            "pca: dtype Int64 is not supported; expected float64 or float32"
        );
    }

    #[test]
    fn decode_converts_every_numeric_type_and_counts_nulls_and_nans() {
        let b = batch();
        let (t, counts) = decode(std::slice::from_ref(&b), &[1, 2, 4, 5], None, Kind::Double).unwrap();
        assert_eq!(t.size(), [3, 4]);
        let got = rows(&t);
        assert_eq!(got[0], [1.5, 1.0, 1.25, 0.5]);
        assert_eq!(got[1][1..3], [2.0, -2.5]);
        assert!(got[2][3].is_nan());
        assert_eq!(counts, [1, 0, 0, 1], "x has a NULL, z a NaN");
        let (t32, _) = decode(std::slice::from_ref(&b), &[2], None, Kind::Float).unwrap();
        assert_eq!(t32.kind(), Kind::Float);
        assert_eq!(rows(&t32), [[1.0], [2.0], [3.0]]);
    }

    #[test]
    fn masks_drop_rows_with_null_or_nan_and_keep_columns_follow() {
        let b = batch();
        let features = [1, 5];
        let mask = valid_rows(&b, &features);
        assert_eq!(mask.values().iter().collect::<Vec<_>>(), [true, false, false]);
        let masks = [mask];
        let (t, counts) = decode(std::slice::from_ref(&b), &features, Some(&masks), Kind::Double).unwrap();
        assert_eq!(rows(&t), [[1.5, 0.5]]);
        assert_eq!(counts, [0, 0], "masked rows are not counted");
        let kept = keep_columns(&b.schema(), std::slice::from_ref(&b), &[0, 3], Some(&masks)).unwrap();
        assert_eq!(kept.num_rows(), 1);
        assert_eq!(kept.schema().field(1).name(), "s");
        assert_eq!(kept.column(0).as_primitive::<Int64Type>().value(0), 10);
    }

    #[test]
    fn decode_of_several_batches_and_of_none() {
        let b = batch();
        let (t, _) = decode(&[b.clone(), b.slice(0, 1)], &[2], None, Kind::Double).unwrap();
        assert_eq!(rows(&t), [[1.0], [2.0], [3.0], [1.0]]);
        let (empty, counts) = decode(&[], &[2], None, Kind::Double).unwrap();
        assert_eq!(empty.size(), [0, 1]);
        assert_eq!(counts, [0]);
    }

    #[test]
    fn null_error_names_each_column_with_its_count() {
        let schema = batch().schema();
        let e = null_error(&schema, &[1, 2, 5], &[3, 0, 7], &spec(None, &[]));
        assert_eq!(
            e.to_string(),
            "pca: column 'x' has 3 NULL/NaN values, column 'z' has 7 NULL/NaN values; filter them or pass nulls => 'drop'"
        );
    }

    #[tokio::test]
    async fn streamed_decode_grows_past_the_expected_rows_and_keeps_columns() {
        let b = batch();
        let parts = vec![b.clone(), b.clone(), b.slice(2, 1)];
        let stream = Box::pin(MemoryStream::try_new(parts, b.schema(), None).unwrap());
        let (t, counts, keep) = decode_stream(stream, &[2, 4], &[0], Kind::Double, 2).await.unwrap();
        assert_eq!(t.size(), [7, 2]);
        let got = rows(&t);
        assert_eq!(got[0], [1.0, 1.25]);
        assert_eq!(got[5], [3.0, 0.01]);
        assert_eq!(got[6], [3.0, 0.01]);
        assert_eq!(counts, [0, 0]);
        assert_eq!(keep.iter().map(RecordBatch::num_rows).sum::<usize>(), 7);
        let u8s = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("u", DataType::UInt8, false)])),
            vec![Arc::new(UInt8Array::from(vec![7u8]))],
        )
        .unwrap();
        let stream = Box::pin(MemoryStream::try_new(vec![u8s.clone()], u8s.schema(), None).unwrap());
        let (t, _, keep) = decode_stream(stream, &[0], &[], Kind::Float, 0).await.unwrap();
        assert_eq!(rows(&t), [[7.0]]);
        assert!(keep.is_empty());
    }
}
