//! One operation of the scaling report at one rank count: load and compute timed separately,
//! peak memory per rank. Driven by `heatsql-bench-report` (`src/report/`), one process set per
//! operation so each peak is that operation's own.
//!
//! `mpirun -n P heatsql-bench-scaling OP FILE ROUNDS [K] [INIT]` with OP one of `load`, `pca`,
//! `svd`, `kmeans`, `dmd`, `matmul` and FILE a Parquet file of Float64 columns (rows × d, rows
//! split over the ranks by row groups). Each of ROUNDS rounds (the first is the warm-up) loads
//! the table into a row-split DNDarray (`SELECT * FROM t` → `to_dndarray`) and then runs:
//!
//! * `load`: nothing more;
//! * `pca`: `engine::ml::pca::fit` (solver `auto`, K components) and the scores (`transform`);
//! * `svd`: `engine::linalg::svd`, method `tsqr`, K singular triplets with U (U stays split);
//! * `kmeans`: `engine::ml::kmeans::fit`, K clusters from the centroids in INIT, exactly 20
//!   Lloyd iterations (`tol = 0`);
//! * `dmd`: `engine::ml::dmd::fit`, columns layout (one state point per row, time along the
//!   columns), rank K;
//! * `matmul`: `engine::linalg::matmul` of the square table with itself (both operands
//!   row-split: the ring).
//!
//! Rank 0 prints one JSON object on one line (`{"op": …}`): every round's load and compute
//! seconds, each rank's rows and peak resident memory (`getrusage`), the threads per rank, the
//! nominal floating-point operations and bytes of the compute step, and a `check` value (σ₁,
//! inertia, |λ₁|, …) that must agree across rank counts.

use std::path::PathBuf;
use std::time::Instant;

use engine::linalg::{Solver, matmul, svd};
use engine::ml::{dmd, kmeans, pca};
use engine::{DNDarray, ReduceOp};
use heatsql::HeatContext;
use heatsql::convert::LoadSpec;
use serde_json::json;
use tch::{Kind, Tensor};

/// Lloyd iterations of the k-means step.
const KMEANS_ITERATIONS: usize = 20;

/// What the compute step did: its check value and nominal work.
struct Done {
    /// A scalar that must agree across rank counts.
    check: f64,
    /// Nominal floating-point operations (None where flops mean little).
    flops: Option<f64>,
}

/// Σ of every entry of the row-split `x` (one allreduce).
fn global_sum(x: &DNDarray) -> f64 {
    let local = x.local().sum(Kind::Double).double_value(&[]);
    x.comm().allreduce(&[local], ReduceOp::Sum).expect("allreduce")[0]
}

fn compute(op: &str, x: &DNDarray, k: i64, init: Option<&Tensor>) -> Done {
    let (n, d) = (x.gshape()[0] as f64, x.gshape()[1] as f64);
    match op {
        "load" => Done {
            check: global_sum(x),
            flops: None,
        },
        "pca" => {
            let opts = pca::PcaOptions {
                components: pca::Components::Count(k),
                solver: pca::Solver::Auto,
                standardize: false,
            };
            let model = pca::fit(x, &opts).expect("pca");
            let scores = pca::transform(x, &model).expect("scores");
            drop(scores);
            Done {
                check: model.explained_variance_ratio.sum(Kind::Double).double_value(&[]),
                flops: None,
            }
        }
        "svd" => {
            let r = svd(x, k, Solver::Tsqr, true).expect("svd");
            Done {
                check: r.s.double_value(&[0]),
                flops: None,
            }
        }
        "kmeans" => {
            let opts = kmeans::KMeansOptions {
                k,
                init: kmeans::Init::Centroids(init.expect("kmeans needs INIT").shallow_clone()),
                max_iter: KMEANS_ITERATIONS,
                tol: 0.0,
                seed: 0,
                n_init: 1,
                progress: false,
            };
            let model = kmeans::fit(x, &opts).expect("kmeans");
            // Distances by one GEMM per iteration: 2·n·k·d.
            Done {
                check: model.inertia,
                flops: Some(2.0 * n * k as f64 * d * model.iterations as f64),
            }
        }
        "dmd" => {
            let opts = dmd::DmdOptions {
                rank: dmd::Rank::Fixed(k),
                dt: 1.0,
            };
            let model = dmd::fit(x, dmd::Layout::Columns, &opts).expect("dmd");
            Done {
                check: model.eigenvalues.abs().max().double_value(&[]),
                flops: None,
            }
        }
        "matmul" => {
            let c = matmul(x, x).expect("matmul");
            Done {
                check: global_sum(&c),
                flops: Some(2.0 * n * n * d),
            }
        }
        other => panic!("unknown operation {other}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    engine::memory::retain_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, file, rounds, rest @ ..] = args.as_slice() else {
        eprintln!("usage: heatsql-bench-scaling OP FILE ROUNDS [K] [INIT]");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse::<usize>().expect("ROUNDS").max(2);
    let k: i64 = rest.first().map(|s| s.parse().expect("K")).unwrap_or(8);
    let ctx = HeatContext::new();
    let comm = ctx.comm();
    let (p, me) = (comm.size(), comm.rank());
    let mut spec = LoadSpec::new(op);
    spec.expected_rows = benches::open_table(&ctx, "t", &PathBuf::from(file)).await;
    let init = match rest.get(1) {
        Some(path) => {
            benches::open_table(&ctx, "init", &PathBuf::from(path)).await;
            let loaded = benches::load(&ctx, "SELECT * FROM init", &LoadSpec::new("kmeans")).await;
            Some(loaded.array.allgather().expect("gather init"))
        }
        None => None,
    };
    let (mut load_s, mut compute_s) = (Vec::new(), Vec::new());
    let (mut done, mut shape, mut local_rows) = (None, (0, 0), 0);
    for _ in 0..rounds {
        comm.barrier();
        let t = Instant::now();
        let loaded = benches::load(&ctx, "SELECT * FROM t", &spec).await;
        comm.barrier();
        load_s.push(t.elapsed().as_secs_f64());
        let x = loaded.array;
        shape = (x.gshape()[0], x.gshape()[1]);
        local_rows = x.lshape()[0];
        let t = Instant::now();
        done = Some(compute(op, &x, k, init.as_ref()));
        comm.barrier();
        compute_s.push(t.elapsed().as_secs_f64());
    }
    let done = done.expect("at least one round");
    let (n, d) = shape;
    // Bytes the compute step must read at least once: the row-split operand.
    let bytes = (n * d * 8) as f64;
    let mine = [local_rows, benches::peak_rss() as i64];
    let all = comm.allgather(&mine).expect("allgather");
    if me == 0 {
        let line = json!({
            "op": op,
            "ranks": p,
            "threads": tch::get_num_threads(),
            "rows": n,
            "cols": d,
            "k": k,
            "load_s": load_s,
            "compute_s": compute_s,
            "local_rows": all.iter().step_by(2).collect::<Vec<_>>(),
            "peak_rss_bytes": all.iter().skip(1).step_by(2).collect::<Vec<_>>(),
            "check": done.check,
            "flops": done.flops,
            "bytes": bytes,
        });
        println!("{line}");
    }
}
