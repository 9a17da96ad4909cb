//! A fake OpenAI-compatible endpoint that misbehaves at the byte level: raw tokio TCP on
//! 127.0.0.1, so it can send what no well-behaved HTTP server library would (a `Retry-After`
//! no duration can hold, a body that never ends, a reset in the middle of a body).
//!
//! Each connection serves one request and closes. Every loop is bounded: the accept loop by
//! [`MAX_CONNECTIONS`], the endless body by [`ENDLESS_BYTES`], the trickle by its declared
//! length; a write that fails (the client hung up) ends the connection at once.

#![allow(dead_code, reason = "each user of the server uses a different subset")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections served before the server stops accepting.
pub(crate) const MAX_CONNECTIONS: usize = 1_000;
/// The most an "endless" body sends before it gives up on the client: far past any sane cap
/// (the client's default is 16 MiB), yet a bound.
pub(crate) const ENDLESS_BYTES: u64 = 1024 * 1024 * 1024;
/// The largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// The largest request body kept (the rest is counted and dropped).
const MAX_KEPT_BODY: usize = 4 * 1024 * 1024;

/// How the server misbehaves.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// A 429 asking to retry after more seconds than any duration holds.
    HugeRetryAfter,
    /// A 200 whose chunked body never ends (up to [`ENDLESS_BYTES`], or until the client leaves).
    EndlessBody,
    /// A 500 whose chunked text body never ends (up to [`ENDLESS_BYTES`]).
    EndlessError,
    /// A 200 of `bytes` bytes of text that is not JSON, its length declared.
    JunkBody {
        /// The body's size.
        bytes: usize,
    },
    /// A 200 whose declared `bytes` arrive one every `every`.
    Trickle {
        /// The declared length, and so the bound on the loop.
        bytes: usize,
        /// The pause between two bytes.
        every: Duration,
    },
    /// A 200 that declares a body, sends part of it, then resets the connection.
    ResetMidBody,
    /// A `text/event-stream` of completion chunks saying `content`, though the request asked
    /// for one whole reply.
    EventStream {
        /// The text the chunks add up to.
        content: String,
    },
    /// A 200 with this exact body (`application/json`).
    Body(Arc<Vec<u8>>),
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The request line and headers.
    pub(crate) head: String,
    /// The body's length.
    pub(crate) body_bytes: usize,
    /// The body, up to [`MAX_KEPT_BODY`].
    pub(crate) body: Vec<u8>,
}

/// A running fault server.
pub(crate) struct FaultServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    /// Start serving `fault` on a free port of 127.0.0.1.
    pub(crate) async fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds 127.0.0.1");
        let address = listener.local_addr().expect("an address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept(listener, fault, seen.clone()));
        FaultServer {
            base_url: format!("http://{address}/v1"),
            seen,
            task,
        }
    }

    /// The requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests were received.
    pub(crate) fn requests(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, fault: Fault, seen: Arc<Mutex<Vec<Seen>>>) {
    for _ in 0..MAX_CONNECTIONS {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let fault = fault.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ = serve(stream, &fault, &seen).await;
        });
    }
}

async fn serve(
    mut stream: TcpStream,
    fault: &Fault,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let request = read_request(&mut stream).await?;
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
    match fault {
        Fault::HugeRetryAfter => {
            let body = r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#;
            let head = format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 99999999999999999999\r\nretry-after-ms: 99999999999999999999999\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
        }
        Fault::EndlessBody => {
            endless(
                &mut stream,
                "200 OK",
                br#"{"choices":[{"message":{"role":"assistant","content":""#,
            )
            .await?;
        }
        Fault::EndlessError => {
            endless(
                &mut stream,
                "500 Internal Server Error",
                b"upstream failure: ",
            )
            .await?;
        }
        Fault::JunkBody { bytes } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            let line = b"<html><body>upstream proxy error: the gateway has nothing to say\x07\x1b[31m</body></html>\n";
            let mut left = *bytes;
            let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
            while left > 0 {
                let n = left.min(block.len());
                stream.write_all(&block[..n]).await?;
                left -= n;
            }
        }
        Fault::Trickle { bytes, every } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            for _ in 0..*bytes {
                stream.write_all(b" ").await?;
                stream.flush().await?;
                tokio::time::sleep(*every).await;
            }
        }
        Fault::ResetMidBody => {
            let body = completion_body(&"partial reply ".repeat(2_000));
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body[..body.len() / 3]).await?;
            stream.flush().await?;
            // A zero linger turns the close into a reset (RST), as a crashing proxy sends.
            stream.set_zero_linger()?;
            drop(stream);
            return Ok(());
        }
        Fault::EventStream { content } => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n")
                .await?;
            for word in content.split_inclusive(' ') {
                let chunk = serde_json::json!({
                    "id": "chatcmpl-sse", "object": "chat.completion.chunk", "model": "m",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]
                });
                stream
                    .write_all(format!("data: {chunk}\n\n").as_bytes())
                    .await?;
            }
            stream.write_all(b"data: [DONE]\n\n").await?;
        }
        Fault::Body(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body).await?;
        }
    }
    stream.shutdown().await
}

/// A chunked body starting with `opening`, then filler up to [`ENDLESS_BYTES`].
async fn endless(stream: &mut TcpStream, status: &str, opening: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    write_chunk(stream, opening).await?;
    let filler = vec![b'a'; 64 * 1024];
    let mut sent = opening.len() as u64;
    while sent < ENDLESS_BYTES {
        write_chunk(stream, &filler).await?;
        sent += filler.len() as u64;
    }
    stream.write_all(b"0\r\n\r\n").await
}

async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await
}

/// Read one request: the head up to its blank line, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Seen> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = Vec::with_capacity(length.min(MAX_KEPT_BODY));
    let mut buffer = vec![0u8; 64 * 1024];
    let mut left = length;
    while left > 0 {
        let want = left.min(buffer.len());
        let n = stream.read(&mut buffer[..want]).await?;
        if n == 0 {
            break;
        }
        let keep = n.min(MAX_KEPT_BODY.saturating_sub(body.len()));
        body.extend_from_slice(&buffer[..keep]);
        left -= n;
    }
    Ok(Seen {
        head,
        body_bytes: length - left,
        body,
    })
}

/// A chat completion body saying `content`.
pub(crate) fn completion_body(content: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-fault", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    }))
    .expect("serializes")
}
