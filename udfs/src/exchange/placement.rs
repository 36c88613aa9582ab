//! Where the rows of each output partition of a plan node live ([`Placement`]).

/// Where the rows of one output partition of a plan node live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// On this rank only (other ranks produce nothing for the partition).
    Owned(usize),
    /// The same complete rows on every rank.
    Everywhere,
}

impl Placement {
    /// The rank owning partition `partition` of `partitions` split over `ranks` ranks: the
    /// partitions in contiguous blocks, rank r owning `r·n/P … (r+1)·n/P − 1` (with
    /// `n = P × k`: partitions r·k … r·k + k − 1). Partition order is then rank order, so the
    /// rows of a rank-split table read in partition order are the table in order.
    pub fn owner(partition: usize, partitions: usize, ranks: usize) -> usize {
        (partition * ranks / partitions.max(1)).min(ranks.max(1) - 1)
    }

    /// The first partition rank `rank` owns (see [`Self::owner`]); `partitions` when it owns none.
    pub fn first_of(rank: usize, partitions: usize, ranks: usize) -> usize {
        (rank * partitions).div_ceil(ranks.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::Placement;

    #[test]
    fn owners_are_contiguous_blocks_and_first_of_finds_each_rank_s_first() {
        // P = 3 ranks, k = 2 partitions each.
        let owners: Vec<usize> = (0..6).map(|i| Placement::owner(i, 6, 3)).collect();
        assert_eq!(owners, [0, 0, 1, 1, 2, 2]);
        assert_eq!(
            (0..3).map(|r| Placement::first_of(r, 6, 3)).collect::<Vec<_>>(),
            [0, 2, 4]
        );
        // One partition per rank: partition r on rank r.
        assert!((0..4).all(|i| Placement::owner(i, 4, 4) == i && Placement::first_of(i, 4, 4) == i));
        // Partition counts that are not multiples still cover every rank in order.
        let owners: Vec<usize> = (0..5).map(|i| Placement::owner(i, 5, 2)).collect();
        assert_eq!(owners, [0, 0, 0, 1, 1]);
        for r in 0..2 {
            let first = Placement::first_of(r, 5, 2);
            assert_eq!(Placement::owner(first, 5, 2), r);
            assert!(first == 0 || Placement::owner(first - 1, 5, 2) == r - 1);
        }
        // Fewer partitions than ranks: some ranks own none.
        assert_eq!((0..2).map(|i| Placement::owner(i, 2, 4)).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(Placement::owner(0, 1, 1), 0);
    }
}
