//! A fake OpenAI-compatible endpoint that streams: raw tokio TCP on 127.0.0.1, one request per
//! connection (`connection: close`), each reply written event by event and flushed, so a test
//! decides where a stream pauses, stalls, is cut, or waits for the test to let it go on.

#![allow(dead_code, reason = "each user of the server uses a different subset")]

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections served before the server stops accepting.
const MAX_CONNECTIONS: usize = 100;

/// How a reply ends after its last part.
#[derive(Clone)]
pub(crate) enum End {
    /// The connection closes.
    Close,
    /// The connection stays open, sending nothing, until the client leaves.
    Stall,
}

/// One reply.
#[derive(Clone)]
pub(crate) struct Reply {
    /// Status line and headers, without the blank line.
    pub(crate) head: String,
    /// The body, in parts written and flushed one by one.
    pub(crate) parts: Vec<Vec<u8>>,
    /// Before the part at this index, wait for the gate to open.
    pub(crate) gate: Option<(usize, Arc<tokio::sync::Semaphore>)>,
    /// After the last part.
    pub(crate) end: End,
}

impl Reply {
    /// A `text/event-stream` of these events (`data:` payloads), as written.
    pub(crate) fn events<I: IntoIterator<Item = String>>(events: I) -> Reply {
        Reply {
            head: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close".into(),
            parts: events
                .into_iter()
                .map(|data| format!("data: {data}\n\n").into_bytes())
                .collect(),
            gate: None,
            end: End::Close,
        }
    }

    /// A raw `text/event-stream` body (a recorded transcript).
    pub(crate) fn sse_bytes(body: &[u8]) -> Reply {
        Reply {
            head: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close".into(),
            parts: vec![body.to_vec()],
            gate: None,
            end: End::Close,
        }
    }

    /// A JSON body with this status.
    pub(crate) fn json(status: u16, body: &[u8]) -> Reply {
        Reply {
            head: format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close",
                body.len()
            ),
            parts: vec![body.to_vec()],
            gate: None,
            end: End::Close,
        }
    }
}

/// The chunk events of a streamed reply saying `pieces` in order, then a finishing chunk
/// (`finish_reason`), a usage chunk with empty `choices`, and `[DONE]`.
pub(crate) fn chunks(pieces: &[&str], finish_reason: &str, usage: Option<Value>) -> Vec<String> {
    let mut events = vec![
        json!({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}).to_string(),
    ];
    events.extend(pieces.iter().map(|piece| content_chunk(piece)));
    events.push(
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
            .to_string(),
    );
    if let Some(usage) = usage {
        events.push(
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
                .to_string(),
        );
    }
    events.push("[DONE]".into());
    events
}

/// One content delta.
pub(crate) fn content_chunk(piece: &str) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]}).to_string()
}

/// Chooses the reply for the request numbered `index` (from 0) with this body.
pub(crate) type Responder = Arc<dyn Fn(usize, &Value) -> Reply + Send + Sync>;

/// A running server.
pub(crate) struct SseServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) base_url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SseServer {
    /// Serve `responder` on a free port of 127.0.0.1.
    pub(crate) async fn start(responder: Responder) -> SseServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds 127.0.0.1");
        let address = listener.local_addr().expect("an address");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let responder = responder.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &responder, &seen).await;
                });
            }
        });
        SseServer {
            base_url: format!("http://{address}/v1"),
            bodies,
            task,
        }
    }

    /// Serve the same reply to every request.
    pub(crate) async fn always(reply: Reply) -> SseServer {
        SseServer::start(Arc::new(move |_, _| reply.clone())).await
    }

    /// The request bodies received so far.
    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for SseServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    responder: &Responder,
    seen: &Mutex<Vec<Value>>,
) -> std::io::Result<()> {
    let body = read_body(&mut stream).await?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let index = {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(value.clone());
        seen.len() - 1
    };
    let reply = responder(index, &value);
    stream
        .write_all(format!("{}\r\n\r\n", reply.head).as_bytes())
        .await?;
    for (at, part) in reply.parts.iter().enumerate() {
        if let Some((gate_at, gate)) = &reply.gate
            && *gate_at == at
        {
            let _permit = gate.acquire().await;
        }
        stream.write_all(part).await?;
        stream.flush().await?;
    }
    match reply.end {
        End::Close => stream.shutdown().await,
        End::Stall => {
            // Until the client hangs up: a read returns 0 or fails then.
            let mut byte = [0u8; 1];
            while stream.read(&mut byte).await? != 0 {}
            Ok(())
        }
    }
}

/// The request body (by its `content-length`).
async fn read_body(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Ok(buffer[end + 4..].to_vec());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
