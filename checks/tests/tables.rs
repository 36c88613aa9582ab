//! Distributed Parquet tables, Table → DNDarray → Arrow, SQL across ranks, joins and COPY TO at
//! P = 1, 2, 3 and 4: one test per subject and P on local files (fixtures written once per test
//! binary); the whole program with several partitions per rank; and the whole program on a real
//! S3 endpoint (moto's server from PyPI, started on 127.0.0.1).
//!
//! The checks live in the `heatsql-table-checks` binary (src/tables/). The launches are
//! serialised (one mpirun at a time on a small machine).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use checks::mpirun::{assert_checks_passed, mpirun};

static SERIAL: Mutex<()> = Mutex::new(());
const BIN: &str = env!("CARGO_BIN_EXE_heatsql-table-checks");

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `heatsql-table-checks gen base` at P = 1, asserting that it succeeded.
fn generate(base: &str, envs: &[(&str, String)]) {
    let fixtures = mpirun(BIN, 1, &["gen", base], envs, Duration::from_secs(120));
    assert_eq!(
        fixtures.code,
        Some(0),
        "fixtures: {}\n{}",
        fixtures.stdout,
        fixtures.stderr
    );
}

/// This test binary's local scratch directory, with the fixtures below `fixtures/` (written
/// once, by the first test that needs them).
fn local() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("tables");
        generate(&dir.join("fixtures").display().to_string(), &[]);
        dir
    })
}

/// Runs `subject` at P = `p` on the local fixtures and asserts that it passed with at least
/// `min` checks (the checks of the setup included).
fn run_subject(subject: &str, p: usize, min: usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = local().join("fixtures").display().to_string();
    let out = local().join(format!("out-{subject}-p{p}")).display().to_string();
    let run = mpirun(
        BIN,
        p,
        &["check", &base, &out, "--only", subject],
        &[],
        Duration::from_secs(300),
    );
    let n = assert_checks_passed(&run, "table checks", p);
    assert!(n >= min, "{subject} at P={p}: {n} checks ran, expected at least {min}");
}

// The minimum number of checks per subject at P = 1, 2, 3, 4 (2 of them register the tables):
// a little below what ran when the subjects were split out.
checks::subject_tests! {
    run_subject;
    tables: "tables" >= [15, 15, 15, 15];
    arrays: "arrays" >= [14, 14, 14, 14];
    dense: "dense" >= [43, 43, 43, 43];
    sql: "sql" >= [19, 19, 19, 19];
    joins: "joins" >= [22, 22, 22, 22];
    copy: "copy" >= [9, 9, 9, 9];
}

/// Every subject has its tests, and together they ask for at least the 80 checks per P that
/// the whole program ran before its subjects were split out.
#[test]
fn every_subject_is_tested_and_the_minimums_add_up() {
    checks::assert_subjects_tested(TESTED, &checks::tables::SUBJECTS, 80);
}

/// Several partitions per rank (`HEATSQL_THREADS`: scans split a rank's row groups into runs,
/// exchanges read a rank's partitions in parallel): the same checks pass, table order kept.
#[test]
fn local_parquet_tables_with_several_partitions_per_rank() {
    for (p, threads) in [(1, "3"), (2, "2"), (3, "2")] {
        let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let base = local().join("fixtures").display().to_string();
        let out = local().join(format!("threads-p{p}")).display().to_string();
        let envs = [("HEATSQL_THREADS", threads.to_string())];
        let run = mpirun(BIN, p, &["check", &base, &out], &envs, Duration::from_secs(300));
        assert!(
            assert_checks_passed(&run, "table checks", p) >= 80,
            "too few checks ran at P={p} with {threads} partitions per rank"
        );
    }
}

/// moto's S3 server on a free local port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn start_moto() -> Moto {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    let server = venv.join("moto_server");
    assert!(
        server.exists(),
        "{} is missing: run `bash scripts/setup.sh --tests` (scripts/test.sh does)",
        server.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(&server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto_server did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // object_store cannot create buckets: boto3 (installed with moto) does.
    let script = format!(
        "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='heatsql-test')"
    );
    let status = Command::new(venv.join("python"))
        .args(["-c", &script])
        .status()
        .expect("python");
    assert!(status.success(), "creating the test bucket failed");
    moto
}

#[test]
fn s3_parquet_tables_at_p_1_to_4() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let moto = start_moto();
    let envs = [
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", moto.port)),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let base = "s3://heatsql-test/fixtures";
    generate(base, &envs);
    for p in 1..=4 {
        let out = format!("s3://heatsql-test/out-p{p}");
        let run = mpirun(BIN, p, &["check", base, &out], &envs, Duration::from_secs(300));
        assert!(
            assert_checks_passed(&run, "table checks", p) >= 80,
            "too few checks ran at P={p}"
        );
    }
}
