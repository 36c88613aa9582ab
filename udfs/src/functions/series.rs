//! The time axis of snapshots ordered by a column (`dmd`'s `order_by`): the constant step
//! between snapshots (checked across ranks), the default `dt`, and the axis extended past the
//! last snapshot for forecasts.
//!
//! Integer-like columns (integers, dates, times, timestamps, durations) are handled exactly as
//! i64 counts of their unit; floats as f64, with a relative tolerance of 1e-9 on each step.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::{DataFusionError, Result};
use engine::Comm;

/// Values of the axis as numbers: exact i64 counts of the column's unit, or f64.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Int(i64),
    Float(f64),
}

/// An evenly spaced time axis.
#[derive(Debug, Clone)]
pub(super) struct TimeAxis {
    function: &'static str,
    column: String,
    data_type: DataType,
    /// The step between consecutive snapshots.
    step: Step,
    /// The last snapshot's value.
    last: Step,
}

/// The column's unit in seconds (timestamps, times, durations), days (dates), or 1.
fn unit(t: &DataType) -> f64 {
    let of = |u: &TimeUnit| match u {
        TimeUnit::Second => 1.0,
        TimeUnit::Millisecond => 1e-3,
        TimeUnit::Microsecond => 1e-6,
        TimeUnit::Nanosecond => 1e-9,
    };
    match t {
        DataType::Timestamp(u, _) | DataType::Duration(u) | DataType::Time32(u) | DataType::Time64(u) => of(u),
        DataType::Date64 => 1.0 / 86_400_000.0,
        _ => 1.0,
    }
}

/// `values` (one rank's sorted axis) as i64 (integer-like) or f64 (floats).
fn numbers(values: &ArrayRef) -> Result<Result<Vec<i64>, Vec<f64>>> {
    let t = values.data_type();
    if t.is_floating() {
        let f = cast(values, &DataType::Float64)?;
        let f = f.as_any().downcast_ref::<Float64Array>().expect("Float64");
        return Ok(Err(f.values().to_vec()));
    }
    let i = match t {
        DataType::Date32 | DataType::Time32(_) => cast(&cast(values, &DataType::Int32)?, &DataType::Int64)?,
        _ => cast(values, &DataType::Int64)?,
    };
    if i.null_count() > values.null_count() {
        return Err(DataFusionError::Execution(format!(
            "values of type {t} beyond the 64-bit integer range"
        )));
    }
    let i = i.as_any().downcast_ref::<Int64Array>().expect("Int64");
    Ok(Ok(i.values().to_vec()))
}

impl TimeAxis {
    /// Collective. Checks that the axis (this rank's values, sorted ascending, unique, no
    /// NULLs; ranks in order) is evenly spaced and returns it; at least two values overall.
    pub(super) fn new(function: &'static str, column: &str, values: &ArrayRef, comm: &Comm) -> Result<TimeAxis> {
        let err = |m: String| DataFusionError::Execution(format!("{function}: order_by column '{column}' {m}"));
        let local = crate::agree::agree(comm, numbers(values).map_err(|e| err(e.to_string())))?;
        // Per rank: count, first, second, last (as f64 bits for floats).
        let (count, ends): (usize, [u64; 3]) = match &local {
            Ok(v) => (
                v.len(),
                [0, 1, v.len().saturating_sub(1)].map(|i| v.get(i).map_or(0, |&x| x as u64)),
            ),
            Err(v) => (
                v.len(),
                [0, 1, v.len().saturating_sub(1)].map(|i| v.get(i).map_or(0, |x| x.to_bits())),
            ),
        };
        let all = comm
            .allgather(&[count as u64, ends[0], ends[1], ends[2]])
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let float = local.is_err();
        let num = |bits: u64| {
            if float {
                Step::Float(f64::from_bits(bits))
            } else {
                Step::Int(bits as i64)
            }
        };
        let ranks: Vec<usize> = (0..comm.size()).filter(|&r| all[4 * r] > 0).collect();
        let total: u64 = ranks.iter().map(|&r| all[4 * r]).sum();
        if total < 2 {
            return Err(err(format!("has {total} snapshots; at least 2 are needed")));
        }
        let r0 = ranks[0];
        let t0 = num(all[4 * r0 + 1]);
        let t1 = if all[4 * r0] >= 2 {
            num(all[4 * r0 + 2])
        } else {
            num(all[4 * ranks[1] + 1])
        };
        let step = match (t0, t1) {
            (Step::Int(a), Step::Int(b)) => Step::Int(b - a),
            (Step::Float(a), Step::Float(b)) => Step::Float(b - a),
            _ => unreachable!("one kind of value"),
        };
        let last = num(all[4 * ranks[ranks.len() - 1] + 3]);
        let axis = TimeAxis {
            function,
            column: column.to_string(),
            data_type: values.data_type().clone(),
            step,
            last,
        };
        // Each rank checks its own steps and the one into the next rank with values.
        let me = comm.rank();
        let next = ranks
            .iter()
            .position(|&r| r == me)
            .and_then(|i| ranks.get(i + 1))
            .map(|&r| num(all[4 * r + 1]));
        let pairs: Vec<(Step, Step)> = match &local {
            Ok(v) => {
                let mut p: Vec<(Step, Step)> = v.windows(2).map(|w| (Step::Int(w[0]), Step::Int(w[1]))).collect();
                if let (Some(&l), Some(n)) = (v.last(), next) {
                    p.push((Step::Int(l), n));
                }
                p
            }
            Err(v) => {
                let mut p: Vec<(Step, Step)> = v.windows(2).map(|w| (Step::Float(w[0]), Step::Float(w[1]))).collect();
                if let (Some(&l), Some(n)) = (v.last(), next) {
                    p.push((Step::Float(l), n));
                }
                p
            }
        };
        let uneven = pairs.into_iter().find(|&(a, b)| match (a, b, step) {
            (Step::Int(a), Step::Int(b), Step::Int(s)) => b - a != s,
            (Step::Float(a), Step::Float(b), Step::Float(s)) => {
                ((b - a) - s).abs() > 1e-9 * (s.abs() + a.abs().max(b.abs()))
            }
            _ => true,
        });
        let checked = match uneven {
            Some((a, b)) => Err(err(format!(
                "is not evenly spaced: {} is followed by {}, but the first step is {}; DMD needs snapshots at a \
                 constant step (is a snapshot missing?)",
                axis.show(a),
                axis.show(b),
                axis.show_step()
            ))),
            None => Ok(()),
        };
        crate::agree::agree(comm, checked)?;
        Ok(axis)
    }

    /// The step in the unit of `dt`: seconds for timestamps, times and durations, days for
    /// dates, the column's own unit otherwise.
    pub(super) fn dt(&self) -> f64 {
        match self.step {
            Step::Int(s) => s as f64 * unit(&self.data_type),
            Step::Float(s) => s,
        }
    }

    /// The axis at the `steps` snapshots after the last, in the column's type.
    pub(super) fn extrapolate(&self, steps: i64) -> Result<ArrayRef> {
        let overflow = || {
            DataFusionError::Execution(format!(
                "{}: order_by column '{}' overflows its type {} steps past the last snapshot",
                self.function, self.column, steps
            ))
        };
        let numbers: ArrayRef = match (self.last, self.step) {
            (Step::Int(l), Step::Int(s)) => {
                let v = (1..=steps)
                    .map(|k| s.checked_mul(k).and_then(|d| l.checked_add(d)))
                    .collect::<Option<Vec<i64>>>()
                    .ok_or_else(overflow)?;
                Arc::new(Int64Array::from(v))
            }
            (Step::Float(l), Step::Float(s)) => Arc::new(Float64Array::from(
                (1..=steps).map(|k| l + s * k as f64).collect::<Vec<_>>(),
            )),
            _ => unreachable!("one kind of value"),
        };
        let typed = match &self.data_type {
            DataType::Date32 | DataType::Time32(_) => cast(&cast(&numbers, &DataType::Int32)?, &self.data_type)?,
            t => cast(&numbers, t)?,
        };
        if typed.null_count() > 0 {
            return Err(overflow());
        }
        Ok(typed)
    }

    /// A value as the column shows it.
    fn show(&self, v: Step) -> String {
        let one: ArrayRef = match v {
            Step::Int(i) => Arc::new(Int64Array::from(vec![i])),
            Step::Float(f) => Arc::new(Float64Array::from(vec![f])),
        };
        let typed = match &self.data_type {
            DataType::Date32 | DataType::Time32(_) => {
                cast(&one, &DataType::Int32).and_then(|a| cast(&a, &self.data_type))
            }
            t => cast(&one, t),
        };
        typed
            .ok()
            .and_then(|a| array_value_to_string(&a, 0).ok())
            .unwrap_or_else(|| format!("{v:?}"))
    }

    /// The step as a number of the column's unit.
    fn show_step(&self) -> String {
        match (self.step, &self.data_type) {
            (
                Step::Int(s),
                DataType::Timestamp(u, _) | DataType::Duration(u) | DataType::Time32(u) | DataType::Time64(u),
            ) => {
                format!("{s} {u:?}s")
            }
            (Step::Int(s), DataType::Date32) => format!("{s} days"),
            (Step::Int(s), DataType::Date64) => format!("{s} ms"),
            (Step::Int(s), _) => s.to_string(),
            (Step::Float(s), _) => s.to_string(),
        }
    }
}
