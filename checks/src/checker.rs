//! Recording checks across ranks (moved here from `engine::testkit`).
//!
//! A [`Checker`] records named checks; each check's verdict is the AND over ranks, failing
//! ranks' details are collected on rank 0, which prints failures and a summary line.
//!
//! Checks are grouped in subjects ([`Checker::subject`]); every check of a subject has a name
//! that starts with the subject's name. A checker made with [`Checker::only`] runs the subjects
//! that a prefix selects (see [`selected`]) and records only the checks whose names start with
//! it, except checks made outside any subject (shared setup, such as registering the tables every
//! subject reads), which always count. Every rank sees the same arguments, so every rank skips
//! the same subjects and checks and the checks stay collective.

use tch::{Kind, Tensor};

use engine::comm::{Comm, ReduceOp};

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
    /// The program's subjects (empty: not declared).
    subjects: Vec<&'static str>,
    /// `--only PREFIX`, and the subjects it selects.
    only: Option<(String, Vec<&'static str>)>,
    /// The subject running now (`None`: setup outside any subject).
    subject: Option<&'static str>,
    /// Subjects with a failed check, in order, each once; `""` for a failure outside a subject.
    failed_subjects: Vec<&'static str>,
}

impl Checker {
    /// A checker on the world communicator that runs every subject.
    pub fn new(verbose: bool) -> Self {
        Checker {
            comm: Comm::world(),
            passed: 0,
            failed: 0,
            verbose,
            subjects: Vec::new(),
            only: None,
            subject: None,
            failed_subjects: Vec::new(),
        }
    }

    /// Restricts the checker to what `prefix` selects among `subjects` (all of them for `None`).
    /// Errs, naming the subjects, when the prefix selects none.
    pub fn only(mut self, prefix: Option<&str>, subjects: &[&'static str]) -> Result<Self, String> {
        self.subjects = subjects.to_vec();
        if let Some(prefix) = prefix {
            let chosen = selected(prefix, subjects);
            if chosen.is_empty() {
                return Err(format!(
                    "--only {prefix} selects no subject; the subjects are: {}",
                    subjects.join(", ")
                ));
            }
            self.only = Some((prefix.to_string(), chosen));
        }
        Ok(self)
    }

    /// Starts subject `name` and says whether to run it (whether `--only` selects it). Every
    /// check until the next call belongs to it, and its name must start with `name`.
    pub fn subject(&mut self, name: &'static str) -> bool {
        debug_assert!(
            self.subjects.is_empty() || self.subjects.contains(&name),
            "subject '{name}' is not among the declared ones"
        );
        self.subject = Some(name);
        self.only.as_ref().is_none_or(|(_, chosen)| chosen.contains(&name))
    }

    /// Subjects with a failed check (`""`: a failure outside any subject), in order, each once.
    pub fn failed_subjects(&self) -> &[&'static str] {
        &self.failed_subjects
    }

    /// Whether a check named `name` is recorded (not filtered out by `--only`).
    fn wanted(&self, name: &str) -> bool {
        match (&self.only, self.subject) {
            (Some((prefix, _)), Some(_)) => name.starts_with(prefix.as_str()),
            _ => true,
        }
    }

    /// Collective. Records a check whose local verdict is `ok`.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if let Some(subject) = self.subject {
            debug_assert!(
                name.starts_with(subject),
                "check '{name}' is outside its subject '{subject}'"
            );
        }
        if !self.wanted(name) {
            return;
        }
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
            let subject = self.subject.unwrap_or("");
            if !self.failed_subjects.contains(&subject) {
                self.failed_subjects.push(subject);
            }
            if self.comm.rank() == 0 {
                println!("FAIL {name}: {}", String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Collective. Checks that `got` equals `want` in shape, dtype and values within `tol`
    /// (relative and absolute; 0 = exact; NaN must match NaN).
    pub fn close<E: std::fmt::Display>(&mut self, name: &str, got: Result<Tensor, E>, want: &Tensor, tol: f64) {
        if !self.wanted(name) {
            return;
        }
        let verdict = match got {
            Err(e) => Err(format!("error: {e}")),
            Ok(g) => compare(&g, want, tol),
        };
        let ok = verdict.is_ok();
        self.check(name, ok, || verdict.err().unwrap_or_default());
    }

    /// Collective. Rank 0 prints `cpu kernels: on|off` (the kernel policy the checks ran
    /// with) and `<what> at P=<p>: <n> passed, <m> failed`; returns whether all passed.
    pub fn summary(&self, what: &str) -> bool {
        if self.comm.rank() == 0 {
            let on = engine::kernels::policy() == engine::kernels::Policy::Auto;
            println!("cpu kernels: {}", if on { "on" } else { "off" });
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

/// The subjects that `--only prefix` runs: those whose names start with `prefix`; when there
/// are none, the prefix names checks inside a subject, and the subject is the longest one that
/// `prefix` starts with. Empty when neither exists.
pub fn selected(prefix: &str, subjects: &[&'static str]) -> Vec<&'static str> {
    let whole: Vec<&'static str> = subjects.iter().copied().filter(|s| s.starts_with(prefix)).collect();
    if !whole.is_empty() {
        return whole;
    }
    subjects
        .iter()
        .copied()
        .filter(|s| prefix.starts_with(s))
        .max_by_key(|s| s.len())
        .into_iter()
        .collect()
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
    use super::{adjusted_rand, selected};

    #[test]
    fn adjusted_rand_is_one_for_relabelled_partitions_and_low_for_unrelated_ones() {
        assert_eq!(adjusted_rand(&[0, 0, 1, 1, 2, 2], &[5, 5, 3, 3, 9, 9]), 1.0);
        let a: Vec<i64> = (0..400).map(|i| i % 4).collect();
        let b: Vec<i64> = (0..400).map(|i| (i / 100) % 4).collect();
        assert!(adjusted_rand(&a, &b).abs() < 0.05);
    }

    #[test]
    fn a_prefix_selects_whole_subjects_or_the_subject_it_reaches_into() {
        let subjects = ["kmeans", "kmeans/seeded", "linalg/tsqr", "linalg/svd", "sql"];
        assert_eq!(selected("kmeans", &subjects), ["kmeans", "kmeans/seeded"]);
        assert_eq!(selected("kmeans/seeded", &subjects), ["kmeans/seeded"]);
        assert_eq!(selected("kmeans/error", &subjects), ["kmeans"]);
        assert_eq!(selected("kmeans/seeded/random", &subjects), ["kmeans/seeded"]);
        assert_eq!(selected("linalg", &subjects), ["linalg/tsqr", "linalg/svd"]);
        assert_eq!(selected("", &subjects), subjects);
        assert!(selected("svd", &subjects).is_empty());
    }
}
