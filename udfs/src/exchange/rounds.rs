//! The streaming body of every exchange: read the input a piece at a time, send it in rounds
//! of bounded size ([`engine::Comm::exchange_round`]), decode what arrives as it arrives.
//!
//! Per round, each rank reads its input until it holds about `heatsql.exchange_round_bytes`
//! ready to send (or the input ends), sends every destination at most its share
//! (`round_bytes / P`, so a rank also receives at most `round_bytes`), and decodes the round's
//! messages into the exchange's [`StageBuffers`] (which spill beyond the memory pool). So a rank
//! never holds its whole stage output twice, and no MPI message grows with the data. Rows a
//! rank sends to itself skip the encoding. An error on any rank (reading its input, encoding,
//! decoding, a cancelled query) is reported in the next round's header, and every rank returns
//! the same error ([`engine::Comm::agree`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, Time};
use datafusion::physical_plan::repartition::BatchPartitioner;
use engine::{Comm, RoundPattern};
use futures::StreamExt;
use futures::channel::mpsc;

use super::buffer::StageBuffers;
use super::ipc;
use super::keyfilter::{KeyFilter, ProbeFilter};
use super::partitions::{BUFFERED_PER_PARTITION, Tagged, join, spawn_partition};
use super::placement::Placement;
use crate::agree::agree;

/// Where an exchange's rows go.
pub enum Route {
    /// Row by row to output partitions (output partition o lives on [`Placement::owner`]).
    Shuffle(Partitioning),
    /// Input partition i to buffer i on every rank (`to_root`: on rank 0 only).
    Gather {
        /// Only rank 0 receives.
        to_root: bool,
        /// Per input partition: present on every rank already, so read where it is needed
        /// and never sent.
        local: Vec<bool>,
    },
}

/// What a shuffle does with a join key filter (see `keyfilter`) to each input batch.
pub(super) enum KeyStep<'a> {
    /// Nothing.
    None,
    /// Hashes its keys into the build side's filter.
    Build(&'a KeyFilter),
    /// Drops the rows the build side's filter rules out.
    Probe(ProbeFilter),
}

/// The metrics every exchange reports (`EXPLAIN ANALYZE`, per rank).
#[derive(Debug, Clone)]
pub(super) struct ExchangeMetrics {
    pub output_rows: Count,
    pub bytes_sent: Count,
    pub bytes_received: Count,
    pub rounds: Count,
    pub mpi_time: Time,
    /// Probe rows a join key filter kept from being sent.
    pub key_filter_dropped: Count,
}

impl ExchangeMetrics {
    pub fn new(set: &ExecutionPlanMetricsSet) -> Self {
        ExchangeMetrics {
            output_rows: MetricBuilder::new(set).output_rows(0),
            bytes_sent: MetricBuilder::new(set).global_counter("bytes_sent"),
            bytes_received: MetricBuilder::new(set).global_counter("bytes_received"),
            rounds: MetricBuilder::new(set).global_counter("rounds"),
            mpi_time: MetricBuilder::new(set).subset_time("mpi_time", 0),
            key_filter_dropped: MetricBuilder::new(set).global_counter("key_filter_dropped_rows"),
        }
    }
}

/// The input partitions this rank reads, all at once: each partition runs as a task of its
/// own (DataFusion's `SpawnedTask`, so the rank's `target_partitions / P` partitions use as
/// many cores), its batches coming in order through one bounded channel. Dropping the feed
/// stops the tasks.
pub(super) struct Feed {
    pub(super) ctx: Arc<TaskContext>,
    rx: mpsc::Receiver<Tagged>,
    tasks: Vec<SpawnedTask<()>>,
}

impl Feed {
    pub fn new(input: Arc<dyn ExecutionPlan>, ctx: Arc<TaskContext>, runs: Vec<usize>) -> Self {
        let (tx, rx) = mpsc::channel(BUFFERED_PER_PARTITION * runs.len().max(1));
        let tasks = runs
            .into_iter()
            .map(|i| spawn_partition(Arc::clone(&input), i, Arc::clone(&ctx), tx.clone()))
            .collect();
        Feed { ctx, rx, tasks }
    }

    /// The next non-empty batch and its input partition; `None` when every run is read. A
    /// partition whose task panicked (its channel closed early) is an error, not an end.
    pub async fn next(&mut self) -> Option<Result<(usize, RecordBatch)>> {
        if let Some(item) = self.rx.next().await {
            return Some(item);
        }
        for task in std::mem::take(&mut self.tasks) {
            if let Err(e) = join(task).await {
                return Some(Err(e));
            }
        }
        None
    }
}

/// A piece ready to send: (buffer index at the destination, compact batch, its size).
type Ready = (usize, RecordBatch, usize);

/// What one rank holds between reading and sending.
struct Outbox {
    schema: SchemaRef,
    /// Per destination (one queue for gathers), pieces in order.
    queues: Vec<VecDeque<Ready>>,
    /// Per buffer index, small pieces waiting to be merged into one batch.
    pending: Vec<(Vec<RecordBatch>, usize)>,
    /// Bytes in `queues` and `pending`.
    held: usize,
    /// The most bytes per destination and round.
    share: usize,
    /// The most rows per batch sent (the session's batch size).
    batch_rows: usize,
}

impl Outbox {
    fn new(schema: SchemaRef, destinations: usize, buffers: usize, share: usize, batch_rows: usize) -> Self {
        Outbox {
            schema,
            queues: (0..destinations).map(|_| VecDeque::new()).collect(),
            pending: (0..buffers).map(|_| (Vec::new(), 0)).collect(),
            held: 0,
            share,
            batch_rows: batch_rows.max(1),
        }
    }

    /// The size batches are merged up to and cut down to: a quarter of a share, at most 1 MiB
    /// (batches the receiving operators handle like their own).
    fn batch_bytes(&self) -> usize {
        (self.share / 4).clamp(1, 1 << 20)
    }

    /// Queues a piece for buffer `i` at destination `dest`; small pieces of one buffer are
    /// merged first (fewer, larger batches on the wire).
    fn add(&mut self, dest: usize, i: usize, piece: RecordBatch) -> Result<()> {
        let size = ipc::size_estimate(&piece);
        self.held += size;
        let (pieces, bytes) = &mut self.pending[i];
        pieces.push(piece);
        *bytes += size;
        if *bytes >= self.batch_bytes() {
            self.flush(dest, i)?;
        }
        Ok(())
    }

    /// Moves buffer `i`'s pending pieces to `dest`'s queue as compact batches of at most one
    /// share each.
    fn flush(&mut self, dest: usize, i: usize) -> Result<()> {
        let (pieces, bytes) = std::mem::take(&mut self.pending[i]);
        if pieces.is_empty() {
            return Ok(());
        }
        self.held -= bytes;
        let merged = if pieces.len() == 1 {
            pieces.into_iter().next().expect("one piece")
        } else {
            concat_batches(&self.schema, &pieces)?
        };
        let merged = ipc::compact(&merged)?;
        let size = ipc::size_estimate(&merged).max(1);
        // Cut to batches of at most `batch_bytes` and `batch_rows` (a row larger than that
        // travels alone): what the receiver's operators get.
        let parts = size
            .div_ceil(self.batch_bytes())
            .max(merged.num_rows().div_ceil(self.batch_rows))
            .clamp(1, merged.num_rows());
        let rows = merged.num_rows().div_ceil(parts);
        let mut at = 0;
        while at < merged.num_rows() {
            let n = rows.min(merged.num_rows() - at);
            // A slice of a view array still points at all its data buffers: compact again.
            let piece = if parts > 1 {
                ipc::compact(&merged.slice(at, n))?
            } else {
                merged.slice(at, n)
            };
            let s = (size as u128 * n as u128 / merged.num_rows() as u128) as usize;
            self.held += s;
            self.queues[dest].push_back((i, piece, s));
            at += n;
        }
        Ok(())
    }

    fn pending_is_empty(&self) -> bool {
        self.pending.iter().all(|(p, _)| p.is_empty())
    }

    fn queues_are_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// The message for `dest` this round: pieces from the front of its queue within one share
    /// (at least one piece when any is queued). Pieces that encode larger than estimated go
    /// back to the queue: fewer of them are taken, a lone one is halved.
    fn message(&mut self, dest: usize) -> Result<Vec<u8>> {
        let mut most = usize::MAX;
        loop {
            let mut take = Vec::new();
            let mut bytes = 0;
            while let Some((_, _, s)) = self.queues[dest].front() {
                if !take.is_empty() && (bytes + s > self.share || take.len() >= most) {
                    break;
                }
                bytes += s;
                take.push(self.queues[dest].pop_front().expect("a piece"));
            }
            let pieces: Vec<(usize, RecordBatch)> = take.iter().map(|(i, b, _)| (*i, b.clone())).collect();
            let message = ipc::encode_message(&self.schema, &pieces)?;
            if message.len() <= self.share || take.is_empty() {
                self.held -= bytes;
                return Ok(message);
            }
            if take.len() > 1 {
                most = take.len() / 2;
                for piece in take.into_iter().rev() {
                    self.queues[dest].push_front(piece);
                }
                continue;
            }
            let (i, b, s) = take.pop().expect("one piece");
            if b.num_rows() < 2 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "exchange: one row takes {} bytes, more than a rank's share of a round ({} bytes); \
                     raise heatsql.exchange_round_bytes",
                    message.len(),
                    self.share
                )));
            }
            let h = b.num_rows() / 2;
            self.queues[dest].push_front((i, ipc::compact(&b.slice(h, b.num_rows() - h))?, s - s / 2));
            self.queues[dest].push_front((i, ipc::compact(&b.slice(0, h))?, s / 2));
        }
    }
}

/// Runs one exchange: reads `feed`, routes its rows, moves them in rounds, and fills `out`
/// (this rank's buffers). Collective; every rank returns the same result.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    comm: &Comm,
    route: &Route,
    schema: SchemaRef,
    mut feed: Feed,
    n_in: usize,
    out: &mut StageBuffers,
    round_bytes: usize,
    cancel: &AtomicBool,
    metrics: &ExchangeMetrics,
    mut keys: KeyStep<'_>,
) -> Result<()> {
    let me = comm.rank();
    let size = comm.size();
    let share = comm.round_share(round_bytes);
    let receives = match route {
        Route::Shuffle(_) => true,
        Route::Gather { to_root, .. } => !to_root || me == 0,
    };
    let (destinations, buffers) = match route {
        Route::Shuffle(p) => (size, p.partition_count()),
        Route::Gather { .. } => (1, n_in),
    };
    let batch_rows = feed.ctx.session_config().batch_size();
    let mut outbox = Outbox::new(Arc::clone(&schema), destinations, buffers, share, batch_rows);
    let mut partitioners: Vec<Option<BatchPartitioner>> = (0..n_in).map(|_| None).collect();
    let mut error: Option<DataFusionError> = None;
    let mut exhausted = false;
    loop {
        // Read until a round's worth is ready (or the input ends).
        while error.is_none() && !exhausted && outbox.held < round_bytes {
            if cancel.load(Ordering::Relaxed) {
                error = Some(DataFusionError::Execution(format!("query cancelled on rank {me}")));
                break;
            }
            let routed = match feed.next().await {
                None => {
                    exhausted = true;
                    Ok(())
                }
                Some(Err(e)) => Err(e),
                Some(Ok((i, batch))) => key_step(&mut keys, batch, metrics).and_then(|batch| {
                    route_batch(
                        route,
                        &mut partitioners,
                        &mut outbox,
                        out,
                        i,
                        n_in,
                        batch,
                        me,
                        size,
                        receives,
                    )
                }),
            };
            if let Err(e) = routed {
                error = Some(e);
            }
        }
        if error.is_none() && exhausted && !outbox.pending_is_empty() {
            let flushed = (0..buffers).try_for_each(|i| {
                let dest = match route {
                    Route::Shuffle(_) => Placement::owner(i, buffers, size),
                    Route::Gather { .. } => 0,
                };
                outbox.flush(dest, i)
            });
            if let Err(e) = flushed {
                error = Some(e);
            }
        }
        // This round's messages.
        let mut send = Vec::new();
        let mut counts = vec![0usize; size];
        if error.is_none() {
            let built = (0..destinations).try_for_each(|d| {
                let m = outbox.message(d)?;
                match route {
                    Route::Shuffle(_) => counts[d] = m.len(),
                    Route::Gather { .. } => {}
                }
                send.extend_from_slice(&m);
                Ok::<_, DataFusionError>(())
            });
            if let Err(e) = built {
                error = Some(e);
                send.clear();
                counts.iter_mut().for_each(|c| *c = 0);
            }
        }
        let more = !exhausted || !outbox.pending_is_empty() || !outbox.queues_are_empty();
        let pattern = match route {
            Route::Shuffle(_) => RoundPattern::AllToAll(&counts),
            Route::Gather { to_root: false, .. } => RoundPattern::AllGather,
            Route::Gather { to_root: true, .. } => RoundPattern::GatherTo(0),
        };
        let timer = metrics.mpi_time.timer();
        let round = comm.exchange_round(&send, pattern, more, error.is_some());
        timer.done();
        let round = round.map_err(|e| DataFusionError::External(Box::new(e)))?;
        metrics.rounds.add(1);
        metrics.bytes_sent.add(send.len());
        if round.failed {
            let local = match (error, round.error) {
                (Some(e), _) => Err(e),
                (None, Some(e)) => Err(DataFusionError::External(Box::new(e))),
                (None, None) => Ok(()),
            };
            return match agree(comm, local) {
                Err(e) => Err(e),
                Ok(()) => Err(DataFusionError::Internal("exchange: a round failed on no rank".into())),
            };
        }
        // Decode what arrived (this rank's own block was kept locally).
        if error.is_none() && receives {
            metrics.bytes_received.add(round.received.len());
            let mut at = 0;
            for (from, &n) in round.counts.iter().enumerate() {
                let block = &round.received[at..at + n];
                at += n;
                if from == me && matches!(route, Route::Gather { .. }) {
                    continue;
                }
                if let Err(e) = ipc::decode_message(block, |i, b| out.push(i, b)) {
                    error = Some(e);
                    break;
                }
            }
        }
        if !round.more {
            break;
        }
    }
    metrics.output_rows.add(out.rows());
    agree(comm, error.map_or(Ok(()), Err))
}

/// Applies the shuffle's join key filter step to one input batch.
fn key_step(keys: &mut KeyStep<'_>, batch: RecordBatch, metrics: &ExchangeMetrics) -> Result<RecordBatch> {
    match keys {
        KeyStep::None => Ok(batch),
        KeyStep::Build(f) => {
            f.observe(&batch);
            Ok(batch)
        }
        KeyStep::Probe(f) => {
            let (kept, dropped) = f.apply(batch)?;
            metrics.key_filter_dropped.add(dropped);
            Ok(kept)
        }
    }
}

/// Routes one input batch: into the outbox, or straight into this rank's own buffers for rows
/// that stay here.
#[allow(clippy::too_many_arguments)]
fn route_batch(
    route: &Route,
    partitioners: &mut [Option<BatchPartitioner>],
    outbox: &mut Outbox,
    out: &mut StageBuffers,
    i: usize,
    n_in: usize,
    batch: RecordBatch,
    me: usize,
    size: usize,
    receives: bool,
) -> Result<()> {
    match route {
        Route::Shuffle(partitioning) => {
            let n_out = partitioning.partition_count();
            let partitioner = match &mut partitioners[i] {
                Some(p) => p,
                slot => slot.insert(BatchPartitioner::try_new(partitioning.clone(), Time::new(), i, n_in)?),
            };
            partitioner.partition(batch, |o, piece| {
                let to = Placement::owner(o, n_out, size);
                if to == me {
                    out.push(o, ipc::compact(&piece)?)
                } else {
                    outbox.add(to, o, piece)
                }
            })
        }
        Route::Gather { to_root, local } => {
            if receives {
                out.push(i, ipc::compact(&batch)?)?;
            }
            // Others need it unless it is everywhere already or this rank is the only receiver.
            if size > 1 && !local[i] && !(*to_root && me == 0) {
                outbox.add(0, i, batch)?;
            }
            Ok(())
        }
    }
}
