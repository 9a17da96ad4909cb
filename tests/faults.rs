//! Hostile endpoints, driven through the real binary: each fault of `support/faults.rs` ends
//! in a documented exit code, with a run record where there is a run, and with stderr bounded
//! in size (a size bound, not a time bound): no header, body or number from a server may panic
//! the process, grow its memory without limit or flood its stderr.
//!
//! | fault | how it ends |
//! |---|---|
//! | `Retry-After: 99999999999999999999` | exit 3, asked to wait past `--max-retry-wait`; no retry |
//! | an endless 200 body | exit 3 at `--max-reply-bytes` (16 MiB by default) |
//! | a reply larger than the limit | exit 3, refused, never echoed in a re-ask |
//! | 50 MB of junk (not JSON) | exit 3; stderr quotes a short escaped excerpt, once |
//! | an endless error body | exit 3 with the status; only a prefix is read |
//! | a trickle, a byte at a time | exit 3 at `--timeout` |
//! | a reset in the middle of the body | exit 3, "the connection was reset while reading the response" |
//! | an event stream for `stream: false` (`--no-stream`) | exit 3, refused as an event stream |
//! | an endless event stream (streaming, the default) | exit 3 at `--max-reply-bytes` (in `tests/stream.rs`) |

mod common;
#[path = "support/faults.rs"]
mod faults;
#[path = "support/project.rs"]
mod project;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use faults::{Fault, FaultServer};
use serde_json::Value;

/// The most stderr any fault may produce.
const STDERR_BOUND: usize = 64 * 1024;

/// `agent ARGS` in `dir` against `server`, from a blocking task so the server keeps serving.
async fn agent(dir: &Path, server: &FaultServer, args: &[&str]) -> Output {
    let mut command = common::agent_in(dir);
    command
        .args(args)
        .args(["--base-url", &server.base_url, "--model", "m"])
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    tokio::task::spawn_blocking(move || command.output().expect("agent runs"))
        .await
        .expect("joins")
}

/// `agent run answer` with a run folder at `dir/out`.
async fn run(dir: &Path, server: &FaultServer, extra: &[&str]) -> Output {
    let out = dir.join("out");
    let mut args = vec![
        "run",
        "answer",
        "--var",
        "QUESTION=what is the release status",
        "--out",
        out.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    agent(dir, server, &args).await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{} is written: {e}", path.display())),
    )
    .expect("json")
}

/// The exit code, stderr bounded in size, and no panic.
fn assert_ends(output: &Output, code: i32) -> String {
    let text = stderr(output);
    assert!(!text.contains("panicked"), "a panic: {text}");
    assert_eq!(output.status.code(), Some(code), "{text}");
    assert!(
        output.stderr.len() < STDERR_BOUND,
        "{} bytes on stderr, starting {}",
        output.stderr.len(),
        text.chars().take(2_000).collect::<String>()
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_retry_after_ends_the_run_with_the_model_code_and_a_run_json() {
    let server = FaultServer::start(Fault::HugeRetryAfter).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--json"]).await;
    let text = assert_ends(&output, 3);
    assert!(text.contains("asked to retry after"), "{text}");
    assert!(text.contains("--max-retry-wait"), "{text}");
    assert_eq!(
        server.requests(),
        1,
        "a wait past the cap is not waited for"
    );
    let run_json = json_file(&dir.path().join("out/run.json"));
    assert_eq!(run_json["outcome"], "model-error");
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one JSON envelope");
    assert_eq!(envelope["outcome"], "model-error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_retry_after_fails_the_live_eval_case_and_the_report_is_written() {
    let server = FaultServer::start(Fault::HugeRetryAfter).await;
    let dir = project::answer_project();
    let out = dir.path().join("eval-out");
    let output = agent(
        dir.path(),
        &server,
        &[
            "eval",
            "--live",
            "answer",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_ends(&output, 1);
    let report = json_file(&out.join("report.json"));
    let report_text = report.to_string();
    assert!(
        report_text.contains("asked to retry after"),
        "the case's failure says why: {report_text}"
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("0 of 1 cases passed"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_retry_after_fails_the_pipeline_step_and_the_record_is_written() {
    let server = FaultServer::start(Fault::HugeRetryAfter).await;
    let dir = project::answer_project();
    let out = dir.path().join("pipeline-out");
    let output = agent(
        dir.path(),
        &server,
        &[
            "pipeline",
            "run",
            "pipelines/answer.yaml",
            "--out",
            out.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_ends(&output, 3);
    let record = json_file(&out.join("pipeline.json"));
    assert_eq!(record["steps"][0]["status"], "model-error", "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_retry_after_answers_the_mcp_call_with_an_error() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;

    let server = FaultServer::start(Fault::HugeRetryAfter).await;
    let dir = project::answer_project();
    let mut command = common::agent_in(dir.path());
    command
        .args(["mcp", "--base-url", &server.base_url, "--model", "m"])
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE");
    let transport =
        TokioChildProcess::new(tokio::process::Command::from(command)).expect("agent mcp starts");
    let exchange = async {
        let client = ().serve(transport).await.expect("the handshake succeeds");
        let mut arguments = serde_json::Map::new();
        arguments.insert("QUESTION".into(), "what is the release status".into());
        let result = client
            .call_tool(CallToolRequestParams::new("answer").with_arguments(arguments))
            .await
            .expect("the call is answered");
        client.cancel().await.expect("the client closes");
        result
    };
    // A guard against a hang (the defect: the call was never answered), not a speed claim.
    let result = tokio::time::timeout(Duration::from_secs(300), exchange)
        .await
        .expect("the call is answered, not left hanging");
    let text: String = result
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(result.is_error, Some(true), "{text}");
    assert!(text.contains("asked to retry after"), "{text}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_body_is_cut_at_the_reply_limit() {
    let server = FaultServer::start(Fault::EndlessBody).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    let text = assert_ends(&output, 3);
    assert!(
        text.contains("16777216") && text.contains("--max-reply-bytes"),
        "the error names the limit and the flag: {text}"
    );
    assert_eq!(
        json_file(&dir.path().join("out/run.json"))["outcome"],
        "model-error"
    );
    assert_eq!(
        server.requests(),
        1,
        "an oversize reply is not asked for again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_over_the_limit_is_refused_and_never_echoed_in_a_re_ask() {
    // A well-formed completion whose content is 50 MB and breaks the contract: were it read,
    // the re-ask would send it back.
    let body = faults::completion_body(&"a".repeat(50_000_000));
    let server = FaultServer::start(Fault::Body(Arc::new(body))).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-reply-bytes", "1000000"]).await;
    let text = assert_ends(&output, 3);
    assert!(
        text.contains("1000000") && text.contains("--max-reply-bytes"),
        "{text}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "no re-ask after an oversize reply");
    assert!(
        seen.iter().all(|request| request.body_bytes < 100_000),
        "request sizes: {:?}",
        seen.iter().map(|r| r.body_bytes).collect::<Vec<_>>()
    );
    assert!(!dir.path().join("out/attempt-1/response.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_junk_body_leaves_stderr_small() {
    let server = FaultServer::start(Fault::JunkBody { bytes: 50_000_000 }).await;
    let dir = project::answer_project();
    // Refused at the default limit, quietly or not.
    for extra in [&[][..], &["-q"][..]] {
        let output = run(dir.path(), &server, extra).await;
        let text = assert_ends(&output, 3);
        assert!(text.contains("--max-reply-bytes"), "{text}");
    }
    // Read whole under a raised limit: the JSON error quotes a short escaped excerpt once,
    // and no library logs the body, even at debug level.
    for extra in [&["-q"][..], &["-v"][..], &[][..]] {
        let mut args = vec!["--max-reply-bytes", "60000000"];
        args.extend_from_slice(extra);
        let output = run(dir.path(), &server, &args).await;
        let text = assert_ends(&output, 3);
        assert!(text.contains("not a chat completion"), "{text}");
        assert_eq!(
            text.matches("upstream proxy error").count(),
            1,
            "one excerpt: {text}"
        );
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "control characters are escaped: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_error_body_is_read_only_as_far_as_its_prefix() {
    let server = FaultServer::start(Fault::EndlessError).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-retries", "0"]).await;
    let text = assert_ends(&output, 3);
    assert!(text.contains("answered 500"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_body_ends_at_the_timeout() {
    let server = FaultServer::start(Fault::Trickle {
        bytes: 600,
        every: Duration::from_millis(200),
    })
    .await;
    let dir = project::answer_project();
    let output = run(
        dir.path(),
        &server,
        &["--timeout", "1", "--max-retries", "0"],
    )
    .await;
    let text = assert_ends(&output, 3);
    assert!(text.contains("did not answer within 1 s"), "{text}");
    assert_eq!(
        json_file(&dir.path().join("out/run.json"))["outcome"],
        "model-error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_body_is_reported_as_a_reset_not_as_unreachable() {
    let server = FaultServer::start(Fault::ResetMidBody).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-retries", "1"]).await;
    let text = assert_ends(&output, 3);
    assert!(
        text.contains("the connection was reset while reading the response"),
        "{text}"
    );
    assert!(!text.contains("cannot reach"), "{text}");
    assert!(text.contains("after 1 retry"), "a reset is retried: {text}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_stream_answering_a_whole_reply_request_fails_clearly() {
    let server = FaultServer::start(Fault::EventStream {
        content: r#"{"answer": "streamed anyway"}"#.into(),
    })
    .await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--no-stream"]).await;
    let text = assert_ends(&output, 3);
    assert!(
        text.contains("event stream") && text.contains("stream: false"),
        "{text}"
    );
    assert_eq!(
        server.requests(),
        1,
        "not retried: the server will stream again"
    );
    let sent: Value = serde_json::from_slice(&server.seen()[0].body).expect("json request");
    assert_eq!(sent["stream"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_stream_answering_a_streaming_request_is_the_reply() {
    let server = FaultServer::start(Fault::EventStream {
        content: r#"{"answer": "streamed anyway"}"#.into(),
    })
    .await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    assert_ends(&output, 0);
    assert_eq!(output.stdout, b"{\"answer\": \"streamed anyway\"}\n");
    let sent: Value = serde_json::from_slice(&server.seen()[0].body).expect("json request");
    assert_eq!(sent["stream"], true);
}

/// The run folder of a fault run holds `run.json` and no deliverable.
#[tokio::test(flavor = "multi_thread")]
async fn a_fault_leaves_no_deliverable_behind() {
    let server = FaultServer::start(Fault::JunkBody { bytes: 1_000 }).await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &[]).await;
    assert_ends(&output, 3);
    assert!(output.stdout.is_empty());
    let out: PathBuf = dir.path().join("out");
    assert!(out.join("run.json").is_file());
    assert!(!out.join("deliverable.json").exists());
}

/// A completion breaking the answer contract, padded to about 400 bytes, with `usage`.
fn broken_reply_with_usage(usage: Value) -> Fault {
    let content = serde_json::json!({ "wrong": "x".repeat(380) }).to_string();
    let mut body: Value =
        serde_json::from_slice(&faults::completion_body(&content)).expect("a completion");
    body["usage"] = usage;
    Fault::Body(Arc::new(serde_json::to_vec(&body).expect("serializes")))
}

#[tokio::test(flavor = "multi_thread")]
async fn token_counts_that_are_not_counts_cannot_slip_past_the_budget() {
    // Negative and fractional counts are no counts: the budget falls back to the estimate
    // (four bytes a token: about 130 tokens an attempt here), which stops the second attempt.
    let server = FaultServer::start(broken_reply_with_usage(serde_json::json!({
        "prompt_tokens": -1000, "completion_tokens": 0.5, "total_tokens": -999
    })))
    .await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--max-total-tokens", "200"]).await;
    let text = assert_ends(&output, 1);
    assert!(text.contains("token usage"), "a warning says so: {text}");
    assert_eq!(server.requests(), 1, "the budget stopped the re-ask");
    let run_json = json_file(&dir.path().join("out/run.json"));
    assert!(
        run_json["stop_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("budget of 200")),
        "{run_json}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_counts_that_overflow_do_not_panic() {
    let server = FaultServer::start(broken_reply_with_usage(serde_json::json!({
        "prompt_tokens": u64::MAX, "completion_tokens": 1
    })))
    .await;
    let dir = project::answer_project();
    let output = run(dir.path(), &server, &["--attempts", "2"]).await;
    let text = assert_ends(&output, 1);
    assert!(text.contains("token usage"), "{text}");
    let run_json = json_file(&dir.path().join("out/run.json"));
    assert_eq!(run_json["outcome"], "violated");
}
