//! MPI's element counts are C `int`s: checks that refuse what they cannot express.

use super::CommError;

use std::sync::OnceLock;

/// The largest element count (and displacement) one MPI call accepts: `i32::MAX`.
pub const MAX_COUNT: usize = i32::MAX as usize;

/// The largest count this process sends in one call: [`MAX_COUNT`], or less when the test
/// setting `HEATSQL_TEST_MPI_MAX_COUNT` lowers it (to exercise MPI's ceiling on small data).
pub fn max_count() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("HEATSQL_TEST_MPI_MAX_COUNT")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .map_or(MAX_COUNT, |n| n.min(MAX_COUNT))
    })
}

/// Converts a count or displacement to MPI's `int`, or explains why it cannot be sent.
pub(crate) fn to_count(op: &'static str, what: impl FnOnce() -> String, n: usize) -> Result<i32, CommError> {
    let limit = max_count();
    if n > limit {
        return Err(CommError::CountOverflow {
            op,
            what: what(),
            count: n,
            limit,
        });
    }
    i32::try_from(n).map_err(|_| CommError::CountOverflow {
        op,
        what: what(),
        count: n,
        limit,
    })
}

/// Splits `len` elements into consecutive chunks of at most `max` (for calls that can be cut
/// into pieces, such as broadcast and allreduce).
pub(crate) fn chunks(len: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let max = max.max(1);
    (0..len.div_ceil(max)).map(move |i| i * max..((i + 1) * max).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_above_i32_are_refused_with_the_limit() {
        assert_eq!(to_count("allgatherv", || "x".into(), 5).unwrap(), 5);
        assert_eq!(to_count("allgatherv", || "x".into(), MAX_COUNT).unwrap(), i32::MAX);
        let err = to_count("allgatherv", || "rank 2's contribution".into(), MAX_COUNT + 1).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("allgatherv"), "{msg}");
        assert!(msg.contains("rank 2's contribution"), "{msg}");
        assert!(msg.contains("2147483648"), "{msg}");
        assert!(msg.contains("2147483647"), "{msg}");
    }

    #[test]
    fn chunks_cover_the_range_in_order() {
        let c: Vec<_> = chunks(10, 4).collect();
        assert_eq!(c, vec![0..4, 4..8, 8..10]);
        assert_eq!(chunks(0, 4).count(), 0);
        assert_eq!(chunks(8, 4).collect::<Vec<_>>(), vec![0..4, 4..8]);
        let big = (MAX_COUNT as u64 * 2 + 5) as usize;
        let c: Vec<_> = chunks(big, MAX_COUNT).collect();
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|r| r.len() <= MAX_COUNT));
        assert_eq!(c.last().unwrap().end, big);
    }
}
