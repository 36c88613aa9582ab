//! Printing results on rank 0: table, csv, tsv, json, ndjson, and the footer.

use std::io::Write;

use clap::ValueEnum;
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A boxed table (at most `--maxrows` rows).
    Table,
    /// Comma-separated, with a header line.
    Csv,
    /// Tab-separated, with a header line.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// The result of `EXPLAIN`: `plan_type` and `plan`, both Utf8.
fn is_explain(schema: &SchemaRef) -> bool {
    let f = schema.fields();
    f.len() == 2
        && f[0].name() == "plan_type"
        && f[1].name() == "plan"
        && f.iter().all(|c| c.data_type() == &DataType::Utf8)
}

/// Writes `batches` in `format`; a table shows at most `maxrows` rows, an `EXPLAIN` result is
/// printed as indented text. Returns whether rows were left out.
pub fn print(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    maxrows: Option<usize>,
) -> Result<bool, ArrowError> {
    let batches: Vec<RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).cloned().collect();
    if schema.fields().is_empty() {
        // A statement without a result (DDL, SET): nothing to print but the footer.
        return Ok(false);
    }
    match format {
        Format::Table if is_explain(schema) => {
            // Plans are indented text, often wider than a terminal once boxed: print them as
            // text under a heading per plan type.
            for b in &batches {
                let (kinds, plans) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
                for i in 0..b.num_rows() {
                    writeln!(out, "{}:\n{}", kinds.value(i), plans.value(i).trim_end())?;
                }
            }
            Ok(false)
        }
        Format::Table => {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            let shown = first_rows(&batches, maxrows.unwrap_or(usize::MAX));
            if shown.is_empty() {
                // Still show the columns of an empty result.
                writeln!(
                    out,
                    "{}",
                    pretty_format_batches(&[RecordBatch::new_empty(schema.clone())])?
                )?;
            } else {
                writeln!(out, "{}", pretty_format_batches(&shown)?)?;
            }
            Ok(total > maxrows.unwrap_or(usize::MAX))
        }
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Csv { b',' } else { b'\t' };
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_delimiter(delimiter)
                .build(&mut *out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in &batches {
                w.write(b)?;
            }
            Ok(false)
        }
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
            // An empty result is `[]`.
            w.finish()?;
            writeln!(out)?;
            Ok(false)
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in &batches {
                w.write(b)?;
            }
            w.finish()?;
            Ok(false)
        }
    }
}

/// The first `n` rows of `batches` (zero-copy slices).
fn first_rows(batches: &[RecordBatch], n: usize) -> Vec<RecordBatch> {
    let mut left = n;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    out
}
