//! Assigning row groups to ranks.
//!
//! The table's row groups, in global order (files sorted by path, row groups in file order),
//! are cut into P contiguous ranges. Row group `i`, covering global rows `[s_i, s_i + n_i)` of
//! `N`, goes to rank `⌊P · (s_i + n_i / 2) / N⌋` (its midpoint's share), capped at `P − 1`.
//! Ranks therefore receive contiguous, ordered ranges whose row counts are as balanced as
//! whole row groups allow; a rank may receive none (for example one row group and four ranks:
//! the group goes to rank 2, the rank owning the middle row). Empty row groups go with the
//! rank of their start row.

/// The rank that reads each row group, given the row counts in global order.
pub fn assign_row_groups(rows: &[u64], ranks: usize) -> Vec<usize> {
    let total: u64 = rows.iter().sum();
    let p = ranks.max(1) as u128;
    let mut start = 0u64;
    rows.iter()
        .map(|&n| {
            let r = if total == 0 {
                0
            } else {
                (p * (2 * start as u128 + n as u128) / (2 * total as u128)) as usize
            };
            start += n;
            r.min(ranks.max(1) - 1)
        })
        .collect()
}

/// Rows each rank reads under [`assign_row_groups`].
pub fn rows_per_rank(rows: &[u64], ranks: usize) -> Vec<u64> {
    let mut out = vec![0u64; ranks.max(1)];
    for (n, r) in rows.iter().zip(assign_row_groups(rows, ranks)) {
        out[r] += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_ordered_and_balanced() {
        for p in 1..=5 {
            for rows in [
                vec![10u64; 7],
                vec![1, 100, 3, 0, 50, 50, 2],
                vec![5],
                vec![],
                vec![0, 0],
                vec![3; 2],
            ] {
                let a = assign_row_groups(&rows, p);
                assert!(
                    a.windows(2).all(|w| w[0] <= w[1]),
                    "{rows:?} at P={p}: {a:?} not ordered"
                );
                assert!(a.iter().all(|&r| r < p));
                assert_eq!(rows_per_rank(&rows, p).iter().sum::<u64>(), rows.iter().sum::<u64>());
            }
        }
        assert_eq!(assign_row_groups(&[10; 8], 4), vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(rows_per_rank(&[10; 7], 2), vec![30, 40]);
        assert_eq!(assign_row_groups(&[100], 4), vec![2]);
        // Each rank's share is within one row group of N/P.
        let rows = [7u64, 13, 2, 9, 11, 5, 8, 6, 10, 4];
        let total: u64 = rows.iter().sum();
        for p in 1..=4u64 {
            for got in rows_per_rank(&rows, p as usize) {
                assert!(got.abs_diff(total / p) <= 13, "{got} vs {}", total / p);
            }
        }
    }
}
