//! `comm`: the collectives of `engine::comm` on tensors, bytes and typed slices (uneven and
//! empty blocks, non-contiguous input, every dtype), errors agreed on every rank, point to
//! point, agreement, the barrier.

use engine::comm::ReduceOp;
use engine::dndarray::offsets;
use tch::{Device, Kind, Tensor};

use super::{F64, layout, reference};
use crate::checker::{Checker, compare};

/// Collective. The `comm` subject.
pub fn check(c: &mut Checker) {
    tensors(c);
    bit_or(c);
    mismatches(c);
    slices(c);
    ring(c);
    agreement(c);
    barrier(c);
}

/// Tensor collectives of every dtype: bcast, allgatherv, gatherv, alltoallv, allreduce.
fn tensors(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    let tag = |s: &str, k: Kind| format!("comm/{s}/{k:?}");
    for kind in [Kind::Float, Kind::Double, Kind::Int64, Kind::Bool] {
        let full = (reference(&[p as i64 * 3 + 1, 4], 11, Kind::Double) * 5.0).to_kind(kind);
        let full = if kind == Kind::Bool {
            reference(&[p as i64 * 3 + 1, 4], 11, Kind::Double).gt(0.0)
        } else {
            full
        };
        // bcast from the last rank; other ranks pass nothing.
        let root = p - 1;
        let got = comm.bcast_tensor((me == root).then_some(&full), root);
        c.close(&tag("bcast", kind), got, &full, 0.0);
        // allgatherv of uneven row blocks (rank 0 may have zero rows), from a non-contiguous view.
        let counts = layout("ramp", full.size()[0], p);
        let off = offsets(&counts)[me];
        let mine = full.narrow(0, off, counts[me]);
        let nc = mine.tr().contiguous().tr(); // same values, column-major strides
        c.close(
            &tag("allgatherv_noncontig", kind),
            comm.allgatherv_tensor(&nc),
            &full,
            0.0,
        );
        let got = comm.gatherv_tensor(&mine, root);
        if me == root {
            c.close(
                &tag("gatherv_root", kind),
                got.map(|g| g.expect("root gets data")),
                &full,
                0.0,
            );
        } else {
            let none = matches!(got, Ok(None));
            c.check(&tag("gatherv_nonroot", kind), none, || "non-root got data".into());
        }
        // alltoallv: rank r sends to s a chunk of shape (r + s) × 2 filled with 100 r + s.
        let chunks: Vec<Tensor> = (0..p)
            .map(|s| Tensor::full([(me + s) as i64, 2], (100 * me + s) as f64, F64).to_kind(kind))
            .collect();
        let got = comm.alltoallv_tensor(&chunks);
        let ok = got.as_ref().is_ok_and(|v| {
            v.len() == p
                && v.iter().enumerate().all(|(r, t)| {
                    let want = Tensor::full([(r + me) as i64, 2], (100 * r + me) as f64, F64).to_kind(kind);
                    compare(t, &want, 0.0).is_ok()
                })
        });
        c.check(&tag("alltoallv", kind), ok, || format!("{got:?}"));
        // allreduce of rank-dependent values.
        if kind != Kind::Bool {
            let t = (Tensor::arange(6, F64).reshape([2, 3]) + me as f64 * 7.0).to_kind(kind);
            let t = t.tr(); // non-contiguous
            let ps = p as f64;
            let base = Tensor::arange(6, F64).reshape([2, 3]).tr();
            let want_sum = (&base * ps + 7.0 * ps * (ps - 1.0) / 2.0).to_kind(kind);
            let want_max = (&base + 7.0 * (ps - 1.0)).to_kind(kind);
            c.close(
                &tag("allreduce_sum", kind),
                comm.allreduce_tensor(&t, ReduceOp::Sum),
                &want_sum,
                0.0,
            );
            c.close(
                &tag("allreduce_min", kind),
                comm.allreduce_tensor(&t, ReduceOp::Min),
                &base.to_kind(kind),
                0.0,
            );
            c.close(
                &tag("allreduce_max", kind),
                comm.allreduce_tensor(&t, ReduceOp::Max),
                &want_max,
                0.0,
            );
        } else {
            let t = Tensor::from_slice(&[me == 0, true, false]);
            let any = Tensor::from_slice(&[true, true, false]);
            let all = Tensor::from_slice(&[p == 1, true, false]);
            c.close(
                "comm/allreduce_any/Bool",
                comm.allreduce_tensor(&t, ReduceOp::Max),
                &any,
                0.0,
            );
            c.close(
                "comm/allreduce_all/Bool",
                comm.allreduce_tensor(&t, ReduceOp::Min),
                &all,
                0.0,
            );
            let e = comm.allreduce_tensor(&t, ReduceOp::Sum);
            let ok = matches!(&e, Err(err) if err.to_string().contains("min (all) or max (any)"));
            c.check("comm/allreduce_sum_bool_refused", ok, || format!("{e:?}"));
        }
    }
}

/// Bitwise or of bit sets (Bloom filters).
fn bit_or(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Bitwise or of bit sets (Bloom filters): rank r sets bit r of word r % 2 and bit 63 of
    // word 2; floats are refused on every rank.
    {
        let mut bits = [0u64; 3];
        bits[me % 2] |= 1 << me;
        bits[2] = 1 << 63;
        let got = comm.allreduce(&bits, ReduceOp::BitOr);
        let mut want = [0u64; 3];
        for r in 0..p {
            want[r % 2] |= 1 << r;
        }
        want[2] = 1 << 63;
        let ok = got.as_ref().is_ok_and(|g| g[..] == want[..]);
        c.check("comm/allreduce_bitor", ok, || format!("{got:?}, want {want:?}"));
        let e = comm.allreduce(&[1.0f64], ReduceOp::BitOr);
        let ok = matches!(&e, Err(err) if err.to_string().contains("integers only"));
        c.check("comm/allreduce_bitor_float_refused", ok, || format!("{e:?}"));
    }
}

/// Shapes and dtypes that differ between ranks: the same error everywhere, no hang.
fn mismatches(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Mismatched shapes across ranks: the same error everywhere, no hang.
    let t = Tensor::zeros([2 + (me as i64 % 2), 3], F64);
    let e = comm.allreduce_tensor(&t, ReduceOp::Sum);
    let ok = if p == 1 {
        e.is_ok()
    } else {
        matches!(&e, Err(err) if err.to_string().contains("rank 1 has shape [3, 3]"))
    };
    c.check("comm/allreduce_shape_mismatch", ok, || format!("{e:?}"));
    // Unsupported dtype on one rank only.
    let t = if me == p - 1 {
        Tensor::zeros([2], (Kind::Int8, Device::Cpu))
    } else {
        Tensor::zeros([2], F64)
    };
    let e = comm.allgatherv_tensor(&t);
    let ok = matches!(&e, Err(err) if err.to_string().contains(&format!("rank {} failed", p - 1)) && err.to_string().contains("Int8"));
    c.check("comm/unsupported_dtype_on_one_rank", ok, || format!("{e:?}"));
}

/// Collectives on bytes and typed slices.
fn slices(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Bytes and typed slices.
    let msg = if me == 0 {
        b"hello from rank 0".to_vec()
    } else {
        Vec::new()
    };
    let got = comm.bcast_bytes(msg, 0);
    c.check(
        "comm/bcast_bytes",
        got.as_deref() == Ok(b"hello from rank 0".as_slice()),
        || format!("{got:?}"),
    );
    let got = comm.allgather(&[me as i64, -(me as i64)]);
    let want: Vec<i64> = (0..p as i64).flat_map(|r| [r, -r]).collect();
    c.check("comm/allgather_i64", got.as_ref() == Ok(&want), || format!("{got:?}"));
    let mine: Vec<u8> = vec![me as u8; me];
    let got = comm.allgatherv(&mine);
    let want: Vec<u8> = (0..p).flat_map(|r| vec![r as u8; r]).collect();
    c.check("comm/allgatherv_bytes", got.as_ref().map(|g| &g.0) == Ok(&want), || {
        format!("{got:?}")
    });
    let got = comm.gather(&[me as f64], 0);
    let ok = if me == 0 {
        got == Ok(Some((0..p).map(|r| r as f64).collect()))
    } else {
        got == Ok(None)
    };
    c.check("comm/gather_f64", ok, || format!("{got:?}"));
    let send: Vec<i32> = (0..p).map(|s| (10 * me + s) as i32).collect();
    let got = comm.alltoall(&send);
    let want: Vec<i32> = (0..p).map(|r| (10 * r + me) as i32).collect();
    c.check("comm/alltoall_i32", got.as_ref() == Ok(&want), || format!("{got:?}"));
    let counts: Vec<usize> = (0..p).map(|s| s + me).collect();
    let send: Vec<u64> = (0..p).flat_map(|s| vec![(100 * me + s) as u64; s + me]).collect();
    let got = comm.alltoallv(&send, &counts);
    let want: Vec<u64> = (0..p).flat_map(|r| vec![(100 * r + me) as u64; r + me]).collect();
    c.check("comm/alltoallv_u64", got.as_ref().map(|g| &g.0) == Ok(&want), || {
        format!("{got:?}")
    });
    let got = comm.allreduce(&[me as f32, 1.0], ReduceOp::Max);
    c.check("comm/allreduce_f32_max", got == Ok(vec![(p - 1) as f32, 1.0]), || {
        format!("{got:?}")
    });
}

/// Point to point: a ring of tensor sends and receives.
fn ring(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Ring send/recv of tensors (each rank sends to the next; sends are buffered for small
    // messages, so order them to be safe: even ranks send first).
    let next = (me + 1) % p;
    let prev = (me + p - 1) % p;
    let t = Tensor::full([2, 2], me as f64, F64);
    let got = if p == 1 {
        comm.send_tensor(&t, 0, 7).and_then(|_| comm.recv_tensor(0, 7))
    } else if me % 2 == 0 {
        comm.send_tensor(&t, next, 7).and_then(|_| comm.recv_tensor(prev, 7))
    } else {
        let r = comm.recv_tensor(prev, 7);
        comm.send_tensor(&t, next, 7).and(r)
    };
    c.close("comm/send_recv_ring", got, &Tensor::full([2, 2], prev as f64, F64), 0.0);
}

/// `Comm::agree`: an error on any rank becomes the same error on every rank.
fn agreement(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Agreement.
    let ok = comm.agree(Ok::<_, String>(5)) == Ok(5);
    c.check("comm/agree_ok", ok, || "agree(Ok) failed".into());
    let fail = p - 1;
    let local: Result<(), String> = if me == fail { Err("disk on fire".into()) } else { Ok(()) };
    let got = comm.agree(local);
    let want = engine::CommError::Agreed {
        rank: fail,
        message: "disk on fire".into(),
    };
    c.check("comm/agree_err_everywhere", got.as_ref().err() == Some(&want), || {
        format!("{got:?}")
    });
    let local: Result<(), String> = if me >= 1 || p == 1 {
        Err(format!("rank {me} says no"))
    } else {
        Ok(())
    };
    let first = if p == 1 { 0 } else { 1 };
    let got = comm.agree(local);
    let ok = matches!(&got, Err(engine::CommError::Agreed { rank, message }) if *rank == first && message == &format!("rank {first} says no"));
    c.check("comm/agree_names_first_failing_rank", ok, || format!("{got:?}"));
}

/// The barrier waits for the last rank; the node-local rank is in range.
fn barrier(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    // Barrier: nobody leaves before every rank arrived. The last rank arrives 200 ms late; the
    // others must wait for it (100 ms of slack for scheduling skew on oversubscribed cores).
    let before = std::time::Instant::now();
    if me == p - 1 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    comm.barrier();
    let waited = before.elapsed().as_millis() as u64;
    let ok = p == 1 || waited >= 100;
    c.check("comm/barrier", ok, || {
        format!("left the barrier after {waited} ms, before the late rank arrived")
    });
    c.check(
        "comm/local_rank",
        comm.local_rank() < comm.local_size() && comm.local_size() <= p,
        || format!("local {} of {}", comm.local_rank(), comm.local_size()),
    );
}
