//! `dmd` through SQL against the PyDMD fixture on the macroeconomic series (heatsql/tests/
//! fixtures/dmd, rows scrambled so `order_by` sorts them across ranks): eigenvalues, |b|, the
//! modes (as w wᴴ per mode, w = Φ b), frequency and growth rate from the order_by step (0.25),
//! the reconstruction in global time order and the forecast with the extrapolated time, for a
//! fixed rank, PyDMD's optimal threshold and an energy fraction; the columns layout on the
//! transposed table (one row group: at P > 1 ranks start without rows); a timestamp axis; fewer
//! snapshots than ranks. The errors are in sql-tests/slt/functions.slt.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use heatsql::HeatContext;
use tch::{Kind, Tensor};

use super::{close_or_fail, int_column, matrix, names, rows};
use crate::checker::Checker;

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

/// The 12 series' names.
fn series() -> Vec<String> {
    MACRO.iter().map(|s| s.to_string()).collect()
}

/// Collective. The `dmd` subject.
pub async fn check(c: &mut Checker, ctx: &HeatContext) {
    settings(c, ctx).await;
    columns(c, ctx).await;
    timestamp(c, ctx).await;
    few_snapshots(c, ctx).await;
}

/// The rows layout against PyDMD for a fixed rank, PyDMD's optimal threshold and an energy
/// fraction: eigenvalues, frequency and growth rate, modes, reconstruction, forecast.
async fn settings(c: &mut Checker, ctx: &HeatContext) {
    let series = series();
    let list = MACRO.join(", ");
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
}

/// The columns layout: one row per series, the quarters as columns (PyDMD's own layout).
async fn columns(c: &mut Checker, ctx: &HeatContext) {
    let series = series();
    let quarters: Vec<String> = (0..203).map(|k| format!("q{k:03}")).collect();
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
}

/// A timestamp axis: the quarters as instants 90 days (7,776,000 s) apart, scrambled like
/// `macro`. dt defaults to the step in seconds, so the eigenvalues are PyDMD's and the rates are
/// per second; the forecast extrapolates the timestamps.
async fn timestamp(c: &mut Checker, ctx: &HeatContext) {
    let series = series();
    let list = MACRO.join(", ");
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
}

/// Three snapshots (fewer than ranks at P = 4): against tch on the gathered snapshots.
async fn few_snapshots(c: &mut Checker, ctx: &HeatContext) {
    let series = series();
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
}
