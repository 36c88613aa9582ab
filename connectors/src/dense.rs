//! Reading a rank's share of a plain Parquet scan straight into column-major memory.
//!
//! A DNDarray load wants each feature column as one run of the rank's rows (the local tensor
//! is n_local × d, stored column by column). Through DataFusion's scan every value is written
//! twice into memory the size of the table: decoded into Arrow batches, then copied into the
//! tensor. [`DenseScan`] decodes each column chunk of the rank's row groups in pieces of
//! [`PIECE`] values into one small buffer that stays in the core's cache, and copies (or
//! converts) each piece into its place in the caller's column-major buffer: one write of the
//! table into fresh memory, as a plain Parquet read into Arrow makes. Measured on the load
//! benchmark (`scripts/bench.sh load`, 2,000,000 × 32 f64, P = 1): 0.95–1.11 × the rate of a
//! plain single-process read into Arrow, where the load through Arrow batches reached
//! 0.68–0.84 ×.
//!
//! It applies to the scan of a [`crate::DistributedParquetTable`] that only selects columns
//! (no filter, no limit, no computed projection): [`DenseScan::from_plan`] recognises it and
//! takes the rank's files and row groups from the plan itself, so it reads exactly the rows
//! the plan's partition would. Everything else keeps the Arrow path.
//!
//! Column chunks are fetched through the table's object store (one `get_ranges` per row group
//! for the selected columns, so remote stores see coalesced requests) and decoded by the
//! parquet crate's column readers (every encoding and codec it supports). NULLs are written as
//! NaN and counted; so are NaNs. Integers convert to floats as the Arrow load path converts
//! them (through f64), so both paths give the same bits.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, ParquetRowSelection, RowGroupAccess};
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

/// Partitions of a plain scan of a distributed Parquet table, read as one (see the module
/// documentation).
#[derive(Debug, Clone)]
pub struct DenseScan {
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    /// The scan's output columns.
    schema: SchemaRef,
    /// The partition's files, in order, each with the row groups it reads (in file order) and
    /// the row groups the access plan was made for (`None`: every row group).
    files: Vec<(ObjectMeta, Option<PlannedGroups>)>,
}

impl DenseScan {
    /// Partitions `partitions` of `plan` in that order, when `plan` is the scan of a distributed Parquet table
    /// that only selects columns: no filter or limit, no computed or partition columns, no
    /// byte ranges or row selections within row groups. `None` otherwise (read it as Arrow).
    pub fn from_plan(plan: &dyn ExecutionPlan, partitions: &[usize], ctx: &TaskContext) -> Option<Self> {
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
        let mut groups = Vec::with_capacity(partitions.len());
        for &p in partitions {
            groups.push(config.file_groups.get(p)?);
        }
        for file in groups.into_iter().flat_map(|g| g.iter()) {
            if file.range.is_some() {
                return None;
            }
            if file.extensions.get::<ParquetRowSelection>().is_some() {
                return None;
            }
            let row_groups = match file.extensions.get::<ParquetAccessPlan>() {
                None => None,
                Some(access) => {
                    if access.inner().iter().any(|a| matches!(a, RowGroupAccess::Selection(_))) {
                        return None;
                    }
                    Some((access.row_group_indexes(), access.len()))
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
            let groups = match row_groups {
                Some((_, listed)) if *listed != md.num_row_groups() => {
                    return Err(unreadable(format!(
                        "{} row groups, the table was opened with {listed}",
                        md.num_row_groups()
                    )));
                }
                Some((planned, _)) => planned.clone(),
                None => (0..md.num_row_groups()).collect(),
            };
            let mut sized = Vec::with_capacity(groups.len());
            for g in groups {
                let n = md.row_groups().get(g).map(|rg| rg.num_rows()).unwrap_or(-1);
                let n = usize::try_from(n).map_err(|_| unreadable(format!("row group {g} has {n} rows")))?;
                rows = rows
                    .checked_add(n)
                    .filter(|&r| r <= i64::MAX as usize)
                    .ok_or_else(|| unreadable(format!("row group {g}: more rows than can be addressed")))?;
                sized.push((g, n));
            }
            files.push((meta.clone(), md, sized));
        }
        Ok(OpenDenseScan {
            scan: self.clone(),
            files,
            rows,
        })
    }
}

/// The row groups of a file an access plan reads (in file order), and how many row groups
/// the plan was made for.
type PlannedGroups = (Vec<usize>, usize);

/// A file to read: the object, its footer, and each row group to read with its rows.
type OpenFile = (ObjectMeta, Arc<ParquetMetaData>, Vec<(usize, usize)>);

/// A [`DenseScan`] whose footers are read.
#[derive(Debug)]
pub struct OpenDenseScan {
    scan: DenseScan,
    /// Each file with its row groups to read and their rows.
    files: Vec<OpenFile>,
    rows: usize,
}

/// Column chunks of a row group fetched together, up to this many bytes (at least one):
/// coalesced requests for remote stores, little memory held.
const FETCH_BYTES: u64 = 8 << 20;

/// An error that is the caller's mistake, not the data's.
fn misuse(message: String) -> ConnectorError {
    ConnectorError::DataFusion(datafusion::error::DataFusionError::Internal(format!(
        "dense scan: {message}"
    )))
}

impl OpenDenseScan {
    /// Rows the partition yields.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Decodes the columns `columns` (indices into [`DenseScan::schema`], each of a type
    /// [`is_dense_type`] accepts) of every row into `out`, column-major: column `j` of
    /// `columns` fills `out[j * stride .. j * stride + rows]` in row order (`stride ≥ rows`).
    /// NULLs are written as NaN. Returns each column's count of NULLs plus NaNs. A file that
    /// does not match its footer (short or long column chunks, undecodable pages) is an
    /// [`ConnectorError::Unreadable`] naming the file, row group and column.
    pub async fn read_into<T: DenseValue>(&self, columns: &[usize], out: &mut [T], stride: usize) -> Result<Vec<u64>> {
        let schema = &self.scan.schema;
        let mut wanted = Vec::with_capacity(columns.len());
        for &c in columns {
            let field = schema
                .fields()
                .get(c)
                .ok_or_else(|| misuse(format!("column {c} of {}", schema.fields().len())))?;
            if !is_dense_type(field.data_type()) {
                return Err(misuse(format!("column '{}' is {}", field.name(), field.data_type())));
            }
            wanted.push((field.name().as_str(), field.data_type()));
        }
        if stride < self.rows || out.len() < columns.len() * stride {
            return Err(misuse(format!(
                "{} rows × {} columns do not fit {} values with stride {stride}",
                self.rows,
                columns.len(),
                out.len()
            )));
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
                            parts.len() == 1 && parts[0] == *name
                        })
                        .ok_or_else(|| unreadable(format!("no top-level column '{name}'")))
                })
                .collect::<Result<Vec<_>>>()?;
            for &(g, n) in groups {
                let rg = md.row_group(g);
                let mut ranges = Vec::with_capacity(leaves.len());
                for (&leaf, (name, _)) in leaves.iter().zip(&wanted) {
                    let column = rg.column(leaf);
                    let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
                    let (Ok(start), Ok(len)) = (u64::try_from(start), u64::try_from(column.compressed_size())) else {
                        return Err(unreadable(format!(
                            "row group {g}, column '{name}': negative offset or size"
                        )));
                    };
                    ranges.push(start..start.saturating_add(len));
                }
                let mut j = 0;
                while j < leaves.len() {
                    // The next column chunks up to FETCH_BYTES, fetched together.
                    let mut end = j + 1;
                    let mut bytes = ranges[j].end - ranges[j].start;
                    while end < leaves.len() && bytes + (ranges[end].end - ranges[end].start) <= FETCH_BYTES {
                        bytes += ranges[end].end - ranges[end].start;
                        end += 1;
                    }
                    let chunks = self.scan.store.get_ranges(&meta.location, &ranges[j..end]).await?;
                    if chunks.len() != end - j {
                        return Err(unreadable(format!(
                            "row group {g}: the store returned {} of {} column chunks",
                            chunks.len(),
                            end - j
                        )));
                    }
                    for (k, chunk) in (j..end).zip(chunks) {
                        let (name, data_type) = wanted[k];
                        let leaf = leaves[k];
                        let bytes = ChunkBytes {
                            start: ranges[k].start,
                            data: chunk,
                            file_size: meta.size,
                        };
                        let dst = &mut out[k * stride + at..k * stride + at + n];
                        let decoded = engine::comm::abort::catch_recoverable(|| {
                            let page_reader = SerializedPageReader::new(Arc::new(bytes), rg.column(leaf), n, None)?;
                            let column = descr.column(leaf);
                            let max_def = column.max_def_level();
                            let reader = get_column_reader(column, Box::new(page_reader));
                            decode_chunk(reader, data_type, max_def, dst, &mut scratch)
                        });
                        counts[k] += match decoded {
                            Ok(Ok(bad)) => bad,
                            Ok(Err(e)) => return Err(unreadable(format!("row group {g}, column '{name}': {e}"))),
                            // The parquet crate asserts on some malformed pages: that is this
                            // file's error, not a crash of this rank (which would leave the
                            // other ranks waiting).
                            Err(_) => {
                                return Err(unreadable(format!(
                                    "row group {g}, column '{name}': the page decoder failed"
                                )));
                            }
                        };
                    }
                    j = end;
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
    // Narrow integers are stored as INT32; like parquet's Arrow reader, keep the low bits the
    // Arrow type holds (so the same bits come out either way).
    let int32: fn(i32) -> f64 = match data_type {
        DataType::Int8 => |v| f64::from(v as i8),
        DataType::Int16 => |v| f64::from(v as i16),
        DataType::UInt8 => |v| f64::from(v as u8),
        DataType::UInt16 => |v| f64::from(v as u16),
        DataType::UInt32 => |v| f64::from(v as u32),
        _ => f64::from,
    };
    let int64: fn(i64) -> f64 = match data_type {
        DataType::UInt64 => |v| v as u64 as f64,
        _ => |v| v as f64,
    };
    match reader {
        ColumnReader::DoubleColumnReader(r) => decode_typed(r, dst, &mut s.f64s, p, T::from_f64, true),
        ColumnReader::FloatColumnReader(r) => decode_typed(r, dst, &mut s.f32s, p, T::from_f32, true),
        ColumnReader::Int32ColumnReader(r) => decode_typed(r, dst, &mut s.i32s, p, |v| T::from_f64(int32(v)), false),
        ColumnReader::Int64ColumnReader(r) => decode_typed(r, dst, &mut s.i64s, p, |v| T::from_f64(int64(v)), false),
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
    // A chunk holding more values than its row group has rows does not match its footer.
    values.clear();
    levels.clear();
    let (extra, _, _) = reader.read_records(1, nullable.then_some(&mut *levels), None, values)?;
    if extra > 0 {
        return Err(ParquetError::General(format!(
            "more values than the row group's {rows} rows"
        )));
    }
    Ok(bad)
}
