//! The database the runner drives: a [`heatsql::HeatContext`] on every rank, or a plain
//! DataFusion `SessionContext` for the single-process reference; and the rank-agreement check.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use engine::Comm;
use heatsql::HeatContext;
use sqllogictest::{DBOutput, SortMode};

use crate::normalize::{SltType, column_types, convert_batches};

/// The text `__DATA__` in SQL is replaced by the data directory.
pub const DATA_PLACEHOLDER: &str = "__DATA__";

/// The text `__FIXTURES__` in SQL is replaced by `heatsql/tests/fixtures` (committed fixtures,
/// such as scikit-learn's PCA results, with the scripts that made them).
pub const FIXTURES_PLACEHOLDER: &str = "__FIXTURES__";

const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../heatsql/tests/fixtures");

/// An error of one statement, as text (what `statement error <regex>` matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SltError(pub String);

impl fmt::Display for SltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// What the runner tells the database about the record being run, and what the database
/// reports back: shared between the runner loop and [`SltDb`].
#[derive(Debug, Default)]
pub struct RecordState {
    /// `file:line` of the record.
    pub location: String,
    /// `query` or `statement`.
    pub kind: &'static str,
    /// How the record compares rows (rank agreement is checked on rows in that order).
    pub sort_mode: Option<SortMode>,
    /// Rank-agreement failures found while running the record.
    pub failures: Vec<String>,
}

/// Shared [`RecordState`].
pub type SharedState = Arc<Mutex<RecordState>>;

/// Locks the shared state (a poisoned lock still holds usable data).
pub fn lock(state: &SharedState) -> std::sync::MutexGuard<'_, RecordState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The engine under test.
pub enum Backend {
    /// heatsql: SPMD over MPI; results must be identical on every rank.
    Heat(HeatContext),
    /// Single-process DataFusion with default settings: the reference results.
    Reference(SessionContext),
}

impl Backend {
    /// The DataFusion session (to register functions).
    pub fn session(&self) -> &SessionContext {
        match self {
            Backend::Heat(ctx) => ctx.session(),
            Backend::Reference(ctx) => ctx,
        }
    }

    /// Runs one statement and returns its schema and complete result.
    async fn execute(&self, sql: &str) -> DFResult<(SchemaRef, Vec<RecordBatch>)> {
        match self {
            Backend::Heat(ctx) => heat_execute(ctx, sql).await,
            Backend::Reference(ctx) => {
                let frame = ctx.sql(sql).await?;
                let schema = Arc::clone(frame.schema().inner());
                let batches = frame.collect().await?;
                Ok((schema, batches))
            }
        }
    }
}

/// `HeatContext::sql` → `HeatFrame`: the complete result, identical on every rank.
async fn heat_execute(ctx: &HeatContext, sql: &str) -> DFResult<(SchemaRef, Vec<RecordBatch>)> {
    let frame = ctx.sql(sql).await?;
    let schema = frame.schema();
    let batches = frame.collect().await?;
    Ok((schema, batches))
}

/// Registers `heatsql_rank()`: this process's rank as Int64 (0 in the reference).
pub fn register_rank_udf(ctx: &SessionContext, rank: usize) {
    let value = ScalarValue::Int64(Some(rank as i64));
    let udf = create_udf(
        "heatsql_rank",
        vec![],
        DataType::Int64,
        Volatility::Volatile,
        Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(value.clone()))),
    );
    ctx.register_udf(udf);
}

/// 64-bit FNV-1a.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The text a rank's outcome is digested from: the rows as the record compares them (sorted
/// for `rowsort`/`valuesort`), with the column types; or the statement count; or the error.
pub fn canonical_text(result: &Result<DBOutput<SltType>, SltError>, sort_mode: Option<SortMode>) -> String {
    use sqllogictest::ColumnType;
    match result {
        Ok(DBOutput::Rows { types, rows }) => {
            let mut rows = rows.clone();
            match sort_mode {
                Some(SortMode::RowSort) => rows.sort_unstable(),
                Some(SortMode::ValueSort) => {
                    rows = rows.into_iter().flatten().map(|v| vec![v]).collect();
                    rows.sort_unstable();
                }
                _ => {}
            }
            let mut text = String::from("rows ");
            text.extend(types.iter().map(|t| t.to_char()));
            text.push('\n');
            for row in rows {
                // Cells may hold any text: escape the separators.
                let cells: Vec<String> = row
                    .iter()
                    .map(|c| c.replace('\\', "\\\\").replace('\t', "\\t"))
                    .collect();
                text.push_str(&cells.join("\t"));
                text.push('\n');
            }
            text
        }
        Ok(DBOutput::StatementComplete(n)) => format!("complete {n}\n"),
        Ok(_) => "other\n".into(),
        Err(e) => format!("error\n{e}\n"),
    }
}

/// The first `max_lines` lines of `text`, with a note of how many were left out.
fn preview(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines
        .iter()
        .take(max_lines)
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > max_lines {
        out.push_str(&format!("\n    … ({} more lines)", lines.len() - max_lines));
    }
    out
}

/// Collective. Compares this rank's outcome with every other rank's through a 64-bit digest;
/// on a difference returns the message naming each rank's digest and showing the outputs of
/// rank 0 and of the first rank that differs from it.
pub fn check_agreement(comm: &Comm, location: &str, kind: &str, text: &str) -> Result<(), String> {
    let digest = fnv1a64(text.as_bytes());
    let all = comm
        .allgather(&[digest])
        .map_err(|e| format!("rank agreement check at {location} failed: {e}"))?;
    let Some(other) = all.iter().position(|&d| d != all[0]) else {
        return Ok(());
    };
    let digests = all
        .iter()
        .enumerate()
        .map(|(r, d)| format!("rank {r} digest {d:016x}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut message = format!("ranks disagree on {kind} at {location}: {digests}");
    let rank0 = comm.bcast_bytes(text.as_bytes().to_vec(), 0);
    let rankr = comm.bcast_bytes(text.as_bytes().to_vec(), other);
    if let (Ok(a), Ok(b)) = (rank0, rankr) {
        message.push_str(&format!(
            "\n  rank 0 output:\n{}\n  rank {other} output:\n{}",
            preview(&String::from_utf8_lossy(&a), 12),
            preview(&String::from_utf8_lossy(&b), 12)
        ));
    }
    Err(message)
}

/// A sqllogictest connection: one engine session, plus the rank-agreement check under MPI.
pub struct SltDb {
    backend: Backend,
    comm: Option<&'static Comm>,
    data_dir: String,
    state: SharedState,
}

impl SltDb {
    /// A connection on `backend`; `comm` (MPI mode) enables the rank-agreement check after
    /// every statement; `__DATA__` in SQL becomes `data_dir`.
    pub fn new(backend: Backend, comm: Option<&'static Comm>, data_dir: String, state: SharedState) -> Self {
        SltDb {
            backend,
            comm,
            data_dir,
            state,
        }
    }

    async fn run_local(&self, sql: &str) -> Result<DBOutput<SltType>, SltError> {
        let sql = sql
            .replace(DATA_PLACEHOLDER, &self.data_dir)
            .replace(FIXTURES_PLACEHOLDER, FIXTURES_DIR);
        let (schema, batches) = self.backend.execute(&sql).await.map_err(|e| SltError(e.to_string()))?;
        let types = column_types(&schema);
        let rows = convert_batches(&batches).map_err(|e| SltError(e.to_string()))?;
        if types.is_empty() && rows.is_empty() {
            Ok(DBOutput::StatementComplete(0))
        } else {
            Ok(DBOutput::Rows { types, rows })
        }
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for SltDb {
    type Error = SltError;
    type ColumnType = SltType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<SltType>, SltError> {
        let result = self.run_local(sql).await;
        if let Some(comm) = self.comm {
            let (location, kind, sort_mode) = {
                let s = lock(&self.state);
                (s.location.clone(), s.kind, s.sort_mode)
            };
            let text = canonical_text(&result, sort_mode);
            if let Err(message) = check_agreement(comm, &location, kind, &text) {
                lock(&self.state).failures.push(message);
            }
        }
        result
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        match self.backend {
            Backend::Heat(_) => "heatsql",
            Backend::Reference(_) => "datafusion",
        }
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_text_respects_sort_mode() {
        let a: Result<DBOutput<SltType>, SltError> = Ok(DBOutput::Rows {
            types: vec![SltType::Integer],
            rows: vec![vec!["2".into()], vec!["1".into()]],
        });
        let b: Result<DBOutput<SltType>, SltError> = Ok(DBOutput::Rows {
            types: vec![SltType::Integer],
            rows: vec![vec!["1".into()], vec!["2".into()]],
        });
        assert_eq!(
            canonical_text(&a, Some(SortMode::RowSort)),
            canonical_text(&b, Some(SortMode::RowSort))
        );
        assert_ne!(canonical_text(&a, None), canonical_text(&b, None));
        assert_ne!(fnv1a64(b"a"), fnv1a64(b"b"));
    }
}
