//! A data pipeline embedding heatsql: quality gate, a custom per-rank transform in Rust, SQL
//! across ranks, Parquet out.
//!
//! ```sh
//! mpirun -n 4 target/debug/examples/pipeline READINGS STATIONS OUT_DIR
//! ```
//!
//! `READINGS` and `STATIONS` are Parquet locations shaped like the demo's
//! (`target/demo/readings/` and `target/demo/stations/` after `bash scripts/demo.sh`). Every
//! rank runs this program; data stays split over the ranks throughout:
//!
//! 1. **Quality gate.** A small report (readings and missing wind values per region) is
//!    collected on every rank, so every rank takes the same decision: more than 5 % missing
//!    stops the pipeline with the same error everywhere.
//! 2. **Custom transform.** Each rank takes its share of the clean readings
//!    (`collect_local`) and adds the apparent temperature (Steadman's formula) with plain
//!    Rust over Arrow arrays, then registers the result as a table split the same way
//!    (`register_batches`).
//! 3. **SQL across ranks.** A join with the stations and a daily aggregate per region, written
//!    with `COPY … TO` (one part per rank, atomic).
//! 4. **Summary.** A few rows collected on rank 0 only (`collect_on_root`) and printed.

use std::process::ExitCode;
use std::sync::Arc;

use heatsql::HeatContext;
use heatsql::datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, UInt64Array};
use heatsql::datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use heatsql::datafusion::arrow::util::pretty::pretty_format_batches;

type Error = Box<dyn std::error::Error>;

/// Largest share of readings without a wind value the gate accepts.
const MAX_MISSING: f64 = 0.05;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [readings, stations, output] = args.as_slice() else {
        if heatsql::Comm::world().rank() == 0 {
            eprintln!("usage: pipeline READINGS STATIONS OUT_DIR");
        }
        return ExitCode::from(2);
    };
    let ctx = HeatContext::new();
    match run(&ctx, readings, stations, output).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rank {}: pipeline failed: {e}", ctx.comm().rank());
            ExitCode::FAILURE
        }
    }
}

fn say(ctx: &HeatContext, text: impl AsRef<str>) {
    if ctx.comm().rank() == 0 {
        println!("{}", text.as_ref());
    }
}

async fn run(ctx: &HeatContext, readings: &str, stations: &str, output: &str) -> Result<(), Error> {
    ctx.register_parquet("readings", readings).await?;
    ctx.register_parquet("stations", stations).await?;

    // 1. Quality gate: the same small report on every rank, so the decision is the same too.
    let report = ctx
        .sql(
            "SELECT count(*) AS readings, count(*) - count(wind_ms) AS missing_wind \
             FROM readings",
        )
        .await?
        .collect()
        .await?;
    let (total, missing) = match report.first() {
        Some(b) if b.num_rows() == 1 => (
            b.column(0).as_primitive::<Int64Type>().value(0),
            b.column(1).as_primitive::<Int64Type>().value(0),
        ),
        _ => return Err("the quality report has no row".into()),
    };
    let share = missing as f64 / total.max(1) as f64;
    say(
        ctx,
        format!(
            "quality gate: {total} readings, {missing} without wind ({:.2} %, limit {:.0} %)",
            100.0 * share,
            100.0 * MAX_MISSING
        ),
    );
    if share > MAX_MISSING {
        return Err(format!("{:.2} % of the readings have no wind value", 100.0 * share).into());
    }

    // 2. This rank's clean rows, enriched in Rust, registered as a table split like them.
    let clean = ctx
        .sql(
            "SELECT station_id, ts, temperature_c, humidity_pct, wind_ms \
             FROM readings WHERE wind_ms IS NOT NULL",
        )
        .await?;
    // The same schema on every rank, also where a rank holds no rows.
    let mut fields: Vec<Field> = clean.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("apparent_c", DataType::Float64, true));
    let schema = Arc::new(Schema::new(fields));
    let mine: Result<Vec<RecordBatch>, String> = clean
        .collect_local()
        .await?
        .iter()
        .map(|b| with_apparent_temperature(b, &schema).map_err(|e| e.to_string()))
        .collect();
    // A local step that can fail on one rank: agree before the next collective, so every rank
    // stops with the same error instead of the others waiting in `register_batches`.
    let enriched = ctx.comm().agree(mine)?;
    let rows_here: usize = enriched.iter().map(RecordBatch::num_rows).sum();
    let per_rank = ctx.comm().allgather(&[rows_here as u64])?;
    say(ctx, format!("enriched readings per rank: {per_rank:?}"));
    ctx.register_batches("enriched", schema, enriched).await?;

    // 3. Join, aggregate, write.
    let written = ctx
        .sql(&format!(
            "COPY (SELECT s.region, date_trunc('day', e.ts) AS day, count(*) AS readings, \
                          avg(e.temperature_c) AS mean_c, avg(e.apparent_c) AS mean_apparent_c, \
                          min(e.apparent_c) AS min_apparent_c \
                   FROM enriched e JOIN stations s ON e.station_id = s.station_id \
                   GROUP BY s.region, date_trunc('day', e.ts)) \
             TO '{}' STORED AS PARQUET",
            output.replace('\'', "''")
        ))
        .await?
        .collect()
        .await?;
    let count = written
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .map_or(0, |c| c.value(0));
    say(ctx, format!("wrote {count} region-days to {output}"));

    // 4. A summary on rank 0 only (the other ranks hold no copy).
    let summary = ctx
        .sql(
            "SELECT s.region, round(avg(e.temperature_c), 2) AS mean_c, \
                    round(avg(e.apparent_c), 2) AS feels_like_c \
             FROM enriched e JOIN stations s ON e.station_id = s.station_id \
             GROUP BY s.region ORDER BY s.region",
        )
        .await?
        .collect_on_root()
        .await?;
    if ctx.comm().rank() == 0 {
        println!("{}", pretty_format_batches(&summary)?);
    }
    Ok(())
}

/// Adds `apparent_c`, Steadman's apparent temperature (Australian BoM form):
/// `T + 0.33 e − 0.70 v − 4.00`, with the vapour pressure `e = rh/100 · 6.105 ·
/// exp(17.27 T / (237.7 + T))` in hPa and `v` the wind speed in m/s.
fn with_apparent_temperature(batch: &RecordBatch, schema: &Arc<Schema>) -> Result<RecordBatch, Error> {
    let t = batch.column(2).as_primitive::<Float64Type>();
    let rh = batch.column(3).as_primitive::<Float64Type>();
    let v = batch.column(4).as_primitive::<Float64Type>();
    let apparent: Float64Array = (0..batch.num_rows())
        .map(|i| {
            if t.is_null(i) || rh.is_null(i) || v.is_null(i) {
                return None;
            }
            let (t, rh, v) = (t.value(i), rh.value(i), v.value(i));
            let e = rh / 100.0 * 6.105 * (17.27 * t / (237.7 + t)).exp();
            Some(t + 0.33 * e - 0.70 * v - 4.00)
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(apparent));
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
