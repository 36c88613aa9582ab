//! The `.slt` suite under `mpirun` at P = 1..4, and checks that the runner can fail: on ranks
//! that disagree and on a wrong expected result.

#[path = "../../checks/src/mpirun.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Run, mpirun};

const BIN: &str = env!("CARGO_BIN_EXE_heatsql-slt");
const TIMEOUT: Duration = Duration::from_secs(300);

/// Every `.slt` file of `sql-tests/slt/`, in name order.
fn slt_files() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql-tests/slt")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files.into_iter().map(|p| p.display().to_string()).collect()
}

/// The runner's summary line (`slt at P=…` or `slt reference: …`).
fn summary(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with("slt at P=") || l.starts_with("slt reference: "))
        .unwrap_or("")
        .to_string()
}

fn run_slt(p: usize, args: &[&str]) -> Run {
    mpirun(BIN, p, args, &[], TIMEOUT)
}

/// `heatsql-slt --reference …` without mpirun.
fn run_reference(args: &[&str]) -> Run {
    let start = std::time::Instant::now();
    let out = Command::new(BIN)
        .arg("--reference")
        .args(args)
        .output()
        .expect("run heatsql-slt");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn assert_passed(run: &Run, expected_head: &str) {
    let line = summary(run);
    eprintln!("\n[slt] {line} ({:.1} s)", run.elapsed.as_secs_f64());
    assert_eq!(
        run.code,
        Some(0),
        "{expected_head} failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(line.starts_with(expected_head), "no summary:\n{}", run.stdout);
    assert!(line.ends_with(", 0 failed"), "{line}");
    if !expected_head.starts_with("slt reference") {
        support::assert_cpu_kernels(run);
    }
}

#[test]
fn slt_files_pass_at_p_1_to_4() {
    let files = slt_files();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut failures = Vec::new();
    for p in 1..=4 {
        let run = run_slt(p, &args);
        let line = summary(&run);
        eprintln!("\n[slt] P={p}: {line} ({:.1} s)", run.elapsed.as_secs_f64());
        if run.code != Some(0) || !line.ends_with(", 0 failed") {
            failures.push(format!(
                "P={p}: {line}\nstdout:\n{}\nstderr:\n{}",
                run.stdout, run.stderr
            ));
        } else {
            assert!(
                line.starts_with(&format!("slt at P={p}: {} files, ", files.len())),
                "{line}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same files with several partitions per rank (`HEATSQL_THREADS`).
#[test]
fn slt_files_pass_with_several_partitions_per_rank() {
    let files = slt_files();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    for (p, threads) in [(1, "3"), (2, "2"), (3, "2")] {
        let run = mpirun(BIN, p, &args, &[("HEATSQL_THREADS", threads.to_string())], TIMEOUT);
        assert_passed(&run, &format!("slt at P={p}: {} files, ", files.len()));
    }
}

#[test]
fn slt_files_pass_on_the_reference() {
    let files = slt_files();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_passed(&run_reference(&args), "slt reference: ");
}

#[test]
fn ranks_that_disagree_fail() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/negative/rank_disagree.slt");
    let args = ["--with-rank-udf", file];
    assert_passed(&run_slt(1, &args), "slt at P=1: ");

    let run = run_slt(2, &args);
    let line = summary(&run);
    eprintln!("\n[slt] negative P=2: {line}");
    assert_ne!(run.code, Some(0), "rank disagreement not detected:\n{}", run.stdout);
    assert!(
        run.stdout.contains("ranks disagree on query at ") && run.stdout.contains("rank_disagree.slt:"),
        "no 'ranks disagree' message:\n{}",
        run.stdout
    );
    assert!(
        line.starts_with("slt at P=2: 1 files, ") && !line.ends_with(", 0 failed"),
        "{line}"
    );
}

#[test]
fn a_wrong_expected_result_fails() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt/basics.slt");
    let text = std::fs::read_to_string(&source).expect("basics.slt");
    let right = "SELECT count(*) FROM orders\n----\n3000\n";
    assert!(text.contains(right), "basics.slt no longer counts the orders");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("slt-wrong");
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let wrong = dir.join("wrong_expected.slt");
    std::fs::write(
        &wrong,
        text.replacen(right, "SELECT count(*) FROM orders\n----\n3001\n", 1),
    )
    .expect("write");
    let wrong = wrong.display().to_string();

    for run in [run_reference(&[&wrong]), run_slt(2, &[&wrong])] {
        let line = summary(&run);
        eprintln!("\n[slt] wrong expected: {line}");
        assert_ne!(run.code, Some(0), "a wrong expected result passed:\n{}", run.stdout);
        assert!(line.ends_with(", 1 failed"), "{line}\n{}", run.stdout);
        assert!(
            run.stdout.contains("FAILED ") && run.stdout.contains("wrong_expected.slt:") && run.stdout.contains("3001"),
            "no failure report:\n{}",
            run.stdout
        );
    }
}
