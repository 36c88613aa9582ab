//! `linalg/…`: `engine::linalg` at every row layout (zero-row ranks included) against tch on
//! the gathered matrix: the ring product and Aᵀ·B (`linalg/matmul`), TSQR (`linalg/tsqr`) and
//! the truncated SVD (`linalg/svd`).

use engine::DNDarray;
use tch::{Device, Kind, Tensor};

use super::{LAYOUTS, layout, pieces, reference};
use crate::checker::Checker;

/// `linalg::matmul` (A·B, both row-split: the ring) and `linalg::matmul_tn` (Aᵀ·B) on every
/// pair of row layouts (zero-row ranks included), wide and tall shapes, f64 and f32, against
/// tch on the gathered operands; and their errors.
/// Collective: the `linalg/matmul` subject.
pub fn check_matmul(c: &mut Checker) {
    use engine::linalg::{matmul, matmul_tn};
    let comm = c.comm;
    let p = comm.size();
    // (n, k, m): tall, wide (k > n), fewer rows of B than ranks, a single column.
    for (n, k, m) in [(37i64, 6i64, 5i64), (5, 23, 4), (29, 3, 7), (11, 9, 1)] {
        for kind in [Kind::Double, Kind::Float] {
            let tol = if kind == Kind::Double { 1e-12 } else { 1e-5 };
            let a = reference(&[n, k], 300 + n, kind);
            let b = reference(&[k, m], 400 + k, kind);
            let bt = reference(&[n, m], 500 + m, kind);
            let want = a.to_kind(Kind::Double).matmul(&b.to_kind(Kind::Double));
            let want_tn = a.to_kind(Kind::Double).tr().matmul(&bt.to_kind(Kind::Double));
            for la in LAYOUTS {
                for lb in LAYOUTS {
                    let tag = format!("linalg/matmul/{n}x{k}x{m}/{kind:?}/{la}-{lb}");
                    let da = pieces(comm, &a, 0, &layout(la, n, p)).expect("pieces");
                    let db = pieces(comm, &b, 0, &layout(lb, k, p)).expect("pieces");
                    let got = matmul(&da, &db);
                    let counts_kept = got.as_ref().map(|g| g.counts() == da.counts()).unwrap_or(false);
                    c.check(&format!("{tag}/counts"), counts_kept, || {
                        "result not split like A".into()
                    });
                    c.close(
                        &tag,
                        got.and_then(|g| g.allgather()).map(|t| t.to_kind(Kind::Double)),
                        &want,
                        tol,
                    );
                    let dbt = pieces(comm, &bt, 0, &layout(lb, n, p)).expect("pieces");
                    c.close(
                        &format!("linalg/matmul_tn/{n}x{k}x{m}/{kind:?}/{la}-{lb}"),
                        matmul_tn(&da, &dbt).map(|t| t.to_kind(Kind::Double)),
                        &want_tn,
                        tol,
                    );
                }
            }
        }
    }
    // Errors, the same on every rank.
    let a = pieces(comm, &reference(&[8, 3], 1, Kind::Double), 0, &layout("ramp", 8, p)).expect("pieces");
    let b = pieces(comm, &reference(&[4, 2], 2, Kind::Double), 0, &layout("balanced", 4, p)).expect("pieces");
    let b32 = pieces(comm, &reference(&[3, 2], 3, Kind::Float), 0, &layout("first", 3, p)).expect("pieces");
    let rep = DNDarray::from_replicated(&reference(&[3, 2], 4, Kind::Double), None).expect("replicated");
    for (tag, got, want) in [
        (
            "inner",
            matmul(&a, &b).err(),
            "matmul: cannot multiply 8 × 3 by 4 × 2: inner dimensions must agree (3 ≠ 4)",
        ),
        ("dtype", matmul(&a, &b32).err(), "operands have dtypes Double and Float"),
        (
            "layout",
            matmul(&a, &rep).err(),
            "expected rows × columns split along rows",
        ),
        (
            "tn_rows",
            matmul_tn(&a, &b).err(),
            "Aᵀ·B needs operands with the same rows; they have 8 and 4",
        ),
    ] {
        let msg = got.map(|e: engine::EngineError| e.to_string()).unwrap_or_default();
        c.check(&format!("linalg/matmul/error/{tag}"), msg.contains(want), || {
            msg.clone()
        });
    }
}

/// `linalg::tsqr` and `linalg::tsqr_r` at every row layout (zero-row ranks included): tall
/// with several accumulation blocks per rank (9,000 rows), small, and wide (n < d), against
/// tch's QR of the gathered matrix (R with a non-negative diagonal) within 1e-10; Q·R = A and
/// QᵀQ = I within 1e-10; Q split like A; R-only equals R of the full factorisation (1e-12);
/// the algorithm is CholeskyQR2 for the well-conditioned tall inputs and Householder for the
/// wide one; f32 stays f32. Then `tsqr_conditioning`.
/// Collective: the `linalg/tsqr` subject.
pub fn check_tsqr(c: &mut Checker) {
    use engine::linalg::{QrAlgorithm, tsqr_r_reporting, tsqr_reporting};
    let comm = c.comm;
    let p = comm.size();
    for (n, d) in [(9000i64, 6i64), (37, 5), (4, 9)] {
        let want_how = if n >= d {
            QrAlgorithm::CholeskyQr2
        } else {
            QrAlgorithm::Householder
        };
        let x = reference(&[n, d], 40 + n, Kind::Double);
        let (_, r) = Tensor::linalg_qr(&x, "reduced");
        let signs = r.diagonal(0, 0, 1).ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0;
        let want_r = &r * signs.unsqueeze(1);
        let m = n.min(d);
        for name in LAYOUTS {
            let tag = format!("linalg/tsqr/{n}x{d}/{name}");
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            let r_only = tsqr_r_reporting(&a).map(|(r, how)| {
                c.check(&format!("{tag}/r_only_algorithm"), how == want_how, || {
                    format!("{how:?}, expected {want_how:?}")
                });
                r
            });
            c.close(
                &format!("{tag}/r_only"),
                r_only.as_ref().map(|r| r.shallow_clone()),
                &want_r,
                1e-10,
            );
            match tsqr_reporting(&a) {
                Ok((q, r, how)) => {
                    c.check(&format!("{tag}/algorithm"), how == want_how, || {
                        format!("{how:?}, expected {want_how:?}")
                    });
                    c.close(&format!("{tag}/r"), Ok::<_, String>(r.shallow_clone()), &want_r, 1e-10);
                    if let Ok(r1) = &r_only {
                        c.close(
                            &format!("{tag}/r_only_equals_r"),
                            Ok::<_, String>(r1.shallow_clone()),
                            &r,
                            1e-12,
                        );
                    }
                    c.check(&format!("{tag}/q_split"), q.counts() == a.counts(), || {
                        "Q not split like A".into()
                    });
                    let qg = q.allgather().expect("allgather Q");
                    c.close(&format!("{tag}/qr"), Ok::<_, String>(qg.matmul(&r)), &x, 1e-10);
                    c.close(
                        &format!("{tag}/q_orthonormal"),
                        Ok::<_, String>(qg.tr().matmul(&qg)),
                        &Tensor::eye(m, (Kind::Double, Device::Cpu)),
                        1e-10,
                    );
                }
                Err(e) => c.check(&format!("{tag}/run"), false, || e.to_string()),
            }
        }
    }
    let x = reference(&[5000, 4], 77, Kind::Float);
    let a = pieces(comm, &x, 0, &layout("ramp", 5000, p)).expect("pieces");
    let r = engine::linalg::tsqr_r(&a);
    c.check(
        "linalg/tsqr/f32/kind",
        r.as_ref().map(|r| r.kind() == Kind::Float).unwrap_or(false),
        || format!("{:?}", r.map(|r| r.kind())),
    );
    tsqr_conditioning(c);
}

/// TSQR on known spectra at every row layout: κ = 10⁶ stays on CholeskyQR2, κ = 10¹² and a
/// rank-deficient matrix (rank 3 of 5 columns) fall back to Householder; in every case
/// Q·R = A and QᵀQ = I within 1e-10, σ(R) = σ(A) within 1e-12 (σ₁ = 1), R-only Rᵀ R equals the
/// full factorisation's within 1e-12, and both calls report the algorithm expected.
fn tsqr_conditioning(c: &mut Checker) {
    use engine::linalg::{QrAlgorithm, tsqr_r_reporting, tsqr_reporting};
    let comm = c.comm;
    let p = comm.size();
    let cases: [(&str, &[f64], QrAlgorithm); 3] = [
        (
            "kappa1e6",
            &[1.0, 0.3, 1e-2, 1e-3, 1e-5, 1e-6],
            QrAlgorithm::CholeskyQr2,
        ),
        (
            "kappa1e12",
            &[1.0, 0.1, 1e-3, 1e-6, 1e-9, 1e-12],
            QrAlgorithm::Householder,
        ),
        ("rank3of6", &[1.0, 0.5, 0.25, 0.0, 0.0, 0.0], QrAlgorithm::Householder),
    ];
    let (n, d) = (3000i64, 6i64);
    for (case, sigma, want_how) in cases {
        let x = with_spectrum(n, d, sigma, 900);
        let want_s = Tensor::from_slice(sigma);
        for name in LAYOUTS {
            let tag = format!("linalg/tsqr/{case}/{name}");
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            let (r_only, how_r) = match tsqr_r_reporting(&a) {
                Ok(v) => v,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            let (q, r, how) = match tsqr_reporting(&a) {
                Ok(v) => v,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            c.check(
                &format!("{tag}/algorithm"),
                how == want_how && how_r == want_how,
                || format!("tsqr {how:?}, tsqr_r {how_r:?}, expected {want_how:?}"),
            );
            let qg = q.allgather().expect("allgather Q");
            c.close(&format!("{tag}/qr"), Ok::<_, String>(qg.matmul(&r)), &x, 1e-10);
            c.close(
                &format!("{tag}/q_orthonormal"),
                Ok::<_, String>(qg.tr().matmul(&qg)),
                &Tensor::eye(d, (Kind::Double, Device::Cpu)),
                1e-10,
            );
            c.close(
                &format!("{tag}/singular_values"),
                Ok::<_, String>(r_only.svd(true, true).1),
                &want_s,
                1e-12,
            );
            // R itself is ill-determined at κ = 10¹² (and below the rank); RᵀR = AᵀA is not.
            c.close(
                &format!("{tag}/r_only_gram"),
                Ok::<_, String>(r_only.tr().matmul(&r_only)),
                &r.tr().matmul(&r),
                1e-12,
            );
        }
    }
}

/// `linalg::svd` at every row layout (zero-row ranks included): known spectra (tall and wide,
/// d > n), exact methods against tch on the gathered matrix (σ within 1e-10 relative,
/// reconstruction and orthogonality of U and V within 1e-10), randomized and hierarchical on
/// a rank-3 matrix, f32, and the errors.
/// Collective: the `linalg/svd` subject.
pub fn check_svd(c: &mut Checker) {
    use engine::linalg::{Solver, svd};
    let comm = c.comm;
    let p = comm.size();
    let sigma = [9.0, 4.0, 2.5, 1.0, 0.5, 0.25, 0.125, 0.0625];
    let eye = |k: i64| Tensor::eye(k, (Kind::Double, Device::Cpu));
    // Full rank tall, full rank wide (d > n), and rank 3 of 30 (where every method is exact).
    for (n, d, rank) in [(61i64, 8i64, 8usize), (6, 15, 6), (40, 30, 3)] {
        let x = with_spectrum(n, d, &sigma[..rank], 700 + n);
        let k = rank as i64;
        // torch.svd (reduced) of the gathered matrix: (U, S, V).
        let (bu, want_s, bv) = x.svd(true, true);
        let methods = [
            ("tsqr", Solver::Tsqr, k, 1e-10),
            ("auto", Solver::Auto, k, 1e-10),
            (
                "randomized",
                Solver::Randomized {
                    oversamples: 5,
                    power_iter: 2,
                    seed: 3,
                },
                k,
                1e-8,
            ),
            ("hierarchical", Solver::Hierarchical { oversamples: 2 }, k, 1e-8),
        ];
        for name in LAYOUTS {
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            for (mname, method, k, tol) in &methods {
                let tag = format!("linalg/svd/{n}x{d}/{mname}/{name}");
                let r = match svd(&a, *k, *method, true) {
                    Ok(r) => r,
                    Err(e) => {
                        c.check(&format!("{tag}/run"), false, || e.to_string());
                        continue;
                    }
                };
                c.close(
                    &format!("{tag}/s"),
                    Ok::<_, String>(r.s.shallow_clone()),
                    &want_s.narrow(0, 0, *k),
                    *tol,
                );
                let Some(du) = r.u.as_ref() else {
                    c.check(&format!("{tag}/u"), false, || "no U".into());
                    continue;
                };
                let u = du.allgather().expect("allgather U");
                let approx = u.matmul(&r.s.diag(0)).matmul(&r.v.tr());
                let kk = *k;
                let want_x = bu
                    .narrow(1, 0, kk)
                    .matmul(&want_s.narrow(0, 0, kk).diag(0))
                    .matmul(&bv.narrow(1, 0, kk).tr());
                c.close(&format!("{tag}/reconstruction"), Ok::<_, String>(approx), &want_x, *tol);
                c.close(
                    &format!("{tag}/u_orthonormal"),
                    Ok::<_, String>(u.tr().matmul(&u)),
                    &eye(kk),
                    *tol,
                );
                c.close(
                    &format!("{tag}/v_orthonormal"),
                    Ok::<_, String>(r.v.tr().matmul(&r.v)),
                    &eye(kk),
                    *tol,
                );
                c.check(&format!("{tag}/u_split"), du.counts() == a.counts(), || {
                    "U not split like X".into()
                });
            }
        }
    }
    // f32: U in float32, σ close to the f64 values.
    let x = with_spectrum(50, 7, &sigma[..6], 900);
    let a = pieces(comm, &x.to_kind(Kind::Float), 0, &layout("ramp", 50, p)).expect("pieces");
    let r = svd(&a, 4, Solver::Tsqr, true);
    c.check(
        "linalg/svd/f32/kind",
        r.as_ref()
            .map(|r| r.u.as_ref().map(|u| u.kind()) == Some(Kind::Float))
            .unwrap_or(false),
        || "U dtype".into(),
    );
    let no_u = svd(&a, 4, Solver::Tsqr, false);
    c.check(
        "linalg/svd/without_u",
        no_u.as_ref().map(|r| r.u.is_none()).unwrap_or(false),
        || "U computed".into(),
    );
    c.close(
        "linalg/svd/f32/s",
        r.map(|r| r.s),
        &Tensor::from_slice(&sigma[..4]),
        1e-5,
    );
    // Errors, the same on every rank.
    let a = pieces(comm, &x, 0, &layout("balanced", 50, p)).expect("pieces");
    for (k, method, want) in [
        (0, Solver::Tsqr, "svd: k = 0 is out of range; expected k ≥ 1"),
        (8, Solver::Auto, "svd: k = 8 exceeds min(rows, columns) = 7"),
        (
            2,
            Solver::Hierarchical { oversamples: -1 },
            "svd: oversamples and power_iter must be ≥ 0",
        ),
    ] {
        let msg = svd(&a, k, method, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        c.check(&format!("linalg/svd/error/{want}"), msg.contains(want), || msg.clone());
    }
}

/// A known-spectrum matrix: Q₁ diag(σ) Q₂ᵀ (n × d) with orthonormal Q₁ (n × r), Q₂ (d × r).
fn with_spectrum(n: i64, d: i64, sigma: &[f64], seed: i64) -> Tensor {
    let r = sigma.len() as i64;
    let (q1, _) = Tensor::linalg_qr(&reference(&[n, r], seed, Kind::Double), "reduced");
    let (q2, _) = Tensor::linalg_qr(&reference(&[d, r], seed + 1, Kind::Double), "reduced");
    q1.matmul(&Tensor::from_slice(sigma).diag(0)).matmul(&q2.tr())
}
