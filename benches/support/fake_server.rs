//! A minimal OpenAI-compatible server on 127.0.0.1 for benchmarks: HTTP/1.1 keep-alive,
//! a fixed latency per request, a reply chosen per request. Small enough to cost nothing
//! next to what it measures (wiremock matches and records every request, which would).

#![allow(dead_code, reason = "each benchmark uses a different subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Chooses the reply body (a chat completion JSON) for a request body.
pub(crate) type Responder = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// A running server.
pub(crate) struct FakeServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) base_url: String,
    /// Requests answered.
    pub(crate) requests: Arc<AtomicU64>,
}

/// Start a server answering every request after `latency`.
pub(crate) async fn start(latency: Duration, responder: Responder) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let address = listener.local_addr().expect("address");
    let requests = Arc::new(AtomicU64::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let responder = responder.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::with_capacity(64 * 1024);
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    // Read one request: headers, then content-length bytes of body.
                    let (header_end, length) = loop {
                        if let Some(end) = find(&buffer, b"\r\n\r\n") {
                            let headers =
                                String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = headers
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buffer.len() < header_end + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = responder(&buffer[header_end..header_end + length]);
                    buffer.drain(..header_end + length);
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    let content_type = if body.starts_with(b"data:") {
                        "text/event-stream"
                    } else {
                        "application/json"
                    };
                    // One write: a head and body sent apart meet the peer's delayed ACK.
                    let mut response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(&body);
                    if stream.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    FakeServer {
        base_url: format!("http://{address}/v1"),
        requests,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A chat completion body holding `content`.
pub(crate) fn completion(content: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    }))
    .expect("serializes")
}

/// Whether a request body asks for a stream.
pub(crate) fn wants_stream(request: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(request)
        .is_ok_and(|body| body["stream"] == serde_json::Value::Bool(true))
}

/// The event stream of a reply holding `content`: one chunk per four bytes (about a token,
/// as servers send them), a finishing chunk, a usage chunk with empty `choices`, `[DONE]`.
pub(crate) fn completion_stream(content: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let mut event = |chunk: serde_json::Value| {
        body.extend_from_slice(b"data: ");
        body.extend_from_slice(&serde_json::to_vec(&chunk).expect("serializes"));
        body.extend_from_slice(b"\n\n");
    };
    let head = |delta: serde_json::Value, finish: serde_json::Value| {
        serde_json::json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        })
    };
    event(head(
        serde_json::json!({"role": "assistant", "content": ""}),
        serde_json::Value::Null,
    ));
    let mut rest = content;
    while !rest.is_empty() {
        let mut end = rest.len().min(4);
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        event(head(
            serde_json::json!({"content": &rest[..end]}),
            serde_json::Value::Null,
        ));
        rest = &rest[end..];
    }
    event(head(serde_json::json!({}), serde_json::json!("stop")));
    event(serde_json::json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench", "choices": [],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    }));
    body.extend_from_slice(b"data: [DONE]\n\n");
    body
}
