//! `engine-mpi-checks [all] [--only PREFIX] [-v] | digest SEED | fail-matmul | fail-pieces`: the
//! engine's multi-rank checks ([`checks::engine`]), run under `mpirun -n P` by
//! `checks/tests/engine.rs`.

use checks::cli::{Args, usage_error};
use checks::engine;

fn main() {
    let args = Args::from_env().unwrap_or_else(|e| usage_error(&e));
    let names: Vec<&'static str> = engine::SUBJECTS.iter().map(|s| s.0).collect();
    args.list(&names);
    let comm = ::engine::runtime::start();
    match args.positional()[..] {
        ["digest"] => engine::digest::run(comm, 1),
        ["digest", seed] => engine::digest::run(comm, seed.parse().unwrap_or(1)),
        [what @ ("fail-matmul" | "fail-pieces")] => engine::fail::run(comm, what),
        [] | ["all"] => {
            let mut c = args.checker(&names);
            engine::run(&mut c);
            args.finish(&c, "engine checks");
        }
        [other, ..] => usage_error(&format!(
            "unknown suite '{other}'; expected all, digest SEED, fail-matmul or fail-pieces"
        )),
    }
}
