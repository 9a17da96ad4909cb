//! Live progress of streamed model calls, on stderr: which agent and attempt, tokens so far,
//! tokens per second, elapsed time.
//!
//! The command picks a [`Progress`] (a line redrawn in place for `run` and `pipeline run`, the
//! message of the eval's progress bar, or nothing: stderr is not a terminal, or `-q`) and runs
//! its work inside [`Progress::scope`]; the runner names each model call with [`call`]; the
//! streaming client counts what arrives with `tokens` and `reported`. The three meet
//! through task-local values, so no signature between them changes, and a call made outside
//! any scope (a test, a benchmark, `agent mcp`) costs one failed task-local lookup per read of
//! the stream (the client counts the events of one read together).
//!
//! A call draws at its first token, then at most every 100 ms, so a reply of thousands of
//! tokens costs a handful of writes a second.

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);
/// The widest line drawn: a line that wraps can no longer be redrawn in place.
const MAX_LINE: usize = 160;

tokio::task_local! {
    static DISPLAY: Progress;
    static CALL: Arc<Call>;
}

/// Where live counts go.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<Sink>>,
}

enum Target {
    /// A line on stderr, redrawn in place.
    Line,
    /// The message of a progress bar (which draws only on a terminal).
    Bar(indicatif::ProgressBar),
}

struct Sink {
    target: Target,
    started: Instant,
    /// Tokens of every call so far.
    total: AtomicU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    calls: Vec<Arc<Call>>,
    last_draw: Option<Instant>,
    drawn: bool,
}

/// One model call in flight.
struct Call {
    label: String,
    started: Instant,
    tokens: AtomicU64,
}

impl Progress {
    /// No progress.
    pub fn off() -> Progress {
        Progress::default()
    }

    /// A line on stderr when it is a terminal and `quiet` is off; else nothing.
    pub fn line(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::off();
        }
        Progress::with(Target::Line)
    }

    /// The live counts as the message of `bar`.
    pub fn bar(bar: indicatif::ProgressBar) -> Progress {
        Progress::with(Target::Bar(bar))
    }

    fn with(target: Target) -> Progress {
        Progress {
            sink: Some(Arc::new(Sink {
                target,
                started: Instant::now(),
                total: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            })),
        }
    }

    /// Run `work` with this progress shown for every [`call`] inside it.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        DISPLAY.scope(self.clone(), work).await
    }
}

/// Run the model call `work`, counted under `label` (`release-plan attempt 2`) when a
/// [`Progress`] is in scope.
pub async fn call<F: Future>(label: impl FnOnce() -> String, work: F) -> F::Output {
    let Some(sink) = DISPLAY.try_with(|p| p.sink.clone()).ok().flatten() else {
        return work.await;
    };
    let call = Arc::new(Call {
        label: label(),
        started: Instant::now(),
        tokens: AtomicU64::new(0),
    });
    sink.lock().calls.push(call.clone());
    // Removed when the call ends, and also when it is dropped unfinished (Ctrl-C).
    let _in_flight = InFlight {
        sink: sink.clone(),
        call: call.clone(),
    };
    CALL.scope(call, work).await
}

/// A call on the line until dropped.
struct InFlight {
    sink: Arc<Sink>,
    call: Arc<Call>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.sink.lock();
        state.calls.retain(|c| !Arc::ptr_eq(c, &self.call));
        if state.calls.is_empty() && state.drawn {
            self.sink.clear(&mut state);
        }
    }
}

/// `n` more tokens arrived for the call in scope.
pub(crate) fn tokens(n: u64) {
    if n == 0 {
        return;
    }
    let _ = CALL.try_with(|call| {
        call.tokens.fetch_add(n, Ordering::Relaxed);
        if let Ok(Some(sink)) = DISPLAY.try_with(|p| p.sink.clone()) {
            sink.total.fetch_add(n, Ordering::Relaxed);
            sink.tick();
        }
    });
}

/// The server counted `completion_tokens` for the call in scope: its count replaces ours.
pub(crate) fn reported(completion_tokens: u64) {
    // A server's number: held to the largest count believed, so sums cannot wrap.
    let completion_tokens = completion_tokens.min(1 << 53);
    let _ = CALL.try_with(|call| {
        let before = call.tokens.swap(completion_tokens, Ordering::Relaxed);
        if let Ok(Some(sink)) = DISPLAY.try_with(|p| p.sink.clone()) {
            if completion_tokens >= before {
                sink.total
                    .fetch_add(completion_tokens - before, Ordering::Relaxed);
            } else {
                sink.total.fetch_sub(
                    (before - completion_tokens).min(sink.total.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
            }
            sink.tick();
        }
    });
}

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Draw, unless the last draw was under [`REDRAW`] ago.
    fn tick(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_draw
            .is_some_and(|last| now.duration_since(last) < REDRAW)
        {
            return;
        }
        state.last_draw = Some(now);
        state.drawn = true;
        match &self.target {
            Target::Line => {
                let parts: Vec<String> = state
                    .calls
                    .iter()
                    .map(|call| {
                        describe(
                            &call.label,
                            call.tokens.load(Ordering::Relaxed),
                            now.duration_since(call.started),
                        )
                    })
                    .collect();
                let line = crate::text::clip(&parts.join("; "), MAX_LINE);
                let mut stderr = std::io::stderr().lock();
                let _ = write!(stderr, "\r\x1b[2K{line}");
                let _ = stderr.flush();
            }
            Target::Bar(bar) => {
                let in_flight = state.calls.len();
                bar.set_message(format!(
                    "{}; {in_flight} in flight",
                    counts(
                        self.total.load(Ordering::Relaxed),
                        now.duration_since(self.started)
                    )
                ));
            }
        }
    }

    fn clear(&self, state: &mut State) {
        state.drawn = false;
        state.last_draw = None;
        if let Target::Line = self.target {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}

/// `release-plan attempt 2: 1234 tokens, 45.6 tokens/s, 27.1 s`.
pub(crate) fn describe(label: &str, tokens: u64, elapsed: Duration) -> String {
    format!("{label}: {}", counts(tokens, elapsed))
}

fn counts(tokens: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    };
    let unit = if tokens == 1 { "token" } else { "tokens" };
    format!("{tokens} {unit}, {rate:.1} tokens/s, {secs:.1} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_the_call_its_tokens_rate_and_time() {
        assert_eq!(
            describe("release-plan attempt 2", 1234, Duration::from_secs(10)),
            "release-plan attempt 2: 1234 tokens, 123.4 tokens/s, 10.0 s"
        );
        assert_eq!(
            describe("a attempt 1", 1, Duration::ZERO),
            "a attempt 1: 1 token, 0.0 tokens/s, 0.0 s"
        );
    }

    #[tokio::test]
    async fn tokens_count_only_inside_a_call_in_scope() {
        // Outside any scope: nothing to count, nothing panics.
        tokens(5);
        reported(7);
        let bar = indicatif::ProgressBar::hidden();
        let progress = Progress::bar(bar.clone());
        let sink = progress.sink.clone().expect("a sink");
        progress
            .scope(async {
                call(|| "x attempt 1".into(), async {
                    tokens(3);
                    tokens(2);
                })
                .await;
                call(|| "x attempt 2".into(), async { reported(10) }).await;
            })
            .await;
        assert_eq!(sink.total.load(Ordering::Relaxed), 15);
        assert!(sink.lock().calls.is_empty());
        assert!(bar.message().contains("tokens"), "{}", bar.message());
    }
}
