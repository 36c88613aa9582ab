//! Measurements: one heatsql run (`heatsql-bench-scaling` under mpirun) or one baseline run
//! (a Python script, Heat under mpirun), each reporting every round's load and compute seconds
//! and peak memory as one JSON line; the report keeps medians after the warm-up round.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::datasets::Dataset;

/// Strong scaling (the same data at every P) or weak scaling (rows × P).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// The same data at every P.
    Strong,
    /// P times the rows at P ranks.
    Weak,
}

impl Scaling {
    /// `strong` or `weak`.
    pub fn name(self) -> &'static str {
        match self {
            Scaling::Strong => "strong",
            Scaling::Weak => "weak",
        }
    }
}

/// One measured run: of heatsql at `ranks` ranks, or of a baseline (`system` names it).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// `heatsql`, or the baseline (e.g. `scikit-learn PCA (covariance_eigh)`, `Heat 1.9 …`).
    pub system: String,
    /// The operation (one of [`super::OPS`]).
    pub op: String,
    /// Which series the run belongs to.
    pub scaling: Scaling,
    /// MPI ranks (1 for the single-process baselines).
    pub ranks: usize,
    /// Compute threads per rank.
    pub threads: usize,
    /// Rows × columns of the input.
    pub rows: i64,
    /// Columns of the input.
    pub cols: i64,
    /// Seconds of every round's load (Parquet → array), the warm-up first.
    pub load_s: Vec<f64>,
    /// Seconds of every round's compute step, the warm-up first.
    pub compute_s: Vec<f64>,
    /// Peak resident memory of each rank (bytes).
    pub peak_rss_bytes: Vec<f64>,
    /// A value that must agree across rank counts (σ₁, inertia, |λ₁|, Σ entries of C, …).
    pub check: f64,
    /// Nominal floating-point operations of the compute step, where they mean something.
    pub flops: Option<f64>,
    /// Bytes the compute step reads at least once (the input array).
    pub bytes: f64,
}

/// The median of `times` without the first (warm-up) round.
pub fn median_after_warmup(times: &[f64]) -> f64 {
    let mut t: Vec<f64> = times.iter().skip(1).copied().collect();
    if t.is_empty() {
        return f64::NAN;
    }
    t.sort_by(|a, b| a.total_cmp(b));
    let m = t.len() / 2;
    if t.len() % 2 == 1 {
        t[m]
    } else {
        0.5 * (t[m - 1] + t[m])
    }
}

fn floats(v: &Value, key: &str) -> Result<Vec<f64>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("'{key}' is missing or not a list"))?
        .iter()
        .map(|x| x.as_f64().ok_or_else(|| format!("'{key}' holds a non-number")))
        .collect()
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("'{key}' is missing or not a number"))
}

impl Run {
    /// Reads the JSON object a measuring program printed (see `heatsql-bench-scaling`).
    pub fn from_json(v: &Value, system: &str, scaling: Scaling) -> Result<Run, String> {
        let run = Run {
            system: v.get("system").and_then(Value::as_str).unwrap_or(system).to_string(),
            op: v
                .get("op")
                .and_then(Value::as_str)
                .ok_or("'op' is missing")?
                .to_string(),
            scaling,
            ranks: number(v, "ranks")? as usize,
            threads: number(v, "threads")? as usize,
            rows: number(v, "rows")? as i64,
            cols: number(v, "cols")? as i64,
            load_s: floats(v, "load_s")?,
            compute_s: floats(v, "compute_s")?,
            peak_rss_bytes: floats(v, "peak_rss_bytes")?,
            check: number(v, "check").unwrap_or(f64::NAN),
            flops: v.get("flops").and_then(Value::as_f64),
            bytes: number(v, "bytes").unwrap_or(0.0),
        };
        if run.load_s.len() < 2 || run.compute_s.len() != run.load_s.len() {
            return Err(format!(
                "expected at least 2 rounds of load and compute times, got {} and {}",
                run.load_s.len(),
                run.compute_s.len()
            ));
        }
        Ok(run)
    }

    /// Finds the last line holding a JSON object in a program's output and reads it.
    pub fn from_output(out: &str, system: &str, scaling: Scaling) -> Result<Run, String> {
        let line = out
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or("no JSON line in the output")?;
        let v: Value = serde_json::from_str(line).map_err(|e| format!("bad JSON line ({e}): {line}"))?;
        Run::from_json(&v, system, scaling)
    }

    /// Median load seconds after the warm-up.
    pub fn load(&self) -> f64 {
        median_after_warmup(&self.load_s)
    }

    /// Median compute seconds after the warm-up.
    pub fn compute(&self) -> f64 {
        median_after_warmup(&self.compute_s)
    }

    /// The step the operation is about: the load for `load`, else the compute step.
    pub fn measured(&self) -> f64 {
        if self.op == "load" { self.load() } else { self.compute() }
    }

    /// Load + compute.
    pub fn end_to_end(&self) -> f64 {
        self.load() + self.compute()
    }

    /// The largest rank's peak resident memory (bytes).
    pub fn peak_rss_max(&self) -> f64 {
        self.peak_rss_bytes.iter().copied().fold(0.0, f64::max)
    }

    /// The JSON form kept in results.json (raw rounds and the medians).
    pub fn to_json(&self) -> Value {
        json!({
            "system": self.system,
            "op": self.op,
            "scaling": self.scaling.name(),
            "ranks": self.ranks,
            "threads": self.threads,
            "rows": self.rows,
            "cols": self.cols,
            "load_s": self.load_s,
            "compute_s": self.compute_s,
            "load_median_s": self.load(),
            "compute_median_s": self.compute(),
            "peak_rss_bytes": self.peak_rss_bytes,
            "check": self.check,
            "flops": self.flops,
            "bytes": self.bytes,
        })
    }
}

/// Runs `cmd`, returning its standard output, or an error with its status and the end of its
/// standard error.
pub fn output_of(mut cmd: Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("cannot start {shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{shown} failed ({}):\n{}", out.status, tail.join("\n")));
    }
    Ok(stdout)
}

/// `mpirun` for `ranks` ranks of `threads` compute threads each, allowed to run as root and
/// to oversubscribe (4 ranks on 2 cores), ranks unbound when they run several threads.
pub fn mpirun(ranks: usize, threads: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("HEATSQL_THREADS", threads.to_string())
        .env("OMP_NUM_THREADS", threads.to_string())
        .args(["--oversubscribe", "-n", &ranks.to_string()]);
    if threads > 1 {
        c.args(["--bind-to", "none"]);
    }
    c
}

/// Runs `heatsql-bench-scaling` (next to this program) for `op` on `d` at `ranks` ranks.
pub fn heatsql_run(
    bin_dir: &Path,
    op: &str,
    d: &Dataset,
    ranks: usize,
    threads: usize,
    rounds: usize,
    scaling: Scaling,
) -> Result<Run, String> {
    let mut c = mpirun(ranks, threads);
    c.arg(bin_dir.join("heatsql-bench-scaling"))
        .arg(op)
        .arg(&d.file)
        .arg((rounds + 1).to_string())
        .arg(d.k.to_string());
    if let Some(init) = &d.init {
        c.arg(init);
    }
    Run::from_output(&output_of(c)?, "heatsql", scaling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_drop_the_warmup() {
        assert_eq!(median_after_warmup(&[9.0, 3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_after_warmup(&[9.0, 4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median_after_warmup(&[1.0]).is_nan());
    }

    #[test]
    fn reads_the_last_json_line() {
        let out = "file x\n{\"op\":\"pca\",\"ranks\":2,\"threads\":1,\"rows\":10,\"cols\":3,\
                   \"load_s\":[5,1,2,3],\"compute_s\":[5,4,6,5],\"peak_rss_bytes\":[1e9,2e9],\
                   \"check\":0.5,\"flops\":null,\"bytes\":240}\n";
        let r = Run::from_output(out, "heatsql", Scaling::Strong).unwrap();
        assert_eq!((r.op.as_str(), r.ranks, r.rows), ("pca", 2, 10));
        assert_eq!((r.load(), r.compute(), r.end_to_end()), (2.0, 5.0, 7.0));
        assert_eq!(r.peak_rss_max(), 2e9);
        assert_eq!(r.flops, None);
        assert_eq!(r.to_json()["compute_median_s"], 5.0);
        let e = Run::from_output("{\"op\":\"pca\"}", "heatsql", Scaling::Strong).unwrap_err();
        assert!(e.contains("'ranks' is missing"), "{e}");
        assert!(Run::from_output("nothing", "heatsql", Scaling::Strong).is_err());
    }
}
