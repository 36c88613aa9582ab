//! The embedding examples (`examples/feature_extraction.rs`, `examples/pipeline.rs`) and the
//! demo job (`examples/demo.sql`) run under `mpirun` at P = 1..4, including ranks that own no
//! rows, and their Parquet outputs are compared with a single-process reference computed here
//! by plain DataFusion on the same input.

#[path = "../../checks/src/mpirun.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampSecondType};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use support::mpirun;

const SHELL: &str = env!("CARGO_BIN_EXE_heatsql");

/// Absolute tolerance on z-scores and relative tolerance on means: the distributed reductions
/// merge partial sums in another order than the reference, so results differ by rounding only.
const TOL: f64 = 1e-9;

/// A cargo example built beside the test binaries (`target/debug/examples/NAME`).
fn example(name: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let debug = exe.parent().and_then(Path::parent).expect("target/debug");
    debug.join("examples").join(name).display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Readings (`stations` stations, `rows` hourly readings in all: `rows / stations` hours each)
/// and the stations, written by the heatsql shell with `row_group` rows per row group.
/// `wind_ms` is NULL where `value % null_every = 5`, and for all of station 0's first day (a
/// station-day without any wind reading).
fn make_data(dir: &Path, null_every: u32, row_group: u32, stations: u32, rows: u32) -> (String, String) {
    let (readings, stations_dir) = (dir.join("readings/"), dir.join("stations/"));
    let sql = format!(
        "COPY (SELECT value AS station_id, 'station-' || CAST(value AS VARCHAR) AS name, \
                CASE value % 3 WHEN 0 THEN 'north' WHEN 1 THEN 'south' ELSE 'west' END AS region \
               FROM range({stations})) TO '{stations_path}' STORED AS PARQUET; \
         COPY (SELECT value % {stations} AS station_id, \
                 to_timestamp_seconds(1780272000 + (value / {stations}) * 3600) AS ts, \
                 10.0 + 8.0 * sin(value * 0.37) AS temperature_c, \
                 50.0 + 30.0 * cos(value * 0.11) AS humidity_pct, \
                 1000.0 + (value % 17) AS pressure_hpa, \
                 CASE WHEN value % {null_every} = 5 OR (value % {stations} = 0 AND value / {stations} < 24) \
                      THEN NULL ELSE 1.0 + (value % 13) * (0.7 + 0.2 * sin(value * 0.05)) END AS wind_ms \
               FROM range({rows})) TO '{readings_path}' STORED AS PARQUET OPTIONS (max_row_group_size {row_group})",
        stations_path = stations_dir.display(),
        readings_path = readings.display(),
    );
    let run = mpirun(SHELL, 2, &["-q", "-c", &sql], &[], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    (readings.display().to_string(), stations_dir.display().to_string())
}

/// A plain single-process DataFusion query over local Parquet directories.
fn reference(tables: &[(&str, &str)], sql: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let ctx = SessionContext::new();
        for (name, dir) in tables {
            ctx.register_parquet(*name, *dir, ParquetReadOptions::default())
                .await
                .expect("register");
        }
        ctx.sql(sql).await.expect("plan").collect().await.expect("run")
    })
}

fn f64s(batches: &[RecordBatch], col: usize) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| b.column(col).as_primitive::<Float64Type>().values().to_vec())
        .collect()
}

fn i64s(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| match b.column(col).data_type() {
            datafusion::arrow::datatypes::DataType::Timestamp(..) => {
                b.column(col).as_primitive::<TimestampSecondType>().values().to_vec()
            }
            _ => b.column(col).as_primitive::<Int64Type>().values().to_vec(),
        })
        .collect()
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = datafusion::arrow::compute::cast(b.column(col), &datafusion::arrow::datatypes::DataType::Utf8)
                .expect("a string column");
            let c = c.as_string::<i32>();
            (0..c.len()).map(|i| c.value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

fn parts(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// The reference features: (station, day) → z-scores of the 5 daily features, standardised
/// with the sample standard deviation, days without wind dropped.
fn reference_features(readings: &str) -> HashMap<(i64, i64), Vec<f64>> {
    let daily = reference(
        &[("readings", readings)],
        "SELECT station_id, CAST(date_trunc('day', ts) AS BIGINT) AS day, avg(temperature_c), \
                max(temperature_c) - min(temperature_c), avg(humidity_pct), avg(pressure_hpa), max(wind_ms) \
         FROM readings GROUP BY 1, 2 HAVING max(wind_ms) IS NOT NULL",
    );
    let keys: Vec<(i64, i64)> = i64s(&daily, 0).into_iter().zip(i64s(&daily, 1)).collect();
    let cols: Vec<Vec<f64>> = (2..7).map(|c| f64s(&daily, c)).collect();
    let n = keys.len() as f64;
    let z: Vec<Vec<f64>> = cols
        .iter()
        .map(|v| {
            let mean = v.iter().sum::<f64>() / n;
            let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            v.iter().map(|x| (x - mean) / sd).collect()
        })
        .collect();
    keys.into_iter()
        .enumerate()
        .map(|(i, k)| (k, z.iter().map(|c| c[i]).collect()))
        .collect()
}

fn check_features(out: &str, want: &HashMap<(i64, i64), Vec<f64>>, p: usize) {
    let got = reference(
        &[("f", out)],
        "SELECT station_id, CAST(day AS BIGINT), mean_c_z, range_c_z, humidity_pct_z, pressure_hpa_z, gust_ms_z FROM f",
    );
    let keys: Vec<(i64, i64)> = i64s(&got, 0).into_iter().zip(i64s(&got, 1)).collect();
    let got_keys: std::collections::HashSet<_> = keys.iter().copied().collect();
    let want_keys: std::collections::HashSet<_> = want.keys().copied().collect();
    assert_eq!(got_keys.len(), keys.len(), "P={p}: a station-day written twice");
    assert_eq!(got_keys, want_keys, "P={p}: the station-days written");
    let cols: Vec<Vec<f64>> = (2..7).map(|c| f64s(&got, c)).collect();
    for (i, k) in keys.iter().enumerate() {
        let w = want.get(k).unwrap_or_else(|| panic!("P={p}: unexpected row {k:?}"));
        for (j, c) in cols.iter().enumerate() {
            assert!(
                (c[i] - w[j]).abs() <= TOL,
                "P={p} row {k:?} feature {j}: {} vs {}",
                c[i],
                w[j]
            );
        }
    }
    assert_eq!(parts(out), p, "P={p}: one part file per rank");
}

#[test]
fn feature_extraction_matches_a_single_process_reference_at_p_1_to_4() {
    let dir = scratch("features");
    let (readings, _) = make_data(&dir, 50, 97, 12, 2880);
    let want = reference_features(&readings);
    // 12 stations × 10 days, without station 0's first day (no wind reading: dropped).
    assert_eq!(want.len(), 119, "reference rows");
    // One row group only: at P > 1 every rank but one reads nothing.
    let one = scratch("features-one-group");
    let (one_group, _) = make_data(&one, 50, 100_000, 12, 2880);
    // 2 stations × 2 days minus the dropped one: 3 rows, fewer than the ranks at P = 4.
    let few = scratch("features-few");
    let (few_groups, _) = make_data(&few, 50, 97, 2, 96);
    let want_few = reference_features(&few_groups);
    assert_eq!(want_few.len(), 3, "reference rows (few)");
    for p in 1..=4 {
        let cases = [
            (&readings, &want, "97-row groups"),
            (&one_group, &want, "one row group"),
            (&few_groups, &want_few, "3 rows"),
        ];
        for (i, (input, want, what)) in cases.into_iter().enumerate() {
            let out = dir.join(format!("out-{p}-{i}/")).display().to_string();
            let run = mpirun(
                &example("feature_extraction"),
                p,
                &[input, &out],
                &[],
                Duration::from_secs(120),
            );
            assert_eq!(run.code, Some(0), "P={p} {what}: {}\n{}", run.stdout, run.stderr);
            assert!(run.stdout.contains("daily features: "), "P={p}: {}", run.stdout);
            check_features(&out, want, p);
        }
        eprintln!("[examples] P={p}: feature_extraction equals the reference (|Δz| ≤ {TOL:e})");
    }
    // A missing input fails on every rank with the path named, and writes nothing.
    let out = dir.join("out-missing/").display().to_string();
    let run = mpirun(
        &example("feature_extraction"),
        3,
        &["/nonexistent/x/", &out],
        &[],
        Duration::from_secs(60),
    );
    assert_ne!(run.code, Some(0));
    assert_eq!(
        run.stderr.matches("path '/nonexistent/x/' not found").count(),
        3,
        "{}",
        run.stderr
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn pipeline_matches_a_single_process_reference_and_its_gate_stops_every_rank() {
    let dir = scratch("pipeline");
    let (readings, stations) = make_data(&dir, 50, 97, 12, 2880);
    let apparent = "r.temperature_c + 0.33 * (r.humidity_pct / 100.0 * 6.105 \
                    * exp(17.27 * r.temperature_c / (237.7 + r.temperature_c))) - 0.70 * r.wind_ms - 4.0";
    let want = reference(
        &[("readings", &readings), ("stations", &stations)],
        &format!(
            "SELECT s.region, CAST(date_trunc('day', r.ts) AS BIGINT) AS day, count(*), \
                    avg(r.temperature_c), avg({apparent}), min({apparent}) \
             FROM readings r JOIN stations s ON r.station_id = s.station_id WHERE r.wind_ms IS NOT NULL \
             GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    );
    for p in 1..=4 {
        let out = dir.join(format!("out-{p}/")).display().to_string();
        let run = mpirun(
            &example("pipeline"),
            p,
            &[&readings, &stations, &out],
            &[],
            Duration::from_secs(120),
        );
        assert_eq!(run.code, Some(0), "P={p}: {}\n{}", run.stdout, run.stderr);
        // 58 where value % 50 = 5, and the 24 readings of station 0's first day.
        assert!(
            run.stdout.contains("quality gate: 2880 readings, 82 without wind"),
            "P={p}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("| region |"), "P={p}: {}", run.stdout);
        let got = reference(
            &[("o", &out)],
            "SELECT CAST(region AS VARCHAR), CAST(day AS BIGINT), readings, mean_c, mean_apparent_c, \
                    min_apparent_c FROM o ORDER BY 1, 2",
        );
        assert_eq!(strings(&got, 0), strings(&want, 0), "P={p}: regions");
        assert_eq!(i64s(&got, 1), i64s(&want, 1), "P={p}: days");
        assert_eq!(i64s(&got, 2), i64s(&want, 2), "P={p}: readings per region-day");
        for c in [3, 4, 5] {
            for (g, w) in f64s(&got, c).iter().zip(f64s(&want, c)) {
                assert!((g - w).abs() <= TOL * w.abs().max(1.0), "P={p} column {c}: {g} vs {w}");
            }
        }
        assert_eq!(parts(&out), p, "P={p}: one part file per rank");
        eprintln!("[examples] P={p}: pipeline equals the reference (relative {TOL:e})");
    }
    // 1 reading in 8 (and station 0's first day) without wind: the gate stops every rank and
    // nothing is written.
    let bad = scratch("pipeline-bad");
    let (readings, stations) = make_data(&bad, 8, 97, 12, 2880);
    let out = bad.join("out/").display().to_string();
    for p in [1, 3] {
        let run = mpirun(
            &example("pipeline"),
            p,
            &[&readings, &stations, &out],
            &[],
            Duration::from_secs(60),
        );
        assert_ne!(run.code, Some(0), "P={p}");
        assert_eq!(
            run.stderr.matches("13.33 % of the readings have no wind value").count(),
            p,
            "P={p}: {}",
            run.stderr
        );
        assert!(!Path::new(&out).exists(), "P={p}");
    }
}

#[test]
fn the_demo_job_runs_and_explains_itself_at_p_1_to_4() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let job = root.join("examples/demo.sql").display().to_string();
    for p in 1..=4 {
        // The job writes under target/demo/ relative to where it runs.
        let cwd = scratch(&format!("demo-{p}"));
        let run = support::mpirun_in(&cwd, SHELL, p, &["--echo", "-f", &job], &[], Duration::from_secs(300));
        assert_eq!(run.code, Some(0), "P={p}: {}\n{}", run.stdout, run.stderr);
        let out = &run.stdout;
        // The transcript shows each step's comment and statement before its result.
        assert!(out.contains("-- 4. A join and a GROUP BY across ranks"), "P={p}: {out}");
        assert!(out.contains("| region | readings |"), "P={p}: {out}");
        assert!(out.contains("| 69120    |"), "P={p}: {out}");
        // The EXPLAIN output itself (the comments name the exchanges too): one partition per
        // rank under mpirun (HEATSQL_THREADS=1 below); a single rank runs DataFusion's own
        // plan, with no MPI exchange.
        let plan = &out[out.find("physical_plan:").expect("an EXPLAIN")..];
        let plan = &plan[..plan
            .find(" rows fetched")
            .or_else(|| plan.find(" row fetched"))
            .expect("its end")];
        if p == 1 {
            assert!(!plan.contains("Mpi") && plan.contains("HashJoinExec"), "P={p}: {plan}");
        } else {
            let exchange = format!("MpiShuffleExec: partitioning=Hash([region@0], {p})");
            assert!(plan.contains(&exchange), "P={p}: {plan}");
        }
        assert!(out.contains("rows per rank: "), "P={p}: {out}");
        assert!(out.contains("| 2880  |"), "P={p}: {out}");
        // PCA of the features: three components' variance ratios, the model, region means.
        assert!(out.contains("| component | ratio "), "P={p}: {out}");
        assert!(out.contains("| feature      | pc1 "), "P={p}: {out}");
        assert!(out.contains("| region | pc1 "), "P={p}: {out}");
        assert_eq!(
            parts(&cwd.join("target/demo/features/").display().to_string()),
            p,
            "P={p}"
        );
        eprintln!("[examples] P={p}: demo.sql ran ({:.1} s)", run.elapsed.as_secs_f64());
    }
}
