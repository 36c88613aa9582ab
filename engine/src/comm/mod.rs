//! The communication layer: the only module of heatsql that uses MPI (rsmpi).
//!
//! One process-wide [`Comm`] wraps `MPI_COMM_WORLD`. It is created on first use by
//! [`Comm::world`]: MPI is initialised once per process (threading level `MULTIPLE`), and
//! finalised by an `atexit` handler, never by library code. Without `mpirun` the process is a
//! single rank (MPI singleton start-up), so every code path also works at P = 1.
//!
//! Collectives exist for typed slices ([`collectives`]), `tch` tensors ([`tensor`]) and byte
//! buffers. Every rank must call the same collectives in the same order; that is the caller's
//! contract. [`Comm::agree`] turns an error on any rank into the same error on every rank, and
//! a panic on any rank aborts the whole job ([`abort`]).

pub mod abort;
mod agree;
pub mod collectives;
mod count;
mod rounds;
pub mod tensor;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use mpi::Threading;
use mpi::topology::{Communicator, SimpleCommunicator};

pub use collectives::{CommElement, ReduceOp};
pub use count::{MAX_COUNT, max_count};
pub use rounds::{Round, RoundPattern};

/// Errors raised by the communication layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommError {
    /// An error that some rank raised, now known to every rank (see [`Comm::agree`]).
    #[error("rank {rank} failed: {message}")]
    Agreed {
        /// The lowest rank that failed.
        rank: usize,
        /// That rank's error message.
        message: String,
    },
    /// A message count that MPI's 32-bit counts cannot express.
    #[error(
        "{op}: {what} is {count} elements, above MPI's limit of {limit} per call; \
         spread the data over more ranks or send it in parts"
    )]
    CountOverflow {
        /// The collective.
        op: &'static str,
        /// Which count (a rank's contribution, a displacement, a total).
        what: String,
        /// The count asked for.
        count: usize,
        /// The largest count MPI accepts.
        limit: usize,
    },
    /// Inputs the collective cannot take (a dtype, mismatched shapes across ranks, a bad rank).
    #[error("{op}: {message}")]
    Invalid {
        /// The collective.
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
}

impl CommError {
    pub(crate) fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        CommError::Invalid {
            op,
            message: message.into(),
        }
    }
}

/// Result type of the communication layer.
pub type CommResult<T> = std::result::Result<T, CommError>;

/// The world communicator of this process, with the node-local view.
pub struct Comm {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    local_size: usize,
    threading: Threading,
    /// Payload bytes this rank sent to and received from other ranks (see [`Traffic`]).
    sent: AtomicU64,
    received: AtomicU64,
}

/// Payload bytes a rank moved through MPI: what it sent to other ranks and what it received
/// from them (its own block of a collective is not counted; a broadcast counts once at the
/// root and once at each receiver; a reduction counts its buffer both ways). Table functions
/// report the difference over their call in `EXPLAIN ANALYZE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
}

impl Traffic {
    /// What moved since `earlier` (an earlier [`Comm::traffic`]).
    pub fn since(self, earlier: Traffic) -> Traffic {
        Traffic {
            sent: self.sent.saturating_sub(earlier.sent),
            received: self.received.saturating_sub(earlier.received),
        }
    }
}

// SAFETY: MPI is initialised with `MPI_THREAD_MULTIPLE` when the library provides it, which
// allows calls from any thread; the communicator handle itself is an immutable identifier.
// With a lower level the embedding must call MPI from one thread at a time (documented in
// docs/architecture.md); `Comm::threading` reports what MPI provided.
unsafe impl Send for Comm {}
// SAFETY: as for `Send`: shared references only read the immutable handle and counts, and
// MPI calls through it are thread-safe under `MPI_THREAD_MULTIPLE`.
unsafe impl Sync for Comm {}

static WORLD: OnceLock<Comm> = OnceLock::new();

extern "C" fn finalize_at_exit() {
    if abort::failed() {
        // A panicked rank must not wait for the others in MPI_Finalize (see `abort`).
        return;
    }
    // SAFETY: plain MPI calls on process exit; MPI_Finalized guards against a second finalise.
    unsafe {
        let mut finalized = 0;
        mpi::ffi::MPI_Finalized(&mut finalized);
        if finalized == 0 {
            mpi::ffi::MPI_Finalize();
        }
    }
}

impl Comm {
    /// The bytes this rank has sent and received through this communicator so far.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }

    /// Counts `sent` and `received` elements of `T` in [`Comm::traffic`].
    pub(crate) fn count<T>(&self, sent: usize, received: usize) {
        let size = std::mem::size_of::<T>() as u64;
        self.sent.fetch_add(sent as u64 * size, Ordering::Relaxed);
        self.received.fetch_add(received as u64 * size, Ordering::Relaxed);
    }

    /// The process-wide communicator; initialises MPI on first use.
    ///
    /// Under `mpirun`/`srun` this is the job's world; without a launcher it is one rank.
    /// Programs start with [`crate::runtime::start`], which also sets libtorch's threads.
    pub fn world() -> &'static Comm {
        WORLD.get_or_init(|| {
            let (world, threading) = match mpi::initialize_with_threading(Threading::Multiple) {
                Some((universe, provided)) => {
                    let world = universe.world();
                    // The universe would finalise MPI when dropped; finalisation happens at
                    // process exit instead, after every user of the communicator is done.
                    std::mem::forget(universe);
                    // SAFETY: registering a plain `extern "C"` function.
                    unsafe { libc::atexit(finalize_at_exit) };
                    (world, provided)
                }
                // Someone else initialised MPI in this process: use its world.
                None => (SimpleCommunicator::world(), Threading::Single),
            };
            let node = world.split_shared(world.rank());
            let comm = Comm {
                rank: world.rank() as usize,
                size: world.size() as usize,
                local_rank: node.rank() as usize,
                local_size: node.size() as usize,
                world,
                threading,
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
            };
            abort::install(comm.rank, comm.size);
            comm
        })
    }

    /// This process's rank in the world, `0..size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks in the world (P).
    pub fn size(&self) -> usize {
        self.size
    }

    /// This process's rank among the ranks on the same node (shared-memory domain).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Number of ranks on this node.
    pub fn local_size(&self) -> usize {
        self.local_size
    }

    /// The threading level MPI provided (`Multiple` with Debian's OpenMPI).
    pub fn threading(&self) -> Threading {
        self.threading
    }

    /// Blocks until every rank has called it.
    pub fn barrier(&self) {
        use mpi::collective::CommunicatorCollectives;
        self.world.barrier();
    }

    /// Aborts every rank of the job with `code`. Only for unrecoverable states (a panic in
    /// code that may hold other ranks inside a collective); errors use [`Comm::agree`].
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    fn check_rank(&self, op: &'static str, what: &str, r: usize) -> CommResult<()> {
        if r < self.size {
            Ok(())
        } else {
            Err(CommError::invalid(
                op,
                format!("{what} {r} is not a rank (P = {})", self.size),
            ))
        }
    }
}
