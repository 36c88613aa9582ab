//! The shell's progress line: rank 0 shows long operations' progress on its terminal.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use heatsql::progress::{Progress, ProgressSink};

/// One status line on standard error, redrawn in place (`\r`) with the time elapsed, shown
/// once an operation has run longer than a delay (`HEATSQL_PROGRESS_DELAY_MS`, default 500 ms)
/// and erased when it ends. A background thread redraws it while a long step runs, so a
/// slow stage shows up while it runs, not only when it ends.
pub struct TerminalProgress {
    shared: Arc<Shared>,
}

struct Shared {
    /// How long an operation runs before its progress is shown.
    delay: Duration,
    /// The running operation, if any.
    state: Mutex<Option<Running>>,
    /// Wakes the redraw thread.
    tick: Condvar,
}

struct Running {
    /// The task name of the events.
    task: String,
    /// When its first event arrived (operations report a first event when they start).
    started: Instant,
    /// The latest event, as shown.
    text: String,
    /// Whether the line is on screen.
    shown: bool,
}

/// Time between two redraws while nothing new is reported.
const REDRAW: Duration = Duration::from_millis(200);

impl TerminalProgress {
    /// A sink with the delay from `HEATSQL_PROGRESS_DELAY_MS`, and its redraw thread.
    pub fn from_env() -> Self {
        let ms = std::env::var("HEATSQL_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        let shared = Arc::new(Shared {
            delay: Duration::from_millis(ms),
            state: Mutex::new(None),
            tick: Condvar::new(),
        });
        let redraw = Arc::clone(&shared);
        // The thread lives as long as the process (the shell installs one sink).
        let _ = std::thread::Builder::new()
            .name("heatsql-progress".into())
            .spawn(move || redraw.redraw_loop());
        TerminalProgress { shared }
    }
}

impl Shared {
    fn redraw_loop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            state = match self.tick.wait_timeout(state, REDRAW) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
            if let Some(r) = state.as_mut() {
                self.draw(r);
            }
        }
    }

    /// Draws `r` once it has run longer than the delay.
    fn draw(&self, r: &mut Running) {
        let elapsed = r.started.elapsed();
        if elapsed < self.delay {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[heatsql] {}: {} ({:.1} s)",
            r.task,
            r.text,
            elapsed.as_secs_f64()
        );
        let _ = err.flush();
        r.shown = true;
    }
}

impl ProgressSink for TerminalProgress {
    fn update(&self, e: &Progress<'_>) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let of = e.total.map(|t| format!("/{t}")).unwrap_or_default();
        let text = format!("{}{of} {}", e.step, e.detail);
        match state.as_mut() {
            Some(r) if r.task == e.task => r.text = text,
            _ => {
                *state = Some(Running {
                    task: e.task.to_string(),
                    started: Instant::now(),
                    text,
                    shown: false,
                })
            }
        }
        if let Some(r) = state.as_mut() {
            self.shared.draw(r);
        }
    }

    fn finish(&self, task: &str) {
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.as_ref().is_some_and(|r| r.task == task) {
            if state.as_ref().is_some_and(|r| r.shown) {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            }
            *state = None;
        }
        self.shared.tick.notify_all();
    }
}
