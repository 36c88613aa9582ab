//! `sklearn` and `lowrank`: `pca` and `pca_project` through SQL against scikit-learn's results
//! on its bundled breast cancer dataset (heatsql/tests/fixtures/pca) for every exact solver, raw
//! and standardised, f32, k from a variance fraction; and on the low-rank table, randomized and
//! hierarchical solvers against tch on the gathered input, ranks without rows, the NULL policy.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use heatsql::HeatContext;
use tch::{Kind, Tensor};

use super::{
    LR_COLS, LR_ROWS, SPECTRUM_TOL, VECTOR_TOL, close_sql, error_of, int_column, local_rows, matrix, names, pcs, rows,
};
use crate::checker::Checker;

/// float32: the spectrum within 1e-4 relative, scores within 1e-3 (f32 rounding of values up to
/// about 4000, summed over 30 features).
const F32_SPECTRUM_TOL: f64 = 1e-4;

const F32_SCORES_TOL: f64 = 1e-3;

/// Randomized and hierarchical on low-rank data: the largest principal angle.
const ANGLE_TOL: f64 = 1e-6;

/// scikit-learn's results for one mode (`raw` or `std`).
struct Fixture {
    /// Singular value, explained variance and its ratio per component.
    var: Tensor,
    /// Mean, scale, pc1 … pc5 per feature.
    cols: Tensor,
    /// pc1 … pc5 per row, ordered by id.
    scores: Tensor,
}

/// Collective. The `sklearn` subject.
pub async fn check_sklearn(c: &mut Checker, ctx: &HeatContext) {
    for mode in ["raw", "std"] {
        let Some(want) = fixture(c, ctx, mode).await else {
            continue;
        };
        solvers(c, ctx, mode, &want).await;
        scores_local_and_f32(c, ctx, mode, &want).await;
        variance_k(c, ctx, mode).await;
        // pca_project with scikit-learn's own loadings reproduces its scores.
        close_sql(
            c,
            ctx,
            &format!("sklearn/{mode}/pca_project"),
            &format!("SELECT * FROM pca_project(cancer, model => {mode}_loadings, keep => 'id') ORDER BY id"),
            &pcs(5),
            &want.scores,
            VECTOR_TOL,
        )
        .await;
    }
}

/// The fixture of `mode`, or a failed check when it cannot be read.
async fn fixture(c: &mut Checker, ctx: &HeatContext, mode: &str) -> Option<Fixture> {
    let want_var = rows(ctx, &format!("SELECT * FROM {mode}_variance ORDER BY component"))
        .await
        .and_then(|b| {
            matrix(
                &b,
                &names(&["singular_value", "explained_variance", "explained_variance_ratio"]),
            )
        });
    let want_load = rows(ctx, &format!("SELECT * FROM {mode}_loadings ORDER BY feature")).await;
    let want_scores = rows(ctx, &format!("SELECT * FROM {mode}_scores ORDER BY id"))
        .await
        .and_then(|b| matrix(&b, &pcs(5)));
    let (Ok(want_var), Ok(want_load), Ok(want_scores)) = (want_var, want_load, want_scores) else {
        c.check(&format!("sklearn/{mode}/fixture"), false, || {
            "fixture tables unreadable".into()
        });
        return None;
    };
    let want_cols = matrix(&want_load, &[names(&["mean", "scale"]), pcs(5)].concat()).expect("loadings");
    Some(Fixture {
        var: want_var,
        cols: want_cols,
        scores: want_scores,
    })
}

/// Every exact solver: the spectrum, the cumulative ratio, the loadings and the scores.
async fn solvers(c: &mut Checker, ctx: &HeatContext, mode: &str, want: &Fixture) {
    let standardize = mode == "std";
    let (want_var, want_cols, want_scores) = (&want.var, &want.cols, &want.scores);
    let want_cum = want_var.select(1, 2).cumsum(0, Kind::Double);
    for solver in ["covariance", "tsqr", "auto"] {
        let tag = format!("sklearn/{mode}/{solver}");
        let call = format!("pca(cancer, k => 5, keep => 'id', solver => '{solver}', standardize => {standardize}");
        let var = rows(
            ctx,
            &format!("SELECT * FROM {call}, output => 'variance') ORDER BY component"),
        )
        .await;
        c.close(
            &format!("{tag}/variance"),
            var.as_ref().map_err(|e| e.clone()).and_then(|b| {
                matrix(
                    b,
                    &names(&["singular_value", "explained_variance", "explained_variance_ratio"]),
                )
            }),
            want_var,
            SPECTRUM_TOL,
        );
        c.close(
            &format!("{tag}/cumulative"),
            var.and_then(|b| matrix(&b, &names(&["cumulative_variance_ratio"])))
                .map(|t| t.select(1, 0)),
            &want_cum,
            SPECTRUM_TOL,
        );
        close_sql(
            c,
            ctx,
            &format!("{tag}/loadings"),
            &format!("SELECT * FROM {call}, output => 'loadings') ORDER BY feature"),
            &[names(&["mean", "scale"]), pcs(5)].concat(),
            want_cols,
            VECTOR_TOL,
        )
        .await;
        close_sql(
            c,
            ctx,
            &format!("{tag}/scores"),
            &format!("SELECT * FROM {call}) ORDER BY id"),
            &pcs(5),
            want_scores,
            VECTOR_TOL,
        )
        .await;
    }
}

/// Each score row stays on the rank of its input row; float32.
async fn scores_local_and_f32(c: &mut Checker, ctx: &HeatContext, mode: &str, want: &Fixture) {
    let standardize = mode == "std";
    let (want_var, want_scores) = (&want.var, &want.scores);
    // Each score row stays on the rank of its input row.
    let mine = local_rows(
        ctx,
        &format!("SELECT id FROM pca(cancer, k => 2, keep => 'id', standardize => {standardize})"),
    )
    .await;
    let input = local_rows(ctx, "SELECT id FROM cancer").await;
    let (mine, input) = (mine.map(|b| int_column(&b, "id")), input.map(|b| int_column(&b, "id")));
    c.check(
        &format!("sklearn/{mode}/scores_stay_local"),
        mine.is_ok() && mine == input,
        || format!("scores ids {mine:?}, input ids {input:?}"),
    );
    // float32 (the Gram matrix is accumulated in f64 either way).
    let call = format!("pca(cancer, k => 5, keep => 'id', dtype => 'float32', standardize => {standardize}");
    close_sql(
        c,
        ctx,
        &format!("sklearn/{mode}/f32/variance"),
        &format!("SELECT * FROM {call}, output => 'variance') ORDER BY component"),
        &names(&["explained_variance"]),
        &want_var.narrow(1, 1, 1),
        F32_SPECTRUM_TOL,
    )
    .await;
    let scores = rows(ctx, &format!("SELECT * FROM {call}) ORDER BY id")).await;
    let typed = scores
        .as_ref()
        .map(|b| b.first().map(|b| b.schema().field(1).data_type().clone()));
    c.check(
        &format!("sklearn/{mode}/f32/type"),
        matches!(typed, Ok(Some(DataType::Float32))),
        || format!("{typed:?}"),
    );
    c.close(
        &format!("sklearn/{mode}/f32/scores"),
        scores.and_then(|b| matrix(&b, &pcs(5))),
        want_scores,
        F32_SCORES_TOL,
    );
}

/// k from a variance fraction: scikit-learn's choice, unused columns NULL.
async fn variance_k(c: &mut Checker, ctx: &HeatContext, mode: &str) {
    let standardize = mode == "std";
    let ks = rows(
        ctx,
        &format!("SELECT fraction, k_{mode} AS k FROM variance_k ORDER BY fraction"),
    )
    .await;
    let ks: Vec<(f64, i64)> = ks
        .map(|b| {
            let f =
                matrix(&b, &names(&["fraction"])).map(|t| Vec::<f64>::try_from(&t.select(1, 0)).unwrap_or_default());
            f.unwrap_or_default().into_iter().zip(int_column(&b, "k")).collect()
        })
        .unwrap_or_default();
    c.check(&format!("sklearn/{mode}/variance_k/fixture"), ks.len() == 3, || {
        format!("{ks:?}")
    });
    for (fraction, k) in ks {
        let call = format!("pca(cancer, variance => {fraction}, keep => 'id', standardize => {standardize})");
        let n = rows(ctx, &format!("SELECT count(*) AS n FROM pca(cancer, variance => {fraction}, keep => 'id', standardize => {standardize}, output => 'variance')")).await;
        let n = n.map(|b| int_column(&b, "n"));
        c.check(
            &format!("sklearn/{mode}/variance={fraction}/k"),
            n == Ok(vec![k]),
            || format!("components {n:?}, scikit-learn keeps {k}"),
        );
        let counts = rows(
            ctx,
            &format!("SELECT count(pc{k}) AS a, count(pc{}) AS b FROM {call}", k + 1),
        )
        .await;
        let counts = counts.map(|b| (int_column(&b, "a"), int_column(&b, "b")));
        c.check(
            &format!("sklearn/{mode}/variance={fraction}/null_tail"),
            counts == Ok((vec![569], vec![0])),
            || format!("{counts:?}"),
        );
    }
}

/// Collective. The `lowrank` subject: randomized and hierarchical solvers, ranks without rows
/// (`lowrank/zero_rows/…`), the NULL policy (`lowrank/nulls/…`).
pub async fn check_lowrank(c: &mut Checker, ctx: &HeatContext) {
    let p = c.comm.size();
    let features: Vec<String> = (0..LR_COLS).map(|j| format!("x{j}")).collect();
    let Ok(all) = rows(ctx, "SELECT * FROM lowrank ORDER BY id").await else {
        c.check("lowrank/read", false, || "lowrank unreadable".into());
        return;
    };
    let x = matrix(&all, &features).expect("lowrank matrix");
    let (_, v, _) = reference(&x, false);
    let v3 = v.narrow(1, 0, 3);
    for (solver, extra) in [
        ("randomized", ", seed => 7, oversamples => 4, power_iter => 2"),
        ("randomized", ""),
        ("hierarchical", ", oversamples => 0"),
        ("hierarchical", ""),
    ] {
        let tag = format!("lowrank/{solver}{}", extra.replace(" => ", "=").replace(", ", "/"));
        let call = format!("pca(lowrank, k => 3, keep => 'id', solver => '{solver}'{extra}");
        let got = rows(ctx, &format!("SELECT * FROM {call}, output => 'loadings')")).await;
        match got.and_then(|b| matrix(&b, &pcs(3))) {
            Ok(g) => {
                let a = angle(&v3, &g);
                c.check(&format!("{tag}/angle"), a < ANGLE_TOL, || {
                    format!("largest principal angle {a:e}")
                });
                c.close(&format!("{tag}/signs"), Ok::<_, String>(g), &v3, 1e-6);
            }
            Err(e) => c.check(&format!("{tag}/loadings"), false, || e),
        }
        let est = rows(
            ctx,
            &format!("SELECT error_estimate FROM {call}, output => 'variance')"),
        )
        .await;
        let est = est.and_then(|b| matrix(&b, &names(&["error_estimate"])));
        let ok = match (&est, solver) {
            (Ok(t), "hierarchical") => t.isnan().any().int64_value(&[]) == 0 && t.max().double_value(&[]) < 1e-9,
            (Ok(t), _) => t.isnan().all().int64_value(&[]) == 1,
            _ => false,
        };
        c.check(&format!("{tag}/error_estimate"), ok, || format!("{est:?}"));
    }
    // Only the first row group (rank 0's at P > 1): the other ranks hold no rows.
    let first = x.narrow(0, 0, 200);
    let (ev, _, scores) = reference(&first, true);
    let sql = "SELECT * FROM pca((SELECT * FROM lowrank WHERE id < 200), k => 3, keep => 'id', solver => 'tsqr', \
               standardize => true)";
    close_sql(
        c,
        ctx,
        "lowrank/zero_rows/scores",
        &format!("{sql} ORDER BY id"),
        &pcs(3),
        &scores.narrow(1, 0, 3),
        VECTOR_TOL,
    )
    .await;
    let sql_var = "SELECT explained_variance FROM pca((SELECT * FROM lowrank WHERE id < 200), k => 3, solver => 'covariance', \
                   standardize => true, columns => 'x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11', output => 'variance') \
                   ORDER BY component";
    close_sql(
        c,
        ctx,
        "lowrank/zero_rows/variance",
        sql_var,
        &names(&["explained_variance"]),
        &ev.narrow(0, 0, 3).unsqueeze(1),
        SPECTRUM_TOL,
    )
    .await;
    let mine = local_rows(ctx, sql)
        .await
        .map(|b| b.iter().map(RecordBatch::num_rows).sum::<usize>());
    let want = if c.comm.rank() == 0 { 200 } else { 0 };
    c.check("lowrank/zero_rows/local_rows", p == 1 || mine == Ok(want), || {
        format!("{mine:?}, expected {want}")
    });
    // NULL policy: 30 NULLs in x0.
    let nulls = "(SELECT id, CASE WHEN id % 100 = 7 THEN NULL ELSE x0 END AS x0, x1, x2 FROM lowrank)";
    let e = error_of(ctx, &format!("SELECT * FROM pca({nulls}, k => 2, keep => 'id')")).await;
    c.check(
        "lowrank/nulls/error",
        e.contains("pca: column 'x0' has 30 NULL/NaN values; filter them or pass nulls => 'drop'"),
        || e.clone(),
    );
    let kept: Vec<i64> = (0..LR_ROWS).filter(|i| i % 100 != 7).collect();
    let idx = Tensor::from_slice(&kept);
    let (_, _, scores) = reference(&x.narrow(1, 0, 3).index_select(0, &idx), false);
    close_sql(
        c,
        ctx,
        "lowrank/nulls/drop",
        &format!("SELECT * FROM pca({nulls}, k => 2, keep => 'id', nulls => 'drop') ORDER BY id"),
        &pcs(2),
        &scores.narrow(1, 0, 2),
        VECTOR_TOL,
    )
    .await;
    let ids = rows(
        ctx,
        &format!("SELECT id FROM pca({nulls}, k => 2, keep => 'id', nulls => 'drop') ORDER BY id"),
    )
    .await;
    c.check(
        "lowrank/nulls/drop/ids",
        ids.as_ref().map(|b| int_column(b, "id")) == Ok(kept),
        || "ids differ".into(),
    );
}

/// The largest principal angle between the column spaces of `a` and `b` (orthonormal columns).
fn angle(a: &Tensor, b: &Tensor) -> f64 {
    let cosines = a.tr().matmul(b).svd(true, true).1;
    cosines.min().double_value(&[]).clamp(-1.0, 1.0).acos()
}

/// Reference PCA of `x` (rows × d) in one process: (explained variance, components d × d with
/// the sign convention, scores), optionally standardised (population standard deviation).
fn reference(x: &Tensor, standardize: bool) -> (Tensor, Tensor, Tensor) {
    let n = x.size()[0] as f64;
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let xs = if standardize {
        &xc / (xc.square().sum_dim_intlist(0, true, Kind::Double) / n).sqrt()
    } else {
        xc
    };
    let (_, s, v) = xs.svd(true, true);
    let (_, v) = engine::linalg::flip_signs(&v);
    let scores = xs.matmul(&v);
    (s.square() / (n - 1.0), v, scores)
}
