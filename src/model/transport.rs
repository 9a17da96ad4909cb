//! The HTTP transport under async-openai: sends each request with reqwest and turns a
//! non-2xx response into a [`StatusFailure`] that keeps what async-openai would drop (the
//! status of a non-JSON 4xx body, the `Retry-After` headers), so the retry loop can honour them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;

use super::retry;

/// A response with an error status.
#[derive(Debug, thiserror::Error)]
#[error("status {status}")]
pub(crate) struct StatusFailure {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) requested_wait: Option<Duration>,
    /// The server's own `x-should-retry` verdict, which overrides ours.
    pub(crate) should_retry: Option<bool>,
}

/// The tower service async-openai sends requests through.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
}

impl Transport {
    pub(crate) fn new(client: reqwest::Client) -> Transport {
        Transport { client }
    }
}

type TransportFuture = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> TransportFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = client
                .execute(request)
                .await
                .map_err(OpenAIError::Reqwest)?;
            if response.status().is_success() {
                return Ok(response);
            }
            let status = response.status().as_u16();
            let requested_wait = retry::requested_wait(response.headers());
            let should_retry = response
                .headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| match v {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                });
            let body = response.text().await.unwrap_or_default();
            Err(OpenAIError::Boxed(Box::new(StatusFailure {
                status,
                body,
                requested_wait,
                should_retry,
            })))
        })
    }
}
