//! Multi-rank checks of the table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`,
//! `svd`, `matmul`) through SQL.
//!
//! `heatsql-function-checks FIXTURES SCRATCH [-v]` under `mpirun -n P`: FIXTURES is
//! `heatsql/tests/fixtures/pca` (scikit-learn results on its bundled breast cancer dataset,
//! made by `make_fixture.py` there); rank 0 writes generated tables and COPY output to SCRATCH.
//! References: the scikit-learn fixture, and tch on the gathered input (every rank reads the
//! whole input with an ordinary query and factors it in one process). Rank 0 prints failures and
//! `function checks at P=<p>: <n> passed, <m> failed`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use engine::testkit::{Checker, adjusted_rand};
use heatsql::HeatContext;
use tch::{Kind, Tensor};

/// Low-rank table: rows, features, rank, rows per row group.
const LR_ROWS: i64 = 3000;
const LR_COLS: usize = 12;
const LR_GROUP: usize = 250;

/// Exact solvers in f64: the spectrum within 1e-10 relative, vectors and scores within 1e-8.
const SPECTRUM_TOL: f64 = 1e-10;
const VECTOR_TOL: f64 = 1e-8;
/// float32: the spectrum within 1e-4 relative, scores within 1e-3 (f32 rounding of values up to
/// about 4000, summed over 30 features).
const F32_SPECTRUM_TOL: f64 = 1e-4;
const F32_SCORES_TOL: f64 = 1e-3;
/// Randomized and hierarchical on low-rank data: the largest principal angle.
const ANGLE_TOL: f64 = 1e-6;

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
/// f32, the result's rows on the rank of A's rows, and the errors.
async fn check_matmul(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
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
    for (sql, want) in [
        (
            "SELECT * FROM matmul(ma, (SELECT c1, c2, c3 FROM mc), columns => 'a1, a2, a3, a4, a5, a6')",
            "matmul: cannot multiply 37 × 6 by 37 × 3: inner dimensions must agree (6 ≠ 37)",
        ),
        (
            "SELECT * FROM matmul(ma, (SELECT b1 FROM mb), columns => 'a1, a2', transpose_a => true)",
            "Aᵀ·B needs operands with the same rows; they have 37 and 6",
        ),
        (
            "SELECT * FROM matmul((SELECT 'x' AS s, a1 FROM ma), mb, columns => 's, a1')",
            "matmul: column 's' is Utf8; feature columns must be numeric",
        ),
        (
            "SELECT * FROM matmul(ma)",
            "matmul: expected 2 positional relation arguments (a, b",
        ),
        (
            "SELECT * FROM matmul(ma, mb, keep => 'id', transpose_a => true)",
            "matmul: keep => does not apply with transpose_a => true",
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("matmul/error/{sql}"), e.contains(want), || format!("got: {e}"));
    }
    check_matmul_ordered(c, ctx, scratch, &a, &b, &cm).await;
}

/// `a_order`/`b_order`: the tables of [`check_matmul`] written in scrambled row order (a
/// permutation, row groups of 4 and 1, so at P = 4 some ranks start with no rows), put back in
/// order across ranks by an integer, a negative float and a timestamp key. References: the
/// products of the ordered operands (tch, `a`, `b`, `cm`). Also the output's global order and
/// balanced layout, and the errors (NULL, NaN, duplicate, wrong type, key as a feature).
async fn check_matmul_ordered(c: &mut Checker, ctx: &HeatContext, scratch: &str, a: &Tensor, b: &Tensor, cm: &Tensor) {
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
    for (sql, want) in [
        (
            "SELECT * FROM matmul(msa, (SELECT b1, id % 3 AS k FROM msb), columns => 'a1, a2, a3, a4, a5, a6', \
             b_order => 'k')",
            "matmul: b_order column 'k' has the value 0 more than once; every row needs its own position",
        ),
        (
            "SELECT * FROM matmul(msa, (SELECT b1, CASE WHEN id = 4 THEN NULL ELSE id END AS k FROM msb), \
             columns => 'a1, a2, a3, a4, a5, a6', b_order => 'k')",
            "matmul: b_order column 'k' has 1 NULL values; every row needs a position",
        ),
        (
            "SELECT * FROM matmul(msa, (SELECT b1, CASE WHEN id = 4 THEN 'NaN'::double ELSE id END AS k FROM msb), \
             columns => 'a1, a2, a3, a4, a5, a6', b_order => 'k')",
            "matmul: b_order column 'k' has NaN values",
        ),
        (
            "SELECT * FROM matmul(msa, (SELECT b1, 'x' AS k FROM msb), b_order => 'k')",
            "matmul: b_order column 'k' is Utf8; expected an integer, float, date, time, timestamp or duration column",
        ),
        (
            "SELECT * FROM matmul(msa, msb, a_order => 'zz')",
            "matmul: a_order column 'zz' not found",
        ),
        (
            "SELECT * FROM matmul(msa, msb, columns => 'id, a1', a_order => 'id')",
            "matmul: column 'id' is the a_order column, which orders the rows and is not a feature",
        ),
        (
            "SELECT * FROM matmul(msa, (SELECT id AS k FROM msb), b_order => 'k')",
            "matmul: b has no numeric columns besides b_order",
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("matmul/order/error/{sql}"), e.contains(want), || {
            format!("got: {e}")
        });
    }
}

/// The 12 series of the DMD fixture.
const MACRO: [&str; 12] = [
    "realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "tbilrate", "unemp", "pop", "infl", "realint",
];
/// DMD against PyDMD (f64): eigenvalues, amplitudes, modes, reconstruction and forecast.
const DMD_TOL: f64 = 1e-8;

/// Per mode j, the rank-one matrix w_j w_jᴴ of the mode times its amplitude (state × state,
/// as (…, 2) real): invariant to how eigenvectors are scaled. `w` is state × r complex.
fn mode_outer(w: &Tensor) -> Tensor {
    let r = w.size()[1];
    let outs: Vec<Tensor> = (0..r)
        .map(|j| {
            let c = w.select(1, j);
            c.unsqueeze(1).matmul(&c.conj_physical().unsqueeze(0))
        })
        .collect();
    Tensor::stack(&outs, 0).resolve_conj().contiguous().view_as_real()
}

/// Columns `re`/`im` pairs of `batches` as a complex (rows × pairs) tensor.
fn complex_matrix(batches: &[RecordBatch], re: &[String], im: &[String]) -> Result<Tensor, String> {
    Ok(Tensor::complex(&matrix(batches, re)?, &matrix(batches, im)?))
}

/// `dmd` through SQL against the PyDMD fixture on the macroeconomic series (heatsql/tests/
/// fixtures/dmd, rows scrambled so `order_by` sorts them across ranks): eigenvalues, |b|, the
/// modes (as w wᴴ per mode, w = Φ b), frequency and growth rate from the order_by step (0.25),
/// the reconstruction in global time order and the forecast with the extrapolated time, for a
/// fixed rank, PyDMD's optimal threshold and an energy fraction; the columns layout on the
/// transposed table (one row group: at P > 1 ranks start without rows); fewer snapshots than
/// ranks; and the errors.
async fn check_dmd(c: &mut Checker, ctx: &HeatContext) {
    let series: Vec<String> = MACRO.iter().map(|s| s.to_string()).collect();
    let list = MACRO.join(", ");
    let quarters: Vec<String> = (0..203).map(|k| format!("q{k:03}")).collect();
    for (setting, arg, r) in [
        ("r4", "rank => 4", 4i64),
        ("optimal", "columns => '__ALL__'", 5),
        ("energy", "energy => 0.9", 3),
    ] {
        let arg = arg.replace("columns => '__ALL__'", &format!("columns => '{list}'"));
        let call = |out: &str| format!("dmd(macro, order_by => 't', {arg}, output => '{out}')");
        let tag = format!("dmd/macro/{setting}");
        let eig_cols = names(&["real", "imag", "amplitude"]);
        let got = rows(ctx, &format!("SELECT * FROM {} ORDER BY mode", call("eigenvalues"))).await;
        let want = rows(
            ctx,
            &format!(
                "SELECT real, imag, sqrt(amplitude_re * amplitude_re + amplitude_im * amplitude_im) AS amplitude, \
                 atan2(imag, real) / (2 * pi() * 0.25) AS frequency, ln(sqrt(real * real + imag * imag)) / 0.25 AS growth_rate \
                 FROM dmd_eigs WHERE setting = '{setting}' ORDER BY mode"
            ),
        )
        .await
        .and_then(|b| matrix(&b, &names(&["real", "imag", "amplitude", "frequency", "growth_rate"])));
        let Ok(want) = want else {
            c.check(&format!("{tag}/fixture"), false, || format!("{want:?}"));
            continue;
        };
        c.check(&format!("{tag}/rank"), want.size()[0] == r, || {
            format!("{:?}", want.size())
        });
        c.close(
            &format!("{tag}/eigenvalues"),
            got.as_ref().map_err(|e| e.clone()).and_then(|b| matrix(b, &eig_cols)),
            &want.narrow(1, 0, 3),
            DMD_TOL,
        );
        c.close(
            &format!("{tag}/frequency_growth"),
            got.as_ref()
                .map_err(|e| e.clone())
                .and_then(|b| matrix(b, &names(&["frequency", "growth_rate"]))),
            &want.narrow(1, 3, 2),
            DMD_TOL,
        );
        // Modes: w wᴴ per mode, w = Φ |b| with our Φ (normalised) against PyDMD's Φ b.
        let re: Vec<String> = (1..=r).map(|j| format!("mode{j}_re")).collect();
        let im: Vec<String> = (1..=r).map(|j| format!("mode{j}_im")).collect();
        let ours = rows(ctx, &format!("SELECT * FROM {}", call("modes")))
            .await
            .and_then(|b| complex_matrix(&b, &re, &im));
        let amps = got
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|b| matrix(b, &names(&["amplitude"])));
        let fixture = rows(
            ctx,
            &format!("SELECT feature, mode, re, im FROM dmd_modes WHERE setting = '{setting}' ORDER BY mode"),
        )
        .await
        .and_then(|b| {
            let re = matrix(&b, &names(&["re"]))?.reshape([r, 12]).tr();
            let im = matrix(&b, &names(&["im"]))?.reshape([r, 12]).tr();
            Ok(Tensor::complex(&re, &im))
        });
        match (ours, amps, fixture) {
            (Ok(phi), Ok(b), Ok(w)) => {
                let ours = &phi * b.reshape([1, r]).to_kind(Kind::ComplexDouble);
                c.close(
                    &format!("{tag}/modes"),
                    Ok::<_, String>(mode_outer(&ours)),
                    &mode_outer(&w),
                    DMD_TOL,
                );
            }
            other => c.check(&format!("{tag}/modes"), false, || format!("{other:?}")),
        }
        let expected = |kind: &str| {
            let q = format!("SELECT * FROM dmd_series WHERE setting = '{setting}' AND kind = '{kind}' ORDER BY t");
            async move { rows(ctx, &q).await }
        };
        let with_t = |mut v: Vec<String>| {
            v.insert(0, "t".to_string());
            v
        };
        let rec = rows(ctx, &format!("SELECT * FROM {}", call("reconstruction"))).await;
        let want_rec = expected("reconstruction")
            .await
            .and_then(|b| matrix(&b, &with_t(series.clone())));
        close_or_fail(
            c,
            &format!("{tag}/reconstruction"),
            rec.and_then(|b| matrix(&b, &with_t(series.clone()))),
            want_rec,
            DMD_TOL,
        );
        let fc = rows(
            ctx,
            &format!(
                "SELECT * FROM {}",
                call("forecast").replace("output => 'forecast'", "output => 'forecast', steps => 8")
            ),
        )
        .await;
        let steps = fc.as_ref().map(|b| int_column(b, "step"));
        c.check(&format!("{tag}/forecast/steps"), steps == Ok((1..=8).collect()), || {
            format!("{steps:?}")
        });
        close_or_fail(
            c,
            &format!("{tag}/forecast"),
            fc.and_then(|b| matrix(&b, &with_t(series.clone()))),
            expected("forecast")
                .await
                .and_then(|b| matrix(&b, &with_t(series.clone()))),
            DMD_TOL,
        );
    }
    // The columns layout: one row per series, the quarters as columns (PyDMD's own layout).
    let call =
        |out: &str| format!("dmd(macro_columns, layout => 'columns', keep => 'feature', rank => 4, output => '{out}')");
    let got = rows(ctx, &format!("SELECT * FROM {} ORDER BY mode", call("eigenvalues")))
        .await
        .and_then(|b| matrix(&b, &names(&["real", "imag", "amplitude"])));
    let want = rows(
        ctx,
        "SELECT real, imag, sqrt(amplitude_re * amplitude_re + amplitude_im * amplitude_im) AS amplitude \
         FROM dmd_eigs WHERE setting = 'r4' ORDER BY mode",
    )
    .await
    .and_then(|b| matrix(&b, &names(&["real", "imag", "amplitude"])));
    close_or_fail(c, "dmd/columns/eigenvalues", got, want, DMD_TOL);
    let features = rows(ctx, &format!("SELECT feature FROM {}", call("reconstruction")))
        .await
        .map(|b| {
            b.iter()
                .flat_map(|b| {
                    b.column_by_name("feature")
                        .and_then(|a| cast(a, &DataType::Utf8).ok())
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
    c.check("dmd/columns/keep", features == Ok(series.clone()), || {
        format!("{features:?}")
    });
    let rec = rows(ctx, &format!("SELECT * FROM {}", call("reconstruction")))
        .await
        .and_then(|b| matrix(&b, &quarters));
    let want_rec = rows(
        ctx,
        "SELECT * FROM dmd_series WHERE setting = 'r4' AND kind = 'reconstruction' ORDER BY t",
    )
    .await
    .and_then(|b| matrix(&b, &series));
    close_or_fail(c, "dmd/columns/reconstruction", rec, want_rec.map(|w| w.tr()), DMD_TOL);
    let steps: Vec<String> = (1..=8).map(|s| format!("step{s}")).collect();
    let fc = rows(
        ctx,
        &format!(
            "SELECT * FROM {}",
            call("forecast").replace("output => 'forecast'", "output => 'forecast', steps => 8")
        ),
    )
    .await
    .and_then(|b| matrix(&b, &steps));
    let want_fc = rows(
        ctx,
        "SELECT * FROM dmd_series WHERE setting = 'r4' AND kind = 'forecast' ORDER BY t",
    )
    .await
    .and_then(|b| matrix(&b, &series));
    close_or_fail(c, "dmd/columns/forecast", fc, want_fc.map(|w| w.tr()), DMD_TOL);
    let re: Vec<String> = (1..=4).map(|j| format!("mode{j}_re")).collect();
    let im: Vec<String> = (1..=4).map(|j| format!("mode{j}_im")).collect();
    let phi = rows(ctx, &format!("SELECT * FROM {}", call("modes")))
        .await
        .and_then(|b| complex_matrix(&b, &re, &im));
    let w = rows(ctx, "SELECT re, im FROM dmd_modes WHERE setting = 'r4' ORDER BY mode")
        .await
        .and_then(|b| {
            Ok(Tensor::complex(
                &matrix(&b, &names(&["re"]))?.reshape([4, 12]).tr(),
                &matrix(&b, &names(&["im"]))?.reshape([4, 12]).tr(),
            ))
        });
    let amps = rows(
        ctx,
        &format!("SELECT amplitude FROM {} ORDER BY mode", call("eigenvalues")),
    )
    .await
    .and_then(|b| matrix(&b, &names(&["amplitude"])));
    match (phi, amps, w) {
        (Ok(phi), Ok(b), Ok(w)) => {
            let ours = &phi * b.reshape([1, 4]).to_kind(Kind::ComplexDouble);
            c.close(
                "dmd/columns/modes",
                Ok::<_, String>(mode_outer(&ours)),
                &mode_outer(&w),
                DMD_TOL,
            );
        }
        other => c.check("dmd/columns/modes", false, || format!("{other:?}")),
    }
    // A timestamp axis: the quarters as instants 90 days (7,776,000 s) apart, scrambled like
    // `macro`. dt defaults to the step in seconds, so the eigenvalues are PyDMD's and the
    // rates are per second; the forecast extrapolates the timestamps.
    const STEP: i64 = 7_776_000;
    let ts = format!("(SELECT to_timestamp_seconds(CAST(t * 4 AS BIGINT) * {STEP}) AS ts, {list} FROM macro)");
    let got = rows(
        ctx,
        &format!(
            "SELECT real, imag, amplitude, frequency * {STEP} AS frequency, growth_rate * {STEP} AS growth \
             FROM dmd({ts}, order_by => 'ts', rank => 4) ORDER BY mode"
        ),
    )
    .await
    .and_then(|b| matrix(&b, &names(&["real", "imag", "amplitude", "frequency", "growth"])));
    let want = rows(
        ctx,
        "SELECT real, imag, sqrt(amplitude_re * amplitude_re + amplitude_im * amplitude_im) AS amplitude, \
         atan2(imag, real) / (2 * pi()) AS frequency, ln(sqrt(real * real + imag * imag)) AS growth \
         FROM dmd_eigs WHERE setting = 'r4' ORDER BY mode",
    )
    .await
    .and_then(|b| matrix(&b, &names(&["real", "imag", "amplitude", "frequency", "growth"])));
    close_or_fail(c, "dmd/timestamp/eigenvalues", got, want, DMD_TOL);
    let fc = rows(
        ctx,
        &format!(
            "SELECT * FROM dmd({ts}, order_by => 'ts', rank => 4, output => 'forecast', steps => 3) ORDER BY step"
        ),
    )
    .await;
    // The last quarter is 2009Q3: t · 4 = 2009 · 4 + 2.
    let last = (2009 * 4 + 2) * STEP;
    let secs = fc.as_ref().map(|b| int_column(b, "ts"));
    let want_secs: Vec<i64> = (1..=3).map(|s| last + s * STEP).collect();
    c.check("dmd/timestamp/forecast_axis", secs.as_ref() == Ok(&want_secs), || {
        format!("{secs:?}, expected {want_secs:?}")
    });
    let want_fc = rows(
        ctx,
        "SELECT * FROM dmd_series WHERE setting = 'r4' AND kind = 'forecast' ORDER BY t LIMIT 3",
    )
    .await
    .and_then(|b| matrix(&b, &series));
    close_or_fail(
        c,
        "dmd/timestamp/forecast",
        fc.and_then(|b| matrix(&b, &series)),
        want_fc,
        DMD_TOL,
    );
    // Three snapshots (fewer than ranks at P = 4): against tch on the gathered snapshots.
    let few = "(SELECT * FROM macro WHERE t < 1959.6)";
    let got = rows(
        ctx,
        &format!("SELECT real, imag FROM dmd({few}, order_by => 't', rank => 2) ORDER BY mode"),
    )
    .await
    .and_then(|b| matrix(&b, &names(&["real", "imag"])));
    let data = rows(ctx, &format!("SELECT * FROM {few} ORDER BY t"))
        .await
        .and_then(|b| matrix(&b, &series));
    match data {
        Ok(d) => {
            let x = d.narrow(0, 0, 2).tr();
            let y = d.narrow(0, 1, 2).tr();
            let (u, s, v) = x.svd(true, true);
            let a = u.tr().matmul(&y).matmul(&v) / s.unsqueeze(0);
            let (lambda, _) = a.linalg_eig();
            let re = Vec::<f64>::try_from(lambda.real().contiguous()).unwrap_or_default();
            let im = Vec::<f64>::try_from(lambda.imag().contiguous()).unwrap_or_default();
            let mut pairs: Vec<(f64, f64)> = re.into_iter().zip(im).collect();
            pairs.sort_by(|a, b| b.0.hypot(b.1).total_cmp(&a.0.hypot(a.1)).then(b.1.total_cmp(&a.1)));
            let want =
                Tensor::from_slice(&pairs.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>()).reshape([-1, 2]);
            c.close("dmd/few_snapshots", got, &want, DMD_TOL);
        }
        Err(e) => c.check("dmd/few_snapshots", false, || e),
    }
    for (sql, want) in [
        (
            "SELECT * FROM dmd((SELECT * FROM macro UNION ALL SELECT * FROM macro WHERE t = 1960), order_by => 't', rank => 2)",
            "dmd: order_by column 't' has the value 1960.0 more than once; every row needs its own position".to_string(),
        ),
        (
            "SELECT * FROM dmd((SELECT * FROM macro WHERE t <> 1970.5), order_by => 't', rank => 2)",
            "dmd: order_by column 't' is not evenly spaced: 1970.25 is followed by 1970.75, but the first step is 0.25".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 'quarter_start', rank => 2)",
            "dmd: order_by column 'quarter_start' is not evenly spaced".to_string(),
        ),
        (
            "SELECT * FROM dmd((SELECT CASE WHEN t = 1960 THEN NULL ELSE t END AS t, realgdp, realcons FROM macro), order_by => 't')",
            "dmd: order_by column 't' has 1 NULL values; every row needs a position".to_string(),
        ),
        (
            "SELECT * FROM dmd((SELECT * FROM macro WHERE t < 1960), order_by => 't', rank => 5)",
            "dmd: rank = 5 is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1) = 3 (4 snapshots of 12 values)".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', rank => 13)",
            "dmd: rank = 13 exceeds the 12 feature columns of each snapshot".to_string(),
        ),
        (
            "SELECT * FROM dmd((SELECT * FROM macro WHERE t = 1960), order_by => 't', rank => 1)",
            "dmd: order_by column 't' has 1 snapshots; at least 2 are needed".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', rank => 2, energy => 0.9)",
            "dmd: give rank => or energy =>, not both".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', output => 'forecast')",
            "dmd: output => 'forecast' needs steps => N".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', steps => 3)",
            "dmd: steps => applies to output => 'forecast'".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro_columns, layout => 'columns', order_by => 'q000')",
            "dmd: order_by => applies to layout => 'rows'".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', keep => 'realgdp')",
            "dmd: keep => applies to layout => 'columns'".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', columns => 't, realgdp')",
            "dmd: column 't' is the order_by column, which orders the rows and is not a feature".to_string(),
        ),
        (
            "SELECT * FROM dmd(macro, order_by => 't', dt => -1)",
            "dmd: dt = -1 must be a positive number".to_string(),
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("dmd/error/{sql}"), e.contains(&want), || format!("got: {e}"));
    }
}

/// `svd` through SQL against tch on the gathered input: the breast cancer table (569 × 30,
/// full rank; exact methods: σ within 1e-10 relative, U Σ Vᵀ equal to the best rank-k
/// approximation and U, V orthonormal within 1e-10 (f64), V with the sign convention), a wide
/// input (10 rows × 30 columns), randomized and hierarchical on the low-rank table, U rows on
/// the rank of their input rows, and the errors.
async fn check_svd(c: &mut Checker, ctx: &HeatContext) {
    let all = rows(ctx, "SELECT * FROM cancer ORDER BY id").await;
    let Ok(all) = all else {
        c.check("svd/input", false, || "cancer unreadable".into());
        return;
    };
    let features: Vec<String> = all[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "id")
        .collect();
    let lr_features: Vec<String> = (0..LR_COLS).map(|j| format!("x{j}")).collect();
    let eye = |k: i64| Tensor::eye(k, (Kind::Double, tch::Device::Cpu));
    let cases = [
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
    ];
    for (name, input, filter, cols, k, method, tol) in cases {
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
    // U rows stay on the rank of their input rows.
    let local_in = local_rows(ctx, "SELECT id FROM cancer")
        .await
        .map(|b| int_column(&b, "id"));
    let local_u = local_rows(ctx, "SELECT id FROM svd(cancer, k => 2, keep => 'id', output => 'u')")
        .await
        .map(|b| int_column(&b, "id"));
    c.check("svd/u_stays_local", local_in.is_ok() && local_in == local_u, || {
        format!("{local_in:?} vs {local_u:?}")
    });
    for (sql, want) in [
        (
            "SELECT * FROM svd(cancer)",
            "svd: missing argument k (the number of singular triplets)",
        ),
        (
            "SELECT * FROM svd(cancer, k => 0)",
            "svd: k = 0 is out of range; expected k ≥ 1",
        ),
        (
            "SELECT * FROM svd((SELECT * FROM cancer WHERE id < 3), k => 5, keep => 'id')",
            "svd: k = 5 exceeds min(rows, columns) = 3",
        ),
        (
            "SELECT * FROM svd(cancer, k => 40, keep => 'id')",
            "svd: k = 40 exceeds min(rows, columns): the input has 30 feature columns",
        ),
        (
            "SELECT * FROM svd(cancer, k => 2, method => 'qr')",
            "svd: method => 'qr' is not one of 'auto', 'tsqr', 'randomized', 'hierarchical'",
        ),
        (
            "SELECT * FROM svd(cancer, k => 2, method => 'tsqr', power_iter => 2)",
            "svd: power_iter applies to method => 'randomized', not 'tsqr'",
        ),
        (
            "SELECT * FROM svd((SELECT 'a' AS s, mean_radius FROM cancer), k => 1, columns => 's, mean_radius')",
            "svd: column 's' is Utf8; feature columns must be numeric",
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("svd/error/{sql}"), e.contains(want), || format!("got: {e}"));
    }
}

/// Seeded k-means on data where the initialisation matters (7 clusters on 4 blobs, so
/// different initial centroids end in different local optima): rank 0 writes every init's
/// assignments and centroids to `SCRATCH/kmeans_seeded.csv` (`init,kind,index,values…`, f64 in
/// full precision). heatsql/tests/functions.rs compares the files of P = 1 … 4: the same seed
/// must give the same clusters (numbering included) and centroids at every rank count.
async fn check_kmeans_seeded(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    let mut out = String::new();
    for init in ["k-means||", "k-means++", "random"] {
        let call = format!("kmeans(blobs, k => 7, keep => 'id', init => '{init}', seed => 11, n_init => 3");
        let a = rows(
            ctx,
            &format!("SELECT a.id, a.cluster, a.distance FROM {call}) a ORDER BY a.id"),
        )
        .await;
        let cents = rows(
            ctx,
            &format!(
                "SELECT c.cluster, c.size, c.x, c.y, c.z FROM {call}, output => 'centroids') c ORDER BY c.cluster"
            ),
        )
        .await;
        let (Ok(a), Ok(cents)) = (a, cents) else {
            c.check(&format!("kmeans/seeded/{init}/run"), false, || "query failed".into());
            continue;
        };
        let (ids, clusters) = (int_column(&a, "id"), int_column(&a, "cluster"));
        let dist =
            matrix(&a, &names(&["distance"])).map(|t| Vec::<f64>::try_from(&t.reshape([-1])).unwrap_or_default());
        let cm = matrix(&cents, &names(&["x", "y", "z"]));
        let sizes = int_column(&cents, "size");
        let (Ok(dist), Ok(cm)) = (dist, cm) else {
            c.check(&format!("kmeans/seeded/{init}/columns"), false, || "columns".into());
            continue;
        };
        c.check(
            &format!("kmeans/seeded/{init}/shape"),
            ids.len() == 2000 && sizes.len() == 7,
            || format!("{} rows, {} centroids", ids.len(), sizes.len()),
        );
        for ((id, cl), d) in ids.iter().zip(&clusters).zip(&dist) {
            out.push_str(&format!("{init},row,{id},{cl},{d:e}\n"));
        }
        for (j, size) in sizes.iter().enumerate() {
            let v: Vec<f64> = Vec::try_from(&cm.get(j as i64)).unwrap_or_default();
            let v: Vec<String> = v.iter().map(|x| format!("{x:e}")).collect();
            out.push_str(&format!("{init},centroid,{j},{size},{}\n", v.join(",")));
        }
    }
    // Collective check (every rank takes part); rank 0 writes.
    let path = format!("{scratch}/kmeans_seeded.csv");
    let written = ctx.comm().rank() != 0 || std::fs::write(&path, out).is_ok();
    c.check("kmeans/seeded/written", written, || path.clone());
}

/// The low-rank table: x_j = Σ_r u_r(id) σ_r b_rj + 1e-12 noise + 0.5 j (rank 3 of 12 once
/// centred, singular values in the ratio 5 : 3 : 2).
fn lowrank_batch() -> RecordBatch {
    let sigma = [5.0, 3.0, 2.0];
    let ids: Vec<i64> = (0..LR_ROWS).collect();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.clone()))];
    for j in 0..LR_COLS {
        let v: Vec<f64> = ids
            .iter()
            .map(|&i| {
                let t = i as f64;
                let mut x = 0.0;
                for (r, s) in sigma.iter().enumerate() {
                    // Orthogonal columns u_r over the rows, orthogonal rows b_r over the features.
                    let u = (std::f64::consts::TAU * (r + 1) as f64 * t / LR_ROWS as f64).sin();
                    let b = (std::f64::consts::PI * (r + 1) as f64 * (j as f64 + 0.5) / LR_COLS as f64).cos();
                    x += u * s * b;
                }
                x + 1e-12 * (t * 13.1 + j as f64).sin() + 0.5 * j as f64
            })
            .collect();
        fields.push(Field::new(format!("x{j}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from(v)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("lowrank batch")
}

/// Four planted blobs in 3-d (2,000 rows; row i in blob i % 4, centres ±6 on two axes,
/// spread 1): columns id, label, x, y, z.
fn blobs_batch() -> RecordBatch {
    let n = 2000i64;
    let centres = [[6.0, 0.0, 0.0], [-6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, -6.0, 0.0]];
    let noise = |i: i64, j: i64| {
        // Box–Muller on a hash of (i, j): deterministic, independent of the rank count.
        let h = |s: u64| {
            let mut z = s.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let (u1, u2) = (1.0 - h((i * 8 + j) as u64 * 2), h((i * 8 + j) as u64 * 2 + 1));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let ids: Vec<i64> = (0..n).collect();
    let label: Vec<i64> = ids.iter().map(|i| i % 4).collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(Int64Array::from(label.clone())),
    ];
    let mut fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Int64, false),
    ];
    for (j, name) in ["x", "y", "z"].iter().enumerate() {
        let v: Vec<f64> = ids
            .iter()
            .map(|&i| centres[(i % 4) as usize][j] + noise(i, j as i64))
            .collect();
        cols.push(Arc::new(Float64Array::from(v)));
        fields.push(Field::new(*name, DataType::Float64, false));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("blobs batch")
}

fn write_parquet(path: &str, b: &RecordBatch, group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).expect("create parquet");
    let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).expect("writer");
    w.write(b).expect("write");
    w.close().expect("close");
}

async fn check_kmeans(c: &mut Checker, ctx: &HeatContext) {
    for init in ["k-means||", "k-means++", "random"] {
        let tag = format!("kmeans/{init}");
        let call = format!("kmeans(blobs, k => 4, keep => 'id, label', init => '{init}', seed => 3, n_init => 2");
        // `cluster` is a keyword of the SQL parser: select it qualified (or quoted).
        let got = rows(
            ctx,
            &format!("SELECT a.id, a.label, a.cluster, a.distance FROM {call}) a ORDER BY a.id"),
        )
        .await;
        let Ok(got) = got else {
            c.check(&format!("{tag}/run"), false, || format!("{got:?}"));
            continue;
        };
        let (labels, clusters) = (int_column(&got, "label"), int_column(&got, "cluster"));
        let ari = adjusted_rand(&labels, &clusters);
        c.check(&format!("{tag}/ari"), ari >= 0.99 && labels.len() == 2000, || {
            format!("ARI {ari}, {} rows", labels.len())
        });
        // Reported inertia = Σ distance² of the assignments = Σ of the centroids' inertia.
        let direct = matrix(&got, &names(&["distance"])).map(|t| t.square().sum(Kind::Double).double_value(&[]));
        let summary = rows(ctx, &format!("SELECT inertia FROM {call}, output => 'summary')")).await;
        let summary = summary
            .and_then(|b| matrix(&b, &names(&["inertia"])))
            .map(|t| t.double_value(&[0, 0]));
        let per_cluster = rows(
            ctx,
            &format!("SELECT sum(inertia) AS s, sum(size) AS n FROM {call}, output => 'centroids')"),
        )
        .await;
        let per = per_cluster
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|b| matrix(b, &names(&["s"])))
            .map(|t| t.double_value(&[0, 0]));
        let sizes = per_cluster.map(|b| int_column(&b, "n"));
        let ok = match (&direct, &summary, &per) {
            (Ok(d), Ok(s), Ok(p)) => (d - s).abs() <= 1e-10 * d && (p - s).abs() <= 1e-10 * s,
            _ => false,
        };
        c.check(&format!("{tag}/inertia"), ok && sizes == Ok(vec![2000]), || {
            format!("{direct:?} {summary:?} {per:?} {sizes:?}")
        });
    }
    // scikit-learn's KMeans on its wine dataset from the same initial centroids: inertia and
    // centroids within 1e-6 relative, the same labels.
    let call = "kmeans(wine, k => 3, keep => 'id', init => km_init";
    let features = names(&[
        "alcohol",
        "malic_acid",
        "ash",
        "alcalinity_of_ash",
        "magnesium",
        "total_phenols",
        "flavanoids",
        "nonflavanoid_phenols",
        "proanthocyanins",
        "color_intensity",
        "hue",
        "od280_od315_of_diluted_wines",
        "proline",
    ]);
    let want = rows(ctx, "SELECT inertia FROM km_summary")
        .await
        .and_then(|b| matrix(&b, &names(&["inertia"])));
    let got = rows(ctx, &format!("SELECT inertia FROM {call}, output => 'summary')"))
        .await
        .and_then(|b| matrix(&b, &names(&["inertia"])));
    match want {
        Ok(w) => c.close("kmeans/sklearn/inertia", got, &w, 1e-6),
        Err(e) => c.check("kmeans/sklearn/inertia", false, || e),
    }
    let want = rows(ctx, "SELECT * FROM km_centroids ORDER BY \"cluster\"")
        .await
        .and_then(|b| matrix(&b, &features));
    let got = rows(
        ctx,
        &format!("SELECT * FROM {call}, output => 'centroids') c ORDER BY c.cluster"),
    )
    .await
    .and_then(|b| matrix(&b, &features));
    match want {
        Ok(w) => c.close("kmeans/sklearn/centroids", got, &w, 1e-6),
        Err(e) => c.check("kmeans/sklearn/centroids", false, || e),
    }
    let same = rows(
        ctx,
        &format!("SELECT count(*) AS n, sum(CASE WHEN a.cluster = l.cluster THEN 1 ELSE 0 END) AS same FROM {call}) a JOIN km_labels l ON a.id = l.id"),
    )
    .await
    .map(|b| (int_column(&b, "n"), int_column(&b, "same")));
    c.check("kmeans/sklearn/labels", same == Ok((vec![178], vec![178])), || {
        format!("{same:?}")
    });
    for (sql, want) in [
        (
            "SELECT * FROM kmeans(wine, k => 2, keep => 'id', init => km_init)",
            "kmeans: init => has 3 rows; expected k = 2 initial centroids",
        ),
        (
            "SELECT * FROM kmeans(wine, k => 3, keep => 'id', init => km_init, n_init => 2)",
            "kmeans: n_init applies to drawn initial centroids",
        ),
        (
            "SELECT * FROM kmeans(wine, k => 3, keep => 'id', init => (SELECT alcohol FROM km_init))",
            "kmeans: init => must have one numeric column per feature",
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("kmeans/error/{sql}"), e.contains(want), || format!("got: {e}"));
    }
    // kmeans_predict with the centroids table gives the same assignments.
    let made = rows(ctx, "CREATE TABLE cents AS SELECT * FROM kmeans(blobs, k => 4, keep => 'id, label', seed => 5, output => 'centroids')").await;
    let same = rows(
        ctx,
        "SELECT count(*) AS n, sum(CASE WHEN a.cluster = b.cluster AND abs(a.distance - b.distance) <= 1e-12 THEN 1 ELSE 0 END) AS same \
         FROM kmeans(blobs, k => 4, keep => 'id, label', seed => 5) a JOIN kmeans_predict(blobs, centroids => cents, keep => 'id') b ON a.id = b.id",
    )
    .await
    .map(|b| (int_column(&b, "n"), int_column(&b, "same")));
    c.check(
        "kmeans/predict_reproduces",
        made.is_ok() && same == Ok((vec![2000], vec![2000])),
        || format!("{made:?} {same:?}"),
    );
    for (sql, want) in [
        (
            "SELECT * FROM kmeans(blobs)",
            "kmeans: missing argument k (the number of clusters)",
        ),
        (
            "SELECT * FROM kmeans(blobs, k => 0)",
            "kmeans: k = 0 is out of range; expected k ≥ 1",
        ),
        (
            "SELECT * FROM kmeans((SELECT * FROM blobs WHERE id < 3), k => 5, keep => 'id')",
            "kmeans: k = 5 is out of range; expected 1 ≤ k ≤ the number of rows (3)",
        ),
        (
            "SELECT * FROM kmeans(blobs, k => 2, init => 'best')",
            "kmeans: init => 'best' is not one of 'k-means||', 'k-means++', 'random'",
        ),
        (
            "SELECT * FROM kmeans(blobs, k => 2, kk => 3)",
            "kmeans: unknown argument 'kk'; expected one of k, init, max_iter, tol, seed",
        ),
        (
            "SELECT * FROM kmeans((SELECT 'a' AS s, x FROM blobs), k => 2, columns => 's, x')",
            "kmeans: column 's' is Utf8; feature columns must be numeric",
        ),
        (
            "SELECT * FROM kmeans((SELECT id, CASE WHEN id = 7 THEN NULL ELSE x END AS x FROM blobs), k => 2, keep => 'id')",
            "kmeans: column 'x' has 1 NULL/NaN values; filter them or pass nulls => 'drop'",
        ),
        (
            "SELECT * FROM kmeans_predict(blobs, centroids => (SELECT x, y FROM blobs))",
            "kmeans_predict: centroids => must be a kmeans centroids table (columns cluster and one per feature); it has no column 'cluster'",
        ),
    ] {
        let e = error_of(ctx, sql).await;
        c.check(&format!("kmeans/error/{sql}"), e.contains(want), || format!("got: {e}"));
    }
}

fn write_lowrank(path: &str) {
    let b = lowrank_batch();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(LR_GROUP))
        .build();
    let file = std::fs::File::create(path).expect("create lowrank.parquet");
    let mut w = ArrowWriter::try_new(file, b.schema(), Some(props)).expect("writer");
    w.write(&b).expect("write");
    w.close().expect("close");
}

/// A query's complete result on every rank (errors agreed), or the error text.
async fn rows(ctx: &HeatContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// This rank's share of a query's result.
async fn local_rows(ctx: &HeatContext, sql: &str) -> Result<Vec<RecordBatch>, String> {
    match ctx.sql(sql).await {
        Ok(df) => df.collect_local().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The error of a statement on this rank, as text ("" when it succeeded).
async fn error_of(ctx: &HeatContext, sql: &str) -> String {
    match rows(ctx, sql).await {
        Ok(_) => String::new(),
        Err(e) => e,
    }
}

/// The named columns as an (rows × columns) f64 tensor (NULL → NaN).
fn matrix(batches: &[RecordBatch], names: &[String]) -> Result<Tensor, String> {
    let mut cols = Vec::with_capacity(names.len());
    for n in names {
        let mut v = Vec::new();
        for b in batches {
            let a = b.column_by_name(n).ok_or_else(|| format!("no column {n}"))?;
            let a = cast(a, &DataType::Float64).map_err(|e| e.to_string())?;
            let a = a.as_primitive::<Float64Type>();
            v.extend((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }));
        }
        cols.push(Tensor::from_slice(&v));
    }
    if cols.is_empty() {
        return Err("no columns".into());
    }
    Ok(Tensor::stack(&cols, 1))
}

fn int_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(name))
        .filter_map(|a| cast(a, &DataType::Int64).ok())
        .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

fn pcs(k: usize) -> Vec<String> {
    (1..=k).map(|i| format!("pc{i}")).collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `c.close(tag, got, want, tol)` when the expected values could be read, else a failed check
/// saying why they could not.
fn close_or_fail<E: std::fmt::Display>(
    c: &mut Checker,
    tag: &str,
    got: Result<Tensor, E>,
    want: Result<Tensor, String>,
    tol: f64,
) {
    match want {
        Ok(w) => c.close(tag, got, &w, tol),
        Err(e) => c.check(tag, false, || e),
    }
}

/// Query `sql` and compare columns `cols` with `want` (rows × cols).
async fn close_sql(c: &mut Checker, ctx: &HeatContext, tag: &str, sql: &str, cols: &[String], want: &Tensor, tol: f64) {
    let got = rows(ctx, sql).await.and_then(|b| matrix(&b, cols));
    c.close(tag, got, want, tol);
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

async fn check_sklearn(c: &mut Checker, ctx: &HeatContext) {
    for mode in ["raw", "std"] {
        let standardize = mode == "std";
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
            continue;
        };
        let want_cols = matrix(&want_load, &[names(&["mean", "scale"]), pcs(5)].concat()).expect("loadings");
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
                &want_var,
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
                &want_cols,
                VECTOR_TOL,
            )
            .await;
            close_sql(
                c,
                ctx,
                &format!("{tag}/scores"),
                &format!("SELECT * FROM {call}) ORDER BY id"),
                &pcs(5),
                &want_scores,
                VECTOR_TOL,
            )
            .await;
        }
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
            &want_scores,
            F32_SCORES_TOL,
        );
        // k from a variance fraction: scikit-learn's choice, unused columns NULL.
        let ks = rows(
            ctx,
            &format!("SELECT fraction, k_{mode} AS k FROM variance_k ORDER BY fraction"),
        )
        .await;
        let ks: Vec<(f64, i64)> = ks
            .map(|b| {
                let f = matrix(&b, &names(&["fraction"]))
                    .map(|t| Vec::<f64>::try_from(&t.select(1, 0)).unwrap_or_default());
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
        // pca_project with scikit-learn's own loadings reproduces its scores.
        close_sql(
            c,
            ctx,
            &format!("sklearn/{mode}/pca_project"),
            &format!("SELECT * FROM pca_project(cancer, model => {mode}_loadings, keep => 'id') ORDER BY id"),
            &pcs(5),
            &want_scores,
            VECTOR_TOL,
        )
        .await;
    }
}

async fn check_lowrank(c: &mut Checker, ctx: &HeatContext) {
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
        "zero_rows/scores",
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
        "zero_rows/variance",
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
    c.check("zero_rows/local_rows", p == 1 || mine == Ok(want), || {
        format!("{mine:?}, expected {want}")
    });
    // NULL policy: 30 NULLs in x0.
    let nulls = "(SELECT id, CASE WHEN id % 100 = 7 THEN NULL ELSE x0 END AS x0, x1, x2 FROM lowrank)";
    let e = error_of(ctx, &format!("SELECT * FROM pca({nulls}, k => 2, keep => 'id')")).await;
    c.check(
        "nulls/error",
        e.contains("pca: column 'x0' has 30 NULL/NaN values; filter them or pass nulls => 'drop'"),
        || e.clone(),
    );
    let kept: Vec<i64> = (0..LR_ROWS).filter(|i| i % 100 != 7).collect();
    let idx = Tensor::from_slice(&kept);
    let (_, _, scores) = reference(&x.narrow(1, 0, 3).index_select(0, &idx), false);
    close_sql(
        c,
        ctx,
        "nulls/drop",
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
        "nulls/drop/ids",
        ids.as_ref().map(|b| int_column(b, "id")) == Ok(kept),
        || "ids differ".into(),
    );
}

async fn check_sql(c: &mut Checker, ctx: &HeatContext, scratch: &str) {
    // Composition with ordinary SQL: filters, aggregates, joins, aliases, case-insensitive names.
    let want = rows(ctx, "SELECT count(*) AS n FROM raw_scores WHERE pc1 > 0")
        .await
        .map(|b| int_column(&b, "n"));
    let got = rows(
        ctx,
        "SELECT count(*) AS n FROM pca(cancer, k => 2, keep => 'id') WHERE pc1 > 0",
    )
    .await
    .map(|b| int_column(&b, "n"));
    c.check("sql/filter_count", got.is_ok() && got == want, || {
        format!("{got:?} vs {want:?}")
    });
    let got = rows(
        ctx,
        "SELECT p.pc1 AS v FROM PCA(cancer, K => 1, Keep => 'id') AS p ORDER BY p.id LIMIT 1",
    )
    .await;
    let want = rows(ctx, "SELECT pc1 AS v FROM raw_scores ORDER BY id LIMIT 1").await;
    let (got, want) = (
        got.and_then(|b| matrix(&b, &names(&["v"]))),
        want.and_then(|b| matrix(&b, &names(&["v"]))),
    );
    match want {
        Ok(w) => c.close("sql/alias_and_case", got, &w, VECTOR_TOL),
        Err(e) => c.check("sql/alias_and_case", false, || e),
    }
    // pca → loadings table → pca_project reproduces the scores (standardised), joined on id.
    let made = rows(ctx, "CREATE TABLE model AS SELECT * FROM pca(cancer, k => 4, keep => 'id', standardize => true, output => 'loadings')").await;
    c.check("sql/model_table", made.is_ok(), || format!("{made:?}"));
    let diff = rows(
        ctx,
        "SELECT max(abs(a.pc1 - b.pc1) + abs(a.pc4 - b.pc4)) AS d, count(*) AS n \
         FROM pca(cancer, k => 4, keep => 'id', standardize => true) a \
         JOIN pca_project(cancer, model => (SELECT * FROM model), keep => 'id') b ON a.id = b.id",
    )
    .await;
    let ok = diff.as_ref().is_ok_and(|b| {
        let d = matrix(b, &names(&["d"]))
            .map(|t| t.double_value(&[0, 0]))
            .unwrap_or(f64::NAN);
        d < 1e-10 && int_column(b, "n") == vec![569]
    });
    c.check("sql/pca_project_reproduces_scores", ok, || format!("{diff:?}"));
    // columns => maps input columns, in order, onto the model's features.
    let renamed = rows(
        ctx,
        "SELECT max(abs(a.pc1 - b.pc1)) AS d FROM \
         pca_project((SELECT id, mean_radius AS r, mean_texture AS t FROM cancer), model => (SELECT * FROM pca((SELECT mean_radius, mean_texture FROM cancer), k => 1, output => 'loadings')), keep => 'id', columns => 'r, t') a \
         JOIN pca((SELECT id, mean_radius, mean_texture FROM cancer), k => 1, keep => 'id') b ON a.id = b.id",
    )
    .await
    .and_then(|b| matrix(&b, &names(&["d"])));
    c.check(
        "sql/pca_project_columns",
        renamed.as_ref().is_ok_and(|d| d.double_value(&[0, 0]) < 1e-10),
        || format!("{renamed:?}"),
    );
    // The session dtype.
    let typed = async {
        rows(ctx, "SET heatsql.dtype = 'float32'").await?;
        let b = rows(ctx, "SELECT * FROM pca(cancer, k => 1, keep => 'id') LIMIT 1").await;
        rows(ctx, "SET heatsql.dtype = 'float64'").await?;
        b.map(|b| b.first().map(|b| b.schema().field(1).data_type().clone()))
    }
    .await;
    c.check("sql/set_dtype", matches!(typed, Ok(Some(DataType::Float32))), || {
        format!("{typed:?}")
    });
    // EXPLAIN shows the function and the pruned, filtered scan; it runs nothing (this call
    // fails when executed: k > rows).
    let failing = "SELECT * FROM pca((SELECT id, mean_radius, mean_texture, mean_area FROM cancer WHERE id < 2), k => 3, keep => 'id')";
    let plan = rows(ctx, &format!("EXPLAIN {failing}")).await.map(|b| {
        datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .map(|t| t.to_string())
            .unwrap_or_default()
    });
    let ok = plan.as_ref().is_ok_and(|t| {
        t.contains("PcaExec: k=3, solver=covariance (auto)")
            && t.contains("projection=[id, mean_radius, mean_texture, mean_area]")
            && t.contains("predicate=id@0 < 2")
    });
    c.check("sql/explain", ok, || format!("{plan:?}"));
    let e = error_of(ctx, failing).await;
    c.check(
        "sql/explain_ran_nothing",
        e.contains("pca: k = 3 is out of range; expected 1 ≤ k ≤ min(rows, columns) = 2"),
        || e.clone(),
    );
    // COPY TO of scores: one part per rank, every row.
    let out = format!("{scratch}/scores-p{}/", c.comm.size());
    let n = rows(
        ctx,
        &format!("COPY (SELECT * FROM pca(cancer, k => 3, keep => 'id')) TO '{out}' STORED AS PARQUET"),
    )
    .await;
    let back = rows(
        ctx,
        &format!("CREATE EXTERNAL TABLE copied STORED AS PARQUET LOCATION '{out}'"),
    )
    .await;
    let diff = rows(
        ctx,
        "SELECT count(*) AS n, max(abs(c.pc3 - s.pc3)) AS d FROM copied c JOIN raw_scores s ON c.id = s.id",
    )
    .await;
    let ok = n.is_ok()
        && back.is_ok()
        && diff.as_ref().is_ok_and(|b| {
            int_column(b, "n") == vec![569] && matrix(b, &names(&["d"])).is_ok_and(|t| t.double_value(&[0, 0]) < 1e-6)
        });
    c.check("sql/copy_scores", ok, || format!("{n:?} {back:?} {diff:?}"));
    // Device: 'cpu' works; 'cuda' without a GPU is an error on every rank.
    let cpu = rows(
        ctx,
        "SELECT count(*) AS n FROM pca(cancer, k => 1, keep => 'id', device => 'cpu')",
    )
    .await;
    c.check(
        "sql/device_cpu",
        cpu.map(|b| int_column(&b, "n")) == Ok(vec![569]),
        || "device cpu".into(),
    );
    if !tch::Cuda::is_available() {
        let e = error_of(ctx, "SELECT * FROM pca(cancer, k => 1, device => 'cuda')").await;
        c.check("sql/device_cuda_missing", e.to_lowercase().contains("cuda"), || {
            e.clone()
        });
    }
}

async fn check_errors(c: &mut Checker, ctx: &HeatContext) {
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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [fixtures, scratch, rest @ ..] = args.as_slice() else {
        eprintln!("usage: heatsql-function-checks FIXTURES SCRATCH [-v]");
        std::process::exit(2);
    };
    let ctx = HeatContext::new();
    let lowrank = format!("{scratch}/lowrank.parquet");
    if ctx.comm().rank() == 0 {
        std::fs::create_dir_all(scratch).expect("scratch dir");
        write_lowrank(&lowrank);
        write_parquet(&format!("{scratch}/blobs.parquet"), &blobs_batch(), 250);
    }
    ctx.comm().barrier();
    let mut c = Checker::new(rest.iter().any(|a| a == "-v"));
    let mut tables = vec![
        ("cancer".to_string(), format!("{fixtures}/cancer.parquet")),
        ("lowrank".into(), lowrank),
        ("blobs".into(), format!("{scratch}/blobs.parquet")),
    ];
    for m in ["raw", "std"] {
        for t in ["variance", "loadings", "scores"] {
            tables.push((format!("{m}_{t}"), format!("{fixtures}/{m}_{t}.parquet")));
        }
    }
    tables.push(("variance_k".into(), format!("{fixtures}/variance_k.parquet")));
    // The k-means fixture sits beside the PCA one.
    for (name, file) in [
        ("wine", "wine"),
        ("km_init", "init"),
        ("km_centroids", "centroids"),
        ("km_labels", "labels"),
        ("km_summary", "summary"),
    ] {
        tables.push((name.into(), format!("{fixtures}/../kmeans/{file}.parquet")));
    }
    // The DMD fixture too.
    for (name, file) in [
        ("macro", "macro"),
        ("macro_columns", "macro_columns"),
        ("dmd_eigs", "expected_eigs"),
        ("dmd_modes", "expected_modes"),
        ("dmd_series", "expected_series"),
    ] {
        tables.push((name.into(), format!("{fixtures}/../dmd/{file}.parquet")));
    }
    for (name, path) in &tables {
        let r = rows(
            &ctx,
            &format!("CREATE EXTERNAL TABLE {name} STORED AS PARQUET LOCATION '{path}'"),
        )
        .await;
        c.check(&format!("register/{name}"), r.is_ok(), || format!("{r:?}"));
    }
    check_sklearn(&mut c, &ctx).await;
    check_lowrank(&mut c, &ctx).await;
    check_sql(&mut c, &ctx, scratch).await;
    check_errors(&mut c, &ctx).await;
    check_kmeans(&mut c, &ctx).await;
    check_kmeans_seeded(&mut c, &ctx, scratch).await;
    check_svd(&mut c, &ctx).await;
    check_matmul(&mut c, &ctx, scratch).await;
    check_dmd(&mut c, &ctx).await;
    if !c.summary("function checks") {
        std::process::exit(1);
    }
}
