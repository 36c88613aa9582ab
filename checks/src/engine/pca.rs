//! `pca`: `engine::ml::pca` at every row layout (zero-row ranks included) against the
//! single-process reference on the gathered matrix: the exact solvers (covariance, TSQR, auto;
//! raw and standardised), projections in place and into new memory, k from a variance fraction,
//! randomized and hierarchical on low-rank data, the hierarchical error estimate, f32, and the
//! errors.

use engine::DNDarray;
use engine::ml::pca::{Components, PcaOptions, Solver, fit, project, project_into, transform};
use tch::{Kind, Tensor};

use super::{LAYOUTS, layout, pieces, reference};
use crate::checker::Checker;

/// Collective. The `pca` subject.
pub fn check(c: &mut Checker) {
    let x = planted();
    exact_solvers(c, &x);
    low_rank(c);
    error_bound(c, &x);
    f32_and_errors(c, &x);
}

/// A planted, well-separated spectrum (f64): 61 rows × 6 columns, full rank.
fn planted() -> Tensor {
    let sv = [10.0, 6.0, 4.0, 2.0, 1.0, 0.5];
    let z = reference(&[61, 6], 300, Kind::Double);
    let (m, _) = Tensor::linalg_qr(&reference(&[6, 6], 301, Kind::Double), "reduced");
    z.matmul(&Tensor::diag_embed(&Tensor::from_slice(&sv), 0, 0, 1))
        .matmul(&m.tr())
        + reference(&[1, 6], 302, Kind::Double) * 3.0
}

/// Exact options with three components, not standardised.
fn exact(solver: Solver) -> PcaOptions {
    PcaOptions {
        components: Components::Count(3),
        solver,
        standardize: false,
    }
}

/// The single-process reference PCA of the whole `x`: (explained variance, ratio, components
/// with the sign convention, scores), all components.
fn pca_reference(x: &Tensor, standardize: bool) -> (Tensor, Tensor, Tensor, Tensor) {
    let n = x.size()[0] as f64;
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let xs = if standardize {
        let sd = (xc.square().sum_dim_intlist(0, true, Kind::Double) / n).sqrt();
        &xc / sd
    } else {
        xc
    };
    let (_, s, v) = xs.svd(true, true);
    let (_, v) = engine::linalg::flip_signs(&v);
    let ev = s.square() / (n - 1.0);
    let total = xs.var_dim(0, true, false).sum(Kind::Double);
    let ratio = &ev / total;
    let scores = xs.matmul(&v);
    (ev, ratio, v, scores)
}

/// The exact solvers, raw and standardised, at every layout: spectrum, ratio, components,
/// scores, projections; then k from a variance fraction.
fn exact_solvers(c: &mut Checker, x: &Tensor) {
    let comm = c.comm;
    let p = comm.size();
    for standardize in [false, true] {
        let (ev, ratio, v, scores) = pca_reference(x, standardize);
        for name in LAYOUTS {
            let counts = layout(name, 61, p);
            let Ok(a) = pieces(comm, x, 0, &counts) else {
                c.check("pca/pieces", false, || "pieces".into());
                continue;
            };
            for solver in [Solver::Covariance, Solver::Tsqr, Solver::Auto] {
                let tag = format!("pca/{}/{name}/std={standardize}", solver.name());
                let opts = PcaOptions {
                    standardize,
                    ..exact(solver)
                };
                let model = fit(&a, &opts);
                let ok = model.is_ok();
                c.check(&format!("{tag}/fit"), ok, || format!("{:?}", model.as_ref().err()));
                let Ok(model) = model else { continue };
                // Exact solvers in f64: 1e-10 relative on the spectrum, 1e-8 on vectors/scores.
                c.close(
                    &format!("{tag}/explained_variance"),
                    Ok::<_, String>(model.explained_variance.shallow_clone()),
                    &ev.narrow(0, 0, 3),
                    1e-10,
                );
                c.close(
                    &format!("{tag}/ratio"),
                    Ok::<_, String>(model.explained_variance_ratio.shallow_clone()),
                    &ratio.narrow(0, 0, 3),
                    1e-10,
                );
                c.close(
                    &format!("{tag}/components"),
                    Ok::<_, String>(model.components.shallow_clone()),
                    &v.narrow(1, 0, 3),
                    1e-8,
                );
                let t = transform(&a, &model).and_then(|t| t.allgather());
                c.close(&format!("{tag}/scores"), t, &scores.narrow(1, 0, 3), 1e-8);
                // In place over a copy of the rows (d = 6 ≥ 2k), and into new memory (k = 4).
                for k in [3, 4] {
                    let comps = if k == 3 {
                        model.components.shallow_clone()
                    } else {
                        Tensor::cat(&[&model.components, &model.components.narrow(1, 0, 1)], 1)
                    };
                    let mine = project(&a, &model.mean, &model.scale, &comps).map(|t| t.local().tr().contiguous());
                    // Row-major rows, and column-major (as convert::load lays out tables).
                    for (order, local) in [
                        ("rows", a.local().copy()),
                        ("columns", a.local().tr().contiguous().tr()),
                    ] {
                        let copy = DNDarray::from_pieces(local, 0);
                        let got = copy.and_then(|x| project_into(x, &model.mean, &model.scale, &comps));
                        let name = format!("{tag}/project_into/{order}/k={k}");
                        match &mine {
                            // The same product, summed in another order for column-major input.
                            Ok(want) => c.close(&name, got.map(|t| t.contiguous()), want, 1e-12),
                            Err(e) => c.check(&name, false, || e.to_string()),
                        }
                    }
                }
            }
        }
        // k from a variance fraction: the fewest components reaching it.
        let want_k = {
            let cum: Vec<f64> = Vec::try_from(&ratio.cumsum(0, Kind::Double)).unwrap_or_default();
            cum.iter().position(|&q| q >= 0.95).map_or(6, |i| i + 1) as i64
        };
        let a = pieces(comm, x, 0, &layout("ramp", 61, p)).expect("pieces");
        let opts = PcaOptions {
            components: Components::Variance(0.95),
            solver: Solver::Covariance,
            standardize,
        };
        let got = fit(&a, &opts).map(|m| m.k());
        c.check(
            &format!("pca/variance-0.95/std={standardize}"),
            got.as_ref().ok() == Some(&want_k),
            || format!("k = {got:?}, expected {want_k}"),
        );
    }
}

/// Randomized and hierarchical on low-rank data.
fn low_rank(c: &mut Checker) {
    let comm = c.comm;
    let p = comm.size();
    // Randomized on low-rank data (rank 3 plus 1e-12 noise, 8 columns): the principal
    // subspace within an angle of 1e-6, and the same components (signs included).
    let lr = reference(&[53, 3], 310, Kind::Double)
        .matmul(&Tensor::diag_embed(&Tensor::from_slice(&[5.0, 3.0, 2.0]), 0, 0, 1))
        .matmul(&reference(&[3, 8], 311, Kind::Double))
        + reference(&[53, 8], 312, Kind::Double) * 1e-12;
    let (_, _, v_ref, _) = pca_reference(&lr, false);
    let v_ref = v_ref.narrow(1, 0, 3);
    for name in LAYOUTS {
        let a = pieces(comm, &lr, 0, &layout(name, 53, p)).expect("pieces");
        for solver in [
            Solver::Randomized {
                oversamples: 4,
                power_iter: 2,
                seed: 7,
            },
            Solver::Hierarchical { oversamples: 0 },
            Solver::Hierarchical { oversamples: 2 },
        ] {
            let opts = PcaOptions {
                components: Components::Count(3),
                solver,
                standardize: false,
            };
            let tag = match solver {
                Solver::Hierarchical { oversamples } => format!("pca/hierarchical-{oversamples}/{name}"),
                _ => format!("pca/{}/{name}", solver.name()),
            };
            match fit(&a, &opts) {
                Ok(model) => {
                    if matches!(solver, Solver::Hierarchical { .. }) {
                        // Rank-3 data: what the truncations drop is the 1e-12 noise.
                        let est = model.error_estimate.unwrap_or(f64::NAN);
                        c.check(&format!("{tag}/error_estimate"), est < 1e-9, || format!("{est:e}"));
                    }
                    let cosines = v_ref.tr().matmul(&model.components).svd(true, true).1;
                    let angle = cosines.min().double_value(&[]).clamp(-1.0, 1.0).acos();
                    c.check(&format!("{tag}/angle"), angle < 1e-6, || {
                        format!("largest principal angle {angle:e}")
                    });
                    c.close(
                        &format!("{tag}/components"),
                        Ok::<_, String>(model.components.shallow_clone()),
                        &v_ref,
                        1e-6,
                    );
                }
                Err(e) => c.check(&format!("{tag}/fit"), false, || e.to_string()),
            }
        }
    }
}

/// Hierarchical on full-rank data: its error estimate bounds the true relative error of the
/// rank-3 approximation from above (equal at P = 1, where nothing is merged), and the
/// exact solvers report none.
fn error_bound(c: &mut Checker, x: &Tensor) {
    let comm = c.comm;
    let p = comm.size();
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let s_all = xc.svd(true, true).1;
    let total = s_all.square().sum(Kind::Double).double_value(&[]);
    let best = (s_all.narrow(0, 3, 3).square().sum(Kind::Double).double_value(&[]) / total).sqrt();
    let a = pieces(comm, x, 0, &layout("ramp", 61, p)).expect("pieces");
    let got = fit(&a, &exact(Solver::Hierarchical { oversamples: 0 })).map(|m| m.error_estimate);
    let ok = matches!(got, Ok(Some(e)) if e >= best * (1.0 - 1e-10) && (p > 1 || (e - best).abs() <= 1e-10 * best));
    c.check("pca/hierarchical/error_bound", ok, || {
        format!("estimate {got:?}, best rank-3 error {best:e}")
    });
    let none = fit(&a, &exact(Solver::Covariance)).map(|m| m.error_estimate);
    c.check("pca/covariance/no_estimate", matches!(none, Ok(None)), || {
        format!("{none:?}")
    });
}

/// f32, and the errors.
fn f32_and_errors(c: &mut Checker, x: &Tensor) {
    let comm = c.comm;
    let p = comm.size();
    // f32: covariance within 1e-4 relative of the f64 reference.
    let (ev, _, _, _) = pca_reference(x, false);
    let a = pieces(comm, &x.to_kind(Kind::Float), 0, &layout("first", 61, p)).expect("pieces");
    let got = fit(&a, &exact(Solver::Covariance)).map(|m| m.explained_variance.to_kind(Kind::Double));
    c.close("pca/f32/explained_variance", got, &ev.narrow(0, 0, 3), 1e-4);
    // Errors, the same on every rank.
    let a = pieces(comm, x, 0, &layout("last", 61, p)).expect("pieces");
    for (k, want) in [
        (0, "k = 0 is out of range"),
        (7, "k = 7 is out of range; expected 1 ≤ k ≤ min(rows, columns) = 6"),
    ] {
        let got = fit(
            &a,
            &PcaOptions {
                components: Components::Count(k),
                ..exact(Solver::Tsqr)
            },
        );
        let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
        c.check(&format!("pca/error/k={k}"), msg.contains(want), || msg.clone());
    }
    let got = fit(
        &a,
        &PcaOptions {
            components: Components::Variance(0.9),
            solver: Solver::Randomized {
                oversamples: 2,
                power_iter: 1,
                seed: 1,
            },
            standardize: false,
        },
    );
    let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
    c.check(
        "pca/error/variance-randomized",
        msg.contains("pca: a fraction of the variance needs every component, which the randomized solver"),
        || msg.clone(),
    );
}
