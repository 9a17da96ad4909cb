//! Logging setup: `tracing` to stderr, `warn` by default, `-v` for debug, `-vv` for trace.
//!
//! `RUST_LOG` wins over the flags. Prompt and reply bodies are logged at trace level only.
//! async-openai's own events are off unless `RUST_LOG` names `async_openai`: it logs the whole
//! body of every response it cannot parse (`failed deserialization of: …`) and of every 5xx,
//! and a hostile server's body must not reach stderr, however large (our own errors quote a
//! short escaped excerpt instead).
//!
//! Every line passes through a redactor: secrets registered with [`redact`] (the API key and
//! a base URL's password, as soon as settings resolve them) are replaced, whatever crate
//! logged them, so a server that echoes the key in an error body cannot put it on stderr.
//! Only values that could be secrets are registered ([`is_secret_like`]): a key such as
//! `ollama`, `x` or `EMPTY` is a convention, not a secret, and scrubbing it would rewrite
//! ordinary words.

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The fewest characters a secret has.
const SECRET_MIN_CHARS: usize = 12;
/// The least entropy a secret has per character, in bits (English words have less).
const SECRET_MIN_BITS_PER_CHAR: f64 = 3.0;
/// The least entropy a secret has in all, in bits.
const SECRET_MIN_BITS: f64 = 40.0;
/// Keys that local servers document as "any value will do": conventions, not secrets.
const PLACEHOLDER_KEYS: [&str; 14] = [
    "ollama",
    "empty",
    "none",
    "null",
    "dummy",
    "lm-studio",
    "lmstudio",
    "sk-no-key-required",
    "no-key-required",
    "not-needed",
    "sk-xxx",
    "sk-1234",
    "sk-dummy",
    "sk-placeholder",
];

/// Could `value` be a secret? Only then is it ever scrubbed from logs, checked for in replies
/// or redacted from artifacts. A secret has at least 12 characters, at least 3 bits of
/// entropy per character and 40 in all (counted over the value's own characters), and is not
/// a documented placeholder key. `ollama`, `x`, `EMPTY`, `sk-no-key-required` and words are
/// not secrets; `sk-…` keys, tokens and generated passwords are.
pub fn is_secret_like(value: &str) -> bool {
    let value = value.trim();
    let length = value.chars().count();
    if length < SECRET_MIN_CHARS
        || PLACEHOLDER_KEYS
            .iter()
            .any(|placeholder| placeholder.eq_ignore_ascii_case(value))
    {
        return false;
    }
    let per_char = entropy_per_char(value);
    per_char >= SECRET_MIN_BITS_PER_CHAR && per_char * length as f64 >= SECRET_MIN_BITS
}

/// Shannon entropy of the characters of `value`, in bits per character.
fn entropy_per_char(value: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut total = 0usize;
    for ch in value.chars() {
        *counts.entry(ch).or_insert(0usize) += 1;
        total += 1;
    }
    counts
        .values()
        .map(|&count| {
            let p = count as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

/// Never print `secret` in a log line from now on, if it could be a secret at all
/// ([`is_secret_like`]).
pub fn redact(secret: &str) {
    if !is_secret_like(secret) {
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

/// Replace every registered secret in `bytes` (an artifact about to be written); borrowed
/// when there is none, which is nearly always.
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut scrubbed = Cow::Borrowed(bytes);
    for secret in secrets.iter() {
        let finder = memchr::memmem::Finder::new(secret.as_bytes());
        if finder.find(&scrubbed).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(scrubbed.len());
        let mut rest: &[u8] = &scrubbed;
        while let Some(at) = finder.find(rest) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(b"[redacted]");
            rest = &rest[at + secret.len()..];
        }
        out.extend_from_slice(rest);
        scrubbed = Cow::Owned(out);
    }
    scrubbed
}

/// The filter directives: `RUST_LOG` if set, else the verbosity's; async-openai off unless
/// `RUST_LOG` names it.
fn directives(rust_log: Option<&str>, verbose: u8, quiet: bool) -> String {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,agent=debug",
        (false, _) => "warn,agent=trace",
    };
    let chosen = rust_log
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .unwrap_or(default);
    if chosen.contains("async_openai") {
        chosen.to_owned()
    } else {
        format!("{chosen},async_openai=off")
    }
}

/// Install the global subscriber. Call once, from `main`.
pub fn init(verbose: u8, quiet: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    // A RUST_LOG that does not parse falls back to the flags' level, as before.
    let filter = EnvFilter::try_new(directives(rust_log.as_deref(), verbose, quiet))
        .unwrap_or_else(|_| EnvFilter::new(directives(None, verbose, quiet)));
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
        assert_eq!(
            scrub_bytes(b"a sk-unit-test-secret-123 b sk-unit-test-secret-123").as_ref(),
            b"a [redacted] b [redacted]"
        );
        assert!(matches!(scrub_bytes(b"nothing secret"), Cow::Borrowed(_)));
        redact("ollama");
        assert_eq!(
            scrub("served by ollama"),
            "served by ollama",
            "a placeholder key is no secret; never scrub ordinary words"
        );
    }

    #[test]
    fn only_values_that_could_be_secrets_are_secret_like() {
        for weak in [
            "x",
            "ollama",
            "EMPTY",
            "none",
            "sk-no-key-required",
            "lm-studio",
            "password",
            "releasenotes",
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababab",
        ] {
            assert!(!is_secret_like(weak), "{weak}");
        }
        for strong in [
            "sk-proj-4fJ9kQ2mZx7LpR8vT1wY3bN6",
            "sk-SENTINEL-3f1c9a7e-never-print-me",
            "ghp_0d4c9b1e7f2a6c3d8e5f0a1b2c",
            "Pw7-zQ4k-PASS-91c2",
            "3f1c9a7e5b2d",
        ] {
            assert!(is_secret_like(strong), "{strong}");
        }
    }

    #[test]
    fn async_openai_is_silent_unless_rust_log_names_it() {
        assert_eq!(directives(None, 0, false), "warn,async_openai=off");
        assert_eq!(directives(None, 0, true), "error,async_openai=off");
        assert_eq!(
            directives(Some("trace"), 0, false),
            "trace,async_openai=off"
        );
        assert_eq!(
            directives(Some("  "), 1, false),
            "warn,agent=debug,async_openai=off"
        );
        assert_eq!(
            directives(Some("warn,async_openai=debug"), 0, false),
            "warn,async_openai=debug"
        );
        for verbose in 0..3 {
            assert!(EnvFilter::try_new(directives(Some("debug"), verbose, false)).is_ok());
        }
    }
}
