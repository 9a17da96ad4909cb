//! The model transport against a local fake OpenAI-compatible server (wiremock on 127.0.0.1):
//! retries, Retry-After, timeouts, and lenient replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::model::{
    ChatRequest, Endpoint, Message, ModelClient, ModelError, OpenAiClient, Pacer, RetryPolicy,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(server: &MockServer, timeout: Duration, max_retries: u32) -> OpenAiClient {
    OpenAiClient::new(
        Endpoint {
            base_url: format!("{}/v1", server.uri()),
            api_key: Some("sk-test".to_owned().into()),
            timeout,
            retry: RetryPolicy {
                max_retries,
                // Computed backoff is skipped in tests; a server's own Retry-After is not.
                initial_backoff: Duration::ZERO,
                ..RetryPolicy::default()
            },
            max_reply_bytes: agent::model::DEFAULT_MAX_REPLY_BYTES,
            // These tests are about whole replies; streams have their own.
            stream: false,
            idle_timeout: agent::model::DEFAULT_IDLE_TIMEOUT,
            server: None,
        },
        Arc::new(Pacer::new()),
    )
    .expect("client")
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("hello")],
        temperature: None,
        top_p: None,
        max_tokens: None,
        seed: None,
        response_format: None,
        stream: false,
    }
}

fn ok_body(content: &str) -> serde_json::Value {
    json!({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_once_after_waiting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(
                    json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("done")))
        .mount(&server)
        .await;
    let started = Instant::now();
    let completion = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect("succeeds");
    assert_eq!(completion.content, "done");
    assert_eq!(completion.retries, 1);
    assert_eq!(requests(&server).await, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_503s_then_a_200_make_three_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("ok")))
        .mount(&server)
        .await;
    let completion = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect("succeeds");
    assert_eq!(completion.retries, 2);
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn a_401_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"message": "Incorrect API key provided"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect_err("fails");
    assert!(
        matches!(
            error,
            ModelError::Status {
                status: 401,
                retries: 0,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("Incorrect API key provided"));
}

#[tokio::test]
async fn a_retry_after_past_the_cap_fails_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "86400"))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect_err("fails");
    assert!(
        matches!(error, ModelError::RetryAfterTooLong { status: 429, .. }),
        "{error:?}"
    );
    // A functional bound, not a speed claim: waiting out the 60 s cap, let alone the
    // server's day, fails it. Measured: a few milliseconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(ok_body("late"))
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = client(&server, Duration::from_secs(1), 1)
        .complete(&request())
        .await
        .expect_err("times out");
    assert!(
        matches!(error, ModelError::Timeout { retries: 1, .. }),
        "{error:?}"
    );
    assert_eq!(
        requests(&server).await,
        2,
        "a timeout is retried like the SDKs do"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(50));
}

#[tokio::test]
async fn a_429_with_a_plain_text_body_is_still_understood_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_string("Too Many Requests"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("ok")))
        .mount(&server)
        .await;
    let completion = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect("succeeds");
    assert_eq!(completion.retries, 1);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn an_exhausted_quota_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}})))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(10), 2)
        .complete(&request())
        .await
        .expect_err("fails");
    assert!(
        matches!(
            error,
            ModelError::Status {
                status: 429,
                retries: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn empty_choices_are_a_model_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x", "choices": []})))
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(10), 0)
        .complete(&request())
        .await
        .expect_err("fails");
    assert!(
        matches!(error, ModelError::EmptyChoices { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_model_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;
    let error = client(&server, Duration::from_secs(10), 0)
        .complete(&request())
        .await
        .expect_err("fails");
    assert!(matches!(error, ModelError::BadResponse { .. }), "{error:?}");
    assert!(error.to_string().contains("<html>gateway"), "{error}");
}

#[tokio::test]
async fn servers_that_are_not_openai_are_understood() {
    let server = MockServer::start().await;
    // llama.cpp style: no usage, created or object; finish_reason `eos`; reasoning in its own field.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "{}", "reasoning_content": "let me think"}, "finish_reason": "eos"}]
        })))
        .mount(&server)
        .await;
    let completion = client(&server, Duration::from_secs(10), 0)
        .complete(&request())
        .await
        .expect("reads");
    assert_eq!(completion.content, "{}");
    assert_eq!(completion.reasoning.as_deref(), Some("let me think"));
    assert_eq!(completion.finish_reason, agent::model::FinishReason::Stop);
    assert!(completion.usage.is_none());
}

#[tokio::test]
async fn the_key_is_sent_as_a_bearer_token_and_never_without_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer sk-test",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("ok")))
        .expect(1)
        .mount(&server)
        .await;
    client(&server, Duration::from_secs(10), 0)
        .complete(&request())
        .await
        .expect("authorised");

    let keyless = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("ok")))
        .mount(&keyless)
        .await;
    let local = OpenAiClient::new(
        Endpoint {
            base_url: format!("{}/v1", keyless.uri()),
            api_key: None,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            max_reply_bytes: agent::model::DEFAULT_MAX_REPLY_BYTES,
            // These tests are about whole replies; streams have their own.
            stream: false,
            idle_timeout: agent::model::DEFAULT_IDLE_TIMEOUT,
            server: None,
        },
        Arc::new(Pacer::new()),
    )
    .expect("client");
    local.complete(&request()).await.expect("answers");
    let received = keyless.received_requests().await.expect("recorded");
    assert!(received[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_429_holds_every_request_sharing_the_pacer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("ok")))
        .mount(&server)
        .await;
    let pacer = Arc::new(Pacer::new());
    let make = || {
        OpenAiClient::new(
            Endpoint {
                base_url: format!("{}/v1", server.uri()),
                api_key: None,
                timeout: Duration::from_secs(10),
                retry: RetryPolicy::default(),
                max_reply_bytes: agent::model::DEFAULT_MAX_REPLY_BYTES,
                stream: false,
                idle_timeout: agent::model::DEFAULT_IDLE_TIMEOUT,
                server: None,
            },
            pacer.clone(),
        )
        .expect("client")
    };
    let (first, second) = (make(), make());
    let started = Instant::now();
    let first_request = request();
    let first_call = first.complete(&first_request);
    let second_request = request();
    let second_call = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        second.complete(&second_request).await.expect("answers");
        started.elapsed()
    };
    let (first_result, second_done) = tokio::join!(first_call, second_call);
    first_result.expect("retried");
    // The second client never met the 429, yet it waited for the hold the first one set.
    assert!(
        second_done >= Duration::from_millis(950),
        "second finished after {second_done:?}"
    );
}
