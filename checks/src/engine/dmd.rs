//! `dmd`: `engine::ml::dmd` on a planted linear system against the planted eigenvalues, the
//! true continuation and the single-process reference.

use engine::dndarray::offsets;
use engine::ml::dmd::{DmdOptions, Layout, Rank, fit};
use tch::{Kind, Tensor};

use super::{F64, LAYOUTS, layout, pieces, reference};
use crate::checker::Checker;

/// `ml::dmd` at every row layout (zero-row ranks included), both layouts, on a planted linear
/// system with six modes: eigenvalues recovered within 1e-8 (f64, no noise), the forecast equal
/// to the true continuation and the reconstruction to the input (1e-8 relative), eigenvalues
/// and Φ diag(b) equal to the single-process reference (tch on the gathered snapshots, 1e-8);
/// the continuous-time eigenvalues; rank by energy; and the errors.
/// Collective: the `dmd` subject.
pub fn check(c: &mut Checker) {
    let comm = c.comm;
    let p = comm.size();
    let opts = |rank| DmdOptions { rank, dt: 0.5 };
    // Rows: 53 snapshots of 10 values; columns: 40 state points, 15 snapshots.
    for (layout_kind, state, m) in [(Layout::Rows, 10i64, 53i64), (Layout::Columns, 40, 15)] {
        let (all, planted) = planted_system(state, m + 5, 910 + state);
        let data = all.narrow(0, 0, m); // m × state
        let future = all.narrow(0, m, 5);
        let planted = dmd_order(planted);
        let want_eig =
            Tensor::from_slice(&planted.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>()).reshape([6, 2]);
        let (ref_lambda, ref_weighted) = dmd_reference(&data.tr(), 6);
        let (matrix, split_len) = match layout_kind {
            Layout::Rows => (data.shallow_clone(), m),
            Layout::Columns => (data.tr().contiguous(), state),
        };
        let lname = if layout_kind == Layout::Rows { "rows" } else { "columns" };
        for name in LAYOUTS {
            let tag = format!("dmd/{lname}/{name}");
            let counts = layout(name, split_len, p);
            let a = pieces(comm, &matrix, 0, &counts).expect("pieces");
            let d = match fit(&a, layout_kind, &opts(Rank::Fixed(6))) {
                Ok(d) => d,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            c.close(
                &format!("{tag}/eigenvalues"),
                Ok::<_, String>(ri(&d.eigenvalues)),
                &want_eig,
                1e-8,
            );
            c.close(
                &format!("{tag}/reference_eigenvalues"),
                Ok::<_, String>(ri(&d.eigenvalues)),
                &ri(&ref_lambda),
                1e-8,
            );
            let off = offsets(&counts)[comm.rank()];
            let mine = counts[comm.rank()];
            // Φ diag(b): rows of the state that this rank holds (all of it for Rows).
            let weighted = &d.modes * d.amplitudes.unsqueeze(0);
            let want_w = match layout_kind {
                Layout::Rows => ref_weighted.shallow_clone(),
                Layout::Columns => ref_weighted.narrow(0, off, mine),
            };
            c.close(
                &format!("{tag}/modes_times_amplitudes"),
                Ok::<_, String>(ri(&weighted)),
                &ri(&want_w),
                1e-8,
            );
            let (want_rec, want_fc) = match layout_kind {
                Layout::Rows => (data.narrow(0, off, mine), future.shallow_clone()),
                Layout::Columns => (data.tr().narrow(0, off, mine), future.tr().narrow(0, off, mine)),
            };
            c.close(&format!("{tag}/reconstruction"), d.reconstruction(), &want_rec, 1e-8);
            c.close(&format!("{tag}/forecast"), d.forecast(5), &want_fc, 1e-8);
            let omega = d.continuous_eigenvalues();
            c.close(
                &format!("{tag}/continuous"),
                Ok::<_, String>(ri(&omega)),
                &ri(&(ref_lambda.log() / 0.5)),
                1e-8,
            );
        }
        // Rank by energy: all six modes carry energy, so a fraction just below 1 keeps six.
        let a = pieces(comm, &matrix, 0, &layout("ramp", split_len, p)).expect("pieces");
        let r = fit(&a, layout_kind, &opts(Rank::Energy(1.0 - 1e-12))).map(|d| d.rank());
        c.check(
            &format!("dmd/{lname}/energy"),
            r.as_ref().is_ok_and(|&r| r == 6),
            || format!("{r:?}"),
        );
        let r1 = fit(&a, layout_kind, &opts(Rank::Energy(1e-9))).map(|d| d.rank());
        c.check(
            &format!("dmd/{lname}/energy_small"),
            r1.as_ref().is_ok_and(|&r| r == 1),
            || format!("{r1:?}"),
        );
        let q = state.min(m - 1);
        for (rank, dt, want) in [
            (
                Rank::Fixed(0),
                0.5,
                "dmd: rank = 0 is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1)".to_string(),
            ),
            (
                Rank::Fixed(q + 1),
                0.5,
                format!(
                    "dmd: rank = {} is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1) = {q}",
                    q + 1
                ),
            ),
            (
                Rank::Fixed(7),
                0.5,
                "dmd: rank = 7 exceeds the numerical rank of the snapshots (6)".to_string(),
            ),
            (
                Rank::Energy(1.5),
                0.5,
                "dmd: energy = 1.5 is out of range; expected 0 < energy ≤ 1".to_string(),
            ),
            (Rank::Fixed(2), 0.0, "dmd: dt = 0 must be a positive number".to_string()),
        ] {
            let e = fit(&a, layout_kind, &DmdOptions { rank, dt })
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            c.check(&format!("dmd/{lname}/error/{want}"), e.contains(&want), || e.clone());
        }
    }
    // One snapshot is not a sequence.
    let one = pieces(comm, &reference(&[1, 4], 5, Kind::Double), 0, &layout("last", 1, p)).expect("pieces");
    let e = fit(
        &one,
        Layout::Rows,
        &DmdOptions {
            rank: Rank::Optimal,
            dt: 1.0,
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    c.check(
        "dmd/error/one_snapshot",
        e.contains("dmd: needs at least 2 snapshots; the input has 1"),
        || e.clone(),
    );
}

/// A planted linear system: states s_{k+1} = B s_k with B block-diagonal (rotation-scalings
/// ρ e^{±iθ} and real factors), observed through a random `state` × 6 map: snapshots
/// x_k = M s_k for k < `steps` (as rows, `steps` × `state`), and B's eigenvalues (re, im).
fn planted_system(state: i64, steps: i64, seed: i64) -> (Tensor, Vec<(f64, f64)>) {
    let blocks = [(1.0, 0.3), (0.98, 1.1)];
    let reals = [0.99, 1.01];
    let b = Tensor::zeros([6, 6], F64);
    let mut eig = Vec::new();
    for (i, &(rho, theta)) in blocks.iter().enumerate() {
        let (c0, s0) = (rho * f64::cos(theta), rho * f64::sin(theta));
        let j = 2 * i as i64;
        let _ = b.get(j).get(j).fill_(c0);
        let _ = b.get(j).get(j + 1).fill_(-s0);
        let _ = b.get(j + 1).get(j).fill_(s0);
        let _ = b.get(j + 1).get(j + 1).fill_(c0);
        eig.push((c0, s0));
        eig.push((c0, -s0));
    }
    for (i, &r) in reals.iter().enumerate() {
        let _ = b.get(4 + i as i64).get(4 + i as i64).fill_(r);
        eig.push((r, 0.0));
    }
    let m = reference(&[state, 6], seed, Kind::Double);
    let mut s_k = reference(&[6], seed + 1, Kind::Double) + 1.0;
    let mut rows = Vec::new();
    for _ in 0..steps {
        rows.push(m.matmul(&s_k));
        s_k = b.matmul(&s_k);
    }
    (Tensor::stack(&rows, 0), eig)
}

/// Sorted like `engine::ml::dmd`: |λ| descending, then Im λ descending.
fn dmd_order(mut eig: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    eig.sort_by(|a, b| b.0.hypot(b.1).total_cmp(&a.0.hypot(a.1)).then(b.1.total_cmp(&a.1)));
    eig
}

/// Exact DMD of snapshots as columns (`state` × m) in one process, by the textbook formulas
/// with tch: (λ, Φ diag(b)) in `dmd_order`; Φ diag(b) does not depend on how eigenvectors are
/// scaled.
fn dmd_reference(snapshots: &Tensor, r: i64) -> (Tensor, Tensor) {
    let m = snapshots.size()[1];
    let (x, y) = (snapshots.narrow(1, 0, m - 1), snapshots.narrow(1, 1, m - 1));
    let (u, s, v) = x.svd(true, true);
    let (u, s, v) = (u.narrow(1, 0, r), s.narrow(0, 0, r), v.narrow(1, 0, r));
    let yvs = y.matmul(&v) / s.unsqueeze(0);
    let (lambda, w) = u.tr().matmul(&yvs).linalg_eig();
    let phi = yvs.to_kind(Kind::ComplexDouble).matmul(&w);
    let x0 = snapshots.select(1, 0).to_kind(Kind::ComplexDouble).unsqueeze(1);
    let (b, _, _, _) = phi.linalg_lstsq(&x0, None, "gelsd");
    let re = Vec::<f64>::try_from(lambda.real().contiguous()).expect("re");
    let im = Vec::<f64>::try_from(lambda.imag().contiguous()).expect("im");
    let sorted = dmd_order(re.iter().copied().zip(im.iter().copied()).collect());
    let idx: Vec<i64> = sorted
        .iter()
        .map(|e| (0..re.len()).find(|&i| (re[i], im[i]) == *e).expect("found") as i64)
        .collect();
    let idx = Tensor::from_slice(&idx);
    let weighted = phi * b.squeeze_dim(1).unsqueeze(0);
    (lambda.index_select(0, &idx), weighted.index_select(1, &idx))
}

/// Complex → (…, 2) real, for `close`.
fn ri(t: &Tensor) -> Tensor {
    t.resolve_conj().contiguous().view_as_real().contiguous()
}
