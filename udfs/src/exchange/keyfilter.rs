//! Join key filters across ranks (a semi-join reduction with a Bloom filter).
//!
//! A distributed hash join whose build (left) and probe (right) inputs are both shuffled to it
//! would send every probe row across the network, also the many that find no build row (TPC-H
//! Q9: lineitem rows of parts that are not green). So the two shuffles share a [`KeyFilter`]:
//!
//! 1. the build side's shuffle (an earlier stage) hashes its input rows' join keys as it reads
//!    them ([`KeyFilter::observe`]);
//! 2. when it has run, the ranks agree on a size from the total key count and OR their Bloom
//!    filters into one ([`KeyFilter::finish_build`], collective, in stage order): the set of
//!    every build key on every rank;
//! 3. the probe side's shuffle tests each input row's key before routing it and sends only the
//!    rows that may match ([`ProbeFilter::apply`]).
//!
//! A Bloom filter has no false negatives, so no row that finds a match is dropped; its false
//! positives (under 1 % at 16 bits per key) are rows the join drops anyway. Only joins that
//! drop probe rows without a match get a filter ([`filters_probe`]), and only when keys never
//! match NULL (rows with a NULL key are then dropped too). A build side of more than
//! [`MAX_KEYS_PER_RANK`] rows on some rank, or one the memory pool cannot hold the hashes of,
//! gets no filter; a probe side that the filter hardly thins (more than 90 % of its first
//! million rows pass) stops testing. `SET heatsql.join_key_filters = false` turns the filters
//! off.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::{JoinType, NullEquality};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::PhysicalExpr;
use engine::Comm;
use engine::comm::ReduceOp;

use crate::agree::comm_error;

/// The most build rows one rank hashes (8 bytes each); a larger build side gets no filter.
pub const MAX_KEYS_PER_RANK: usize = 1 << 23;

/// Bits per build key the filter aims at (rounded up to a power of two): with three probes,
/// under 1 % false positives.
const BITS_PER_KEY: usize = 16;

/// The largest filter: 2^28 bits (32 MiB per rank).
const MAX_BITS_LOG2: u32 = 28;

/// The smallest filter: 2^12 bits.
const MIN_BITS_LOG2: u32 = 12;

/// Fewer than this many bits per key (at the largest size) is too weak to be worth testing.
const MIN_BITS_PER_KEY: usize = 4;

/// Probe rows tested before the filter decides whether it thins enough to go on.
const PROBE_SAMPLE_ROWS: u64 = 1 << 20;

/// Above this share of passing rows (after the sample), the probe side stops testing.
const PROBE_KEEP_TESTING_BELOW: f64 = 0.9;

/// Seed of the key hash: the same on every rank (`foldhash` is portable), and another than
/// the shuffles' own (DataFusion's repartition seed 0), so filter bits do not follow partitions.
const SEED: u64 = 0x6865_6174_7371_6c31;

/// Whether a join of this type drops the probe (right) rows that match no build row, so that
/// a filter may drop them before the join. (Right, full, right-anti and right-mark joins keep
/// them.)
pub fn filters_probe(join_type: JoinType, null_equality: NullEquality, null_aware: bool) -> bool {
    !null_aware
        && null_equality == NullEquality::NullEqualsNothing
        && matches!(
            join_type,
            JoinType::Inner
                | JoinType::Left
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark
                | JoinType::RightSemi
        )
}

/// A Bloom filter of key hashes: `2^log2` bits, three probes per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
    log2: u32,
}

impl Bloom {
    /// An empty filter of `2^log2` bits (at least 64).
    pub fn new(log2: u32) -> Self {
        let log2 = log2.max(6);
        Bloom {
            words: vec![0; 1 << (log2 - 6)],
            log2,
        }
    }

    /// The filter size for `keys` keys (a power of two of about [`BITS_PER_KEY`] bits per
    /// key, within the limits), or `None` when even the largest would be too weak.
    pub fn log2_for(keys: usize) -> Option<u32> {
        if keys.saturating_mul(MIN_BITS_PER_KEY) > 1usize << MAX_BITS_LOG2 {
            return None;
        }
        let want = keys.saturating_mul(BITS_PER_KEY).max(1).next_power_of_two();
        Some(want.trailing_zeros().clamp(MIN_BITS_LOG2, MAX_BITS_LOG2))
    }

    /// The bit positions of hash `h`.
    fn positions(&self, h: u64) -> [usize; 3] {
        // A final mix, then double hashing: bits from the top of h1 + i·h2.
        let h = (h ^ (h >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h2 = h.rotate_left(32) | 1;
        let shift = 64 - self.log2;
        [0u64, 1, 2].map(|i| (h.wrapping_add(i.wrapping_mul(h2)) >> shift) as usize)
    }

    /// Adds a key hash.
    pub fn insert(&mut self, h: u64) {
        for p in self.positions(h) {
            self.words[p >> 6] |= 1 << (p & 63);
        }
    }

    /// Whether a key hash may have been added (never false for one that was).
    pub fn may_contain(&self, h: u64) -> bool {
        self.positions(h)
            .iter()
            .all(|&p| self.words[p >> 6] & (1 << (p & 63)) != 0)
    }

    /// The filter's bits (words of 64).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// A filter of `2^log2` bits made of `words` (as [`Self::words`] returned them).
    pub fn from_words(words: Vec<u64>, log2: u32) -> Self {
        Bloom { words, log2 }
    }
}

/// Hashes of `keys` evaluated on `batch` (one per row, [`SEED`]) and which rows have a NULL
/// in some key.
fn key_hashes(keys: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch, hashes: &mut Vec<u64>) -> Result<Option<Vec<bool>>> {
    let n = batch.num_rows();
    let arrays: Vec<ArrayRef> = keys
        .iter()
        .map(|k| k.evaluate(batch).and_then(|v| v.into_array(n)))
        .collect::<Result<_>>()?;
    hashes.clear();
    hashes.resize(n, 0);
    create_hashes(&arrays, &RandomState::with_seed(SEED), hashes)?;
    let nulls = if arrays.iter().any(|a| a.null_count() > 0) {
        Some((0..n).map(|i| arrays.iter().any(|a| a.is_null(i))).collect())
    } else {
        None
    };
    Ok(nulls)
}

/// What the build side collected: key hashes under a memory reservation, or nothing once too
/// many (or a failure) ruled the filter out.
#[derive(Debug)]
enum Collected {
    Hashes(Vec<u64>, Option<MemoryReservation>),
    GaveUp,
}

/// The filter one distributed join's two shuffles share (see the module documentation).
#[derive(Debug)]
pub struct KeyFilter {
    build_keys: Vec<Arc<dyn PhysicalExpr>>,
    probe_keys: Vec<Arc<dyn PhysicalExpr>>,
    collected: Mutex<Collected>,
    bloom: Mutex<Option<Arc<Bloom>>>,
}

/// Which shuffle of the join an exchange is.
#[derive(Debug, Clone)]
pub enum KeyFilterSide {
    /// The build (left) input: hashes its keys and builds the filter.
    Build(Arc<KeyFilter>),
    /// The probe (right) input: drops rows the filter rules out.
    Probe(Arc<KeyFilter>),
}

impl KeyFilter {
    /// A filter between a join's build keys (on its left input's schema) and probe keys (on
    /// its right input's schema); `None` unless they pair up with equal types.
    pub fn new(
        build_keys: Vec<Arc<dyn PhysicalExpr>>,
        build_schema: &Schema,
        probe_keys: Vec<Arc<dyn PhysicalExpr>>,
        probe_schema: &Schema,
    ) -> Option<Arc<Self>> {
        if build_keys.is_empty() || build_keys.len() != probe_keys.len() {
            return None;
        }
        for (b, p) in build_keys.iter().zip(&probe_keys) {
            match (b.data_type(build_schema), p.data_type(probe_schema)) {
                (Ok(bt), Ok(pt)) if bt == pt => {}
                _ => return None,
            }
        }
        Some(Arc::new(KeyFilter {
            build_keys,
            probe_keys,
            collected: Mutex::new(Collected::Hashes(Vec::new(), None)),
            bloom: Mutex::new(None),
        }))
    }

    fn collected(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bloom(&self) -> Option<Arc<Bloom>> {
        self.bloom.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a build (forgetting an earlier query's): hashes are reserved in `ctx`'s pool.
    pub(super) fn start_build(&self, ctx: &TaskContext) {
        let reservation = MemoryConsumer::new("MpiShuffleExec key filter").register(ctx.memory_pool());
        *self.collected() = Collected::Hashes(Vec::new(), Some(reservation));
        *self.bloom.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Build side: hashes the keys of one input batch. Never fails the query: a key the hash
    /// cannot take, too many rows or too little memory rule the filter out instead.
    pub(super) fn observe(&self, batch: &RecordBatch) {
        let mut collected = self.collected();
        let Collected::Hashes(all, reservation) = &mut *collected else {
            return;
        };
        let mut hashes = Vec::new();
        let fits = all.len() + batch.num_rows() <= MAX_KEYS_PER_RANK;
        let grown = fits
            && reservation
                .as_mut()
                .is_none_or(|r| r.try_grow(batch.num_rows() * std::mem::size_of::<u64>()).is_ok());
        match grown.then(|| key_hashes(&self.build_keys, batch, &mut hashes)) {
            Some(Ok(None)) => all.extend_from_slice(&hashes),
            // A NULL key matches nothing: leave it out.
            Some(Ok(Some(nulls))) => all.extend(hashes.iter().zip(&nulls).filter(|(_, n)| !**n).map(|(h, _)| *h)),
            _ => *collected = Collected::GaveUp,
        }
    }

    /// Collective, after the build side's shuffle ran on every rank: the ranks agree on the
    /// filter (or on none) and OR their bits, so every rank holds every rank's keys.
    pub(super) fn finish_build(&self, comm: &Comm) -> Result<()> {
        let taken = std::mem::replace(&mut *self.collected(), Collected::GaveUp);
        let (hashes, gave_up) = match taken {
            Collected::Hashes(h, _reservation) => (h, 0u64),
            Collected::GaveUp => (Vec::new(), 1),
        };
        let agreed_counts = comm
            .allreduce(&[hashes.len() as u64, gave_up], ReduceOp::Sum)
            .map_err(comm_error)?;
        let (total, gave_up) = (agreed_counts[0] as usize, agreed_counts[1] > 0);
        let Some(log2) = Bloom::log2_for(total).filter(|_| !gave_up) else {
            return Ok(());
        };
        let mut bloom = Bloom::new(log2);
        for h in hashes {
            bloom.insert(h);
        }
        let words = comm.allreduce(bloom.words(), ReduceOp::BitOr).map_err(comm_error)?;
        *self.bloom.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Bloom::from_words(words, log2)));
        Ok(())
    }

    /// Probe side: the test for this run of the probe shuffle (nothing to test when the build
    /// side made no filter).
    pub(super) fn probe(&self) -> Option<ProbeFilter> {
        self.bloom().map(|bloom| ProbeFilter {
            keys: self.probe_keys.clone(),
            bloom,
            seen: 0,
            passed: 0,
            testing: true,
            hashes: Vec::new(),
        })
    }

    /// Forgets the filter (after the query).
    pub(super) fn release(&self) {
        *self.collected() = Collected::Hashes(Vec::new(), None);
        *self.bloom.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// One probe shuffle's use of a filter (see [`KeyFilter::probe`]).
pub(super) struct ProbeFilter {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    bloom: Arc<Bloom>,
    seen: u64,
    passed: u64,
    testing: bool,
    hashes: Vec<u64>,
}

impl ProbeFilter {
    /// The rows of `batch` that may find a match, and how many were dropped. After the first
    /// [`PROBE_SAMPLE_ROWS`] rows, a filter that lets more than 90 % through stops testing. A
    /// key the hash cannot take stops it too (never an error: the join decides).
    pub(super) fn apply(&mut self, batch: RecordBatch) -> Result<(RecordBatch, usize)> {
        if !self.testing || batch.num_rows() == 0 {
            return Ok((batch, 0));
        }
        let nulls = match key_hashes(&self.keys, &batch, &mut self.hashes) {
            Ok(n) => n,
            Err(_) => {
                self.testing = false;
                return Ok((batch, 0));
            }
        };
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(nulls.as_ref().is_none_or(|n| !n[i]) && self.bloom.may_contain(self.hashes[i])))
            .collect();
        let kept = keep.true_count();
        self.seen += batch.num_rows() as u64;
        self.passed += kept as u64;
        if self.seen >= PROBE_SAMPLE_ROWS && self.passed as f64 > PROBE_KEEP_TESTING_BELOW * self.seen as f64 {
            self.testing = false;
        }
        let dropped = batch.num_rows() - kept;
        if dropped == 0 {
            return Ok((batch, 0));
        }
        Ok((filter_record_batch(&batch, &keep)?, dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let keys = 100_000usize;
        let log2 = Bloom::log2_for(keys).expect("a size");
        assert!(1usize << log2 >= keys * BITS_PER_KEY);
        let mut bloom = Bloom::new(log2);
        let hash = |k: u64| {
            let mut h = [0u64];
            let a: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(vec![k as i64]));
            create_hashes(&[a], &RandomState::with_seed(SEED), &mut h).expect("hash");
            h[0]
        };
        for k in 0..keys as u64 {
            bloom.insert(hash(k * 7));
        }
        assert!((0..keys as u64).all(|k| bloom.may_contain(hash(k * 7))));
        let false_positives = (0..keys as u64).filter(|k| bloom.may_contain(hash(k * 7 + 3))).count();
        // 16 to 32 bits per key, three probes: at most about 0.5 %.
        assert!(
            false_positives < keys / 100,
            "{false_positives} false positives in {keys}"
        );
    }

    fn probe_over(keys: &[i64]) -> (ProbeFilter, Arc<Schema>) {
        use datafusion::arrow::datatypes::{DataType, Field};
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let key: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::Column::new("k", 0));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(datafusion::arrow::array::Int64Array::from(keys.to_vec()))],
        )
        .expect("batch");
        let mut hashes = Vec::new();
        key_hashes(std::slice::from_ref(&key), &batch, &mut hashes).expect("hashes");
        let mut bloom = Bloom::new(Bloom::log2_for(keys.len()).expect("a size"));
        hashes.iter().for_each(|&h| bloom.insert(h));
        let probe = ProbeFilter {
            keys: vec![key],
            bloom: Arc::new(bloom),
            seen: 0,
            passed: 0,
            testing: true,
            hashes: Vec::new(),
        };
        (probe, schema)
    }

    fn column(schema: &Arc<Schema>, values: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![Arc::new(datafusion::arrow::array::Int64Array::from(values))],
        )
        .expect("batch")
    }

    #[test]
    fn probe_rows_without_a_build_key_or_with_null_keys_are_dropped() {
        let (mut probe, schema) = probe_over(&(0..1000).map(|k| k * 10).collect::<Vec<_>>());
        let batch = column(&schema, (0..10_000).map(Some).chain([None]).collect());
        let (kept, dropped) = probe.apply(batch).expect("apply");
        let keys = kept
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("ints");
        // Every build key survives; of the 9,000 others and the NULL, nearly all are dropped.
        assert!((0..1000).all(|k| keys.values().contains(&(k * 10))));
        assert_eq!(kept.num_rows() + dropped, 10_001);
        assert!(dropped >= 8_900, "{dropped}");
        assert_eq!(keys.null_count(), 0);
    }

    #[test]
    fn a_probe_side_the_filter_hardly_thins_stops_testing() {
        let n = PROBE_SAMPLE_ROWS as i64;
        let (mut probe, schema) = probe_over(&(0..n).collect::<Vec<_>>());
        let (_, dropped) = probe.apply(column(&schema, (0..n).map(Some).collect())).expect("apply");
        assert_eq!(dropped, 0);
        assert!(!probe.testing);
        // No longer tested: rows without a match pass (the join drops them).
        let (kept, dropped) = probe
            .apply(column(&schema, (n..n + 100).map(Some).collect()))
            .expect("apply");
        assert_eq!((kept.num_rows(), dropped), (100, 0));
    }

    #[test]
    fn sizes_are_powers_of_two_within_limits_and_too_many_keys_get_none() {
        assert_eq!(Bloom::log2_for(0), Some(MIN_BITS_LOG2));
        assert_eq!(Bloom::log2_for(1 << 20), Some(24));
        assert_eq!(Bloom::log2_for(1 << 25), Some(MAX_BITS_LOG2));
        assert_eq!(Bloom::log2_for((1 << 26) + 1), None);
        let empty = Bloom::new(MIN_BITS_LOG2);
        assert!(!empty.may_contain(12345));
    }

    #[test]
    fn only_joins_that_drop_unmatched_probe_rows_filter() {
        let plain = NullEquality::NullEqualsNothing;
        for t in [
            JoinType::Inner,
            JoinType::Left,
            JoinType::LeftSemi,
            JoinType::LeftAnti,
            JoinType::RightSemi,
        ] {
            assert!(filters_probe(t, plain, false), "{t:?}");
        }
        for t in [
            JoinType::Right,
            JoinType::Full,
            JoinType::RightAnti,
            JoinType::RightMark,
        ] {
            assert!(!filters_probe(t, plain, false), "{t:?}");
        }
        assert!(!filters_probe(JoinType::Inner, NullEquality::NullEqualsNull, false));
        assert!(!filters_probe(JoinType::LeftAnti, plain, true));
    }
}
