//! The `heatsql` command: a SQL shell in the spirit of datafusion-cli that runs under `mpirun`
//! or `srun` (every rank runs every statement; rank 0 reads input and prints), or alone as
//! one rank. `heatsql --help` lists the options.

mod shell;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Freed Arrow/Parquet buffers stay in the process for the next row group (engine::memory).
    heatsql::memory::retain_freed_memory();
    let args = shell::Args::parse();
    // SAFETY: no other thread runs yet; the engine reads these when it initialises.
    unsafe {
        if let Some(d) = &args.device {
            std::env::set_var("HEATSQL_DEVICE", d);
        }
        if let Some(t) = args.threads {
            std::env::set_var("HEATSQL_THREADS", t.to_string());
        }
    }
    if args.info {
        return info();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heatsql: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let code = runtime.block_on(shell::run(args));
    ExitCode::from(code as u8)
}

/// `--info`: each rank's runtime, printed in rank order by rank 0.
fn info() -> ExitCode {
    let comm = heatsql::start();
    let line = heatsql::runtime_info(comm);
    match comm.gatherv(line.as_bytes(), 0) {
        Ok(Some((bytes, counts))) => {
            let mut at = 0;
            for c in counts {
                println!("{}", String::from_utf8_lossy(&bytes[at..at + c]));
                at += c;
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("heatsql: {e}");
            ExitCode::from(1)
        }
    }
}
