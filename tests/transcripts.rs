//! The recorded server transcripts of `tests/transcripts/` replayed through the live client:
//! every successful exchange, streamed (`.sse`) or whole (`.json`), reads as the reply it is;
//! every error keeps its status. vLLM and Ollama are written in their documented shapes; the
//! llama.cpp servers' bytes are real (see `tests/transcripts/README.md`).

#[path = "support/sse.rs"]
mod sse;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent::model::{
    ChatRequest, Completion, Endpoint, FinishReason, Message, ModelClient, ModelError,
    OpenAiClient, Pacer, RetryPolicy,
};
use serde_json::Value;
use sse::{Reply, SseServer};

const SERVERS: [&str; 4] = ["vllm", "ollama", "llama-server", "llama-cpp-python"];

fn folder(server: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcripts")
        .join(server)
}

/// Serve the exchange `name` of `server` and ask for it as the transcript did.
async fn replay(server: &str, name: &str) -> Result<Completion, ModelError> {
    let dir = folder(server);
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index"))
            .expect("json");
    let entry = index
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{server}/{name} in the index"));
    let status = entry["status"].as_u64().expect("a status") as u16;
    let sse = dir.join(format!("{name}.response.sse"));
    let (reply, stream) = if sse.is_file() {
        (Reply::sse_bytes(&std::fs::read(&sse).expect("reads")), true)
    } else {
        let body = std::fs::read(dir.join(format!("{name}.response.json"))).expect("reads");
        let sent: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.request.json"))).expect("request"),
        )
        .expect("json");
        (Reply::json(status, &body), sent["stream"] == true)
    };
    let fake = SseServer::always(reply).await;
    let mut endpoint = Endpoint::new(fake.base_url.clone());
    endpoint.timeout = Duration::from_secs(60);
    endpoint.stream = stream;
    endpoint.retry = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let client = OpenAiClient::new(endpoint, Arc::new(Pacer::new())).expect("client");
    let request = ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("Judge the subject.")],
        temperature: None,
        top_p: None,
        max_tokens: None,
        seed: None,
        response_format: None,
        stream: false,
    };
    client.complete(&request).await
}

const VERDICT: &str = r#"{"verdict":"pass","checks":3}"#;

#[tokio::test]
async fn every_successful_exchange_replays_as_a_reply_and_every_error_keeps_its_status() {
    for server in SERVERS {
        let index: Vec<Value> = serde_json::from_str(
            &std::fs::read_to_string(folder(server).join("index.json")).expect("index"),
        )
        .expect("json");
        for entry in index {
            let name = entry["name"].as_str().expect("a name");
            let status = entry["status"].as_u64().expect("a status");
            let result = replay(server, name).await;
            match (status, result) {
                (200, Ok(completion)) => assert!(
                    !completion.content.is_empty() || completion.reasoning.is_some(),
                    "{server}/{name}: empty"
                ),
                (200, Err(error)) => panic!("{server}/{name}: {error}"),
                (status, Err(ModelError::Status { status: got, .. })) => {
                    assert_eq!(u64::from(got), status, "{server}/{name}");
                }
                (status, other) => panic!("{server}/{name}: {status}, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn vllm_and_ollama_streams_give_the_content_and_the_usage_of_their_final_chunk() {
    for server in ["vllm", "ollama"] {
        let completion = replay(server, "chat-stream").await.expect("replays");
        assert_eq!(completion.content, VERDICT, "{server}");
        assert_eq!(completion.finish_reason, FinishReason::Stop, "{server}");
        assert_eq!(
            completion.usage.map(|u| u.total_tokens),
            Some(44),
            "{server}: usage from the chunk with empty choices"
        );
    }
    let no_usage = replay("ollama", "chat-stream-no-usage")
        .await
        .expect("replays");
    assert_eq!(no_usage.content, VERDICT);
    assert_eq!(no_usage.usage, None);
}

#[tokio::test]
async fn streamed_reasoning_arrives_in_its_own_field_on_vllm_ollama_and_llama_server() {
    for server in ["vllm", "ollama", "llama-server"] {
        let completion = replay(server, "reasoning-stream").await.expect("replays");
        let reasoning = completion.reasoning.unwrap_or_default();
        assert!(!reasoning.trim().is_empty(), "{server}: no reasoning");
        assert!(
            !completion.content.contains(reasoning.trim()),
            "{server}: reasoning kept apart from the content"
        );
        assert!(
            completion.content.trim().starts_with('{'),
            "{server}: {}",
            completion.content
        );
    }
    // llama-cpp-python leaves it inline, for the extractor.
    let inline = replay("llama-cpp-python", "reasoning-stream")
        .await
        .expect("replays");
    assert_eq!(inline.reasoning, None);
    assert!(inline.content.contains("</think>"), "{}", inline.content);
}

#[tokio::test]
async fn a_streamed_reply_equals_the_whole_one_from_the_same_server() {
    for server in ["llama-server", "llama-cpp-python", "ollama", "vllm"] {
        let whole = replay(server, "chat").await.expect("whole");
        let streamed = replay(server, "chat-stream").await.expect("streamed");
        assert_eq!(streamed.content, whole.content, "{server}");
        assert_eq!(streamed.finish_reason, whole.finish_reason, "{server}");
    }
    for server in ["llama-server", "llama-cpp-python"] {
        let cut = replay(server, "length-stream").await.expect("streamed");
        assert_eq!(cut.finish_reason, FinishReason::Length, "{server}");
    }
    let python = replay("llama-cpp-python", "chat-stream")
        .await
        .expect("streamed");
    assert_eq!(python.usage, None, "llama-cpp-python never streams usage");
}
