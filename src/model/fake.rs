//! [`FakeClient`]: a scripted model for tests and benchmarks; answers in order and keeps
//! every request it was sent.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde_json::json;

use super::client::{ModelClient, ModelFuture};
use super::completion::Completion;
use super::error::ModelError;
use super::request::ChatRequest;

/// A scripted model.
#[derive(Default)]
pub struct FakeClient {
    replies: Mutex<VecDeque<Result<serde_json::Value, ModelError>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl FakeClient {
    /// A model that answers `replies` in order, one per request, as `stop` completions.
    pub fn replying<I, S>(replies: I) -> FakeClient
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let client = FakeClient::default();
        for reply in replies {
            client.push_body(FakeClient::body(&reply.into(), "stop"));
        }
        client
    }

    /// A chat completion body with `content` and `finish_reason`.
    pub fn body(content: &str, finish_reason: &str) -> serde_json::Value {
        json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        })
    }

    /// Queue a raw response body.
    pub fn push_body(&self, body: serde_json::Value) {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Ok(body));
    }

    /// Queue an error.
    pub fn push_error(&self, error: ModelError) {
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Err(error));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ModelClient for FakeClient {
    fn complete<'a>(&'a self, request: &'a ChatRequest) -> ModelFuture<'a> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        let next = self
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        Box::pin(async move {
            match next {
                Some(Ok(body)) => Completion::from_response(body),
                Some(Err(error)) => Err(error),
                None => Err(ModelError::BadResponse {
                    message: "the fake model has no reply left".into(),
                }),
            }
        })
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}
