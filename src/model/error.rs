//! Errors from the model stage.

use std::time::Duration;

use miette::Diagnostic;

/// A model call that failed for good (after the transport retries allowed).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ModelError {
    /// The server answered with an error status.
    #[error("the model endpoint answered {status}{}: {}", retried(*retries), crate::text::quote(message, SERVER_MESSAGE_MAX))]
    #[diagnostic(code(agent::model::status))]
    Status {
        /// HTTP status code.
        status: u16,
        /// The server's message as it wrote it, redacted and cut at 4,096
        /// characters; escaped only where it is shown.
        message: String,
        /// Retries made before giving up.
        retries: u32,
        /// Advice.
        #[help]
        hint: Option<String>,
    },

    /// The server asked to wait longer than we are willing to.
    #[error("the model endpoint answered {status} and asked to retry after {}, over the {} cap", secs(*wait), secs(*cap))]
    #[diagnostic(
        code(agent::model::retry_after),
        help("raise the cap with --max-retry-wait, or try again later")
    )]
    RetryAfterTooLong {
        /// HTTP status code.
        status: u16,
        /// What the server asked for.
        wait: Duration,
        /// Our cap.
        cap: Duration,
    },

    /// No connection could be made, or it broke.
    #[error("cannot reach the model endpoint `{url}`{}: {message}", retried(*retries))]
    #[diagnostic(
        code(agent::model::connect),
        help("check --base-url (or OPENAI_BASE_URL) and that the server is running")
    )]
    Connect {
        /// The base URL.
        url: String,
        /// What failed.
        message: String,
        /// Retries made before giving up.
        retries: u32,
    },

    /// The connection broke while the response was arriving.
    #[error("the connection was reset while reading the response from `{url}`{}: {message}", retried(*retries))]
    #[diagnostic(
        code(agent::model::reset),
        help(
            "the server, or a proxy in front of it, dropped the connection in the middle of its reply; try again, or look in the server's logs"
        )
    )]
    ResponseReset {
        /// The base URL, without credentials.
        url: String,
        /// What failed.
        message: String,
        /// Retries made before giving up.
        retries: u32,
    },

    /// A streamed reply stopped before it ended: no `finish_reason` and no `[DONE]`.
    #[error("the reply streamed from `{url}` stopped before it ended (no `finish_reason`, no `[DONE]`) after {bytes} bytes of text{}", retried(*retries))]
    #[diagnostic(
        code(agent::model::stream_cut),
        help(
            "a cut stream is never taken for a reply; the server, or a proxy in front of it, closed the connection early: try again, look in the server's logs, or run with --no-stream"
        )
    )]
    StreamCut {
        /// The base URL, without credentials.
        url: String,
        /// The reply text (content and reasoning) that had come.
        bytes: usize,
        /// Retries made before giving up.
        retries: u32,
    },

    /// A streamed reply paused longer than the idle timeout.
    #[error("the model endpoint sent nothing for {} in the middle of a streamed reply{}", secs(*idle), retried(*retries))]
    #[diagnostic(
        code(agent::model::idle_timeout),
        help(
            "raise --idle-timeout for servers that pause long (reading a long prompt before the first token), or run with --no-stream"
        )
    )]
    IdleTimeout {
        /// The idle timeout.
        idle: Duration,
        /// Retries made before giving up.
        retries: u32,
    },

    /// The response body is larger than `--max-reply-bytes`.
    #[error("{}", too_large(*limit, *declared))]
    #[diagnostic(
        code(agent::model::reply_too_large),
        help(
            "nothing past the limit was read; if the server's replies are really this large, raise --max-reply-bytes (or `max_reply_bytes` in the agent.toml profile)"
        )
    )]
    ReplyTooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// The length the server declared, when it declared one over the limit.
        declared: Option<u64>,
    },

    /// An event stream came back for a request that asked for one whole reply.
    #[error(
        "the model endpoint answered with an event stream (`text/event-stream`) although the request asked for one whole reply (`stream: false`); it starts `{start}`"
    )]
    #[diagnostic(
        code(agent::model::event_stream),
        help(
            "the server, or a proxy in front of it, streams whatever it is asked; point --base-url at an endpoint that honours `stream: false`"
        )
    )]
    EventStream {
        /// The start of the stream, escaped and shortened.
        start: String,
    },

    /// The reply's content carries the API key.
    #[error("the model endpoint sent the API key back inside the reply; the reply was not used")]
    #[diagnostic(
        code(agent::model::key_in_reply),
        help(
            "a reply holding the key is never written to stdout, the run folder, a recording or a log; if the inputs contain the key, take it out of them"
        )
    )]
    KeyInReply,

    /// The request took longer than the timeout.
    #[error("the model endpoint did not answer within {}{}", secs(*timeout), retried(*retries))]
    #[diagnostic(
        code(agent::model::timeout),
        help("raise --timeout for slow models or long replies")
    )]
    Timeout {
        /// The per-request timeout.
        timeout: Duration,
        /// Retries made before giving up.
        retries: u32,
    },

    /// The response body is not a chat completion.
    #[error("the model endpoint sent a response that is not a chat completion: {message}")]
    #[diagnostic(code(agent::model::bad_response))]
    BadResponse {
        /// What is wrong, with the start of the body.
        message: String,
    },

    /// The completion has no choices.
    #[error("the model endpoint sent a completion with no choices: {body}")]
    #[diagnostic(code(agent::model::empty_choices))]
    EmptyChoices {
        /// The start of the body.
        body: String,
    },

    /// A replayed request has no recording.
    #[error("no recorded reply for this request: the recording `{path}` is stale\n{difference}")]
    #[diagnostic(
        code(agent::model::stale_recording),
        help(
            "record it again with --record against a live endpoint, or restore the prompt and inputs it was recorded with"
        )
    )]
    StaleRecording {
        /// The recording file.
        path: String,
        /// What differs from the closest recorded request.
        difference: String,
    },

    /// A recording file cannot be read or written.
    #[error("recording `{path}`: {message}")]
    #[diagnostic(code(agent::model::recording))]
    Recording {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A request refused because the eval's cost limit (`--max-cost`) would pass.
    #[error("{message}")]
    #[diagnostic(code(agent::model::budget))]
    Budget {
        /// The limit, what was spent and what the request may cost.
        message: String,
    },
}

/// The most of a server's error message kept: enough for the longest real ones (a vLLM
/// context-length message, a validation error listing fields), and bounded.
pub(crate) const SERVER_MESSAGE_MAX: usize = 4096;

/// The server's error message in an error body: `error.message` (OpenAI, llama.cpp),
/// `message` (vLLM) or `error` (Ollama) of a JSON body, else the body itself; as written, cut at
/// [`SERVER_MESSAGE_MAX`] characters. Escaping is left to where it is shown, so a JSON
/// artifact escapes it once.
pub(crate) fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .or_else(|| value.get("message"))
                .or_else(|| value.get("error"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        });
    let mut message = from_json.unwrap_or_else(|| body.trim().to_owned());
    // llama.cpp gives the window beside its message, OpenAI the reason's code: both are what
    // a re-ask needs to fit, so they stay with the message.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let error = value.get("error").unwrap_or(&value);
        let field = |name: &str| error.get(name).and_then(serde_json::Value::as_u64);
        if let Some(window) = field("n_ctx") {
            message.push_str(&format!(" (n_ctx {window}"));
            if let Some(prompt) = field("n_prompt_tokens") {
                message.push_str(&format!(", n_prompt_tokens {prompt}"));
            }
            message.push(')');
        }
        if error.get("code").and_then(serde_json::Value::as_str) == Some("context_length_exceeded")
            && !message.contains("context_length_exceeded")
        {
            message.push_str(" (context_length_exceeded)");
        }
    }
    if message.is_empty() {
        "(empty body)".to_owned()
    } else {
        crate::text::clip(&message, SERVER_MESSAGE_MAX)
    }
}

/// A server's refusal of a request longer than its context window, and the window when the
/// server says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextOverflow {
    /// The window in tokens: llama.cpp's `n_ctx`, vLLM's and OpenAI's "maximum context length
    /// is N tokens", llama-cpp-python's "context window of N".
    pub window: Option<u64>,
}

impl ModelError {
    /// Whether the server refused the request as too long for its context window (llama.cpp
    /// "exceeds the available context size", vLLM and OpenAI "maximum context length",
    /// `context_length_exceeded`, llama-cpp-python "exceed context window").
    pub fn context_overflow(&self) -> Option<ContextOverflow> {
        let ModelError::Status {
            status, message, ..
        } = self
        else {
            return None;
        };
        if *status < 400 {
            return None;
        }
        let lower = message.to_ascii_lowercase();
        let overflow = [
            "exceeds the available context size",
            "maximum context length",
            "context_length_exceeded",
            "exceed context window",
            "context window exceeded",
            "exceeds the context window",
        ]
        .iter()
        .any(|phrase| lower.contains(phrase));
        if !overflow {
            return None;
        }
        let number_after = |phrase: &str| {
            let at = lower.find(phrase)? + phrase.len();
            let digits: String = lower[at..]
                .trim_start_matches([' ', '=', ':', '('])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().ok().filter(|n| *n > 0)
        };
        let window = number_after("n_ctx")
            .or_else(|| number_after("maximum context length is"))
            .or_else(|| number_after("context window of"))
            .or_else(|| number_after("context size of"));
        Some(ContextOverflow { window })
    }

    /// The error as a run records it (`run.json`, the `--json` envelope): a server's message
    /// as it wrote it, which the JSON escapes once, where the terminal shows it escaped.
    pub fn recorded(&self) -> String {
        match self {
            ModelError::Status {
                status,
                message,
                retries,
                ..
            } => format!(
                "the model endpoint answered {status}{}: {message}",
                retried(*retries)
            ),
            other => other.to_string(),
        }
    }

    /// Whether this error is the user's to fix (a stale or unreadable recording) rather than
    /// the endpoint's.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ModelError::StaleRecording { .. } | ModelError::Recording { .. }
        )
    }
}

fn retried(retries: u32) -> String {
    match retries {
        0 => String::new(),
        1 => " after 1 retry".to_owned(),
        n => format!(" after {n} retries"),
    }
}

fn too_large(limit: u64, declared: Option<u64>) -> String {
    match declared {
        Some(length) => format!(
            "the model endpoint announced a {length}-byte response, over the {limit}-byte limit (--max-reply-bytes)"
        ),
        None => format!(
            "the model endpoint's response is over the {limit}-byte limit (--max-reply-bytes)"
        ),
    }
}

/// A duration for a message; a server's absurd wait reads as what it is.
fn secs(duration: Duration) -> String {
    const YEAR: f64 = 365.0 * 24.0 * 3600.0;
    let secs = duration.as_secs_f64();
    if secs > YEAR {
        "more than a year".to_owned()
    } else if secs >= 1.0 && secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, body: &str) -> ModelError {
        ModelError::Status {
            status,
            message: server_message(body),
            retries: 0,
            hint: None,
        }
    }

    #[test]
    fn each_server_s_context_overflow_is_recognised_with_its_window() {
        let cases = [
            // llama.cpp's llama-server: the window beside the message.
            (
                400,
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":17000,"n_ctx":16384}}"#,
                Some(16_384),
            ),
            // An older llama-server: no number.
            (
                500,
                r#"{"error":{"code":500,"message":"the request exceeds the available context size. try increasing the context size or enable context shift","type":"server_error"}}"#,
                None,
            ),
            // vLLM.
            (
                400,
                r#"{"object":"error","message":"This model's maximum context length is 16384 tokens. However, you requested 17200 tokens (9200 in the messages, 8000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#,
                Some(16_384),
            ),
            // OpenAI.
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                Some(128_000),
            ),
            // llama-cpp-python.
            (
                400,
                r#"{"error":{"message":"Requested tokens (17000) exceed context window of 16384","type":"invalid_request_error"}}"#,
                Some(16_384),
            ),
        ];
        for (status, body, window) in cases {
            assert_eq!(
                refused(status, body).context_overflow(),
                Some(ContextOverflow { window }),
                "{body}"
            );
        }
        let other = refused(400, r#"{"error":{"message":"invalid response_format"}}"#);
        assert_eq!(other.context_overflow(), None);
    }
}
