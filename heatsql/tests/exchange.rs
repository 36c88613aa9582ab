//! Exchanges at their limits, through the `heatsql` shell under `mpirun`: a panic on one rank
//! ends the whole job; exchanges far larger than one MPI message (MPI's ceiling lowered by a
//! test setting) and than one round succeed with the same result as P = 1; exchange buffers
//! spill under a memory limit and the answer stays the same.

#[path = "../../checks/src/mpirun.rs"]
mod support;

use std::time::Duration;

use support::mpirun;

const BIN: &str = env!("CARGO_BIN_EXE_heatsql");

/// A query with a shuffle (GROUP BY) of 200,000 rows of about 110 bytes (22 MB) that rank 0
/// contributes alone (`range` is present on every rank).
const WIDE: &str = "SELECT count(*) AS n, count(DISTINCT k) AS groups, sum(length(s)) AS bytes, \
                    min(s) AS lo, max(s) AS hi FROM (SELECT k, max(s) AS s FROM (SELECT value % 50000 AS k, \
                    concat(repeat('x', 100), CAST(value AS VARCHAR)) AS s FROM range(200000)) GROUP BY k)";

fn shell(p: usize, sql: &str, envs: &[(&str, String)], timeout: Duration) -> support::Run {
    mpirun(BIN, p, &["-q", "--format", "csv", "-c", sql], envs, timeout)
}

#[test]
fn a_panic_on_one_rank_ends_every_rank_promptly() {
    for p in 2..=4 {
        let victim = p - 1;
        let marker = format!("panic-test-{}-{p}", std::process::id());
        let sql = format!("SELECT value % 4 AS k, count(*) AS n FROM range(1000) GROUP BY k /* {marker} */");
        // Without the abort the job hangs (the other ranks wait in the exchange): the run's
        // own timeout then fails the test.
        let run = shell(
            p,
            &sql,
            &[("HEATSQL_TEST_PANIC", format!("exchange:{victim}"))],
            Duration::from_secs(60),
        );
        assert_ne!(
            run.code,
            Some(0),
            "P={p}: the job must fail\n{}\n{}",
            run.stdout,
            run.stderr
        );
        assert!(
            run.elapsed < Duration::from_secs(30),
            "P={p}: took {:?} to end after the panic",
            run.elapsed
        );
        let want = format!("heatsql: rank {victim} of {p} panicked");
        assert!(run.stderr.contains(&want), "P={p}: no '{want}' in\n{}", run.stderr);
        assert!(
            run.stderr.contains("HEATSQL_TEST_PANIC"),
            "P={p}: the panic message\n{}",
            run.stderr
        );
        // Every rank is gone, not only mpirun.
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .expect("pgrep");
        assert!(
            String::from_utf8_lossy(&left.stdout).trim().is_empty(),
            "P={p}: ranks left behind: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        eprintln!(
            "[exchange] P={p}: panic on rank {victim} ended the job in {:.1} s",
            run.elapsed.as_secs_f64()
        );
    }
}

#[test]
fn exchanges_beyond_one_mpi_message_and_one_round_succeed() {
    let reference = shell(1, WIDE, &[], Duration::from_secs(300));
    assert_eq!(reference.code, Some(0), "{}\n{}", reference.stdout, reference.stderr);
    assert!(
        reference.stdout.contains("\n50000,50000,5244405,"),
        "{}",
        reference.stdout
    );
    for p in [2, 3, 4] {
        // 1 MiB per MPI call (the largest row, a partial count(DISTINCT) state, is 200 KB):
        // the 5 MB the shuffle moves need several rounds.
        let envs = [("HEATSQL_TEST_MPI_MAX_COUNT", (1 << 20).to_string())];
        let run = shell(p, WIDE, &envs, Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, reference.stdout, "P={p}");
        // The same with small rounds set by SQL, MPI's limit untouched.
        let sql = format!("SET heatsql.exchange_round_bytes = 1048576; {WIDE}");
        let run = shell(p, &sql, &[], Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.ends_with(&reference.stdout), "P={p}: {}", run.stdout);
    }
}

#[test]
fn explain_analyze_reports_rounds_and_bytes() {
    let sql = format!("SET heatsql.exchange_round_bytes = 1048576; EXPLAIN ANALYZE {WIDE}");
    let run = shell(2, &sql, &[], Duration::from_secs(300));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("MpiShuffleExec"))
        .unwrap_or_else(|| panic!("no shuffle in\n{}", run.stdout))
        .to_string();
    for metric in ["bytes_sent=", "bytes_received=", "rounds=", "mpi_time="] {
        assert!(line.contains(metric), "no {metric} in {line}");
    }
    // 2 MB from rank 0 to rank 1 (the other half stays on rank 0) in rounds of at most
    // 1 MiB per rank, 512 KiB per destination: at least 4 rounds.
    let rounds: usize = line
        .split("rounds=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rounds >= 4, "{line}");
}

#[test]
fn a_round_size_below_the_minimum_is_refused_on_every_rank() {
    let run = shell(
        2,
        "SET heatsql.exchange_round_bytes = 100; SELECT value % 3 AS k, count(*) FROM range(10) GROUP BY k",
        &[],
        Duration::from_secs(120),
    );
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("heatsql.exchange_round_bytes = 100: expected at least 4096 bytes"),
        "{}",
        run.stderr
    );
}

/// A shuffle of 22 MB of rows (rank 0 contributes them all) into a window, whose sort needs
/// every row of a partition: under a small memory limit the exchange's buffers spill.
const WINDOW: &str = "SELECT count(*) AS n, sum(rn) AS s FROM (SELECT row_number() OVER (PARTITION BY k ORDER BY s) AS rn \
                      FROM (SELECT value % 1000 AS k, concat(repeat('y', 100), CAST(value AS VARCHAR)) AS s \
                      FROM range(200000)))";

#[test]
fn exchange_buffers_spill_under_a_memory_limit() {
    // 1000 groups of 200 rows: row numbers 1..=200 each.
    let want = "n,s\n200000,20100000\n";
    for p in [2, 3] {
        let run = shell(p, WINDOW, &[], Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, want, "P={p}");
        // The sort's merge reserves 10 MB by default: less, so that it fits the small pool.
        let sql = format!("SET datafusion.execution.sort_spill_reservation_bytes = 1048576; EXPLAIN ANALYZE {WINDOW}");
        let run = mpirun(
            BIN,
            p,
            &["-q", "--format", "csv", "--memory-limit", "8M", "-c", &sql],
            &[],
            Duration::from_secs(300),
        );
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains("MpiShuffleExec"))
            .unwrap_or_else(|| panic!("no shuffle in\n{}", run.stdout))
            .to_string();
        assert!(
            !line.contains("spill_count=0"),
            "P={p}: the exchange did not spill: {line}"
        );
        assert!(line.contains("spill_count="), "P={p}: {line}");
        let sql = format!("SET datafusion.execution.sort_spill_reservation_bytes = 1048576; {WINDOW}");
        let run = mpirun(
            BIN,
            p,
            &["-q", "--format", "csv", "--memory-limit", "8M", "-c", &sql],
            &[],
            Duration::from_secs(300),
        );
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.ends_with(want), "P={p} with spilling: {}", run.stdout);
    }
}

/// A partitioned join (both sides shuffled, broadcast joins ruled out) of 200,000 probe rows
/// with 2,000 build rows: 198,000 probe rows find no match.
const JOIN_SETTINGS: &str = "SET datafusion.optimizer.hash_join_single_partition_threshold = 0; \
                             SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0;";
// `range` has no statistics, so DataFusion keeps the written order: the build side first.
const JOIN_QUERY: &str = "SELECT count(*) AS n, sum(a.value) AS s FROM range(7, 200000, 100) b \
                          JOIN range(200000) a ON a.value = b.value";

#[test]
fn join_key_filters_keep_unmatched_probe_rows_home() {
    let join = format!("{JOIN_SETTINGS} {JOIN_QUERY}");
    let join = join.as_str();
    let reference = shell(1, join, &[], Duration::from_secs(300));
    assert_eq!(reference.code, Some(0), "{}\n{}", reference.stdout, reference.stderr);
    // 2,000 rows: 7 + 100 i for i < 2000, summing to 7·2000 + 100·1999·2000/2.
    assert!(
        reference.stdout.ends_with("n,s\n2000,199914000\n"),
        "{}",
        reference.stdout
    );
    for p in [2, 3, 4] {
        let run = shell(p, join, &[], Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, reference.stdout, "P={p}");
        let off = format!("SET heatsql.join_key_filters = false; {join}");
        let run = shell(p, &off, &[], Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, reference.stdout, "P={p}, filters off");
        // `range` lives on every rank and rank 0 contributes it to the shuffles alone, so rank
        // 0's report (EXPLAIN ANALYZE's) counts every dropped row: all 198,000 unmatched rows
        // but the filter's false positives (under 1 %).
        let run = shell(
            p,
            &format!("{JOIN_SETTINGS} EXPLAIN ANALYZE {JOIN_QUERY}"),
            &[],
            Duration::from_secs(300),
        );
        assert_eq!(run.code, Some(0), "P={p}\n{}\n{}", run.stdout, run.stderr);
        let probe = run
            .stdout
            .lines()
            .find(|l| l.contains("key_filter=probe"))
            .unwrap_or_else(|| panic!("P={p}: no probe key filter in\n{}", run.stdout));
        assert!(run.stdout.contains("key_filter=build"), "P={p}\n{}", run.stdout);
        // DataFusion shows counts as "198.0 K".
        let dropped = probe
            .split("key_filter_dropped_rows=")
            .nth(1)
            .and_then(|s| s.split([',', ']']).next())
            .and_then(|n| match n.trim().split_once(' ') {
                Some((v, "K")) => v.parse::<f64>().ok().map(|v| v * 1e3),
                None => n.trim().parse::<f64>().ok(),
                _ => None,
            })
            .unwrap_or(0.0);
        assert!(
            (196_000.0..=198_000.0).contains(&dropped),
            "P={p}: {dropped} rows dropped\n{probe}"
        );
    }
}
