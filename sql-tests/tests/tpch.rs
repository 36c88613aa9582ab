//! TPC-H at SF 0.1: the 22 standard queries on heatsql under `mpirun` at P = 1..4 equal
//! single-process DataFusion on the same files (`heatsql-tpch`), with the default exchange
//! rounds and again with rounds of 1 MiB (so every run exercises many rounds).

#[path = "../../checks/src/mpirun.rs"]
mod support;

use std::time::Duration;

use support::mpirun;

const BIN: &str = env!("CARGO_BIN_EXE_heatsql-tpch");

fn check(p: usize, extra: &[&str]) {
    check_with(p, extra, 1);
}

/// [`check`] with `threads` partitions per rank (`HEATSQL_THREADS`).
fn check_with(p: usize, extra: &[&str], threads: usize) {
    let mut args = vec!["--sf", "0.1"];
    args.extend_from_slice(extra);
    let envs = [("HEATSQL_THREADS", threads.to_string())];
    let run = mpirun(BIN, p, &args, &envs, Duration::from_secs(1200));
    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with("tpch at P="))
        .unwrap_or("")
        .to_string();
    eprintln!(
        "\n[tpch] {summary} {extra:?}, {threads} partition(s) per rank ({:.1} s)",
        run.elapsed.as_secs_f64()
    );
    assert_eq!(
        run.code,
        Some(0),
        "P={p} {extra:?}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(summary, format!("tpch at P={p}: 22 passed, 0 failed"), "{}", run.stdout);
}

/// One test (the runs share the generated files, written by the first).
#[test]
fn tpch_sf01_equals_datafusion_at_p1_to_p4_with_default_and_1mib_rounds() {
    for p in 1..=4 {
        check(p, &[]);
        check(p, &["--round-bytes", "1048576"]);
    }
    // Several partitions per rank: a rank's partitions run in parallel, one rank runs
    // DataFusion's own plan.
    check_with(1, &[], 3);
    check_with(2, &[], 2);
}
