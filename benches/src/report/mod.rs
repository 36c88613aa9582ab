//! The one-command benchmark and scaling report (`heatsql-bench-report`,
//! `scripts/bench.sh report`).
//!
//! For each operation (load, pca, svd, kmeans, dmd, matmul) it generates a deterministic
//! dataset, runs `heatsql-bench-scaling` under mpirun at every asked rank count on the same data
//! (strong scaling) and on P times the rows (weak scaling), each run in its own processes so
//! its peak memory is its own, and the single-process baselines (numpy, scikit-learn, PyDMD;
//! Heat under mpirun when asked) on the same files. It measures the machine's GEMM rate and
//! memory bandwidth, and writes `results.json`, `results.md` and PNG plots (see [`plots`]).

pub mod datasets;
pub mod limits;
pub mod machine;
pub mod markdown;
pub mod options;
pub mod plots;
pub mod runs;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

pub use limits::Limits;
pub use machine::Machine;
pub use options::{OPS, Options};
pub use runs::{Run, Scaling};

/// Relative difference of the check values across rank counts above which the report calls
/// the results inconsistent (f64 results differ only by summation order).
pub const CHECK_TOLERANCE: f64 = 1e-8;

/// Everything one report run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was asked.
    pub options: Options,
    /// Where it ran.
    pub machine: Machine,
    /// The machine's GEMM rate and memory bandwidth (unless skipped).
    pub limits: Option<Limits>,
    /// heatsql's runs (strong and weak series).
    pub runs: Vec<Run>,
    /// The baselines' runs.
    pub baselines: Vec<Run>,
    /// What could not be measured, and why (a failed run, a baseline's missing library, …).
    pub notes: Vec<String>,
    /// heatsql runs that failed (each also has a note).
    pub failed_runs: usize,
}

/// The agreement of one operation's check value across rank counts (strong series).
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// The operation.
    pub op: String,
    /// The check value at P = 1.
    pub reference: f64,
    /// The largest relative difference from it at the other rank counts.
    pub max_relative_difference: f64,
}

impl Agreement {
    /// Within [`CHECK_TOLERANCE`].
    pub fn holds(&self) -> bool {
        self.max_relative_difference <= CHECK_TOLERANCE
    }
}

impl Report {
    /// heatsql's run of `op` in `scaling` at `ranks` ranks (weak scaling at P = 1 is the strong
    /// run: the same data).
    pub fn run(&self, op: &str, scaling: Scaling, ranks: usize) -> Option<&Run> {
        let scaling = if ranks == 1 { Scaling::Strong } else { scaling };
        self.runs
            .iter()
            .find(|r| r.op == op && r.scaling == scaling && r.ranks == ranks)
    }

    /// The baselines of `op` (single-process first, then Heat by rank count).
    pub fn baselines_of(&self, op: &str) -> Vec<&Run> {
        self.baselines.iter().filter(|r| r.op == op).collect()
    }

    /// Strong-scaling speedup T(1)/T(P) of the measured step ([`Run::measured`]).
    pub fn speedup(&self, op: &str, ranks: usize) -> Option<f64> {
        Some(self.run(op, Scaling::Strong, 1)?.measured() / self.run(op, Scaling::Strong, ranks)?.measured())
    }

    /// Weak-scaling efficiency T(1)/T(P) of the measured step with P times the data.
    pub fn weak_efficiency(&self, op: &str, ranks: usize) -> Option<f64> {
        Some(self.run(op, Scaling::Weak, 1)?.measured() / self.run(op, Scaling::Weak, ranks)?.measured())
    }

    /// The fraction of the machine limit the compute (or, for `load`, the load) step reaches
    /// at `run`'s cores: GFLOP/s over the GEMM rate for operations with nominal flops, else
    /// the input's bytes per second over the memory bandwidth (a lower bound: one read).
    pub fn fraction_of_limit(&self, run: &Run) -> Option<(f64, &'static str)> {
        let limits = self.limits.as_ref()?;
        let cores = (run.ranks * run.threads).min(limits.cores).max(1);
        let seconds = run.measured();
        match run.flops {
            Some(f) => Some((f / seconds / 1e9 / limits.gemm_at(cores), "GEMM")),
            None => Some((run.bytes / seconds / 1e9 / limits.bandwidth_at(cores), "memory")),
        }
    }

    /// The check values' agreement across rank counts, per operation.
    pub fn agreements(&self) -> Vec<Agreement> {
        self.options
            .ops
            .iter()
            .filter_map(|op| {
                let reference = self.run(op, Scaling::Strong, 1)?.check;
                let max_relative_difference = self
                    .runs
                    .iter()
                    .filter(|r| &r.op == op && r.scaling == Scaling::Strong)
                    .map(|r| (r.check - reference).abs() / reference.abs().max(f64::MIN_POSITIVE))
                    .fold(0.0, f64::max);
                Some(Agreement {
                    op: op.clone(),
                    reference,
                    max_relative_difference,
                })
            })
            .collect()
    }

    /// The JSON document written to results.json.
    pub fn to_json(&self) -> Value {
        let o = &self.options;
        json!({
            "machine": self.machine.to_json(),
            "limits": self.limits.as_ref().map(Limits::to_json),
            "options": {
                "rows": o.rows, "cols": o.cols, "k": o.k, "kmeans_cols": o.kmeans_cols,
                "clusters": o.clusters, "dmd_points": o.dmd_points, "dmd_steps": o.dmd_steps,
                "dmd_rank": o.dmd_rank, "matmul_n": o.matmul_n, "row_groups": o.row_groups, "ranks": o.ranks,
                "rounds": o.rounds, "threads_per_rank": o.threads_per_rank, "ops": o.ops,
                "weak": o.weak,
            },
            "runs": self.runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "baselines": self.baselines.iter().map(Run::to_json).collect::<Vec<_>>(),
            "agreement": self.agreements().iter().map(|a| json!({
                "op": a.op, "reference": a.reference,
                "max_relative_difference": a.max_relative_difference, "holds": a.holds(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

fn say(msg: &str) {
    eprintln!("[report] {msg}");
}

/// Runs everything `o` asks for and returns the report (also on partial failure: failures
/// become notes, and the caller decides the exit status).
pub fn measure(o: &Options) -> Report {
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the program's directory");
    let machine = Machine::describe();
    let mut report = Report {
        options: o.clone(),
        limits: None,
        machine,
        runs: Vec::new(),
        baselines: Vec::new(),
        notes: Vec::new(),
        failed_runs: 0,
    };
    if o.limits {
        say("measuring the GEMM rate and the memory bandwidth");
        report.limits = Some(Limits::measure(report.machine.cores));
    }
    for op in &o.ops {
        let mut series = vec![(Scaling::Strong, 1)];
        if o.weak {
            series.extend(o.ranks.iter().filter(|&&p| p > 1).map(|&p| (Scaling::Weak, p)));
        }
        for (scaling, scale) in series {
            let d = datasets::dataset(o, op, scale);
            say(&format!("{op}: data {} × {} ({})", d.rows, d.cols, d.file.display()));
            datasets::generate(op, &d);
            let ranks: Vec<usize> = match scaling {
                Scaling::Strong => o.ranks.clone(),
                Scaling::Weak => vec![scale],
            };
            for p in ranks {
                say(&format!("{op}: heatsql, {} scaling, P = {p}", scaling.name()));
                match runs::heatsql_run(&bin_dir, op, &d, p, o.threads_per_rank, o.rounds, scaling) {
                    Ok(r) => report.runs.push(r),
                    Err(e) => {
                        report.failed_runs += 1;
                        report
                            .notes
                            .push(format!("{op} at P = {p} ({}) failed: {e}", scaling.name()));
                    }
                }
            }
            if scaling == Scaling::Strong {
                if o.baselines {
                    say(&format!("{op}: baseline"));
                    match python_baseline(o, op, &d) {
                        Ok(r) => report.baselines.push(r),
                        Err(e) => report.notes.push(format!("{op}: baseline not run: {e}")),
                    }
                }
                if let Some(py) = &o.heat_python {
                    for &p in &o.ranks {
                        say(&format!("{op}: Heat at P = {p}"));
                        match heat_baseline(o, py, op, &d, p) {
                            Ok(r) => report.baselines.push(r),
                            Err(e) => report.notes.push(format!("{op}: Heat at P = {p} not run: {e}")),
                        }
                    }
                }
            }
        }
    }
    report
}

/// `cmd benches/python/SCRIPT OP FILE ROUNDS K [INIT]` (the baseline scripts' arguments; the
/// rounds include the warm-up).
fn script_args(mut c: Command, script: &str, o: &Options, op: &str, d: &datasets::Dataset) -> Command {
    c.arg(options::repo_root().join("benches/python").join(script))
        .arg(op)
        .arg(&d.file)
        .arg((o.rounds + 1).to_string())
        .arg(d.k.to_string());
    if let Some(init) = &d.init {
        c.arg(init);
    }
    c
}

fn python_baseline(o: &Options, op: &str, d: &datasets::Dataset) -> Result<Run, String> {
    if !o.python.exists() {
        return Err(format!("no Python at {}", o.python.display()));
    }
    let c = script_args(Command::new(&o.python), "report_baselines.py", o, op, d);
    Run::from_output(&runs::output_of(c)?, "baseline", Scaling::Strong)
}

fn heat_baseline(o: &Options, py: &Path, op: &str, d: &datasets::Dataset, p: usize) -> Result<Run, String> {
    let mut c = runs::mpirun(p, o.threads_per_rank);
    c.arg(py);
    let c = script_args(c, "heat_baseline.py", o, op, d);
    Run::from_output(&runs::output_of(c)?, "Heat", Scaling::Strong)
}

/// Writes results.json, results.md and the plots into `o.out_dir`; returns the Markdown.
pub fn write(report: &Report) -> Result<String, String> {
    let dir = &report.options.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(&report.to_json()).expect("JSON");
    std::fs::write(dir.join("results.json"), json + "\n").map_err(|e| format!("results.json: {e}"))?;
    let pngs = plots::draw_all(report, dir)?;
    let md = markdown::render(report, &pngs);
    std::fs::write(dir.join("results.md"), &md).map_err(|e| format!("results.md: {e}"))?;
    Ok(md)
}
