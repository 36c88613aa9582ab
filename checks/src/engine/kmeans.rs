//! `kmeans`: `engine::ml::kmeans` at every row layout on planted blobs (every initialisation:
//! ARI, inertia, sizes, the same centroids whatever the layout), from given centroids against
//! the single-process Lloyd reference step for step (also by tensor operations), and the errors.

use engine::ml::kmeans::{Init, KMeansOptions, fit, predict};
use tch::{Device, Kind, Tensor};

use super::{LAYOUTS, layout, pieces, reference};
use crate::checker::{Checker, adjusted_rand};

/// Rows of the blobs.
const N: i64 = 403;

/// Collective. The `kmeans` subject.
pub fn check(c: &mut Checker) {
    let (centers, truth, x) = blobs();
    initialisations(c, &x, &truth);
    given(c, &centers);
    errors(c, &x);
}

/// Four planted, well-separated blobs in 3-d: 403 rows, row i in blob i % 4: (centres, blob
/// of each row, rows).
fn blobs() -> (Tensor, Vec<i64>, Tensor) {
    let n = N;
    let centers = Tensor::from_slice(&[10.0, 0.0, 0.0, -10.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, -10.0]).view([4, 3]);
    let truth: Vec<i64> = (0..n).map(|i| i % 4).collect();
    let x = centers.index_select(0, &Tensor::from_slice(&truth)) + reference(&[n, 3], 400, Kind::Double) * 0.5;
    (centers, truth, x)
}

/// Four clusters, 100 iterations, tolerance 1e-4, three draws.
fn opts(init: Init, seed: u64) -> KMeansOptions {
    KMeansOptions {
        k: 4,
        init,
        max_iter: 100,
        tol: 1e-4,
        seed,
        n_init: 3,
        progress: false,
    }
}

/// Single-process Lloyd from `init` with scikit-learn's tolerance: (centroids, iterations,
/// inertia of the final assignment).
fn lloyd_reference(x: &Tensor, init: &Tensor, max_iter: usize, tol: f64) -> (Tensor, usize, f64) {
    let tol = tol * x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let dist = |c: &Tensor| {
        (x.square().sum_dim_intlist(1, true, Kind::Double) - x.matmul(&c.tr()) * 2.0
            + c.square().sum_dim_intlist(1, false, Kind::Double).unsqueeze(0))
        .clamp_min(0.0)
    };
    let mut c = init.shallow_clone();
    let mut it = 0;
    while it < max_iter {
        let label = dist(&c).argmin(1, false);
        let k = c.size()[0];
        let sums = Tensor::zeros_like(&c).index_add(0, &label, x);
        let counts = Tensor::zeros([k], (Kind::Double, Device::Cpu)).index_add(0, &label, &x.ones_like().select(1, 0));
        let new = sums / counts.clamp_min(1.0).unsqueeze(1);
        let shift = (&new - &c).square().sum(Kind::Double).double_value(&[]);
        c = new;
        it += 1;
        if shift <= tol {
            break;
        }
    }
    let inertia = dist(&c)
        .amin([1i64].as_slice(), false)
        .sum(Kind::Double)
        .double_value(&[]);
    (c, it, inertia)
}

/// Every initialisation at every layout: ARI ≥ 0.99, inertia = Σ distance², sizes add up, and
/// the same seed gives the same centroids whatever the split of the rows.
fn initialisations(c: &mut Checker, x: &Tensor, truth: &[i64]) {
    let comm = c.comm;
    let p = comm.size();
    let n = N;
    for init_name in ["k-means||", "k-means++", "random"] {
        let mut results: Vec<Vec<f64>> = Vec::new();
        for name in LAYOUTS {
            let a = pieces(comm, x, 0, &layout(name, n, p)).expect("pieces");
            let init = match init_name {
                "k-means||" => Init::Parallel {
                    rounds: 5,
                    oversampling: 2.0,
                },
                "k-means++" => Init::PlusPlus,
                _ => Init::Random,
            };
            let tag = format!("kmeans/{init_name}/{name}");
            let model = match fit(&a, &opts(init, 7)) {
                Ok(m) => m,
                Err(e) => {
                    c.check(&format!("{tag}/fit"), false, || e.to_string());
                    continue;
                }
            };
            let labels = predict(&a, &model.centroids).and_then(|(l, d)| Ok((l.allgather()?, d.allgather()?)));
            let Ok((labels, dists)) = labels else {
                c.check(&format!("{tag}/predict"), false, || "predict failed".into());
                continue;
            };
            let labels: Vec<i64> = Vec::try_from(&labels).unwrap_or_default();
            let ari = adjusted_rand(&labels, truth);
            c.check(&format!("{tag}/ari"), ari >= 0.99, || format!("ARI {ari}"));
            let direct = dists.square().sum(Kind::Double).double_value(&[]);
            c.check(
                &format!("{tag}/inertia"),
                (model.inertia - direct).abs() <= 1e-10 * direct,
                || format!("inertia {} vs Σ distance² {direct}", model.inertia),
            );
            c.check(&format!("{tag}/sizes"), model.sizes.iter().sum::<i64>() == n, || {
                format!("{:?}", model.sizes)
            });
            results.push(Vec::try_from(&model.centroids.reshape([-1])).unwrap_or_default());
        }
        // The same seed gives the same centroids whatever the split of the rows.
        let same = results.windows(2).all(|w| {
            w[0].len() == w[1].len()
                && w[0]
                    .iter()
                    .zip(&w[1])
                    .all(|(a, b)| (a - b).abs() <= 1e-10 * (1.0 + a.abs()))
        });
        c.check(
            &format!("kmeans/{init_name}/layouts_agree"),
            same && results.len() == LAYOUTS.len(),
            || format!("{results:?}"),
        );
    }
}

/// Given initial centroids: the single-process Lloyd reference, step for step.
fn given(c: &mut Checker, centers: &Tensor) {
    let comm = c.comm;
    let p = comm.size();
    let overlapping =
        reference(&[257, 5], 401, Kind::Double) + centers.narrow(1, 0, 1).repeat([65, 5]).narrow(0, 0, 257) * 0.2;
    let init = overlapping.narrow(0, 0, 6).shallow_clone();
    let (want_c, want_it, want_inertia) = lloyd_reference(&overlapping, &init, 300, 1e-6);
    for name in LAYOUTS {
        let a = pieces(comm, &overlapping, 0, &layout(name, 257, p)).expect("pieces");
        let given = || KMeansOptions {
            k: 6,
            init: Init::Centroids(init.shallow_clone()),
            max_iter: 300,
            tol: 1e-6,
            seed: 0,
            n_init: 1,
            progress: false,
        };
        // Also by tensor operations (the path of non-CPU devices) for the first layout; the
        // run's own policy (HEATSQL_CPU_KERNELS) otherwise.
        let policy = engine::kernels::policy();
        for tensor_path in [false, true] {
            if tensor_path && name != LAYOUTS[0] {
                continue;
            }
            if tensor_path {
                engine::kernels::set_policy(engine::kernels::Policy::TensorOnly);
            }
            let tag = format!("kmeans/given/{name}{}", if tensor_path { "/tensor_path" } else { "" });
            let result = fit(&a, &given());
            engine::kernels::set_policy(policy);
            match result {
                Ok(m) => {
                    c.close(
                        &format!("{tag}/centroids"),
                        Ok::<_, String>(m.centroids.shallow_clone()),
                        &want_c,
                        1e-10,
                    );
                    c.check(&format!("{tag}/iterations"), m.iterations == want_it, || {
                        format!("{} iterations, reference {want_it}", m.iterations)
                    });
                    c.check(
                        &format!("{tag}/inertia"),
                        (m.inertia - want_inertia).abs() <= 1e-10 * want_inertia,
                        || format!("{} vs {want_inertia}", m.inertia),
                    );
                }
                Err(e) => c.check(&format!("{tag}/fit"), false, || e.to_string()),
            }
        }
    }
}

/// Errors, the same on every rank.
fn errors(c: &mut Checker, x: &Tensor) {
    let comm = c.comm;
    let p = comm.size();
    let n = N;
    let a = pieces(comm, x, 0, &layout("ramp", n, p)).expect("pieces");
    for (o, want) in [
        (
            KMeansOptions {
                k: 0,
                ..opts(Init::Random, 1)
            },
            "k = 0 is out of range",
        ),
        (
            KMeansOptions {
                k: n + 1,
                ..opts(Init::Random, 1)
            },
            "k = 404 is out of range; expected 1 ≤ k ≤ the number of rows (403)",
        ),
        (
            KMeansOptions {
                tol: -1.0,
                ..opts(Init::Random, 1)
            },
            "tol = -1 must be a finite value ≥ 0",
        ),
        (
            KMeansOptions {
                init: Init::Centroids(Tensor::zeros([4, 2], (Kind::Double, Device::Cpu))),
                ..opts(Init::Random, 1)
            },
            "initial centroids have shape [4, 2]; expected 4 × 3",
        ),
    ] {
        let msg = fit(&a, &o).err().map(|e| e.to_string()).unwrap_or_default();
        c.check(&format!("kmeans/error/{want}"), msg.contains(want), || msg.clone());
    }
}
