//! Stage 4, call a model: any OpenAI-compatible chat completions endpoint, through
//! async-openai with our own lenient request and response types, plus record and replay.
//!
//! Transport reliability follows the official OpenAI SDKs: 408, 409, 429 (except an exhausted
//! quota) and 5xx are retried, as are connection errors and timeouts; `retry-after-ms` and
//! `Retry-After` are honoured up to a cap and a longer wait fails at once; otherwise the wait
//! is exponential backoff with jitter. A 429 slows every request sharing the [`Pacer`].
//!
//! Nothing a server sends may panic the process or grow it without bound: waits saturate
//! instead of overflowing, token counts are checked, a response body is read within
//! `--max-reply-bytes` ([`DEFAULT_MAX_REPLY_BYTES`]) and an error body only as far as its start.

mod base_url;
mod body;
mod client;
mod completion;
mod error;
mod fake;
mod openai;
mod pacer;
mod recording;
mod request;
mod retry;
mod scripted;
mod server;
mod sse;
mod transport;

pub use base_url::{display_url, url_secrets};
pub use body::DEFAULT_MAX_REPLY_BYTES;
pub use client::{ModelClient, ModelFuture};
pub use completion::{Completion, FinishReason, Usage};
pub use error::{ContextOverflow, ModelError};
pub use fake::FakeClient;
pub use openai::{DEFAULT_IDLE_TIMEOUT, Endpoint, OpenAiClient};
pub use pacer::Pacer;
pub use recording::{Exchange, Recorder, Recording, Replayer, key_of};
pub use request::{ChatRequest, Message, Role};
pub use retry::RetryPolicy;
pub use scripted::{FIXTURE_MODEL, ScriptedClient, ScriptedReply, scripted_body};
pub use server::Server;
