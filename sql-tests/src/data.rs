//! The deterministic Parquet tables the `.slt` files query (a small TPC-H-flavoured set).
//!
//! Every value is a function of a fixed seed, so the files are byte-identical on every run and
//! every machine. Row groups are small so that at P = 4 every rank reads some groups of the
//! large tables, while `tiny` (one row group) is read by a single rank and `empty` by none.
//!
//! | location | rows | row groups | columns |
//! |---|---|---|---|
//! | `customers.parquet` | 200 | 13 (16 rows) | `c_id` int, `c_name` text, `c_nation` text (10 values), `c_balance` float (NULLs) |
//! | `orders/part-{0,1,2}.parquet` | 3000 | 60 (50 rows) | `o_id` int, `o_cust` int (1..=221; 201..=221 are not customers; 50, 100, 150, 200 have no orders), `o_date` date, `o_status` text (`O`/`F`/`P`), `o_total` float (10.00..=5000.00, NULLs), `o_prio` int (NULLs) |
//! | `items/part-{0,1}.parquet` | 10000 | 50 (200 rows) | `i_order` int (1..=3100; 3001..=3100 are not orders), `i_line` int, `i_qty` int, `i_price` decimal(12,2), `i_discount` float, `i_flag` text (`A`/`N`/`R`), `i_taxed` bool |
//! | `tiny.parquet` | 3 | 1 | `t_id` int, `t_name` text, `t_status` text (a NULL), `t_x` float (a NULL) |
//! | `empty.parquet` | 0 | 0 | `e_id` int, `e_name` text, `e_x` float |
//!
//! Floats hold whole cents (two decimals), so sums are far from the 10-digit rounding boundary.

use std::io;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

/// The seed of every table.
pub const SEED: u64 = 0x5EED_4EA7_5017;

/// Nation names of `customers.c_nation`.
pub const NATIONS: [&str; 10] = [
    "ALGERIA", "BRAZIL", "CANADA", "EGYPT", "FRANCE", "GERMANY", "INDIA", "JAPAN", "KENYA", "PERU",
];

/// SplitMix64: a tiny, fixed pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Self {
        Rng(SEED ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> io::Result<RecordBatch> {
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(io::Error::other)
}

/// Parquet bytes of `batch` with row groups of at most `row_group` rows.
fn parquet_bytes(schema: &SchemaRef, batch: Option<&RecordBatch>, row_group: usize) -> io::Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group.max(1)))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(schema), Some(props)).map_err(io::Error::other)?;
    if let Some(batch) = batch {
        writer.write(batch).map_err(io::Error::other)?;
    }
    writer.close().map_err(io::Error::other)?;
    Ok(out)
}

fn customers() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut rng = Rng::new(1);
    let n = 200;
    let ids: Vec<i32> = (1..=n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("Customer#{i:03}")).collect();
    let nations: Vec<&str> = ids.iter().map(|_| NATIONS[rng.range(0, 9) as usize]).collect();
    let balance: Vec<Option<f64>> = ids
        .iter()
        .map(|_| {
            let cents = rng.range(-200_000, 1_800_000);
            (!rng.chance(5)).then_some(cents as f64 / 100.0)
        })
        .collect();
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("c_id", DataType::Int32, false),
        Field::new("c_name", DataType::Utf8, false),
        Field::new("c_nation", DataType::Utf8, false),
        Field::new("c_balance", DataType::Float64, true),
    ]));
    let b = batch(
        &schema,
        vec![
            Arc::new(Int32Array::from(ids)),
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(nations)),
            Arc::new(Float64Array::from(balance)),
        ],
    )?;
    Ok(vec![(
        "customers.parquet".into(),
        parquet_bytes(&schema, Some(&b), 16)?,
    )])
}

fn orders() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut rng = Rng::new(2);
    // 1995-01-01 as days since the epoch.
    let start_day = 9131;
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("o_id", DataType::Int32, false),
        Field::new("o_cust", DataType::Int32, false),
        Field::new("o_date", DataType::Date32, false),
        Field::new("o_status", DataType::Utf8, false),
        Field::new("o_total", DataType::Float64, true),
        Field::new("o_prio", DataType::Int32, true),
    ]));
    let mut files = Vec::new();
    let mut next_id = 1;
    for (part, rows) in [1000, 1200, 800].into_iter().enumerate() {
        let ids: Vec<i32> = (next_id..next_id + rows).collect();
        next_id += rows;
        let mut cust = Vec::new();
        let mut date = Vec::new();
        let mut status = Vec::new();
        let mut total = Vec::new();
        let mut prio = Vec::new();
        for _ in &ids {
            // Customers 50, 100, 150 and 200 place no orders.
            let c = rng.range(1, 220) as i32;
            cust.push(if c % 50 == 0 { c + 1 } else { c });
            date.push((start_day + rng.range(0, 999)) as i32);
            status.push(match rng.range(0, 9) {
                0..=4 => "F",
                5..=8 => "O",
                _ => "P",
            });
            let cents = rng.range(1_000, 500_000);
            total.push((!rng.chance(3)).then_some(cents as f64 / 100.0));
            let p = rng.range(1, 5) as i32;
            prio.push((!rng.chance(10)).then_some(p));
        }
        let b = batch(
            &schema,
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(Int32Array::from(cust)),
                Arc::new(Date32Array::from(date)),
                Arc::new(StringArray::from(status)),
                Arc::new(Float64Array::from(total)),
                Arc::new(Int32Array::from(prio)),
            ],
        )?;
        files.push((
            format!("orders/part-{part}.parquet"),
            parquet_bytes(&schema, Some(&b), 50)?,
        ));
    }
    Ok(files)
}

fn items() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut rng = Rng::new(3);
    let n = 10_000;
    let mut order: Vec<i32> = (0..n).map(|_| rng.range(1, 3100) as i32).collect();
    order.sort_unstable();
    let mut line = Vec::with_capacity(n);
    for (i, o) in order.iter().enumerate() {
        let l = if i > 0 && order[i - 1] == *o {
            line[i - 1] + 1
        } else {
            1
        };
        line.push(l);
    }
    let qty: Vec<i32> = (0..n).map(|_| rng.range(1, 50) as i32).collect();
    let price: Vec<i128> = (0..n).map(|_| rng.range(100, 100_000) as i128).collect();
    let discount: Vec<f64> = (0..n).map(|_| rng.range(0, 10) as f64 / 100.0).collect();
    let flag: Vec<&str> = (0..n)
        .map(|_| match rng.range(0, 3) {
            0 => "A",
            1 => "R",
            _ => "N",
        })
        .collect();
    let taxed: Vec<bool> = (0..n).map(|_| rng.chance(70)).collect();
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("i_order", DataType::Int32, false),
        Field::new("i_line", DataType::Int32, false),
        Field::new("i_qty", DataType::Int32, false),
        Field::new("i_price", DataType::Decimal128(12, 2), false),
        Field::new("i_discount", DataType::Float64, false),
        Field::new("i_flag", DataType::Utf8, false),
        Field::new("i_taxed", DataType::Boolean, false),
    ]));
    let mut files = Vec::new();
    for part in 0..2 {
        let r = part * n / 2..(part + 1) * n / 2;
        let prices = Decimal128Array::from(price[r.clone()].to_vec())
            .with_precision_and_scale(12, 2)
            .map_err(io::Error::other)?;
        let b = batch(
            &schema,
            vec![
                Arc::new(Int32Array::from(order[r.clone()].to_vec())),
                Arc::new(Int32Array::from(line[r.clone()].to_vec())),
                Arc::new(Int32Array::from(qty[r.clone()].to_vec())),
                Arc::new(prices),
                Arc::new(Float64Array::from(discount[r.clone()].to_vec())),
                Arc::new(StringArray::from(flag[r.clone()].to_vec())),
                Arc::new(BooleanArray::from(taxed[r].to_vec())),
            ],
        )?;
        files.push((
            format!("items/part-{part}.parquet"),
            parquet_bytes(&schema, Some(&b), 200)?,
        ));
    }
    Ok(files)
}

fn tiny_and_empty() -> io::Result<Vec<(String, Vec<u8>)>> {
    let tiny: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("t_id", DataType::Int32, false),
        Field::new("t_name", DataType::Utf8, false),
        Field::new("t_status", DataType::Utf8, true),
        Field::new("t_x", DataType::Float64, true),
    ]));
    let b = batch(
        &tiny,
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["one", "two", "three"])),
            Arc::new(StringArray::from(vec![Some("O"), Some("F"), None])),
            Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.5)])),
        ],
    )?;
    let empty: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("e_id", DataType::Int32, false),
        Field::new("e_name", DataType::Utf8, true),
        Field::new("e_x", DataType::Float64, true),
    ]));
    Ok(vec![
        ("tiny.parquet".into(), parquet_bytes(&tiny, Some(&b), 1024)?),
        ("empty.parquet".into(), parquet_bytes(&empty, None, 1024)?),
    ])
}

/// Every file of the data set: (path relative to the data directory, Parquet bytes).
pub fn files() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut all = customers()?;
    all.extend(orders()?);
    all.extend(items()?);
    all.extend(tiny_and_empty()?);
    Ok(all)
}

/// Writes the data set below `dir`. A file that already holds the same bytes is left alone;
/// others are written to a temporary name and renamed, so concurrent runs (and readers of an
/// earlier run) never see a partial file.
pub fn generate(dir: &Path) -> io::Result<()> {
    for (name, bytes) in files()? {
        let path = dir.join(&name);
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            continue;
        }
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or("data");
        // Not ending in `.parquet`: readers listing the directory ignore it.
        let tmp = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn files_are_deterministic_with_the_documented_row_groups() {
        let files = files().expect("files");
        assert_eq!(files, super::files().expect("files again"));
        let groups: Vec<(String, usize, i64)> = files
            .into_iter()
            .map(|(name, bytes)| {
                let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).expect("parquet");
                let meta = reader.metadata();
                (name, meta.num_row_groups(), meta.file_metadata().num_rows())
            })
            .collect();
        let expected = [
            ("customers.parquet", 13, 200),
            ("orders/part-0.parquet", 20, 1000),
            ("orders/part-1.parquet", 24, 1200),
            ("orders/part-2.parquet", 16, 800),
            ("items/part-0.parquet", 25, 5000),
            ("items/part-1.parquet", 25, 5000),
            ("tiny.parquet", 1, 3),
            ("empty.parquet", 0, 0),
        ];
        let expected: Vec<(String, usize, i64)> = expected.iter().map(|(n, g, r)| (n.to_string(), *g, *r)).collect();
        assert_eq!(groups, expected);
    }
}
