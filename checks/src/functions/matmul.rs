//! `matmul` through SQL against tch on the gathered operands, in file order and put in order
//! across ranks by `a_order`/`b_order`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use heatsql::HeatContext;
use tch::Tensor;

use super::{int_column, local_rows, matrix, rows, write_parquet};
use crate::checker::Checker;

/// A table of an id column and f64 columns `{prefix}1 …` from a formula of (row, column).
fn matrix_batch(prefix: &str, rows: i64, cols: usize, f: impl Fn(i64, usize) -> f64) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from((0..rows).collect::<Vec<_>>()))];
    for j in 0..cols {
        fields.push(Field::new(format!("{prefix}{}", j + 1), DataType::Float64, false));
        arrays.push(Arc::new(Float64Array::from(
            (0..rows).map(|i| f(i, j)).collect::<Vec<_>>(),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("matrix batch")
}

/// `matmul` through SQL against tch on the gathered operands: A (37 × 6, row groups of 5) ·
/// B (6 × 4, row groups of 2, so some ranks hold no rows of B at P = 4), Aᵀ·C with C 37 × 3,
/// f32, the result's rows on the rank of A's rows (the errors are in
/// sql-tests/slt/functions.slt).
/// Collective: the `matmul` subject (its tables are written below `scratch`).
pub async fn check(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    if ctx.comm().rank() == 0 {
        let f = |i: i64, j: usize| ((i * 7 + j as i64 * 3) % 11) as f64 / 3.0 - 1.5 + 0.01 * i as f64;
        write_parquet(&format!("{scratch}/ma.parquet"), &matrix_batch("a", 37, 6, f), 5);
        write_parquet(
            &format!("{scratch}/mb.parquet"),
            &matrix_batch("b", 6, 4, |i, j| f(i + 3, j) * 2.0),
            2,
        );
        write_parquet(
            &format!("{scratch}/mc.parquet"),
            &matrix_batch("c", 37, 3, |i, j| f(i + 1, j + 2)),
            7,
        );
    }
    ctx.comm().barrier();
    for t in ["ma", "mb", "mc"] {
        let r = rows(
            ctx,
            &format!("CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{scratch}/{t}.parquet'"),
        )
        .await;
        c.check(&format!("matmul/register/{t}"), r.is_ok(), || format!("{r:?}"));
    }
    let get = |t: &str, cols: Vec<String>| {
        let t = t.to_string();
        async move {
            rows(ctx, &format!("SELECT * FROM {t} ORDER BY id"))
                .await
                .and_then(|b| matrix(&b, &cols))
        }
    };
    let cols = |p: &str, n: usize| -> Vec<String> { (1..=n).map(|j| format!("{p}{j}")).collect() };
    let (Ok(a), Ok(b), Ok(cm)) = (
        get("ma", cols("a", 6)).await,
        get("mb", cols("b", 4)).await,
        get("mc", cols("c", 3)).await,
    ) else {
        c.check("matmul/inputs", false, || "inputs unreadable".into());
        return;
    };
    // B's rows in file order = ORDER BY id; A's columns are a1 … a6 (columns =>, without id).
    let ab = "matmul(ma, (SELECT b1, b2, b3, b4 FROM mb), columns => 'a1, a2, a3, a4, a5, a6', keep => 'id'";
    let got = rows(ctx, &format!("SELECT * FROM {ab}) ORDER BY id"))
        .await
        .and_then(|r| matrix(&r, &cols("b", 4)));
    c.close("matmul/ab", got, &a.matmul(&b), 1e-12);
    let got32 = rows(ctx, &format!("SELECT * FROM {ab}, dtype => 'float32') ORDER BY id")).await;
    let is32 = got32.as_ref().map(|r| {
        r[0].schema()
            .field_with_name("b1")
            .map(|f| f.data_type() == &DataType::Float32)
            .unwrap_or(false)
    });
    c.check("matmul/ab/f32/type", is32 == Ok(true), || format!("{is32:?}"));
    c.close(
        "matmul/ab/f32",
        got32.and_then(|r| matrix(&r, &cols("b", 4))),
        &a.matmul(&b),
        1e-5,
    );
    let input = local_rows(ctx, "SELECT id FROM ma").await.map(|b| int_column(&b, "id"));
    let output = local_rows(ctx, &format!("SELECT id FROM {ab})"))
        .await
        .map(|b| int_column(&b, "id"));
    c.check("matmul/ab/rows_stay_local", input.is_ok() && input == output, || {
        format!("{input:?} vs {output:?}")
    });
    let tn = "matmul(ma, (SELECT c1, c2, c3 FROM mc), columns => 'a1, a2, a3, a4, a5, a6', transpose_a => true)";
    let got = rows(ctx, &format!("SELECT * FROM {tn}")).await;
    let features = got.as_ref().map(|r| {
        r.iter()
            .flat_map(|b| {
                b.column_by_name("feature")
                    .map(|a| {
                        a.as_string::<i32>()
                            .iter()
                            .map(|s| s.unwrap_or("").to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
    });
    c.check("matmul/tn/features", features == Ok(cols("a", 6)), || {
        format!("{features:?}")
    });
    c.close(
        "matmul/tn",
        got.and_then(|r| matrix(&r, &cols("c", 3))),
        &a.tr().matmul(&cm),
        1e-12,
    );
    ordered(c, ctx, scratch, &a, &b, &cm).await;
}

/// `a_order`/`b_order`: the tables of [`check`] written in scrambled row order (a
/// permutation, row groups of 4 and 1, so at P = 4 some ranks start with no rows), put back in
/// order across ranks by an integer, a negative float and a timestamp key. References: the
/// products of the ordered operands (tch, `a`, `b`, `cm`). Also the output's global order and
/// balanced layout.
async fn ordered(c: &mut Checker, ctx: &HeatContext, scratch: &str, a: &Tensor, b: &Tensor, cm: &Tensor) {
    let (me, p) = (ctx.comm().rank(), ctx.comm().size());
    if me == 0 {
        let f = |i: i64, j: usize| ((i * 7 + j as i64 * 3) % 11) as f64 / 3.0 - 1.5 + 0.01 * i as f64;
        let scramble = |batch: RecordBatch, perm: &dyn Fn(u64) -> u64| {
            let n = batch.num_rows() as u64;
            let idx = datafusion::arrow::array::UInt64Array::from((0..n).map(perm).collect::<Vec<_>>());
            datafusion::arrow::compute::take_record_batch(&batch, &idx).expect("permute")
        };
        let sa = scramble(matrix_batch("a", 37, 6, f), &|i| (i * 13 + 5) % 37);
        write_parquet(&format!("{scratch}/msa.parquet"), &sa, 4);
        let sb = scramble(matrix_batch("b", 6, 4, |i, j| f(i + 3, j) * 2.0), &|i| (i * 5 + 1) % 6);
        write_parquet(&format!("{scratch}/msb.parquet"), &sb, 1);
        let sc = scramble(matrix_batch("c", 37, 3, |i, j| f(i + 1, j + 2)), &|i| (i * 7 + 3) % 37);
        write_parquet(&format!("{scratch}/msc.parquet"), &sc, 9);
    }
    ctx.comm().barrier();
    for t in ["msa", "msb", "msc"] {
        let r = rows(
            ctx,
            &format!("CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{scratch}/{t}.parquet'"),
        )
        .await;
        c.check(&format!("matmul/order/register/{t}"), r.is_ok(), || format!("{r:?}"));
    }
    let cols = |p: &str, n: usize| -> Vec<String> { (1..=n).map(|j| format!("{p}{j}")).collect() };
    // B's position: a negative float falling with id; A's: id itself (kept).
    let b_sorted = "(SELECT b1, b2, b3, b4, 2.5 - 0.5 * id AS k FROM msb)";
    let ab = format!(
        "matmul(msa, {b_sorted}, a_order => 'id', b_order => 'k', keep => 'id', columns => 'a1, a2, a3, a4, a5, a6')"
    );
    // Reversed order of B: k falls with id, so row k of B is b.flip(0).
    let want = a.matmul(&b.flip([0]));
    let got = rows(ctx, &format!("SELECT * FROM {ab}")).await;
    let ids = got.as_ref().map(|r| int_column(r, "id"));
    c.check("matmul/order/ab/global_order", ids == Ok((0..37).collect()), || {
        format!("{ids:?}")
    });
    c.close(
        "matmul/order/ab",
        got.and_then(|r| matrix(&r, &cols("b", 4))),
        &want,
        1e-12,
    );
    let here = local_rows(ctx, &format!("SELECT id FROM {ab}"))
        .await
        .map(|b| int_column(&b, "id"));
    let counts = engine::dndarray::balanced_counts(37, p);
    let start: i64 = counts[..me].iter().sum();
    c.check(
        "matmul/order/ab/balanced",
        here == Ok((start..start + counts[me]).collect()),
        || format!("rank {me}: {here:?}"),
    );
    // Default features leave the order column out (a has id, a1 … a6: features a1 … a6).
    let got = rows(
        ctx,
        &format!("SELECT * FROM matmul((SELECT a1, a2, a3, a4, a5, a6, id FROM msa), {b_sorted}, a_order => 'id', b_order => 'k')"),
    )
    .await;
    c.close(
        "matmul/order/default_features",
        got.and_then(|r| matrix(&r, &cols("b", 4))),
        &want,
        1e-12,
    );
    // Aᵀ·C pairs rows by position: A by id, C by a timestamp.
    let tn = "SELECT * FROM matmul(msa, (SELECT c1, c2, c3, to_timestamp_seconds(1700000000 + 60 * id) AS t FROM msc), \
              columns => 'a1, a2, a3, a4, a5, a6', a_order => 'id', b_order => 't', transpose_a => true)";
    let got = rows(ctx, tn).await;
    c.close(
        "matmul/order/tn",
        got.and_then(|r| matrix(&r, &cols("c", 3))),
        &a.tr().matmul(cm),
        1e-12,
    );
}
