//! The report's command line: dataset sizes, rank counts, rounds, which operations and
//! baselines, where to write.

use std::path::PathBuf;

/// The operations the report measures, in report order.
pub const OPS: [&str; 6] = ["load", "pca", "svd", "kmeans", "dmd", "matmul"];

/// Everything one report run is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Rows of the tall tables (load, pca, svd, kmeans) at P = 1.
    pub rows: usize,
    /// Columns of the load/pca/svd table.
    pub cols: usize,
    /// Components (pca) and singular triplets (svd).
    pub k: i64,
    /// Columns of the k-means table.
    pub kmeans_cols: usize,
    /// Clusters.
    pub clusters: i64,
    /// State points (rows) of the DMD table at P = 1.
    pub dmd_points: usize,
    /// Snapshots (columns) of the DMD table.
    pub dmd_steps: usize,
    /// DMD rank.
    pub dmd_rank: i64,
    /// Side of the square matmul operand at P = 1.
    pub matmul_n: usize,
    /// Row groups per generated file (ranks read whole row groups).
    pub row_groups: usize,
    /// Rank counts, ascending, starting at 1.
    pub ranks: Vec<usize>,
    /// Measured rounds per run (one warm-up round more is run and dropped; ≥ 3).
    pub rounds: usize,
    /// Compute threads per rank (`HEATSQL_THREADS`).
    pub threads_per_rank: usize,
    /// Operations to run (a subset of [`OPS`], in report order).
    pub ops: Vec<String>,
    /// Also measure weak scaling (rows × P).
    pub weak: bool,
    /// Run the Python baselines (numpy, scikit-learn, PyDMD).
    pub baselines: bool,
    /// Python interpreter of the baselines.
    pub python: PathBuf,
    /// Also run Heat (mpi4py) at every rank count, with this Python.
    pub heat_python: Option<PathBuf>,
    /// Measure the machine's GEMM peak and memory bandwidth.
    pub limits: bool,
    /// Where generated datasets are cached.
    pub data_dir: PathBuf,
    /// Where results.json, results.md and the plots go.
    pub out_dir: PathBuf,
}

/// The repository root (the benches crate's parent).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches has a parent")
        .to_path_buf()
}

impl Default for Options {
    fn default() -> Self {
        let root = repo_root();
        Options {
            rows: 1_000_000,
            cols: 32,
            k: 8,
            kmeans_cols: 16,
            clusters: 8,
            dmd_points: 250_000,
            dmd_steps: 64,
            dmd_rank: 16,
            matmul_n: 2048,
            row_groups: 24,
            ranks: vec![1, 2],
            rounds: 3,
            threads_per_rank: 1,
            ops: OPS.iter().map(|s| s.to_string()).collect(),
            weak: true,
            baselines: true,
            python: root.join(".venv/bin/python"),
            heat_python: None,
            limits: true,
            data_dir: root.join("target/bench-data"),
            out_dir: root.join("target/bench-report"),
        }
    }
}

/// The usage text.
pub const USAGE: &str = "\
heatsql-bench-report [OPTIONS]   (scripts/bench.sh report builds and runs it)

  --rows N             rows of the load/pca/svd/kmeans tables at P = 1   [1000000]
  --cols D             columns of the load/pca/svd table                  [32]
  --k K                pca components and svd triplets                    [8]
  --kmeans-cols D      columns of the k-means table                       [16]
  --clusters K         k-means clusters (20 Lloyd iterations)             [8]
  --dmd-points N       state points (rows) of the DMD table at P = 1      [250000]
  --dmd-steps S        snapshots (columns) of the DMD table               [64]
  --dmd-rank R         DMD rank                                           [16]
  --matmul-n N         side of the square matmul operand at P = 1         [2048]
  --row-groups G       row groups per generated file (24: equal shares at P = 1..4) [24]
  --ranks LIST         rank counts, e.g. 1,2,4 (4 on 2 cores oversubscribes) [1,2]
  --rounds R           measured rounds after one warm-up (at least 3)     [3]
  --threads-per-rank T compute threads per rank                           [1]
  --ops LIST           of load,pca,svd,kmeans,dmd,matmul                  [all]
  --no-weak            skip weak scaling (rows × P)
  --no-baselines       skip numpy / scikit-learn / PyDMD
  --python PATH        the baselines' Python                              [.venv/bin/python]
  --heat PYTHON        also run Heat under mpirun with this Python (mpi4py, heat)
  --no-limits          skip the GEMM-peak and memory-bandwidth measurements
  --data DIR           dataset cache                                      [target/bench-data]
  --out DIR            results.json, results.md, *.png                    [target/bench-report]
";

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag} expects a number, got '{value}'"))
}

impl Options {
    /// Parses the arguments after the program name; an error names the flag and what it
    /// expected.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} expects a value"));
            match flag.as_str() {
                "--rows" => o.rows = number(flag, &value()?)?,
                "--cols" => o.cols = number(flag, &value()?)?,
                "--k" => o.k = number(flag, &value()?)?,
                "--kmeans-cols" => o.kmeans_cols = number(flag, &value()?)?,
                "--clusters" => o.clusters = number(flag, &value()?)?,
                "--dmd-points" => o.dmd_points = number(flag, &value()?)?,
                "--dmd-steps" => o.dmd_steps = number(flag, &value()?)?,
                "--dmd-rank" => o.dmd_rank = number(flag, &value()?)?,
                "--matmul-n" => o.matmul_n = number(flag, &value()?)?,
                "--row-groups" => o.row_groups = number(flag, &value()?)?,
                "--ranks" => {
                    o.ranks = value()?
                        .split(',')
                        .map(|p| number(flag, p.trim()))
                        .collect::<Result<_, _>>()?
                }
                "--rounds" => o.rounds = number(flag, &value()?)?,
                "--threads-per-rank" => o.threads_per_rank = number(flag, &value()?)?,
                "--ops" => o.ops = value()?.split(',').map(|s| s.trim().to_string()).collect(),
                "--no-weak" => o.weak = false,
                "--no-baselines" => o.baselines = false,
                "--python" => o.python = value()?.into(),
                "--heat" => o.heat_python = Some(value()?.into()),
                "--no-limits" => o.limits = false,
                "--data" => o.data_dir = value()?.into(),
                "--out" => o.out_dir = value()?.into(),
                other => return Err(format!("unknown option '{other}'\n\n{USAGE}")),
            }
        }
        o.validate()?;
        Ok(o)
    }

    fn validate(&mut self) -> Result<(), String> {
        if let Some(bad) = self.ops.iter().find(|op| !OPS.contains(&op.as_str())) {
            return Err(format!(
                "--ops: unknown operation '{bad}' (expected some of {})",
                OPS.join(",")
            ));
        }
        self.ops = OPS
            .iter()
            .filter(|op| self.ops.iter().any(|o| o == *op))
            .map(|s| s.to_string())
            .collect();
        self.ranks.sort_unstable();
        self.ranks.dedup();
        if self.ranks.first() != Some(&1) {
            return Err("--ranks must include 1 (the reference of the scaling ratios)".into());
        }
        if self.rounds < 3 {
            return Err(format!(
                "--rounds {} is below 3 (the median needs at least 3 measured rounds)",
                self.rounds
            ));
        }
        if self.threads_per_rank == 0 {
            return Err("--threads-per-rank must be at least 1".into());
        }
        let checks = [
            ("--rows", self.rows as i64, 1),
            ("--cols", self.cols as i64, 1),
            ("--kmeans-cols", self.kmeans_cols as i64, 1),
            ("--dmd-points", self.dmd_points as i64, 1),
            ("--matmul-n", self.matmul_n as i64, 1),
            ("--row-groups", self.row_groups as i64, 1),
            ("--k", self.k, 1),
            ("--clusters", self.clusters, 1),
            ("--dmd-rank", self.dmd_rank, 1),
        ];
        for (flag, v, min) in checks {
            if v < min {
                return Err(format!("{flag} must be at least {min}, got {v}"));
            }
        }
        if self.k > self.cols as i64 {
            return Err(format!("--k {} exceeds --cols {}", self.k, self.cols));
        }
        if self.clusters as usize > self.rows {
            return Err(format!("--clusters {} exceeds --rows {}", self.clusters, self.rows));
        }
        if self.dmd_rank as usize >= self.dmd_steps {
            return Err(format!(
                "--dmd-rank {} must be below --dmd-steps {} (snapshot pairs)",
                self.dmd_rank, self.dmd_steps
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!(o.ranks, vec![1, 2]);
        assert_eq!(o.ops.len(), OPS.len());
        let o = Options::parse(&args(
            "--rows 1_000 --ranks 4,1,2 --ops matmul,pca --no-weak --rounds 5",
        ))
        .unwrap();
        assert_eq!(o.rows, 1000);
        assert_eq!(o.ranks, vec![1, 2, 4]);
        assert_eq!(o.ops, vec!["pca", "matmul"]);
        assert!(!o.weak);
        assert_eq!(o.rounds, 5);
    }

    #[test]
    fn errors_name_the_flag() {
        let e = |s: &str| Options::parse(&args(s)).unwrap_err();
        assert!(e("--rows many").contains("--rows expects a number, got 'many'"));
        assert!(e("--ops pca,qr").contains("unknown operation 'qr'"));
        assert!(e("--ranks 2,4").contains("must include 1"));
        assert!(e("--rounds 2").contains("below 3"));
        assert!(e("--k 40").contains("--k 40 exceeds --cols 32"));
        assert!(e("--dmd-rank 64").contains("below --dmd-steps 64"));
        assert!(e("--rows").contains("--rows expects a value"));
        assert!(e("--bogus").contains("unknown option '--bogus'"));
    }
}
