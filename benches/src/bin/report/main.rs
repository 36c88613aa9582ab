//! `heatsql-bench-report`: the one-command benchmark and scaling report (see
//! `benches::report`). `scripts/bench.sh report` installs the baselines, builds and runs it.
//! Exits 0 when every heatsql run succeeded and the results agree across rank counts, 1
//! otherwise (the report is written in both cases; a baseline that cannot run is a note, not a
//! failure), 2 on bad arguments.

use benches::report::{self, Options};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", report::options::USAGE);
        return;
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("heatsql-bench-report: {e}");
            std::process::exit(2);
        }
    };
    let r = report::measure(&options);
    match report::write(&r) {
        Ok(md) => {
            print!("{md}");
            eprintln!("[report] written to {}", options.out_dir.display());
        }
        Err(e) => {
            eprintln!("heatsql-bench-report: {e}");
            std::process::exit(1);
        }
    }
    let failed_runs = r.failed_runs;
    let disagree: Vec<_> = r
        .agreements()
        .into_iter()
        .filter(|a| !a.holds())
        .map(|a| a.op)
        .collect();
    if failed_runs > 0 || !disagree.is_empty() {
        eprintln!(
            "heatsql-bench-report: {failed_runs} heatsql run(s) failed; results differ across P for: {disagree:?}"
        );
        std::process::exit(1);
    }
}
