//! Reading a rank's share of a plain Parquet scan straight into column-major memory.
//!
//! A DNDarray load wants each feature column as one run of the rank's rows (the local tensor
//! is n_local × d, stored column by column). Through DataFusion's scan every value is written
//! twice into memory the size of the table: decoded into Arrow batches, then copied into the
//! tensor. [`DenseScan`] decodes each column chunk of the rank's row groups in pieces of
//! [`PIECE`] values into one small buffer that stays in the core's cache, and copies (or
//! converts) each piece into its place in the caller's column-major buffer: one write of the
//! table into fresh memory, as a plain Parquet read into Arrow makes. Measured on the load
//! benchmark (`benches/`, 2,000,000 × 32 f64): 1.0–1.3 × the rate of a plain single-process
//! read into Arrow, where the Arrow-stream load reached 0.7–0.85 ×.
//!
//! It applies to the scan of a [`crate::DistributedParquetTable`] that only selects columns
//! (no filter, no limit, no computed projection): [`DenseScan::from_plan`] recognises it and
//! takes the rank's files and row groups from the plan itself, so it reads exactly the rows
//! the plan's partition would. Everything else keeps the Arrow path.
//!
//! Column chunks are fetched through the table's object store (one `get_ranges` per row group
//! for the selected columns, so remote stores see coalesced requests) and decoded by the
//! parquet crate's column readers (every encoding and codec it supports). NULLs are written as
//! NaN and counted; so are NaNs. Integers convert to floats as Arrow's casts do.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::column::reader::{ColumnReader, ColumnReaderImpl, get_column_reader};
use datafusion::parquet::data_type::DataType as ParquetType;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::reader::{ChunkReader, Length};
use datafusion::parquet::file::serialized_reader::SerializedPageReader;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use object_store::{ObjectMeta, ObjectStore};

use crate::error::{ConnectorError, Result};
use crate::table::RANK_SPLIT_PREFIX;

/// Values decoded per step: the decode buffer (64 KiB of f64) stays in the core's cache
/// while it is copied into place.
pub const PIECE: usize = 8192;

/// A float the destination holds (`f64` or `f32`).
pub trait DenseValue: Copy + Send + Sync + 'static {
    /// The value written for NULL.
    const NAN: Self;
    /// `v` rounded to this type (as Arrow's cast does).
    fn from_f64(v: f64) -> Self;
    /// `v` as this type (exact for both).
    fn from_f32(v: f32) -> Self;
    /// Whether this is NaN.
    fn is_nan(self) -> bool;
}

impl DenseValue for f64 {
    const NAN: Self = f64::NAN;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

impl DenseValue for f32 {
    const NAN: Self = f32::NAN;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

/// Whether a column of this Arrow type can be read by a [`DenseScan`] (floats and integers;
/// not decimals or half floats, which keep the Arrow path).
pub fn is_dense_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Float64
            | DataType::Float32
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// One partition of a plain scan of a distributed Parquet table (see the module documentation).
#[derive(Debug, Clone)]
pub struct DenseScan {
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    /// The scan's output columns.
    schema: SchemaRef,
    /// The partition's files, in order, each with the row groups it reads (in file order).
    files: Vec<(ObjectMeta, Option<Vec<usize>>)>,
}

impl DenseScan {
    /// Partition `partition` of `plan`, when `plan` is the scan of a distributed Parquet table
    /// that only selects columns: no filter or limit, no computed or partition columns, no
    /// byte ranges or row selections within row groups. `None` otherwise (read it as Arrow).
    pub fn from_plan(plan: &dyn ExecutionPlan, partition: usize, ctx: &TaskContext) -> Option<Self> {
        let config = plan
            .downcast_ref::<DataSourceExec>()?
            .data_source()
            .downcast_ref::<FileScanConfig>()?;
        let source = config.file_source();
        let plain = config.object_store_url.as_str().starts_with(RANK_SPLIT_PREFIX)
            && source.file_type() == "parquet"
            && config.limit.is_none()
            && source.filter().is_none()
            && config.table_partition_cols().is_empty();
        if !plain {
            return None;
        }
        let schema = plan.schema();
        if let Some(projection) = source.projection() {
            let columns_only = projection
                .iter()
                .all(|p| p.expr.downcast_ref::<Column>().is_some_and(|c| c.name() == p.alias));
            if !columns_only {
                return None;
            }
        }
        let mut files = Vec::new();
        for file in config.file_groups.get(partition)?.iter() {
            if file.range.is_some() {
                return None;
            }
            let row_groups = match file.extensions.get::<ParquetAccessPlan>() {
                None => None,
                Some(access) => {
                    use datafusion::datasource::physical_plan::parquet::RowGroupAccess;
                    if access.inner().iter().any(|a| matches!(a, RowGroupAccess::Selection(_))) {
                        return None;
                    }
                    Some(access.row_group_indexes())
                }
            };
            files.push((file.object_meta.clone(), row_groups));
        }
        let store = ctx.runtime_env().object_store(&config.object_store_url).ok()?;
        let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        Some(DenseScan {
            store,
            cache,
            schema,
            files,
        })
    }

    /// The scan's output columns (the plan's schema).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Reads (or finds cached) the files' footers: the rows this partition yields.
    pub async fn open(&self) -> Result<OpenDenseScan> {
        let mut files = Vec::with_capacity(self.files.len());
        let mut rows = 0usize;
        for (meta, row_groups) in &self.files {
            let unreadable = |detail: String| ConnectorError::Unreadable {
                file: meta.location.to_string(),
                detail,
            };
            let md = DFParquetMetadata::new(self.store.as_ref(), meta)
                .with_file_metadata_cache(Some(Arc::clone(&self.cache)))
                .fetch_metadata()
                .await
                .map_err(|e| unreadable(e.strip_backtrace().to_string()))?;
            let groups = row_groups.clone().unwrap_or_else(|| (0..md.num_row_groups()).collect());
            for &g in &groups {
                let n = md
                    .row_groups()
                    .get(g)
                    .ok_or_else(|| unreadable(format!("row group {g} does not exist")))?
                    .num_rows();
                rows += usize::try_from(n).map_err(|_| unreadable(format!("row group {g} has {n} rows")))?;
            }
            files.push((meta.clone(), md, groups));
        }
        Ok(OpenDenseScan {
            scan: self.clone(),
            files,
            rows,
        })
    }
}

/// A [`DenseScan`] whose footers are read.
#[derive(Debug)]
pub struct OpenDenseScan {
    scan: DenseScan,
    files: Vec<(ObjectMeta, Arc<ParquetMetaData>, Vec<usize>)>,
    rows: usize,
}

impl OpenDenseScan {
    /// Rows the partition yields.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes the columns `columns` (indices into [`DenseScan::schema`], each of a type
    /// [`is_dense_type`] accepts) of every row into `out`, column-major: column `j` of
    /// `columns` fills `out[j * stride .. j * stride + rows]` in row order (`stride ≥ rows`).
    /// NULLs are written as NaN. Returns each column's count of NULLs plus NaNs.
    pub async fn read_into<T: DenseValue>(&self, columns: &[usize], out: &mut [T], stride: usize) -> Result<Vec<u64>> {
        let schema = &self.scan.schema;
        let mut wanted = Vec::with_capacity(columns.len());
        for &c in columns {
            let field = schema.fields().get(c).ok_or_else(|| {
                ConnectorError::DataFusion(datafusion::error::DataFusionError::Internal(format!(
                    "dense scan: column {c} of {}",
                    schema.fields().len()
                )))
            })?;
            if !is_dense_type(field.data_type()) {
                return Err(ConnectorError::DataFusion(
                    datafusion::error::DataFusionError::Internal(format!(
                        "dense scan: column '{}' is {}",
                        field.name(),
                        field.data_type()
                    )),
                ));
            }
            wanted.push((field.name().clone(), field.data_type().clone()));
        }
        if stride < self.rows || out.len() < columns.len() * stride {
            return Err(ConnectorError::DataFusion(
                datafusion::error::DataFusionError::Internal(format!(
                    "dense scan: {} rows × {} columns do not fit {} values with stride {stride}",
                    self.rows,
                    columns.len(),
                    out.len()
                )),
            ));
        }
        let mut counts = vec![0u64; columns.len()];
        let mut scratch = Scratch::default();
        let mut at = 0usize;
        for (meta, md, groups) in &self.files {
            let unreadable = |detail: String| ConnectorError::Unreadable {
                file: meta.location.to_string(),
                detail,
            };
            let descr = md.file_metadata().schema_descr();
            // The file's leaf column of each wanted column (a top-level primitive column).
            let leaves = wanted
                .iter()
                .map(|(name, _)| {
                    (0..descr.num_columns())
                        .find(|&i| {
                            let column = descr.column(i);
                            let parts = column.path().parts();
                            parts.len() == 1 && &parts[0] == name
                        })
                        .ok_or_else(|| unreadable(format!("no top-level column '{name}'")))
                })
                .collect::<Result<Vec<_>>>()?;
            for &g in groups {
                let rg = md.row_group(g);
                let n = rg.num_rows() as usize;
                let ranges = leaves
                    .iter()
                    .map(|&leaf| {
                        let (start, len) = rg.column(leaf).byte_range();
                        start..start + len
                    })
                    .collect::<Vec<_>>();
                let chunks = self.scan.store.get_ranges(&meta.location, &ranges).await?;
                for (j, ((&leaf, chunk), (_, data_type))) in leaves.iter().zip(chunks).zip(&wanted).enumerate() {
                    let bytes = ChunkBytes {
                        start: ranges[j].start,
                        data: chunk,
                        file_size: meta.size,
                    };
                    let column = rg.column(leaf);
                    let page_reader = SerializedPageReader::new(Arc::new(bytes), column, n, None)
                        .map_err(|e| unreadable(format!("row group {g}, column '{}': {e}", wanted[j].0)))?;
                    let max_def = descr.column(leaf).max_def_level();
                    let reader = get_column_reader(descr.column(leaf), Box::new(page_reader));
                    let dst = &mut out[j * stride + at..j * stride + at + n];
                    let nulls = decode_chunk(reader, data_type, max_def, dst, &mut scratch)
                        .map_err(|e| unreadable(format!("row group {g}, column '{}': {e}", wanted[j].0)))?;
                    counts[j] += nulls;
                }
                at += n;
            }
        }
        Ok(counts)
    }
}

/// One column chunk fetched into memory, addressed by file offsets (what the page reader asks).
struct ChunkBytes {
    start: u64,
    data: Bytes,
    file_size: u64,
}

impl ChunkBytes {
    fn slice(&self, start: u64, len: Option<usize>) -> std::result::Result<Bytes, ParquetError> {
        let end = self.start + self.data.len() as u64;
        let from = start
            .checked_sub(self.start)
            .filter(|_| start <= end)
            .ok_or_else(|| ParquetError::General(format!("offset {start} outside the column chunk")))?
            as usize;
        let to = match len {
            Some(len) if from + len <= self.data.len() => from + len,
            Some(len) => {
                return Err(ParquetError::EOF(format!(
                    "{len} bytes at offset {start} past the column chunk"
                )));
            }
            None => self.data.len(),
        };
        Ok(self.data.slice(from..to))
    }
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.file_size
    }
}

impl ChunkReader for ChunkBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> std::result::Result<Self::T, ParquetError> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> std::result::Result<Bytes, ParquetError> {
        self.slice(start, Some(length))
    }
}

/// Reused decode buffers (one piece of values and definition levels).
#[derive(Default)]
struct Scratch {
    f64s: Vec<f64>,
    f32s: Vec<f32>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    levels: Vec<i16>,
}

/// Decodes a column chunk of `dst.len()` rows into `dst`; returns its NULL + NaN count.
fn decode_chunk<T: DenseValue>(
    reader: ColumnReader,
    data_type: &DataType,
    max_def: i16,
    dst: &mut [T],
    s: &mut Scratch,
) -> std::result::Result<u64, ParquetError> {
    let p = Piece {
        max_def,
        levels: &mut s.levels,
    };
    let unsigned = matches!(
        data_type,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64
    );
    match reader {
        ColumnReader::DoubleColumnReader(r) => decode_typed(r, dst, &mut s.f64s, p, T::from_f64, true),
        ColumnReader::FloatColumnReader(r) => decode_typed(r, dst, &mut s.f32s, p, T::from_f32, true),
        ColumnReader::Int32ColumnReader(r) if unsigned => {
            decode_typed(r, dst, &mut s.i32s, p, |v| T::from_f64(f64::from(v as u32)), false)
        }
        ColumnReader::Int32ColumnReader(r) => {
            decode_typed(r, dst, &mut s.i32s, p, |v| T::from_f64(f64::from(v)), false)
        }
        ColumnReader::Int64ColumnReader(r) if unsigned => {
            decode_typed(r, dst, &mut s.i64s, p, |v| T::from_f64(v as u64 as f64), false)
        }
        ColumnReader::Int64ColumnReader(r) => decode_typed(r, dst, &mut s.i64s, p, |v| T::from_f64(v as f64), false),
        _ => Err(ParquetError::General(format!(
            "physical type cannot be read as {data_type}"
        ))),
    }
}

/// The definition levels of a piece and the column's maximum (0: the column has no NULLs).
struct Piece<'a> {
    max_def: i16,
    levels: &'a mut Vec<i16>,
}

/// Decodes a column chunk piece by piece through `values` (cleared each time), converting
/// with `convert`; NULLs (definition level below the maximum) become NaN.
fn decode_typed<P, T>(
    mut reader: ColumnReaderImpl<P>,
    dst: &mut [T],
    values: &mut Vec<P::T>,
    piece: Piece<'_>,
    convert: impl Fn(P::T) -> T,
    float: bool,
) -> std::result::Result<u64, ParquetError>
where
    P: ParquetType,
    P::T: Copy,
    T: DenseValue,
{
    let rows = dst.len();
    let Piece { max_def, levels } = piece;
    let nullable = max_def > 0;
    let mut at = 0;
    let mut bad = 0u64;
    while at < rows {
        values.clear();
        levels.clear();
        let want = PIECE.min(rows - at);
        let (records, read, _) = reader.read_records(want, nullable.then_some(&mut *levels), None, values)?;
        if records == 0 {
            return Err(ParquetError::EOF(format!("{at} values of {rows} in the column chunk")));
        }
        let out = &mut dst[at..at + records];
        if read == records {
            for (o, &v) in out.iter_mut().zip(values.iter()) {
                *o = convert(v);
            }
        } else {
            // Spread the non-NULL values over their rows.
            let mut next = values.iter();
            for (o, &level) in out.iter_mut().zip(levels.iter()) {
                *o = match (level == max_def).then(|| next.next()).flatten() {
                    Some(&v) => convert(v),
                    None => T::NAN,
                };
            }
            bad += (records - read) as u64;
        }
        if float {
            bad += out.iter().filter(|v| v.is_nan()).count() as u64 - (records - read) as u64;
        }
        at += records;
    }
    Ok(bad)
}
