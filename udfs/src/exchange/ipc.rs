//! Batches ↔ bytes for exchanges: frames of (partition, Arrow IPC stream).
//!
//! A buffer is a sequence of frames `[u32 partition][u64 length][IPC stream of that length]`,
//! little endian. Frames are decoded in order, so received rows keep the sender's order.

use std::io::Cursor;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};

/// Appends one frame holding `batches` of output partition `partition` (nothing when empty).
pub fn encode(out: &mut Vec<u8>, schema: &SchemaRef, partition: usize, batches: &[RecordBatch]) -> Result<()> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(());
    }
    let mut writer = StreamWriter::try_new(Vec::new(), schema)?;
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        writer.write(b)?;
    }
    writer.finish()?;
    let body = writer.into_inner()?;
    let partition = u32::try_from(partition)
        .map_err(|_| DataFusionError::Internal(format!("exchange: partition {partition} out of range")))?;
    out.extend_from_slice(&partition.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Decodes every frame of `bytes`, calling `f(partition, batch)` in order.
pub fn decode(bytes: &[u8], mut f: impl FnMut(usize, RecordBatch) -> Result<()>) -> Result<()> {
    let bad = || DataFusionError::Internal("exchange: truncated frame".into());
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes.get(at..at + 12).ok_or_else(bad)?;
        let partition = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let len = u64::from_le_bytes(head[4..].try_into().expect("8 bytes")) as usize;
        at += 12;
        let body = bytes.get(at..at + len).ok_or_else(bad)?;
        at += len;
        for batch in StreamReader::try_new(Cursor::new(body), None)? {
            f(partition, batch?)?;
        }
    }
    Ok(())
}
