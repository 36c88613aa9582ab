//! Batches ↔ bytes for exchanges: compact pieces, one Arrow IPC stream per message.
//!
//! What one rank sends to one destination in one round is one *message*:
//! `[u32 n][u32 partition] × n [Arrow IPC stream with n record batches]`, little endian: one
//! schema per message, the batches in the sender's order, each tagged with the output
//! partition it belongs to. An empty message is zero bytes.
//!
//! Only the rows' own bytes travel: pieces are [`compact`]ed first (view arrays that point into
//! shared data buffers, as `take` and `slice` leave them, are garbage-collected; Arrow's IPC
//! writer truncates the buffers of sliced arrays itself).

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryViewArray, StringViewArray, make_array};
use datafusion::arrow::array::{ArrayData, GenericByteViewArray};
use datafusion::arrow::datatypes::{ByteViewType, DataType, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};

/// `batch` with every view array (also inside lists, structs, maps) holding only the bytes its
/// rows use; other columns unchanged (zero-copy).
pub fn compact(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut changed = false;
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| {
            let (c, ch) = compact_array(c)?;
            changed |= ch;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    if !changed {
        return Ok(batch.clone());
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn compact_array(array: &ArrayRef) -> Result<(ArrayRef, bool)> {
    match array.data_type() {
        DataType::Utf8View => Ok(compact_views(array.as_any().downcast_ref::<StringViewArray>(), array)),
        DataType::BinaryView => Ok(compact_views(array.as_any().downcast_ref::<BinaryViewArray>(), array)),
        _ => {
            let data = array.to_data();
            if data.child_data().is_empty() {
                return Ok((Arc::clone(array), false));
            }
            let mut changed = false;
            let mut children = Vec::with_capacity(data.child_data().len());
            for child in data.child_data() {
                let (c, ch) = compact_array(&make_array(child.clone()))?;
                changed |= ch;
                children.push(c.to_data());
            }
            if !changed {
                return Ok((Arc::clone(array), false));
            }
            let rebuilt = data.into_builder().child_data(children).build()?;
            Ok((make_array(rebuilt), true))
        }
    }
}

/// A view array whose data buffers hold more than its rows use (by more than a quarter, and
/// by more than 4 KiB) is rewritten with only those bytes.
fn compact_views<T: ByteViewType + ?Sized>(
    views: Option<&GenericByteViewArray<T>>,
    array: &ArrayRef,
) -> (ArrayRef, bool) {
    let Some(v) = views else {
        return (Arc::clone(array), false);
    };
    let held: usize = v.data_buffers().iter().map(|b| b.len()).sum();
    if held == 0 {
        return (Arc::clone(array), false);
    }
    let used = v.total_buffer_bytes_used();
    if held <= used + used / 4 || held - used <= 4096 {
        return (Arc::clone(array), false);
    }
    (Arc::new(v.gc()), true)
}

/// The bytes `batch` occupies once compacted: buffers of arrays sliced or shared with other
/// batches count in full, so this over-estimates such pieces (they are then sent in smaller
/// groups, never too large ones).
pub fn size_estimate(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|c| array_size(&c.to_data())).sum()
}

fn array_size(data: &ArrayData) -> usize {
    match data.data_type() {
        DataType::Utf8View | DataType::BinaryView => {
            let array = make_array(data.clone());
            let used = match data.data_type() {
                DataType::Utf8View => array
                    .as_any()
                    .downcast_ref::<StringViewArray>()
                    .map_or(0, |a| a.total_buffer_bytes_used()),
                _ => array
                    .as_any()
                    .downcast_ref::<BinaryViewArray>()
                    .map_or(0, |a| a.total_buffer_bytes_used()),
            };
            data.len() * 16 + used + data.nulls().map_or(0, |n| n.buffer().len())
        }
        _ => {
            let own: usize =
                data.buffers().iter().map(|b| b.len()).sum::<usize>() + data.nulls().map_or(0, |n| n.buffer().len());
            own + data.child_data().iter().map(array_size).sum::<usize>()
        }
    }
}

/// One message: `pieces` (output partition, batch) in order, as one IPC stream.
pub fn encode_message(schema: &SchemaRef, pieces: &[(usize, RecordBatch)]) -> Result<Vec<u8>> {
    if pieces.is_empty() {
        return Ok(Vec::new());
    }
    let n = u32::try_from(pieces.len())
        .map_err(|_| DataFusionError::Internal("exchange: too many batches in one message".into()))?;
    let mut out = Vec::with_capacity(4 + 4 * pieces.len());
    out.extend_from_slice(&n.to_le_bytes());
    for (partition, _) in pieces {
        let p = u32::try_from(*partition)
            .map_err(|_| DataFusionError::Internal(format!("exchange: partition {partition} out of range")))?;
        out.extend_from_slice(&p.to_le_bytes());
    }
    let mut writer = StreamWriter::try_new(out, schema)?;
    for (_, batch) in pieces {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// Decodes one message, calling `f(partition, batch)` for its batches in order.
pub fn decode_message(bytes: &[u8], mut f: impl FnMut(usize, RecordBatch) -> Result<()>) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let bad = |what: &str| DataFusionError::Internal(format!("exchange: malformed message ({what})"));
    let n = u32::from_le_bytes(
        bytes
            .get(..4)
            .ok_or_else(|| bad("no header"))?
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let tags = bytes.get(4..4 + 4 * n).ok_or_else(|| bad("short header"))?;
    let mut partitions = tags
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize);
    let mut seen = 0;
    for batch in StreamReader::try_new(Cursor::new(&bytes[4 + 4 * n..]), None)? {
        let partition = partitions.next().ok_or_else(|| bad("more batches than tags"))?;
        f(partition, batch?)?;
        seen += 1;
    }
    if seen != n {
        return Err(bad("fewer batches than tags"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringViewArray};
    use datafusion::arrow::compute::take;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch(n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8View, true),
        ]));
        let ids = Int64Array::from_iter_values(0..n as i64);
        let s = StringViewArray::from_iter(
            (0..n).map(|i| (i % 7 != 0).then(|| format!("a string longer than twelve {i}"))),
        );
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(s)]).unwrap()
    }

    #[test]
    fn taken_views_are_compacted_and_round_trip() {
        let b = batch(10_000);
        let idx = datafusion::arrow::array::UInt32Array::from(vec![3u32, 5, 9999]);
        let cols: Vec<ArrayRef> = b.columns().iter().map(|c| take(c, &idx, None).unwrap()).collect();
        let piece = RecordBatch::try_new(b.schema(), cols).unwrap();
        let schema = b.schema();
        let whole = encode_message(&schema, &[(0, piece.clone())]).unwrap();
        let small = encode_message(&schema, &[(2, compact(&piece).unwrap())]).unwrap();
        assert!(whole.len() > 100_000, "{}", whole.len());
        assert!(small.len() < 2_000, "{}", small.len());
        let mut got = Vec::new();
        decode_message(&small, |p, b| {
            got.push((p, b));
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[0].1, piece);
        assert!(size_estimate(&piece) < 1_000, "{}", size_estimate(&piece));
    }

    #[test]
    fn one_schema_per_message_and_tags_in_order() {
        let b = batch(100);
        let schema = b.schema();
        let pieces: Vec<(usize, RecordBatch)> = (0..5).map(|i| (i * 3, b.slice(i * 20, 20))).collect();
        let one = encode_message(&schema, &pieces[..1]).unwrap();
        let five = encode_message(&schema, &pieces).unwrap();
        // Four more batches cost their rows and batch headers, not four more schemas.
        let schema_len = {
            let w = StreamWriter::try_new(Vec::new(), &schema).unwrap();
            w.into_inner().unwrap().len()
        };
        assert!(
            five.len() < one.len() * 5 - 4 * schema_len + 64,
            "{} {} {}",
            one.len(),
            five.len(),
            schema_len
        );
        let mut got = Vec::new();
        decode_message(&five, |p, b| {
            got.push((p, b));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, pieces);
        assert!(decode_message(&five[..five.len() - 9], |_, _| Ok(())).is_err());
        assert!(decode_message(&[], |_, _| panic!("no batch")).is_ok());
    }
}

#[cfg(test)]
mod slice_tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    #[test]
    fn a_sliced_row_encodes_small() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let s = StringArray::from_iter_values((0..10_000).map(|i| format!("{i:0>100}")));
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(s)]).unwrap();
        let m = encode_message(&schema, &[(0, compact(&b.slice(5000, 1)).unwrap())]).unwrap();
        assert!(m.len() < 2000, "{}", m.len());
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, false)]));
        let s = StringViewArray::from_iter_values((0..10_000).map(|i| format!("{i:0>100}")));
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(s)]).unwrap();
        let m = encode_message(&schema, &[(0, compact(&b.slice(5000, 1)).unwrap())]).unwrap();
        assert!(m.len() < 2000, "{}", m.len());
        let m = encode_message(&schema, &[(0, compact(&b.slice(5000, 2000)).unwrap())]).unwrap();
        assert!(m.len() < 300_000, "{}", m.len());
    }
}
