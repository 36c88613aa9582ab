//! Running `.slt` files: every rank runs every record; verdicts are agreed across ranks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use engine::{Comm, CommError};
use heatsql::HeatContext;
use sqllogictest::{
    Control, Record, Runner, SortMode, default_normalizer, default_validator, strict_column_validator,
    update_record_with_output,
};

use crate::data;
use crate::db::{Backend, RecordState, SharedState, SltDb, SltError, lock, register_rank_udf};
use crate::normalize::SltType;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `.slt` files, run in this order.
    pub files: Vec<PathBuf>,
    /// Run on a plain single-process DataFusion `SessionContext` (no MPI).
    pub reference: bool,
    /// Rewrite the files' expected results with the actual ones.
    pub complete: bool,
    /// Register `heatsql_rank()`.
    pub rank_udf: bool,
    /// Where the Parquet tables are (generated there first); `__DATA__` in SQL.
    pub data_dir: PathBuf,
}

impl Options {
    /// The default data directory: `<workspace>/target/slt-data`.
    pub fn default_data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/slt-data")
    }
}

/// One failed record (or file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `file:line` (or the file).
    pub location: String,
    /// What went wrong (agreed across ranks).
    pub message: String,
}

/// The outcome of a run, identical on every rank.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Number of ranks (1 for the reference).
    pub ranks: usize,
    /// This process's rank.
    pub rank: usize,
    /// Whether this was the single-process reference.
    pub reference: bool,
    /// Files run.
    pub files: usize,
    /// Records (statements and queries) that passed on every rank.
    pub passed: usize,
    /// Records whose expected result `--complete` rewrote.
    pub updated: usize,
    /// Failed records and files.
    pub failures: Vec<Failure>,
}

impl Summary {
    /// `slt at P=3: 12 files, 345 records passed, 0 failed` (`slt reference: …` for the
    /// reference).
    pub fn line(&self) -> String {
        let head = if self.reference {
            "slt reference".to_string()
        } else {
            format!("slt at P={}", self.ranks)
        };
        let mut line = format!(
            "{head}: {} files, {} records passed, {} failed",
            self.files,
            self.passed,
            self.failures.len()
        );
        if self.updated > 0 {
            line.push_str(&format!(" ({} records updated)", self.updated));
        }
        line
    }

    /// Whether every record passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Turns a local verdict into the agreed one: an error on any rank is an error on every rank
/// (the lowest failing rank's message). Without MPI the local verdict stands.
fn agree(comm: Option<&Comm>, local: Result<(), String>) -> Result<(), String> {
    let Some(comm) = comm else { return local };
    match comm.agree(local) {
        Ok(()) => Ok(()),
        Err(CommError::Agreed { rank, message }) if comm.size() > 1 => Err(format!("[rank {rank}] {message}")),
        Err(CommError::Agreed { message, .. }) => Err(message),
        Err(e) => Err(e.to_string()),
    }
}

/// The kind, `file:line` and sort mode of a record that runs SQL; `None` for other records.
fn record_info(
    record: &Record<SltType>,
    default_sort: Option<SortMode>,
) -> Option<(&'static str, String, Option<SortMode>)> {
    let at = |loc: &sqllogictest::Location| format!("{}:{}", loc.file(), loc.line());
    match record {
        Record::Statement { loc, .. } => Some(("statement", at(loc), None)),
        Record::Query { loc, expected, .. } => {
            let sort = match expected {
                sqllogictest::QueryExpect::Results { sort_mode, .. } => sort_mode.or(default_sort),
                sqllogictest::QueryExpect::Error(_) => default_sort,
            };
            Some(("query", at(loc), sort))
        }
        Record::System { loc, .. } => Some(("system", at(loc), None)),
        Record::Let { loc, .. } => Some(("let", at(loc), None)),
        _ => None,
    }
}

/// Generates the data set (rank 0 only under MPI; every rank learns the outcome).
pub fn prepare_data(options: &Options, comm: Option<&Comm>) -> Result<(), String> {
    let local = match comm {
        Some(c) if c.rank() != 0 => Ok(()),
        _ => data::generate(&options.data_dir)
            .map_err(|e| format!("cannot write test data to {}: {e}", options.data_dir.display())),
    };
    let agreed = agree(comm, local);
    if let Some(c) = comm {
        c.barrier();
    }
    agreed
}

/// Runs every file of `options` (collective under MPI: every rank calls it alike). Never
/// panics on bad input: unreadable files and failed records are failures in the summary.
pub async fn run(options: &Options) -> Summary {
    let comm = (!options.reference).then(Comm::world);
    let mut summary = Summary {
        ranks: comm.map_or(1, Comm::size),
        rank: comm.map_or(0, Comm::rank),
        reference: options.reference,
        ..Summary::default()
    };
    if let Err(message) = prepare_data(options, comm) {
        summary.failures.push(Failure {
            location: options.data_dir.display().to_string(),
            message,
        });
        return summary;
    }
    let data_dir = std::fs::canonicalize(&options.data_dir).unwrap_or_else(|_| options.data_dir.clone());
    let data_dir = data_dir.display().to_string();
    for file in &options.files {
        summary.files += 1;
        run_file(file, options, comm, &data_dir, &mut summary).await;
    }
    summary
}

/// A fresh connection for one file.
fn connect(options: &Options, comm: Option<&'static Comm>, data_dir: &str, state: &SharedState) -> SltDb {
    let backend = if options.reference {
        Backend::Reference(SessionContext::new())
    } else {
        Backend::Heat(HeatContext::new())
    };
    if options.rank_udf {
        register_rank_udf(backend.session(), comm.map_or(0, Comm::rank));
    }
    SltDb::new(backend, comm, data_dir.to_string(), Arc::clone(state))
}

async fn run_file(file: &Path, options: &Options, comm: Option<&'static Comm>, data_dir: &str, summary: &mut Summary) {
    let name = file.display().to_string();
    let records = sqllogictest::parse_file::<SltType>(file).map_err(|e| format!("cannot parse: {e}"));
    let records = match agree(comm, records.as_ref().map(|_| ()).map_err(Clone::clone)) {
        Ok(()) => records.unwrap_or_default(),
        Err(message) => {
            summary.failures.push(Failure {
                location: name,
                message,
            });
            return;
        }
    };
    let state: SharedState = Arc::new(std::sync::Mutex::new(RecordState::default()));
    let mut runner = {
        let options = options.clone();
        let data_dir = data_dir.to_string();
        let state = Arc::clone(&state);
        Runner::new(move || std::future::ready(Ok::<_, SltError>(connect(&options, comm, &data_dir, &state))))
    };
    runner.with_column_validator(strict_column_validator);
    runner.with_validator(default_validator);
    runner.with_normalizer(default_normalizer);

    let mut default_sort = None;
    let mut completed = String::new();
    let mut halted = false;
    let mut complete_ok = true;
    for record in records {
        if options.complete && (halted || matches!(record, Record::Halt { .. })) {
            halted = true;
            completed.push_str(&format!("{record}\n"));
            continue;
        }
        if matches!(record, Record::Halt { .. }) {
            break;
        }
        if let Record::Control(Control::SortMode(mode)) = &record {
            default_sort = Some(*mode);
        }
        if options.complete && matches!(record, Record::Injected(_) | Record::Include { .. }) {
            complete_ok = false;
        }
        let info = record_info(&record, default_sort);
        {
            let mut s = lock(&state);
            s.failures.clear();
            if let Some((kind, location, sort)) = &info {
                s.kind = kind;
                s.location = location.clone();
                s.sort_mode = *sort;
            }
        }
        let (local, ran) = if options.complete {
            let output = runner.apply_record(record.clone()).await;
            let ran = !matches!(output, sqllogictest::RecordOutput::Nothing);
            let new = update_record_with_output(
                &record,
                &output,
                " ",
                default_validator,
                default_normalizer,
                strict_column_validator,
            )
            .unwrap_or_else(|| record.clone());
            if new != record {
                summary.updated += 1;
            }
            if !matches!(new, Record::Injected(_)) {
                completed.push_str(&format!("{new}\n"));
            }
            (Ok(()), ran)
        } else {
            match runner.run_async(record).await {
                Ok(output) => (Ok(()), !matches!(output, sqllogictest::RecordOutput::Nothing)),
                Err(e) => (Err(e.display(false).to_string()), true),
            }
        };
        let disagreements = std::mem::take(&mut lock(&state).failures);
        let local = if disagreements.is_empty() {
            local
        } else {
            let mut message = disagreements.join("\n");
            if let Err(e) = local {
                message.push_str(&format!("\n{e}"));
            }
            Err(message)
        };
        let verdict = agree(comm, local);
        let Some((_, location, _)) = info else {
            if let Err(message) = verdict {
                summary.failures.push(Failure {
                    location: name.clone(),
                    message,
                });
            }
            continue;
        };
        match verdict {
            Ok(()) if ran => summary.passed += 1,
            Ok(()) => {}
            Err(message) => summary.failures.push(Failure { location, message }),
        }
    }
    runner.shutdown_async().await;

    if options.complete {
        let written = if !complete_ok {
            Err("--complete does not support include files".to_string())
        } else if comm.is_none_or(|c| c.rank() == 0) {
            write_completed(file, &completed)
        } else {
            Ok(())
        };
        if let Err(message) = agree(comm, written) {
            summary.failures.push(Failure {
                location: name,
                message,
            });
        }
    }
}

/// Replaces `file` with `text` (trailing blank lines reduced to one line end), atomically.
fn write_completed(file: &Path, text: &str) -> Result<(), String> {
    let text = format!("{}\n", text.trim_end_matches('\n'));
    let tmp = file.with_extension(format!("slt.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| format!("cannot rewrite {}: {e}", file.display()))
}
