//! Multi-rank checks of `engine::comm` and `engine::DNDarray` against tch on the whole array.
//!
//! Run under `mpirun -n P` (P = 1..4) by `engine/tests/mpi.rs`. Every check runs on every rank;
//! the verdict of a check is the AND over ranks; rank 0 prints failures and a summary line
//! `engine checks at P=<p>: <n> passed, <m> failed`. Exit status 0 only if all passed.
//!
//! Suites: `all` (default), `digest SEED` (prints a digest of a seeded random array, to compare
//! across P), `fail-matmul`, `fail-pieces` (one rank fails inside an operation; every rank must
//! report the same error and exit with status 3).

use engine::comm::ReduceOp;
use engine::dndarray::{balanced_counts, offsets};
use engine::{Comm, DNDarray};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);
const F32: (Kind, Device) = (Kind::Float, Device::Cpu);

use engine::testkit::{Checker, adjusted_rand, compare};

/// Per-rank counts of `n` entries for a named layout at P ranks (rank-independent).
fn layout(name: &str, n: i64, p: usize) -> Vec<i64> {
    let mut c = vec![0i64; p];
    match name {
        "balanced" => return balanced_counts(n, p),
        "first" => c[0] = n,
        "last" => c[p - 1] = n,
        // Rank r gets a share proportional to r (rank 0 gets none), the rest to the last rank.
        _ => {
            let w: i64 = (0..p as i64).sum();
            for (r, x) in c.iter_mut().enumerate() {
                *x = if w == 0 { 0 } else { n * r as i64 / w };
            }
            let rest = n - c.iter().sum::<i64>();
            c[p - 1] += rest;
        }
    }
    c
}

const LAYOUTS: [&str; 4] = ["balanced", "first", "last", "ramp"];

/// This rank's piece of `x` along `split` for `counts`, as a DNDarray.
fn pieces(comm: &Comm, x: &Tensor, split: usize, counts: &[i64]) -> engine::Result<DNDarray> {
    let off = offsets(counts)[comm.rank()];
    DNDarray::from_pieces(x.narrow(split as i64, off, counts[comm.rank()]), split)
}

fn reference(shape: &[i64], seed: i64, kind: Kind) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Double, Device::Cpu)).to_kind(kind)
}

fn check_comm(c: &mut Checker) {
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

/// Layout operations on `x` (any dimensions) for every split axis and layout.
fn check_layouts(c: &mut Checker, x: &Tensor, name: &str) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    let nd = x.dim();
    for split in 0..nd {
        let n = x.size()[split];
        for lay in LAYOUTS {
            let counts = layout(lay, n, p);
            let tag = format!("{name}/split{split}/{lay}");
            let a = match pieces(comm, x, split, &counts) {
                Ok(a) => a,
                Err(e) => {
                    c.check(&format!("{tag}/from_pieces"), false, || e.to_string());
                    continue;
                }
            };
            let meta_ok =
                a.gshape() == x.size().as_slice() && a.counts() == counts.as_slice() && a.split() == Some(split);
            c.check(&format!("{tag}/from_pieces_meta"), meta_ok, || format!("{a:?}"));
            c.check(
                &format!("{tag}/is_balanced"),
                a.is_balanced() == (counts == balanced_counts(n, p)),
                || format!("{a:?}"),
            );
            c.close(&format!("{tag}/allgather"), a.allgather(), x, 0.0);
            let root = p / 2;
            match a.gather(root) {
                Ok(Some(g)) if me == root => c.close(&format!("{tag}/gather"), Ok::<_, String>(g), x, 0.0),
                Ok(None) if me != root => c.check(&format!("{tag}/gather"), true, String::new),
                other => c.check(&format!("{tag}/gather"), false, || format!("{other:?}")),
            }
            // balance and redistribute: exact local pieces.
            for (what, target) in [
                ("balance", balanced_counts(n, p)),
                ("to_last", layout("last", n, p)),
                ("to_ramp", layout("ramp", n, p)),
            ] {
                let b = if what == "balance" {
                    a.balance()
                } else {
                    a.redistribute(&target)
                };
                let want = x.narrow(split as i64, offsets(&target)[me], target[me]);
                let counts_ok = b.as_ref().is_ok_and(|b| b.counts() == target.as_slice());
                c.check(&format!("{tag}/{what}_counts"), counts_ok, || format!("{b:?}"));
                c.close(
                    &format!("{tag}/{what}"),
                    b.map(|b| b.local().shallow_clone()),
                    &want,
                    0.0,
                );
            }
            // resplit to every other axis and to none.
            for new in (0..nd).map(Some).chain([None]) {
                let r = a.resplit(new);
                let want = match new {
                    None => x.shallow_clone(),
                    // Resplitting to the current axis keeps the layout.
                    Some(b) if b == split => a.local().shallow_clone(),
                    Some(b) => {
                        let t = balanced_counts(x.size()[b], p);
                        x.narrow(b as i64, offsets(&t)[me], t[me])
                    }
                };
                let split_ok = r
                    .as_ref()
                    .is_ok_and(|r| r.split() == new && (new.is_none() || new == Some(split) || r.is_balanced()));
                c.check(&format!("{tag}/resplit_{new:?}_layout"), split_ok, || format!("{r:?}"));
                c.close(
                    &format!("{tag}/resplit_{new:?}"),
                    r.map(|r| r.local().shallow_clone()),
                    &want,
                    0.0,
                );
            }
            // transpose relabels the split axis.
            if nd >= 2 {
                let tr = a.transpose(0, nd - 1);
                let relabel = tr.as_ref().is_ok_and(|t| {
                    t.split()
                        == Some(if split == 0 {
                            nd - 1
                        } else if split == nd - 1 {
                            0
                        } else {
                            split
                        })
                });
                c.check(&format!("{tag}/transpose_split"), relabel, || format!("{tr:?}"));
                c.close(
                    &format!("{tag}/transpose"),
                    tr.and_then(|t| t.allgather()),
                    &x.transpose(0, nd as i64 - 1),
                    0.0,
                );
            }
        }
    }
}

/// Element-wise operations between arrays in different layouts.
fn check_binary(c: &mut Checker, x: &Tensor, y: &Tensor, name: &str) {
    let comm = c.comm;
    let p = comm.size();
    let nd = x.dim();
    let mut arrays: Vec<(String, DNDarray, DNDarray)> = Vec::new();
    for sa in (0..nd).map(Some).chain([None]) {
        for sb in (0..nd).map(Some).chain([None]) {
            let make = |t: &Tensor, s: Option<usize>, lay: &str| match s {
                None => DNDarray::from_replicated(t, None),
                Some(s) => pieces(comm, t, s, &layout(lay, t.size()[s], p)),
            };
            let (a, b) = (make(x, sa, "ramp"), make(y, sb, "balanced"));
            if let (Ok(a), Ok(b)) = (a, b) {
                arrays.push((format!("{sa:?}x{sb:?}"), a, b));
            } else {
                c.check(&format!("{name}/binary_setup_{sa:?}_{sb:?}"), false, || {
                    "construction failed".into()
                });
            }
        }
    }
    for (lab, a, b) in &arrays {
        for (op, want) in [
            ("add", x + y),
            ("sub", x - y),
            ("mul", x * y),
            ("div", x / y),
            ("maximum", x.maximum(y)),
        ] {
            let r = match op {
                "add" => a.add(b),
                "sub" => a.sub(b),
                "mul" => a.mul(b),
                "div" => a.div(b),
                _ => a.binary(b, engine::dndarray::BinaryOp::Maximum),
            };
            let layout_ok = r.as_ref().is_ok_and(|r| {
                let lead = if a.split().is_some() { a } else { b };
                r.split() == lead.split() && r.counts() == lead.counts()
            });
            c.check(&format!("{name}/{lab}/{op}_layout"), layout_ok, || format!("{r:?}"));
            c.close(
                &format!("{name}/{lab}/{op}"),
                r.and_then(|r| r.allgather()),
                &want,
                1e-12,
            );
        }
    }
    let other = DNDarray::zeros(&[1, 2], None, F64).expect("zeros");
    let e = arrays[0].1.add(&other);
    let ok = matches!(&e, Err(err) if err.to_string().contains("differ"));
    c.check(&format!("{name}/binary_shape_mismatch"), ok, || format!("{e:?}"));
}

/// Reductions over every axis and over all elements, for every split and layout.
fn check_reductions(c: &mut Checker, x: &Tensor, name: &str, tol: f64) {
    let comm = c.comm;
    let p = comm.size();
    let nd = x.dim();
    let float = matches!(x.kind(), Kind::Float | Kind::Double);
    for split in (0..nd).map(Some).chain([None]) {
        for lay in ["balanced", "ramp", "last"] {
            if split.is_none() && lay != "balanced" {
                continue;
            }
            let a = match split {
                None => DNDarray::from_replicated(x, None).expect("replicated"),
                Some(s) => pieces(comm, x, s, &layout(lay, x.size()[s], p)).expect("pieces"),
            };
            for axis in (0..nd).map(Some).chain([None]) {
                let tag = format!("{name}/split{split:?}/{lay}/axis{axis:?}");
                let dim = axis.map(|d| d as i64);
                let want_sum = match dim {
                    Some(d) => x.sum_dim_intlist(d, false, None::<Kind>),
                    None => x.sum(None::<Kind>),
                };
                c.close(
                    &format!("{tag}/sum"),
                    a.sum(axis).and_then(|r| r.allgather()),
                    &want_sum,
                    tol,
                );
                let empty = match dim {
                    Some(d) => x.size()[d as usize] == 0,
                    None => x.numel() == 0,
                };
                if empty {
                    let e = a.min(axis);
                    c.check(&format!("{tag}/min_empty_refused"), e.is_err(), || format!("{e:?}"));
                    continue;
                }
                let (wmin, wmax, wamin, wamax) = match dim {
                    Some(d) => (
                        x.amin(d, false),
                        x.amax(d, false),
                        x.argmin(d, false),
                        x.argmax(d, false),
                    ),
                    None => (x.min(), x.max(), x.argmin(None, false), x.argmax(None, false)),
                };
                c.close(
                    &format!("{tag}/min"),
                    a.min(axis).and_then(|r| r.allgather()),
                    &wmin,
                    0.0,
                );
                c.close(
                    &format!("{tag}/max"),
                    a.max(axis).and_then(|r| r.allgather()),
                    &wmax,
                    0.0,
                );
                c.close(
                    &format!("{tag}/argmin"),
                    a.argmin(axis).and_then(|r| r.allgather()),
                    &wamin,
                    0.0,
                );
                c.close(
                    &format!("{tag}/argmax"),
                    a.argmax(axis).and_then(|r| r.allgather()),
                    &wamax,
                    0.0,
                );
                if float {
                    let dims: Vec<i64> = match dim {
                        Some(d) => vec![d],
                        None => (0..nd as i64).collect(),
                    };
                    let wmean = x.mean_dim(dims.as_slice(), false, None::<Kind>);
                    c.close(
                        &format!("{tag}/mean"),
                        a.mean(axis).and_then(|r| r.allgather()),
                        &wmean,
                        tol,
                    );
                    for ddof in [0i64, 1] {
                        let wvar = x.var_correction(dims.as_slice(), ddof, false);
                        c.close(
                            &format!("{tag}/var_ddof{ddof}"),
                            a.var(axis, ddof).and_then(|r| r.allgather()),
                            &wvar,
                            tol,
                        );
                    }
                } else {
                    let e = a.mean(axis);
                    let ok = matches!(&e, Err(err) if err.to_string().contains("not floating point"));
                    c.check(&format!("{tag}/mean_int_refused"), ok, || format!("{e:?}"));
                }
            }
        }
    }
}

fn check_matmul(c: &mut Checker, x: &Tensor, name: &str, tol: f64) {
    let comm = c.comm;
    let p = comm.size();
    let (n, d) = (x.size()[0], x.size()[1]);
    let b = reference(&[d, 3], 5, x.kind());
    let a = reference(&[2, n], 6, x.kind());
    for split in [Some(0), Some(1), None] {
        for lay in ["balanced", "ramp"] {
            let arr = match split {
                None => DNDarray::from_replicated(x, None).expect("replicated"),
                Some(s) => pieces(comm, x, s, &layout(lay, x.size()[s], p)).expect("pieces"),
            };
            let tag = format!("{name}/split{split:?}/{lay}");
            let r = arr.matmul(&b);
            let want_split = if split == Some(0) { Some(0) } else { None };
            c.check(
                &format!("{tag}/matmul_split"),
                r.as_ref().is_ok_and(|r| r.split() == want_split),
                || format!("{r:?}"),
            );
            c.close(
                &format!("{tag}/matmul"),
                r.and_then(|r| r.allgather()),
                &x.matmul(&b),
                tol,
            );
            let r = arr.left_matmul(&a);
            let want_split = if split == Some(1) { Some(1) } else { None };
            c.check(
                &format!("{tag}/left_matmul_split"),
                r.as_ref().is_ok_and(|r| r.split() == want_split),
                || format!("{r:?}"),
            );
            c.close(
                &format!("{tag}/left_matmul"),
                r.and_then(|r| r.allgather()),
                &a.matmul(x),
                tol,
            );
        }
    }
    let arr = DNDarray::from_replicated(x, Some(0)).expect("split");
    let e = arr.matmul(&reference(&[d + 1, 2], 1, x.kind()));
    let ok = matches!(&e, Err(err) if err.to_string().contains("inner dimensions"));
    c.check(&format!("{name}/matmul_inner_mismatch"), ok, || format!("{e:?}"));
}

fn check_factories(c: &mut Checker) {
    for shape in [vec![3i64, 4], vec![17, 5], vec![4, 3, 5], vec![0, 2]] {
        for split in (0..shape.len()).map(Some).chain([None]) {
            let tag = format!("factory/{shape:?}/split{split:?}");
            for (kind, tol) in [(Kind::Double, 0.0), (Kind::Float, 0.0)] {
                let full = DNDarray::randn(&shape, None, 42, (kind, Device::Cpu)).map(|a| a.into_local());
                let dist = DNDarray::randn(&shape, split, 42, (kind, Device::Cpu));
                let bal = dist.as_ref().is_ok_and(|d| d.is_balanced() && d.split() == split);
                c.check(&format!("{tag}/randn_{kind:?}_balanced"), bal, || format!("{dist:?}"));
                match full {
                    Ok(full) => c.close(
                        &format!("{tag}/randn_{kind:?}"),
                        dist.and_then(|d| d.allgather()),
                        &full,
                        tol,
                    ),
                    Err(e) => c.check(&format!("{tag}/randn_{kind:?}"), false, || e.to_string()),
                }
                let full = DNDarray::rand(&shape, None, 7, (kind, Device::Cpu)).map(|a| a.into_local());
                let dist = DNDarray::rand(&shape, split, 7, (kind, Device::Cpu));
                if let Ok(full) = full {
                    let in_range = full.numel() == 0
                        || (full.min().double_value(&[]) >= 0.0 && full.max().double_value(&[]) < 1.0);
                    c.check(&format!("{tag}/rand_{kind:?}_range"), in_range, || {
                        "outside [0, 1)".into()
                    });
                    c.close(
                        &format!("{tag}/rand_{kind:?}"),
                        dist.and_then(|d| d.allgather()),
                        &full,
                        tol,
                    );
                }
            }
            let z = DNDarray::zeros(&shape, split, F32).and_then(|z| z.allgather());
            c.close(&format!("{tag}/zeros"), z, &Tensor::zeros(shape.as_slice(), F32), 0.0);
            let o = DNDarray::ones(&shape, split, F64).and_then(|o| o.allgather());
            c.close(&format!("{tag}/ones"), o, &Tensor::ones(shape.as_slice(), F64), 0.0);
        }
    }
    for n in [0i64, 3, 10] {
        for split in [Some(0), None] {
            let r = DNDarray::arange(n, split, (Kind::Int64, Device::Cpu)).and_then(|a| a.allgather());
            c.close(
                &format!("factory/arange{n}/split{split:?}"),
                r,
                &Tensor::arange(n, (Kind::Int64, Device::Cpu)),
                0.0,
            );
        }
    }
    let e = DNDarray::rand(&[2, 2], Some(2), 1, F64);
    c.check(
        "factory/bad_split_refused",
        matches!(&e, Err(err) if err.to_string().contains("out of range")),
        || format!("{e:?}"),
    );
    let e = DNDarray::rand(&[2, 2], None, 1, (Kind::Int64, Device::Cpu));
    c.check("factory/int_rand_refused", e.is_err(), || format!("{e:?}"));
}

fn check_pieces_errors(c: &mut Checker) {
    let comm = c.comm;
    let (p, me) = (comm.size(), comm.rank());
    if p < 2 {
        return;
    }
    // Rank 1 has a different number of columns.
    let t = Tensor::zeros([2, if me == 1 { 4 } else { 3 }], F64);
    let e = DNDarray::from_pieces(t, 0);
    let ok = matches!(&e, Err(err) if err.to_string().contains("rank 1 has shape [2, 4]"));
    c.check("pieces/shape_mismatch", ok, || format!("{e:?}"));
    // Different targets on different ranks are refused everywhere.
    let a = DNDarray::zeros(&[p as i64 * 2, 2], Some(0), F64).expect("zeros");
    let mut target = balanced_counts(p as i64 * 2, p);
    if me == p - 1 {
        target = layout("first", p as i64 * 2, p);
    }
    let e = a.redistribute(&target);
    let ok = matches!(&e, Err(err) if err.to_string().contains(&format!("rank {} asked for target", p - 1)));
    c.check("pieces/redistribute_targets_differ", ok, || format!("{e:?}"));
}

/// The single-process reference PCA of the whole `x`: (explained variance, ratio, components
/// with the sign convention, scores), all components.
fn pca_reference(x: &Tensor, standardize: bool) -> (Tensor, Tensor, Tensor, Tensor) {
    let n = x.size()[0] as f64;
    let xc = x - x.mean_dim(0, true, Kind::Double);
    let xs = if standardize {
        let sd = (xc.square().sum_dim_intlist(0, true, Kind::Double) / n).sqrt();
        &xc / sd
    } else {
        xc
    };
    let (_, s, v) = xs.svd(true, true);
    let (_, v) = engine::linalg::flip_signs(&v);
    let ev = s.square() / (n - 1.0);
    let total = xs.var_dim(0, true, false).sum(Kind::Double);
    let ratio = &ev / total;
    let scores = xs.matmul(&v);
    (ev, ratio, v, scores)
}

fn check_pca(c: &mut Checker) {
    use engine::ml::pca::{Components, PcaOptions, Solver, fit, project, project_into, transform};
    let comm = c.comm;
    let p = comm.size();
    // A planted, well-separated spectrum (f64): 61 rows × 6 columns, full rank.
    let sv = [10.0, 6.0, 4.0, 2.0, 1.0, 0.5];
    let z = reference(&[61, 6], 300, Kind::Double);
    let (m, _) = Tensor::linalg_qr(&reference(&[6, 6], 301, Kind::Double), "reduced");
    let x = z
        .matmul(&Tensor::diag_embed(&Tensor::from_slice(&sv), 0, 0, 1))
        .matmul(&m.tr())
        + reference(&[1, 6], 302, Kind::Double) * 3.0;
    let exact = |solver| PcaOptions {
        components: Components::Count(3),
        solver,
        standardize: false,
    };
    for standardize in [false, true] {
        let (ev, ratio, v, scores) = pca_reference(&x, standardize);
        for name in LAYOUTS {
            let counts = layout(name, 61, p);
            let Ok(a) = pieces(comm, &x, 0, &counts) else {
                c.check("pca/pieces", false, || "pieces".into());
                continue;
            };
            for solver in [Solver::Covariance, Solver::Tsqr, Solver::Auto] {
                let tag = format!("pca/{}/{name}/std={standardize}", solver.name());
                let opts = PcaOptions {
                    standardize,
                    ..exact(solver)
                };
                let model = fit(&a, &opts);
                let ok = model.is_ok();
                c.check(&format!("{tag}/fit"), ok, || format!("{:?}", model.as_ref().err()));
                let Ok(model) = model else { continue };
                // Exact solvers in f64: 1e-10 relative on the spectrum, 1e-8 on vectors/scores.
                c.close(
                    &format!("{tag}/explained_variance"),
                    Ok::<_, String>(model.explained_variance.shallow_clone()),
                    &ev.narrow(0, 0, 3),
                    1e-10,
                );
                c.close(
                    &format!("{tag}/ratio"),
                    Ok::<_, String>(model.explained_variance_ratio.shallow_clone()),
                    &ratio.narrow(0, 0, 3),
                    1e-10,
                );
                c.close(
                    &format!("{tag}/components"),
                    Ok::<_, String>(model.components.shallow_clone()),
                    &v.narrow(1, 0, 3),
                    1e-8,
                );
                let t = transform(&a, &model).and_then(|t| t.allgather());
                c.close(&format!("{tag}/scores"), t, &scores.narrow(1, 0, 3), 1e-8);
                // In place over a copy of the rows (d = 6 ≥ 2k), and into new memory (k = 4).
                for k in [3, 4] {
                    let comps = if k == 3 {
                        model.components.shallow_clone()
                    } else {
                        Tensor::cat(&[&model.components, &model.components.narrow(1, 0, 1)], 1)
                    };
                    let mine = project(&a, &model.mean, &model.scale, &comps).map(|t| t.local().tr().contiguous());
                    // Row-major rows, and column-major (as convert::load lays out tables).
                    for (order, local) in [
                        ("rows", a.local().copy()),
                        ("columns", a.local().tr().contiguous().tr()),
                    ] {
                        let copy = DNDarray::from_pieces(local, 0);
                        let got = copy.and_then(|x| project_into(x, &model.mean, &model.scale, &comps));
                        let name = format!("{tag}/project_into/{order}/k={k}");
                        match &mine {
                            // The same product, summed in another order for column-major input.
                            Ok(want) => c.close(&name, got.map(|t| t.contiguous()), want, 1e-12),
                            Err(e) => c.check(&name, false, || e.to_string()),
                        }
                    }
                }
            }
        }
        // k from a variance fraction: the fewest components reaching it.
        let want_k = {
            let cum: Vec<f64> = Vec::try_from(&ratio.cumsum(0, Kind::Double)).unwrap_or_default();
            cum.iter().position(|&q| q >= 0.95).map_or(6, |i| i + 1) as i64
        };
        let a = pieces(comm, &x, 0, &layout("ramp", 61, p)).expect("pieces");
        let opts = PcaOptions {
            components: Components::Variance(0.95),
            solver: Solver::Covariance,
            standardize,
        };
        let got = fit(&a, &opts).map(|m| m.k());
        c.check(
            &format!("pca/variance-0.95/std={standardize}"),
            got.as_ref().ok() == Some(&want_k),
            || format!("k = {got:?}, expected {want_k}"),
        );
    }
    // Randomized on low-rank data (rank 3 plus 1e-12 noise, 8 columns): the principal
    // subspace within an angle of 1e-6, and the same components (signs included).
    let lr = reference(&[53, 3], 310, Kind::Double)
        .matmul(&Tensor::diag_embed(&Tensor::from_slice(&[5.0, 3.0, 2.0]), 0, 0, 1))
        .matmul(&reference(&[3, 8], 311, Kind::Double))
        + reference(&[53, 8], 312, Kind::Double) * 1e-12;
    let (_, _, v_ref, _) = pca_reference(&lr, false);
    let v_ref = v_ref.narrow(1, 0, 3);
    for name in LAYOUTS {
        let a = pieces(comm, &lr, 0, &layout(name, 53, p)).expect("pieces");
        for solver in [
            Solver::Randomized {
                oversamples: 4,
                power_iter: 2,
                seed: 7,
            },
            Solver::Hierarchical { oversamples: 0 },
            Solver::Hierarchical { oversamples: 2 },
        ] {
            let opts = PcaOptions {
                components: Components::Count(3),
                solver,
                standardize: false,
            };
            let tag = match solver {
                Solver::Hierarchical { oversamples } => format!("pca/hierarchical-{oversamples}/{name}"),
                _ => format!("pca/{}/{name}", solver.name()),
            };
            match fit(&a, &opts) {
                Ok(model) => {
                    if matches!(solver, Solver::Hierarchical { .. }) {
                        // Rank-3 data: what the truncations drop is the 1e-12 noise.
                        let est = model.error_estimate.unwrap_or(f64::NAN);
                        c.check(&format!("{tag}/error_estimate"), est < 1e-9, || format!("{est:e}"));
                    }
                    let cosines = v_ref.tr().matmul(&model.components).svd(true, true).1;
                    let angle = cosines.min().double_value(&[]).clamp(-1.0, 1.0).acos();
                    c.check(&format!("{tag}/angle"), angle < 1e-6, || {
                        format!("largest principal angle {angle:e}")
                    });
                    c.close(
                        &format!("{tag}/components"),
                        Ok::<_, String>(model.components.shallow_clone()),
                        &v_ref,
                        1e-6,
                    );
                }
                Err(e) => c.check(&format!("{tag}/fit"), false, || e.to_string()),
            }
        }
    }
    // Hierarchical on full-rank data: its error estimate bounds the true relative error of the
    // rank-3 approximation from above (equal at P = 1, where nothing is merged), and the
    // exact solvers report none.
    {
        let xc = &x - x.mean_dim(0, true, Kind::Double);
        let s_all = xc.svd(true, true).1;
        let total = s_all.square().sum(Kind::Double).double_value(&[]);
        let best = (s_all.narrow(0, 3, 3).square().sum(Kind::Double).double_value(&[]) / total).sqrt();
        let a = pieces(comm, &x, 0, &layout("ramp", 61, p)).expect("pieces");
        let got = fit(&a, &exact(Solver::Hierarchical { oversamples: 0 })).map(|m| m.error_estimate);
        let ok = matches!(got, Ok(Some(e)) if e >= best * (1.0 - 1e-10) && (p > 1 || (e - best).abs() <= 1e-10 * best));
        c.check("pca/hierarchical/error_bound", ok, || {
            format!("estimate {got:?}, best rank-3 error {best:e}")
        });
        let none = fit(&a, &exact(Solver::Covariance)).map(|m| m.error_estimate);
        c.check("pca/covariance/no_estimate", matches!(none, Ok(None)), || {
            format!("{none:?}")
        });
    }
    // f32: covariance within 1e-4 relative of the f64 reference.
    let (ev, _, _, _) = pca_reference(&x, false);
    let a = pieces(comm, &x.to_kind(Kind::Float), 0, &layout("first", 61, p)).expect("pieces");
    let got = fit(&a, &exact(Solver::Covariance)).map(|m| m.explained_variance.to_kind(Kind::Double));
    c.close("pca/f32/explained_variance", got, &ev.narrow(0, 0, 3), 1e-4);
    // Errors, the same on every rank.
    let a = pieces(comm, &x, 0, &layout("last", 61, p)).expect("pieces");
    for (k, want) in [
        (0, "k = 0 is out of range"),
        (7, "k = 7 is out of range; expected 1 ≤ k ≤ min(rows, columns) = 6"),
    ] {
        let got = fit(
            &a,
            &PcaOptions {
                components: Components::Count(k),
                ..exact(Solver::Tsqr)
            },
        );
        let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
        c.check(&format!("pca/error/k={k}"), msg.contains(want), || msg.clone());
    }
    let got = fit(
        &a,
        &PcaOptions {
            components: Components::Variance(0.9),
            solver: Solver::Randomized {
                oversamples: 2,
                power_iter: 1,
                seed: 1,
            },
            standardize: false,
        },
    );
    let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
    c.check(
        "pca/error/variance-randomized",
        msg.contains("variance => needs every component"),
        || msg.clone(),
    );
}

/// Single-process Lloyd from `init` with scikit-learn's tolerance: (centroids, iterations,
/// inertia of the final assignment).
fn lloyd_reference(x: &Tensor, init: &Tensor, max_iter: usize, tol: f64) -> (Tensor, usize, f64) {
    let tol = tol * x.var_dim(0, false, false).mean(Kind::Double).double_value(&[]);
    let dist = |c: &Tensor| {
        (x.square().sum_dim_intlist(1, true, Kind::Double) - x.matmul(&c.tr()) * 2.0
            + c.square().sum_dim_intlist(1, false, Kind::Double).unsqueeze(0))
        .clamp_min(0.0)
    };
    let mut c = init.shallow_clone();
    let mut it = 0;
    while it < max_iter {
        let label = dist(&c).argmin(1, false);
        let k = c.size()[0];
        let sums = Tensor::zeros_like(&c).index_add(0, &label, x);
        let counts = Tensor::zeros([k], (Kind::Double, Device::Cpu)).index_add(0, &label, &x.ones_like().select(1, 0));
        let new = sums / counts.clamp_min(1.0).unsqueeze(1);
        let shift = (&new - &c).square().sum(Kind::Double).double_value(&[]);
        c = new;
        it += 1;
        if shift <= tol {
            break;
        }
    }
    let inertia = dist(&c)
        .amin([1i64].as_slice(), false)
        .sum(Kind::Double)
        .double_value(&[]);
    (c, it, inertia)
}

fn check_kmeans(c: &mut Checker) {
    use engine::ml::kmeans::{Init, KMeansOptions, fit, predict};
    let comm = c.comm;
    let p = comm.size();
    // Four planted, well-separated blobs in 3-d: 403 rows, row i in blob i % 4.
    let n = 403i64;
    let centers = Tensor::from_slice(&[10.0, 0.0, 0.0, -10.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, -10.0]).view([4, 3]);
    let truth: Vec<i64> = (0..n).map(|i| i % 4).collect();
    let x = centers.index_select(0, &Tensor::from_slice(&truth)) + reference(&[n, 3], 400, Kind::Double) * 0.5;
    let opts = |init, seed| KMeansOptions {
        k: 4,
        init,
        max_iter: 100,
        tol: 1e-4,
        seed,
        n_init: 3,
        progress: false,
    };
    for init_name in ["k-means||", "k-means++", "random"] {
        let mut results: Vec<Vec<f64>> = Vec::new();
        for name in LAYOUTS {
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            let init = match init_name {
                "k-means||" => Init::Parallel {
                    rounds: 5,
                    oversampling: 2.0,
                },
                "k-means++" => Init::PlusPlus,
                _ => Init::Random,
            };
            let tag = format!("kmeans/{init_name}/{name}");
            let model = match fit(&a, &opts(init, 7)) {
                Ok(m) => m,
                Err(e) => {
                    c.check(&format!("{tag}/fit"), false, || e.to_string());
                    continue;
                }
            };
            let labels = predict(&a, &model.centroids).and_then(|(l, d)| Ok((l.allgather()?, d.allgather()?)));
            let Ok((labels, dists)) = labels else {
                c.check(&format!("{tag}/predict"), false, || "predict failed".into());
                continue;
            };
            let labels: Vec<i64> = Vec::try_from(&labels).unwrap_or_default();
            let ari = adjusted_rand(&labels, &truth);
            c.check(&format!("{tag}/ari"), ari >= 0.99, || format!("ARI {ari}"));
            let direct = dists.square().sum(Kind::Double).double_value(&[]);
            c.check(
                &format!("{tag}/inertia"),
                (model.inertia - direct).abs() <= 1e-10 * direct,
                || format!("inertia {} vs Σ distance² {direct}", model.inertia),
            );
            c.check(&format!("{tag}/sizes"), model.sizes.iter().sum::<i64>() == n, || {
                format!("{:?}", model.sizes)
            });
            results.push(Vec::try_from(&model.centroids.reshape([-1])).unwrap_or_default());
        }
        // The same seed gives the same centroids whatever the split of the rows.
        let same = results.windows(2).all(|w| {
            w[0].len() == w[1].len()
                && w[0]
                    .iter()
                    .zip(&w[1])
                    .all(|(a, b)| (a - b).abs() <= 1e-10 * (1.0 + a.abs()))
        });
        c.check(
            &format!("kmeans/{init_name}/layouts_agree"),
            same && results.len() == LAYOUTS.len(),
            || format!("{results:?}"),
        );
    }
    // Given initial centroids: the single-process Lloyd reference, step for step.
    let overlapping =
        reference(&[257, 5], 401, Kind::Double) + centers.narrow(1, 0, 1).repeat([65, 5]).narrow(0, 0, 257) * 0.2;
    let init = overlapping.narrow(0, 0, 6).shallow_clone();
    let (want_c, want_it, want_inertia) = lloyd_reference(&overlapping, &init, 300, 1e-6);
    for name in LAYOUTS {
        let a = pieces(comm, &overlapping, 0, &layout(name, 257, p)).expect("pieces");
        let given = || KMeansOptions {
            k: 6,
            init: Init::Centroids(init.shallow_clone()),
            max_iter: 300,
            tol: 1e-6,
            seed: 0,
            n_init: 1,
            progress: false,
        };
        // Also by tensor operations (the path of non-CPU devices) for the first layout.
        for tensor_path in [false, true] {
            if tensor_path && name != LAYOUTS[0] {
                continue;
            }
            engine::ml::kmeans::force_tensor_path(tensor_path);
            let tag = format!("kmeans/given/{name}{}", if tensor_path { "/tensor_path" } else { "" });
            let result = fit(&a, &given());
            engine::ml::kmeans::force_tensor_path(false);
            match result {
                Ok(m) => {
                    c.close(
                        &format!("{tag}/centroids"),
                        Ok::<_, String>(m.centroids.shallow_clone()),
                        &want_c,
                        1e-10,
                    );
                    c.check(&format!("{tag}/iterations"), m.iterations == want_it, || {
                        format!("{} iterations, reference {want_it}", m.iterations)
                    });
                    c.check(
                        &format!("{tag}/inertia"),
                        (m.inertia - want_inertia).abs() <= 1e-10 * want_inertia,
                        || format!("{} vs {want_inertia}", m.inertia),
                    );
                }
                Err(e) => c.check(&format!("{tag}/fit"), false, || e.to_string()),
            }
        }
    }
    // Errors, the same on every rank.
    let a = pieces(comm, &x, 0, &layout("ramp", n, p)).expect("pieces");
    for (o, want) in [
        (
            KMeansOptions {
                k: 0,
                ..opts(Init::Random, 1)
            },
            "k = 0 is out of range",
        ),
        (
            KMeansOptions {
                k: n + 1,
                ..opts(Init::Random, 1)
            },
            "k = 404 is out of range; expected 1 ≤ k ≤ the number of rows (403)",
        ),
        (
            KMeansOptions {
                tol: -1.0,
                ..opts(Init::Random, 1)
            },
            "tol = -1 must be a finite value ≥ 0",
        ),
        (
            KMeansOptions {
                init: Init::Centroids(Tensor::zeros([4, 2], (Kind::Double, Device::Cpu))),
                ..opts(Init::Random, 1)
            },
            "initial centroids have shape [4, 2]; expected 4 × 3",
        ),
    ] {
        let msg = fit(&a, &o).err().map(|e| e.to_string()).unwrap_or_default();
        c.check(&format!("kmeans/error/{want}"), msg.contains(want), || msg.clone());
    }
}

/// A known-spectrum matrix: Q₁ diag(σ) Q₂ᵀ (n × d) with orthonormal Q₁ (n × r), Q₂ (d × r).
fn with_spectrum(n: i64, d: i64, sigma: &[f64], seed: i64) -> Tensor {
    let r = sigma.len() as i64;
    let (q1, _) = Tensor::linalg_qr(&reference(&[n, r], seed, Kind::Double), "reduced");
    let (q2, _) = Tensor::linalg_qr(&reference(&[d, r], seed + 1, Kind::Double), "reduced");
    q1.matmul(&Tensor::from_slice(sigma).diag(0)).matmul(&q2.tr())
}

/// A planted linear system: states s_{k+1} = B s_k with B block-diagonal (rotation-scalings
/// ρ e^{±iθ} and real factors), observed through a random `state` × 6 map: snapshots
/// x_k = M s_k for k < `steps` (as rows, `steps` × `state`), and B's eigenvalues (re, im).
fn planted_system(state: i64, steps: i64, seed: i64) -> (Tensor, Vec<(f64, f64)>) {
    let blocks = [(1.0, 0.3), (0.98, 1.1)];
    let reals = [0.99, 1.01];
    let b = Tensor::zeros([6, 6], F64);
    let mut eig = Vec::new();
    for (i, &(rho, theta)) in blocks.iter().enumerate() {
        let (c0, s0) = (rho * f64::cos(theta), rho * f64::sin(theta));
        let j = 2 * i as i64;
        let _ = b.get(j).get(j).fill_(c0);
        let _ = b.get(j).get(j + 1).fill_(-s0);
        let _ = b.get(j + 1).get(j).fill_(s0);
        let _ = b.get(j + 1).get(j + 1).fill_(c0);
        eig.push((c0, s0));
        eig.push((c0, -s0));
    }
    for (i, &r) in reals.iter().enumerate() {
        let _ = b.get(4 + i as i64).get(4 + i as i64).fill_(r);
        eig.push((r, 0.0));
    }
    let m = reference(&[state, 6], seed, Kind::Double);
    let mut s_k = reference(&[6], seed + 1, Kind::Double) + 1.0;
    let mut rows = Vec::new();
    for _ in 0..steps {
        rows.push(m.matmul(&s_k));
        s_k = b.matmul(&s_k);
    }
    (Tensor::stack(&rows, 0), eig)
}

/// Sorted like `engine::ml::dmd`: |λ| descending, then Im λ descending.
fn dmd_order(mut eig: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    eig.sort_by(|a, b| b.0.hypot(b.1).total_cmp(&a.0.hypot(a.1)).then(b.1.total_cmp(&a.1)));
    eig
}

/// Exact DMD of snapshots as columns (`state` × m) in one process, by the textbook formulas
/// with tch: (λ, Φ diag(b)) in `dmd_order`; Φ diag(b) does not depend on how eigenvectors are
/// scaled.
fn dmd_reference(snapshots: &Tensor, r: i64) -> (Tensor, Tensor) {
    let m = snapshots.size()[1];
    let (x, y) = (snapshots.narrow(1, 0, m - 1), snapshots.narrow(1, 1, m - 1));
    let (u, s, v) = x.svd(true, true);
    let (u, s, v) = (u.narrow(1, 0, r), s.narrow(0, 0, r), v.narrow(1, 0, r));
    let yvs = y.matmul(&v) / s.unsqueeze(0);
    let (lambda, w) = u.tr().matmul(&yvs).linalg_eig();
    let phi = yvs.to_kind(Kind::ComplexDouble).matmul(&w);
    let x0 = snapshots.select(1, 0).to_kind(Kind::ComplexDouble).unsqueeze(1);
    let (b, _, _, _) = phi.linalg_lstsq(&x0, None, "gelsd");
    let re = Vec::<f64>::try_from(lambda.real().contiguous()).expect("re");
    let im = Vec::<f64>::try_from(lambda.imag().contiguous()).expect("im");
    let sorted = dmd_order(re.iter().copied().zip(im.iter().copied()).collect());
    let idx: Vec<i64> = sorted
        .iter()
        .map(|e| (0..re.len()).find(|&i| (re[i], im[i]) == *e).expect("found") as i64)
        .collect();
    let idx = Tensor::from_slice(&idx);
    let weighted = phi * b.squeeze_dim(1).unsqueeze(0);
    (lambda.index_select(0, &idx), weighted.index_select(1, &idx))
}

/// Complex → (…, 2) real, for `close`.
fn ri(t: &Tensor) -> Tensor {
    t.resolve_conj().contiguous().view_as_real().contiguous()
}

/// `ml::dmd` at every row layout (zero-row ranks included), both layouts, on a planted linear
/// system with six modes: eigenvalues recovered within 1e-8 (f64, no noise), the forecast equal
/// to the true continuation and the reconstruction to the input (1e-8 relative), eigenvalues
/// and Φ diag(b) equal to the single-process reference (tch on the gathered snapshots, 1e-8);
/// the continuous-time eigenvalues; rank by energy; and the errors.
fn check_dmd(c: &mut Checker) {
    use engine::ml::dmd::{DmdOptions, Layout, Rank, fit};
    let comm = c.comm;
    let p = comm.size();
    let opts = |rank| DmdOptions { rank, dt: 0.5 };
    // Rows: 53 snapshots of 10 values; columns: 40 state points, 15 snapshots.
    for (layout_kind, state, m) in [(Layout::Rows, 10i64, 53i64), (Layout::Columns, 40, 15)] {
        let (all, planted) = planted_system(state, m + 5, 910 + state);
        let data = all.narrow(0, 0, m); // m × state
        let future = all.narrow(0, m, 5);
        let planted = dmd_order(planted);
        let want_eig =
            Tensor::from_slice(&planted.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>()).reshape([6, 2]);
        let (ref_lambda, ref_weighted) = dmd_reference(&data.tr(), 6);
        let (matrix, split_len) = match layout_kind {
            Layout::Rows => (data.shallow_clone(), m),
            Layout::Columns => (data.tr().contiguous(), state),
        };
        let lname = if layout_kind == Layout::Rows { "rows" } else { "columns" };
        for name in LAYOUTS {
            let tag = format!("dmd/{lname}/{name}");
            let counts = layout(name, split_len, p);
            let a = pieces(comm, &matrix, 0, &counts).expect("pieces");
            let d = match fit(&a, layout_kind, &opts(Rank::Fixed(6))) {
                Ok(d) => d,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            c.close(
                &format!("{tag}/eigenvalues"),
                Ok::<_, String>(ri(&d.eigenvalues)),
                &want_eig,
                1e-8,
            );
            c.close(
                &format!("{tag}/reference_eigenvalues"),
                Ok::<_, String>(ri(&d.eigenvalues)),
                &ri(&ref_lambda),
                1e-8,
            );
            let off = offsets(&counts)[comm.rank()];
            let mine = counts[comm.rank()];
            // Φ diag(b): rows of the state that this rank holds (all of it for Rows).
            let weighted = &d.modes * d.amplitudes.unsqueeze(0);
            let want_w = match layout_kind {
                Layout::Rows => ref_weighted.shallow_clone(),
                Layout::Columns => ref_weighted.narrow(0, off, mine),
            };
            c.close(
                &format!("{tag}/modes_times_amplitudes"),
                Ok::<_, String>(ri(&weighted)),
                &ri(&want_w),
                1e-8,
            );
            let (want_rec, want_fc) = match layout_kind {
                Layout::Rows => (data.narrow(0, off, mine), future.shallow_clone()),
                Layout::Columns => (data.tr().narrow(0, off, mine), future.tr().narrow(0, off, mine)),
            };
            c.close(&format!("{tag}/reconstruction"), d.reconstruction(), &want_rec, 1e-8);
            c.close(&format!("{tag}/forecast"), d.forecast(5), &want_fc, 1e-8);
            let omega = d.continuous_eigenvalues();
            c.close(
                &format!("{tag}/continuous"),
                Ok::<_, String>(ri(&omega)),
                &ri(&(ref_lambda.log() / 0.5)),
                1e-8,
            );
        }
        // Rank by energy: all six modes carry energy, so a fraction just below 1 keeps six.
        let a = pieces(comm, &matrix, 0, &layout("ramp", split_len, p)).expect("pieces");
        let r = fit(&a, layout_kind, &opts(Rank::Energy(1.0 - 1e-12))).map(|d| d.rank());
        c.check(
            &format!("dmd/{lname}/energy"),
            r.as_ref().is_ok_and(|&r| r == 6),
            || format!("{r:?}"),
        );
        let r1 = fit(&a, layout_kind, &opts(Rank::Energy(1e-9))).map(|d| d.rank());
        c.check(
            &format!("dmd/{lname}/energy_small"),
            r1.as_ref().is_ok_and(|&r| r == 1),
            || format!("{r1:?}"),
        );
        let q = state.min(m - 1);
        for (rank, dt, want) in [
            (
                Rank::Fixed(0),
                0.5,
                "dmd: rank = 0 is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1)".to_string(),
            ),
            (
                Rank::Fixed(q + 1),
                0.5,
                format!(
                    "dmd: rank = {} is out of range; expected 1 ≤ rank ≤ min(state size, snapshots − 1) = {q}",
                    q + 1
                ),
            ),
            (
                Rank::Fixed(7),
                0.5,
                "dmd: rank = 7 exceeds the numerical rank of the snapshots (6)".to_string(),
            ),
            (
                Rank::Energy(1.5),
                0.5,
                "dmd: energy = 1.5 is out of range; expected 0 < energy ≤ 1".to_string(),
            ),
            (Rank::Fixed(2), 0.0, "dmd: dt = 0 must be a positive number".to_string()),
        ] {
            let e = fit(&a, layout_kind, &DmdOptions { rank, dt })
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            c.check(&format!("dmd/{lname}/error/{want}"), e.contains(&want), || e.clone());
        }
    }
    // One snapshot is not a sequence.
    let one = pieces(comm, &reference(&[1, 4], 5, Kind::Double), 0, &layout("last", 1, p)).expect("pieces");
    let e = fit(
        &one,
        Layout::Rows,
        &DmdOptions {
            rank: Rank::Optimal,
            dt: 1.0,
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    c.check(
        "dmd/error/one_snapshot",
        e.contains("dmd: needs at least 2 snapshots; the input has 1"),
        || e.clone(),
    );
}

/// `linalg::tsqr` and `linalg::tsqr_r` at every row layout (zero-row ranks included): tall
/// with several accumulation blocks per rank (9,000 rows), small, and wide (n < d), against
/// tch's QR of the gathered matrix (R with a non-negative diagonal) within 1e-10; Q·R = A and
/// QᵀQ = I within 1e-10; Q split like A; R-only equals R of the full factorisation (1e-12);
/// the algorithm is CholeskyQR2 for the well-conditioned tall inputs and Householder for the
/// wide one; f32 stays f32. Then [`check_tsqr_conditioning`].
fn check_tsqr(c: &mut Checker) {
    use engine::linalg::{QrAlgorithm, tsqr_r_reporting, tsqr_reporting};
    let comm = c.comm;
    let p = comm.size();
    for (n, d) in [(9000i64, 6i64), (37, 5), (4, 9)] {
        let want_how = if n >= d {
            QrAlgorithm::CholeskyQr2
        } else {
            QrAlgorithm::Householder
        };
        let x = reference(&[n, d], 40 + n, Kind::Double);
        let (_, r) = Tensor::linalg_qr(&x, "reduced");
        let signs = r.diagonal(0, 0, 1).ge(0.0).to_kind(Kind::Double) * 2.0 - 1.0;
        let want_r = &r * signs.unsqueeze(1);
        let m = n.min(d);
        for name in LAYOUTS {
            let tag = format!("linalg/tsqr/{n}x{d}/{name}");
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            let r_only = tsqr_r_reporting(&a).map(|(r, how)| {
                c.check(&format!("{tag}/r_only_algorithm"), how == want_how, || {
                    format!("{how:?}, expected {want_how:?}")
                });
                r
            });
            c.close(
                &format!("{tag}/r_only"),
                r_only.as_ref().map(|r| r.shallow_clone()),
                &want_r,
                1e-10,
            );
            match tsqr_reporting(&a) {
                Ok((q, r, how)) => {
                    c.check(&format!("{tag}/algorithm"), how == want_how, || {
                        format!("{how:?}, expected {want_how:?}")
                    });
                    c.close(&format!("{tag}/r"), Ok::<_, String>(r.shallow_clone()), &want_r, 1e-10);
                    if let Ok(r1) = &r_only {
                        c.close(
                            &format!("{tag}/r_only_equals_r"),
                            Ok::<_, String>(r1.shallow_clone()),
                            &r,
                            1e-12,
                        );
                    }
                    c.check(&format!("{tag}/q_split"), q.counts() == a.counts(), || {
                        "Q not split like A".into()
                    });
                    let qg = q.allgather().expect("allgather Q");
                    c.close(&format!("{tag}/qr"), Ok::<_, String>(qg.matmul(&r)), &x, 1e-10);
                    c.close(
                        &format!("{tag}/q_orthonormal"),
                        Ok::<_, String>(qg.tr().matmul(&qg)),
                        &Tensor::eye(m, (Kind::Double, Device::Cpu)),
                        1e-10,
                    );
                }
                Err(e) => c.check(&format!("{tag}/run"), false, || e.to_string()),
            }
        }
    }
    let x = reference(&[5000, 4], 77, Kind::Float);
    let a = pieces(comm, &x, 0, &layout("ramp", 5000, p)).expect("pieces");
    let r = engine::linalg::tsqr_r(&a);
    c.check(
        "linalg/tsqr/f32/kind",
        r.as_ref().map(|r| r.kind() == Kind::Float).unwrap_or(false),
        || format!("{:?}", r.map(|r| r.kind())),
    );
    check_tsqr_conditioning(c);
}

/// TSQR on known spectra at every row layout: κ = 10⁶ stays on CholeskyQR2, κ = 10¹² and a
/// rank-deficient matrix (rank 3 of 5 columns) fall back to Householder; in every case
/// Q·R = A and QᵀQ = I within 1e-10, σ(R) = σ(A) within 1e-12 (σ₁ = 1), R-only Rᵀ R equals the
/// full factorisation's within 1e-12, and both calls report the algorithm expected.
fn check_tsqr_conditioning(c: &mut Checker) {
    use engine::linalg::{QrAlgorithm, tsqr_r_reporting, tsqr_reporting};
    let comm = c.comm;
    let p = comm.size();
    let cases: [(&str, &[f64], QrAlgorithm); 3] = [
        (
            "kappa1e6",
            &[1.0, 0.3, 1e-2, 1e-3, 1e-5, 1e-6],
            QrAlgorithm::CholeskyQr2,
        ),
        (
            "kappa1e12",
            &[1.0, 0.1, 1e-3, 1e-6, 1e-9, 1e-12],
            QrAlgorithm::Householder,
        ),
        ("rank3of6", &[1.0, 0.5, 0.25, 0.0, 0.0, 0.0], QrAlgorithm::Householder),
    ];
    let (n, d) = (3000i64, 6i64);
    for (case, sigma, want_how) in cases {
        let x = with_spectrum(n, d, sigma, 900);
        let want_s = Tensor::from_slice(sigma);
        for name in LAYOUTS {
            let tag = format!("linalg/tsqr/{case}/{name}");
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            let (r_only, how_r) = match tsqr_r_reporting(&a) {
                Ok(v) => v,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            let (q, r, how) = match tsqr_reporting(&a) {
                Ok(v) => v,
                Err(e) => {
                    c.check(&format!("{tag}/run"), false, || e.to_string());
                    continue;
                }
            };
            c.check(
                &format!("{tag}/algorithm"),
                how == want_how && how_r == want_how,
                || format!("tsqr {how:?}, tsqr_r {how_r:?}, expected {want_how:?}"),
            );
            let qg = q.allgather().expect("allgather Q");
            c.close(&format!("{tag}/qr"), Ok::<_, String>(qg.matmul(&r)), &x, 1e-10);
            c.close(
                &format!("{tag}/q_orthonormal"),
                Ok::<_, String>(qg.tr().matmul(&qg)),
                &Tensor::eye(d, (Kind::Double, Device::Cpu)),
                1e-10,
            );
            c.close(
                &format!("{tag}/singular_values"),
                Ok::<_, String>(r_only.svd(true, true).1),
                &want_s,
                1e-12,
            );
            // R itself is ill-determined at κ = 10¹² (and below the rank); RᵀR = AᵀA is not.
            c.close(
                &format!("{tag}/r_only_gram"),
                Ok::<_, String>(r_only.tr().matmul(&r_only)),
                &r.tr().matmul(&r),
                1e-12,
            );
        }
    }
}

/// `linalg::svd` at every row layout (zero-row ranks included): known spectra (tall and wide,
/// d > n), exact methods against tch on the gathered matrix (σ within 1e-10 relative,
/// reconstruction and orthogonality of U and V within 1e-10), randomized and hierarchical on
/// a rank-3 matrix, f32, and the errors.
fn check_svd(c: &mut Checker) {
    use engine::linalg::{Method, svd};
    let comm = c.comm;
    let p = comm.size();
    let sigma = [9.0, 4.0, 2.5, 1.0, 0.5, 0.25, 0.125, 0.0625];
    let eye = |k: i64| Tensor::eye(k, (Kind::Double, Device::Cpu));
    // Full rank tall, full rank wide (d > n), and rank 3 of 30 (where every method is exact).
    for (n, d, rank) in [(61i64, 8i64, 8usize), (6, 15, 6), (40, 30, 3)] {
        let x = with_spectrum(n, d, &sigma[..rank], 700 + n);
        let k = rank as i64;
        // torch.svd (reduced) of the gathered matrix: (U, S, V).
        let (bu, want_s, bv) = x.svd(true, true);
        let methods = [
            ("tsqr", Method::Tsqr, k, 1e-10),
            ("auto", Method::Auto, k, 1e-10),
            (
                "randomized",
                Method::Randomized {
                    oversamples: 5,
                    power_iter: 2,
                    seed: 3,
                },
                k,
                1e-8,
            ),
            ("hierarchical", Method::Hierarchical { oversamples: 2 }, k, 1e-8),
        ];
        for name in LAYOUTS {
            let a = pieces(comm, &x, 0, &layout(name, n, p)).expect("pieces");
            for (mname, method, k, tol) in &methods {
                let tag = format!("linalg/svd/{n}x{d}/{mname}/{name}");
                let r = match svd(&a, *k, *method, true) {
                    Ok(r) => r,
                    Err(e) => {
                        c.check(&format!("{tag}/run"), false, || e.to_string());
                        continue;
                    }
                };
                c.close(
                    &format!("{tag}/s"),
                    Ok::<_, String>(r.s.shallow_clone()),
                    &want_s.narrow(0, 0, *k),
                    *tol,
                );
                let Some(du) = r.u.as_ref() else {
                    c.check(&format!("{tag}/u"), false, || "no U".into());
                    continue;
                };
                let u = du.allgather().expect("allgather U");
                let approx = u.matmul(&r.s.diag(0)).matmul(&r.v.tr());
                let kk = *k;
                let want_x = bu
                    .narrow(1, 0, kk)
                    .matmul(&want_s.narrow(0, 0, kk).diag(0))
                    .matmul(&bv.narrow(1, 0, kk).tr());
                c.close(&format!("{tag}/reconstruction"), Ok::<_, String>(approx), &want_x, *tol);
                c.close(
                    &format!("{tag}/u_orthonormal"),
                    Ok::<_, String>(u.tr().matmul(&u)),
                    &eye(kk),
                    *tol,
                );
                c.close(
                    &format!("{tag}/v_orthonormal"),
                    Ok::<_, String>(r.v.tr().matmul(&r.v)),
                    &eye(kk),
                    *tol,
                );
                c.check(&format!("{tag}/u_split"), du.counts() == a.counts(), || {
                    "U not split like X".into()
                });
            }
        }
    }
    // f32: U in float32, σ close to the f64 values.
    let x = with_spectrum(50, 7, &sigma[..6], 900);
    let a = pieces(comm, &x.to_kind(Kind::Float), 0, &layout("ramp", 50, p)).expect("pieces");
    let r = svd(&a, 4, Method::Tsqr, true);
    c.check(
        "linalg/svd/f32/kind",
        r.as_ref()
            .map(|r| r.u.as_ref().map(|u| u.kind()) == Some(Kind::Float))
            .unwrap_or(false),
        || "U dtype".into(),
    );
    let no_u = svd(&a, 4, Method::Tsqr, false);
    c.check(
        "linalg/svd/without_u",
        no_u.as_ref().map(|r| r.u.is_none()).unwrap_or(false),
        || "U computed".into(),
    );
    c.close(
        "linalg/svd/f32/s",
        r.map(|r| r.s),
        &Tensor::from_slice(&sigma[..4]),
        1e-5,
    );
    // Errors, the same on every rank.
    let a = pieces(comm, &x, 0, &layout("balanced", 50, p)).expect("pieces");
    for (k, method, want) in [
        (0, Method::Tsqr, "svd: k = 0 is out of range; expected k ≥ 1"),
        (8, Method::Auto, "svd: k = 8 exceeds min(rows, columns) = 7"),
        (
            2,
            Method::Hierarchical { oversamples: -1 },
            "svd: oversamples and power_iter must be ≥ 0",
        ),
    ] {
        let msg = svd(&a, k, method, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        c.check(&format!("linalg/svd/error/{want}"), msg.contains(want), || msg.clone());
    }
}

/// `linalg::matmul` (A·B, both row-split: the ring) and `linalg::matmul_tn` (Aᵀ·B) on every
/// pair of row layouts (zero-row ranks included), wide and tall shapes, f64 and f32, against
/// tch on the gathered operands; and their errors.
fn check_split_matmul(c: &mut Checker) {
    use engine::linalg::{matmul, matmul_tn};
    let comm = c.comm;
    let p = comm.size();
    // (n, k, m): tall, wide (k > n), fewer rows of B than ranks, a single column.
    for (n, k, m) in [(37i64, 6i64, 5i64), (5, 23, 4), (29, 3, 7), (11, 9, 1)] {
        for kind in [Kind::Double, Kind::Float] {
            let tol = if kind == Kind::Double { 1e-12 } else { 1e-5 };
            let a = reference(&[n, k], 300 + n, kind);
            let b = reference(&[k, m], 400 + k, kind);
            let bt = reference(&[n, m], 500 + m, kind);
            let want = a.to_kind(Kind::Double).matmul(&b.to_kind(Kind::Double));
            let want_tn = a.to_kind(Kind::Double).tr().matmul(&bt.to_kind(Kind::Double));
            for la in LAYOUTS {
                for lb in LAYOUTS {
                    let tag = format!("linalg/matmul/{n}x{k}x{m}/{kind:?}/{la}-{lb}");
                    let da = pieces(comm, &a, 0, &layout(la, n, p)).expect("pieces");
                    let db = pieces(comm, &b, 0, &layout(lb, k, p)).expect("pieces");
                    let got = matmul(&da, &db);
                    let counts_kept = got.as_ref().map(|g| g.counts() == da.counts()).unwrap_or(false);
                    c.check(&format!("{tag}/counts"), counts_kept, || {
                        "result not split like A".into()
                    });
                    c.close(
                        &tag,
                        got.and_then(|g| g.allgather()).map(|t| t.to_kind(Kind::Double)),
                        &want,
                        tol,
                    );
                    let dbt = pieces(comm, &bt, 0, &layout(lb, n, p)).expect("pieces");
                    c.close(
                        &format!("linalg/matmul_tn/{n}x{k}x{m}/{kind:?}/{la}-{lb}"),
                        matmul_tn(&da, &dbt).map(|t| t.to_kind(Kind::Double)),
                        &want_tn,
                        tol,
                    );
                }
            }
        }
    }
    // Errors, the same on every rank.
    let a = pieces(comm, &reference(&[8, 3], 1, Kind::Double), 0, &layout("ramp", 8, p)).expect("pieces");
    let b = pieces(comm, &reference(&[4, 2], 2, Kind::Double), 0, &layout("balanced", 4, p)).expect("pieces");
    let b32 = pieces(comm, &reference(&[3, 2], 3, Kind::Float), 0, &layout("first", 3, p)).expect("pieces");
    let rep = DNDarray::from_replicated(&reference(&[3, 2], 4, Kind::Double), None).expect("replicated");
    for (tag, got, want) in [
        (
            "inner",
            matmul(&a, &b).err(),
            "matmul: cannot multiply 8 × 3 by 4 × 2: inner dimensions must agree (3 ≠ 4)",
        ),
        ("dtype", matmul(&a, &b32).err(), "operands have dtypes Double and Float"),
        (
            "layout",
            matmul(&a, &rep).err(),
            "expected rows × columns split along rows",
        ),
        (
            "tn_rows",
            matmul_tn(&a, &b).err(),
            "Aᵀ·B needs operands with the same rows; they have 8 and 4",
        ),
    ] {
        let msg = got.map(|e: engine::EngineError| e.to_string()).unwrap_or_default();
        c.check(&format!("linalg/matmul/error/{tag}"), msg.contains(want), || {
            msg.clone()
        });
    }
}

fn run_all(c: &mut Checker) {
    check_comm(c);
    check_pca(c);
    check_kmeans(c);
    check_split_matmul(c);
    check_tsqr(c);
    check_svd(c);
    check_dmd(c);
    let p = c.comm.size() as i64;
    // Shapes include fewer rows than ranks (3 rows on 4 ranks) and an empty array.
    for (i, shape) in [
        vec![3i64, 4],
        vec![17, 5],
        vec![4, 3, 5],
        vec![0, 3],
        vec![2 * p + 1, 2],
    ]
    .iter()
    .enumerate()
    {
        let x = reference(shape, 100 + i as i64, Kind::Double);
        let name = format!("f64{shape:?}");
        check_layouts(c, &x, &name);
        check_reductions(c, &x, &name, 1e-12);
        if shape.len() == 2 && shape[0] > 0 {
            let y = reference(shape, 200 + i as i64, Kind::Double);
            check_binary(c, &x, &y, &name);
            check_matmul(c, &x, &name, 1e-12);
        }
    }
    // Integers with many ties (exact reductions, first-index argmin), booleans, f32.
    let xi = (reference(&[11, 4], 9, Kind::Double) * 1.5)
        .round()
        .to_kind(Kind::Int64);
    check_layouts(c, &xi, "i64[11, 4]");
    check_reductions(c, &xi, "i64[11, 4]", 0.0);
    let xb = reference(&[7, 3], 10, Kind::Double).gt(0.3);
    check_layouts(c, &xb, "bool[7, 3]");
    let xf = reference(&[13, 6], 12, Kind::Float);
    check_layouts(c, &xf, "f32[13, 6]");
    check_reductions(c, &xf, "f32[13, 6]", 1e-5);
    check_binary(c, &xf, &reference(&[13, 6], 13, Kind::Float), "f32[13, 6]");
    check_matmul(c, &xf, "f32[13, 6]", 1e-5);
    // NaN handling in reductions (NaN propagates through min/max; argmin finds the first NaN).
    let mut xn = reference(&[9, 3], 14, Kind::Double);
    let _ = xn.get(6).get(1).fill_(f64::NAN);
    let _ = xn.get(2).get(1).fill_(f64::NAN);
    check_reductions(c, &xn, "nan[9, 3]", 1e-12);
    let _ = &mut xn;
    check_factories(c);
    check_pieces_errors(c);
}

/// One rank fails inside an operation; every rank reports the same error and exits with 3.
fn run_fail(comm: &Comm, what: &str) -> ! {
    let (p, me) = (comm.size(), comm.rank());
    let fail = p - 1;
    let result: engine::Result<()> = match what {
        "fail-matmul" => {
            let x = DNDarray::randn(&[40, 6], Some(0), 1, F64).expect("randn");
            // Every rank should hold the same 6 × 2 operand; the failing rank's is 5 × 2.
            let b = Tensor::ones([if me == fail { 5 } else { 6 }, 2], F64);
            x.matmul(&b).map(|_| ())
        }
        _ => {
            // The failing rank's piece has another dtype.
            let kind = if me == fail { Kind::Float } else { Kind::Double };
            DNDarray::from_pieces(Tensor::zeros([3, 2], (kind, Device::Cpu)), 0)
                .and_then(|a| a.balance())
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => {
            println!("rank {me}/{p}: no error");
            std::process::exit(0)
        }
        Err(e) => {
            // One write per line, so mpirun does not interleave ranks' lines.
            let line = format!("rank {me}/{p}: error: {e}\n");
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).ok();
            std::process::exit(3)
        }
    }
}

fn main() {
    let comm = Comm::world();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let suite = args.first().map(String::as_str).unwrap_or("all");
    match suite {
        "digest" => {
            let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            for split in [Some(0), Some(1), None] {
                let a = DNDarray::randn(&[23, 7], split, seed, F64).expect("randn");
                let g = a.allgather().expect("allgather");
                let sum = g.sum(None::<Kind>).double_value(&[]);
                let wsum = (&g * Tensor::arange(23 * 7, F64).reshape([23, 7]))
                    .sum(None::<Kind>)
                    .double_value(&[]);
                if comm.rank() == 0 {
                    println!("digest split={split:?} sum={sum:.17e} weighted={wsum:.17e}");
                }
            }
        }
        "fail-matmul" | "fail-pieces" => run_fail(comm, suite),
        "all" => {
            let mut c = Checker {
                comm,
                passed: 0,
                failed: 0,
                verbose: args.iter().any(|a| a == "-v"),
            };
            run_all(&mut c);
            if comm.rank() == 0 {
                println!(
                    "engine checks at P={}: {} passed, {} failed",
                    comm.size(),
                    c.passed,
                    c.failed
                );
            }
            if c.failed > 0 {
                std::process::exit(1);
            }
        }
        other => {
            eprintln!("unknown suite '{other}'; expected all, digest SEED, fail-matmul or fail-pieces");
            std::process::exit(2);
        }
    }
}
