//! Runs the engine's multi-rank checks (`engine-mpi-checks`, src/engine/) under `mpirun` at
//! P = 1, 2, 3 and 4: one test per subject and P, the digest of seeded random arrays compared
//! across P, and one rank failing inside an operation.
//!
//! MPI initialises once per process, so P > 1 needs real processes. The launches are serialised
//! (one mpirun at a time on a small machine, and the orphan check must not see another test's
//! ranks).

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use checks::mpirun::{Run, assert_checks_passed};

static SERIAL: Mutex<()> = Mutex::new(());
const BIN: &str = env!("CARGO_BIN_EXE_engine-mpi-checks");

fn mpirun(p: usize, args: &[&str], timeout: Duration) -> Run {
    checks::mpirun::mpirun(BIN, p, args, &[], timeout)
}

/// Runs `subject` at P = `p` and asserts that it passed with at least `min` checks.
fn run_subject(subject: &str, p: usize, min: usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let run = mpirun(p, &["all", "--only", subject], Duration::from_secs(600));
    let n = assert_checks_passed(&run, "engine checks", p);
    assert!(n >= min, "{subject} at P={p}: {n} checks ran, expected at least {min}");
}

// The minimum number of checks per subject at P = 1, 2, 3, 4: a little below what ran when the
// subjects were split out (some checks depend on P).
checks::subject_tests! {
    run_subject;
    comm: "comm" >= [44, 44, 44, 44];
    pca: "pca" >= [250, 250, 250, 250];
    kmeans: "kmeans" >= [56, 56, 56, 56];
    linalg_matmul: "linalg/matmul" >= [380, 380, 380, 380];
    linalg_tsqr: "linalg/tsqr" >= [153, 153, 153, 153];
    linalg_svd: "linalg/svd" >= [241, 241, 241, 241];
    dmd: "dmd" >= [61, 61, 61, 61];
    dndarray_layouts: "dndarray/layouts" >= [1223, 1223, 1223, 1223];
    dndarray_reductions: "dndarray/reductions" >= [1342, 1342, 1342, 1342];
    dndarray_binary: "dndarray/binary" >= [356, 356, 356, 356];
    dndarray_matmul: "dndarray/matmul" >= [98, 98, 98, 98];
    dndarray_factory: "dndarray/factory" >= [135, 135, 135, 135];
    dndarray_pieces: "dndarray/pieces" >= [_, 2, 2, 2];
}

/// Every subject has its tests, and together they ask for more than the 4,300 checks per P that
/// the whole program ran before its subjects were split out.
#[test]
fn every_subject_is_tested_and_the_minimums_add_up() {
    let names: Vec<&str> = checks::engine::SUBJECTS.iter().map(|s| s.0).collect();
    checks::assert_subjects_tested(TESTED, &names, 4301);
}

/// Processes still running the checks binary, or mpirun on it (none may survive a run).
fn survivors() -> String {
    let out = Command::new("pgrep").args(["-af", BIN]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .collect::<Vec<_>>()
        .join("\n")
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
