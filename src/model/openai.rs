//! [`OpenAiClient`]: chat completions against any OpenAI-compatible base URL, through
//! async-openai's bring-your-own-types calls, with our transport and retry loop.
//!
//! The key stays out of everything but the request, without ever altering a deliverable: a
//! key that could be a secret ([`crate::logging::is_secret_like`]) is redacted from the raw
//! response, the reasoning and any message quoting the server; if it comes back inside the
//! reply's content, the reply is refused ([`ModelError::KeyInReply`]) rather than rewritten
//! or handed on. A weak key (`ollama`, `x`, `EMPTY`) is never looked for at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::base_url::display_url;
use super::body::{BodyError, BodyLimits, BodyReader};
use super::client::{ModelClient, ModelFuture};
use super::completion::Completion;
use super::error::ModelError;
use super::pacer::Pacer;
use super::request::ChatRequest;
use super::retry::{self, RetryPolicy};
use super::server::{self, SchemaForm, Server, Wire};
use super::sse::{Assembler, EventParser, StreamProblem};
use super::transport::{self, StatusFailure, Transport, TransportFailure};

/// Where and how to reach an endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// The base URL (`https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`); credentials
    /// in it (`http://user:pass@host/v1`) are sent, and never shown.
    pub base_url: String,
    /// The API key; none for local servers that need none.
    pub api_key: Option<SecretString>,
    /// The per-request timeout.
    pub timeout: Duration,
    /// The transport retry policy.
    pub retry: RetryPolicy,
    /// The largest response body read; a larger one is refused.
    pub max_reply_bytes: u64,
    /// Stream replies (SSE); off sends `stream: false` and reads one whole body.
    pub stream: bool,
    /// The longest pause between two chunks of a streamed reply.
    pub idle_timeout: Duration,
    /// The kind of server, when known: it decides the `response_format` form sent.
    pub server: Option<Server>,
}

impl Endpoint {
    /// An endpoint at `base_url` with every other setting at its default.
    pub fn new(base_url: impl Into<String>) -> Endpoint {
        Endpoint {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            max_reply_bytes: super::body::DEFAULT_MAX_REPLY_BYTES,
            stream: true,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            server: None,
        }
    }
}

/// The default longest pause between two chunks of a stream: long enough for a local server
/// to read a long prompt before its first token.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(180);

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .field("stream", &self.stream)
            .field("idle_timeout", &self.idle_timeout)
            .field("server", &self.server)
            .finish()
    }
}

/// async-openai configuration that sends a key only when there is one.
#[derive(Clone)]
struct EndpointConfig {
    base_url: String,
    api_key: SecretString,
}

impl Config for EndpointConfig {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let key = self.api_key.expose_secret();
        if !key.is_empty()
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {key}"))
        {
            // Sensitive values print as `Sensitive` in every Debug output, trace logs included.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base_url
    }

    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

/// A live OpenAI-compatible endpoint.
pub struct OpenAiClient {
    client: async_openai::Client<EndpointConfig>,
    /// Streams are read here rather than through async-openai, whose stream ends the same way
    /// on `[DONE]` and on a cut connection, and reads without our byte cap or idle timeout.
    http: reqwest::Client,
    config: EndpointConfig,
    endpoint: Endpoint,
    pacer: Arc<Pacer>,
    /// What the server refused once, kept for every later request of this client.
    learned: Learned,
}

/// What a server taught the client by refusing it.
#[derive(Default)]
struct Learned {
    /// It refused OpenAI's `json_schema` form: send `{type: json_object, schema}`.
    json_object_schema: AtomicBool,
    /// It refused `stream_options`.
    no_stream_options: AtomicBool,
}

impl OpenAiClient {
    /// A client for `endpoint`; requests wait on `pacer`, which may be shared.
    pub fn new(endpoint: Endpoint, pacer: Arc<Pacer>) -> Result<OpenAiClient, ModelError> {
        // The whole-request timeout is ours (around each try), so it reads as a timeout.
        let http = reqwest::Client::builder()
            .connect_timeout(endpoint.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|error| ModelError::Connect {
                url: display_url(&endpoint.base_url).into_owned(),
                message: error.to_string(),
                retries: 0,
            })?;
        let config = EndpointConfig {
            base_url: endpoint.base_url.clone(),
            api_key: endpoint
                .api_key
                .clone()
                .unwrap_or_else(|| SecretString::from("")),
        };
        let transport = Transport::new(http.clone(), BodyLimits::capped(endpoint.max_reply_bytes));
        let client = async_openai::Client::with_config(config.clone()).with_http_service(transport);
        Ok(OpenAiClient {
            client,
            http,
            config,
            endpoint,
            pacer,
            learned: Learned::default(),
        })
    }

    /// How the next request goes on the wire.
    fn wire(&self) -> Wire {
        Wire {
            stream: self.endpoint.stream,
            include_usage: !self.learned.no_stream_options.load(Ordering::Relaxed),
            form: if self.learned.json_object_schema.load(Ordering::Relaxed) {
                SchemaForm::JsonObjectSchema
            } else {
                SchemaForm::of(self.endpoint.server)
            },
        }
    }

    /// One try: the response body, or why not.
    async fn send(&self, body: &Value, stream: bool, retries: u32) -> Result<Value, Failure> {
        if !stream {
            let chat = self.client.chat();
            return chat
                .create_byot::<_, Value>(body)
                .await
                .map_err(|error| self.classify(error, retries));
        }
        let url = self.config.url("/chat/completions");
        let response = self
            .http
            .post(url)
            .headers(self.config.headers())
            .json(body)
            .send()
            .await
            .map_err(|error| self.classify(OpenAIError::Reqwest(error.without_url()), retries))?;
        let limits = BodyLimits {
            max_bytes: self.endpoint.max_reply_bytes,
            idle_timeout: Some(self.endpoint.idle_timeout),
        };
        if !response.status().is_success() {
            let failure = transport::status_failure(response, limits).await;
            return Err(self.classify(failure.boxed(), retries));
        }
        let event_stream = transport::is_event_stream(response.headers());
        let mut reader =
            BodyReader::of(response, limits).map_err(|error| self.body_failure(error, retries))?;
        let mut parser = EventParser::default();
        let mut assembler = Assembler::default();
        // A server that ignored `stream: true` sends one JSON body: the start of the body
        // shows which it is.
        let mut body = if event_stream {
            Sniff::Stream
        } else {
            Sniff::Undecided(Vec::new())
        };
        loop {
            let chunk = reader
                .next_chunk()
                .await
                .map_err(|error| self.body_failure(error, retries))?;
            let Some(chunk) = chunk else {
                if let Sniff::Undecided(start) = &body {
                    body = Sniff::Whole(start.clone());
                }
                self.take_events(&mut assembler, |on_event| parser.finish(on_event))?;
                break;
            };
            match &mut body {
                Sniff::Stream => {
                    self.take_events(&mut assembler, |on_event| parser.feed(&chunk, on_event))?;
                }
                Sniff::Whole(bytes) => bytes.extend_from_slice(&chunk),
                Sniff::Undecided(start) => {
                    start.extend_from_slice(&chunk);
                    match transport::sniff_event_stream(start) {
                        Some(true) => {
                            self.take_events(&mut assembler, |on_event| {
                                parser.feed(start, on_event)
                            })?;
                            body = Sniff::Stream;
                        }
                        Some(false) => body = Sniff::Whole(std::mem::take(start)),
                        None => {}
                    }
                }
            }
            if assembler.done() {
                break;
            }
        }
        if let Sniff::Whole(bytes) = body {
            return serde_json::from_slice(&bytes).map_err(|error| {
                let start = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
                Failure::fatal(ModelError::BadResponse {
                    message: format!(
                        "{error}; the body starts `{}`",
                        crate::text::quote(&self.redact(&start), 120)
                    ),
                })
            });
        }
        if !assembler.ended() {
            return Err(Failure::retryable(ModelError::StreamCut {
                url: display_url(&self.endpoint.base_url).into_owned(),
                bytes: assembler.bytes(),
                retries,
            }));
        }
        if !assembler.saw_choice() {
            return Err(Failure::fatal(ModelError::EmptyChoices {
                body: "a stream with no choice in any chunk".into(),
            }));
        }
        Ok(assembler.body())
    }

    /// Fold the events `parse` finds (in the bytes of one read) into the reply, and count
    /// their tokens for the progress line once for the read, not once per event.
    fn take_events(
        &self,
        assembler: &mut Assembler,
        parse: impl FnOnce(
            &mut dyn FnMut(&str) -> Result<(), StreamProblem>,
        ) -> Result<(), StreamProblem>,
    ) -> Result<(), Failure> {
        // Tokens after the last count the server reported, and that count.
        let mut tokens = 0;
        let mut reported = None;
        let parsed = parse(&mut |data| {
            let step = assembler.event(data)?;
            tokens += step.content + step.reasoning;
            // The server's count replaces ours, this event's tokens included.
            if let Some(count) = step.completion_tokens {
                reported = Some(count);
                tokens = 0;
            }
            Ok(())
        });
        if let Some(count) = reported {
            crate::progress::reported(count);
        }
        crate::progress::tokens(tokens);
        parsed.map_err(|problem| {
            Failure::fatal(ModelError::BadResponse {
                message: match problem {
                    StreamProblem::NotJson { start } => format!(
                        "a stream event is not JSON: `{}`",
                        crate::text::quote(&self.redact(&start), 120)
                    ),
                    StreamProblem::Error { message } => format!(
                        "the stream carried an error: {}",
                        crate::text::quote(&self.redact(&message), 300)
                    ),
                },
            })
        })
    }

    async fn complete_with_retries(&self, request: &ChatRequest) -> Result<Completion, ModelError> {
        let mut retries = 0;
        // A form the server refused is replaced once per request, not counted as a retry.
        let mut adapted = false;
        let logical = serde_json::to_value(request).map_err(|error| ModelError::BadResponse {
            message: format!("the request does not serialize: {error}"),
        })?;
        loop {
            self.pacer.ready().await;
            let started = Instant::now();
            let wire = self.wire();
            let body = wire.body(logical.clone());
            let failure = match tokio::time::timeout(
                self.endpoint.timeout,
                self.send(&body, wire.stream, retries),
            )
            .await
            {
                Ok(Ok(raw)) => {
                    tracing::debug!(
                        elapsed_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        retries,
                        stream = wire.stream,
                        "completion received"
                    );
                    let mut completion = Completion::from_response(self.keep_key_out(raw)?)?;
                    completion.retries = retries;
                    completion.sent = Some(body);
                    return Ok(completion);
                }
                Ok(Err(failure)) => failure,
                Err(_) => Failure::retryable(ModelError::Timeout {
                    timeout: self.endpoint.timeout,
                    retries,
                }),
            };
            if !adapted && self.learn(&failure, &body, wire) {
                adapted = true;
                continue;
            }
            let policy = &self.endpoint.retry;
            if !failure.retry || retries >= policy.max_retries {
                return Err(failure.error);
            }
            let wait = match failure.requested_wait {
                Some(wait) if wait > policy.max_retry_wait => {
                    return Err(ModelError::RetryAfterTooLong {
                        status: failure.status.unwrap_or(0),
                        wait,
                        cap: policy.max_retry_wait,
                    });
                }
                Some(wait) => wait,
                None => policy.backoff(retries),
            };
            if failure.status == Some(429) {
                self.pacer.hold(wait);
            }
            tracing::warn!(
                "{}; retrying in {:.1} s ({} of {})",
                failure.error,
                wait.as_secs_f64(),
                retries + 1,
                policy.max_retries
            );
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// Whether `failure` refused a form this client can replace (OpenAI's `json_schema`
    /// form, when no server was named; `stream_options`): if so the replacement is kept for
    /// every later request, and the request is sent again at once.
    fn learn(&self, failure: &Failure, body: &Value, wire: Wire) -> bool {
        let (Some(status), Some(text)) = (failure.status, failure.body.as_deref()) else {
            return false;
        };
        let sent_schema = body
            .pointer("/response_format/type")
            .and_then(Value::as_str)
            == Some("json_schema");
        if sent_schema
            && self.endpoint.server.is_none()
            && wire.form == SchemaForm::OpenAi
            && server::refuses_response_format(status, text)
        {
            self.learned
                .json_object_schema
                .store(true, Ordering::Relaxed);
            tracing::warn!(
                "the server answered {status} to `response_format: json_schema`; sending `{{type: json_object, schema}}` (llama-cpp-python's form) from now on (name the server with --server, or `server` in the agent.toml profile, to skip this)"
            );
            return true;
        }
        if wire.stream && wire.include_usage && server::refuses_stream_options(status, text) {
            self.learned
                .no_stream_options
                .store(true, Ordering::Relaxed);
            tracing::warn!(
                "the server answered {status} to `stream_options`; streaming without it from now on"
            );
            return true;
        }
        false
    }

    /// A body that could not be read within its limits.
    fn body_failure(&self, error: BodyError, retries: u32) -> Failure {
        match error {
            BodyError::TooLarge { limit, declared } => {
                Failure::fatal(ModelError::ReplyTooLarge { limit, declared })
            }
            BodyError::Interrupted(source) => Failure::retryable(ModelError::ResponseReset {
                url: display_url(&self.endpoint.base_url).into_owned(),
                message: crate::text::quote(
                    &self.redact(&crate::text::error_chain(source.as_ref())),
                    300,
                ),
                retries,
            }),
            // A pause between chunks longer than the reader allows.
            BodyError::Idle { idle } => {
                Failure::retryable(ModelError::IdleTimeout { idle, retries })
            }
        }
    }

    fn classify(&self, error: OpenAIError, retries: u32) -> Failure {
        let url = || display_url(&self.endpoint.base_url).into_owned();
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<TransportFailure>() {
                Ok(failure) => match *failure {
                    TransportFailure::Status(status) => self.status_failure(status, retries),
                    TransportFailure::Body(error) => self.body_failure(error, retries),
                    TransportFailure::EventStream { start } => {
                        Failure::fatal(ModelError::EventStream {
                            start: crate::text::quote(&self.redact(&start), 120),
                        })
                    }
                },
                Err(other) => Failure::fatal(ModelError::BadResponse {
                    message: crate::text::quote(&self.redact(&other.to_string()), 300),
                }),
            },
            OpenAIError::Reqwest(error) => Failure::retryable(ModelError::Connect {
                url: url(),
                message: crate::text::quote(
                    &self.redact(&crate::text::error_chain(&error.without_url())),
                    300,
                ),
                retries,
            }),
            OpenAIError::JSONDeserialize(error, content) => {
                // Only the start of the body is looked at: it may be megabytes of junk.
                let start: String = content.chars().take(400).collect();
                Failure::fatal(ModelError::BadResponse {
                    message: format!(
                        "{error}; the body starts `{}`",
                        crate::text::quote(&self.redact(&start), 120)
                    ),
                })
            }
            other => Failure::fatal(ModelError::BadResponse {
                message: crate::text::quote(&self.redact(&other.to_string()), 300),
            }),
        }
    }

    fn status_failure(&self, failure: StatusFailure, retries: u32) -> Failure {
        let body = self.redact(&failure.body);
        let retry = failure
            .should_retry
            .unwrap_or_else(|| retry::is_retryable(failure.status, &body));
        let message = error_message(&body);
        let hint = match failure.status {
            401 | 403 => Some(
                "check the API key: OPENAI_API_KEY, or the profile's api_key_env in agent.toml"
                    .into(),
            ),
            404 => Some(
                "check --model and --base-url (an OpenAI-compatible base URL usually ends in /v1)"
                    .into(),
            ),
            429 if body.contains("insufficient_quota") => {
                Some("the account's quota is exhausted; waiting will not help".into())
            }
            status if server::refuses_response_format(status, &body) => Some(
                "the server refused the `response_format` sent: name it with --server (openai, llama-cpp-python, llama-server, vllm, ollama) or `server` in the agent.toml profile so it is sent the form it accepts, or use --response-format json-object or none".into(),
            ),
            _ => None,
        };
        Failure {
            retry,
            requested_wait: failure.requested_wait,
            status: Some(failure.status),
            body: Some(body.clone()),
            error: ModelError::Status {
                status: failure.status,
                message,
                retries,
                hint,
            },
        }
    }

    /// The key, when it could be a secret: a placeholder such as `ollama` is never looked for,
    /// so it can never alter a reply.
    fn secret(&self) -> Option<&str> {
        self.endpoint
            .api_key
            .as_ref()
            .map(|k| k.expose_secret())
            .filter(|k| crate::logging::is_secret_like(k))
    }

    /// A response body with the key kept out: refused when the reply's content (the
    /// deliverable's source) holds the key, since a deliverable is never rewritten; else the
    /// key is redacted from every other string of it (reasoning, a refusal, metadata), which
    /// artifacts and recordings keep.
    fn keep_key_out(&self, mut body: Value) -> Result<Value, ModelError> {
        let Some(key) = self.secret() else {
            return Ok(body);
        };
        if super::completion::content_of(&body).contains(key) {
            return Err(ModelError::KeyInReply);
        }
        redact_value(&mut body, key);
        Ok(body)
    }

    /// Remove the key from text that came back from the server.
    fn redact(&self, text: &str) -> String {
        match self.secret() {
            Some(key) => text.replace(key, "[redacted]"),
            None => text.to_owned(),
        }
    }
}

/// Remove `key` from every string of a response body.
fn redact_value(value: &mut Value, key: &str) {
    match value {
        Value::String(text) if text.contains(key) => {
            *text = text.replace(key, "[redacted]");
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, key)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_value(v, key)),
        _ => {}
    }
}

impl ModelClient for OpenAiClient {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        Box::pin(self.complete_with_retries(request))
    }

    fn wire_body(&self, request: &ChatRequest) -> Value {
        self.wire()
            .body(serde_json::to_value(request).unwrap_or_default())
    }

    fn describe(&self) -> String {
        display_url(&self.endpoint.base_url).into_owned()
    }
}

/// What a body answering a streaming request turned out to be.
enum Sniff {
    /// Too little of it has come to tell.
    Undecided(Vec<u8>),
    /// An event stream.
    Stream,
    /// One whole body, kept until it ends.
    Whole(Vec<u8>),
}

/// One failed try, and whether another is worth making.
struct Failure {
    retry: bool,
    requested_wait: Option<Duration>,
    status: Option<u16>,
    /// The start of an error status's body (redacted), to learn from.
    body: Option<String>,
    error: ModelError,
}

impl Failure {
    fn retryable(error: ModelError) -> Failure {
        Failure {
            retry: true,
            requested_wait: None,
            status: None,
            body: None,
            error,
        }
    }

    fn fatal(error: ModelError) -> Failure {
        Failure {
            retry: false,
            ..Failure::retryable(error)
        }
    }
}

/// The server's error message: `error.message` of a JSON body, else the body's start.
fn error_message(body: &str) -> String {
    super::error::server_message(body)
}
