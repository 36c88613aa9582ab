//! Parquet → features → Parquet, the job heatsql is built for, as a Rust program.
//!
//! ```sh
//! mpirun -n 4 target/debug/examples/feature_extraction READINGS OUT_DIR
//! ```
//!
//! `READINGS` is a Parquet location (file, directory, glob or `s3://…` URL) of sensor readings
//! with columns `station_id`, `ts`, `temperature_c`, `humidity_pct`, `pressure_hpa`, `wind_ms`
//! (the demo's `target/demo/readings/` after `bash scripts/demo.sh`). Every rank runs this
//! same program:
//!
//! 1. SQL computes daily features per station across the ranks (a distributed GROUP BY);
//! 2. the result becomes a row-split DNDarray (days × 5 features), rows never leaving their
//!    rank, with `station_id` and `day` kept alongside;
//! 3. custom tensor code standardises each feature with its global mean and standard
//!    deviation (one collective each), the step SQL cannot express well;
//! 4. the standardised array goes back into SQL as a table and is written with `COPY … TO`,
//!    one part file per rank, atomically.
//!
//! Rank 0 prints what happened. The exit code is non-zero on every rank if any step fails.

use std::process::ExitCode;

use heatsql::convert::{LoadSpec, NullPolicy};
use heatsql::datafusion::arrow::array::UInt64Array;
use heatsql::{DNDarray, HeatContext};

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        if heatsql::Comm::world().rank() == 0 {
            eprintln!("usage: feature_extraction READINGS OUT_DIR");
        }
        return ExitCode::from(2);
    };
    let ctx = HeatContext::new();
    match run(&ctx, input, output).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rank {}: feature_extraction failed: {e}", ctx.comm().rank());
            ExitCode::FAILURE
        }
    }
}

/// Prints on rank 0 only.
fn say(ctx: &HeatContext, text: String) {
    if ctx.comm().rank() == 0 {
        println!("{text}");
    }
}

async fn run(ctx: &HeatContext, input: &str, output: &str) -> Result<(), Error> {
    let p = ctx.comm().size();
    ctx.register_parquet("readings", input).await?;

    // 1. Daily features per station, computed where the rows are (no ORDER BY: the result
    //    stays distributed, each rank holding the groups the shuffle gave it).
    let daily = ctx
        .sql(
            "SELECT station_id, date_trunc('day', ts) AS day, \
                    avg(temperature_c) AS mean_c, \
                    max(temperature_c) - min(temperature_c) AS range_c, \
                    avg(humidity_pct) AS humidity_pct, \
                    avg(pressure_hpa) AS pressure_hpa, \
                    max(wind_ms) AS gust_ms \
             FROM readings GROUP BY station_id, date_trunc('day', ts)",
        )
        .await?;

    // 2. Into a row-split DNDarray: the five numeric features as f64, station and day kept
    //    row by row; days without any wind reading are dropped.
    let mut spec = LoadSpec::new("feature_extraction");
    spec.columns = Some(
        ["mean_c", "range_c", "humidity_pct", "pressure_hpa", "gust_ms"]
            .map(String::from)
            .to_vec(),
    );
    spec.keep = vec!["station_id".into(), "day".into()];
    spec.nulls = NullPolicy::Drop;
    let loaded = daily.to_dndarray(&spec).await?;
    let x = &loaded.array;
    let [rows, cols] = x.gshape() else {
        return Err("expected a 2-dimensional array".into());
    };
    let local_rows = ctx.comm().allgather(&[x.lshape()[0]])?;
    say(
        ctx,
        format!("daily features: {rows} rows × {cols} columns on {p} rank(s), rows per rank {local_rows:?}"),
    );

    // 3. Standardise with the global mean and (sample) standard deviation of each column:
    //    replicated 1 × 5 results of one collective each; the rows are scaled in place.
    let mean = x.mean(Some(0))?.into_local();
    let sd = x.var(Some(0), 1)?.into_local().sqrt();
    let z = DNDarray::from_pieces((x.local() - &mean) / &sd, 0)?;
    let means: Vec<f64> = Vec::try_from(&mean.flatten(0, -1))?;
    let sds: Vec<f64> = Vec::try_from(&sd.flatten(0, -1))?;
    for ((name, m), s) in loaded.columns.iter().zip(&means).zip(&sds) {
        say(ctx, format!("  {name:<13} mean {m:>10.3}  sd {s:>8.3}"));
    }

    // 4. Back into SQL (a table split like the array) and out as Parquet.
    let names: Vec<String> = loaded.columns.iter().map(|c| format!("{c}_z")).collect();
    ctx.register_array("features", &z, &names, loaded.keep.as_ref()).await?;
    let written = ctx
        .sql(&format!(
            "COPY (SELECT * FROM features) TO '{}' STORED AS PARQUET",
            output.replace('\'', "''")
        ))
        .await?
        .collect()
        .await?;
    let count = written
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .map_or(0, |c| c.value(0));
    say(ctx, format!("wrote {count} rows to {output} ({p} part file(s))"));
    Ok(())
}
