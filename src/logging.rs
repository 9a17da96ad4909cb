//! Logging setup: `tracing` to stderr, `warn` by default, `-v` for debug, `-vv` for trace.
//!
//! `RUST_LOG` wins over the flags. Prompt and reply bodies are logged at trace level only.
//! Every line passes through a redactor: secrets registered with [`redact`] (the API key, as
//! soon as settings resolve it) are replaced, whatever crate logged them, so a server that
//! echoes the key in an error body cannot put it on stderr.

use std::io::Write;
use std::sync::RwLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Never print `secret` in a log line from now on.
pub fn redact(secret: &str) {
    if secret.len() < 8 {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|known| known == secret) {
        secrets.push(secret.to_owned());
    }
}

/// Replace every registered secret in `text`.
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.iter().fold(text.to_owned(), |text, secret| {
        text.replace(secret.as_str(), "[redacted]")
    })
}

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
        .with_writer(RedactingStderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

/// Stderr, with registered secrets replaced. The formatter writes each event in one call.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed() {
        redact("sk-unit-test-secret-123");
        assert_eq!(
            scrub("key sk-unit-test-secret-123 here"),
            "key [redacted] here"
        );
        redact("short");
        assert_eq!(
            scrub("short"),
            "short",
            "too short to be a key; never scrub ordinary words"
        );
    }
}
