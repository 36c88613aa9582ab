//! Progress of long collective operations (query stages, solver iterations).
//!
//! Every rank calls [`report`] at the same points of an operation; a process-wide
//! [`ProgressSink`] shows the events. Only the process that installed a sink shows anything:
//! the `heatsql` shell installs one on rank 0 when standard error is a terminal (and not with
//! `-q`), so piped and batch runs stay clean. Reporting without a sink costs one atomic load.
//! Iterative solvers report their iteration and objective (`kmeans: iteration 7/300, inertia
//! 1.23e4`); distributed queries report the stage they run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// One progress event of a running operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress<'a> {
    /// The operation (`query`, `kmeans`, `pca`, …).
    pub task: &'a str,
    /// The step reached, counted from 1: the iteration just completed, or the stage that starts.
    pub step: u64,
    /// Steps in all, when known (`max_iter`, stages of the plan).
    pub total: Option<u64>,
    /// What the step did or reached, e.g. `inertia 1.234e4` or `MpiShuffleExec`.
    pub detail: &'a str,
}

/// Where progress events go (installed with [`set_sink`]).
pub trait ProgressSink: Send + Sync {
    /// A step of `event.task` completed.
    fn update(&self, event: &Progress<'_>);
    /// `task` ended (successfully or not): clear what was shown.
    fn finish(&self, task: &str);
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static SINK: RwLock<Option<Arc<dyn ProgressSink>>> = RwLock::new(None);

/// Installs (or with `None` removes) the process-wide sink; returns the previous one.
pub fn set_sink(sink: Option<Arc<dyn ProgressSink>>) -> Option<Arc<dyn ProgressSink>> {
    let mut slot = SINK.write().unwrap_or_else(|e| e.into_inner());
    INSTALLED.store(sink.is_some(), Ordering::Release);
    std::mem::replace(&mut *slot, sink)
}

fn with_sink(f: impl FnOnce(&dyn ProgressSink)) {
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    let slot = SINK.read().unwrap_or_else(|e| e.into_inner());
    if let Some(sink) = slot.as_ref() {
        f(sink.as_ref());
    }
}

/// Reports that `task` reached step `step` (of `total`). Local: never communicates.
pub fn report(task: &str, step: u64, total: Option<u64>, detail: &str) {
    with_sink(|s| {
        s.update(&Progress {
            task,
            step,
            total,
            detail,
        })
    });
}

/// Reports that `task` ended. Local: never communicates.
pub fn finish(task: &str) {
    with_sink(|s| s.finish(task));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ProgressSink for Recorder {
        fn update(&self, e: &Progress<'_>) {
            let line = format!("{} {}/{:?} {}", e.task, e.step, e.total, e.detail);
            self.0.lock().expect("lock").push(line);
        }
        fn finish(&self, task: &str) {
            self.0.lock().expect("lock").push(format!("{task} done"));
        }
    }

    #[test]
    fn events_reach_the_installed_sink_only() {
        report("lost", 1, None, "no sink yet");
        let sink = Arc::new(Recorder::default());
        set_sink(Some(sink.clone()));
        report("kmeans", 1, Some(3), "inertia 12");
        report("kmeans", 2, Some(3), "inertia 10");
        finish("kmeans");
        set_sink(None);
        report("lost", 2, None, "sink removed");
        let seen = sink.0.lock().expect("lock").clone();
        assert_eq!(
            seen,
            [
                "kmeans 1/Some(3) inertia 12",
                "kmeans 2/Some(3) inertia 10",
                "kmeans done"
            ]
        );
    }
}
