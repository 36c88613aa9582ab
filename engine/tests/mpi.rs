//! Runs the engine's multi-rank checks under `mpirun` at P = 1, 2, 3 and 4.
//!
//! MPI initialises once per process, so P > 1 needs real processes: the checks live in the
//! `engine-mpi-checks` binary (src/bin/engine_mpi_checks.rs) and this file launches it. The tests
//! are serialised (one mpirun at a time on a small machine, and the orphan check must not see
//! another test's ranks).

#[path = "support/mpirun.rs"]
mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use support::{Run, assert_checks_passed};

static SERIAL: Mutex<()> = Mutex::new(());
const BIN: &str = env!("CARGO_BIN_EXE_engine-mpi-checks");

fn mpirun(p: usize, args: &[&str], timeout: Duration) -> Run {
    support::mpirun(BIN, p, args, &[], timeout)
}

/// Processes still running the checks binary (none may survive a run).
fn survivors() -> String {
    let out = Command::new("pgrep")
        .args(["-af", "engine-mpi-checks"])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn comm_and_dndarray_match_tch_at_p_1_to_4() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut counts = Vec::new();
    for p in 1..=4 {
        let run = mpirun(p, &["all"], Duration::from_secs(600));
        counts.push(assert_checks_passed(&run, "engine checks", p));
    }
    // Every P ran a full suite (P-dependent checks add a few at P > 1).
    assert!(counts.iter().all(|&c| c > 4300), "too few checks ran: {counts:?}");
}

#[test]
fn random_arrays_are_the_same_at_every_rank_count() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let digests: Vec<String> = (1..=4)
        .map(|p| {
            let run = mpirun(p, &["digest", "2024"], Duration::from_secs(120));
            assert_eq!(run.code, Some(0), "P={p}: {}", run.stderr);
            run.stdout
                .lines()
                .filter(|l| l.starts_with("digest"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert_eq!(digests[0].lines().count(), 3, "{}", digests[0]);
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(d, &digests[0], "P={} draws other numbers than P=1", i + 1);
    }
    // Another seed draws other numbers.
    let other = mpirun(2, &["digest", "7"], Duration::from_secs(120));
    assert_ne!(
        other.stdout.lines().find(|l| l.starts_with("digest")),
        digests[0].lines().next()
    );
}

fn assert_agreed_failure(what: &str, expect: &str) {
    for p in 2..=4 {
        let run = mpirun(p, &[what], Duration::from_secs(60));
        let fail = p - 1;
        eprintln!(
            "[mpi] {what} P={p}: exit {:?} after {:.1} s",
            run.code,
            run.elapsed.as_secs_f64()
        );
        assert!(
            run.elapsed < Duration::from_secs(30),
            "{what} at P={p} took {:?}",
            run.elapsed
        );
        assert_ne!(run.code, Some(0), "{what} at P={p} succeeded:\n{}", run.stdout);
        for r in 0..p {
            let line = run
                .stderr
                .lines()
                .find(|l| l.starts_with(&format!("rank {r}/{p}: error: ")))
                .unwrap_or_else(|| panic!("rank {r} reported no error at P={p}:\n{}", run.stderr));
            assert!(
                line.contains(&expect.replace("{fail}", &fail.to_string())),
                "rank {r}: {line}"
            );
        }
        let left = survivors();
        assert!(left.is_empty(), "orphaned processes after {what} at P={p}:\n{left}");
    }
}

#[test]
fn a_rank_failing_inside_matmul_fails_every_rank_quickly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_agreed_failure(
        "fail-matmul",
        "rank {fail} failed: DNDarray::matmul: cannot multiply 40 × 6 by [5, 2]",
    );
}

#[test]
fn a_rank_with_a_bad_piece_fails_every_rank_quickly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_agreed_failure(
        "fail-pieces",
        "DNDarray::from_pieces: rank {fail} has dtype Float but rank 0 has Double",
    );
}
