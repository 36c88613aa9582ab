//! Launching test programs under `mpirun`: this crate's tests use it as `checks::mpirun`, the
//! other crates' integration tests include this file with
//! `#[path = "../../checks/src/mpirun.rs"]` (so they need no dependency on this crate).

#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run printed and how it ended.
pub struct Run {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output of all ranks.
    pub stdout: String,
    /// Standard error of all ranks.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// `mpirun -n p bin args` with extra environment variables, killed (and the test failed) after
/// `timeout`. One compute thread per rank, oversubscription allowed, root allowed.
pub fn mpirun(bin: &str, p: usize, args: &[&str], envs: &[(&str, String)], timeout: Duration) -> Run {
    run_mpirun(None, bin, p, args, envs, timeout)
}

/// [`mpirun`] with `cwd` as the working directory.
pub fn mpirun_in(
    cwd: &std::path::Path,
    bin: &str,
    p: usize,
    args: &[&str],
    envs: &[(&str, String)],
    timeout: Duration,
) -> Run {
    run_mpirun(Some(cwd), bin, p, args, envs, timeout)
}

fn run_mpirun(
    cwd: Option<&std::path::Path>,
    bin: &str,
    p: usize,
    args: &[&str],
    envs: &[(&str, String)],
    timeout: Duration,
) -> Run {
    let mut cmd = Command::new("mpirun");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-n", &p.to_string(), bin])
        .args(args)
        .env("HEATSQL_THREADS", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .expect("mpirun must be installed (scripts/setup.sh installs OpenMPI)");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            child.wait().ok();
            panic!("mpirun -n {p} {bin} {args:?} did not finish within {timeout:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    Run {
        code,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        elapsed,
    }
}

/// The summary line `<what> at P=<p>: <n> passed, <m> failed` of a checks program, asserting
/// that the run succeeded with no failed check; returns the number of checks passed.
pub fn assert_checks_passed(run: &Run, what: &str, p: usize) -> usize {
    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{what} at P=")))
        .unwrap_or("")
        .to_string();
    eprintln!("\n[mpi] P={p}: {summary} ({:.1} s)", run.elapsed.as_secs_f64());
    assert_eq!(
        run.code,
        Some(0),
        "P={p} failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        summary.starts_with(&format!("{what} at P={p}: ")),
        "no summary at P={p}:\n{}",
        run.stdout
    );
    assert!(summary.ends_with(", 0 failed"), "{summary}");
    assert_cpu_kernels(run);
    summary
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The kernel state `HEATSQL_CPU_KERNELS` asks for (`on`/`off`), when it is set to a value the
/// engine reads (`1`/`on`/`true`/`yes`/`auto` or `0`/`off`/`false`/`no`/`tensor`).
pub fn expected_cpu_kernels() -> Option<&'static str> {
    let v = std::env::var("HEATSQL_CPU_KERNELS").ok()?;
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" | "1" | "on" | "true" | "yes" => Some("on"),
        "tensor" | "0" | "off" | "false" | "no" => Some("off"),
        _ => None,
    }
}

/// When the tests run with `HEATSQL_CPU_KERNELS` set (CI's second pass, kernels off), the
/// program must say it ran that way (`cpu kernels: off`), so the pass cannot silently test the
/// kernels again.
pub fn assert_cpu_kernels(run: &Run) {
    if let Some(want) = expected_cpu_kernels() {
        let line = format!("cpu kernels: {want}");
        assert!(
            run.stdout.lines().any(|l| l == line),
            "HEATSQL_CPU_KERNELS asks for '{line}', which the run did not print:\n{}",
            run.stdout
        );
    }
}
