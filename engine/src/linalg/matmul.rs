//! Distributed matrix products of row-split arrays.
//!
//! * [`matmul`]: A (n × k) · B (k × m), both split along rows. A ring: each rank keeps its rows
//!   of A and its block of B's rows, multiplies the columns of its A that match the block it
//!   holds, and passes the block to the previous rank while the next product runs; after P
//!   steps every rank has its rows of C (n × m, split like A). Neither operand is gathered or
//!   sent through an all-to-all: each rank sends and receives B once, in P − 1 messages.
//! * [`matmul_tn`]: Aᵀ · B for A (n × k) and B (n × m) split along rows with the same rows:
//!   local products Aᵣᵀ Bᵣ and one allreduce of k × m; the result is replicated. When B's rows
//!   are distributed differently from A's, B is redistributed to A's counts first.
//!
//! Row-split × replicated products are [`DNDarray::matmul`] (local, no communication).

use tch::Tensor;

use crate::comm::ReduceOp;
use crate::device::MoveTo;
use crate::dndarray::DNDarray;
use crate::error::{EngineError, Result};

/// Tag of the ring's messages.
const RING_TAG: i32 = 0x6d6d;
/// Rows of A per piece of a ring step's product (between pieces the exchange progresses).
const PIECE_ROWS: i64 = 256;

/// Both operands 2-D float of one dtype, split along rows, or the error (the same everywhere).
fn check(op: &'static str, a: &DNDarray, b: &DNDarray) -> Result<()> {
    let comm = a.comm();
    comm.agree(super::check_row_split_float(op, a))?;
    comm.agree(super::check_row_split_float(op, b))?;
    if a.kind() != b.kind() {
        return Err(EngineError::arg(
            op,
            format!(
                "operands have dtypes {:?} and {:?}; expected one dtype",
                a.kind(),
                b.kind()
            ),
        ));
    }
    Ok(())
}

/// Collective. A · B for A (n × k) and B (k × m), both split along rows (any counts, zero-row
/// ranks included): C (n × m) split along rows with A's counts. Errors (the same on every
/// rank): layouts, dtypes, inner dimensions.
pub fn matmul(a: &DNDarray, b: &DNDarray) -> Result<DNDarray> {
    let op = "matmul";
    check(op, a, b)?;
    let comm = a.comm();
    let (n, k) = (a.gshape()[0], a.gshape()[1]);
    let (kb, m) = (b.gshape()[0], b.gshape()[1]);
    if k != kb {
        return Err(EngineError::shape(
            op,
            format!("cannot multiply {n} × {k} by {kb} × {m}: inner dimensions must agree ({k} ≠ {kb})"),
        ));
    }
    let (p, me) = (comm.size(), comm.rank());
    let (counts, offsets) = (b.counts().to_vec(), b.offsets());
    // A block travels as one message: MPI's counts are 32-bit (the same verdict everywhere,
    // from the global counts).
    if let Some(r) = (0..p).find(|&r| counts[r].saturating_mul(m) > i32::MAX as i64) {
        return Err(EngineError::shape(
            op,
            format!(
                "rank {r}'s block of B ({} × {m}) exceeds MPI's message size of {} elements; use more ranks",
                counts[r],
                i32::MAX
            ),
        ));
    }
    let dev = a.device();
    let a_local = a.local();
    let rows = a_local.size()[0];
    let mut c = comm.agree(Tensor::f_zeros([rows, m], (a.kind(), dev)))?;
    // Step s: this rank holds the block of rank (me + s) mod P; it sends that block to
    // me − 1 and receives block (me + s + 1) mod P from me + 1 while it multiplies.
    let mut block = b.local().shallow_clone();
    let (left, right) = ((me + p - 1) % p, (me + 1) % p);
    for step in 0..p {
        let owner = (me + step) % p;
        let cols = a_local.narrow(1, offsets[owner], counts[owner]);
        let dev_block = block.moved_to(dev);
        // The product in pieces of rows, driving the exchange between them.
        let work = |progress: &mut dyn FnMut()| -> std::result::Result<(), tch::TchError> {
            let mut at = 0;
            while at < rows {
                let len = PIECE_ROWS.min(rows - at);
                let _ = c.narrow(0, at, len).f_addmm_(&cols.narrow(0, at, len), &dev_block)?;
                progress();
                at += len;
            }
            Ok(())
        };
        if step + 1 < p {
            let next = (owner + 1) % p;
            let (received, done) =
                comm.exchange_tensor_while(&block, left, &[counts[next], m], right, RING_TAG, work)?;
            comm.agree(done)?;
            block = received;
        } else {
            // Nothing in flight on the last step: one product.
            comm.agree(c.f_addmm_(&cols, &dev_block).map(|_| ()))?;
        }
    }
    DNDarray::from_pieces_in(comm, c, 0)
}

/// Collective. Aᵀ · B for A (n × k) and B (n × m), both split along rows: the replicated
/// (k × m) product from local products and one allreduce. B is first redistributed to A's
/// row counts when they differ. Errors (the same on every rank): layouts, dtypes, row counts.
pub fn matmul_tn(a: &DNDarray, b: &DNDarray) -> Result<Tensor> {
    let op = "matmul_tn";
    check(op, a, b)?;
    let comm = a.comm();
    if a.gshape()[0] != b.gshape()[0] {
        return Err(EngineError::shape(
            op,
            format!(
                "Aᵀ·B needs operands with the same rows; they have {} and {}",
                a.gshape()[0],
                b.gshape()[0]
            ),
        ));
    }
    let b = if b.counts() == a.counts() {
        b.shallow_clone()
    } else {
        b.redistribute(a.counts())?
    };
    let partial = comm.agree(
        a.local()
            .f_tr()
            .and_then(|at| at.f_matmul(&b.local().moved_to(a.device()))),
    )?;
    Ok(comm.allreduce_tensor(&partial.moved_to(tch::Device::Cpu), ReduceOp::Sum)?)
}
