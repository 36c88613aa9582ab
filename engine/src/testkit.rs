//! Helpers for multi-rank test programs (run under `mpirun` by the crates' integration tests).
//!
//! A [`Checker`] records named checks; each check's verdict is the AND over ranks, failing
//! ranks' details are collected on rank 0, which prints failures and a summary line.

use tch::{Kind, Tensor};

use crate::comm::{Comm, ReduceOp};

/// Records checks across ranks (collective: every rank records the same checks in order).
pub struct Checker {
    /// The communicator.
    pub comm: &'static Comm,
    /// Checks that passed on every rank.
    pub passed: usize,
    /// Checks that failed on some rank.
    pub failed: usize,
    /// Print passing checks too.
    pub verbose: bool,
}

impl Checker {
    /// A checker on the world communicator.
    pub fn new(verbose: bool) -> Self {
        Checker {
            comm: Comm::world(),
            passed: 0,
            failed: 0,
            verbose,
        }
    }

    /// Collective. Records a check whose local verdict is `ok`.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        let all = self
            .comm
            .allreduce(&[u64::from(ok)], ReduceOp::Min)
            .map(|v| v[0] == 1)
            .unwrap_or(false);
        let detail = if ok {
            String::new()
        } else {
            format!("[rank {}] {} ", self.comm.rank(), detail())
        };
        let bytes = self
            .comm
            .allgatherv(detail.as_bytes())
            .map(|(b, _)| b)
            .unwrap_or_default();
        if all {
            self.passed += 1;
            if self.verbose && self.comm.rank() == 0 {
                println!("PASS {name}");
            }
        } else {
            self.failed += 1;
            if self.comm.rank() == 0 {
                println!("FAIL {name}: {}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Collective. Checks that `got` equals `want` in shape, dtype and values within `tol`
    /// (relative and absolute; 0 = exact; NaN must match NaN).
    pub fn close<E: std::fmt::Display>(&mut self, name: &str, got: Result<Tensor, E>, want: &Tensor, tol: f64) {
        let verdict = match got {
            Err(e) => Err(format!("error: {e}")),
            Ok(g) => compare(&g, want, tol),
        };
        let ok = verdict.is_ok();
        self.check(name, ok, || verdict.err().unwrap_or_default());
    }

    /// Collective. Rank 0 prints `<what> at P=<p>: <n> passed, <m> failed`; returns whether all passed.
    pub fn summary(&self, what: &str) -> bool {
        if self.comm.rank() == 0 {
            println!(
                "{what} at P={}: {} passed, {} failed",
                self.comm.size(),
                self.passed,
                self.failed
            );
        }
        self.failed == 0
    }
}

/// Why `g` differs from `want` (shape, dtype, values beyond `tol`), if it does.
pub fn compare(g: &Tensor, want: &Tensor, tol: f64) -> Result<(), String> {
    if g.size() != want.size() {
        return Err(format!("shape {:?}, expected {:?}", g.size(), want.size()));
    }
    if g.kind() != want.kind() {
        return Err(format!("dtype {:?}, expected {:?}", g.kind(), want.kind()));
    }
    if g.numel() == 0 {
        return Ok(());
    }
    let (g, w) = (g.to_kind(Kind::Double), want.to_kind(Kind::Double));
    let same_nan = g.isnan().eq_tensor(&w.isnan()).all().int64_value(&[]) == 1;
    let (g0, w0) = (g.nan_to_num(0.0, None, None), w.nan_to_num(0.0, None, None));
    let worst = ((&g0 - &w0).abs() - (w0.abs() * tol + tol)).max().double_value(&[]);
    if same_nan && worst <= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "max |got − want| exceeds tolerance {tol} by {worst:e} (NaN pattern equal: {same_nan})"
        ))
    }
}

/// The adjusted Rand index of two labelings of the same rows (1 for identical partitions,
/// about 0 for independent ones).
pub fn adjusted_rand(a: &[i64], b: &[i64]) -> f64 {
    use std::collections::HashMap;
    let comb = |x: f64| x * (x - 1.0) / 2.0;
    let mut table: HashMap<(i64, i64), f64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<i64, f64>, HashMap<i64, f64>) = (HashMap::new(), HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&v| comb(v)).sum();
    let sa: f64 = ra.values().map(|&v| comb(v)).sum();
    let sb: f64 = rb.values().map(|&v| comb(v)).sum();
    let expected = sa * sb / comb(a.len() as f64);
    let max = (sa + sb) / 2.0;
    if max == expected {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

#[cfg(test)]
mod tests {
    use super::adjusted_rand;

    #[test]
    fn adjusted_rand_is_one_for_relabelled_partitions_and_low_for_unrelated_ones() {
        assert_eq!(adjusted_rand(&[0, 0, 1, 1, 2, 2], &[5, 5, 3, 3, 9, 9]), 1.0);
        let a: Vec<i64> = (0..400).map(|i| i % 4).collect();
        let b: Vec<i64> = (0..400).map(|i| (i / 100) % 4).collect();
        assert!(adjusted_rand(&a, &b).abs() < 0.05);
    }
}
