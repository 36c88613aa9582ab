//! MPI exchanges for plain SQL: one DataFusion plan on every rank, cut where rows must meet.
//!
//! heatsql plans every query with `target_partitions = P × k` (P ranks, k partitions per rank),
//! so DataFusion's own physical plan already says where a single process would repartition or
//! merge. Each output partition of each plan node has a [`Placement`]: owned by one rank
//! (partition i of n by rank i·P/n, [`Placement::owner`]: a rank-split Parquet scan's partitions
//! r·k … r·k + k − 1 are read by rank r) or present on every rank (VALUES, in-memory tables,
//! anything after a gather). A rank reads its partitions in parallel, each as a task of its own
//! ([`in_order`]), wherever it reads several. With one rank,
//! DataFusion's repartitions stay as they are (nothing to exchange). [`distribute`] replaces
//!
//! * hash / round-robin / range `RepartitionExec` by a shuffle (all-to-all of Arrow IPC
//!   buffers; output partition i of n lives on rank i·P/n),
//! * `CoalescePartitionsExec` by a gather that concatenates all partitions in partition order
//!   on every rank (so broadcast build sides and final aggregates see every row),
//! * the input of `SortPreservingMergeExec` by a gather that keeps partitions (each rank then
//!   merges the sorted streams),
//!
//! and gathers the inputs of any node that must see every partition of its input at once
//! (build sides of joins that emit unmatched build rows, joins whose two sides live apart,
//! nodes it does not know).
//!
//! Table functions that need their rows in a given order sort them where they are
//! ([`order_rows`]: a distributed sort that keeps the rows split, balanced).
//!
//! Uncorrelated scalar subqueries run as a stage of their own ahead of their main input's
//! stages (`subquery`).
//!
//! Files: one per operator as EXPLAIN names it ([`MpiShuffleExec`] in `shuffle`,
//! [`MpiGatherExec`] in `gather`, [`MpiConcatExec`] in `concat`, their shared state in `core`),
//! [`Placement`] in `placement`, the rule that inserts the exchanges in `insert_exchanges`,
//! the [`Stage`] trait (implemented by the exchanges, [`SubqueryStage`] and table function
//! nodes) in `stage`, and the running of a [`DistributedPlan`] in `run`.
//!
//! Execution is by stages ([`DistributedPlan::materialize`]): exchanges run in post-order, the
//! same order on every rank. Each reads its input a round at a time and moves it in rounds of
//! at most `heatsql.exchange_round_bytes` per rank (`rounds`): every rank takes part in every
//! round until none has rows left, each round's header carries every rank's status, and an
//! error anywhere becomes the same error everywhere. What a rank receives is decoded as it
//! arrives into buffers that spill to disk beyond the session's memory pool (`buffer`). Only
//! the rows' own bytes travel (`ipc`: compacted view arrays, one schema per message). A hash
//! join whose two inputs are both shuffled shares a Bloom filter of its build keys between the
//! two shuffles, so probe rows without a match stay home (`keyfilter`). No
//! collective depends on which streams a consumer happens to poll, so a join that skips its
//! probe side or a LIMIT that stops early cannot leave another rank waiting.

mod buffer;
mod concat;
mod core;
mod gather;
mod insert_exchanges;
mod ipc;
mod keyfilter;
mod order;
mod partitions;
mod placement;
mod rounds;
mod run;
mod shuffle;
mod stage;
mod subquery;

pub use concat::MpiConcatExec;
pub use gather::MpiGatherExec;
pub use insert_exchanges::distribute;
pub use order::{OrderKey, is_orderable, order_rows, sort_batches};
pub use partitions::in_order;
pub use placement::Placement;
pub use run::{DistributedPlan, fingerprint};
pub use shuffle::MpiShuffleExec;
pub use stage::Stage;
pub use subquery::SubqueryStage;
