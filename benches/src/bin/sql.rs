//! Plain SQL across ranks: a TPC-H-style set of aggregate and join queries through heatsql
//! versus plain single-process DataFusion on the same files, in the same run.
//!
//! `mpirun -n P heatsql-bench-sql [LINEITEM_ROWS] [ROUNDS] [OUT.tsv]` (default 4,000,000 lineitem
//! rows, 1,000,000 orders, row groups of 65,536 rows, Snappy; generated once under
//! `target/bench-data/`). Each round runs every query through heatsql (all ranks, the result
//! collected on every rank) and, on rank 0, through a plain DataFusion `SessionContext` with its
//! default configuration reading the same files. Both results are compared (a mismatch aborts
//! the benchmark). Reported per query: medians after a warm-up round, and heatsql / DataFusion.
//! With `OUT.tsv`, rank 0 appends `P query heatsql_s datafusion_s` lines, which
//! `scripts/bench-sql.sh` turns into the P = 2 versus P = 1 ratios.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use heatsql::HeatContext;

/// The queries: (name, SQL).
const QUERIES: [(&str, &str); 5] = [
    (
        "q1_pricing_summary",
        "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base, \
         sum(l_extendedprice * (1 - l_discount)) AS sum_disc, avg(l_quantity) AS avg_qty, \
         avg(l_discount) AS avg_disc, count(*) AS n \
         FROM lineitem WHERE l_shipdate <= DATE '1998-09-02' \
         GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    ),
    (
        "q3_shipping_priority",
        "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate \
         FROM orders JOIN lineitem ON l_orderkey = o_orderkey \
         WHERE o_orderdate < DATE '1995-03-15' AND l_shipdate > DATE '1995-03-15' \
         GROUP BY l_orderkey, o_orderdate ORDER BY revenue DESC, l_orderkey LIMIT 10",
    ),
    (
        "q6_forecast_revenue",
        "SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem \
         WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' \
         AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
    ),
    (
        "q12_ship_modes",
        "SELECT l_shipmode, sum(CASE WHEN o_orderpriority IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS high, \
         sum(CASE WHEN o_orderpriority NOT IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS low \
         FROM orders JOIN lineitem ON o_orderkey = l_orderkey \
         WHERE l_shipmode IN ('MAIL', 'SHIP') AND l_shipdate >= DATE '1994-01-01' \
         GROUP BY l_shipmode ORDER BY l_shipmode",
    ),
    (
        "many_groups",
        "SELECT l_orderkey % 100000 AS g, count(*) AS n, sum(l_quantity) AS q FROM lineitem \
         GROUP BY g ORDER BY n DESC, g LIMIT 5",
    ),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn decimals(v: Vec<i128>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(v)
            .with_precision_and_scale(15, 2)
            .expect("decimal"),
    )
}

fn write(path: &Path, schema: &Arc<Schema>, mut chunk: impl FnMut(usize, usize) -> Vec<ArrayRef>, rows: usize) {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(65_536))
        .build();
    let tmp = path.with_extension("tmp");
    let mut w = ArrowWriter::try_new(File::create(&tmp).expect("create"), Arc::clone(schema), Some(props)).expect("w");
    for start in (0..rows).step_by(65_536) {
        let n = 65_536.min(rows - start);
        w.write(&RecordBatch::try_new(Arc::clone(schema), chunk(start, n)).expect("batch"))
            .expect("write");
    }
    w.close().expect("close");
    std::fs::rename(&tmp, path).expect("rename");
}

/// lineitem (`rows`) and orders (`rows / 4`), two files each.
fn generate(dir: &Path, rows: usize) {
    if dir.join("done").exists() {
        return;
    }
    std::fs::create_dir_all(dir.join("lineitem")).expect("mkdir");
    std::fs::create_dir_all(dir.join("orders")).expect("mkdir");
    let orders = (rows / 4).max(1);
    let day0 = 8035; // 1992-01-01 as days since 1970-01-01
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let o_schema = Arc::new(Schema::new(vec![
        Field::new("o_orderkey", DataType::Int64, false),
        Field::new("o_custkey", DataType::Int64, false),
        Field::new("o_orderdate", DataType::Date32, false),
        Field::new("o_orderpriority", DataType::Utf8, false),
        Field::new("o_totalprice", DataType::Decimal128(15, 2), false),
    ]));
    let priorities = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
    for (part, range) in [(0, 0..orders / 2), (1, orders / 2..orders)] {
        let base = range.start;
        write(
            &dir.join(format!("orders/part-{part}.parquet")),
            &o_schema,
            |start, n| {
                let keys: Vec<i64> = (base + start..base + start + n).map(|k| k as i64).collect();
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Int64Array::from_iter_values((0..n).map(|_| rng.below(150_000) as i64))),
                    Arc::new(Date32Array::from_iter_values(
                        (0..n).map(|_| day0 + rng.below(2400) as i32),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|_| priorities[rng.below(5) as usize]),
                    )),
                    decimals((0..n).map(|_| 100_000 + rng.below(50_000_000) as i128).collect()),
                ]
            },
            range.len(),
        );
    }
    let l_schema = Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_quantity", DataType::Decimal128(15, 2), false),
        Field::new("l_extendedprice", DataType::Decimal128(15, 2), false),
        Field::new("l_discount", DataType::Decimal128(15, 2), false),
        Field::new("l_returnflag", DataType::Utf8, false),
        Field::new("l_linestatus", DataType::Utf8, false),
        Field::new("l_shipdate", DataType::Date32, false),
        Field::new("l_shipmode", DataType::Utf8, false),
    ]));
    let modes = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];
    for (part, range) in [(0, 0..rows / 2), (1, rows / 2..rows)] {
        write(
            &dir.join(format!("lineitem/part-{part}.parquet")),
            &l_schema,
            |_, n| {
                let ship: Vec<i32> = (0..n).map(|_| day0 + rng.below(2500) as i32).collect();
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        (0..n).map(|_| rng.below(orders as u64) as i64),
                    )),
                    decimals((0..n).map(|_| 100 * (1 + rng.below(50) as i128)).collect()),
                    decimals((0..n).map(|_| 90_000 + rng.below(10_000_000) as i128).collect()),
                    decimals((0..n).map(|_| rng.below(11) as i128).collect()),
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|_| ["A", "N", "R"][rng.below(3) as usize]),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        ship.iter().map(|&d| if d > 9_300 { "O" } else { "F" }),
                    )),
                    Arc::new(Date32Array::from(ship)),
                    Arc::new(StringArray::from_iter_values(
                        (0..n).map(|_| modes[rng.below(7) as usize]),
                    )),
                ]
            },
            range.len(),
        );
    }
    File::create(dir.join("done")).expect("done");
}

/// The result as text lines (for comparing the two engines).
fn text(batches: &[RecordBatch]) -> Vec<String> {
    let opts = FormatOptions::default();
    let mut lines = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            lines.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    lines
}

fn median(mut v: Vec<f64>) -> f64 {
    v.remove(0);
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    heatsql::memory::retain_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: usize = args
        .first()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(4_000_000);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4).max(2);
    let out = args.get(2).cloned();
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/bench-data/tpch_{rows}"));
    if me == 0 {
        generate(&dir, rows);
    }
    comm.barrier();
    let plain = SessionContext::new();
    for table in ["lineitem", "orders"] {
        let sql = format!(
            "CREATE EXTERNAL TABLE {table} STORED AS PARQUET LOCATION '{}/{table}/'",
            dir.display()
        );
        ctx.sql(&sql).await.expect("heatsql table");
        if me == 0 {
            plain.sql(&sql).await.expect("datafusion table");
        }
    }
    let mut report = Vec::new();
    // HEATSQL_BENCH_EXPLAIN=1: print both engines' plans first.
    if std::env::var("HEATSQL_BENCH_EXPLAIN").is_ok_and(|v| v == "1") {
        for (name, sql) in QUERIES {
            let ours = ctx
                .sql(&format!("EXPLAIN {sql}"))
                .await
                .expect("explain")
                .collect()
                .await
                .expect("explain");
            if me == 0 {
                let theirs = plain
                    .sql(&format!("EXPLAIN {sql}"))
                    .await
                    .expect("explain")
                    .collect()
                    .await
                    .expect("x");
                let show = |b: &[RecordBatch]| {
                    datafusion::arrow::util::pretty::pretty_format_batches(b)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                };
                println!(
                    "== {name}\n-- heatsql\n{}\n-- datafusion\n{}",
                    show(&ours),
                    show(&theirs)
                );
            }
        }
    }
    for (name, sql) in QUERIES {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            comm.barrier();
            let t = Instant::now();
            let got = ctx
                .sql(sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("heatsql query");
            ours.push(t.elapsed().as_secs_f64());
            comm.barrier();
            if me == 0 {
                let t = Instant::now();
                let want = plain
                    .sql(sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("datafusion query");
                theirs.push(t.elapsed().as_secs_f64());
                let (a, b) = (text(&got), text(&want));
                // Unordered results (none here end without ORDER BY) would need sorting first.
                assert_eq!(a, b, "{name}: heatsql and DataFusion disagree");
            }
        }
        let ours = median(ours);
        if me == 0 {
            let theirs = median(theirs);
            report.push(format!(
                "{name:<22} heatsql {ours:>7.3} s   datafusion {theirs:>7.3} s   heatsql/datafusion {:.2}",
                ours / theirs
            ));
            if let Some(path) = &out {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open report");
                writeln!(f, "{p}\t{name}\t{ours:.6}\t{theirs:.6}").expect("write report");
            }
        }
    }
    if me == 0 {
        let partitions = plain.state().config().target_partitions();
        println!(
            "TPC-H-style SQL, {rows} lineitem rows, P = {p} (median of {} rounds after a warm-up; \
             plain DataFusion with target_partitions = {partitions})",
            rounds - 1
        );
        for line in report {
            println!("{line}");
        }
    }
}
