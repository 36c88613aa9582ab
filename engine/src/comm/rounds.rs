//! Rounds of a bounded exchange: data of any total size moved in collectives of bounded size.
//!
//! An exchange that moves more than one MPI call can carry (or more than a rank wants to hold
//! at once) runs as rounds. In each round every rank sends at most a bounded number of bytes
//! to each destination; every rank takes part in every round until no rank has anything left
//! (a rank with nothing left sends empty rounds), so all ranks issue the same collectives in
//! the same order. A round is two collectives: a header (each rank's byte counts and status,
//! [`RoundStatus`]) and, unless some rank reported a failure, the bytes.

use super::{Comm, CommError, CommResult};

/// Where one round's bytes go.
#[derive(Debug, Clone, Copy)]
pub enum RoundPattern<'a> {
    /// `send` is the concatenation of the blocks for ranks `0..size`, block `r` of
    /// `counts[r]` bytes; each rank receives its block from every rank (a shuffle).
    AllToAll(&'a [usize]),
    /// `send` goes to every rank; every rank receives every rank's bytes (a gather to all).
    AllGather,
    /// `send` goes to `root` only, which receives every rank's bytes.
    GatherTo(usize),
}

/// What one round delivered to this rank.
#[derive(Debug, Default)]
pub struct Round {
    /// The bytes received, from ranks `0..size` in rank order (empty when `failed`).
    pub received: Vec<u8>,
    /// How many bytes came from each rank.
    pub counts: Vec<usize>,
    /// Some rank has more to send: every rank must take part in another round.
    pub more: bool,
    /// Some rank reported a failure: nothing was sent; the caller agrees on the error
    /// ([`Comm::agree`]) and stops.
    pub failed: bool,
    /// This rank's own failure found here (counts that do not fit), already reported to
    /// every rank as `failed`.
    pub error: Option<CommError>,
}

const MORE: u64 = 1;
const FAILED: u64 = 2;

impl Comm {
    /// Collective. One round of a bounded exchange: every rank's counts and status (`more`:
    /// this rank will send again; `failed`: this rank cannot go on), then the bytes unless a
    /// rank failed. A rank that failed passes empty `send` and counts. Counts above MPI's
    /// limit are a failure of the sending rank, reported to all in the header (and returned
    /// in [`Round::error`] on that rank). `Err` only when every rank returns it alike.
    pub fn exchange_round(
        &self,
        send: &[u8],
        pattern: RoundPattern<'_>,
        more: bool,
        failed: bool,
    ) -> CommResult<Round> {
        let size = self.size;
        let limit = super::max_count();
        let mut failed = failed;
        let mut local_error = None;
        if let RoundPattern::AllToAll(counts) = pattern
            && (counts.len() != size || counts.iter().sum::<usize>() != send.len())
        {
            failed = true;
            local_error = Some(CommError::invalid(
                "exchange_round",
                format!(
                    "{} counts summing to {} for {} bytes",
                    counts.len(),
                    counts.iter().sum::<usize>(),
                    send.len()
                ),
            ));
        }
        if send.len() > limit {
            failed = true;
            local_error.get_or_insert(CommError::CountOverflow {
                op: "exchange_round",
                what: "this rank's round".into(),
                count: send.len(),
                limit,
            });
        }
        let status = if failed {
            FAILED
        } else if more {
            MORE
        } else {
            0
        };
        // Header: (count, status) per sender as each receiver sees it.
        let (counts, statuses): (Vec<usize>, Vec<u64>) = match pattern {
            RoundPattern::AllToAll(counts) if !failed => {
                let head: Vec<u64> = counts.iter().flat_map(|&c| [c as u64, status]).collect();
                let got = self.alltoall(&head)?;
                got.chunks(2).map(|p| (p[0] as usize, p[1])).unzip()
            }
            RoundPattern::AllToAll(_) => {
                let head: Vec<u64> = (0..size).flat_map(|_| [0, status]).collect();
                let got = self.alltoall(&head)?;
                got.chunks(2).map(|p| (p[0] as usize, p[1])).unzip()
            }
            RoundPattern::AllGather | RoundPattern::GatherTo(_) => {
                let n = if failed { 0 } else { send.len() as u64 };
                let got = self.allgather(&[n, status])?;
                got.chunks(2).map(|p| (p[0] as usize, p[1])).unzip()
            }
        };
        let any_failed = statuses.iter().any(|s| s & FAILED != 0);
        let any_more = statuses.iter().any(|s| s & MORE != 0);
        if any_failed {
            return Ok(Round {
                failed: true,
                error: local_error,
                ..Round::default()
            });
        }
        // Every count is now known to fit on the sending side; what a rank receives is the
        // sum of the senders' blocks. Gathers: every rank knows that sum, so all refuse it
        // alike. All-to-all: only the receiver knows it; the callers keep every (sender,
        // destination) block within `round_share`, so a sum above the limit is a bug, and a
        // panic (which aborts the job, see `abort`) is the one exit that leaves no rank waiting.
        let total: usize = counts.iter().sum();
        if total > limit {
            let e = CommError::CountOverflow {
                op: "exchange_round",
                what: "the bytes one rank receives in a round".into(),
                count: total,
                limit,
            };
            if matches!(pattern, RoundPattern::AllToAll(_)) {
                panic!("{e} (blocks above the round share)");
            }
            return Err(e);
        }
        let (received, counts) = match pattern {
            RoundPattern::AllToAll(send_counts) => (self.alltoallv_known(send, send_counts, &counts)?, counts),
            RoundPattern::AllGather => (self.allgatherv_known(send, &counts)?, counts),
            RoundPattern::GatherTo(root) => match self.gatherv_known(send, &counts, root)? {
                Some(bytes) => (bytes, counts),
                None => (Vec::new(), vec![0; size]),
            },
        };
        Ok(Round {
            received,
            counts,
            more: any_more,
            failed: false,
            error: None,
        })
    }

    /// The most bytes one rank may send to one destination in a round of at most
    /// `round_bytes` per rank: what every rank then receives in a round stays within both
    /// `round_bytes` and MPI's count limit.
    pub fn round_share(&self, round_bytes: usize) -> usize {
        (round_bytes.min(super::max_count()) / self.size).max(1)
    }
}
