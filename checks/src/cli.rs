//! The command line the check programs share: their own positional arguments, `-v` (print
//! passing checks too), `--only PREFIX` (run only what the prefix selects; see
//! [`crate::checker::selected`]) and `--list` (print the subjects and exit), and the lines that
//! end a run: the summary and, after failures, how to rerun each failed subject.

use crate::checker::Checker;

/// A check program's command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// The program's path, as it was started.
    pub program: String,
    /// The positional arguments (suite, directories...), in order.
    pub positional: Vec<String>,
    /// `-v`: print passing checks too.
    pub verbose: bool,
    /// `--only PREFIX` (or `--only=PREFIX`).
    pub only: Option<String>,
    /// `--list`: print the subjects, one per line, and exit.
    pub list: bool,
}

impl Args {
    /// The process's command line.
    pub fn from_env() -> Result<Self, String> {
        let mut all = std::env::args();
        let program = all.next().unwrap_or_default();
        Self::parse(program, all)
    }

    /// Parses `args` (without the program).
    pub fn parse(program: String, args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut out = Args {
            program,
            ..Args::default()
        };
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            if a == "-v" {
                out.verbose = true;
            } else if a == "--list" {
                out.list = true;
            } else if a == "--only" {
                out.only = Some(args.next().ok_or("--only needs a PREFIX")?);
            } else if let Some(prefix) = a.strip_prefix("--only=") {
                out.only = Some(prefix.to_string());
            } else {
                out.positional.push(a);
            }
        }
        Ok(out)
    }

    /// The positional arguments as string slices.
    pub fn positional(&self) -> Vec<&str> {
        self.positional.iter().map(String::as_str).collect()
    }

    /// For `--list`: rank 0 prints `subjects`, one per line, and the program exits with 0.
    pub fn list(&self, subjects: &[&'static str]) {
        if self.list {
            if engine::Comm::world().rank() == 0 {
                subjects.iter().for_each(|s| println!("{s}"));
            }
            std::process::exit(0);
        }
    }

    /// A checker for this command line over `subjects`: exits with status 2 when `--only`
    /// selects none of them, and with 0 after printing them for `--list`.
    pub fn checker(&self, subjects: &[&'static str]) -> Checker {
        self.list(subjects);
        match Checker::new(self.verbose).only(self.only.as_deref(), subjects) {
            Ok(c) => c,
            Err(e) => usage_error(&e),
        }
    }

    /// The command that reruns `subject` at the same rank count (the whole program for `""`).
    pub fn rerun(&self, p: usize, subject: &str) -> String {
        let mut words = vec!["mpirun".to_string(), "-n".into(), p.to_string(), quote(&self.program)];
        words.extend(self.positional.iter().map(|a| quote(a)));
        if !subject.is_empty() {
            words.extend(["--only".to_string(), quote(subject)]);
        } else if let Some(only) = &self.only {
            words.extend(["--only".to_string(), quote(only)]);
        }
        words.join(" ")
    }

    /// Collective. Ends a run: rank 0 prints `<what> at P=<p>: <n> passed, <m> failed` and,
    /// for each subject with a failure, `rerun: <command>`; exits with status 1 after a failure.
    pub fn finish(&self, c: &Checker, what: &str) {
        if c.summary(what) {
            return;
        }
        if c.comm.rank() == 0 {
            for subject in c.failed_subjects() {
                println!("rerun: {}", self.rerun(c.comm.size(), subject));
            }
        }
        std::process::exit(1);
    }
}

/// Prints `message` on rank 0 and exits with status 2.
pub fn usage_error(message: &str) -> ! {
    if engine::Comm::world().rank() == 0 {
        eprintln!("{message}");
    }
    std::process::exit(2)
}

/// `word` quoted for a POSIX shell when it needs it.
fn quote(word: &str) -> String {
    let plain = |ch: char| ch.is_ascii_alphanumeric() || "/._-=+:,@%".contains(ch);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str]) -> Args {
        Args::parse("bin".into(), args.iter().map(|s| s.to_string())).expect("parses")
    }

    #[test]
    fn options_mix_with_positional_arguments() {
        let a = parse(&["check", "--only", "joins/key", "base", "-v", "out"]);
        assert_eq!(a.positional(), ["check", "base", "out"]);
        assert_eq!(a.only.as_deref(), Some("joins/key"));
        assert!(a.verbose && !a.list);
        assert_eq!(parse(&["--only=sql"]).only.as_deref(), Some("sql"));
        assert!(Args::parse("bin".into(), ["--only".to_string()]).is_err());
    }

    #[test]
    fn rerun_names_the_subject_and_quotes_what_needs_it() {
        let a = parse(&["all", "--only", "dndarray"]);
        assert_eq!(
            a.rerun(3, "dndarray/layouts"),
            "mpirun -n 3 bin all --only dndarray/layouts"
        );
        assert_eq!(a.rerun(2, ""), "mpirun -n 2 bin all --only dndarray");
        let a = parse(&["/tmp/a dir", "x'y"]);
        assert_eq!(
            a.rerun(1, "kmeans/k-means||"),
            "mpirun -n 1 bin '/tmp/a dir' 'x'\\''y' --only 'kmeans/k-means||'"
        );
    }
}
