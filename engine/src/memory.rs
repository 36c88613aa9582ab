//! Memory placement for large local tensors and the process allocator.
//!
//! Loading a rank's share of a table writes hundreds of megabytes into fresh memory. On Linux
//! every fresh 4 KiB page costs a fault and a kernel zeroing; measured on the load benchmark
//! (`benches/`, 2M × 32 f64) that was a third of the load time. The remedies here:
//!
//! * [`advise_huge_pages`]: ask the kernel for transparent huge pages (2 MiB) on one large
//!   tensor before it is first written, when `HEATSQL_HUGE_PAGES=1` (effective when
//!   `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`; off by default,
//!   see [`huge_pages_enabled`]).
//! * [`prepare_for_filling`]: that advice, then the tensor's pages faulted in by one
//!   `madvise(MADV_POPULATE_WRITE)` rather than one trap per page (`HEATSQL_PREFAULT=0` turns
//!   that off). What loads call on their tensors.
//! * [`retain_freed_memory`]: keep memory that Arrow and Parquet buffers free inside the
//!   process for reuse, instead of returning it to the kernel and faulting it in again for
//!   the next row group. Process-wide, so only binaries call it (the `heatsql` shell and the
//!   benchmarks); programs embedding heatsql decide for themselves (docs/operations.md).

use tch::{Device, Tensor};

/// Transparent huge pages are this large on x86-64 and most aarch64 kernels.
const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel to back `tensor`'s storage with transparent huge pages.
///
/// Call it on a fresh CPU tensor before writing it. The advice covers the whole 2 MiB pages
/// inside the storage; tensors smaller than 4 MiB, non-CPU tensors and other systems are left
/// alone. Returns whether advice was given (failure is harmless: the pages stay small).
pub fn advise_huge_pages(tensor: &Tensor) -> bool {
    if !huge_pages_enabled() || tensor.device() != Device::Cpu || !tensor.is_contiguous() {
        return false;
    }
    let bytes = tensor.numel() * tensor.kind().elt_size_in_bytes();
    if bytes < 2 * HUGE_PAGE {
        return false;
    }
    advise(tensor.data_ptr() as usize, bytes)
}

/// Prepares a fresh CPU tensor that is about to be filled: [`advise_huge_pages`], then, when
/// [`prefault_enabled`], its pages faulted in by one `madvise(MADV_POPULATE_WRITE)` (Linux
/// 5.14+) instead of one trap per page while it is written. Failure is harmless.
pub fn prepare_for_filling(tensor: &Tensor) {
    advise_huge_pages(tensor);
    if prefault_enabled() && tensor.device() == Device::Cpu && tensor.is_contiguous() {
        let bytes = tensor.numel() * tensor.kind().elt_size_in_bytes();
        if bytes >= 2 * HUGE_PAGE {
            populate(tensor.data_ptr() as usize, bytes);
        }
    }
}

/// Whether [`prepare_for_filling`] faults pages in ahead (default on; `HEATSQL_PREFAULT=0`
/// turns it off). The load writes every page anyway; faulting them in one call saves a trap
/// per 4 KiB page. Measured on the load benchmark in fresh processes (2,000,000 × 32 f64, this
/// project's 2-core VM): P = 1 0.41–0.61 s with it, 0.52–3.8 s without; P = 2 0.24–0.42 s
/// with it, 0.32–0.49 s without.
pub fn prefault_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("HEATSQL_PREFAULT").as_deref(),
            Ok("0") | Ok("false") | Ok("off")
        )
    })
}

#[cfg(target_os = "linux")]
fn populate(start: usize, bytes: usize) {
    /// `MADV_POPULATE_WRITE` (Linux 5.14); older kernels answer EINVAL, which is harmless.
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    let page = 4096;
    let first = start.div_ceil(page) * page;
    let end = (start + bytes) / page * page;
    if end > first {
        // SAFETY: [first, end) lies inside the tensor's live allocation; populating only
        // faults pages in (as writing them would), never changing their contents.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, MADV_POPULATE_WRITE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_start: usize, _bytes: usize) {}

/// Whether [`advise_huge_pages`] advises at all (default off): `HEATSQL_HUGE_PAGES=1` turns it
/// on. Huge pages make a load that reuses memory freed moments before faster (fewer faults).
/// On virtual machines that return free memory to the host (virtio-balloon free page
/// reporting, which reports free 2 MiB blocks), a fresh huge page can instead cost far more
/// than small pages: measured on this project's 2-core development VM, first touch of 512 MiB
/// took 1.1–1.2 s with huge pages a few seconds after they were freed, 0.04 s when reused at
/// once, and 0.19 s with 4 KiB pages; a load of 2,000,000 × 32 f64 in a fresh process took
/// 1.3–2.0 s with huge pages and 0.55–0.65 s without (docs/operations.md). A job loads its
/// tables once, in a fresh process: hence off by default.
pub fn huge_pages_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| match std::env::var("HEATSQL_HUGE_PAGES").as_deref() {
        Ok("0") | Ok("false") | Ok("off") | Ok("") => false,
        Ok(_) => true,
        Err(_) => DEFAULT_HUGE_PAGES,
    })
}

/// The default of [`huge_pages_enabled`].
const DEFAULT_HUGE_PAGES: bool = false;

#[cfg(target_os = "linux")]
fn advise(start: usize, bytes: usize) -> bool {
    let first = start.div_ceil(HUGE_PAGE) * HUGE_PAGE;
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= first {
        return false;
    }
    // SAFETY: [first, end) lies inside the tensor's live allocation; MADV_HUGEPAGE changes how
    // future faults are served and never the contents or validity of the memory.
    unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: usize, _bytes: usize) -> bool {
    false
}

/// Padding kept at the top of the heap when it grows or shrinks (glibc `M_TOP_PAD`).
pub const RETAINED_BYTES: usize = 1 << 30;

/// Makes glibc's allocator keep freed memory for reuse: the heap grows in steps of
/// [`RETAINED_BYTES`] and keeps that much when it shrinks, so the decode buffers of one row
/// group are reused by the next instead of being faulted in again. Virtual address space is
/// reserved, resident memory grows only as it is used. Call once, early in `main`, before
/// threads start. Returns whether the settings were applied (false off glibc).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before other threads run.
        unsafe {
            libc::mallopt(libc::M_TOP_PAD, RETAINED_BYTES as libc::c_int) == 1
                && libc::mallopt(
                    libc::M_TRIM_THRESHOLD,
                    (RETAINED_BYTES + RETAINED_BYTES / 2) as libc::c_int,
                ) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
