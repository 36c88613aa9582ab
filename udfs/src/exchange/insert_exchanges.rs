//! The physical optimizer step that makes a plan distributed ([`distribute`], like DataFusion's
//! `enforce_distribution` for one process): it places every partition of every node
//! ([`Placement`]), inserts an exchange wherever rows must meet, and lists the plan's stages in
//! the order they run.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::{LexOrdering, Partitioning};
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::analyze::AnalyzeExec;
#[allow(deprecated)]
use datafusion::physical_plan::coalesce_batches::CoalesceBatchesExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::sorts::partial_sort::PartialSortExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::{InterleaveExec, UnionExec};
use datafusion::physical_plan::unnest::UnnestExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{ChildrenPropertiesMode, ExecutionPlan, ReplaceChildrenOptions};
use datafusion_datasource::memory::MemSink;

use super::concat::MpiConcatExec;
use super::gather::MpiGatherExec;
use super::keyfilter::{KeyFilter, KeyFilterSide, filters_probe};
use super::placement::Placement;
use super::run::DistributedPlan;
use super::shuffle::MpiShuffleExec;
use super::stage::Stage;
use super::subquery::SubqueryStage;
use crate::functions::{FunctionExec, Layout};

/// Rewrites DataFusion's physical plan (planned with `target_partitions` = `size` × k) for `size`
/// ranks: exchanges where rows must meet, see the module documentation. `is_rank_split` tells
/// the leaves whose partitions are read by their owners ([`Placement::owner`]; the distributed
/// Parquet scans); every other leaf is taken to produce the same rows on every rank. With
/// `key_filters` (`heatsql.join_key_filters`), the two shuffles into a hash join share a filter
/// of its build keys (`keyfilter`).
pub fn distribute(
    plan: Arc<dyn ExecutionPlan>,
    size: usize,
    is_rank_split: &dyn Fn(&dyn ExecutionPlan) -> bool,
    key_filters: bool,
) -> Result<DistributedPlan> {
    let mut rewriter = Rewriter {
        size,
        is_rank_split,
        key_filters,
        stages: Vec::new(),
    };
    let (plan, placement) = rewriter.rewrite(plan)?;
    Ok(DistributedPlan::new(plan, placement, rewriter.stages, size))
}

type Placed = (Arc<dyn ExecutionPlan>, Vec<Placement>);

struct Rewriter<'a> {
    size: usize,
    is_rank_split: &'a dyn Fn(&dyn ExecutionPlan) -> bool,
    /// Whether shuffles into hash joins share key filters.
    key_filters: bool,
    /// Every stage, children before parents (the order they run in).
    stages: Vec<Arc<dyn Stage>>,
}

/// `plan` over new children, its properties recomputed.
fn with_children(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
}

/// DataFusion 55 no longer plans `CoalesceBatchesExec`, but plans built by hand may hold one.
#[allow(deprecated)]
fn is_coalesce_batches(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<CoalesceBatchesExec>()
}

fn everywhere(p: &[Placement]) -> bool {
    p.iter().all(|p| *p == Placement::Everywhere)
}

fn partitions(plan: &Arc<dyn ExecutionPlan>) -> usize {
    plan.properties().output_partitioning().partition_count()
}

/// Join types that emit rows of the build (left, collected) side that found no match: the
/// build side's bookkeeping must then see every probe row in one process.
fn emits_unmatched_build_rows(t: JoinType) -> bool {
    matches!(
        t,
        JoinType::Left | JoinType::Full | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark
    )
}

/// Shares a join key filter between the two shuffles into a distributed hash join (`joined`,
/// the rewritten `j`), when its type drops unmatched probe rows (see `keyfilter`).
fn key_filter(j: &HashJoinExec, joined: &Arc<dyn ExecutionPlan>) {
    if !filters_probe(*j.join_type(), j.null_equality(), j.null_aware) {
        return;
    }
    let children = joined.children();
    let shuffles = (
        children[0].downcast_ref::<MpiShuffleExec>(),
        children[1].downcast_ref::<MpiShuffleExec>(),
    );
    let (Some(build), Some(probe)) = shuffles else {
        return;
    };
    let (build_keys, probe_keys): (Vec<_>, Vec<_>) = j.on().iter().map(|(l, r)| (Arc::clone(l), Arc::clone(r))).unzip();
    if let Some(f) = KeyFilter::new(build_keys, &children[0].schema(), probe_keys, &children[1].schema()) {
        build.set_key_filter(KeyFilterSide::Build(Arc::clone(&f)));
        probe.set_key_filter(KeyFilterSide::Probe(f));
    }
}

impl Rewriter<'_> {
    /// `node` as the next stage, its output placed as `placement` says.
    fn stage<S: Stage + ExecutionPlan + 'static>(&mut self, node: Arc<S>, placement: Vec<Placement>) -> Placed {
        self.stages.push(Arc::clone(&node) as Arc<dyn Stage>);
        (node, placement)
    }

    fn shuffle(&mut self, partitioning: Partitioning, input: Placed) -> Placed {
        let node = Arc::new(MpiShuffleExec::new(partitioning, input.0, input.1));
        let placement = node.output_placement(self.size);
        self.stage(node, placement)
    }

    fn gather(&mut self, input: Placed) -> Placed {
        let node = Arc::new(MpiGatherExec::new(input.0, input.1));
        let placement = node.output_placement();
        self.stage(node, placement)
    }

    fn concat(&mut self, input: Placed, fetch: Option<usize>) -> Placed {
        let node = Arc::new(MpiConcatExec::new(input.0, input.1, fetch));
        let placement = node.output_placement();
        self.stage(node, placement)
    }

    /// `input` with every partition on every rank (partitions kept). With one rank, where
    /// every partition is, that is already so.
    fn everywhere(&mut self, input: Placed) -> Placed {
        if self.size == 1 {
            let n = input.1.len();
            return (input.0, vec![Placement::Everywhere; n]);
        }
        if everywhere(&input.1) {
            input
        } else {
            self.gather(input)
        }
    }

    fn rewrite(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Placed> {
        let n = partitions(&plan);
        if (self.is_rank_split)(plan.as_ref()) {
            // P × k partitions: rank r reads partitions r·k … r·k + k − 1.
            return Ok((
                plan,
                (0..n)
                    .map(|i| Placement::Owned(Placement::owner(i, n, self.size)))
                    .collect(),
            ));
        }
        let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
        if children.is_empty() {
            return Ok((plan, vec![Placement::Everywhere; n]));
        }
        let any = plan.as_ref();

        if let Some(r) = any.downcast_ref::<RepartitionExec>() {
            let input = self.rewrite(Arc::clone(r.input()))?;
            let partitioning = r.partitioning().clone();
            if self.size == 1 {
                // One rank: DataFusion's own in-process repartition (no stage, pipelined).
                let n = partitioning.partition_count();
                return Ok((with_children(plan, vec![input.0])?, vec![Placement::Owned(0); n]));
            }
            if !matches!(
                partitioning,
                Partitioning::Hash(..) | Partitioning::RoundRobinBatch(_) | Partitioning::Range(_)
            ) {
                return Err(DataFusionError::NotImplemented(format!(
                    "heatsql: repartitioning {partitioning} across ranks"
                )));
            }
            let shuffled = self.shuffle(partitioning, input);
            if r.preserve_order() {
                // Each partition receives sorted pieces from several ranks: sort them again.
                if let Some(order) = r.input().properties().output_ordering().cloned() {
                    let sort = SortExec::new(order, shuffled.0).with_preserve_partitioning(true);
                    return Ok((Arc::new(sort), shuffled.1));
                }
            }
            return Ok(shuffled);
        }
        if let Some(c) = any.downcast_ref::<CoalescePartitionsExec>() {
            let input = self.rewrite(Arc::clone(c.input()))?;
            // Also with one rank: the partitions concatenated in partition order (DataFusion's
            // merge interleaves them; unordered results keep the table's order here).
            return Ok(self.concat(input, c.fetch()));
        }
        if let Some(m) = any.downcast_ref::<SortPreservingMergeExec>() {
            let input = self.rewrite(Arc::clone(m.input()))?;
            let gathered = self.everywhere(input);
            let merge = SortPreservingMergeExec::new(LexOrdering::clone(m.expr()), gathered.0).with_fetch(m.fetch());
            return Ok((Arc::new(merge), vec![Placement::Everywhere]));
        }
        if any.is::<RecursiveQueryExec>() && !self.reads_split(&plan) {
            // No distributed table in it: every rank runs it whole, as DataFusion planned it.
            return Ok((plan, vec![Placement::Everywhere; n]));
        }
        if any.is::<RecursiveQueryExec>() {
            // The recursive term runs again for every iteration; an exchange in it would hold
            // the rows of the first one only.
            let mut rewritten = Vec::with_capacity(children.len());
            for (k, child) in children.into_iter().enumerate() {
                if k > 0 && !self.reads_split(&child) {
                    // Reads the work table only: every rank runs it whole, as planned.
                    rewritten.push(child);
                    continue;
                }
                let before = self.stages.len();
                let c = self.rewrite(child)?;
                let c = self.everywhere(c);
                if k > 0 && self.stages.len() > before {
                    return Err(DataFusionError::NotImplemented(
                        "heatsql: a recursive query whose recursive term repartitions or merges rows \
                         (joins, aggregates or sorts over several partitions) is not supported yet"
                            .into(),
                    ));
                }
                rewritten.push(c.0);
            }
            return Ok((
                with_children(Arc::clone(&plan), rewritten)?,
                vec![Placement::Everywhere; n],
            ));
        }
        if let Some(s) = any.downcast_ref::<ScalarSubqueryExec>() {
            // The subqueries, present on every rank, run as a stage before any stage of the
            // main input; the node itself goes (its expressions read the filled results).
            let mut links = Vec::with_capacity(s.subqueries().len());
            for link in s.subqueries() {
                let c = self.rewrite(Arc::clone(&link.plan))?;
                let mut link = link.clone();
                link.plan = self.everywhere(c).0;
                links.push(link);
            }
            self.stages
                .push(Arc::new(SubqueryStage::new(links, s.results().clone())));
            return self.rewrite(Arc::clone(s.input()));
        }
        if let Some(j) = any.downcast_ref::<HashJoinExec>() {
            let collect_left = match j.partition_mode() {
                PartitionMode::CollectLeft => true,
                PartitionMode::Partitioned => false,
                PartitionMode::Auto => partitions(j.left()) == 1,
            };
            if collect_left {
                return self.collect_left(&plan, *j.join_type());
            }
            let placed = self.co_partitioned(&plan)?;
            if self.key_filters {
                key_filter(j, &placed.0);
            }
            return Ok(placed);
        }
        if let Some(j) = any.downcast_ref::<NestedLoopJoinExec>() {
            return self.collect_left(&plan, *j.join_type());
        }
        if any.is::<CrossJoinExec>() {
            return self.collect_left(&plan, JoinType::Inner);
        }
        if any.is::<SortMergeJoinExec>() || any.is::<SymmetricHashJoinExec>() {
            return self.co_partitioned(&plan);
        }
        if any.is::<UnionExec>() {
            let mut rewritten = Vec::with_capacity(children.len());
            let mut placement = Vec::with_capacity(n);
            for child in children {
                let c = self.rewrite(child)?;
                placement.extend_from_slice(&c.1);
                rewritten.push(c.0);
            }
            if placement.len() != n {
                return self.gather_all(plan);
            }
            return Ok((with_children(Arc::clone(&plan), rewritten)?, placement));
        }
        if any.is::<InterleaveExec>() {
            let placed: Vec<Placed> = children.into_iter().map(|c| self.rewrite(c)).collect::<Result<_>>()?;
            let first = placed[0].1.clone();
            let placed: Vec<Placed> = if placed.iter().all(|c| c.1 == first) {
                placed
            } else {
                placed.into_iter().map(|c| self.everywhere(c)).collect()
            };
            let placement = placed[0].1.clone();
            let plan = with_children(Arc::clone(&plan), placed.into_iter().map(|c| c.0).collect())?;
            return Ok((plan, placement));
        }
        if let Some(sink) = any.downcast_ref::<DataSinkExec>() {
            // Every rank keeps an in-memory table: every rank inserts the whole input. Files
            // and other sinks are written once, by rank 0.
            let everyone = sink.sink().is::<MemSink>();
            let (plan, _) = self.gather_all(plan)?;
            let placement = if everyone {
                Placement::Everywhere
            } else {
                Placement::Owned(0)
            };
            return Ok((plan, vec![placement; n]));
        }
        if any.is::<AnalyzeExec>() {
            // Every rank runs the final stage on the gathered input; rank 0's report is the one.
            let (plan, _) = self.gather_all(plan)?;
            return Ok((plan, vec![Placement::Owned(0); n]));
        }
        if let Some(f) = any.downcast_ref::<FunctionExec>() {
            // A table function: its inputs as it needs them, then a collective stage of its own.
            let layouts = f.call().input_layouts.clone();
            let mut inputs = Vec::with_capacity(children.len());
            let mut placement = Vec::with_capacity(children.len());
            for (child, layout) in children.into_iter().zip(layouts) {
                let c = self.rewrite(child)?;
                let c = if layout == Layout::Replicated {
                    self.everywhere(c)
                } else {
                    c
                };
                placement.push(c.1);
                inputs.push(c.0);
            }
            let node = Arc::new(f.placed(inputs, placement, self.size));
            let output = node.output_placement();
            return Ok(self.stage(node, output));
        }
        let row_wise = any.is::<ProjectionExec>()
            || any.is::<FilterExec>()
            || is_coalesce_batches(any)
            || any.is::<CooperativeExec>()
            || any.is::<AggregateExec>()
            || any.is::<BoundedWindowAggExec>()
            || any.is::<WindowAggExec>()
            || any.is::<SortExec>()
            || any.is::<PartialSortExec>()
            || any.is::<LocalLimitExec>()
            || any.is::<GlobalLimitExec>()
            || any.is::<UnnestExec>();
        if row_wise && children.len() == 1 {
            let input = self.rewrite(Arc::clone(&children[0]))?;
            if input.1.len() == n {
                let placement = input.1.clone();
                return Ok((with_children(Arc::clone(&plan), vec![input.0])?, placement));
            }
            let input = self.everywhere(input);
            return Ok((with_children(plan, vec![input.0])?, vec![Placement::Everywhere; n]));
        }
        self.gather_all(plan)
    }

    /// Whether a rank-split scan is in `plan`'s subtree.
    fn reads_split(&self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        (self.is_rank_split)(plan.as_ref()) || plan.children().into_iter().any(|c| self.reads_split(c))
    }

    /// A node this rewrite does not know: it sees every partition of every input on every rank.
    fn gather_all(&mut self, plan: Arc<dyn ExecutionPlan>) -> Result<Placed> {
        let n = partitions(&plan);
        let mut inputs = Vec::new();
        for child in plan.children().into_iter().cloned() {
            let c = self.rewrite(child)?;
            inputs.push(self.everywhere(c).0);
        }
        Ok((with_children(plan, inputs)?, vec![Placement::Everywhere; n]))
    }

    /// Joins whose left (build) side is collected into one partition: the build side is
    /// broadcast (present everywhere); the output follows the probe side, unless the join
    /// emits unmatched build rows, which needs every probe partition in every process.
    fn collect_left(&mut self, plan: &Arc<dyn ExecutionPlan>, join_type: JoinType) -> Result<Placed> {
        let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
        let left = self.rewrite(Arc::clone(&children[0]))?;
        let left = self.everywhere(left);
        let mut right = self.rewrite(Arc::clone(&children[1]))?;
        if emits_unmatched_build_rows(join_type) {
            right = self.everywhere(right);
        }
        let placement = right.1.clone();
        let joined = with_children(Arc::clone(plan), vec![left.0, right.0])?;
        if partitions(&joined) != placement.len() {
            return Err(DataFusionError::Internal(format!(
                "heatsql: {} has {} partitions, its probe side {}",
                joined.name(),
                partitions(&joined),
                placement.len()
            )));
        }
        Ok((joined, placement))
    }

    /// Joins of two inputs partitioned alike (partition i with partition i): fine when both
    /// sides' partition i live in the same place, otherwise both sides go everywhere.
    fn co_partitioned(&mut self, plan: &Arc<dyn ExecutionPlan>) -> Result<Placed> {
        let children: Vec<Arc<dyn ExecutionPlan>> = plan.children().into_iter().cloned().collect();
        let mut left = self.rewrite(Arc::clone(&children[0]))?;
        let mut right = self.rewrite(Arc::clone(&children[1]))?;
        if left.1 != right.1 {
            left = self.everywhere(left);
            right = self.everywhere(right);
        }
        let placement = left.1.clone();
        let joined = with_children(Arc::clone(plan), vec![left.0, right.0])?;
        if partitions(&joined) != placement.len() {
            return Err(DataFusionError::Internal(format!(
                "heatsql: {} has {} partitions, its inputs {}",
                joined.name(),
                partitions(&joined),
                placement.len()
            )));
        }
        Ok((joined, placement))
    }
}
