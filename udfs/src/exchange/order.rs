//! Ordering rows across ranks by a key column, keeping them split: a distributed sort.
//!
//! A table function whose rows must be in a given order (`matmul`'s `a_order`/`b_order`, a
//! time axis) cannot take the input through an ORDER BY (that ends in a merge: every row on one
//! rank). [`order_rows`] instead sorts where the rows are:
//!
//! 1. every rank sorts its own rows by the composite key (key, global input position), which
//!    is unique, so ties keep the input order and the result does not depend on P;
//! 2. the P − 1 split keys that cut the global order into the balanced layout
//!    ([`engine::dndarray::balanced_counts`]: rank r gets n / P rows, the first n % P ranks one
//!    more) are found exactly by a bisection over the key space, all at once: each step counts
//!    the keys below P − 1 candidates on every rank (a binary search in its sorted keys) and sums
//!    the counts with one allreduce of P − 1 integers (at most 128 steps; keys only, no rows);
//! 3. one all-to-all of Arrow IPC moves each row straight to its final rank, which sorts what it
//!    received.
//!
//! Rank r then holds the rows of sorted positions `[o_r, o_r + c_r)`, balanced: zero-row ranks
//! receive rows and ranks with many rows give them away. No rank holds more than its own share
//! plus its received share at once (with the encoded buffers). Key columns: integers, unsigned
//! integers, floats, dates, times, timestamps and durations; NULL and NaN keys are refused, and
//! with `unique` so is a value that occurs twice (anywhere, also across ranks).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use engine::{Comm, ReduceOp};
use futures::StreamExt;

use super::ipc;
use crate::agree::agree;

/// The column that orders the rows and how errors name it.
#[derive(Debug, Clone)]
pub struct OrderKey<'a> {
    /// The table function (`matmul`).
    pub function: &'a str,
    /// The argument that named the column (`a_order`).
    pub argument: &'a str,
    /// The key column.
    pub column: &'a str,
    /// Refuse a key value that occurs more than once.
    pub unique: bool,
}

impl OrderKey<'_> {
    fn error(&self, what: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!(
            "{}: {} column '{}' {what}",
            self.function, self.argument, self.column
        ))
    }
}

/// Whether `t` can order rows (see the module documentation).
pub fn is_orderable(t: &DataType) -> bool {
    use DataType::*;
    t.is_integer()
        || t.is_floating()
        || matches!(
            t,
            Date32 | Date64 | Time32(_) | Time64(_) | Timestamp(_, _) | Duration(_)
        )
}

const SIGN: u64 = 1 << 63;

/// Local. The order-preserving u64 image of each value of `array` (integers and temporal
/// values as i64 with the sign bit flipped, floats by their IEEE bits), or the error for NaNs
/// or a type that cannot order rows (NULLs are counted by the caller).
fn keys(array: &ArrayRef, key: &OrderKey) -> Result<Vec<u64>> {
    let t = array.data_type();
    if !is_orderable(t) {
        return Err(key.error(format!(
            "is {t}; expected an integer, float, date, time, timestamp or duration column"
        )));
    }
    if t.is_floating() {
        let f = cast(array, &DataType::Float64)?;
        let f = f.as_any().downcast_ref::<Float64Array>().expect("cast to Float64");
        if f.values().iter().any(|v| v.is_nan()) {
            return Err(key.error("has NaN values; every row needs a position"));
        }
        return Ok(f
            .values()
            .iter()
            .map(|v| {
                // -0.0 and 0.0 are one value.
                let b = (v + 0.0).to_bits();
                if b & SIGN != 0 { !b } else { b | SIGN }
            })
            .collect());
    }
    if matches!(t, DataType::UInt64) {
        let u = array.as_any().downcast_ref::<UInt64Array>().expect("UInt64 column");
        return Ok(u.values().to_vec());
    }
    // Every other orderable type fits i64 (temporal types are i32/i64 counts of a unit).
    let as_i64 = match t {
        DataType::Date32 | DataType::Time32(_) => cast(&cast(array, &DataType::Int32)?, &DataType::Int64)?,
        _ => cast(array, &DataType::Int64)?,
    };
    let i = as_i64
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .expect("cast to Int64");
    Ok(i.values().iter().map(|&v| (v as u64) ^ SIGN).collect())
}

/// Local. The composite (key, global position) keys of `batch`'s rows.
fn composite(batch: &RecordBatch, column: usize, positions: &[u64], key: &OrderKey) -> Result<Vec<u128>> {
    let k = keys(batch.column(column), key)?;
    Ok(k.iter()
        .zip(positions)
        .map(|(&k, &p)| (u128::from(k) << 64) | u128::from(p))
        .collect())
}

/// Collective (every rank calls it, zero-row ranks too). Drains `input` (this rank's rows, in
/// input order) and returns this rank's share of all rows sorted by `key.column`, ascending,
/// ties in input order (rank, then row), balanced over the ranks (see the module
/// documentation). The batches keep `input`'s schema. Errors are the same on every rank.
pub async fn order_rows(
    mut input: SendableRecordBatchStream,
    key: &OrderKey<'_>,
    comm: &Comm,
) -> Result<Vec<RecordBatch>> {
    let schema = input.schema();
    let drained = async {
        let mut batches = Vec::new();
        while let Some(b) = input.next().await {
            batches.push(b?);
        }
        Ok::<_, DataFusionError>(batches)
    }
    .await;
    let batches = agree(comm, drained)?;
    sort_batches(&schema, &batches, key, comm)
}

/// Collective. [`order_rows`] on batches already drained.
pub fn sort_batches(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    key: &OrderKey<'_>,
    comm: &Comm,
) -> Result<Vec<RecordBatch>> {
    let column = schema
        .index_of(key.column)
        .map_err(|_| key.error("is not a column of the input"));
    let column = agree(comm, column)?;
    let local = agree(comm, concat_batches(schema, batches).map_err(DataFusionError::from))?;
    let nulls = comm
        .allreduce(&[local.column(column).null_count() as u64], ReduceOp::Sum)
        .map_err(external)?[0];
    if nulls > 0 {
        return Err(key.error(format!("has {nulls} NULL values; every row needs a position")));
    }
    let n_local = local.num_rows() as u64;
    let counts = comm.allgather(&[n_local]).map_err(external)?;
    let start: u64 = counts[..comm.rank()].iter().sum();
    let positions: Vec<u64> = (start..start + n_local).collect();
    // 1. This rank's rows sorted by (key, position); the position gives back the row.
    let mut sorted = agree(comm, composite(&local, column, &positions, key))?;
    sorted.sort_unstable();
    // 2. The split keys of the balanced layout.
    let n: u64 = counts.iter().sum();
    let target = engine::dndarray::balanced_counts(n as i64, comm.size());
    let bounds: Vec<u64> = engine::dndarray::offsets(&target)[1..]
        .iter()
        .map(|&o| o as u64)
        .collect();
    let splits = split_keys(&sorted, &bounds, comm)?;
    // 3. Rows to their ranks (sorted runs), with their positions; the receiver sorts again.
    let with_pos = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .cloned()
            .chain([Arc::new(Field::new(POSITION, DataType::UInt64, false))])
            .collect::<Vec<_>>(),
    ));
    let mut send = Vec::new();
    let mut send_counts = vec![0usize; comm.size()];
    let encoded = (|| {
        let mut at = 0;
        for (dest, count) in send_counts.iter_mut().enumerate() {
            let end = match splits.get(dest) {
                Some(&s) => sorted.partition_point(|&c| c < s),
                None => sorted.len(),
            };
            let rows: Vec<u64> = sorted[at..end].iter().map(|&c| c as u64 - start).collect();
            let pos: Vec<u64> = sorted[at..end].iter().map(|&c| c as u64).collect();
            at = end;
            let piece = take_record_batch(&local, &UInt64Array::from(rows))?;
            let mut columns = piece.columns().to_vec();
            columns.push(Arc::new(UInt64Array::from(pos)) as ArrayRef);
            let message = ipc::encode_message(
                &with_pos,
                &[(0, ipc::compact(&RecordBatch::try_new(Arc::clone(&with_pos), columns)?)?)],
            )?;
            send.extend_from_slice(&message);
            let before = send.len() - message.len();
            *count = send.len() - before;
        }
        Ok::<_, DataFusionError>(())
    })();
    agree(comm, encoded)?;
    drop(sorted);
    drop(local);
    let (received, recv_counts) = comm.alltoallv(&send, &send_counts).map_err(external)?;
    drop(send);
    let mut pieces = Vec::new();
    let mut at = 0;
    let decoded = recv_counts.iter().try_for_each(|&n| {
        let block = &received[at..at + n];
        at += n;
        ipc::decode_message(block, |_, b| {
            pieces.push(b);
            Ok(())
        })
    });
    agree(comm, decoded)?;
    drop(received);
    let mine = (|| {
        let all = concat_batches(&with_pos, &pieces)?;
        let pos = all
            .column(schema.fields().len())
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("positions")
            .values()
            .to_vec();
        let mut here: Vec<(u128, u64)> = composite(&all, column, &pos, key)?.into_iter().zip(0u64..).collect();
        here.sort_unstable();
        let rows = UInt64Array::from(here.iter().map(|&(_, i)| i).collect::<Vec<_>>());
        let out = take_record_batch(&all, &rows)?;
        let out = out.project(&(0..schema.fields().len()).collect::<Vec<_>>())?;
        let keys: Vec<u64> = here.iter().map(|&(c, _)| (c >> 64) as u64).collect();
        Ok::<_, DataFusionError>((out, keys))
    })();
    let (out, sorted_keys) = agree(comm, mine)?;
    if key.unique {
        check_unique(&out, column, &sorted_keys, key, comm)?;
    }
    Ok(vec![out])
}

/// The name of the position column rows travel with.
const POSITION: &str = "__heatsql_position";

/// Collective. For each bound b (rows that must come before the cut), the smallest composite
/// key v with exactly b keys below it, found by bisection over the key space for all bounds at
/// once (one allreduce of the counts per step). `sorted` is this rank's sorted composite keys.
fn split_keys(sorted: &[u128], bounds: &[u64], comm: &Comm) -> Result<Vec<u128>> {
    let mut lo = vec![0u128; bounds.len()];
    let mut hi = vec![u128::MAX; bounds.len()];
    // Every rank holds the same lo/hi (they follow the summed counts), so all stop together.
    while lo.iter().zip(&hi).any(|(l, h)| l < h) {
        let mid: Vec<u128> = lo.iter().zip(&hi).map(|(&l, &h)| l + (h - l) / 2).collect();
        let below: Vec<u64> = mid.iter().map(|&m| sorted.partition_point(|&c| c < m) as u64).collect();
        let below = comm.allreduce(&below, ReduceOp::Sum).map_err(external)?;
        for j in 0..bounds.len() {
            if lo[j] < hi[j] {
                if below[j] >= bounds[j] {
                    hi[j] = mid[j];
                } else {
                    lo[j] = mid[j] + 1;
                }
            }
        }
    }
    // With the smallest v such that `below(v) ≥ b`, keys are unique, so exactly b lie below v.
    Ok(lo)
}

/// Collective. The error for a key value that occurs twice (neighbours on this rank, or this
/// rank's first row and the last row of the nearest earlier rank that has rows).
fn check_unique(out: &RecordBatch, column: usize, keys: &[u64], key: &OrderKey<'_>, comm: &Comm) -> Result<()> {
    let ends = match (keys.first(), keys.last()) {
        (Some(&f), Some(&l)) => [1, f, l],
        _ => [0, 0, 0],
    };
    let all = comm.allgather(&ends).map_err(external)?;
    let me = comm.rank();
    let before = (0..me).rev().find(|&r| all[3 * r] == 1).map(|r| all[3 * r + 2]);
    let mut twice = keys.windows(2).position(|w| w[0] == w[1]).map(|i| i + 1);
    if twice.is_none() && before.is_some() && keys.first().copied() == before {
        twice = Some(0);
    }
    let local = match twice {
        Some(i) => Err(key.error(format!(
            "has the value {} more than once; every row needs its own position",
            array_value_to_string(out.column(column), i).unwrap_or_else(|_| "?".into())
        ))),
        None => Ok(()),
    };
    agree(comm, local)
}

fn external(e: engine::CommError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float32Array, Int16Array, Int64Array, TimestampMillisecondArray};

    fn key() -> OrderKey<'static> {
        OrderKey {
            function: "f",
            argument: "a_order",
            column: "k",
            unique: false,
        }
    }

    /// The u64 images sort like the values.
    fn sorts_like_values(a: ArrayRef, values_order: &[usize]) {
        let k = keys(&a, &key()).expect("keys");
        let mut idx: Vec<usize> = (0..k.len()).collect();
        idx.sort_by_key(|&i| k[i]);
        assert_eq!(idx, values_order, "{a:?}");
    }

    #[test]
    fn keys_preserve_order() {
        sorts_like_values(
            Arc::new(Int64Array::from(vec![3, i64::MIN, -1, 0, i64::MAX])),
            &[1, 2, 3, 0, 4],
        );
        sorts_like_values(Arc::new(Int16Array::from(vec![-5, 7, -300])), &[2, 0, 1]);
        sorts_like_values(
            Arc::new(Float32Array::from(vec![
                1.5,
                -0.25,
                f32::NEG_INFINITY,
                0.0,
                f32::INFINITY,
                -7.0,
            ])),
            &[2, 5, 1, 3, 0, 4],
        );
        sorts_like_values(
            Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000, -5, 0])),
            &[1, 2, 0],
        );
        sorts_like_values(Arc::new(UInt64Array::from(vec![u64::MAX, 0, 1 << 63])), &[1, 2, 0]);
    }

    #[test]
    fn signed_zeros_are_one_value_and_nan_is_refused() {
        let k = keys(&(Arc::new(Float64Array::from(vec![-0.0, 0.0])) as ArrayRef), &key()).expect("keys");
        assert_eq!(k[0], k[1]);
        let e = keys(&(Arc::new(Float64Array::from(vec![1.0, f64::NAN])) as ArrayRef), &key()).unwrap_err();
        assert!(e.to_string().contains("f: a_order column 'k' has NaN values"), "{e}");
        let e = keys(
            &(Arc::new(datafusion::arrow::array::StringArray::from(vec!["x"])) as ArrayRef),
            &key(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("is Utf8; expected an integer"), "{e}");
    }
}
