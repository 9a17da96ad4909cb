//! Logging setup: `tracing` to stderr, `warn` by default, `-v` for debug, `-vv` for trace.
//!
//! `RUST_LOG` wins over the flags. Prompt and reply bodies are logged at trace level only.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Call once, from `main`.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,agent=debug",
        (false, _) => "warn,agent=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second call (tests that drive the CLI in-process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
