//! `dense`: loads of plain scans read straight from the Parquet pages (`connectors::dense`, via
//! `to_dndarray` and the SQL functions); everything else goes through Arrow batches. Each case
//! loads the same query both ways and requires the same array (bit for bit) or the same error,
//! on every rank.

use datafusion::arrow::array::AsArray;
use heatsql::HeatContext;
use heatsql::convert::{LoadSpec, NullPolicy, load};
use tch::{Kind, Tensor};

use super::{INT_ROWS, u64_of};
use crate::checker::Checker;

/// Collective. The `dense` subject (the fixtures below `base`).
pub async fn check(c: &mut Checker, ctx: &HeatContext, base: &str) {
    for (name, file) in [
        ("clean", "clean.parquet"),
        ("ints", "ints.parquet"),
        ("badpage", "badpage.parquet"),
    ] {
        let r = ctx.register_parquet(name, &format!("{base}/{file}")).await;
        c.check(&format!("dense/register_{name}"), r.is_ok(), || format!("{r:?}"));
    }
    both_ways(c, ctx).await;
    corrupt_page(c, ctx).await;
    functions_read_directly(c, ctx).await;
}

/// A spec for `pca` over `columns` (all numeric ones for `None`).
fn spec(columns: Option<&[&str]>, kind: Kind, nulls: NullPolicy) -> LoadSpec {
    let mut spec = LoadSpec::new("pca");
    spec.columns = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
    spec.kind = kind;
    spec.nulls = nulls;
    spec
}

/// A case: (name, query, spec, read directly?, the error both ways when not "").
type Case = (&'static str, &'static str, LoadSpec, bool, &'static str);

/// The cases: plain scans (read directly) and queries through Arrow batches.
fn cases() -> Vec<Case> {
    const INTS: [&str; 8] = ["i8", "i16", "u8", "u16", "u32", "u64", "f", "id"];
    let ints_want_nulls = "pca: column 'i16' has 6 NULL/NaN values, column 'f' has 1 NULL/NaN values; filter them or pass nulls => 'drop'";
    vec![
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
    ]
}

/// Every case loaded both ways: the same path, array or error.
async fn both_ways(c: &mut Checker, ctx: &HeatContext) {
    for (case, sql, spec, direct, want_error) in cases() {
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
        let batches = load(ctx.comm(), stream, &spec).await.map_err(|e| e.to_string());
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
}

/// A corrupt page (valid footer): an error naming the file on every rank, from the rank
/// reading it, no panic and no hang.
async fn corrupt_page(c: &mut Checker, ctx: &HeatContext) {
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
}

/// The SQL functions read plain scans directly: the same singular values as through a filter
/// (which goes through Arrow batches).
async fn functions_read_directly(c: &mut Checker, ctx: &HeatContext) {
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
