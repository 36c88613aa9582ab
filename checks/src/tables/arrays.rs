//! `arrays`: Table → DNDarray → Arrow: f64 and f32 arrays from mixed column types with keep
//! columns aligned, back to Arrow, the NULL/NaN policies, refused and default columns.

use datafusion::arrow::array::{Array, AsArray, Float32Array, Float64Array};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::execution::SendableRecordBatchStream;
use heatsql::HeatContext;
use heatsql::convert::{LoadSpec, NullPolicy, load, to_batch};
use tch::{Kind, Tensor};

use super::{POINTS, x_of};
use crate::checker::Checker;

/// Collective. The `arrays` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    loads(c, ctx).await;
    nulls(c, ctx).await;
    columns(c, ctx).await;
}

/// This rank's stream of a query's result.
async fn stream(ctx: &HeatContext, sql: &str) -> SendableRecordBatchStream {
    ctx.sql(sql)
        .await
        .expect("query")
        .execute_local()
        .await
        .expect("stream")
}

/// f64 and f32 arrays from mixed column types; keep ids align with the rows; back to Arrow.
async fn loads(c: &mut Checker, ctx: &HeatContext) {
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
            ctx.comm(),
            stream(ctx, "SELECT * FROM points WHERE y IS NOT NULL AND NOT isnan(x)").await,
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
}

/// The NULL/NaN policies: 'error' with global counts per column (also when streaming), 'drop'.
async fn nulls(c: &mut Checker, ctx: &HeatContext) {
    let mut spec = LoadSpec::new("pca");
    spec.columns = Some(vec!["x".into(), "y".into()]);
    let e = load(ctx.comm(), stream(ctx, "SELECT * FROM points").await, &spec)
        .await
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let want =
        "pca: column 'x' has 1 NULL/NaN values, column 'y' has 7 NULL/NaN values; filter them or pass nulls => 'drop'";
    c.check("arrays/nulls_error_global_counts", e == want, || format!("'{e}'"));
    spec.expected_rows = Some(40);
    let e = load(ctx.comm(), stream(ctx, "SELECT * FROM points").await, &spec)
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
    match load(ctx.comm(), stream(ctx, "SELECT * FROM points").await, &spec).await {
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
}

/// Non-numeric and unknown columns are refused by name; the default columns.
async fn columns(c: &mut Checker, ctx: &HeatContext) {
    let mut spec = LoadSpec::new("pca");
    spec.columns = Some(vec!["x".into(), "label".into()]);
    let e = load(ctx.comm(), stream(ctx, "SELECT * FROM points").await, &spec)
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
    let e = load(ctx.comm(), stream(ctx, "SELECT * FROM points").await, &spec)
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
        ctx.comm(),
        stream(ctx, "SELECT * FROM points WHERE y IS NOT NULL AND NOT isnan(x)").await,
        &spec,
    )
    .await;
    c.check(
        "arrays/default_columns",
        r.as_ref().is_ok_and(|l| l.columns == ["x", "y", "k", "d"]),
        || format!("{r:?}"),
    );
}
