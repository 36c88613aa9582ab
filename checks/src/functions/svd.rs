//! `svd` through SQL against tch on the gathered input: the breast cancer table (569 × 30,
//! full rank; exact methods: σ within 1e-10 relative, U Σ Vᵀ equal to the best rank-k
//! approximation and U, V orthonormal within 1e-10 (f64), V with the sign convention), a wide
//! input (10 rows × 30 columns), randomized and hierarchical on the low-rank table, U rows on
//! the rank of their input rows. The errors are in sql-tests/slt/functions.slt.

use datafusion::arrow::array::AsArray;
use heatsql::HeatContext;
use tch::{Kind, Tensor};

use super::{LR_COLS, SPECTRUM_TOL, int_column, local_rows, matrix, names, rows};
use crate::checker::Checker;

/// Collective. The `svd` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    if methods(c, ctx).await {
        rows_stay_local(c, ctx).await;
    }
}

/// A case: (name, input, filter of the reference query, feature columns, k, method, tolerance).
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Vec<String>,
    i64,
    &'static str,
    f64,
);

/// The cases: exact methods on the cancer table and on 10 of its rows (wide), randomized and
/// hierarchical on the low-rank table.
fn cases(features: &[String]) -> [Case; 5] {
    let features = features.to_vec();
    let lr_features: Vec<String> = (0..LR_COLS).map(|j| format!("x{j}")).collect();
    [
        (
            "cancer",
            "cancer",
            "ORDER BY id",
            features.clone(),
            5i64,
            "tsqr",
            SPECTRUM_TOL,
        ),
        (
            "cancer",
            "cancer",
            "ORDER BY id",
            features.clone(),
            5,
            "auto",
            SPECTRUM_TOL,
        ),
        (
            "wide",
            "(SELECT * FROM cancer WHERE id < 10)",
            "WHERE id < 10 ORDER BY id",
            features.clone(),
            10,
            "tsqr",
            SPECTRUM_TOL,
        ),
        (
            "lowrank",
            "lowrank",
            "ORDER BY id",
            lr_features.clone(),
            4,
            "randomized",
            1e-8,
        ),
        (
            "lowrank",
            "lowrank",
            "ORDER BY id",
            lr_features.clone(),
            4,
            "hierarchical",
            1e-8,
        ),
    ]
}

/// Every case: σ, V (feature names, values), U Σ Vᵀ, U and V orthonormal. False when the input
/// cannot be read (then nothing else runs).
async fn methods(c: &mut Checker, ctx: &HeatContext) -> bool {
    let all = rows(ctx, "SELECT * FROM cancer ORDER BY id").await;
    let Ok(all) = all else {
        c.check("svd/input", false, || "cancer unreadable".into());
        return false;
    };
    let features: Vec<String> = all[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "id")
        .collect();
    let eye = |k: i64| Tensor::eye(k, (Kind::Double, tch::Device::Cpu));
    for (name, input, filter, cols, k, method, tol) in cases(&features) {
        let tag = format!("svd/{name}/{method}/k{k}");
        let table = if name == "lowrank" { "lowrank" } else { "cancer" };
        let x = rows(ctx, &format!("SELECT * FROM {table} {filter}"))
            .await
            .and_then(|b| matrix(&b, &cols));
        let Ok(x) = x else {
            c.check(&format!("{tag}/reference"), false, || "input".into());
            continue;
        };
        let (bu, bs, bv) = x.svd(true, true);
        let (_, want_v) = engine::linalg::flip_signs(&bv.narrow(1, 0, k));
        let want_x = bu
            .narrow(1, 0, k)
            .matmul(&bs.narrow(0, 0, k).diag(0))
            .matmul(&bv.narrow(1, 0, k).tr());
        let call = format!(
            "svd({input}, k => {k}, method => '{method}', columns => '{}'",
            cols.join(", ")
        );
        let s = rows(ctx, &format!("SELECT * FROM {call}) ORDER BY index")).await;
        c.close(
            &format!("{tag}/s"),
            s.and_then(|b| matrix(&b, &names(&["singular_value"])))
                .map(|t| t.reshape([-1])),
            &bs.narrow(0, 0, k),
            tol,
        );
        let vs: Vec<String> = (1..=k).map(|i| format!("v{i}")).collect();
        let v = rows(ctx, &format!("SELECT * FROM {call}, output => 'v')")).await;
        let names_ok = v.as_ref().map(|b| {
            let f: Vec<String> = b
                .iter()
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
                .collect();
            f == cols
        });
        c.check(&format!("{tag}/v_features"), names_ok == Ok(true), || {
            format!("{names_ok:?}")
        });
        let v = v.and_then(|b| matrix(&b, &vs));
        c.close(
            &format!("{tag}/v"),
            v.as_ref().map(|t| t.shallow_clone()).map_err(|e| e.clone()),
            &want_v,
            tol.max(1e-8),
        );
        let us: Vec<String> = (1..=k).map(|i| format!("u{i}")).collect();
        let u = rows(
            ctx,
            &format!("SELECT * FROM {call}, keep => 'id', output => 'u') ORDER BY id"),
        )
        .await
        .and_then(|b| matrix(&b, &us));
        if let (Ok(u), Ok(v)) = (&u, &v) {
            let s = bs.narrow(0, 0, k);
            c.close(
                &format!("{tag}/reconstruction"),
                Ok::<_, String>(u.matmul(&s.diag(0)).matmul(&v.tr())),
                &want_x,
                tol.max(1e-8),
            );
            c.close(
                &format!("{tag}/u_orthonormal"),
                Ok::<_, String>(u.tr().matmul(u)),
                &eye(k),
                tol.max(1e-10),
            );
            c.close(
                &format!("{tag}/v_orthonormal"),
                Ok::<_, String>(v.tr().matmul(v)),
                &eye(k),
                tol.max(1e-10),
            );
        } else {
            c.check(&format!("{tag}/u"), false, || format!("{:?}", u.err()));
        }
    }
    true
}

/// U rows stay on the rank of their input rows.
async fn rows_stay_local(c: &mut Checker, ctx: &HeatContext) {
    let local_in = local_rows(ctx, "SELECT id FROM cancer")
        .await
        .map(|b| int_column(&b, "id"));
    let local_u = local_rows(ctx, "SELECT id FROM svd(cancer, k => 2, keep => 'id', output => 'u')")
        .await
        .map(|b| int_column(&b, "id"));
    c.check("svd/u_stays_local", local_in.is_ok() && local_in == local_u, || {
        format!("{local_in:?} vs {local_u:?}")
    });
}
