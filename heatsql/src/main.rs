//! The `heatsql` command. The SQL shell (`-c`, `-f`, REPL) arrives with issue #5; until then the
//! binary reports the runtime each rank sees, which is also the first check of a new install:
//! `mpirun -n 2 heatsql --info`.

use std::process::ExitCode;

const HELP: &str = "\
heatsql — distributed SQL and array engine (run under mpirun/srun, or alone as one rank)

USAGE:
    heatsql --info       print each rank's runtime (ranks, threads, device), rank order
    heatsql --version    print the version
    heatsql --help       this text

The SQL shell (-c, -f, interactive) is not available yet; see README.md for the demo.";

fn main() -> ExitCode {
    // Freed Arrow/Parquet buffers stay in the process for the next row group (engine::memory).
    heatsql::memory::retain_freed_memory();
    let arg = std::env::args().nth(1).unwrap_or_else(|| "--help".into());
    match arg.as_str() {
        "--version" | "-V" => {
            println!("heatsql {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "--info" => {
            let comm = heatsql::Comm::world();
            let line = heatsql::runtime_info();
            let line = match comm.agree(line) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("heatsql: {e}");
                    return ExitCode::from(1);
                }
            };
            // Print in rank order through rank 0.
            match comm.gatherv(line.as_bytes(), 0) {
                Ok(Some((bytes, counts))) => {
                    let mut at = 0;
                    for c in counts {
                        println!("{}", String::from_utf8_lossy(&bytes[at..at + c]));
                        at += c;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("heatsql: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        "--help" | "-h" => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("heatsql: unknown argument '{other}'\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}
