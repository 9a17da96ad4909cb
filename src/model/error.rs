//! Errors from the model stage.

use std::time::Duration;

use miette::Diagnostic;

/// A model call that failed for good (after the transport retries allowed).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ModelError {
    /// The server answered with an error status.
    #[error("the model endpoint answered {status}{}: {message}", retried(*retries))]
    #[diagnostic(code(agent::model::status))]
    Status {
        /// HTTP status code.
        status: u16,
        /// The server's message, redacted and shortened.
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
}

impl ModelError {
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
