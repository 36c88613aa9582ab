//! Collectives and point-to-point messages on typed slices (and so on byte buffers).
//!
//! Every function here is collective over the world unless it says otherwise: all ranks call
//! it, in the same order, with compatible arguments. Counts above [`super::MAX_COUNT`] are
//! sent in parts where the operation allows it (broadcast, allreduce) and refused with
//! [`CommError::CountOverflow`] where MPI's 32-bit counts and displacements cannot express them
//! (the variable-count collectives and messages).

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::{Equivalence, Partition, PartitionMut};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::Communicator;

use super::count::{chunks, to_count};
use super::{Comm, CommError, CommResult, MAX_COUNT};

mod sealed {
    pub trait Sealed {}
}

/// Element types the collectives carry: `f32`, `f64`, `i32`, `i64`, `u64` and `u8` (bytes,
/// and `bool` tensors).
pub trait CommElement: Equivalence + Copy + Default + Send + sealed::Sealed + 'static {
    /// Integers (the element types [`ReduceOp::BitOr`] applies to).
    const INTEGER: bool;
}

macro_rules! elements {
    ($($t:ty => $int:expr),*) => { $( impl sealed::Sealed for $t {} impl CommElement for $t { const INTEGER: bool = $int; } )* };
}
elements!(f32 => false, f64 => false, i32 => true, i64 => true, u64 => true, u8 => true);

/// Element-wise reduction operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Bitwise or (integer elements: bit sets such as Bloom filters).
    BitOr,
}

impl ReduceOp {
    fn system(self) -> SystemOperation {
        match self {
            ReduceOp::Sum => SystemOperation::sum(),
            ReduceOp::Min => SystemOperation::min(),
            ReduceOp::Max => SystemOperation::max(),
            ReduceOp::BitOr => SystemOperation::bitwise_or(),
        }
    }
}

/// A zero-filled vector whose buffer is a real allocation even when empty. (An empty `Vec`'s
/// dangling pointer can equal OpenMPI's `MPI_IN_PLACE`, `(void *) 1`, which MPI would misread.)
fn buffer<T: CommElement>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n.max(1));
    v.resize(n, T::default());
    v
}

/// `send` itself, or an empty slice into `dummy` when `send` is empty (see [`buffer`]).
fn real<'a, T: CommElement>(send: &'a [T], dummy: &'a [T; 1]) -> &'a [T] {
    if send.is_empty() { &dummy[..0] } else { send }
}

/// Counts and displacements as MPI `int`s.
/// The buffer's total must fit too: MPI (and rsmpi) describe a whole buffer by one count.
fn partition(op: &'static str, counts: &[usize]) -> CommResult<(Vec<i32>, Vec<i32>)> {
    let mut c = Vec::with_capacity(counts.len());
    let mut d = Vec::with_capacity(counts.len());
    let mut offset = 0usize;
    for (r, &n) in counts.iter().enumerate() {
        c.push(to_count(op, || format!("the count for rank {r}"), n)?);
        d.push(to_count(op, || format!("the displacement of rank {r}"), offset)?);
        offset += n;
    }
    to_count(op, || "the whole buffer".into(), offset)?;
    Ok((c, d))
}

impl Comm {
    /// Broadcasts `buf` from `root` into `buf` on every rank (all ranks pass the same length).
    /// Buffers longer than MPI's count limit are sent in parts.
    pub fn bcast<T: CommElement>(&self, buf: &mut [T], root: usize) -> CommResult<()> {
        self.check_rank("bcast", "root", root)?;
        let proc = self.world.process_at_rank(root as i32);
        for r in chunks(buf.len(), MAX_COUNT) {
            proc.broadcast_into(&mut buf[r]);
        }
        if self.size > 1 {
            if self.rank == root {
                self.count::<T>(buf.len(), 0);
            } else {
                self.count::<T>(0, buf.len());
            }
        }
        Ok(())
    }

    /// Broadcasts a vector of any length from `root`; other ranks' `data` is ignored.
    pub fn bcast_vec<T: CommElement>(&self, data: Vec<T>, root: usize) -> CommResult<Vec<T>> {
        self.check_rank("bcast", "root", root)?;
        let mut len = [data.len() as u64];
        self.bcast(&mut len, root)?;
        let mut out = if self.rank == root {
            data
        } else {
            buffer(len[0] as usize)
        };
        self.bcast(&mut out, root)?;
        Ok(out)
    }

    /// Broadcasts a byte buffer of any length from `root`.
    pub fn bcast_bytes(&self, data: Vec<u8>, root: usize) -> CommResult<Vec<u8>> {
        self.bcast_vec(data, root)
    }

    /// Element-wise reduction of `send` over all ranks; every rank gets the result.
    /// All ranks pass the same length; long buffers are reduced in parts.
    /// [`ReduceOp::BitOr`] takes integer elements only.
    pub fn allreduce<T: CommElement>(&self, send: &[T], op: ReduceOp) -> CommResult<Vec<T>> {
        if op == ReduceOp::BitOr && !T::INTEGER {
            // Every rank passes the same element type, so every rank returns this error.
            return Err(CommError::Invalid {
                op: "allreduce",
                message: format!("bitwise or of {} elements (integers only)", std::any::type_name::<T>()),
            });
        }
        let mut out = buffer(send.len());
        for r in chunks(send.len(), MAX_COUNT) {
            self.world.all_reduce_into(&send[r.clone()], &mut out[r], op.system());
        }
        if self.size > 1 {
            self.count::<T>(send.len(), send.len());
        }
        Ok(out)
    }

    /// Gathers `send` (the same length on every rank) from all ranks, concatenated in rank order.
    pub fn allgather<T: CommElement>(&self, send: &[T]) -> CommResult<Vec<T>> {
        let total = send.len() * self.size;
        to_count("allgather", || "the per-rank count".into(), send.len())?;
        to_count("allgather", || "the total count".into(), total)?;
        let mut out = buffer(total);
        let dummy = [T::default()];
        self.world.all_gather_into(real(send, &dummy), &mut out[..]);
        self.count::<T>(send.len() * (self.size - 1), total - send.len());
        Ok(out)
    }

    /// Gathers slices of any length from all ranks, concatenated in rank order, with each
    /// rank's count.
    pub fn allgatherv<T: CommElement>(&self, send: &[T]) -> CommResult<(Vec<T>, Vec<usize>)> {
        let counts: Vec<usize> = self
            .allgather(&[send.len() as u64])?
            .into_iter()
            .map(|c| c as usize)
            .collect();
        let out = self.allgatherv_known(send, &counts)?;
        Ok((out, counts))
    }

    /// [`Self::allgatherv`] when every rank already knows every rank's count (`counts[r]`).
    pub(crate) fn allgatherv_known<T: CommElement>(&self, send: &[T], counts: &[usize]) -> CommResult<Vec<T>> {
        let (c, d) = partition("allgatherv", counts)?;
        let mut out = buffer(counts.iter().sum());
        let mut part = PartitionMut::new(&mut out[..], c, d);
        let dummy = [T::default()];
        self.world.all_gather_varcount_into(real(send, &dummy), &mut part);
        let total: usize = counts.iter().sum();
        self.count::<T>(send.len() * (self.size - 1), total - send.len());
        Ok(out)
    }

    /// Gathers `send` (the same length on every rank) on `root`, in rank order; `None` elsewhere.
    pub fn gather<T: CommElement>(&self, send: &[T], root: usize) -> CommResult<Option<Vec<T>>> {
        self.check_rank("gather", "root", root)?;
        to_count("gather", || "the total count".into(), send.len() * self.size)?;
        let proc = self.world.process_at_rank(root as i32);
        let dummy = [T::default()];
        let send = real(send, &dummy);
        if self.rank == root {
            let mut out = buffer(send.len() * self.size);
            proc.gather_into_root(send, &mut out[..]);
            self.count::<T>(0, send.len() * (self.size - 1));
            Ok(Some(out))
        } else {
            proc.gather_into(send);
            self.count::<T>(send.len(), 0);
            Ok(None)
        }
    }

    /// Gathers slices of any length on `root`, in rank order, with each rank's count.
    pub fn gatherv<T: CommElement>(&self, send: &[T], root: usize) -> CommResult<Option<(Vec<T>, Vec<usize>)>> {
        self.check_rank("gatherv", "root", root)?;
        let counts: Vec<usize> = self
            .allgather(&[send.len() as u64])?
            .into_iter()
            .map(|c| c as usize)
            .collect();
        Ok(self.gatherv_known(send, &counts, root)?.map(|out| (out, counts)))
    }

    /// [`Self::gatherv`] when every rank already knows every rank's count (`counts[r]`).
    pub(crate) fn gatherv_known<T: CommElement>(
        &self,
        send: &[T],
        counts: &[usize],
        root: usize,
    ) -> CommResult<Option<Vec<T>>> {
        self.check_rank("gatherv", "root", root)?;
        let (c, d) = partition("gatherv", counts)?;
        let proc = self.world.process_at_rank(root as i32);
        let dummy = [T::default()];
        let send = real(send, &dummy);
        if self.rank == root {
            let mut out = buffer(counts.iter().sum());
            let mut part = PartitionMut::new(&mut out[..], c, d);
            proc.gather_varcount_into_root(send, &mut part);
            let total: usize = counts.iter().sum();
            self.count::<T>(0, total - counts[root]);
            Ok(Some(out))
        } else {
            proc.gather_varcount_into(send);
            self.count::<T>(counts[self.rank], 0);
            Ok(None)
        }
    }

    /// All-to-all with equal blocks: `send` holds `size` blocks of equal length, block `r` goes to
    /// rank `r`; the result holds the block received from each rank, in rank order.
    pub fn alltoall<T: CommElement>(&self, send: &[T]) -> CommResult<Vec<T>> {
        if !send.len().is_multiple_of(self.size) {
            return Err(CommError::invalid(
                "alltoall",
                format!("{} elements do not split into {} equal blocks", send.len(), self.size),
            ));
        }
        to_count("alltoall", || "the send buffer".into(), send.len())?;
        let mut out = buffer(send.len());
        let dummy = [T::default()];
        self.world.all_to_all_into(real(send, &dummy), &mut out[..]);
        let own = send.len() / self.size;
        self.count::<T>(send.len() - own, send.len() - own);
        Ok(out)
    }

    /// All-to-all with variable blocks: `send` is the concatenation of the blocks for ranks
    /// `0..size`, block `r` having `send_counts[r]` elements. Returns the concatenation of the
    /// blocks received from ranks `0..size` and their counts.
    pub fn alltoallv<T: CommElement>(&self, send: &[T], send_counts: &[usize]) -> CommResult<(Vec<T>, Vec<usize>)> {
        if send_counts.len() != self.size || send_counts.iter().sum::<usize>() != send.len() {
            return Err(CommError::invalid(
                "alltoallv",
                format!(
                    "send_counts must have {} entries summing to the send length {} (got {:?})",
                    self.size,
                    send.len(),
                    send_counts
                ),
            ));
        }
        let sc: Vec<u64> = send_counts.iter().map(|&c| c as u64).collect();
        let recv_counts: Vec<usize> = self.alltoall(&sc)?.into_iter().map(|c| c as usize).collect();
        let out = self.alltoallv_known(send, send_counts, &recv_counts)?;
        Ok((out, recv_counts))
    }

    /// [`Self::alltoallv`] when this rank already knows what it receives from each rank.
    /// Both counts are checked before any data moves; a rank whose counts do not fit must
    /// not call it while the others do (the round protocol agrees on that first).
    pub(crate) fn alltoallv_known<T: CommElement>(
        &self,
        send: &[T],
        send_counts: &[usize],
        recv_counts: &[usize],
    ) -> CommResult<Vec<T>> {
        let (scnt, sdsp) = partition("alltoallv", send_counts)?;
        let (rcnt, rdsp) = partition("alltoallv", recv_counts)?;
        let mut out = buffer(recv_counts.iter().sum());
        let dummy = [T::default()];
        let sp = Partition::new(real(send, &dummy), scnt, sdsp);
        let mut rp = PartitionMut::new(&mut out[..], rcnt, rdsp);
        self.world.all_to_all_varcount_into(&sp, &mut rp);
        let (sent, received): (usize, usize) = (send_counts.iter().sum(), recv_counts.iter().sum());
        self.count::<T>(sent - send_counts[self.rank], received - recv_counts[self.rank]);
        Ok(out)
    }

    /// Point-to-point (not collective): sends `buf` to rank `dest` with `tag`.
    pub fn send<T: CommElement>(&self, buf: &[T], dest: usize, tag: i32) -> CommResult<()> {
        self.check_rank("send", "destination", dest)?;
        to_count("send", || "the message".into(), buf.len())?;
        let dummy = [T::default()];
        self.world
            .process_at_rank(dest as i32)
            .send_with_tag(real(buf, &dummy), tag);
        self.count::<T>(buf.len(), 0);
        Ok(())
    }

    /// Point-to-point (not collective): sends `send` to `dest` and receives exactly
    /// `recv.len()` elements from `src` into `recv`, both nonblocking with `tag`, and runs
    /// `work` while the two messages are in flight; returns `work`'s result once both have
    /// completed. `work` gets a `progress` callback to call between pieces of its computation:
    /// MPI moves large messages only inside MPI calls, so without it the transfer would wait
    /// for the end of `work`. A ring (every rank sends to one neighbour and receives from the
    /// other) cannot deadlock, whatever the message sizes.
    #[allow(clippy::too_many_arguments)]
    pub fn exchange_while<T: CommElement, R>(
        &self,
        send: &[T],
        dest: usize,
        recv: &mut [T],
        src: usize,
        tag: i32,
        work: impl FnOnce(&mut dyn FnMut()) -> R,
    ) -> CommResult<R> {
        self.check_rank("exchange_while", "destination", dest)?;
        self.check_rank("exchange_while", "source", src)?;
        to_count("exchange_while", || "the sent message".into(), send.len())?;
        to_count("exchange_while", || "the received message".into(), recv.len())?;
        let dummy = [T::default()];
        let mut recv_dummy = [T::default()];
        let send = real(send, &dummy);
        let recv: &mut [T] = if recv.is_empty() { &mut recv_dummy[..0] } else { recv };
        self.count::<T>(send.len(), recv.len());
        Ok(mpi::request::scope(|scope| {
            let mut r = Some(
                self.world
                    .process_at_rank(src as i32)
                    .immediate_receive_into_with_tag(scope, recv, tag),
            );
            let mut s = Some(
                self.world
                    .process_at_rank(dest as i32)
                    .immediate_send_with_tag(scope, send, tag),
            );
            let mut progress = || {
                if let Some(q) = r.take()
                    && let Err(q) = q.test()
                {
                    r = Some(q);
                }
                if let Some(q) = s.take()
                    && let Err(q) = q.test()
                {
                    s = Some(q);
                }
            };
            let out = work(&mut progress);
            if let Some(q) = r {
                q.wait();
            }
            if let Some(q) = s {
                q.wait();
            }
            out
        }))
    }

    /// Point-to-point (not collective): receives a message of any length from rank `src` with `tag`.
    pub fn recv<T: CommElement>(&self, src: usize, tag: i32) -> CommResult<Vec<T>> {
        self.check_rank("recv", "source", src)?;
        let (v, _status) = self.world.process_at_rank(src as i32).receive_vec_with_tag::<T>(tag);
        self.count::<T>(0, v.len());
        Ok(v)
    }
}
