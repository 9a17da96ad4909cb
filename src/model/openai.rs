//! [`OpenAiClient`]: chat completions against any OpenAI-compatible base URL, through
//! async-openai's bring-your-own-types calls, with our transport and retry loop.
//!
//! The key stays out of everything but the request, without ever altering a deliverable: a
//! key that could be a secret ([`crate::logging::is_secret_like`]) is redacted from the raw
//! response, the reasoning and any message quoting the server; if it comes back inside the
//! reply's content, the reply is refused ([`ModelError::KeyInReply`]) rather than rewritten
//! or handed on. A weak key (`ollama`, `x`, `EMPTY`) is never looked for at all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::base_url::display_url;
use super::body::{BodyError, BodyLimits};
use super::client::{ModelClient, ModelFuture};
use super::completion::Completion;
use super::error::ModelError;
use super::pacer::Pacer;
use super::request::ChatRequest;
use super::retry::{self, RetryPolicy};
use super::transport::{StatusFailure, Transport, TransportFailure};

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
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("max_reply_bytes", &self.max_reply_bytes)
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
    endpoint: Endpoint,
    pacer: Arc<Pacer>,
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
        let transport = Transport::new(http, BodyLimits::capped(endpoint.max_reply_bytes));
        let client = async_openai::Client::with_config(config).with_http_service(transport);
        Ok(OpenAiClient {
            client,
            endpoint,
            pacer,
        })
    }

    async fn complete_with_retries(&self, request: &ChatRequest) -> Result<Completion, ModelError> {
        let mut retries = 0;
        loop {
            self.pacer.ready().await;
            let started = Instant::now();
            let chat = self.client.chat();
            let call = chat.create_byot::<_, Value>(request);
            let failure = match tokio::time::timeout(self.endpoint.timeout, call).await {
                Ok(Ok(body)) => {
                    tracing::debug!(
                        elapsed_ms =
                            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        retries,
                        "completion received"
                    );
                    let mut completion = Completion::from_response(self.keep_key_out(body)?)?;
                    completion.retries = retries;
                    return Ok(completion);
                }
                Ok(Err(error)) => self.classify(error, retries),
                Err(_) => Failure::retryable(ModelError::Timeout {
                    timeout: self.endpoint.timeout,
                    retries,
                }),
            };
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

    fn classify(&self, error: OpenAIError, retries: u32) -> Failure {
        let url = || display_url(&self.endpoint.base_url).into_owned();
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<TransportFailure>() {
                Ok(failure) => match *failure {
                    TransportFailure::Status(status) => self.status_failure(status, retries),
                    TransportFailure::Body(BodyError::TooLarge { limit, declared }) => {
                        Failure::fatal(ModelError::ReplyTooLarge { limit, declared })
                    }
                    TransportFailure::Body(BodyError::Interrupted(source)) => {
                        Failure::retryable(ModelError::ResponseReset {
                            url: url(),
                            message: crate::text::quote(
                                &self.redact(&crate::text::error_chain(source.as_ref())),
                                300,
                            ),
                            retries,
                        })
                    }
                    // A pause between chunks longer than the reader allows: nothing answered
                    // within that time.
                    TransportFailure::Body(BodyError::Idle { idle }) => {
                        Failure::retryable(ModelError::Timeout {
                            timeout: idle,
                            retries,
                        })
                    }
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
            _ => None,
        };
        Failure {
            retry,
            requested_wait: failure.requested_wait,
            status: Some(failure.status),
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

    fn describe(&self) -> String {
        display_url(&self.endpoint.base_url).into_owned()
    }
}

/// One failed try, and whether another is worth making.
struct Failure {
    retry: bool,
    requested_wait: Option<Duration>,
    status: Option<u16>,
    error: ModelError,
}

impl Failure {
    fn retryable(error: ModelError) -> Failure {
        Failure {
            retry: true,
            requested_wait: None,
            status: None,
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
