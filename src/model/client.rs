//! [`ModelClient`]: what the runner needs from a model.

use std::future::Future;
use std::pin::Pin;

use super::completion::Completion;
use super::error::ModelError;
use super::request::ChatRequest;

/// The future a [`ModelClient`] returns.
pub type ModelFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Completion, ModelError>> + Send + 'a>>;

/// Something that answers chat requests: a live endpoint, a recording, a scripted fake.
pub trait ModelClient: Send + Sync {
    /// Answer one request. Transport retries happen inside; an error is final.
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a>;

    /// A short description for run records (`https://api.openai.com/v1`, `replay of x.json`).
    fn describe(&self) -> String;

    /// The body this client would send for `request` (a live endpoint adds `stream` and
    /// writes `response_format` in its server's form); the request itself elsewhere.
    fn wire_body(&self, request: &ChatRequest) -> serde_json::Value {
        serde_json::to_value(request).unwrap_or_default()
    }
}

impl<T: ModelClient + ?Sized> ModelClient for std::sync::Arc<T> {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        (**self).complete(request)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn wire_body(&self, request: &ChatRequest) -> serde_json::Value {
        (**self).wire_body(request)
    }
}
