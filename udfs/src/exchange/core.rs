//! What the three exchange operators ([`super::MpiShuffleExec`], [`super::MpiGatherExec`],
//! [`super::MpiConcatExec`]) share: the input and where its partitions live, the collective
//! that moves the rows in bounded rounds (`rounds`), the buffers that then hold this rank's
//! output (memory, or spill files beyond the session's memory pool), and the metrics
//! `EXPLAIN ANALYZE` shows (rows, bytes sent and received, rounds, time in MPI).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use engine::Comm;
use futures::future::BoxFuture;

use super::buffer::StageBuffers;
use super::keyfilter::KeyFilterSide;
use super::placement::Placement;
use super::rounds::{self, ExchangeMetrics, Feed, KeyStep, Route};
use super::stage::Stage;
use crate::agree::agree;

/// An exchange operator: its shared state and how it routes rows. Every exchange is a
/// [`Stage`] (implemented once, below).
pub trait Exchange: ExecutionPlan {
    /// The operator's name in EXPLAIN and progress reports.
    const NAME: &'static str;

    /// The shared state.
    fn core(&self) -> &ExchangeCore;

    /// A shuffle's route and output partition count; `None` for a gather.
    fn shuffle(&self) -> Option<(Route, usize)> {
        None
    }

    /// This shuffle's side of a join key filter.
    fn key_filter(&self) -> Option<KeyFilterSide> {
        None
    }
}

impl<T: Exchange + 'static> Stage for T {
    fn stage_name(&self) -> &str {
        T::NAME
    }

    fn run<'a>(
        &'a self,
        comm: &'static Comm,
        ctx: Arc<TaskContext>,
        cancel: &'a AtomicBool,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            self.core()
                .materialize(comm, ctx, cancel, self.shuffle(), self.key_filter()),
        )
    }

    fn release(&self) {
        self.core().release();
        if let Some(KeyFilterSide::Build(f)) = self.key_filter() {
            f.release();
        }
    }

    fn node(&self) -> Option<&dyn ExecutionPlan> {
        Some(self)
    }

    fn deliver_to_root(&self) -> bool {
        if self.shuffle().is_some() {
            return false;
        }
        self.core().set_root_only();
        true
    }
}

/// The one child of an exchange given to `with_new_children`.
pub(super) fn only_child(name: &str, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
    let [input] =
        <[_; 1]>::try_from(children).map_err(|_| DataFusionError::Internal(format!("{name} has one child")))?;
    Ok(input)
}

/// The state of one exchange operator (see the module documentation).
pub struct ExchangeCore {
    /// The operator's name (`MpiShuffleExec`), for buffers and errors.
    name: &'static str,
    pub input: Arc<dyn ExecutionPlan>,
    pub input_placement: Vec<Placement>,
    output: Mutex<Option<StageBuffers>>,
    metrics: ExecutionPlanMetricsSet,
    exchange_metrics: ExchangeMetrics,
    /// A gather whose rows only rank 0 needs (the last one below the root): the others hold
    /// nothing.
    root_only: AtomicBool,
}

impl std::fmt::Debug for ExchangeCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.name)
            .field("input_placement", &self.input_placement)
            .finish()
    }
}

impl ExchangeCore {
    pub fn new(name: &'static str, input: Arc<dyn ExecutionPlan>, input_placement: Vec<Placement>) -> Self {
        let metrics = ExecutionPlanMetricsSet::new();
        let exchange_metrics = ExchangeMetrics::new(&metrics);
        ExchangeCore {
            name,
            input,
            input_placement,
            output: Mutex::new(None),
            metrics,
            exchange_metrics,
            root_only: AtomicBool::new(false),
        }
    }

    /// The input's equivalences once its partitions are cut and concatenated: equalities and
    /// constants survive, orderings do not, nor constants of single partitions once several
    /// are fused (as for `RepartitionExec`).
    pub fn fused_equivalences(&self) -> EquivalenceProperties {
        let mut eq = self.input.properties().equivalence_properties().clone();
        eq.clear_orderings();
        if self.input_placement.len() > 1 {
            eq.clear_per_partition_constants();
        }
        eq
    }

    /// Makes the exchange deliver its rows to rank 0 only.
    pub fn set_root_only(&self) {
        self.root_only.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Option<StageBuffers>> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Collective. Reads the input partitions this rank contributes and moves their rows
    /// (`gathering`: every partition to every rank, or with root-only to rank 0; otherwise
    /// `route` is a shuffle into `n_out` partitions) in rounds of bounded size
    /// (`heatsql.exchange_round_bytes`), keeping this rank's output partitions. `key_filter`:
    /// this shuffle's side of a join key filter. `cancel` is checked between batches; an
    /// error or a cancelled rank makes the stage fail on every rank with the same error.
    pub async fn materialize(
        &self,
        comm: &Comm,
        ctx: Arc<TaskContext>,
        cancel: &AtomicBool,
        shuffle: Option<(Route, usize)>,
        key_filter: Option<KeyFilterSide>,
    ) -> Result<()> {
        let me = comm.rank();
        let gathering = shuffle.is_none();
        let root_only = self.root_only.load(Ordering::Relaxed);
        engine::comm::abort::test_panic_point("exchange", me);
        let round_bytes = agree(comm, crate::settings::exchange_round_bytes(&ctx))?;
        // Owned partitions are contributed by their owner. A partition present everywhere is
        // contributed once, by rank 0, to a shuffle; a gather reads it locally on every rank
        // that receives rows.
        let receives = !root_only || me == 0;
        let runs: Vec<usize> = (0..self.input_placement.len())
            .filter(|&i| match self.input_placement[i] {
                Placement::Owned(r) => r == me,
                Placement::Everywhere => (gathering && receives) || (!gathering && me == 0),
            })
            .collect();
        let n_in = self.input_placement.len();
        let schema = self.input.schema();
        let (route, n_out) = shuffle.unwrap_or_else(|| {
            (
                Route::Gather {
                    to_root: root_only,
                    local: self
                        .input_placement
                        .iter()
                        .map(|p| *p == Placement::Everywhere)
                        .collect(),
                },
                n_in,
            )
        });
        let mut out = StageBuffers::new(self.name, n_out, Arc::clone(&schema), &ctx, &self.metrics);
        // Every rank has the same plan, so every rank takes the same collectives.
        let step = match &key_filter {
            None => KeyStep::None,
            Some(KeyFilterSide::Build(f)) => {
                f.start_build(&ctx);
                KeyStep::Build(f)
            }
            Some(KeyFilterSide::Probe(f)) => f.probe().map_or(KeyStep::None, KeyStep::Probe),
        };
        let feed = Feed::new(Arc::clone(&self.input), Arc::clone(&ctx), runs);
        rounds::run(
            comm,
            &route,
            schema,
            feed,
            n_in,
            &mut out,
            round_bytes,
            cancel,
            &self.exchange_metrics,
            step,
        )
        .await?;
        if let Some(KeyFilterSide::Build(f)) = &key_filter {
            // Collective: the stage succeeded on every rank (its result is agreed).
            f.finish_build(comm)?;
        }
        *self.lock() = Some(out);
        Ok(())
    }

    /// The rows of output partitions `range`, in order, at most `fetch` of them.
    pub fn stream(&self, range: std::ops::Range<usize>, fetch: Option<usize>) -> Result<SendableRecordBatchStream> {
        let guard = self.lock();
        let output = guard
            .as_ref()
            .ok_or_else(|| DataFusionError::Internal(format!("{} executed before its stage ran", self.name)))?;
        if range.end > output.buffer_count() {
            return Err(DataFusionError::Internal(format!(
                "{} has no partition {}",
                self.name,
                range.end - 1
            )));
        }
        output.stream(range, fetch)
    }

    /// The number of output partitions this rank holds, once materialized.
    pub fn buffer_count(&self) -> usize {
        self.lock().as_ref().map_or(0, StageBuffers::buffer_count)
    }

    /// Forgets the materialized rows (after the query); spill files are deleted.
    pub fn release(&self) {
        *self.lock() = None;
    }

    /// The metrics (`EXPLAIN ANALYZE`).
    pub fn metrics(&self) -> MetricsSet {
        self.metrics.clone_inner()
    }
}
