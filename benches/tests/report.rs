//! The scaling report end to end on tiny data: `heatsql-bench-report` runs every operation
//! under mpirun at P = 1, 2, 3 and 4 (3 row groups, so one rank of 4 owns zero rows), strong and
//! weak scaling, and writes results.json, results.md and the PNG plots. The baselines' Python is
//! pointed at a missing path (they need the bench venv; each becomes a note) and the
//! machine-limit measurements are skipped (seconds of memory traffic);
//! `scripts/bench.sh report` runs both.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const OPS: [&str; 6] = ["load", "pca", "svd", "kmeans", "dmd", "matmul"];

fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/test-report/{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn report(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_heatsql-bench-report"))
        .args([
            "--rows",
            "20000",
            "--cols",
            "8",
            "--k",
            "3",
            "--kmeans-cols",
            "4",
            "--clusters",
            "3",
            "--dmd-points",
            "3000",
            "--dmd-steps",
            "24",
            "--dmd-rank",
            "4",
            "--matmul-n",
            "64",
            "--row-groups",
            "3",
            "--ranks",
            "1,2,3,4",
            "--python",
            "/nonexistent/python",
            "--no-limits",
        ])
        .arg("--data")
        .arg(out.join("data"))
        .arg("--out")
        .arg(out.join("report"))
        .args(extra)
        .output()
        .expect("run heatsql-bench-report")
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn report_runs_every_operation_at_p_1_to_4() {
    let dir = scratch("all");
    let out = report(&dir, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "report failed: {stderr}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/results.json")).expect("results.json"))
            .expect("valid JSON");
    let runs = json["runs"].as_array().expect("runs");
    for op in OPS {
        for p in 1..=4u64 {
            let strong = runs
                .iter()
                .find(|r| r["op"] == op && r["ranks"] == p && r["scaling"] == "strong")
                .unwrap_or_else(|| panic!("no strong run of {op} at P = {p}"));
            // Every rank reports its rows and memory; the rows add up to the table's.
            let local: Vec<i64> = strong["local_rows"]
                .as_array()
                .map_or(vec![], |v| v.iter().filter_map(Value::as_i64).collect());
            assert_eq!(
                strong["peak_rss_bytes"].as_array().map(Vec::len),
                Some(p as usize),
                "{op} P={p}"
            );
            assert_eq!(strong["load_s"].as_array().map(Vec::len), Some(4), "3 rounds + warm-up");
            assert!(
                strong["compute_median_s"].as_f64().is_some_and(|t| t >= 0.0),
                "{op} P={p}"
            );
            if !local.is_empty() {
                assert_eq!(
                    local.iter().sum::<i64>(),
                    strong["rows"].as_i64().unwrap(),
                    "{op} P={p}"
                );
            }
            if p > 1 {
                let weak = runs
                    .iter()
                    .find(|r| r["op"] == op && r["ranks"] == p && r["scaling"] == "weak")
                    .unwrap_or_else(|| panic!("no weak run of {op} at P = {p}"));
                let (r1, rp) = (strong["rows"].as_i64().unwrap(), weak["rows"].as_i64().unwrap());
                if op == "matmul" {
                    assert!(rp > r1, "matmul's side grows with P");
                } else {
                    assert_eq!(rp, r1 * p as i64, "{op}: weak scaling has P × the rows");
                }
            }
        }
    }
    // The results agree across rank counts (σ₁, inertia, |λ|, Σ C … within 1e-8).
    let agreement = json["agreement"].as_array().expect("agreement");
    assert_eq!(agreement.len(), OPS.len());
    for a in agreement {
        assert_eq!(a["holds"], true, "{a}");
    }
    let md = std::fs::read_to_string(dir.join("report/results.md")).expect("results.md");
    for needle in [
        "## Strong scaling",
        "## Weak scaling",
        "| svd | 20000 × 8 | 4 |",
        "| matmul |",
        "## Results agree",
    ] {
        assert!(md.contains(needle), "results.md lacks {needle:?}:\n{md}");
    }
    for png in ["strong_scaling.png", "weak_scaling.png", "memory_per_rank.png"] {
        assert_eq!(png_size(&dir.join("report").join(png)), (960, 600), "{png}");
        assert!(md.contains(&format!("]({png})")), "results.md links {png}");
    }
    // The baselines' Python is missing: each baseline is a note, the report still succeeds.
    assert!(!dir.join("report/baselines.png").exists(), "no baselines were run");
    assert!(md.contains("## Not measured"), "{md}");
    assert!(
        md.contains("pca: baseline not run: no Python at /nonexistent/python"),
        "{md}"
    );
    assert!(json["baselines"].as_array().is_some_and(Vec::is_empty));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let dir = scratch("bad");
    let out = report(&dir, &["--ops", "pca,qr"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ops: unknown operation 'qr'"), "{stderr}");
    assert!(!dir.join("report").exists(), "nothing written");
    std::fs::remove_dir_all(&dir).ok();
}
