//! The table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`, `svd`, `matmul`,
//! `dmd`) through SQL at P = 1, 2, 3 and 4, against scikit-learn's results on its bundled breast
//! cancer and wine datasets, PyDMD's on statsmodels' macroeconomic series
//! (heatsql/tests/fixtures/{pca,kmeans,dmd}, made by make_fixture.py there) and tch on the
//! gathered input; and seeded k-means output compared across the rank counts.
//!
//! The checks live in the `heatsql-function-checks` binary (src/bin/function_checks.rs).

#[path = "../../engine/tests/support/mpirun.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{assert_checks_passed, mpirun};

const BIN: &str = env!("CARGO_BIN_EXE_heatsql-function-checks");

#[test]
fn table_functions_at_p_1_to_4() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pca");
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("functions-{}", std::process::id()));
    std::fs::remove_dir_all(&scratch).ok();
    for p in 1..=4 {
        let dir = scratch.join(format!("p{p}"));
        let dir = dir.display().to_string();
        let run = mpirun(BIN, p, &[fixtures, &dir], &[], Duration::from_secs(300));
        assert!(
            assert_checks_passed(&run, "function checks", p) >= 250,
            "too few checks ran at P={p}"
        );
    }
    // Two partitions per rank: the loads read a rank's partitions (dense or streamed) in order.
    for p in [1, 2] {
        let dir = scratch.join(format!("threads-p{p}")).display().to_string();
        let envs = [("HEATSQL_THREADS", "2".to_string())];
        let run = mpirun(BIN, p, &[fixtures, &dir], &envs, Duration::from_secs(300));
        assert!(
            assert_checks_passed(&run, "function checks", p) >= 250,
            "too few checks ran at P={p} with two partitions per rank"
        );
    }
    // The same seed gives the same k-means output at every P: cluster numbers exactly,
    // distances and centroids to 1e-10 (sums are added in another order at another P).
    let seeded =
        |p: usize| std::fs::read_to_string(scratch.join(format!("p{p}/kmeans_seeded.csv"))).unwrap_or_default();
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
    std::fs::remove_dir_all(&scratch).ok();
}
