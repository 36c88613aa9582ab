//! The table functions `pca` and `pca_project` through SQL at P = 1, 2, 3 and 4, against
//! scikit-learn's results on its bundled breast cancer dataset (heatsql/tests/fixtures/pca,
//! made by make_fixture.py there) and tch on the gathered input.
//!
//! The checks live in the `heatsql-function-checks` binary (src/bin/function_checks.rs).

#[path = "../../engine/tests/support/mpirun.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{assert_checks_passed, mpirun};

const BIN: &str = env!("CARGO_BIN_EXE_heatsql-function-checks");

#[test]
fn pca_and_pca_project_at_p_1_to_4() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pca");
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("functions-{}", std::process::id()));
    std::fs::remove_dir_all(&scratch).ok();
    for p in 1..=4 {
        let dir = scratch.join(format!("p{p}"));
        let dir = dir.display().to_string();
        let run = mpirun(BIN, p, &[fixtures, &dir], &[], Duration::from_secs(300));
        assert!(
            assert_checks_passed(&run, "function checks", p) >= 110,
            "too few checks ran at P={p}"
        );
    }
    std::fs::remove_dir_all(&scratch).ok();
}
