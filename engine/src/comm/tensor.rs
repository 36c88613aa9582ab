//! Collectives and messages on `tch` tensors (f32, f64, i64 and bool).
//!
//! Tensors are staged through host memory: a CUDA tensor is copied to the CPU, a non-contiguous
//! tensor is made contiguous, and results are returned on the input's device (received tensors
//! with no local input are on the CPU). Before moving data, ranks exchange each tensor's dtype
//! and shape, so a mismatch across ranks is the same clear error on every rank, never a hang or
//! a garbled buffer.

use tch::{Device, Kind, Tensor};

use super::{Comm, CommError, CommResult, ReduceOp};
use crate::device::MoveTo;

/// Most dimensions a tensor may have to pass through the collectives.
pub const MAX_DIMS: usize = 8;
const META_LEN: usize = 2 + MAX_DIMS;
/// A rank's meta code for "no valid input here" (the error is then raised on every rank).
const NO_INPUT: i64 = -1;

fn kind_code(kind: Kind) -> Option<i64> {
    match kind {
        Kind::Float => Some(1),
        Kind::Double => Some(2),
        Kind::Int64 => Some(3),
        Kind::Bool => Some(4),
        _ => None,
    }
}

fn code_kind(code: i64) -> Kind {
    match code {
        1 => Kind::Float,
        2 => Kind::Double,
        3 => Kind::Int64,
        _ => Kind::Bool,
    }
}

/// dtype code, number of dimensions and dimensions of a tensor, or why it cannot be sent.
fn meta(op: &'static str, t: &Tensor) -> Result<[i64; META_LEN], String> {
    let code = kind_code(t.kind())
        .ok_or_else(|| format!("{op}: dtype {:?} is not supported (f32, f64, i64 or bool)", t.kind()))?;
    let size = t.size();
    if size.len() > MAX_DIMS {
        return Err(format!(
            "{op}: {} dimensions exceed the limit of {MAX_DIMS}",
            size.len()
        ));
    }
    let mut m = [0i64; META_LEN];
    m[0] = code;
    m[1] = size.len() as i64;
    m[2..2 + size.len()].copy_from_slice(&size);
    Ok(m)
}

fn meta_shape(m: &[i64]) -> Vec<i64> {
    m[2..2 + m[1] as usize].to_vec()
}

/// The host, contiguous version of `t` (no copy when it already is).
pub fn host_contiguous(t: &Tensor) -> Tensor {
    let t = if t.device() == Device::Cpu {
        t.shallow_clone()
    } else {
        t.moved_to(Device::Cpu)
    };
    if t.is_contiguous() { t } else { t.contiguous() }
}

/// Runs `$body` with `$T` bound to the Rust element type of `$kind`.
macro_rules! with_elem {
    ($kind:expr, $T:ident => $body:expr) => {
        match $kind {
            Kind::Float => {
                type $T = f32;
                $body
            }
            Kind::Double => {
                type $T = f64;
                $body
            }
            Kind::Int64 => {
                type $T = i64;
                $body
            }
            _ => {
                type $T = u8;
                $body
            }
        }
    };
}

/// Views a host, contiguous tensor's storage as a slice.
///
/// # Safety
/// `t` must be a CPU contiguous tensor whose element type has the size and layout of `T`.
unsafe fn view<T>(t: &Tensor) -> &[T] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees layout; the tensor outlives the borrow.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) }
}

/// Views a host, contiguous tensor's storage as a mutable slice.
///
/// # Safety
/// As [`view`], and no other view of the storage may be alive.
#[allow(clippy::mut_from_ref)]
unsafe fn view_mut<T>(t: &Tensor) -> &mut [T] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    // SAFETY: as above; the tensor was freshly allocated by the caller.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, n) }
}

/// A new host tensor holding `data` with `shape` and dtype `kind`.
fn from_vec<T: super::CommElement>(data: &[T], shape: &[i64], kind: Kind) -> Tensor {
    let t = Tensor::empty(shape, (kind, Device::Cpu));
    // SAFETY: `t` is a fresh contiguous CPU tensor of `kind`, whose element is `T`.
    unsafe { view_mut::<T>(&t) }.copy_from_slice(data);
    t
}

impl Comm {
    /// Allgathers every rank's meta (or its local error), and returns them or the agreed error.
    fn exchange_meta(&self, local: Result<[i64; META_LEN], String>) -> CommResult<Vec<[i64; META_LEN]>> {
        let (m, err) = match local {
            Ok(m) => (m, None),
            Err(e) => ([NO_INPUT; META_LEN], Some(e)),
        };
        let all = self.allgather(&m)?;
        let metas: Vec<[i64; META_LEN]> = all
            .chunks(META_LEN)
            .map(|c| c.try_into().expect("chunk of META_LEN"))
            .collect();
        if let Some(r) = metas.iter().position(|m| m[0] == NO_INPUT) {
            let msg = if r == self.rank {
                err.unwrap_or_default().into_bytes()
            } else {
                Vec::new()
            };
            let msg = self.bcast_vec(msg, r)?;
            return Err(CommError::Agreed {
                rank: r,
                message: String::from_utf8_lossy(&msg).into_owned(),
            });
        }
        Ok(metas)
    }

    /// Checks that every rank's tensor has rank 0's dtype and, when `same_shape`, its shape;
    /// otherwise that the dimensions after the first agree. Same verdict on every rank.
    fn check_metas(&self, op: &'static str, metas: &[[i64; META_LEN]], same_shape: bool) -> CommResult<()> {
        let m0 = &metas[0];
        for (r, m) in metas.iter().enumerate() {
            if m[0] != m0[0] {
                return Err(CommError::invalid(
                    op,
                    format!(
                        "rank {r} has dtype {:?} but rank 0 has {:?}",
                        code_kind(m[0]),
                        code_kind(m0[0])
                    ),
                ));
            }
            let (s, s0) = (meta_shape(m), meta_shape(m0));
            let ok = if same_shape {
                s == s0
            } else {
                !s.is_empty() && s.len() == s0.len() && s[1..] == s0[1..]
            };
            if !ok {
                let want = if same_shape {
                    "the same shape"
                } else {
                    "at least one dimension and equal trailing dimensions"
                };
                return Err(CommError::invalid(
                    op,
                    format!("rank {r} has shape {s:?} but rank 0 has {s0:?}; expected {want}"),
                ));
            }
        }
        Ok(())
    }

    /// Broadcasts `t` from `root` (other ranks pass `None` or anything; it is ignored).
    /// Non-root ranks receive a CPU tensor; the root gets its input back.
    pub fn bcast_tensor(&self, t: Option<&Tensor>, root: usize) -> CommResult<Tensor> {
        self.check_rank("bcast_tensor", "root", root)?;
        let mut m = [NO_INPUT; META_LEN];
        if self.rank == root
            && let Some(mm) = t.and_then(|t| meta("bcast_tensor", t).ok())
        {
            m = mm;
        }
        self.bcast(&mut m, root)?;
        if m[0] == NO_INPUT {
            return Err(CommError::invalid(
                "bcast_tensor",
                format!("root rank {root} has no tensor of a supported dtype (f32, f64, i64, bool) to broadcast"),
            ));
        }
        let kind = code_kind(m[0]);
        let shape = meta_shape(&m);
        let buf = if self.rank == root {
            host_contiguous(t.expect("root has a tensor"))
        } else {
            Tensor::empty(shape.as_slice(), (kind, Device::Cpu))
        };
        with_elem!(kind, T => {
            // SAFETY: `buf` is a host contiguous tensor of `kind`, and no other view is alive.
            self.bcast(unsafe { view_mut::<T>(&buf) }, root)?;
        });
        Ok(if self.rank == root {
            t.expect("root has a tensor").shallow_clone()
        } else {
            buf
        })
    }

    /// Element-wise reduction of a tensor of the same shape and dtype on every rank; returns the
    /// result on the input's device. Bool tensors reduce with `Min` (all) and `Max` (any).
    pub fn allreduce_tensor(&self, t: &Tensor, op: ReduceOp) -> CommResult<Tensor> {
        let name = "allreduce_tensor";
        let local = meta(name, t).and_then(|m| {
            if t.kind() == Kind::Bool && op == ReduceOp::Sum {
                Err(format!(
                    "{name}: bool tensors reduce with min (all) or max (any), not sum"
                ))
            } else {
                Ok(m)
            }
        });
        let metas = self.exchange_meta(local)?;
        self.check_metas(name, &metas, true)?;
        let h = host_contiguous(t);
        let out = with_elem!(t.kind(), T => {
            // SAFETY: `h` is host contiguous of the matching kind.
            let r = self.allreduce(unsafe { view::<T>(&h) }, op)?;
            from_vec(&r, &t.size(), t.kind())
        });
        Ok(out.moved_to(t.device()))
    }

    /// Concatenates every rank's tensor along dimension 0, in rank order, on every rank.
    /// Dimensions after the first must agree; a rank may contribute zero rows.
    pub fn allgatherv_tensor(&self, t: &Tensor) -> CommResult<Tensor> {
        let name = "allgatherv_tensor";
        let metas = self.exchange_meta(meta(name, t))?;
        self.check_metas(name, &metas, false)?;
        let h = host_contiguous(t);
        let out = with_elem!(t.kind(), T => {
            // SAFETY: `h` is host contiguous of the matching kind.
            let (v, _) = self.allgatherv(unsafe { view::<T>(&h) })?;
            let mut shape = t.size();
            shape[0] = metas.iter().map(|m| m[2]).sum();
            from_vec(&v, &shape, t.kind())
        });
        Ok(out.moved_to(t.device()))
    }

    /// Concatenates every rank's tensor along dimension 0 on `root` (`None` elsewhere).
    pub fn gatherv_tensor(&self, t: &Tensor, root: usize) -> CommResult<Option<Tensor>> {
        let name = "gatherv_tensor";
        self.check_rank(name, "root", root)?;
        let metas = self.exchange_meta(meta(name, t))?;
        self.check_metas(name, &metas, false)?;
        let h = host_contiguous(t);
        let out = with_elem!(t.kind(), T => {
            // SAFETY: `h` is host contiguous of the matching kind.
            self.gatherv(unsafe { view::<T>(&h) }, root)?.map(|(v, _)| {
                let mut shape = t.size();
                shape[0] = metas.iter().map(|m| m[2]).sum();
                from_vec(&v, &shape, t.kind())
            })
        });
        Ok(out.map(|o| o.moved_to(t.device())))
    }

    /// Sends `chunks[r]` to rank `r` and returns the chunks received from ranks `0..size`.
    /// All chunks on all ranks share dtype and number of dimensions; their shapes may differ
    /// (and be empty). Shapes travel with the data. Results are on the device of `chunks[0]`.
    pub fn alltoallv_tensor(&self, chunks: &[Tensor]) -> CommResult<Vec<Tensor>> {
        let name = "alltoallv_tensor";
        let local = if chunks.len() != self.size {
            Err(format!("{name}: {} chunks given for {} ranks", chunks.len(), self.size))
        } else {
            meta(name, &chunks[0]).and_then(|m| {
                let (k, d) = (chunks[0].kind(), chunks[0].dim());
                match chunks.iter().position(|c| c.kind() != k || c.dim() != d) {
                    Some(i) => Err(format!(
                        "{name}: chunk {i} has dtype {:?} and {} dimensions, unlike chunk 0 ({k:?}, {d})",
                        chunks[i].kind(),
                        chunks[i].dim()
                    )),
                    None => Ok(m),
                }
            })
        };
        let metas = self.exchange_meta(local)?;
        if let Some(r) = metas.iter().position(|m| m[0] != metas[0][0] || m[1] != metas[0][1]) {
            return Err(CommError::invalid(
                name,
                format!(
                    "rank {r} sends {:?} chunks of {} dimensions but rank 0 sends {:?} of {}",
                    code_kind(metas[r][0]),
                    metas[r][1],
                    code_kind(metas[0][0]),
                    metas[0][1]
                ),
            ));
        }
        let (kind, device, ndim) = (chunks[0].kind(), chunks[0].device(), chunks[0].dim());
        // Shapes: block r of `shapes` is the shape of the chunk for rank r.
        let mut shapes = vec![0i64; self.size * MAX_DIMS];
        for (r, c) in chunks.iter().enumerate() {
            shapes[r * MAX_DIMS..r * MAX_DIMS + ndim].copy_from_slice(&c.size());
        }
        let recv_shapes = self.alltoall(&shapes)?;
        let flat: Vec<Tensor> = chunks.iter().map(|c| host_contiguous(c).reshape([-1])).collect();
        let send = Tensor::cat(&flat, 0);
        let counts: Vec<usize> = chunks.iter().map(|c| c.numel()).collect();
        with_elem!(kind, T => {
            // SAFETY: `send` is a fresh host contiguous tensor of the matching kind.
            let (v, rc) = self.alltoallv(unsafe { view::<T>(&send) }, &counts)?;
            let mut out = Vec::with_capacity(self.size);
            let mut at = 0;
            for (r, c) in rc.into_iter().enumerate() {
                let shape = &recv_shapes[r * MAX_DIMS..r * MAX_DIMS + ndim];
                out.push(from_vec(&v[at..at + c], shape, kind).moved_to(device));
                at += c;
            }
            Ok(out)
        })
    }

    /// Every rank's tensor dtype and shape, in rank order (one allgather). A tensor that cannot
    /// travel (unsupported dtype, too many dimensions) on any rank is an error on every rank.
    pub fn allgather_shapes(&self, op: &'static str, t: &Tensor) -> CommResult<Vec<(Kind, Vec<i64>)>> {
        let metas = self.exchange_meta(meta(op, t))?;
        Ok(metas.iter().map(|m| (code_kind(m[0]), meta_shape(m))).collect())
    }

    /// Point-to-point (not collective): sends `t` (dtype and shape included) to `dest`.
    pub fn send_tensor(&self, t: &Tensor, dest: usize, tag: i32) -> CommResult<()> {
        let m = meta("send_tensor", t).map_err(|e| CommError::invalid("send_tensor", e))?;
        self.send(&m, dest, tag)?;
        let h = host_contiguous(t);
        with_elem!(t.kind(), T => {
            // SAFETY: `h` is host contiguous of the matching kind.
            self.send(unsafe { view::<T>(&h) }, dest, tag)
        })
    }

    /// Point-to-point (not collective): [`Comm::exchange_while`] for tensors. Sends `t` to
    /// `dest` and receives from `src` a tensor of `shape` and `t`'s dtype (the caller knows
    /// it), on the CPU, running `work` meanwhile (`work` calls the `progress` callback it is
    /// given between pieces of its computation).
    pub fn exchange_tensor_while<R>(
        &self,
        t: &Tensor,
        dest: usize,
        shape: &[i64],
        src: usize,
        tag: i32,
        work: impl FnOnce(&mut dyn FnMut()) -> R,
    ) -> CommResult<(Tensor, R)> {
        let h = host_contiguous(t);
        let kind = t.kind();
        let out = Tensor::empty(shape, (kind, Device::Cpu));
        with_elem!(kind, T => {
            // SAFETY: `h` is host contiguous of `kind`; `out` is a fresh contiguous CPU tensor
            // of `kind` that nothing else views.
            let r = self.exchange_while(unsafe { view::<T>(&h) }, dest, unsafe { view_mut::<T>(&out) }, src, tag, work)?;
            Ok((out, r))
        })
    }

    /// Point-to-point (not collective): receives a tensor sent by [`Comm::send_tensor`] from
    /// `src` with `tag`, on the CPU.
    pub fn recv_tensor(&self, src: usize, tag: i32) -> CommResult<Tensor> {
        let m: Vec<i64> = self.recv(src, tag)?;
        if m.len() != META_LEN {
            return Err(CommError::invalid(
                "recv_tensor",
                format!("message from rank {src} is not a tensor header"),
            ));
        }
        let kind = code_kind(m[0]);
        with_elem!(kind, T => {
            let v: Vec<T> = self.recv(src, tag)?;
            Ok(from_vec(&v, &meta_shape(&m), kind))
        })
    }
}
