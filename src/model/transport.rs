//! The HTTP transport under async-openai: sends each request with reqwest and reads the
//! response body itself, within [`BodyLimits`], before async-openai sees it. async-openai gets
//! a response rebuilt from the bytes read (so it never reads an unbounded body, and never logs
//! one); anything else becomes a [`TransportFailure`] that keeps what async-openai would drop
//! (the status of a non-JSON 4xx body, the `Retry-After` headers, a body over the cap, a
//! connection reset mid-body), so the retry loop can tell them apart.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;

use super::body::{BodyError, BodyLimits, BodyReader, ERROR_BODY_PREFIX};
use super::retry;

/// How much of an event stream is kept to show in the error.
const EVENT_STREAM_EXCERPT: usize = 512;

/// A response with an error status.
#[derive(Debug)]
pub(crate) struct StatusFailure {
    pub(crate) status: u16,
    /// The start of the body (at most [`ERROR_BODY_PREFIX`] bytes).
    pub(crate) body: String,
    pub(crate) requested_wait: Option<Duration>,
    /// The server's own `x-should-retry` verdict, which overrides ours.
    pub(crate) should_retry: Option<bool>,
}

/// A response the transport did not hand on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportFailure {
    /// An error status.
    #[error("status {}", .0.status)]
    Status(StatusFailure),
    /// The body could not be read within its limits.
    #[error(transparent)]
    Body(BodyError),
    /// An event stream came back, though the request asked for one whole reply (streams are
    /// read by the client itself, not through this service).
    #[error("an event stream")]
    EventStream {
        /// The start of the stream.
        start: String,
    },
}

impl TransportFailure {
    pub(crate) fn boxed(self) -> OpenAIError {
        OpenAIError::Boxed(Box::new(self))
    }
}

/// The tower service async-openai sends requests through.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    limits: BodyLimits,
}

impl Transport {
    pub(crate) fn new(client: reqwest::Client, limits: BodyLimits) -> Transport {
        Transport { client, limits }
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
        let limits = self.limits;
        Box::pin(async move {
            let request = factory.build().await?;
            // The URL may carry credentials; the error names the endpoint on its own.
            let response = client
                .execute(request)
                .await
                .map_err(|error| OpenAIError::Reqwest(error.without_url()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(status_failure(response, limits).await.boxed());
            }
            if is_event_stream(response.headers()) {
                let start = BodyReader::of(response, limits)
                    .map_err(|error| TransportFailure::Body(error).boxed())?
                    .read_prefix(EVENT_STREAM_EXCERPT)
                    .await;
                return Err(TransportFailure::EventStream {
                    start: String::from_utf8_lossy(&start).into_owned(),
                }
                .boxed());
            }
            let version = response.version();
            let headers = response.headers().clone();
            let body = BodyReader::of(response, limits)
                .map_err(|error| TransportFailure::Body(error).boxed())?
                .read_to_end()
                .await
                .map_err(|error| TransportFailure::Body(error).boxed())?;
            // A server that streams without saying so.
            if looks_like_event_stream(&body) {
                let start = &body[..body.len().min(EVENT_STREAM_EXCERPT)];
                return Err(TransportFailure::EventStream {
                    start: String::from_utf8_lossy(start).into_owned(),
                }
                .boxed());
            }
            let mut rebuilt = http::Response::new(body);
            *rebuilt.status_mut() = status;
            *rebuilt.version_mut() = version;
            *rebuilt.headers_mut() = headers;
            Ok(reqwest::Response::from(rebuilt))
        })
    }
}

/// An error status, with the start of its body: an error body is read only as far as
/// [`ERROR_BODY_PREFIX`], however long it claims or turns out to be.
pub(crate) async fn status_failure(
    response: reqwest::Response,
    limits: BodyLimits,
) -> TransportFailure {
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
    // The declared length does not matter here: only the prefix is read.
    let prefix_limits = BodyLimits {
        max_bytes: u64::MAX,
        ..limits
    };
    let body = match BodyReader::of(response, prefix_limits) {
        Ok(reader) => reader.read_prefix(ERROR_BODY_PREFIX).await,
        Err(_) => bytes::Bytes::new(),
    };
    TransportFailure::Status(StatusFailure {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        requested_wait,
        should_retry,
    })
}

pub(crate) fn is_event_stream(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// An SSE body (`data: {...}` lines) sent under another content type.
fn looks_like_event_stream(body: &[u8]) -> bool {
    sniff_event_stream(body) == Some(true)
}

/// Whether the start of a body is an event stream: none while too little of it has come to
/// tell (blanks, or the start of `data:`, `event:` or a `:` comment).
pub(crate) fn sniff_event_stream(start: &[u8]) -> Option<bool> {
    let start = start.trim_ascii_start();
    if start.is_empty() {
        return None;
    }
    if start.starts_with(b":") {
        return Some(true);
    }
    for field in [&b"data:"[..], b"event:"] {
        if start.starts_with(field) {
            return Some(true);
        }
        if field.starts_with(start) {
            return None;
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_streams_are_known_by_their_type_or_their_first_line() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            "text/event-stream; charset=utf-8".parse().expect("a value"),
        );
        assert!(is_event_stream(&headers));
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            "application/json".parse().expect("a value"),
        );
        assert!(!is_event_stream(&headers));
        assert!(looks_like_event_stream(b"\n data: {\"choices\": []}\n\n"));
        assert!(looks_like_event_stream(b"event: message\ndata: x\n\n"));
        assert!(!looks_like_event_stream(b"{\"data\": 1}"));
        assert_eq!(sniff_event_stream(b"  da"), None);
        assert_eq!(sniff_event_stream(b"\n{"), Some(false));
        assert_eq!(sniff_event_stream(b": ping\n"), Some(true));
    }
}
