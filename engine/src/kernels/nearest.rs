//! The nearest centroid of every row of a local (rows × d) block: k-means' fused
//! distance → argmin → accumulate kernel for CPU tensors.
//!
//! For each block of [`BLOCK`] rows the squared distances to the k centroids are
//! ‖x‖² − 2·x·cᵀ + ‖c‖² (clamped at 0) — the GEMM form, computed in registers (groups of
//! [`LANES`] rows against tiles of [`TILE`] centroids, fused multiply-adds where the CPU has
//! them: AVX2 intrinsics, else portable code) — followed at once by the argmin (the first
//! centroid on ties) and, when asked, the per-cluster sums, counts and squared distances,
//! while the block is still in cache. Each row is read from memory once per call, and nothing
//! of size rows × k is ever stored: the tensor path it replaces (a GEMM per chunk, then a dozen
//! elementwise passes over chunk-sized temporaries) took about 0.27 s per pass over
//! 2,000,000 × 16 rows against k = 8 on one core; this kernel about 0.04 s.
//!
//! Column-major f64 rows (how tables load) are read in place unless their columns alias in
//! the cache; other rows are copied [`PACK`] at a time, column by column, into an f64 buffer
//! (any layout, f64 or f32; see [`pack`]). Rows are shared among
//! libtorch's intra-op threads in contiguous ranges; per-thread totals are added in thread
//! order.

use tch::Tensor;

use super::host::{Elements, HostMatrix};
use super::policy;
use super::simd::Variant;

/// Rows per block (a multiple of [`LANES`]; d columns of a block stay in L1/L2).
const BLOCK: usize = 256;
/// Rows copied per pack (a multiple of [`BLOCK`]): long runs of each column for the hardware
/// prefetcher.
const PACK: usize = 8 * BLOCK;
/// Leading dimension of the pack buffer: not a multiple of 4 KiB, so that the same rows of
/// different columns fall into different cache sets.
const PACK_LD: usize = PACK + LANES;
/// Rows per register group.
const LANES: usize = 8;
/// Centroids per register tile: 4 × LANES accumulators fill half of AVX2's registers.
const TILE: usize = 4;
/// Fewest rows per thread worth a thread.
const ROWS_PER_THREAD: usize = 32_768;

/// What to compute besides the assignment itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Need {
    /// Each row's nearest centroid.
    pub labels: bool,
    /// Each row's squared distance to it.
    pub sq: bool,
    /// Per-cluster sums, counts and squared distances.
    pub totals: bool,
}

/// Per-cluster sums (k × d, row-major), counts (k) and squared distances (k).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Totals {
    pub sums: Vec<f64>,
    pub counts: Vec<f64>,
    pub inertia: Vec<f64>,
}

impl Totals {
    fn zeros(k: usize, d: usize) -> Self {
        Totals {
            sums: vec![0.0; k * d],
            counts: vec![0.0; k],
            inertia: vec![0.0; k],
        }
    }

    fn add(&mut self, o: &Totals) {
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            *a += b;
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        for (a, b) in self.inertia.iter_mut().zip(&o.inertia) {
            *a += b;
        }
    }
}

/// The kernel's outputs: what [`Need`] asked for, empty otherwise.
#[derive(Debug, Default)]
pub(crate) struct Nearest {
    pub labels: Vec<i64>,
    pub sq: Vec<f64>,
    pub totals: Option<Totals>,
}

/// Rows `r0 .. r0 + len` of `m` read where they are, as `(data, ld)` with column j of the
/// rows at `data[j·ld ..]`, when that is safe and fast: f64, column-major, `len` a multiple of
/// LANES, and columns whose blocks spread over the L1 cache sets (at most 8 of a block's
/// columns on any 4 KiB-periodic set; see [`pack`] for the case where all share).
fn in_place<'a>(m: &HostMatrix<'a>, r0: usize, len: usize) -> Option<(&'a [f64], usize)> {
    let Elements::F64(v) = m.el else {
        return None;
    };
    if m.row_stride != 1 || !len.is_multiple_of(LANES) || !sets_spread(m) {
        return None;
    }
    // Column j of the rows ends at r0 + len − 1 + j·col_stride ≤ the extent.
    Some((&v[r0..], m.col_stride))
}

/// Whether the column blocks of `m` ([`BLOCK`] rows, 64-byte lines) put at most 8 lines on
/// any of the 64 line slots of a 4 KiB page (L1 sets repeat every 4 KiB).
fn sets_spread(m: &HostMatrix) -> bool {
    let lines = BLOCK * 8 / 64;
    let mut slots = [0usize; 64];
    for j in 0..m.cols {
        let first = (j * m.col_stride * 8 / 64) % 64;
        for l in 0..lines {
            slots[(first + l) % 64] += 1;
        }
    }
    slots.iter().all(|&n| n <= 8 * lines.div_ceil(64))
}

/// Rows `r0 .. r0 + len` (len ≤ PACK) of `m` copied into `buf` as the columns of a
/// column-major block (column j at `buf[j·PACK_LD ..]`, zero-padded to a multiple of LANES
/// rows).
///
/// Used for every layout [`in_place`] refuses. Column-major f64 too, when its columns alias:
/// the columns of a loaded table are n elements apart, and when n·8 bytes is a multiple of
/// 4 KiB (n = 2^20 rows, say) the same rows of every column fall into the same cache sets, so
/// reading a block of rows across the columns in place thrashes the caches (measured 1.5×
/// slower per row on 2^20 rows than on 951,424). Long runs per column into a buffer whose
/// leading dimension is not a multiple of 4 KiB avoid it.
fn pack(m: &HostMatrix, r0: usize, len: usize, buf: &mut [f64]) {
    let padded = len.div_ceil(LANES) * LANES;
    let (s0, s1) = m.strides();
    for j in 0..m.cols {
        let col = &mut buf[j * PACK_LD..j * PACK_LD + padded];
        let at = |i: usize| (r0 + i) * s0 + j * s1;
        match m.el {
            Elements::F64(v) if s0 == 1 => col[..len].copy_from_slice(&v[at(0)..at(0) + len]),
            Elements::F64(v) => col[..len].iter_mut().enumerate().for_each(|(i, o)| *o = v[at(i)]),
            Elements::F32(v) if s0 == 1 => col[..len]
                .iter_mut()
                .zip(&v[at(0)..at(0) + len])
                .for_each(|(o, x)| *o = *x as f64),
            Elements::F32(v) => col[..len]
                .iter_mut()
                .enumerate()
                .for_each(|(i, o)| *o = v[at(i)] as f64),
        }
        col[len..].fill(0.0);
    }
}

/// The centroids prepared for the kernel: transposed and zero-padded to tiles
/// (`ct[j·kp + c]`), and their squared norms.
struct Centroids {
    k: usize,
    kp: usize,
    d: usize,
    ct: Vec<f64>,
    c2: Vec<f64>,
}

impl Centroids {
    fn new(c: &[f64], k: usize, d: usize) -> Self {
        let kp = k.div_ceil(TILE) * TILE;
        let mut ct = vec![0.0; d * kp];
        let mut c2 = vec![0.0; kp];
        for ci in 0..k {
            for j in 0..d {
                let v = c[ci * d + j];
                ct[j * kp + ci] = v;
                c2[ci] += v * v;
            }
        }
        Centroids { k, kp, d, ct, c2 }
    }
}

/// Nearest centroid and squared distance of the `len` rows of one column-major block.
#[inline(always)]
fn block_nearest(x: &[f64], ld: usize, len: usize, c: &Centroids, label: &mut [u32; BLOCK], min: &mut [f64; BLOCK]) {
    let d = c.d;
    for g in 0..len.div_ceil(LANES) {
        let i0 = g * LANES;
        let col = |j: usize| -> &[f64; LANES] {
            let s = &x[j * ld + i0..j * ld + i0 + LANES];
            s.try_into().expect("LANES elements")
        };
        let mut x2 = [0.0; LANES];
        for j in 0..d {
            let v = col(j);
            for r in 0..LANES {
                x2[r] += v[r] * v[r];
            }
        }
        let mut best = [f64::INFINITY; LANES];
        let mut arg = [0u32; LANES];
        for cb in (0..c.kp).step_by(TILE) {
            let mut acc = [[0.0; LANES]; TILE];
            for j in 0..d {
                let v = col(j);
                let w: &[f64; TILE] = c.ct[j * c.kp + cb..][..TILE].try_into().expect("TILE elements");
                for t in 0..TILE {
                    for r in 0..LANES {
                        acc[t][r] += w[t] * v[r];
                    }
                }
            }
            for (t, a) in acc.iter().enumerate().take(c.k.saturating_sub(cb)) {
                let ci = cb + t;
                for r in 0..LANES {
                    let dist = (x2[r] - 2.0 * a[r] + c.c2[ci]).max(0.0);
                    if dist < best[r] {
                        best[r] = dist;
                        arg[r] = ci as u32;
                    }
                }
            }
        }
        label[i0..i0 + LANES].copy_from_slice(&arg);
        min[i0..i0 + LANES].copy_from_slice(&best);
    }
}

/// [`block_nearest`] with AVX2 + FMA intrinsics: each group of [`LANES`] rows is two 4-lane
/// registers, a tile of [`TILE`] centroids eight accumulators.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(
    x: &[f64],
    ld: usize,
    len: usize,
    c: &Centroids,
    label: &mut [u32; BLOCK],
    min: &mut [f64; BLOCK],
) {
    use std::arch::x86_64::*;
    let d = c.d;
    let groups = len.div_ceil(LANES);
    // Every load below reads LANES elements of a column inside the block (checked here once).
    assert!(d == 0 || (d - 1) * ld + groups * LANES <= x.len());
    assert!(c.ct.len() >= d * c.kp && c.c2.len() >= c.kp);
    let xp = x.as_ptr();
    let cp = c.ct.as_ptr();
    let zero = _mm256_setzero_pd();
    let two = _mm256_set1_pd(2.0);
    for g in 0..groups {
        let i0 = g * LANES;
        // SAFETY: all pointer arithmetic stays inside `x` and `c.ct` (asserted above).
        unsafe {
            let (mut q0, mut q1) = (zero, zero);
            for j in 0..d {
                let p = xp.add(j * ld + i0);
                // The same rows two blocks on: memory streams in while this block computes
                // (a prefetch never faults; the address is only formed, not dereferenced).
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(2 * BLOCK) as *const i8);
                let (a, b) = (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4)));
                q0 = _mm256_fmadd_pd(a, a, q0);
                q1 = _mm256_fmadd_pd(b, b, q1);
            }
            let (mut best0, mut best1) = (_mm256_set1_pd(f64::INFINITY), _mm256_set1_pd(f64::INFINITY));
            let (mut arg0, mut arg1) = (zero, zero);
            for cb in (0..c.kp).step_by(TILE) {
                let mut acc = [zero; 2 * TILE];
                for j in 0..d {
                    let p = xp.add(j * ld + i0);
                    let (a, b) = (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4)));
                    let w = cp.add(j * c.kp + cb);
                    for t in 0..TILE {
                        let wt = _mm256_broadcast_sd(&*w.add(t));
                        acc[2 * t] = _mm256_fmadd_pd(wt, a, acc[2 * t]);
                        acc[2 * t + 1] = _mm256_fmadd_pd(wt, b, acc[2 * t + 1]);
                    }
                }
                for t in 0..TILE.min(c.k.saturating_sub(cb)) {
                    let ci = cb + t;
                    let c2 = _mm256_set1_pd(c.c2[ci]);
                    let id = _mm256_set1_pd(ci as f64);
                    // max(‖x‖² − 2·x·c + ‖c‖², 0), the same operation order as the portable path.
                    let d0 = _mm256_max_pd(
                        _mm256_add_pd(_mm256_sub_pd(q0, _mm256_mul_pd(two, acc[2 * t])), c2),
                        zero,
                    );
                    let d1 = _mm256_max_pd(
                        _mm256_add_pd(_mm256_sub_pd(q1, _mm256_mul_pd(two, acc[2 * t + 1])), c2),
                        zero,
                    );
                    let m0 = _mm256_cmp_pd::<_CMP_LT_OQ>(d0, best0);
                    let m1 = _mm256_cmp_pd::<_CMP_LT_OQ>(d1, best1);
                    best0 = _mm256_blendv_pd(best0, d0, m0);
                    best1 = _mm256_blendv_pd(best1, d1, m1);
                    arg0 = _mm256_blendv_pd(arg0, id, m0);
                    arg1 = _mm256_blendv_pd(arg1, id, m1);
                }
            }
            let (mut b, mut a) = ([0.0f64; LANES], [0.0f64; LANES]);
            _mm256_storeu_pd(b.as_mut_ptr(), best0);
            _mm256_storeu_pd(b.as_mut_ptr().add(4), best1);
            _mm256_storeu_pd(a.as_mut_ptr(), arg0);
            _mm256_storeu_pd(a.as_mut_ptr().add(4), arg1);
            min[i0..i0 + LANES].copy_from_slice(&b);
            for (o, v) in label[i0..i0 + LANES].iter_mut().zip(a) {
                *o = v as u32;
            }
        }
    }
}

/// Rows `r0 .. r0 + labels.len().max(sq.len())` (or `rows` when neither is asked for).
#[inline(always)]
fn range<const SIMD: bool>(
    m: &HostMatrix,
    c: &Centroids,
    rows: std::ops::Range<usize>,
    labels: &mut [i64],
    sq: &mut [f64],
    totals: Option<&mut Totals>,
) {
    let d = m.cols;
    let mut buf = vec![0.0; d * PACK_LD];
    let mut label = [0u32; BLOCK];
    let mut min = [0.0; BLOCK];
    let mut totals = totals;
    let mut p0 = rows.start;
    while p0 < rows.end {
        let packed = PACK.min(rows.end - p0);
        let direct = in_place(m, p0, packed);
        if direct.is_none() {
            pack(m, p0, packed, &mut buf);
        }
        for b0 in (0..packed).step_by(BLOCK) {
            let len = BLOCK.min(packed - b0);
            let (x, ld) = match direct {
                Some((v, ld)) => (&v[b0..], ld),
                None => (&buf[b0..], PACK_LD),
            };
            #[cfg(target_arch = "x86_64")]
            if SIMD {
                // SAFETY: `range::<true>` is only instantiated inside `range_fma`, which the
                // dispatcher calls only on CPUs with AVX2 and FMA.
                unsafe { block_avx2(x, ld, len, c, &mut label, &mut min) };
            } else {
                block_nearest(x, ld, len, c, &mut label, &mut min);
            }
            #[cfg(not(target_arch = "x86_64"))]
            block_nearest(x, ld, len, c, &mut label, &mut min);
            let at = p0 + b0 - rows.start;
            if !labels.is_empty() {
                for (o, l) in labels[at..at + len].iter_mut().zip(&label) {
                    *o = *l as i64;
                }
            }
            if !sq.is_empty() {
                sq[at..at + len].copy_from_slice(&min[..len]);
            }
            if let Some(t) = totals.as_deref_mut() {
                for i in 0..len {
                    let l = label[i] as usize;
                    t.counts[l] += 1.0;
                    t.inertia[l] += min[i];
                    let s = &mut t.sums[l * d..(l + 1) * d];
                    for (j, v) in s.iter_mut().enumerate() {
                        *v += x[j * ld + i];
                    }
                }
            }
        }
        p0 += packed;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn range_fma(
    m: &HostMatrix,
    c: &Centroids,
    rows: std::ops::Range<usize>,
    labels: &mut [i64],
    sq: &mut [f64],
    totals: Option<&mut Totals>,
) {
    range::<true>(m, c, rows, labels, sq, totals)
}

/// [`range`] compiled for `v` (which the CPU must have: [`Variant::detect`] or less).
fn range_dispatch(
    v: Variant,
    m: &HostMatrix,
    c: &Centroids,
    rows: std::ops::Range<usize>,
    labels: &mut [i64],
    sq: &mut [f64],
    totals: Option<&mut Totals>,
) {
    match v {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `v` is at most what `Variant::detect` found on this CPU.
        Variant::Avx2 => unsafe { range_fma(m, c, rows, labels, sq, totals) },
        Variant::Portable => range::<false>(m, c, rows, labels, sq, totals),
    }
}

/// The nearest of the centroids `c` (k × d, row-major) to each row of the host tensor `x`
/// (rows × d, f64 or f32, any strides), and what `need` asks for. `None` when the kernel does
/// not take `x` (not a 2-D f64/f32 CPU tensor with d columns, or the policy is
/// [`super::Policy::TensorOnly`]): the caller then takes the tensor path.
pub(crate) fn nearest(x: &Tensor, c: &[f64], k: usize, need: Need) -> Option<Nearest> {
    nearest_with(policy().variant()?, x, c, k, need)
}

/// [`nearest`] with the variant `v` (which the CPU must have).
fn nearest_with(v: Variant, x: &Tensor, c: &[f64], k: usize, need: Need) -> Option<Nearest> {
    let m = HostMatrix::of(x)?;
    let d = m.cols;
    if k == 0 || d == 0 || c.len() != k * d {
        return None;
    }
    let cents = Centroids::new(c, k, d);
    let n = m.rows;
    let mut out = Nearest {
        labels: if need.labels { vec![0; n] } else { Vec::new() },
        sq: if need.sq { vec![0.0; n] } else { Vec::new() },
        totals: None,
    };
    let threads = (tch::get_num_threads().max(1) as usize).min(n / ROWS_PER_THREAD).max(1);
    // Contiguous ranges of whole blocks, one per thread.
    let per = n.div_ceil(threads).div_ceil(BLOCK) * BLOCK;
    let bounds: Vec<std::ops::Range<usize>> = (0..threads).map(|t| (t * per).min(n)..((t + 1) * per).min(n)).collect();
    let mut parts: Vec<Totals> = (0..threads).map(|_| Totals::zeros(k, d)).collect();
    {
        let mut labels = out.labels.as_mut_slice();
        let mut sq = out.sq.as_mut_slice();
        let mut jobs = Vec::with_capacity(threads);
        for (r, t) in bounds.iter().zip(parts.iter_mut()) {
            let len = r.len();
            let (l, rest) = labels.split_at_mut(if need.labels { len } else { 0 });
            let (s, rest_sq) = sq.split_at_mut(if need.sq { len } else { 0 });
            labels = rest;
            sq = rest_sq;
            jobs.push((r.clone(), l, s, t));
        }
        let (m, cents) = (&m, &cents);
        let run = move |(r, l, s, t): (std::ops::Range<usize>, &mut [i64], &mut [f64], &mut Totals)| {
            range_dispatch(v, m, cents, r, l, s, need.totals.then_some(t))
        };
        if threads == 1 {
            jobs.into_iter().for_each(run);
        } else {
            std::thread::scope(|scope| {
                for job in jobs {
                    scope.spawn(move || run(job));
                }
            });
        }
    }
    if need.totals {
        let mut total = Totals::zeros(k, d);
        parts.iter().for_each(|p| total.add(p));
        out.totals = Some(total);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::kernels::{Policy, with_policy};

    /// The tensor formula (the path for other devices) on the same data.
    fn reference(x: &Tensor, c: &Tensor) -> (Vec<i64>, Vec<f64>) {
        let x = x.to_kind(Kind::Double);
        let x2 = x.square().sum_dim_intlist(1, true, Kind::Double);
        let c2 = c.square().sum_dim_intlist(1, false, Kind::Double);
        let dist = (x2 - x.matmul(&c.tr()) * 2.0 + c2.unsqueeze(0)).clamp_min(0.0);
        let (min, label) = dist.min_dim(1, false);
        (Vec::try_from(&label).unwrap(), Vec::try_from(&min).unwrap())
    }

    /// The variants this CPU can run.
    fn variants() -> Vec<Variant> {
        let mut v = vec![Variant::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if Variant::detect() == Variant::Avx2 {
                v.push(Variant::Avx2);
            }
        }
        v
    }

    fn check(x: &Tensor, k: i64) {
        for v in variants() {
            check_with(v, x, k);
        }
    }

    fn check_with(v: Variant, x: &Tensor, k: i64) {
        let d = x.size()[1];
        let c = Tensor::randn([k, d], (Kind::Double, Device::Cpu));
        let cv: Vec<f64> = Vec::try_from(&c.reshape([-1])).unwrap();
        let got = nearest_with(
            v,
            x,
            &cv,
            k as usize,
            Need {
                labels: true,
                sq: true,
                totals: true,
            },
        )
        .expect("host tensor");
        let (labels, sq) = reference(x, &c);
        assert_eq!(
            got.labels,
            labels,
            "{v:?}: labels of {:?} strides {:?}",
            x.size(),
            x.stride()
        );
        for (a, b) in got.sq.iter().zip(&sq) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let t = got.totals.unwrap();
        let xd = x.to_kind(Kind::Double);
        for ci in 0..k as usize {
            let rows: Vec<i64> = (0..labels.len())
                .filter(|&i| labels[i] == ci as i64)
                .map(|i| i as i64)
                .collect();
            assert_eq!(t.counts[ci], rows.len() as f64);
            let idx = Tensor::from_slice(&rows);
            let want: Vec<f64> =
                Vec::try_from(&xd.index_select(0, &idx).sum_dim_intlist(0, false, Kind::Double)).unwrap();
            for (a, w) in t.sums[ci * d as usize..(ci + 1) * d as usize].iter().zip(&want) {
                assert!((a - w).abs() <= 1e-10 * (1.0 + w.abs()), "sum {a} vs {w}");
            }
            let inertia: f64 = rows.iter().map(|&i| sq[i as usize]).sum();
            assert!((t.inertia[ci] - inertia).abs() <= 1e-10 * (1.0 + inertia));
        }
    }

    #[test]
    fn agrees_with_the_tensor_formula_on_every_layout() {
        tch::manual_seed(3);
        // (4096, 16): columns 32 KiB apart alias, so column-major f64 is packed; (1000, 16) is
        // read in place.
        for &(n, d, k) in &[
            (1000, 16, 8),
            (4096, 16, 8),
            (257, 5, 6),
            (7, 3, 1),
            (0, 4, 2),
            (70_001, 9, 13),
        ] {
            let rm = Tensor::randn([n, d], (Kind::Double, Device::Cpu));
            check(&rm, k); // row-major
            let cm = rm.tr().contiguous().tr(); // column-major, as tables load
            check(&cm, k);
            if n > 3 {
                check(&cm.narrow(0, 3, n - 3), k); // a row window of column-major storage
            }
            check(&rm.to_kind(Kind::Float), k); // f32
        }
    }

    #[test]
    fn aliasing_columns_are_packed() {
        let spread = |n: usize, d: usize| {
            sets_spread(&HostMatrix {
                el: Elements::F64(&[]),
                rows: n,
                cols: d,
                row_stride: 1,
                col_stride: n,
            })
        };
        // The two shards of 2,000,000 rows at P = 2: 2^20 rows alias, 951,424 do not.
        assert!(!spread(1 << 20, 16));
        assert!(spread(951_424, 16));
        assert!(spread(2_000_000, 16));
        assert!(!spread(4096, 16));
        assert!(spread(4096, 2));
    }

    #[test]
    fn ties_go_to_the_first_centroid() {
        let x = Tensor::from_slice(&[0.0f64, 0.0, 2.0, 0.0]).reshape([2, 2]);
        let c = [1.0, 0.0, 1.0, 0.0, 3.0, 0.0];
        let got = nearest(
            &x,
            &c,
            3,
            Need {
                labels: true,
                ..Need::default()
            },
        )
        .unwrap();
        assert_eq!(got.labels, vec![0, 0]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let x = Tensor::zeros([4, 2], (Kind::Int64, Device::Cpu));
        assert!(nearest(&x, &[0.0, 0.0], 1, Need::default()).is_none());
        let y = Tensor::zeros([4, 2], (Kind::Double, Device::Cpu));
        assert!(nearest(&y, &[0.0; 3], 1, Need::default()).is_none());
        // Under TensorOnly the caller takes the tensor path, even for rows the kernel reads.
        let run = || nearest(&y, &[0.0, 0.0], 1, Need::default());
        assert!(with_policy(Policy::TensorOnly, run).is_none());
        assert!(with_policy(Policy::Auto, run).is_some());
    }
}
