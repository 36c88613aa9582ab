//! The shell's progress line: rank 0 shows long operations' progress on its terminal.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use heatsql::progress::{Progress, ProgressSink};

/// One status line on standard error, redrawn in place (`\r`), shown once an operation has run
/// longer than a delay (`HEATSQL_PROGRESS_DELAY_MS`, default 500 ms) and erased when it ends.
pub struct TerminalProgress {
    /// How long an operation runs before its progress is shown.
    delay: Duration,
    /// The running task and when it started; whether a line is on screen; the last redraw.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    task: Option<(String, Instant)>,
    shown: bool,
    drawn: Option<Instant>,
}

/// The least time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);

impl TerminalProgress {
    /// A sink with the delay from `HEATSQL_PROGRESS_DELAY_MS`.
    pub fn from_env() -> Self {
        let ms = std::env::var("HEATSQL_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        TerminalProgress {
            delay: Duration::from_millis(ms),
            state: Mutex::new(State::default()),
        }
    }
}

impl ProgressSink for TerminalProgress {
    fn update(&self, e: &Progress<'_>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let started = match &s.task {
            Some((task, at)) if task == e.task => *at,
            _ => {
                s.task = Some((e.task.to_string(), now));
                now
            }
        };
        let last = e.total == Some(e.step);
        if now - started < self.delay || s.drawn.is_some_and(|d| now - d < REDRAW && !last) {
            return;
        }
        let of = e.total.map(|t| format!("/{t}")).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[heatsql] {}: step {}{of}, {} ({:.1} s)",
            e.task,
            e.step,
            e.detail,
            (now - started).as_secs_f64()
        );
        let _ = err.flush();
        s.shown = true;
        s.drawn = Some(now);
    }

    fn finish(&self, task: &str) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.task.as_ref().is_some_and(|(t, _)| t == task) {
            if s.shown {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            }
            *s = State::default();
        }
    }
}
