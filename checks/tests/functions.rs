//! The table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`, `svd`, `matmul`,
//! `dmd`) through SQL at P = 1, 2, 3 and 4, against scikit-learn's results on its bundled breast
//! cancer and wine datasets, PyDMD's on statsmodels' macroeconomic series
//! (heatsql/tests/fixtures/{pca,kmeans,dmd}, made by make_fixture.py there) and tch on the
//! gathered input: one test per subject and P; the whole program with two partitions per rank;
//! and seeded k-means output compared across the rank counts.
//!
//! The checks live in the `heatsql-function-checks` binary (src/functions/). The launches are
//! serialised (one mpirun at a time on a small machine).

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use checks::mpirun::{assert_checks_passed, mpirun};

static SERIAL: Mutex<()> = Mutex::new(());
const BIN: &str = env!("CARGO_BIN_EXE_heatsql-function-checks");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../heatsql/tests/fixtures/pca");

/// This test binary's scratch directory (made fresh once).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("functions-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Runs `subject` at P = `p` and asserts that it passed with at least `min` checks (the
/// `register/…` checks of the setup included).
fn run_subject(subject: &str, p: usize, min: usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch().join(format!("{}-p{p}", subject.replace('/', "_")));
    let dir = dir.display().to_string();
    let run = mpirun(
        BIN,
        p,
        &[FIXTURES, &dir, "--only", subject],
        &[],
        Duration::from_secs(300),
    );
    let n = assert_checks_passed(&run, "function checks", p);
    assert!(n >= min, "{subject} at P={p}: {n} checks ran, expected at least {min}");
    std::fs::remove_dir_all(&dir).ok();
}

// The minimum number of checks per subject at P = 1, 2, 3, 4 (20 of them register the tables):
// what ran when the subjects were split out (sklearn, lowrank, kmeans/seeded: a little below),
// less the error and EXPLAIN cases that moved to sql-tests/slt/functions.slt.
checks::subject_tests! {
    run_subject;
    sklearn: "sklearn" >= [66, 66, 66, 66];
    lowrank: "lowrank" >= [37, 37, 37, 37];
    sql: "sql" >= [30, 30, 30, 30];
    kmeans: "kmeans" >= [34, 34, 34, 34];
    kmeans_seeded: "kmeans/seeded" >= [23, 23, 23, 23];
    svd: "svd" >= [51, 51, 51, 51];
    matmul: "matmul" >= [37, 37, 37, 37];
    dmd: "dmd" >= [50, 50, 50, 50];
}

/// Every subject has its tests, and together they ask for at least the 187 checks per P that
/// the whole program runs: the 261 it ran before its subjects were split out, less the 74 error
/// and EXPLAIN cases now in sql-tests/slt/functions.slt.
#[test]
fn every_subject_is_tested_and_the_minimums_add_up() {
    checks::assert_subjects_tested(TESTED, &checks::functions::SUBJECTS, 187);
}

/// Two partitions per rank: the loads read a rank's partitions (dense or streamed) in order.
#[test]
fn table_functions_with_two_partitions_per_rank() {
    for p in [1, 2] {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = scratch().join(format!("threads-p{p}")).display().to_string();
        let envs = [("HEATSQL_THREADS", "2".to_string())];
        let run = mpirun(BIN, p, &[FIXTURES, &dir], &envs, Duration::from_secs(300));
        // 188 ran when this was written: the 261 of the whole program before, less the 74
        // error and EXPLAIN cases that moved to sql-tests/slt/functions.slt, plus the
        // EXPLAIN ANALYZE check of the device and bytes moved.
        assert!(
            assert_checks_passed(&run, "function checks", p) >= 187,
            "too few checks ran at P={p} with two partitions per rank"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// The same seed gives the same k-means output at every P: cluster numbers exactly,
/// distances and centroids to 1e-10 (sums are added in another order at another P).
#[test]
fn seeded_kmeans_is_the_same_at_every_rank_count() {
    let dir = |p: usize| scratch().join(format!("seeded-p{p}"));
    for p in 1..=4 {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let out = dir(p).display().to_string();
        let run = mpirun(
            BIN,
            p,
            &[FIXTURES, &out, "--only", "kmeans/seeded"],
            &[],
            Duration::from_secs(300),
        );
        assert_checks_passed(&run, "function checks", p);
    }
    let seeded = |p: usize| std::fs::read_to_string(dir(p).join("kmeans_seeded.csv")).unwrap_or_default();
    let want = seeded(1);
    assert!(
        want.lines().count() == 3 * (2000 + 7),
        "P=1 wrote {} lines",
        want.lines().count()
    );
    for p in 2..=4 {
        let got = seeded(p);
        assert_eq!(got.lines().count(), want.lines().count(), "P={p}");
        for (g, w) in got.lines().zip(want.lines()) {
            let (gf, wf): (Vec<&str>, Vec<&str>) = (g.split(',').collect(), w.split(',').collect());
            let same = gf.len() == wf.len()
                && gf[..4] == wf[..4]
                && gf[4..]
                    .iter()
                    .zip(&wf[4..])
                    .all(|(a, b)| match (a.parse::<f64>(), b.parse::<f64>()) {
                        (Ok(a), Ok(b)) => (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
                        _ => false,
                    });
            assert!(same, "seeded k-means differs at P={p} from P=1:\n  {g}\n  {w}");
        }
    }
    for p in 1..=4 {
        std::fs::remove_dir_all(dir(p)).ok();
    }
}
