//! The `heatsql` shell end to end: `-c`, `-f`, every output format and exit codes under
//! `mpirun` at P = 1..4, and the interactive prompt through a pseudo-terminal.

#[path = "../../checks/src/mpirun.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::mpirun;

const BIN: &str = env!("CARGO_BIN_EXE_heatsql");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Python for the pseudo-terminal drivers: `read(until, timeout, start)` waits until `until`
/// appears in the terminal output after byte `start` (or exits with the output so far).
macro_rules! pty_read {
    () => {
        r#"def read(until, timeout=90, start=0):
    global out
    end = time.time() + timeout
    while until not in out[start:] and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    if until not in out[start:]:
        sys.stdout.write(out.decode(errors="replace"))
        sys.exit("timed out waiting for %r" % until)
"#
    };
}

/// Python ending a pseudo-terminal driver: wait for the program, print everything it wrote,
/// exit with its status.
macro_rules! pty_finish {
    () => {
        r#"_, status = os.waitpid(pid, 0)
try:
    while True:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            break
        out += os.read(fd, 4096)
except OSError:
    pass
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#
    };
}

/// A distributed table of 40 rows (ids 0..39, k = id % 4) written by the shell itself.
fn make_table(dir: &std::path::Path) -> String {
    let data = dir.join("t/");
    let run = mpirun(
        BIN,
        2,
        &[
            "-q",
            "-c",
            &format!(
                "COPY (SELECT value AS id, value % 4 AS k FROM range(40)) TO '{}' STORED AS PARQUET \
                 OPTIONS (max_row_group_size 5)",
                data.display()
            ),
        ],
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    format!(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
        data.display()
    )
}

#[test]
fn commands_files_formats_and_exit_codes_at_p_1_to_4() {
    let dir = scratch("shell");
    let create = make_table(&dir);
    let query = "SELECT k, count(*) AS n, sum(id) AS s FROM t GROUP BY k ORDER BY k";
    let expected: [(&str, &str); 5] = [
        (
            "table",
            "+---+----+-----+\n| k | n  | s   |\n+---+----+-----+\n| 0 | 10 | 180 |\n| 1 | 10 | 190 |\n\
             | 2 | 10 | 200 |\n| 3 | 10 | 210 |\n+---+----+-----+\n",
        ),
        ("csv", "k,n,s\n0,10,180\n1,10,190\n2,10,200\n3,10,210\n"),
        ("tsv", "k\tn\ts\n0\t10\t180\n1\t10\t190\n2\t10\t200\n3\t10\t210\n"),
        (
            "json",
            "[{\"k\":0,\"n\":10,\"s\":180},{\"k\":1,\"n\":10,\"s\":190},{\"k\":2,\"n\":10,\"s\":200},\
             {\"k\":3,\"n\":10,\"s\":210}]\n",
        ),
        (
            "ndjson",
            "{\"k\":0,\"n\":10,\"s\":180}\n{\"k\":1,\"n\":10,\"s\":190}\n{\"k\":2,\"n\":10,\"s\":200}\n\
             {\"k\":3,\"n\":10,\"s\":210}\n",
        ),
    ];
    for p in 1..=4 {
        // -c in order, every format; with -q only the data is printed (by rank 0 alone).
        for (format, want) in expected {
            let run = mpirun(
                BIN,
                p,
                &["-q", "--format", format, "-c", &create, "-c", query],
                &[],
                Duration::from_secs(120),
            );
            assert_eq!(run.code, Some(0), "P={p} {format}: {}", run.stderr);
            assert_eq!(run.stdout, want, "P={p} format {format}");
        }
        // The footer: rows, elapsed seconds, ranks.
        let run = mpirun(BIN, p, &["-c", &create, "-c", query], &[], Duration::from_secs(120));
        let footer = "4 rows fetched. Elapsed ";
        assert!(
            run.stdout.contains(footer) && run.stdout.contains(&format!(" on {p} rank")),
            "P={p}: {}",
            run.stdout
        );
        // -f: several statements over several lines, comments, a meta command.
        let file = dir.join(format!("job-{p}.sql"));
        std::fs::write(
            &file,
            format!("-- a job\n{create};\n\\d t\nSELECT count(*) AS n\n  FROM t /* ; */ WHERE id < 7;\n"),
        )
        .expect("write job");
        let run = mpirun(
            BIN,
            p,
            &["-q", "--format", "csv", "-f", file.to_str().expect("utf-8")],
            &[],
            Duration::from_secs(120),
        );
        assert_eq!(run.code, Some(0), "P={p}: {}", run.stderr);
        assert!(run.stdout.contains("rows per rank"), "P={p}: {}", run.stdout);
        assert!(run.stdout.ends_with("n\n7\n"), "P={p}: {}", run.stdout);
        // A failing statement of a file is named by file and line (rank 0 says it once).
        let bad = dir.join(format!("bad-{p}.sql"));
        std::fs::write(
            &bad,
            format!("{create};\n-- the bad one:\nSELECT\n  nope FROM t;\nSELECT 1;\n"),
        )
        .expect("write");
        let run = mpirun(
            BIN,
            p,
            &["-q", "-f", bad.to_str().expect("utf-8")],
            &[],
            Duration::from_secs(60),
        );
        assert_ne!(run.code, Some(0), "P={p}");
        let named = format!("stopped at the statement that failed ({}, line 3)", bad.display());
        assert_eq!(run.stderr.matches(&named).count(), 1, "P={p}: {}", run.stderr);
        // A failing statement: every rank exits non-zero, quickly, and later statements do not run.
        let run = mpirun(
            BIN,
            p,
            &[
                "-q",
                "-c",
                &create,
                "-c",
                "SELECT nope FROM t",
                "-c",
                "SELECT 'not reached'",
            ],
            &[],
            Duration::from_secs(60),
        );
        assert_ne!(run.code, Some(0), "P={p}");
        assert!(run.stderr.contains("nope"), "P={p}: {}", run.stderr);
        assert!(!run.stdout.contains("not reached"), "P={p}: {}", run.stdout);
        assert!(run.elapsed < Duration::from_secs(30), "P={p}: {:?}", run.elapsed);
        eprintln!("[shell] P={p}: -c, -f, 5 formats, footer, failure exit code");
    }
    // A missing -f file and an unknown option are refused.
    let run = mpirun(BIN, 2, &["-f", "/nonexistent.sql"], &[], Duration::from_secs(60));
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("cannot read '/nonexistent.sql'"), "{}", run.stderr);
    let out = Command::new(BIN).arg("--bogus").output().expect("run");
    assert_ne!(out.status.code(), Some(0));
}

/// Drives the prompt through a pseudo-terminal (Python's `pty`): multi-line statements, `\d`,
/// `\?`, history, `\q`.
#[test]
fn interactive_prompt_through_a_pseudo_terminal() {
    let home = scratch("shell-home");
    let driver = concat!(
        r#"
import os, pty, sys, time, select
bin = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(bin, [bin])
out = b""
"#,
        pty_read!(),
        r#"read(b"heatsql> ")
os.write(fd, b"SELECT 40\r")
read(b"heatsql-> ")
os.write(fd, b"  + 2 AS answer;\r")
read(b"1 row fetched")
time.sleep(0.3)
os.write(fd, b"\\d\r")
read(b"rows fetched")
time.sleep(0.3)
os.write(fd, b"\\?\r")
read(b"list tables")
time.sleep(0.3)
os.write(fd, b"\\q\r")
"#,
        pty_finish!()
    );
    let out = Command::new("python3")
        .args(["-c", driver, BIN])
        .env("HOME", &home)
        .env("HEATSQL_THREADS", "1")
        .output()
        .expect("python3 runs the pseudo-terminal driver");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("heatsql-> "), "no continuation prompt: {text}");
    assert!(text.contains("| answer |") && text.contains("| 42     |"), "{text}");
    assert!(text.contains("\\d TABLE"), "{text}");
    let history = std::fs::read_to_string(home.join(".heatsql_history")).unwrap_or_default();
    assert!(history.contains("SELECT 40"), "history: {history:?}");
    eprintln!("[shell] prompt through a pty: multi-line, \\d, \\?, history, \\q");
}

/// Under mpirun, rank 0's standard input and error are pipes from mpirun: the shell finds the
/// user's terminal behind them, prompts (the terminal edits lines), keeps the history, goes on
/// after an error, and draws progress on the terminal. Piped runs show no progress.
#[test]
fn prompt_and_progress_under_mpirun_through_a_pseudo_terminal() {
    let home = scratch("shell-mpirun-home");
    let data = home.join("t/");
    let driver = concat!(
        r#"
import os, pty, sys, time, select
bin, data = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("mpirun", ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", bin])
out = b""
"#,
        pty_read!(),
        r#"def send(text, until):
    # Waits for `until` in what comes after the input (the terminal echoes the input itself).
    before = len(out)
    os.write(fd, text.encode() + b"\r")
    read(text.encode()[-20:], start=before)
    read(until.encode(), start=out.rindex(text.encode()[-20:]) + 20)
read(b"heatsql> ")
send("COPY (SELECT value AS id, value % 4 AS k FROM range(40)) TO '" + data + "' STORED AS PARQUET OPTIONS (max_row_group_size 5);", "1 row fetched")
send("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '" + data + "';", "0 rows fetched")
send("SELECT k, count(*) AS n", "heatsql-> ")
send("FROM t GROUP BY k ORDER BY k;", "4 rows fetched")
send("SELECT nope;", "No field named nope")
send("SELECT 'still running' AS after_error;", "| still running |")
os.write(fd, b"\\q\r")
"#,
        pty_finish!()
    );
    let out = Command::new("python3")
        .args(["-c", driver, BIN, data.to_str().expect("utf-8")])
        .env("HOME", &home)
        .env("HEATSQL_THREADS", "1")
        .env("HEATSQL_PROGRESS_DELAY_MS", "0")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .output()
        .expect("python3 runs the pseudo-terminal driver");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("on 2 rank(s)"), "no banner: {text}");
    assert!(text.contains("| 3 | 10 |"), "{text}");
    assert!(
        text.contains("[heatsql] query: 1/2 MpiShuffleExec ("),
        "no progress line: {text}"
    );
    let history = std::fs::read_to_string(home.join(".heatsql_history")).unwrap_or_default();
    assert!(history.contains("FROM t GROUP BY k ORDER BY k"), "history: {history:?}");
    // The same query piped: no progress on standard error, even with no delay.
    let create = format!(
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
        data.display()
    );
    let run = mpirun(
        BIN,
        2,
        &["-c", &create, "-c", "SELECT k, count(*) FROM t GROUP BY k"],
        &[("HEATSQL_PROGRESS_DELAY_MS", "0".into())],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stderr.contains("[heatsql]") && !run.stdout.contains("[heatsql]"),
        "{}",
        run.stderr
    );
    eprintln!("[shell] prompt under mpirun through a pty: prompts, history, errors, progress; none when piped");
}

/// A `-c` job on a terminal shows the progress line — the stages of a query and each Lloyd
/// iteration of k-means with its inertia —; with `-q` it shows none.
#[test]
fn progress_on_a_terminal_and_none_with_quiet() {
    let dir = scratch("shell-progress");
    let create = make_table(&dir);
    let driver = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let query = "SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k";
    let kmeans = "SELECT iterations FROM kmeans(t, k => 2, columns => 'id', output => 'summary')";
    for quiet in [false, true] {
        let mut args = vec!["-c", driver, BIN];
        if quiet {
            args.push("-q");
        }
        args.extend(["-c", &create, "-c", query, "-c", kmeans]);
        let out = Command::new("python3")
            .args(&args)
            .env("HEATSQL_THREADS", "1")
            .env("HEATSQL_PROGRESS_DELAY_MS", "0")
            .output()
            .expect("python3 runs the pseudo-terminal driver");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "quiet={quiet}: {text}");
        assert!(text.contains("| 3 | 10 |"), "quiet={quiet}: {text}");
        assert_eq!(text.contains("[heatsql] query: 1/"), !quiet, "quiet={quiet}: {text}");
        // k = 2 on 0 … 39 converges in a few iterations of at most 300.
        assert_eq!(
            text.contains("[heatsql] kmeans: 1/300 inertia "),
            !quiet,
            "quiet={quiet}: {text}"
        );
        assert!(text.contains("| iterations |"), "quiet={quiet}: {text}");
    }
    eprintln!("[shell] progress (query stages, k-means iterations) on a terminal, none with -q");
}

/// `--info` at P = 1..4: one line per rank, in rank order, exit 0, naming libtorch's version,
/// whether its CUDA support loaded (and if not, why), the GPUs and the device. Where CUDA
/// support did not load (CI's lean install), `device => 'cuda'` fails with that reason and
/// `device => 'auto'` computes on the CPU; `HEATSQL_LIBTORCH_CUDA=0` turns loading off.
#[test]
fn info_tells_why_cuda_is_missing_and_cuda_calls_fail_with_that_reason() {
    for p in 1..=4 {
        let run = mpirun(BIN, p, &["--info"], &[], Duration::from_secs(120));
        assert_eq!(run.code, Some(0), "P={p}: {}", run.stderr);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), p, "P={p}: {}", run.stdout);
        for (r, line) in lines.iter().enumerate() {
            assert!(line.starts_with(&format!("rank {r}/{p} (local ")), "{line}");
            assert!(line.contains(": libtorch 2.13.0"), "{line}");
            assert!(
                line.contains(", CUDA support loaded from ") || line.contains(", CUDA support not loaded ("),
                "{line}"
            );
            assert!(line.contains(", GPUs ") && line.contains(", device "), "{line}");
        }
    }
    let off = mpirun(
        BIN,
        1,
        &["--info"],
        &[("HEATSQL_LIBTORCH_CUDA", "0".into())],
        Duration::from_secs(120),
    );
    assert!(
        off.stdout
            .contains("CUDA support not loaded (disabled by HEATSQL_LIBTORCH_CUDA=0;")
            && off.stdout.contains("GPUs 0, device cpu (setting auto)"),
        "{}",
        off.stdout
    );
    let info = mpirun(BIN, 1, &["--info"], &[], Duration::from_secs(120)).stdout;
    let Some(reason) = info
        .split(", CUDA support not loaded (")
        .nth(1)
        .and_then(|rest| rest.split("; install").next())
    else {
        return; // CUDA support loaded here: the GPU checks (scripts/gpu-check.sh) cover it.
    };
    let query = "SELECT count(*) AS n FROM pca((SELECT CAST(v AS DOUBLE) AS a, CAST(v * v AS DOUBLE) AS b FROM (VALUES (1), (2), (3)) t(v)), k => 1, device => '{dev}')";
    for p in 1..=2 {
        let run = mpirun(
            BIN,
            p,
            &["-q", "--format", "csv", "-c", &query.replace("{dev}", "cuda")],
            &[],
            Duration::from_secs(120),
        );
        assert_ne!(run.code, Some(0), "P={p}");
        assert!(
            run.stderr.contains(&format!(
                "'cuda' was requested but libtorch's CUDA support is not loaded: {reason}"
            )) && run.stderr.contains("bash scripts/setup.sh --cuda"),
            "P={p}: {}",
            run.stderr
        );
        let run = mpirun(
            BIN,
            p,
            &["-q", "--format", "csv", "-c", &query.replace("{dev}", "auto")],
            &[],
            Duration::from_secs(120),
        );
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (Some(0), "n\n3\n"),
            "P={p}: {}",
            run.stderr
        );
    }
}
