//! `heatsql-slt`: runs `.slt` files on heatsql under `mpirun` (or on single-process DataFusion
//! with `--reference`). See the `heatsql_sql_tests` crate docs.

use std::path::PathBuf;
use std::process::ExitCode;

use heatsql_sql_tests::{Options, run};

const USAGE: &str = "usage: heatsql-slt [--reference] [--complete] [--with-rank-udf] [--data DIR] FILE.slt...";

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        files: Vec::new(),
        reference: false,
        complete: false,
        rank_udf: false,
        data_dir: Options::default_data_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reference" => options.reference = true,
            "--complete" => options.complete = true,
            "--with-rank-udf" => options.rank_udf = true,
            "--data" => {
                let dir = args.next().ok_or("--data needs a directory")?;
                options.data_dir = PathBuf::from(dir);
            }
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            file => options.files.push(PathBuf::from(file)),
        }
    }
    if options.files.is_empty() {
        return Err("no .slt files given".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("heatsql-slt: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("heatsql-slt: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = runtime.block_on(run(&options));
    if summary.rank == 0 {
        for failure in &summary.failures {
            println!("FAILED {}: {}\n", failure.location, failure.message);
        }
        if !summary.reference {
            println!("{}", cpu_kernels_line());
        }
        println!("{}", summary.line());
    }
    if summary.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `cpu kernels: on|off`: the policy the table functions ran with (`heatsql.cpu_kernels`'s
/// default, from `HEATSQL_CPU_KERNELS`), so that a run with them off can be told apart.
fn cpu_kernels_line() -> String {
    let on = engine::kernels::policy_from_env() == engine::kernels::Policy::Auto;
    format!("cpu kernels: {}", if on { "on" } else { "off" })
}
