//! A panic on any rank ends the whole job: no rank is left waiting in a collective.
//!
//! A rank that panics while the others wait for it in a collective would never reach that
//! collective, and its own `MPI_Finalize` (run at exit) would wait for the others: the job
//! hangs. So once MPI runs with more than one rank, a panic hook prints which rank and thread
//! panicked, with the message and location, marks the process failed (the exit handler then
//! skips `MPI_Finalize`) and calls `MPI_Abort`, which ends every rank of the job (`mpirun` and
//! `srun` report it and exit non-zero). This holds for every thread (tokio workers, libtorch
//! threads) and even when the panic would later be caught, with one exception: code that
//! expects a panic from a library it calls and turns it into an error runs it through
//! [`catch_recoverable`].
//!
//! For tests of this path, `HEATSQL_TEST_PANIC=<place>:<rank>` makes rank `<rank>` panic at
//! the named place ([`test_panic_point`]); the places are listed in docs/operations.md.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when this process failed in a way the other ranks cannot know about (a panic): the
/// exit handler must not call `MPI_Finalize`, which would wait for them.
static FAILED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// How many [`catch_recoverable`] scopes are open on this thread.
    static RECOVERABLE: Cell<usize> = const { Cell::new(0) };
}

/// Whether this process has failed (a panic outside [`catch_recoverable`]).
pub fn failed() -> bool {
    FAILED.load(Ordering::SeqCst)
}

/// Installs the hook (once per process). `rank` and `size` name the process in the message;
/// with `size == 1` a panic only marks the process failed (there is nobody to wait for it) and
/// then behaves as Rust's default.
pub(crate) fn install(rank: usize, size: usize) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if RECOVERABLE.with(Cell::get) > 0 {
                previous(info);
                return;
            }
            FAILED.store(true, Ordering::SeqCst);
            if size <= 1 {
                previous(info);
                return;
            }
            eprintln!("{}", describe(info, rank, size));
            // SAFETY: MPI_Abort may be called from any thread at any time after MPI_Init;
            // it does not return.
            unsafe {
                mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, ABORT_CODE);
            }
            // MPI_Abort does not return; should an MPI implementation return anyway, end the
            // process without running exit handlers (no MPI_Finalize).
            std::process::abort();
        }));
    });
}

/// The exit code `MPI_Abort` is called with after a panic.
pub const ABORT_CODE: i32 = 101;

/// The line printed by the hook: `heatsql: rank 1 of 4 panicked in thread 'main' at
/// src/x.rs:10:5: message; aborting every rank of the job`.
fn describe(info: &PanicHookInfo<'_>, rank: usize, size: usize) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    let location = info
        .location()
        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    format!(
        "heatsql: rank {rank} of {size} panicked in thread '{thread}'{location}: {message}; aborting every rank of the job"
    )
}

/// Runs `f`, catching a panic inside it as `Err` instead of aborting the job: for calls into
/// libraries known to panic on bad input (a corrupt file's decoder), whose panic the caller
/// turns into an ordinary (agreed) error.
pub fn catch_recoverable<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    struct Scope;
    impl Drop for Scope {
        fn drop(&mut self) {
            RECOVERABLE.with(|c| c.set(c.get() - 1));
        }
    }
    RECOVERABLE.with(|c| c.set(c.get() + 1));
    let _scope = Scope;
    std::panic::catch_unwind(AssertUnwindSafe(f))
}

/// Test hook: panics when `HEATSQL_TEST_PANIC` is `<place>:<rank>` for this place and rank
/// (for example `exchange:1`). Without the variable it does nothing.
pub fn test_panic_point(place: &str, rank: usize) {
    if let Ok(spec) = std::env::var("HEATSQL_TEST_PANIC")
        && let Some((p, r)) = spec.split_once(':')
        && p == place
        && r.trim().parse::<usize>().ok() == Some(rank)
    {
        panic!("HEATSQL_TEST_PANIC: rank {rank} panics at '{place}' (test hook)");
    }
}
