//! `error`: the arguments of `pca` and `pca_project` refused with a clear error, the same on
//! every rank.

use heatsql::HeatContext;

use super::{error_of, rows};
use crate::checker::Checker;

/// Collective. The `error` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    let cases: [(&str, &str); 24] = [
        (
            "pca(cancer, kk => 2)",
            "pca: unknown argument 'kk'; expected one of k, variance, solver",
        ),
        ("pca(cancer, k => 'two')", "pca: k expects an integer, got 'two'"),
        ("pca(cancer, k => 2.5)", "pca: k expects an integer, got 2.5"),
        (
            "pca(cancer)",
            "pca: missing argument k (the number of components) or variance",
        ),
        (
            "pca(cancer, k => 2, variance => 0.5)",
            "pca: conflicting arguments k and variance; pass only one of them",
        ),
        ("pca(cancer, k => 2, k => 3)", "pca: argument k is given twice"),
        (
            "pca(cancer, k => 31, keep => 'id')",
            "pca: k = 31 is out of range; expected 1 ≤ k ≤ the number of feature columns (30)",
        ),
        ("pca(cancer, k => 0)", "pca: k = 0 is out of range"),
        (
            "pca((SELECT * FROM cancer WHERE id < 3), k => 5, keep => 'id')",
            "pca: k = 5 is out of range; expected 1 ≤ k ≤ min(rows, columns) = 3",
        ),
        (
            "pca((SELECT id, 'x' AS name, mean_radius FROM cancer), k => 1, columns => 'name, mean_radius')",
            "pca: column 'name' is Utf8; feature columns must be numeric (choose them with columns => ...)",
        ),
        (
            "pca(cancer, k => 1, columns => 'nope')",
            "pca: feature column 'nope' not found; available columns: id, mean_radius",
        ),
        (
            "pca(cancer, k => 1, keep => 'nope')",
            "pca: keep column 'nope' not found",
        ),
        (
            "pca(cancer, k => 1, solver => 'magic')",
            "pca: solver => 'magic' is not one of 'auto', 'covariance', 'tsqr', 'randomized', 'hierarchical'",
        ),
        (
            "pca(cancer, variance => 0.9, solver => 'randomized')",
            "pca: variance => needs every component, which solver => 'randomized' does not compute",
        ),
        (
            "pca(cancer, variance => 1.5)",
            "pca: variance = 1.5 is out of range; expected a fraction of the total variance in (0, 1]",
        ),
        (
            "pca(cancer, k => 1, solver => 'covariance', seed => 3)",
            "pca: seed applies to solver => 'randomized', not 'covariance'",
        ),
        (
            "pca(cancer, k => 1, solver => 'randomized', oversamples => -1)",
            "pca: oversamples = -1 is out of range; expected a value ≥ 0",
        ),
        (
            "pca(cancer, k => 1, standardize => 'yes')",
            "pca: standardize expects true or false, got 'yes'",
        ),
        ("pca(cancer, 3)", "pca: unexpected positional argument 2"),
        (
            "pca(3, k => 1)",
            "pca: input must be a table name or a parenthesised query",
        ),
        (
            "pca(cancer, k => 1, output => 'foo')",
            "pca: output => 'foo' is not one of 'scores', 'loadings', 'variance'",
        ),
        (
            "pca(cancer, k => 1, device => 'tpu')",
            "pca: device => 'tpu' is not a device; expected 'auto', 'cpu' or 'cuda'",
        ),
        (
            "pca_project(cancer, keep => 'id')",
            "pca_project: missing argument model",
        ),
        (
            "pca_project(cancer, model => (SELECT feature, pc1 FROM raw_loadings))",
            "pca_project: model => must be a pca loadings table (columns feature, mean, scale, pc1 … pck); it has no column 'mean'",
        ),
    ];
    for (call, want) in cases {
        let e = error_of(ctx, &format!("SELECT * FROM {call}")).await;
        c.check(&format!("error/{call}"), e.contains(want), || format!("got: {e}"));
    }
    for (sql, want) in [
        (
            "SELECT * FROM pca_project((SELECT id, mean_radius FROM cancer), model => raw_loadings, keep => 'id')",
            "pca_project: the model's feature 'mean_texture' is not a numeric column of the input (numeric columns: mean_radius)",
        ),
        (
            "SELECT * FROM pca_project(cancer, model => (SELECT * FROM raw_loadings WHERE false))",
            "pca_project: model => has no rows",
        ),
        ("SELECT * FROM pca(nope, k => 1)", "nope' not found"),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("error/{sql}"), e.contains(want), || format!("got: {e}"));
    }
    let e = async {
        rows(ctx, "SET heatsql.device = 'tpu'").await?;
        let e = error_of(ctx, "SELECT * FROM pca(cancer, k => 1)").await;
        rows(ctx, "SET heatsql.device = 'auto'").await?;
        Ok::<_, String>(e)
    }
    .await;
    c.check(
        "error/set_device",
        e.as_ref()
            .is_ok_and(|e| e.contains("pca: SET heatsql.device = 'tpu' is not a device")),
        || format!("{e:?}"),
    );
}
