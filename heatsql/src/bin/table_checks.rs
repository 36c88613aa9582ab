//! Multi-rank checks of distributed Parquet tables, Table → DNDarray → Arrow and COPY TO.
//!
//! `heatsql-table-checks gen BASE` writes the fixtures below BASE (a local directory or an
//! object_store URL such as `s3://bucket/prefix`); `heatsql-table-checks check BASE OUT` runs
//! every check under `mpirun -n P` (OUT: where COPY writes; a fresh location per run). Rank 0
//! prints failures and `table checks at P=<p>: <n> passed, <m> failed`.
//!
//! Fixture columns are functions of the global row index `id`, so every rank can check its own
//! rows without a reference copy: `x = sin(id)`, `y = id / 4` (f32), `k = id % 7` (i32),
//! `d = id / 4` as decimal(12, 2), `label = "r<id>"`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use engine::comm::ReduceOp;
use engine::testkit::Checker;
use heatsql::HeatContext;
use heatsql::convert::{LoadSpec, NullPolicy, load, to_batch};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tch::{Kind, Tensor};

/// Rows of the `points` files and their row-group size.
const POINT_FILES: [(i64, i64); 3] = [(23, 7), (40, 6), (9, 9)];
const POINTS: i64 = 72;

fn x_of(id: i64) -> f64 {
    (id as f64).sin()
}

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

/// Rows of `ints.parquet`.
const INT_ROWS: i64 = 50;

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

/// `ints.parquet`'s u64 column: above i64::MAX.
fn u64_of(id: i64) -> u64 {
    u64::MAX - 3 * id as u64
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

async fn put(store: &Arc<dyn ObjectStore>, prefix: &Path, name: &str, bytes: Vec<u8>) {
    let mut path = prefix.clone();
    for part in name.split('/') {
        path = path.join(part);
    }
    store.put(&path, PutPayload::from(bytes)).await.expect("put fixture");
}

/// Writes the fixtures below `base`.
async fn write_fixtures(ctx: &HeatContext, base: &str) {
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

/// This rank's `id` column of a query, and all ranks' ids in rank order.
async fn ids(c: &HeatContext, sql: &str) -> datafusion::error::Result<(Vec<i64>, Vec<i64>)> {
    let local = match c.sql(sql).await {
        Ok(df) => df.collect_local().await,
        Err(e) => Err(e),
    };
    // A failure on one rank must not leave the others in the allgather below.
    let batches = c
        .comm()
        .agree(local)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let mine: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let (all, _) = c
        .comm()
        .allgatherv(&mine)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    Ok((mine, all))
}

/// The error of a statement on this rank, as text ("" when it succeeded).
async fn error_of(c: &HeatContext, sql: &str) -> String {
    match c.sql(sql).await {
        Ok(df) => match df.collect().await {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn is_range(v: &[i64], lo: i64, hi: i64) -> bool {
    v.len() as i64 == hi - lo && v.iter().enumerate().all(|(i, &x)| x == lo + i as i64)
}

async fn check_tables(c: &mut Checker, ctx: &HeatContext, base: &str) {
    let (p, me) = (c.comm.size(), c.comm.rank());
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE points STORED AS PARQUET LOCATION '{base}/points/'"
        ))
        .await;
    c.check("tables/create_directory", r.is_ok(), || format!("{r:?}"));
    // Rows per rank add up and keep the file order; each rank's ids are contiguous.
    match ids(ctx, "SELECT id FROM points").await {
        Ok((mine, all)) => {
            c.check("tables/rows_add_up_in_order", is_range(&all, 0, POINTS), || {
                format!("{all:?}")
            });
            let contiguous = mine.windows(2).all(|w| w[1] == w[0] + 1);
            c.check("tables/rank_rows_contiguous", contiguous, || format!("{mine:?}"));
            let provider = ctx.session().table_provider("points").await.expect("table");
            let t = (provider.as_ref() as &dyn std::any::Any).downcast_ref::<connectors::DistributedParquetTable>();
            let per_rank = t.map(|t| t.rows_per_rank().to_vec()).unwrap_or_default();
            let ok = per_rank.len() == p
                && per_rank[me] as usize == mine.len()
                && per_rank.iter().sum::<u64>() == POINTS as u64;
            c.check("tables/rows_per_rank_reported", ok, || {
                format!("{per_rank:?} vs local {}", mine.len())
            });
        }
        Err(e) => c.check("tables/rows_add_up_in_order", false, || e.to_string()),
    }
    // Global schema and statistics are the same on every rank.
    let stats = ctx
        .session()
        .table_provider("points")
        .await
        .ok()
        .and_then(|t| t.statistics());
    let rows = stats
        .as_ref()
        .and_then(|s| s.num_rows.get_value().copied())
        .unwrap_or(0) as u64;
    let max_rows = c.comm.allreduce(&[rows], ReduceOp::Max).unwrap_or_default();
    c.check(
        "tables/global_statistics",
        rows == POINTS as u64 && max_rows == vec![rows],
        || format!("{stats:?}"),
    );
    // Projection and filter pushdown, visible in EXPLAIN, and correct rows.
    let (_, all) = ids(ctx, "SELECT id, x FROM points WHERE id >= 30 AND id < 40")
        .await
        .unwrap_or_default();
    c.check("tables/filter_rows", is_range(&all, 30, 40), || format!("{all:?}"));
    let plan = explain(ctx, "SELECT id, x FROM points WHERE id >= 30 AND id < 40").await;
    let pushed = plan.contains("projection=[id, x]") && plan.contains("predicate=") && plan.contains("DataSourceExec");
    c.check("tables/explain_shows_pushdown", pushed, || plan.clone());
    // A glob selects the same files.
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE globbed STORED AS PARQUET LOCATION '{base}/points/part-*.parquet'"
        ))
        .await;
    c.check("tables/create_glob", r.is_ok(), || format!("{r:?}"));
    let (_, all) = ids(ctx, "SELECT id FROM globbed").await.unwrap_or_default();
    c.check("tables/glob_rows", is_range(&all, 0, POINTS), || format!("{all:?}"));
    // An empty file.
    let r = ctx.register_parquet("empty", &format!("{base}/empty.parquet")).await;
    c.check("tables/empty_file_registers", r.is_ok(), || format!("{r:?}"));
    let (mine, all) = ids(ctx, "SELECT id FROM empty").await.unwrap_or((vec![1], vec![1]));
    c.check("tables/empty_file_no_rows", mine.is_empty() && all.is_empty(), || {
        format!("{all:?}")
    });
    // One row group, read by P ranks: one rank reads it all.
    ctx.register_parquet("single", &format!("{base}/single_rg.parquet"))
        .await
        .ok();
    let (mine, all) = ids(ctx, "SELECT id FROM single").await.unwrap_or_default();
    let holders = c
        .comm
        .allreduce(&[u64::from(!mine.is_empty())], ReduceOp::Sum)
        .unwrap_or_default();
    c.check(
        "tables/single_row_group",
        is_range(&all, 0, 10) && holders == vec![1],
        || format!("{all:?} held by {holders:?}"),
    );
    // Errors on every rank: corrupt file, missing path, conflicting schemas.
    for (name, loc, want) in [
        ("corrupt", format!("{base}/corrupt.parquet"), "cannot read"),
        ("missing", format!("{base}/no/such/dir/"), "not found"),
        ("missing_file", format!("{base}/nothing.parquet"), "not found"),
        ("conflict", format!("{base}/conflict/"), "conflicts"),
    ] {
        let e = error_of(
            ctx,
            &format!("CREATE EXTERNAL TABLE bad_{name} STORED AS PARQUET LOCATION '{loc}'"),
        )
        .await;
        c.check(&format!("tables/error_{name}"), e.contains(want), || {
            format!("error was '{e}'")
        });
    }
}

async fn explain(ctx: &HeatContext, sql: &str) -> String {
    let Ok(df) = ctx.sql(&format!("EXPLAIN {sql}")).await else {
        return String::new();
    };
    let batches = df.collect().await.unwrap_or_default();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

async fn check_arrays(c: &mut Checker, ctx: &HeatContext) {
    let stream = |sql: &'static str| async move {
        ctx.sql(sql)
            .await
            .expect("query")
            .execute_local()
            .await
            .expect("stream")
    };
    // f64 and f32 arrays from mixed column types; keep ids align with the rows.
    for (kind, tol) in [(Kind::Double, 0.0), (Kind::Float, 1e-6)] {
        let mut spec = LoadSpec::new("load");
        spec.columns = Some(vec!["x".into(), "k".into(), "d".into()]);
        spec.keep = vec!["id".into()];
        spec.kind = kind;
        // f32 also exercises the streaming decoder with a too-small capacity hint (it grows).
        if kind == Kind::Float {
            spec.expected_rows = Some(5);
        }
        let tag = format!("arrays/{kind:?}");
        match load(
            stream("SELECT * FROM points WHERE y IS NOT NULL AND NOT isnan(x)").await,
            &spec,
        )
        .await
        {
            Ok(l) => {
                let ids: Vec<i64> = l
                    .keep
                    .as_ref()
                    .map(|k| k.column(0).as_primitive::<Int64Type>().values().to_vec())
                    .unwrap_or_default();
                let want: Vec<f64> = ids
                    .iter()
                    .flat_map(|&i| [x_of(i), (i % 7) as f64, i as f64 / 4.0])
                    .collect();
                let want = Tensor::from_slice(&want).reshape([ids.len() as i64, 3]).to_kind(kind);
                c.close(
                    &format!("{tag}/values_follow_keep"),
                    Ok::<_, String>(l.array.local().shallow_clone()),
                    &want,
                    tol,
                );
                let n = l.array.gshape()[0];
                c.check(
                    &format!("{tag}/global_rows"),
                    n == 64 && l.columns == ["x", "k", "d"],
                    || format!("{:?} {:?}", l.array, l.columns),
                );
                // Back to Arrow: keep first, then the named columns.
                let names = vec!["a".to_string(), "b".into(), "c".into()];
                match to_batch("load", &l.array, &names, l.keep.as_ref()) {
                    Ok(b) => {
                        let ok =
                            b.num_columns() == 4 && b.schema().field(0).name() == "id" && b.num_rows() == ids.len();
                        let col = b.column(1);
                        let first = if kind == Kind::Float {
                            col.as_any()
                                .downcast_ref::<Float32Array>()
                                .map(|a| a.values().iter().map(|&v| v as f64).collect::<Vec<_>>())
                        } else {
                            col.as_any().downcast_ref::<Float64Array>().map(|a| a.values().to_vec())
                        };
                        let same = first.is_some_and(|v| v.iter().zip(&ids).all(|(v, &i)| (v - x_of(i)).abs() <= 1e-6));
                        c.check(&format!("{tag}/to_batch"), ok && same, || format!("{:?}", b.schema()));
                    }
                    Err(e) => c.check(&format!("{tag}/to_batch"), false, || e.to_string()),
                }
            }
            Err(e) => c.check(&format!("{tag}/load"), false, || e.to_string()),
        }
    }
    // NULL/NaN policy 'error': global counts per column, on every rank.
    let mut spec = LoadSpec::new("pca");
    spec.columns = Some(vec!["x".into(), "y".into()]);
    let e = load(stream("SELECT * FROM points").await, &spec)
        .await
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let want =
        "pca: column 'x' has 1 NULL/NaN values, column 'y' has 7 NULL/NaN values; filter them or pass nulls => 'drop'";
    c.check("arrays/nulls_error_global_counts", e == want, || format!("'{e}'"));
    spec.expected_rows = Some(40);
    let e = load(stream("SELECT * FROM points").await, &spec)
        .await
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.check("arrays/nulls_error_streaming", e == want, || format!("'{e}'"));
    spec.expected_rows = None;
    // 'drop': rows without NULL/NaN remain, keep columns filtered alike.
    spec.nulls = NullPolicy::Drop;
    spec.keep = vec!["id".into()];
    match load(stream("SELECT * FROM points").await, &spec).await {
        Ok(l) => {
            let ids: Vec<i64> = l
                .keep
                .as_ref()
                .map(|k| k.column(0).as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default();
            let (all, _) = c.comm.allgatherv(&ids).unwrap_or_default();
            let want: Vec<i64> = (0..POINTS).filter(|&i| i % 10 != 3 && i != 50).collect();
            c.check(
                "arrays/nulls_drop_rows",
                all == want && l.array.gshape()[0] == want.len() as i64,
                || format!("{all:?}"),
            );
            let wantx: Vec<f64> = ids.iter().map(|&i| x_of(i)).collect();
            c.close(
                "arrays/nulls_drop_values",
                Ok::<_, String>(l.array.local().select(1, 0)),
                &Tensor::from_slice(&wantx),
                0.0,
            );
        }
        Err(e) => c.check("arrays/nulls_drop_rows", false, || e.to_string()),
    }
    // Non-numeric and unknown columns are refused by name.
    let mut spec = LoadSpec::new("pca");
    spec.columns = Some(vec!["x".into(), "label".into()]);
    let e = load(stream("SELECT * FROM points").await, &spec)
        .await
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.check(
        "arrays/non_numeric_refused",
        e.contains("column 'label' is Utf8View; feature columns must be numeric"),
        || e.clone(),
    );
    spec.columns = Some(vec!["nope".into()]);
    let e = load(stream("SELECT * FROM points").await, &spec)
        .await
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.check(
        "arrays/unknown_column_refused",
        e.contains("column 'nope' not found; available columns: id, x, y, k, d, label"),
        || e.clone(),
    );
    // Default columns: every numeric column not kept (label excluded).
    let mut spec = LoadSpec::new("load");
    spec.keep = vec!["id".into()];
    let r = load(
        stream("SELECT * FROM points WHERE y IS NOT NULL AND NOT isnan(x)").await,
        &spec,
    )
    .await;
    c.check(
        "arrays/default_columns",
        r.as_ref().is_ok_and(|l| l.columns == ["x", "y", "k", "d"]),
        || format!("{r:?}"),
    );
}

/// Loads of plain scans read straight from the Parquet pages (`connectors::dense`, via
/// `to_dndarray` and the SQL functions); everything else goes through Arrow batches. Each
/// case loads the same query both ways and requires the same array (bit for bit) or the
/// same error, on every rank.
async fn check_dense(c: &mut Checker, ctx: &HeatContext, base: &str) {
    for (name, file) in [
        ("clean", "clean.parquet"),
        ("ints", "ints.parquet"),
        ("badpage", "badpage.parquet"),
    ] {
        let r = ctx.register_parquet(name, &format!("{base}/{file}")).await;
        c.check(&format!("dense/register_{name}"), r.is_ok(), || format!("{r:?}"));
    }
    let spec = |columns: Option<&[&str]>, kind: Kind, nulls: NullPolicy| {
        let mut spec = LoadSpec::new("pca");
        spec.columns = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
        spec.kind = kind;
        spec.nulls = nulls;
        spec
    };
    const INTS: [&str; 8] = ["i8", "i16", "u8", "u16", "u32", "u64", "f", "id"];
    let ints_want_nulls = "pca: column 'i16' has 6 NULL/NaN values, column 'f' has 1 NULL/NaN values; filter them or pass nulls => 'drop'";
    // (case, query, spec, read directly?, the error both ways when not "")
    let cases: Vec<(&str, &str, LoadSpec, bool, &str)> = vec![
        (
            "points_nulls_error",
            "SELECT * FROM points",
            spec(Some(&["x", "y", "k", "id"]), Kind::Double, NullPolicy::Error),
            true,
            "pca: column 'x' has 1 NULL/NaN values, column 'y' has 7 NULL/NaN values; filter them or pass nulls => 'drop'",
        ),
        (
            "points_nulls_drop",
            "SELECT * FROM points",
            spec(Some(&["x", "y", "k", "id"]), Kind::Double, NullPolicy::Drop),
            true,
            "",
        ),
        (
            "points_f32",
            "SELECT * FROM points",
            spec(Some(&["k", "x"]), Kind::Float, NullPolicy::Drop),
            true,
            "",
        ),
        (
            "clean_reordered_projection",
            "SELECT k, x, id FROM clean",
            spec(None, Kind::Double, NullPolicy::Error),
            true,
            "",
        ),
        (
            "single_row_group",
            "SELECT x, k FROM single",
            spec(None, Kind::Double, NullPolicy::Error),
            true,
            "",
        ),
        (
            "empty_file",
            "SELECT x, y FROM empty",
            spec(None, Kind::Double, NullPolicy::Error),
            true,
            "",
        ),
        (
            "ints_drop_f64",
            "SELECT * FROM ints",
            spec(Some(&INTS), Kind::Double, NullPolicy::Drop),
            true,
            "",
        ),
        (
            "ints_drop_f32",
            "SELECT * FROM ints",
            spec(Some(&INTS), Kind::Float, NullPolicy::Drop),
            true,
            "",
        ),
        (
            "ints_nulls_error",
            "SELECT * FROM ints",
            spec(Some(&INTS), Kind::Double, NullPolicy::Error),
            true,
            ints_want_nulls,
        ),
        // Through Arrow batches: a filter, a computed column, a decimal, keep columns.
        (
            "filter_not_direct",
            "SELECT x, k FROM clean WHERE id >= 0",
            spec(None, Kind::Double, NullPolicy::Error),
            false,
            "",
        ),
        (
            "computed_not_direct",
            "SELECT x * 2 AS x2, k FROM clean",
            spec(None, Kind::Double, NullPolicy::Error),
            false,
            "",
        ),
        (
            "keep_not_direct",
            "SELECT x, k, id FROM clean",
            {
                let mut s = spec(Some(&["x", "k"]), Kind::Double, NullPolicy::Error);
                s.keep = vec!["id".into()];
                s
            },
            false,
            "",
        ),
        (
            "decimal_not_direct",
            "SELECT x, d FROM clean",
            spec(None, Kind::Double, NullPolicy::Error),
            false,
            "",
        ),
    ];
    for (case, sql, spec, direct, want_error) in cases {
        let tag = format!("dense/{case}");
        let direct_load = match ctx.sql(sql).await {
            Ok(df) => df.to_dndarray(&spec).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
        .map_err(|e| e.trim_start_matches("Execution error: ").to_string());
        let stream = ctx
            .sql(sql)
            .await
            .expect("query")
            .execute_local()
            .await
            .expect("stream");
        let batches = load(stream, &spec).await.map_err(|e| e.to_string());
        match (direct_load, batches) {
            (Ok(a), Ok(b)) => {
                c.check(&format!("{tag}/path"), a.dense == direct && !b.dense, || {
                    format!("dense: {} (expected {direct}), through batches: {}", a.dense, b.dense)
                });
                let same = a.columns == b.columns
                    && a.array.gshape() == b.array.gshape()
                    && a.array.local().size() == b.array.local().size()
                    && a.array.local().kind() == b.array.local().kind()
                    && a.array.local().equal(b.array.local());
                c.check(&format!("{tag}/same_array"), same, || {
                    format!(
                        "{:?} {:?} vs {:?} {:?}",
                        a.columns,
                        a.array.gshape(),
                        b.columns,
                        b.array.gshape()
                    )
                });
                c.check(&format!("{tag}/no_error_expected"), want_error.is_empty(), || {
                    format!("expected '{want_error}'")
                });
                if case == "ints_drop_f64" {
                    // Against the formulas: unsigned values read as unsigned.
                    let ids = a.array.local().select(1, 7);
                    let u64s = a.array.local().select(1, 5);
                    let want: Vec<f64> = Vec::<f64>::try_from(&ids)
                        .unwrap_or_default()
                        .iter()
                        .map(|&i| u64_of(i as i64) as f64)
                        .collect();
                    let rows: Vec<i64> = Vec::<f64>::try_from(&ids)
                        .unwrap_or_default()
                        .iter()
                        .map(|&i| i as i64)
                        .collect();
                    let (all, _) = c.comm.allgatherv(&rows).unwrap_or_default();
                    let kept: Vec<i64> = (0..INT_ROWS).filter(|i| i % 9 != 4 && *i != 7).collect();
                    c.check(&format!("{tag}/rows"), all == kept, || format!("{all:?}"));
                    c.close(
                        &format!("{tag}/u64_values"),
                        Ok::<_, String>(u64s),
                        &Tensor::from_slice(&want),
                        0.0,
                    );
                }
            }
            (Err(a), Err(b)) => {
                c.check(&format!("{tag}/same_error"), a == b && a == want_error, || {
                    format!("directly: '{a}'; through batches: '{b}'; expected '{want_error}'")
                });
            }
            (a, b) => c.check(&format!("{tag}/same_outcome"), false, || {
                format!(
                    "directly: {:?}; through batches: {:?}",
                    a.map(|l| l.array),
                    b.map(|l| l.array)
                )
            }),
        }
    }
    // A corrupt page (valid footer): an error naming the file on every rank, from the rank
    // reading it, no panic and no hang.
    let e = match ctx.sql("SELECT x, k FROM badpage").await {
        Ok(df) => df.to_dndarray(&LoadSpec::new("pca")).await.map(|_| ()).err(),
        Err(e) => Some(e),
    }
    .map(|e| e.to_string())
    .unwrap_or_default();
    c.check(
        "dense/corrupt_page_error",
        e.contains("parquet: cannot read") && e.contains("badpage.parquet") && e.contains("column 'x'"),
        || format!("'{e}'"),
    );
    // The SQL functions read plain scans directly: the same singular values as through a
    // filter (which goes through Arrow batches).
    let s = |sql: &'static str| async move {
        let batches = ctx.sql(sql).await.expect("query").collect().await;
        batches.map(|b| {
            b.iter()
                .flat_map(|b| {
                    b.column(1)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .values()
                        .to_vec()
                })
                .collect::<Vec<f64>>()
        })
    };
    let direct = s("SELECT * FROM svd((SELECT x, k, id FROM clean), k => 3)").await;
    let filtered = s("SELECT * FROM svd((SELECT x, k, id FROM clean WHERE id >= 0), k => 3)").await;
    let close = match (&direct, &filtered) {
        (Ok(a), Ok(b)) => a.len() == 3 && a.iter().zip(b).all(|(a, b)| (a - b).abs() <= 1e-12 * b.abs()),
        _ => false,
    };
    c.check("dense/svd_same_as_through_batches", close, || {
        format!("{direct:?} vs {filtered:?}")
    });
}

/// The row count a `COPY … TO` statement returns (`None` if it ran but returned no row).
async fn copied_rows(ctx: &HeatContext, copy: &str) -> datafusion::error::Result<Option<u64>> {
    let batches = ctx.sql(copy).await?.collect().await?;
    Ok(batches.first().map(|b| {
        b.column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0)
    }))
}

async fn check_copy(c: &mut Checker, ctx: &HeatContext, out: &str) {
    let p = c.comm.size();
    let target = format!("{out}/copy/");
    let count = match copied_rows(
        ctx,
        &format!("COPY (SELECT * FROM points) TO '{target}' STORED AS PARQUET"),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            c.check("copy/round_trip_write", false, || e.to_string());
            None
        }
    };
    c.check("copy/count", count == Some(POINTS as u64), || format!("{count:?}"));
    let r = ctx
        .sql(&format!(
            "CREATE EXTERNAL TABLE copied STORED AS PARQUET LOCATION '{target}'"
        ))
        .await;
    c.check("copy/read_back", r.is_ok(), || format!("{r:?}"));
    let (_, all) = ids(ctx, "SELECT id FROM copied").await.unwrap_or_default();
    c.check("copy/round_trip_order", is_range(&all, 0, POINTS), || {
        format!("{all:?}")
    });
    // Values survive, NULLs included: compare the non-id columns as text, row by row.
    let text = |sql: &'static str| async move {
        let b = match ctx.sql(sql).await {
            Ok(d) => d.collect().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let (a, b) = (text("SELECT * FROM points").await, text("SELECT * FROM copied").await);
    c.check("copy/round_trip_values", !a.is_empty() && a == b, || {
        format!("{a}\n!=\n{b}")
    });
    let files = ctx.session().table_provider("copied").await.ok();
    let n = files
        .as_ref()
        .and_then(|t| {
            (t.as_ref() as &dyn std::any::Any)
                .downcast_ref::<connectors::DistributedParquetTable>()
                .map(|t| t.files().len())
        })
        .unwrap_or(0);
    c.check("copy/one_part_per_rank", n == p, || format!("{n} files"));
    // Copying into a non-empty location is refused.
    let e = error_of(
        ctx,
        &format!("COPY (SELECT * FROM points) TO '{target}' STORED AS PARQUET"),
    )
    .await;
    c.check("copy/refuses_non_empty_target", e.contains("already exists"), || {
        e.clone()
    });
    // A failure on one rank only (the row with label 'bad' lives on the last rank): every rank
    // errors and nothing remains.
    let failing = format!("{out}/failing/");
    let e = error_of(
        ctx,
        &format!("COPY (SELECT id, CAST(label AS INT) AS v FROM points) TO '{failing}' STORED AS PARQUET"),
    )
    .await;
    c.check(
        "copy/failure_reported_everywhere",
        e.contains("bad") || e.contains("Cast"),
        || format!("'{e}'"),
    );
    let leftover = ctx
        .register_parquet("leftover", &failing)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    c.check("copy/failure_leaves_nothing", leftover.contains("not found"), || {
        format!("'{leftover}'")
    });
}

/// Plain SQL across ranks: global answers, agreed errors, plan fingerprints, cancellation.
async fn check_sql(c: &mut Checker, ctx: &HeatContext) {
    let (p, me) = (c.comm.size(), c.comm.rank());
    let sums = match ctx.sql("SELECT count(*), sum(id) FROM points").await {
        Ok(f) => f
            .collect()
            .await
            .map(|b| format!("{:?}", b.first().map(|b| (b.column(0).clone(), b.column(1).clone())))),
        Err(e) => Err(e),
    };
    let sums = sums.unwrap_or_else(|e| e.to_string());
    c.check(
        "sql/global_aggregate_everywhere",
        sums.contains("72") && sums.contains("2556"),
        || sums.clone(),
    );
    // An error raised only by rows the last rank holds ('bad' is row 65), in the first stage
    // (below a shuffle) and in the last one: every rank returns it, quickly.
    for (name, sql) in [
        ("shuffled", "SELECT k, sum(CAST(label AS INT)) FROM points GROUP BY k"),
        ("gathered", "SELECT id, CAST(label AS INT) FROM points"),
    ] {
        let t = std::time::Instant::now();
        let e = error_of(ctx, sql).await;
        let secs = t.elapsed().as_secs_f64();
        c.check(
            &format!("sql/error_on_one_rank_everywhere/{name}"),
            e.contains("bad"),
            || format!("'{e}'"),
        );
        c.check(&format!("sql/error_within_seconds/{name}"), secs < 10.0, || {
            format!("{secs:.1} s")
        });
    }
    // Ranks that plan differently (here: a view whose text depends on the rank) are refused.
    let view = ctx
        .sql(&format!("CREATE VIEW skew AS SELECT id FROM points WHERE id < {me}"))
        .await;
    c.check("sql/view_created", view.is_ok(), || format!("{view:?}"));
    let e = error_of(ctx, "SELECT count(*) FROM skew").await;
    if p > 1 {
        c.check(
            "sql/plan_mismatch_refused",
            e.contains("plan differs between ranks"),
            || format!("'{e}'"),
        );
    } else {
        c.check("sql/single_rank_plan_runs", e.is_empty(), || format!("'{e}'"));
    }
    // Cancelling on one rank cancels the query on every rank; the next query runs.
    if me == p - 1 {
        ctx.cancel();
    }
    let e = error_of(ctx, "SELECT k, count(*) FROM points GROUP BY k").await;
    c.check(
        "sql/cancel_everywhere",
        e.contains(&format!("query cancelled on rank {}", p - 1)),
        || format!("'{e}'"),
    );
    let e = error_of(ctx, "SELECT k, count(*) FROM points GROUP BY k").await;
    c.check("sql/runs_after_cancel", e.is_empty(), || format!("'{e}'"));
    // EXPLAIN shows the exchanges.
    let plan = explain(ctx, "SELECT k, count(*) FROM points GROUP BY k ORDER BY k").await;
    let shuffles = plan.contains("MpiShuffleExec: partitioning=Hash([k@0]");
    c.check(
        "sql/explain_shows_exchanges",
        shuffles == (p > 1) && (p == 1 || plan.contains("MpiGatherExec")),
        || plan.clone(),
    );
    // CREATE TABLE AS runs distributed: every rank keeps the same copy (random() included).
    let created = ctx
        .sql("CREATE TABLE noisy AS SELECT id, random() AS v FROM points")
        .await;
    c.check("sql/ctas_created", created.is_ok(), || format!("{created:?}"));
    let local = match ctx.session().table("noisy").await {
        Ok(df) => df.collect().await.map(|b| {
            b.iter()
                .flat_map(|b| {
                    b.column(1)
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .values()
                        .to_vec()
                })
                .map(f64::to_bits)
                .fold(0u64, |h, v| h.rotate_left(5) ^ v)
        }),
        Err(e) => Err(e),
    };
    let digest = local.unwrap_or(0);
    let all = c.comm.allgather(&[digest]).unwrap_or_default();
    c.check(
        "sql/ctas_same_copy_everywhere",
        digest != 0 && all.iter().all(|&d| d == digest),
        || format!("{all:?}"),
    );
    // now() is one instant on every rank (plans equal, the same answer).
    let e = error_of(
        ctx,
        "SELECT count(*) FROM points WHERE now() > TIMESTAMP '2000-01-01' AND id < 5",
    )
    .await;
    c.check("sql/now_is_one_instant", e.is_empty(), || format!("'{e}'"));
    // A file sink is written once (by rank 0), not once per rank.
    let csv = format!("{}/csv-{p}/", std::env::temp_dir().display());
    if me == 0 {
        std::fs::remove_dir_all(&csv).ok();
    }
    c.comm.barrier();
    let e = error_of(
        ctx,
        &format!("CREATE EXTERNAL TABLE out_csv (id BIGINT) STORED AS CSV LOCATION '{csv}'"),
    )
    .await;
    c.check("sql/csv_table_created", e.is_empty(), || format!("'{e}'"));
    let e = error_of(ctx, "INSERT INTO out_csv SELECT id FROM points WHERE id < 10").await;
    c.check("sql/insert_into_csv", e.is_empty(), || format!("'{e}'"));
    let (_, written) = ids(ctx, "SELECT id FROM out_csv ORDER BY id").await.unwrap_or_default();
    let mut written = written;
    written.sort_unstable();
    c.check(
        "sql/insert_written_once",
        written == (0..10).collect::<Vec<i64>>(),
        || format!("{written:?}"),
    );
    // A result wanted on rank 0 only: there in full and in order, nothing elsewhere.
    let rooted = match ctx.sql("SELECT id FROM points WHERE id % 5 = 0 ORDER BY id DESC").await {
        Ok(f) => f.collect_on_root().await,
        Err(e) => Err(e),
    };
    let rooted: Vec<i64> = rooted
        .unwrap_or_default()
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    let want: Vec<i64> = if me == 0 {
        (0..POINTS).rev().filter(|i| i % 5 == 0).collect()
    } else {
        Vec::new()
    };
    c.check("sql/collect_on_root", rooted == want, || format!("{rooted:?}"));
    // A result left distributed: the groups are spread over the ranks (none twice).
    let local = match ctx.sql("SELECT k, count(*) AS n FROM points GROUP BY k").await {
        Ok(f) => f.collect_local().await,
        Err(e) => Err(e),
    };
    let groups: Vec<i64> = local
        .unwrap_or_default()
        .iter()
        .flat_map(|b| {
            datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)
                .map(|a| a.as_primitive::<Int64Type>().values().to_vec())
                .unwrap_or_default()
        })
        .collect();
    let (mut all, _) = c.comm.allgatherv(&groups).unwrap_or_default();
    all.sort_unstable();
    c.check(
        "sql/local_result_partitions_groups",
        all == (0..7).collect::<Vec<i64>>(),
        || format!("mine {groups:?}, all {all:?}"),
    );
}

/// Hash joins and DataFusion's dynamic filters: on with one rank, where every partition of a
/// join runs in this process (so whatever reads several partitions must run them at once: a
/// partitioned join's filter waits for all its build partitions), off with several. Joins
/// are forced into partitioned mode; each way a rank reads a plan's partitions is used: the
/// final result, this rank's stream (`COPY TO`), a scalar subquery, a table function's input.
async fn check_join_filters(c: &mut Checker, ctx: &HeatContext, out: &str) {
    let p = c.comm.size();
    let set = |threshold: &'static str, rows: &'static str| async move {
        let a = error_of(
            ctx,
            &format!("SET datafusion.optimizer.hash_join_single_partition_threshold = {threshold}"),
        )
        .await;
        let b = error_of(
            ctx,
            &format!("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = {rows}"),
        )
        .await;
        a + &b
    };
    let e = set("0", "0").await;
    c.check("joins/partitioned_mode_set", e.is_empty(), || format!("'{e}'"));
    let join = "SELECT a.id FROM points a JOIN points b ON a.id = b.id WHERE b.k = 3";
    let want: Vec<i64> = (0..POINTS).filter(|i| i % 7 == 3).collect();
    let plan = explain(ctx, join).await;
    c.check(
        "joins/dynamic_filter_only_with_one_rank",
        plan.contains("DynamicFilter") == (p == 1),
        || plan.clone(),
    );
    // Across ranks, the two shuffles into the join share a filter of the build keys.
    let filtered = plan.contains("key_filter=build") && plan.contains("key_filter=probe");
    c.check("joins/key_filter_only_across_ranks", filtered == (p > 1), || {
        plan.clone()
    });
    let (_, mut all) = ids(ctx, join).await.unwrap_or_default();
    all.sort_unstable();
    c.check("joins/result", all == want, || format!("{all:?}"));
    // Joins that keep probe rows without a match, or test for their absence, keep their answers.
    let others: Vec<i64> = (0..POINTS).filter(|i| i % 7 != 3).collect();
    let every: Vec<i64> = (0..POINTS).collect();
    let cases = [
        (
            "left_join",
            "SELECT a.id FROM points a LEFT JOIN (SELECT id FROM points WHERE k = 3) b ON a.id = b.id",
            &every,
        ),
        (
            "left_join_unmatched",
            "SELECT a.id FROM points a LEFT JOIN (SELECT id FROM points WHERE k = 3) b ON a.id = b.id \
             WHERE b.id IS NULL",
            &others,
        ),
        (
            "anti_join",
            "SELECT id FROM points a WHERE NOT EXISTS (SELECT 1 FROM points b WHERE b.id = a.id AND b.k = 3)",
            &others,
        ),
        (
            "semi_join",
            "SELECT id FROM points WHERE id IN (SELECT id FROM points WHERE k = 3)",
            &want,
        ),
    ];
    for filters in ["true", "false"] {
        let e = error_of(ctx, &format!("SET heatsql.join_key_filters = {filters}")).await;
        c.check("joins/key_filters_set", e.is_empty(), || format!("'{e}'"));
        for (name, sql, expected) in &cases {
            let (_, mut got) = ids(ctx, sql).await.unwrap_or_default();
            got.sort_unstable();
            c.check(
                &format!("joins/{name}/key_filters_{filters}"),
                &got == *expected,
                || format!("{got:?}"),
            );
        }
    }
    let plan = explain(ctx, join).await;
    c.check("joins/key_filters_off", !plan.contains("key_filter"), || plan.clone());
    let (_, mut all) = ids(ctx, join).await.unwrap_or_default();
    all.sort_unstable();
    c.check("joins/result_without_key_filters", all == want, || format!("{all:?}"));
    let e = error_of(ctx, "SET heatsql.join_key_filters = true").await;
    c.check("joins/key_filters_set_back", e.is_empty(), || format!("'{e}'"));
    // This rank's stream of the join, written where it was computed.
    let target = format!("{out}/joined/");
    let count = copied_rows(ctx, &format!("COPY ({join}) TO '{target}' STORED AS PARQUET"))
        .await
        .ok()
        .flatten();
    c.check("joins/copy_count", count == Some(want.len() as u64), || {
        format!("{count:?}")
    });
    // A scalar subquery over the join: max id with k = 3 is 66, five ids lie above it.
    let n = match ctx
        .sql(&format!(
            "SELECT count(*) FROM points WHERE id > (SELECT max(a.id) FROM ({join}) a)"
        ))
        .await
    {
        Ok(df) => df
            .collect()
            .await
            .map(|b| b.first().map(|b| b.column(0).as_primitive::<Int64Type>().value(0))),
        Err(e) => Err(e),
    };
    c.check("joins/scalar_subquery", matches!(n, Ok(Some(5))), || format!("{n:?}"));
    // A table function reading the join: one score row per joined row.
    let (_, mut scored) = ids(
        ctx,
        "SELECT id FROM pca((SELECT a.id, a.x, CAST(b.id AS DOUBLE) AS z FROM points a \
         JOIN points b ON a.id = b.id WHERE b.k = 3), k => 1, keep => 'id')",
    )
    .await
    .unwrap_or_default();
    scored.sort_unstable();
    c.check("joins/table_function_input", scored == want, || format!("{scored:?}"));
    let e = set("1048576", "131072").await;
    c.check("joins/defaults_set_back", e.is_empty(), || format!("'{e}'"));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = HeatContext::new();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["gen", base] => {
            if ctx.comm().rank() == 0 {
                write_fixtures(&ctx, base.trim_end_matches('/')).await;
            }
            ctx.comm().barrier();
        }
        ["check", base, out, rest @ ..] => {
            let mut c = Checker::new(rest.contains(&"-v"));
            check_tables(&mut c, &ctx, base.trim_end_matches('/')).await;
            check_arrays(&mut c, &ctx).await;
            check_dense(&mut c, &ctx, base.trim_end_matches('/')).await;
            check_sql(&mut c, &ctx).await;
            check_join_filters(&mut c, &ctx, out.trim_end_matches('/')).await;
            check_copy(&mut c, &ctx, out.trim_end_matches('/')).await;
            if !c.summary("table checks") {
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: heatsql-table-checks gen BASE | check BASE OUT [-v]");
            std::process::exit(2);
        }
    }
}
