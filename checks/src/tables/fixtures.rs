//! The table checks' fixtures: Parquet files whose columns are functions of the global row
//! index `id` (see [`super`]), written below a local directory or an object_store URL.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    RecordBatch, StringArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use heatsql::HeatContext;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{INT_ROWS, u64_of, x_of};

/// Rows of the `points` files and their row-group size.
const POINT_FILES: [(i64, i64); 3] = [(23, 7), (40, 6), (9, 9)];

/// A batch of rows `start..start + n` (NULL `y` where id % 10 == 3 when `nulls`; NaN x at 50).
fn batch(start: i64, n: i64, nulls: bool) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n).collect();
    let x: Vec<f64> = ids
        .iter()
        .map(|&i| if nulls && i == 50 { f64::NAN } else { x_of(i) })
        .collect();
    let y: Vec<Option<f32>> = ids
        .iter()
        .map(|&i| {
            if nulls && i % 10 == 3 {
                None
            } else {
                Some(i as f32 / 4.0)
            }
        })
        .collect();
    let k: Vec<i32> = ids.iter().map(|&i| (i % 7) as i32).collect();
    let d = Decimal128Array::from(ids.iter().map(|&i| i as i128 * 25).collect::<Vec<_>>())
        .with_precision_and_scale(12, 2)
        .expect("decimal");
    let label: Vec<String> = ids
        .iter()
        .map(|&i| if i == 65 { "bad".into() } else { format!("{i}") })
        .collect();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
        Field::new("y", DataType::Float32, true),
        Field::new("k", DataType::Int32, false),
        Field::new("d", DataType::Decimal128(12, 2), false),
        Field::new("label", DataType::Utf8, false),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(Float64Array::from(x)),
        Arc::new(Float32Array::from(y)),
        Arc::new(Int32Array::from(k)),
        Arc::new(d),
        Arc::new(StringArray::from(label)),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).expect("batch")
}

/// Integer columns of every width and sign (values near the top of the unsigned ranges, so a
/// signed reading would be wrong), a nullable one, and an f32 with one NaN (id 7).
fn int_batch(n: i64) -> RecordBatch {
    let ids: Vec<i64> = (0..n).collect();
    let cols: Vec<(&str, ArrayRef, bool)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone())), false),
        (
            "i8",
            Arc::new(Int8Array::from_iter_values(ids.iter().map(|&i| (i - 25) as i8))),
            false,
        ),
        (
            "i16",
            Arc::new(Int16Array::from_iter(
                ids.iter().map(|&i| (i % 9 != 4).then_some((i * -300) as i16)),
            )),
            true,
        ),
        (
            "u8",
            Arc::new(UInt8Array::from_iter_values(ids.iter().map(|&i| 255 - i as u8))),
            false,
        ),
        (
            "u16",
            Arc::new(UInt16Array::from_iter_values(ids.iter().map(|&i| u16::MAX - i as u16))),
            false,
        ),
        (
            "u32",
            Arc::new(UInt32Array::from_iter_values(ids.iter().map(|&i| u32::MAX - i as u32))),
            false,
        ),
        (
            "u64",
            Arc::new(UInt64Array::from_iter_values(ids.iter().map(|&i| u64_of(i)))),
            false,
        ),
        (
            "f",
            Arc::new(Float32Array::from_iter_values(
                ids.iter().map(|&i| if i == 7 { f32::NAN } else { i as f32 * 0.5 }),
            )),
            false,
        ),
    ];
    let schema = Schema::new(
        cols.iter()
            .map(|(n, a, null)| Field::new(*n, a.data_type().clone(), *null))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|c| c.1).collect()).expect("ints")
}

/// `bytes` (a Parquet file) with the first page header of row group `rg`, column `col`
/// overwritten by garbage: the footer stays valid, reading that column chunk fails.
fn with_bad_page(bytes: Vec<u8>, rg: usize, col: usize) -> Vec<u8> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).expect("fixture footer");
    let (start, _) = reader.metadata().row_group(rg).column(col).byte_range();
    let mut bytes = bytes;
    for b in &mut bytes[start as usize..start as usize + 12] {
        *b = 0xff;
    }
    bytes
}

/// `b` as a Parquet file in row groups of `row_group` rows.
fn parquet_bytes(b: &RecordBatch, row_group: i64) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group.max(1) as usize))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, b.schema(), Some(props)).expect("writer");
    w.write(b).expect("write");
    w.close().expect("close");
    out
}

/// Puts `bytes` at `prefix/name` (`name` may hold `/`).
async fn put(store: &Arc<dyn ObjectStore>, prefix: &Path, name: &str, bytes: Vec<u8>) {
    let mut path = prefix.clone();
    for part in name.split('/') {
        path = path.join(part);
    }
    store.put(&path, PutPayload::from(bytes)).await.expect("put fixture");
}

/// Writes the fixtures below `base` (local, not collective: `heatsql-table-checks gen BASE`
/// calls it on rank 0).
pub async fn write(ctx: &HeatContext, base: &str) {
    let loc = connectors::location::Location::resolve(&format!("{base}/"), &ctx.session().state()).expect("base");
    let (store, prefix) = (Arc::clone(&loc.store), loc.url.prefix().clone());
    let mut start = 0;
    for (i, (n, rg)) in POINT_FILES.iter().enumerate() {
        put(
            &store,
            &prefix,
            &format!("points/part-{i}.parquet"),
            parquet_bytes(&batch(start, *n, true), *rg),
        )
        .await;
        start += n;
    }
    put(&store, &prefix, "points/README.txt", b"not parquet".to_vec()).await;
    let clean = batch(0, 100, false);
    let clean_bytes = parquet_bytes(&clean, 16);
    put(&store, &prefix, "clean.parquet", clean_bytes.clone()).await;
    put(
        &store,
        &prefix,
        "single_rg.parquet",
        parquet_bytes(&batch(0, 10, false), 100),
    )
    .await;
    put(&store, &prefix, "empty.parquet", parquet_bytes(&batch(0, 0, false), 10)).await;
    put(
        &store,
        &prefix,
        "corrupt.parquet",
        clean_bytes[..clean_bytes.len() / 2].to_vec(),
    )
    .await;
    put(
        &store,
        &prefix,
        "conflict/a.parquet",
        parquet_bytes(&batch(0, 5, false), 5),
    )
    .await;
    put(&store, &prefix, "ints.parquet", parquet_bytes(&int_batch(INT_ROWS), 12)).await;
    put(
        &store,
        &prefix,
        "badpage.parquet",
        with_bad_page(clean_bytes.clone(), 3, 1),
    )
    .await;
    let other =
        RecordBatch::try_from_iter(vec![("id", Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef)]).expect("b");
    put(&store, &prefix, "conflict/b.parquet", parquet_bytes(&other, 5)).await;
}
