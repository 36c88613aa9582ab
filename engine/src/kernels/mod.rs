//! The hand-written CPU kernels, and the one policy that decides whether they run.
//!
//! libtorch runs the engine's hottest local shapes (millions of rows, tens of columns) far from
//! the machine's speed, so a few passes have kernels of their own, all reading the rows in
//! place (f64 or f32, any strides, as tables load them):
//!
//! * [`gram`]: Gram matrices of prepared (centred, scaled, triangular-solved) rows in one pass,
//!   and the in-place triangular solve: the CPU passes of CholeskyQR2 ([`mod@crate::linalg::tsqr`]).
//! * [`skinny`]: `X · W` for a tall block X and a small W (the U of an SVD).
//! * `nearest` (internal): k-means' fused distance → argmin → accumulate pass.
//!
//! Around them:
//!
//! * `host` (internal): the one view of a CPU tensor's elements as Rust slices (read-only with
//!   strides, contiguous for writing) and the copy of small operands; it holds the module's only
//!   conversions of libtorch pointers to slices.
//! * `simd` (internal): the instruction set the kernels use on this CPU (AVX2 + FMA, or
//!   portable Rust), detected at run time.
//! * [`Policy`]: [`Policy::Auto`] runs the kernels wherever they apply (CPU tensors of the
//!   dtypes they read), [`Policy::TensorOnly`] always takes the libtorch path, the one every
//!   device takes. The setting is process-wide ([`set_policy`], [`policy`]); it starts from
//!   the environment variable [`POLICY_ENV`] (`HEATSQL_CPU_KERNELS=1` or `0`), read once, and
//!   is [`Policy::Auto`] without it. SQL sets it per function call from the session setting
//!   `heatsql.cpu_kernels`.
//!
//! Every kernel is dispatched the same way. Its entry point returns an `Option`: `None` when
//! the kernel does not take the input (the policy is [`Policy::TensorOnly`], the tensor is not
//! on the CPU, or of another dtype or layout), and the caller then runs its libtorch path. The
//! entry point reads the policy once (`Policy::variant`: the instruction set to run with, or
//! `None`), views its tensors through `host`, and hands the variant down; inside, each step
//! matches on the variant (`Avx2` → the `#[target_feature]` code, `Portable` → plain Rust).
//! The kernels are local: they never communicate.

use std::sync::atomic::{AtomicU8, Ordering};

pub mod gram;
mod host;
pub(crate) mod nearest;
mod simd;
pub mod skinny;

pub(crate) use host::f64_values;
use simd::Variant;

/// The environment variable that sets the initial [`Policy`]: `1`/`on`/`true`/`auto` for the
/// kernels, `0`/`off`/`false`/`tensor` for libtorch only (case insensitive; anything else is
/// ignored). Read once, on the first call of [`policy`], unless [`set_policy`] came first.
pub const POLICY_ENV: &str = "HEATSQL_CPU_KERNELS";

/// Whether the hand-written kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The hand-written kernels wherever they apply; libtorch for everything else.
    #[default]
    Auto,
    /// Always libtorch (the path other devices take), for comparisons and as a fallback.
    TensorOnly,
}

impl Policy {
    /// The policy's name as [`Policy::parse`] reads it: `auto` or `tensor`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Auto => "auto",
            Policy::TensorOnly => "tensor",
        }
    }

    /// The policy named `s` (case insensitive, surrounding spaces ignored): `auto`, `1`, `on`,
    /// `true`, `yes` for [`Policy::Auto`]; `tensor`, `0`, `off`, `false`, `no` for
    /// [`Policy::TensorOnly`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "1" | "on" | "true" | "yes" => Some(Policy::Auto),
            "tensor" | "0" | "off" | "false" | "no" => Some(Policy::TensorOnly),
            _ => None,
        }
    }

    /// The instruction set a kernel runs with under this policy on this CPU; `None` under
    /// [`Policy::TensorOnly`] (the caller takes the libtorch path). The one dispatch decision of
    /// every kernel.
    pub(crate) fn variant(self) -> Option<Variant> {
        match self {
            Policy::Auto => Some(Variant::detect()),
            Policy::TensorOnly => None,
        }
    }
}

/// A process-wide [`Policy`], initialised from an environment value on first read.
struct Setting(AtomicU8);

/// [`Setting`]'s states.
const UNSET: u8 = 0;
const AUTO: u8 = 1;
const TENSOR_ONLY: u8 = 2;

impl Setting {
    const fn new() -> Self {
        Setting(AtomicU8::new(UNSET))
    }

    /// The policy set, else the one `env` names (read only while unset), else `Auto`.
    fn get(&self, env: impl FnOnce() -> Option<String>) -> Policy {
        match self.0.load(Ordering::Relaxed) {
            AUTO => Policy::Auto,
            TENSOR_ONLY => Policy::TensorOnly,
            _ => {
                let p = env().and_then(|v| Policy::parse(&v)).unwrap_or_default();
                // A concurrent `set` wins over the environment.
                match self
                    .0
                    .compare_exchange(UNSET, Self::code(p), Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => p,
                    Err(now) if now == TENSOR_ONLY => Policy::TensorOnly,
                    Err(_) => Policy::Auto,
                }
            }
        }
    }

    fn set(&self, p: Policy) {
        self.0.store(Self::code(p), Ordering::Relaxed);
    }

    fn code(p: Policy) -> u8 {
        match p {
            Policy::Auto => AUTO,
            Policy::TensorOnly => TENSOR_ONLY,
        }
    }
}

static POLICY: Setting = Setting::new();

/// The kernel policy of this process (see [`Policy`]).
pub fn policy() -> Policy {
    #[cfg(test)]
    if let Some(p) = OVERRIDE.with(|o| o.get()) {
        return p;
    }
    POLICY.get(|| std::env::var(POLICY_ENV).ok())
}

/// The policy [`POLICY_ENV`] names, or [`Policy::Auto`] (read now; [`policy`] reads it once).
pub fn policy_from_env() -> Policy {
    std::env::var(POLICY_ENV)
        .ok()
        .and_then(|v| Policy::parse(&v))
        .unwrap_or_default()
}

/// Sets the kernel policy of this process, for every later operation (in-flight ones keep the
/// policy they started with). Every rank should use the same policy: results agree either way
/// (within rounding), but timings do not.
pub fn set_policy(p: Policy) {
    POLICY.set(p);
}

#[cfg(test)]
thread_local! {
    /// A policy for the calling test thread only (tests run in parallel in one process, so
    /// they must not flip the process-wide setting under each other).
    static OVERRIDE: std::cell::Cell<Option<Policy>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with [`policy`] returning `p` on this thread (tests only).
#[cfg(test)]
pub(crate) fn with_policy<T>(p: Policy, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Policy>);
    impl Drop for Reset {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _reset = Reset(OVERRIDE.with(|o| o.replace(Some(p))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Policy::Auto, Policy::TensorOnly] {
            assert_eq!(Policy::parse(p.name()), Some(p));
        }
        assert_eq!(Policy::parse(" Tensor "), Some(Policy::TensorOnly));
        assert_eq!(Policy::parse("AUTO"), Some(Policy::Auto));
        assert_eq!(Policy::parse("gpu"), None);
        assert_eq!(Policy::default(), Policy::Auto);
    }

    #[test]
    fn setting_reads_the_environment_once_and_set_wins() {
        let env = |v: &'static str| move || Some(v.to_string());
        // Unset: the environment decides, once.
        let s = Setting::new();
        assert_eq!(s.get(env("tensor")), Policy::TensorOnly);
        assert_eq!(s.get(env("auto")), Policy::TensorOnly);
        // No or an unknown value: Auto.
        assert_eq!(Setting::new().get(|| None), Policy::Auto);
        assert_eq!(Setting::new().get(env("fast")), Policy::Auto);
        // `set` before the first read: the environment is never read.
        let s = Setting::new();
        s.set(Policy::TensorOnly);
        assert_eq!(s.get(|| panic!("read the environment")), Policy::TensorOnly);
        s.set(Policy::Auto);
        assert_eq!(s.get(env("tensor")), Policy::Auto);
    }

    #[test]
    fn tensor_only_selects_no_variant() {
        assert_eq!(Policy::TensorOnly.variant(), None);
        assert_eq!(Policy::Auto.variant(), Some(Variant::detect()));
        with_policy(Policy::TensorOnly, || assert_eq!(policy(), Policy::TensorOnly));
        with_policy(Policy::Auto, || assert_eq!(policy(), Policy::Auto));
    }
}
