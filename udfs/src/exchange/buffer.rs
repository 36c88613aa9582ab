//! [`StageBuffers`]: what an exchange received, held for the stages after it, in memory while
//! the session's memory pool allows and spilled to the disk manager's temp files beyond.
//!
//! Every byte held is reserved from the task's memory pool (`SET datafusion.runtime.memory_limit`,
//! the shell's `--memory-limit`), the same pool DataFusion's sorts, aggregates and joins use.
//! An exchange holds at most a quarter of a bounded pool in memory (the operators that read
//! its rows need the rest). When the pool refuses a batch, or that quarter is reached,
//! everything this exchange holds in memory is written to
//! Arrow IPC spill files (DataFusion's `SpillManager`, in the disk manager's temp directory)
//! and the reservation is freed; reading a partition back streams its pieces in the order they
//! arrived, spilled ones from disk.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::spill_file::SpillFile;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, SpillMetrics};
use datafusion::physical_plan::spill::SpillManager;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// A run of batches of one buffer, in arrival order.
enum Piece {
    Memory(Vec<RecordBatch>),
    Spilled(Arc<dyn SpillFile>),
}

/// The batches of `n` buffers (output partitions of an exchange), under one reservation.
pub struct StageBuffers {
    schema: SchemaRef,
    parts: Vec<Vec<Piece>>,
    reservation: MemoryReservation,
    spill: SpillManager,
    rows: usize,
    /// The most bytes held in memory: a quarter of the pool when it is bounded.
    cap: Option<usize>,
}

impl std::fmt::Debug for StageBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageBuffers")
            .field("buffers", &self.parts.len())
            .field("rows", &self.rows)
            .field("reserved", &self.reservation.size())
            .finish()
    }
}

impl StageBuffers {
    /// `n` empty buffers of `schema` rows; `name` names the consumer in the pool's reports.
    pub fn new(name: &str, n: usize, schema: SchemaRef, ctx: &TaskContext, metrics: &ExecutionPlanMetricsSet) -> Self {
        let env = ctx.runtime_env();
        let reservation = MemoryConsumer::new(name)
            .with_can_spill(true)
            .register(&env.memory_pool);
        let cap = match env.memory_pool.memory_limit() {
            MemoryLimit::Finite(n) => Some(n / 4),
            _ => None,
        };
        let spill = SpillManager::new(Arc::clone(&env), SpillMetrics::new(metrics, 0), Arc::clone(&schema));
        StageBuffers {
            schema,
            parts: (0..n).map(|_| Vec::new()).collect(),
            reservation,
            spill,
            rows: 0,
            cap,
        }
    }

    /// Number of buffers.
    pub fn buffer_count(&self) -> usize {
        self.parts.len()
    }

    /// Rows held, in memory and spilled.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends `batch` to buffer `i`, spilling what this exchange holds when the pool refuses.
    pub fn push(&mut self, i: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if i >= self.parts.len() {
            return Err(datafusion::error::DataFusionError::Internal(format!(
                "exchange: partition {i} received, {} expected",
                self.parts.len()
            )));
        }
        self.rows += batch.num_rows();
        let size = batch.get_array_memory_size();
        // Within a quarter of a bounded pool: the operators that read these buffers need the rest.
        let over_share = self.cap.is_some_and(|cap| self.reservation.size() + size > cap);
        if over_share || self.reservation.try_grow(size).is_err() {
            self.spill_all()?;
            if self.reservation.try_grow(size).is_err() {
                // Larger than what the pool has left even with nothing held: straight to disk.
                return self.spill_one(i, batch);
            }
        }
        match self.parts[i].last_mut() {
            Some(Piece::Memory(batches)) => batches.push(batch),
            _ => self.parts[i].push(Piece::Memory(vec![batch])),
        }
        Ok(())
    }

    fn spill_one(&mut self, i: usize, batch: RecordBatch) -> Result<()> {
        if let Some(file) = self.spill.spill_record_batch_and_finish(&[batch], "heatsql exchange")? {
            self.parts[i].push(Piece::Spilled(file));
        }
        Ok(())
    }

    /// Writes every in-memory piece to a spill file and frees the reservation.
    pub fn spill_all(&mut self) -> Result<()> {
        for part in &mut self.parts {
            for piece in part.iter_mut() {
                if let Piece::Memory(batches) = piece {
                    match self.spill.spill_record_batch_and_finish(batches, "heatsql exchange")? {
                        Some(file) => *piece = Piece::Spilled(file),
                        None => batches.clear(),
                    }
                }
            }
            part.retain(|p| !matches!(p, Piece::Memory(b) if b.is_empty()));
        }
        self.reservation.free();
        Ok(())
    }

    /// Buffers `range`, one after the other, as one stream of at most `fetch` rows.
    pub fn stream(&self, range: std::ops::Range<usize>, fetch: Option<usize>) -> Result<SendableRecordBatchStream> {
        let mut streams: Vec<SendableRecordBatchStream> = Vec::new();
        let mut memory: Vec<RecordBatch> = Vec::new();
        for part in &self.parts[range] {
            for piece in part {
                match piece {
                    Piece::Memory(batches) => memory.extend(batches.iter().cloned()),
                    Piece::Spilled(file) => {
                        if !memory.is_empty() {
                            streams.push(memory_stream(&self.schema, std::mem::take(&mut memory)));
                        }
                        streams.push(self.spill.read_spill_as_stream(Arc::clone(file), None)?);
                    }
                }
            }
        }
        if !memory.is_empty() || streams.is_empty() {
            streams.push(memory_stream(&self.schema, memory));
        }
        let mut left = fetch.unwrap_or(usize::MAX);
        let rows = futures::stream::iter(streams).flatten().filter_map(move |batch| {
            let out = match batch {
                Err(e) => Some(Err(e)),
                Ok(_) if left == 0 => None,
                Ok(b) => {
                    let n = b.num_rows().min(left);
                    left -= n;
                    Some(Ok(if n == b.num_rows() { b } else { b.slice(0, n) }))
                }
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), rows)))
    }
}

fn memory_stream(schema: &SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(schema),
        futures::stream::iter(batches.into_iter().map(Ok)),
    ))
}
