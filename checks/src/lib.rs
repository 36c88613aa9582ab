//! heatsql's multi-rank check programs and their `mpirun` support (not published).
//!
//! MPI initialises once per process, so checks at P > 1 need real processes: three programs run
//! under `mpirun -n P` and this crate's integration tests launch them at P = 1, 2, 3 and 4.
//!
//! * `engine-mpi-checks` ([`engine`]): `engine::comm`, the DNDarray, linalg and ml against tch
//!   on the whole array (`checks/tests/engine.rs`).
//! * `heatsql-function-checks` ([`functions`]): the table functions through SQL against
//!   scikit-learn, PyDMD and tch (`checks/tests/functions.rs`).
//! * `heatsql-table-checks` ([`tables`]): distributed Parquet tables, Table → DNDarray → Arrow,
//!   SQL across ranks, joins and COPY TO, on local files and S3 (`checks/tests/tables.rs`).
//!
//! Every check runs on every rank and its verdict is the AND over the ranks ([`checker`]).
//! Checks are grouped in subjects, one module each (`comm`, `linalg/tsqr`, `joins`, …; a
//! program's `SUBJECTS` lists them, `--list` prints them), and a check's name starts with its
//! subject's name. Rank 0 prints each failure and the summary line
//! `<what> at P=<p>: <n> passed, <m> failed` that [`mpirun::assert_checks_passed`] reads; after a
//! failure it prints, for each failed subject, the command that reruns it alone:
//!
//! ```text
//! rerun: mpirun -n 3 target/debug/engine-mpi-checks all --only linalg/tsqr
//! ```
//!
//! `--only PREFIX` ([`cli`]) runs the subjects whose names start with PREFIX, or, for a prefix
//! that reaches into one subject (`linalg/matmul/error`), that subject with only the checks
//! whose names start with it. To run one subject by hand, build the programs and start it
//! under mpirun (`-v` prints the passing checks too):
//!
//! ```text
//! cargo build -p heatsql-checks
//! . scripts/env.sh
//! mpirun -n 2 --oversubscribe target/debug/engine-mpi-checks all --only dndarray/factory -v
//! mpirun -n 4 --oversubscribe target/debug/heatsql-function-checks heatsql/tests/fixtures/pca /tmp/fc \
//!     --only kmeans
//! target/debug/heatsql-table-checks gen /tmp/tc
//! mpirun -n 3 --oversubscribe target/debug/heatsql-table-checks check /tmp/tc /tmp/tc-out --only sql
//! ```
//!
//! (COPY refuses a non-empty target: give `check` a fresh OUT for each run.) The tests set
//! `HEATSQL_THREADS=1` (one compute thread per rank); [`mpirun`] is the launcher they share with
//! the other crates' tests, which include it with `#[path = "../../checks/src/mpirun.rs"]`.

pub mod checker;
pub mod cli;
pub mod engine;
pub mod functions;
pub mod mpirun;
pub mod tables;

/// One `#[test]` per subject and rank count P = 1..4, in a module per subject, and the table of
/// them:
///
/// ```ignore
/// checks::subject_tests! {
///     run_subject;
///     comm: "comm" >= [30, 35, 35, 35];
///     dndarray_pieces: "dndarray/pieces" >= [_, 4, 4, 4];
/// }
/// ```
///
/// makes `comm::p1` … `comm::p4`, each calling `run_subject("comm", p, min)` (a function of the
/// test file: run the subject at P ranks, assert that it passed with at least `min` checks),
/// `dndarray_pieces::p2` … `p4` (`_`: no test at that P), and
/// `const TESTED: &[(&str, [Option<usize>; 4])]`, each subject with its minimums.
#[macro_export]
macro_rules! subject_tests {
    ($run:ident; $($module:ident: $subject:literal >= [$m1:tt, $m2:tt, $m3:tt, $m4:tt];)*) => {
        /// The subjects tested, with their minimum check counts at P = 1..4 (`None`: not run).
        const TESTED: &[(&str, [Option<usize>; 4])] = &[$((
            $subject,
            [
                $crate::subject_tests!(@min $m1),
                $crate::subject_tests!(@min $m2),
                $crate::subject_tests!(@min $m3),
                $crate::subject_tests!(@min $m4),
            ],
        )),*];
        $(
            #[doc = concat!("The subject `", $subject, "` at P = 1..4.")]
            mod $module {
                $crate::subject_tests!(@p $run, $subject, p1, 1, $m1);
                $crate::subject_tests!(@p $run, $subject, p2, 2, $m2);
                $crate::subject_tests!(@p $run, $subject, p3, 3, $m3);
                $crate::subject_tests!(@p $run, $subject, p4, 4, $m4);
            }
        )*
    };
    (@min _) => {
        None
    };
    (@min $min:literal) => {
        Some($min)
    };
    (@p $run:ident, $subject:literal, $name:ident, $p:literal, _) => {};
    (@p $run:ident, $subject:literal, $name:ident, $p:literal, $min:literal) => {
        #[test]
        fn $name() {
            super::$run($subject, $p, $min);
        }
    };
}

/// Asserts that `tested` (a test file's [`subject_tests!`] table) covers exactly `subjects` (a
/// program's), in order, and that the minimums add up to at least `total` at every P where
/// the program ran at least `total` checks before its subjects were split out.
pub fn assert_subjects_tested(tested: &[(&str, [Option<usize>; 4])], subjects: &[&str], total: usize) {
    let names: Vec<&str> = tested.iter().map(|t| t.0).collect();
    assert_eq!(names, subjects, "every subject needs its tests, in the program's order");
    for p in 0..4 {
        let sum: usize = tested.iter().filter_map(|t| t.1[p]).sum();
        assert!(sum >= total, "the minimums at P={} add up to {sum} < {total}", p + 1);
    }
}
