//! Which instruction set the hand-written kernels (`gram`, `skinny`, `nearest`) run with on this
//! CPU, detected at run time (binaries are built for the baseline x86-64 target). The kernels
//! get their variant from `Policy::variant`, never from [`Variant::detect`] directly.

/// The kernel variants, best first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Variant {
    /// AVX2 + FMA intrinsics.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Plain Rust (whatever the compiler vectorises for the baseline target).
    Portable,
}

impl Variant {
    /// The best variant this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                return Variant::Avx2;
            }
        }
        Variant::Portable
    }
}
