//! Query results as sqllogictest text: column type characters and normalised cell values.
//!
//! The rules (the same at every rank count, and the same for the single-process reference):
//!
//! * `NULL` for a null value of any type; `(empty)` for an empty string; `true`/`false`.
//! * Floats (`Float16/32/64`) are rounded to **10 significant digits** and printed in plain
//!   notation with trailing zeros removed (`0.1 + 0.2` → `0.3`, `1234.5` → `1234.5`, `3.0` → `3`);
//!   `-0` prints as `0`; `NaN`, `Infinity`, `-Infinity`. Distributed sums add in a different order
//!   than one process does; the last bits that differ are far below the 10th digit.
//!   (`Float32` uses 6 significant digits, the precision it has.)
//! * Decimals are exact and print with their scale (`12.50`).
//! * Everything else (dates, timestamps, intervals, lists, …) prints with Arrow's display format.
//! * A cell with line breaks (EXPLAIN plans) becomes one row per line, numbered `01)`, `02)`, …,
//!   leading spaces turned into `-` (as datafusion-sqllogictest does).
//!
//! Column types: `I` integers, `R` floats and decimals, `B` booleans, `T` text and all other
//! types. The runner checks them strictly.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, DecimalType, Float16Type, Float32Type,
    Float64Type, Schema,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// The string a NULL value prints as.
pub const NULL_STR: &str = "NULL";

/// Significant digits kept for `Float64` (and `Float16`) values.
pub const FLOAT_DIGITS: usize = 10;

/// Significant digits kept for `Float32` values.
pub const FLOAT32_DIGITS: usize = 6;

/// A result column's type as sqllogictest writes it after `query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SltType {
    /// `I`: signed and unsigned integers.
    Integer,
    /// `R`: floats and decimals.
    Real,
    /// `B`: booleans.
    Boolean,
    /// `T`: strings and every other type.
    Text,
}

impl sqllogictest::ColumnType for SltType {
    fn from_char(value: char) -> Option<Self> {
        match value {
            'I' => Some(Self::Integer),
            'R' => Some(Self::Real),
            'B' => Some(Self::Boolean),
            'T' => Some(Self::Text),
            _ => None,
        }
    }

    fn to_char(&self) -> char {
        match self {
            Self::Integer => 'I',
            Self::Real => 'R',
            Self::Boolean => 'B',
            Self::Text => 'T',
        }
    }
}

impl SltType {
    /// The type character of an Arrow type (dictionaries by their value type).
    pub fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Self::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _) => Self::Real,
            DataType::Boolean => Self::Boolean,
            DataType::Dictionary(_, value) => Self::of(value),
            _ => Self::Text,
        }
    }
}

/// The type characters of a schema's columns.
pub fn column_types(schema: &Schema) -> Vec<SltType> {
    schema.fields().iter().map(|f| SltType::of(f.data_type())).collect()
}

/// A float rounded to `digits` significant digits, in plain notation (see the module docs).
pub fn float_to_str(value: f64, digits: usize) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let digits = digits.max(1);
    // `{:.Ne}` rounds to N + 1 significant digits; parsing it back gives the nearest f64, whose
    // shortest representation (`{}`) is that rounded decimal.
    let rounded: f64 = format!("{:.*e}", digits - 1, value).parse().unwrap_or(value);
    if rounded == 0.0 {
        "0".into()
    } else {
        format!("{rounded}")
    }
}

/// A decimal value printed exactly, with its scale.
fn decimal_to_str<T: DecimalType>(value: T::Native, precision: u8, scale: i8) -> String {
    T::format_decimal(value, precision, scale)
}

fn text_to_str(value: &str) -> String {
    if value.is_empty() {
        "(empty)".into()
    } else {
        value.trim_end_matches('\n').replace('\u{0000}', "\\0")
    }
}

/// One cell as sqllogictest text (see the module docs).
pub fn cell_to_string(col: &ArrayRef, row: usize) -> Result<String, ArrowError> {
    if col.is_null(row) {
        return Ok(NULL_STR.into());
    }
    Ok(match col.data_type() {
        DataType::Null => NULL_STR.into(),
        DataType::Boolean => col.as_boolean().value(row).to_string(),
        DataType::Float16 => float_to_str(col.as_primitive::<Float16Type>().value(row).to_f64(), FLOAT_DIGITS),
        DataType::Float32 => float_to_str(col.as_primitive::<Float32Type>().value(row) as f64, FLOAT32_DIGITS),
        DataType::Float64 => float_to_str(col.as_primitive::<Float64Type>().value(row), FLOAT_DIGITS),
        DataType::Decimal32(p, s) => {
            decimal_to_str::<Decimal32Type>(col.as_primitive::<Decimal32Type>().value(row), *p, *s)
        }
        DataType::Decimal64(p, s) => {
            decimal_to_str::<Decimal64Type>(col.as_primitive::<Decimal64Type>().value(row), *p, *s)
        }
        DataType::Decimal128(p, s) => {
            decimal_to_str::<Decimal128Type>(col.as_primitive::<Decimal128Type>().value(row), *p, *s)
        }
        DataType::Decimal256(p, s) => {
            decimal_to_str::<Decimal256Type>(col.as_primitive::<Decimal256Type>().value(row), *p, *s)
        }
        DataType::Utf8 => text_to_str(col.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => text_to_str(col.as_string::<i64>().value(row)),
        DataType::Utf8View => text_to_str(col.as_string_view().value(row)),
        DataType::Dictionary(_, _) => {
            let dict = col.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            cell_to_string(dict.values(), key)?
        }
        _ => {
            let options = FormatOptions::default().with_null(NULL_STR);
            let formatter = ArrayFormatter::try_new(col.as_ref(), &options)?;
            formatter.value(row).to_string()
        }
    })
}

/// A row whose last cell has line breaks becomes that row (with the first line) followed by
/// one row per further line; each line is numbered and its indentation shown as `-`.
fn expand_row(mut row: Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(last) = row.last() else {
        out.push(row);
        return;
    };
    if !last.contains('\n') {
        out.push(row);
        return;
    }
    let cell = row.pop().unwrap_or_default();
    out.push(row);
    for (i, line) in cell.split('\n').enumerate() {
        let content = line.trim_start();
        let indent = "-".repeat(line.len() - content.len());
        out.push(vec![format!("{:02}){indent}{content}", i + 1)]);
    }
}

/// The rows of `batches` as sqllogictest text.
pub fn convert_batches(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|col| cell_to_string(col, row))
                .collect::<Result<Vec<_>, _>>()?;
            expand_row(cells, &mut rows);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_to_ten_significant_digits() {
        assert_eq!(float_to_str(0.1 + 0.2, FLOAT_DIGITS), "0.3");
        assert_eq!(float_to_str(3.0, FLOAT_DIGITS), "3");
        assert_eq!(float_to_str(-0.0, FLOAT_DIGITS), "0");
        assert_eq!(float_to_str(1e-20, FLOAT_DIGITS), "0.00000000000000000001");
        assert_eq!(float_to_str(123456.789012345, FLOAT_DIGITS), "123456.789");
        assert_eq!(float_to_str(2.0 / 3.0, FLOAT_DIGITS), "0.6666666667");
        assert_eq!(float_to_str(1234567890123.0, FLOAT_DIGITS), "1234567890000");
        assert_eq!(float_to_str(f64::NAN, FLOAT_DIGITS), "NaN");
        assert_eq!(float_to_str(f64::NEG_INFINITY, FLOAT_DIGITS), "-Infinity");
        // Last-bit differences vanish.
        let a: f64 = [0.1, 0.2, 0.3].iter().sum();
        let b: f64 = [0.3, 0.2, 0.1].iter().sum();
        assert_ne!(a, b);
        assert_eq!(float_to_str(a, FLOAT_DIGITS), float_to_str(b, FLOAT_DIGITS));
    }

    #[test]
    fn multiline_cells_expand() {
        let mut out = Vec::new();
        expand_row(vec!["plan".into(), "A\n  B".into()], &mut out);
        assert_eq!(
            out,
            vec![vec!["plan".to_string()], vec!["01)A".into()], vec!["02)--B".into()]]
        );
    }
}
