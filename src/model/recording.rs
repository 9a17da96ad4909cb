//! Record and replay: each exchange saved keyed by its request, so runs, evals and tests work
//! offline and deterministically. A replayed request with no recording is an error that says
//! the recording is stale and what differs, never a silent fallback to a live call.
//!
//! A recording is a JSON file: `{"version": 1, "exchanges": [{"key", "request", "response"}]}`.
//! The request is the body we sent (no headers, so never a key); the response is the body
//! the server answered. The file is scrubbed of secrets as every artifact is (a key that the
//! inputs hold reads `[redacted]`), while each exchange's key is the hash of the request as
//! sent, so a replay of the same inputs still finds it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::client::{ModelClient, ModelFuture};
use super::completion::Completion;
use super::error::ModelError;
use super::request::{ChatRequest, canonical};

const VERSION: u32 = 1;

/// A recording file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    /// The format version.
    pub version: u32,
    /// The exchanges, in the order they were made.
    pub exchanges: Vec<Exchange>,
}

/// One request and the response it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// The SHA-256 of the request's canonical JSON.
    pub key: String,
    /// The request body.
    pub request: ChatRequest,
    /// The response body.
    pub response: Value,
    /// The error status the server answered with, for a request it refused as too long for
    /// its context window: the run plans its next request from that refusal, so a replay
    /// must meet it too. The response then holds the server's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// The key of a request.
pub fn key_of(request: &ChatRequest) -> String {
    Sha256::digest(request.canonical_json().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Recording {
    /// Read a recording file.
    pub fn load(path: &Path) -> Result<Recording, ModelError> {
        let error = |message: String| ModelError::Recording {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let recording: Recording = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if recording.version != VERSION {
            return Err(error(format!(
                "version {} is not {VERSION}",
                recording.version
            )));
        }
        Ok(recording)
    }

    /// The model of every exchange, when they all agree.
    pub fn model(&self) -> Option<&str> {
        let mut models = self.exchanges.iter().map(|e| e.request.model.as_str());
        let first = models.next()?;
        models.all(|m| m == first).then_some(first)
    }

    /// The response recorded for `request`.
    pub fn find(&self, request: &ChatRequest) -> Option<&Value> {
        let key = key_of(request);
        self.exchanges
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.response)
    }

    /// What differs between `request` and the closest recorded request, for a stale-recording
    /// message: the model and parameters, then the first differing message and where.
    pub fn difference(&self, request: &ChatRequest) -> String {
        let closest = self
            .exchanges
            .iter()
            // On a tie (a re-ask shares its first message with the first attempt), the
            // request with as many messages is the closer one.
            .max_by_key(|e| {
                (
                    common_prefix(&e.request, request),
                    std::cmp::Reverse(e.request.messages.len().abs_diff(request.messages.len())),
                )
            });
        let Some(recorded) = closest.map(|e| &e.request) else {
            return "the recording holds no exchanges".into();
        };
        let mut lines = Vec::new();
        let mut param = |name: &str, was: String, now: String| {
            if was != now {
                lines.push(format!("- {name}: recorded {was}, now {now}"));
            }
        };
        param("model", recorded.model.clone(), request.model.clone());
        param(
            "temperature",
            shown(recorded.temperature),
            shown(request.temperature),
        );
        param("top_p", shown(recorded.top_p), shown(request.top_p));
        param(
            "max_tokens",
            shown(recorded.max_tokens),
            shown(request.max_tokens),
        );
        param("seed", shown(recorded.seed), shown(request.seed));
        param(
            "response_format",
            recorded
                .response_format
                .as_ref()
                .map_or("none".into(), canonical),
            request
                .response_format
                .as_ref()
                .map_or("none".into(), canonical),
        );
        param(
            "messages",
            recorded.messages.len().to_string(),
            request.messages.len().to_string(),
        );
        for (index, (was, now)) in recorded.messages.iter().zip(&request.messages).enumerate() {
            if was == now {
                continue;
            }
            let at = was
                .content
                .char_indices()
                .zip(now.content.chars())
                .find(|((_, a), b)| a != b)
                .map_or(was.content.len().min(now.content.len()), |((i, _), _)| i);
            let line = was.content[..at].matches('\n').count() + 1;
            lines.push(format!(
                "- message {} ({:?}) differs at line {line}: recorded \"{}\", now \"{}\"",
                index + 1,
                now.role,
                excerpt(&was.content, at),
                excerpt(&now.content, at)
            ));
            break;
        }
        if lines.is_empty() {
            lines.push(
                "- the closest recorded request differs only in fields not compared here".into(),
            );
        }
        lines.join("\n")
    }
}

fn common_prefix(a: &ChatRequest, b: &ChatRequest) -> usize {
    let mut total = usize::from(a.model == b.model) * 1_000_000;
    for (x, y) in a.messages.iter().zip(&b.messages) {
        let same = x
            .content
            .bytes()
            .zip(y.content.bytes())
            .take_while(|(p, q)| p == q)
            .count();
        total += same;
        if same < x.content.len().max(y.content.len()) {
            break;
        }
    }
    total
}

/// A parameter as a person writes it: `64`, or `none` when it is not sent (never Rust's
/// `Some(64)`).
fn shown<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_owned(), |value| value.to_string())
}

/// Forty characters of `text` from near byte `at`, on one line.
fn excerpt(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(10);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    crate::text::quote(&text[start..], 40)
}

/// Answers requests from a recording only.
pub struct Replayer {
    path: PathBuf,
    recording: Recording,
    /// Exchange index by key: an eval replays thousands of requests from one file.
    index: std::collections::HashMap<String, usize>,
}

impl Replayer {
    /// Replay the recording at `path`.
    pub fn load(path: &Path) -> Result<Replayer, ModelError> {
        let recording = Recording::load(path)?;
        let index = recording
            .exchanges
            .iter()
            .enumerate()
            .map(|(at, exchange)| (exchange.key.clone(), at))
            .collect();
        Ok(Replayer {
            path: path.to_owned(),
            recording,
            index,
        })
    }

    /// The recording.
    pub fn recording(&self) -> &Recording {
        &self.recording
    }
}

impl ModelClient for Replayer {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        Box::pin(async move {
            let found = self
                .index
                .get(&key_of(request))
                .map(|&at| &self.recording.exchanges[at]);
            match found {
                Some(Exchange {
                    status: Some(status),
                    response,
                    ..
                }) => Err(ModelError::Status {
                    status: *status,
                    message: super::error::server_message(&response.to_string()),
                    retries: 0,
                    hint: None,
                }),
                Some(exchange) => Completion::from_response(exchange.response.clone()),
                None => Err(ModelError::StaleRecording {
                    path: self.path.display().to_string(),
                    difference: self.recording.difference(request),
                }),
            }
        })
    }

    fn describe(&self) -> String {
        format!("replay of {}", self.path.display())
    }
}

/// Passes requests to another client and saves each successful exchange to a file, which is
/// rewritten whole (atomically) after every exchange so that an interrupted run keeps what it got.
/// A staged recorder writes beside the recording instead, and [`Recorder::commit`] moves the
/// result over it, so that an interrupted refresh never leaves a recording cut short.
pub struct Recorder<C> {
    inner: C,
    path: PathBuf,
    staging: Option<PathBuf>,
    recording: Mutex<Recording>,
}

impl<C: ModelClient> Recorder<C> {
    /// Record `inner`'s exchanges to a new recording at `path`, replacing any there.
    pub fn fresh(inner: C, path: &Path) -> Recorder<C> {
        Recorder {
            inner,
            path: path.to_owned(),
            staging: None,
            recording: Mutex::new(Recording {
                version: VERSION,
                exchanges: Vec::new(),
            }),
        }
    }

    /// Record `inner`'s exchanges for `path` into `staging`, which holds them until
    /// [`Recorder::commit`]. The recording starts from `staging` when it exists (a resumed
    /// refresh), else empty when `whole` (every case of the file runs again), else from the
    /// exchanges at `path`.
    pub fn staged(
        inner: C,
        path: &Path,
        staging: &Path,
        whole: bool,
    ) -> Result<Recorder<C>, ModelError> {
        let recording = if staging.exists() {
            Recording::load(staging)?
        } else if whole || !path.exists() {
            Recording {
                version: VERSION,
                exchanges: Vec::new(),
            }
        } else {
            Recording::load(path)?
        };
        Ok(Recorder {
            inner,
            path: path.to_owned(),
            staging: Some(staging.to_owned()),
            recording: Mutex::new(recording),
        })
    }

    /// Move what a staged recorder recorded over its recording, in one rename.
    pub fn commit(&self) -> Result<(), ModelError> {
        let Some(staging) = &self.staging else {
            return Ok(());
        };
        if !staging.exists() {
            return Ok(());
        }
        let failed = |e: std::io::Error| ModelError::Recording {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        if std::fs::rename(staging, &self.path).is_err() {
            // Another file system: copy atomically, then drop the staged file.
            let bytes = std::fs::read(staging).map_err(failed)?;
            crate::artifacts::write_atomic(&self.path, &bytes, true).map_err(failed)?;
            std::fs::remove_file(staging).map_err(failed)?;
        }
        Ok(())
    }

    /// Record `inner`'s exchanges to `path`, keeping exchanges already there (other keys).
    pub fn new(inner: C, path: &Path) -> Result<Recorder<C>, ModelError> {
        let recording = if path.exists() {
            Recording::load(path)?
        } else {
            Recording {
                version: VERSION,
                exchanges: Vec::new(),
            }
        };
        Ok(Recorder {
            inner,
            path: path.to_owned(),
            staging: None,
            recording: Mutex::new(recording),
        })
    }

    fn save(
        &self,
        request: &ChatRequest,
        response: &Value,
        status: Option<u16>,
    ) -> Result<(), ModelError> {
        let mut recording = self.recording.lock().unwrap_or_else(|e| e.into_inner());
        let key = key_of(request);
        recording.exchanges.retain(|e| e.key != key);
        recording.exchanges.push(Exchange {
            key,
            request: request.clone(),
            response: response.clone(),
            status,
        });
        let text = serde_json::to_string_pretty(&*recording).unwrap_or_default() + "\n";
        // Exchanges are found by the hash of the request as sent; the file is scrubbed of
        // secrets (an API key in the inputs), as every artifact is.
        let text = crate::logging::scrub_bytes(text.as_bytes());
        let target = self.staging.as_ref().unwrap_or(&self.path);
        crate::artifacts::write_atomic(target, &text, true).map_err(|e| ModelError::Recording {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })
    }
}

impl<C: ModelClient> ModelClient for Recorder<C> {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        Box::pin(async move {
            let completion = match self.inner.complete(request).await {
                Ok(completion) => completion,
                Err(error) => {
                    if let (
                        Some(_),
                        ModelError::Status {
                            status, message, ..
                        },
                    ) = (error.context_overflow(), &error)
                    {
                        self.save(
                            request,
                            &serde_json::json!({"error": {"message": message}}),
                            Some(*status),
                        )?;
                    }
                    return Err(error);
                }
            };
            self.save(request, &completion.raw, None)?;
            Ok(completion)
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}, recorded to {}",
            self.inner.describe(),
            self.path.display()
        )
    }

    fn wire_body(&self, request: &ChatRequest) -> Value {
        self.inner.wire_body(request)
    }
}
