//! `agent run` end to end against a local fake OpenAI-compatible server: the re-ask loop,
//! outcomes and exit codes, run folders, record and replay, and the key kept secret.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SENTINEL: &str = "sk-SENTINEL-3f1c9a7e-never-print-me";

fn root() -> PathBuf {
    common::root()
}

fn reply(agent: &str, file: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("fixtures")
            .join(agent)
            .join("replies")
            .join(file),
    )
    .expect("fixture reply")
}

fn inputs(agent: &str) -> PathBuf {
    root()
        .join("fixtures")
        .join(agent)
        .join("parcelpoint")
        .join("inputs")
}

fn completion(content: &str, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    })
}

/// Serve `bodies` in order, then repeat the last.
async fn serve(bodies: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    let count = bodies.len();
    for (index, body) in bodies.into_iter().enumerate() {
        let mock = Mock::given(method("POST")).respond_with(body);
        let mock = if index + 1 < count {
            mock.up_to_n_times(1)
        } else {
            mock
        };
        mock.mount(&server).await;
    }
    server
}

fn ok(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(content, "stop"))
}

struct Run {
    output: Output,
    out: tempfile::TempDir,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn folder(&self) -> &Path {
        self.out.path()
    }
    fn run_json(&self) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.folder().join("run.json")).expect("run.json"),
        )
        .expect("json")
    }
}

/// Run `agent run` with `args` against `server`, in a blocking task so the server keeps serving.
async fn agent_run(server: Option<&MockServer>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = tempfile::tempdir().expect("temp dir");
    let mut command = common::agent();
    command.arg("run").args(args).arg("--out").arg(out.path());
    command
        .env("AGENT_TEST_NO_RETRY_DELAY", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL");
    if let Some(server) = server {
        command.args([
            "--base-url",
            &format!("{}/v1", server.uri()),
            "--model",
            "test-model",
        ]);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().expect("agent runs"))
        .await
        .expect("joins");
    Run { output, out }
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r: &Request| serde_json::from_slice(&r.body).expect("json body"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_then_valid_reply_takes_two_attempts_and_the_second_request_carries_the_violations()
 {
    let server = serve(vec![
        ok(&reply("release-plan", "missing-section.md")),
        ok(&reply("release-plan", "valid.md")),
    ])
    .await;
    let run = agent_run(
        Some(&server),
        &[
            "release-plan",
            "--inputs",
            inputs("release-plan").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stdout().starts_with("# Release & Deployment Plan\n"),
        "stdout is the plan: {}",
        &run.stdout()[..80.min(run.stdout().len())]
    );
    assert!(
        !run.stdout().contains("<release_planning>"),
        "reasoning never reaches stdout"
    );
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    let second = sent[1]["messages"].as_array().expect("messages");
    assert_eq!(second.len(), 3);
    assert_eq!(second[1]["role"], "assistant");
    let reask = second[2]["content"].as_str().expect("text");
    assert!(
        reask.contains("[markdown.missing-section]") && reask.contains("5. Rollback & DR"),
        "{reask}"
    );
    let record = run.run_json();
    assert_eq!(record["outcome"], "valid");
    assert_eq!(record["attempts"].as_array().expect("attempts").len(), 2);
    assert_eq!(record["usage"]["total_tokens"], 3000);
    for file in [
        "prompt.md",
        "deliverable.md",
        "reasoning.md",
        "attempt-1/request.json",
        "attempt-1/reply.md",
        "attempt-1/verdict.json",
        "attempt-2/response.json",
    ] {
        assert!(run.folder().join(file).is_file(), "{file} written");
    }
    assert!(run.stderr().contains("re-asked"), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_always_invalid_reply_stops_at_the_attempt_bound_with_the_violated_code() {
    let server = serve(vec![ok(&reply("release-plan", "wrong-title.md"))]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-plan",
            "--inputs",
            inputs("release-plan").to_str().expect("utf-8"),
            "--attempts",
            "2",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(bodies(&server).await.len(), 2);
    assert!(run.stdout().is_empty(), "no partial output on stdout");
    assert!(
        !run.folder().join("deliverable.md").exists(),
        "no deliverable for a violated run"
    );
    assert_eq!(run.run_json()["outcome"], "violated");
    assert!(run.stderr().contains("markdown.title"), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn insufficient_context_is_declined_with_its_own_code() {
    let server = serve(vec![ok(&reply("release-manager", "declined.txt"))]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(4), "{}", run.stderr());
    let deliverable: Value =
        serde_json::from_str(&run.stdout()).expect("stdout is the JSON refusal");
    assert_eq!(deliverable["error"], "insufficient_context");
    assert_eq!(run.run_json()["outcome"], "declined");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_mode_prints_one_envelope() {
    let server = serve(vec![ok(&reply("release-manager", "valid.txt"))]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let envelope: Value = serde_json::from_str(&run.stdout()).expect("one JSON object");
    assert_eq!(envelope["outcome"], "valid");
    assert_eq!(envelope["deliverable"]["version"], "2.4.0");
    assert_eq!(envelope["attempts"], 1);
    assert_eq!(envelope["run_folder"], json!(run.folder()));
}

#[tokio::test(flavor = "multi_thread")]
async fn null_content_is_an_empty_reply_that_is_re_asked() {
    let null_content = ResponseTemplate::new(200).set_body_json(
        json!({"choices": [{"message": {"content": null}, "finish_reason": "stop"}]}),
    );
    let server = serve(vec![
        null_content,
        ok(&reply("release-manager", "valid.txt")),
    ])
    .await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(
        run.run_json()["attempts"][0]["violations"][0]["rule"],
        "reply.empty"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_choices_end_the_run_with_the_model_code() {
    let server = serve(vec![
        ResponseTemplate::new(200).set_body_json(json!({"choices": []})),
    ])
    .await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert!(run.stderr().contains("no choices"), "{}", run.stderr());
    assert_eq!(run.run_json()["outcome"], "model-error");
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_in_either_server_field_is_kept_apart() {
    for field in ["reasoning_content", "reasoning"] {
        let body = json!({"choices": [{"message": {"content": reply("release-manager", "valid.txt"), field: "Weighing the canary metrics."}, "finish_reason": "stop"}]});
        let server = serve(vec![ResponseTemplate::new(200).set_body_json(body)]).await;
        let run = agent_run(
            Some(&server),
            &[
                "release-manager",
                "--inputs",
                inputs("release-manager").to_str().expect("utf-8"),
            ],
            &[],
        )
        .await;
        assert_eq!(run.code(), Some(0), "{field}: {}", run.stderr());
        let reasoning =
            std::fs::read_to_string(run.folder().join("reasoning.md")).expect("reasoning saved");
        assert_eq!(reasoning, "Weighing the canary metrics.");
        assert!(!run.stdout().contains("Weighing"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_reply_is_a_violation_not_a_result() {
    let truncated = ResponseTemplate::new(200)
        .set_body_json(completion(&reply("release-manager", "valid.txt"), "length"));
    let server = serve(vec![truncated]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
            "--attempts",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(run.stdout().is_empty());
    assert_eq!(
        run.run_json()["attempts"][0]["violations"][0]["rule"],
        "reply.truncated"
    );

    // A reasoning model that spends the whole limit thinking: no content, reasoning apart.
    let thought_only = ResponseTemplate::new(200).set_body_json(json!({
        "choices": [{"message": {"content": null, "reasoning_content": "Let me think about the rollout..."}, "finish_reason": "length"}]
    }));
    let server = serve(vec![thought_only]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
            "--attempts",
            "1",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let violation = &run.run_json()["attempts"][0]["violations"][0];
    assert_eq!(violation["rule"], "reply.truncated", "{violation}");
    assert!(
        violation["message"]
            .as_str()
            .is_some_and(|m| m.contains("before any content")),
        "{violation}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_is_the_model_failure_code_after_one_request() {
    let server = serve(vec![
        ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "invalid key"}})),
    ])
    .await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    assert_eq!(bodies(&server).await.len(), 1);
    assert!(run.stderr().contains("401"), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_model_configured_is_a_usage_error_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok("{}"))
        .expect(0)
        .mount(&server)
        .await;
    let project = tempfile::tempdir().expect("temp dir");
    for dir in ["prompts", "schemas"] {
        let target = project.path().join(dir);
        std::fs::create_dir(&target).expect("mkdir");
        for entry in std::fs::read_dir(root().join(dir)).expect("lists") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy");
        }
    }
    let output = common::agent_in(project.path())
        .args([
            "run",
            "deployment-plan",
            "--var",
            "NOTES=x",
            "--var",
            "ENVIRONMENT=staging",
            "--base-url",
        ])
        .arg(format!("{}/v1", server.uri()))
        .env_remove("AGENT_MODEL")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for way in ["--model", "AGENT_MODEL", "agent.toml", "defaults.model"] {
        assert!(stderr.contains(way), "names {way}: {stderr}");
    }
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_budget_stops_a_run_that_would_exceed_it() {
    // The server reports 18,000 tokens for the first attempt; a second would pass 30,000.
    let mut body = completion(&reply("release-plan", "wrong-title.md"), "stop");
    body["usage"] =
        json!({"prompt_tokens": 15000, "completion_tokens": 3000, "total_tokens": 18000});
    let server = serve(vec![ResponseTemplate::new(200).set_body_json(body)]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-plan",
            "--inputs",
            inputs("release-plan").to_str().expect("utf-8"),
            "--max-total-tokens",
            "30000",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(
        bodies(&server).await.len(),
        1,
        "the second attempt would pass 30000 tokens"
    );
    assert!(
        run.run_json()["stop_reason"]
            .as_str()
            .expect("reason")
            .contains("18000 tokens used")
    );

    // A server that reports no usage is held to the budget by an estimate (four bytes a
    // token): the prompt (~1,500) and the reply (~2,900) make ~4,400, so a second attempt
    // would pass 6,000.
    let mut no_usage = completion(&reply("deployment-plan", "missing-section.md"), "stop");
    no_usage.as_object_mut().expect("object").remove("usage");
    let server = serve(vec![ResponseTemplate::new(200).set_body_json(no_usage)]).await;
    let deployment_plan_inputs = inputs("deployment-plan");
    let deployment_plan = [
        "deployment-plan",
        "--inputs",
        deployment_plan_inputs.to_str().expect("utf-8"),
        "--max-total-tokens",
    ];
    let run = agent_run(
        Some(&server),
        &[&deployment_plan[..], &["6000"]].concat(),
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(bodies(&server).await.len(), 1, "stopped before attempt 2");
    assert!(
        run.run_json()["stop_reason"]
            .as_str()
            .expect("reason")
            .contains("budget of 6000")
    );

    // A prompt that alone exceeds the budget is refused before any request, leaving nothing.
    let server = serve(vec![ok(&reply("deployment-plan", "valid.md"))]).await;
    let run = agent_run(
        Some(&server),
        &[&deployment_plan[..], &["1000"]].concat(),
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("over --max-total-tokens 1000"),
        "{}",
        run.stderr()
    );
    assert!(bodies(&server).await.is_empty());
    assert!(run.stdout().is_empty());
    assert_eq!(walk(run.folder()), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn response_format_sends_the_schema_only_where_it_fits() {
    let server = serve(vec![ok(&reply("release-manager", "valid.txt"))]).await;
    let run = agent_run(
        Some(&server),
        &[
            "release-manager",
            "--inputs",
            inputs("release-manager").to_str().expect("utf-8"),
            "--response-format",
            "json-schema",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let sent = bodies(&server).await;
    let format = &sent[0]["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert!(format["json_schema"]["schema"]["$defs"]["release_record"].is_object());
    assert!(
        format["json_schema"]["schema"].get("x-agent").is_none(),
        "our extension is not sent"
    );

    let run = agent_run(
        Some(&server),
        &[
            "release-plan",
            "--inputs",
            inputs("release-plan").to_str().expect("utf-8"),
            "--response-format",
            "json-object",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(2));
    assert!(run.stderr().contains("markdown"), "{}", run.stderr());
    assert_eq!(walk(run.folder()), Vec::<PathBuf>::new(), "nothing written");

    // A run folder it would have created is not left behind empty.
    let parent = tempfile::tempdir().expect("temp dir");
    let folder = parent.path().join("run");
    let output = common::agent()
        .args(["run", "release-plan", "--inputs"])
        .arg(inputs("release-plan"))
        .args(["--response-format", "json-object", "--model", "m", "--out"])
        .arg(&folder)
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(!folder.exists(), "no empty run folder");
}

#[tokio::test(flavor = "multi_thread")]
async fn record_then_replay_gives_the_same_run_offline_and_a_stale_recording_says_what_differs() {
    let server = serve(vec![
        ok(&reply("deployment-plan", "missing-section.md")),
        ok(&reply("deployment-plan", "valid.md")),
    ])
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let recording = dir.path().join("recording.json");
    let recorded = agent_run(
        Some(&server),
        &[
            "deployment-plan",
            "--inputs",
            inputs("deployment-plan").to_str().expect("utf-8"),
            "--record",
            recording.to_str().expect("utf-8"),
        ],
        &[("OPENAI_API_KEY", SENTINEL)],
    )
    .await;
    assert_eq!(recorded.code(), Some(0), "{}", recorded.stderr());
    let text = std::fs::read_to_string(&recording).expect("recording written");
    assert!(!text.contains(SENTINEL), "a recording never holds the key");

    let replayed = agent_run(
        None,
        &[
            "deployment-plan",
            "--inputs",
            inputs("deployment-plan").to_str().expect("utf-8"),
            "--replay",
            recording.to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(replayed.code(), Some(0), "{}", replayed.stderr());
    assert_eq!(replayed.stdout(), recorded.stdout());
    assert_eq!(
        replayed.run_json()["attempts"]
            .as_array()
            .expect("attempts")
            .len(),
        2
    );

    let stale = agent_run(
        None,
        &[
            "deployment-plan",
            "--inputs",
            inputs("deployment-plan").to_str().expect("utf-8"),
            "--var",
            "FLAG=courier-qr-handoff",
            "--replay",
            recording.to_str().expect("utf-8"),
        ],
        &[],
    )
    .await;
    assert_eq!(stale.code(), Some(2), "{}", stale.stderr());
    let message = stale.stderr();
    assert!(message.contains("stale"), "{message}");
    assert!(
        message.contains("courier-qr-handoff") && message.contains("reservation-holds"),
        "says what differs: {message}"
    );
    assert!(
        !message.contains("- messages:"),
        "compared with the first attempt, which has as many messages: {message}"
    );
    let run_json = stale.run_json();
    assert_eq!(run_json["outcome"], "input-error");
    assert_eq!(run_json["failed_attempt"]["number"], 1);
    assert!(message.contains("input error on attempt 1"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_appears_nowhere_on_success_4xx_5xx_and_bad_json() {
    let cases: Vec<(&str, Vec<ResponseTemplate>)> = vec![
        ("success", vec![ok(&reply("release-manager", "valid.txt"))]),
        (
            "success-echoing-the-key",
            vec![ResponseTemplate::new(200).set_body_json({
                let mut body = completion(&reply("release-manager", "valid.txt"), "stop");
                body["id"] = json!(format!("chatcmpl-{SENTINEL}"));
                body["system_fingerprint"] = json!(SENTINEL);
                body
            })],
        ),
        (
            "4xx",
            vec![ResponseTemplate::new(401).set_body_json(
                json!({"error": {"message": format!("Incorrect API key provided: {SENTINEL}")}}),
            )],
        ),
        (
            "5xx",
            vec![
                ResponseTemplate::new(500)
                    .set_body_string(format!("internal error for key {SENTINEL}")),
            ],
        ),
        (
            "bad-json",
            vec![ResponseTemplate::new(200).set_body_string(format!("{{not json {SENTINEL}"))],
        ),
    ];
    let recordings = tempfile::tempdir().expect("temp dir");
    for (name, responses) in cases {
        let server = serve(responses).await;
        let recording = recordings.path().join(format!("{name}.json"));
        let run = agent_run(
            Some(&server),
            &[
                "release-manager",
                "--inputs",
                inputs("release-manager").to_str().expect("utf-8"),
                "--max-retries",
                "1",
                "--json",
                "--record",
                recording.to_str().expect("utf-8"),
            ],
            &[("OPENAI_API_KEY", SENTINEL), ("RUST_LOG", "trace")],
        )
        .await;
        let received = server.received_requests().await.unwrap_or_default();
        assert!(
            received.iter().all(
                |r| r.headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some(&format!("Bearer {SENTINEL}"))
            ),
            "{name}: the key is sent to the server"
        );
        assert!(!run.stdout().contains(SENTINEL), "{name}: key on stdout");
        assert!(!run.stderr().contains(SENTINEL), "{name}: key on stderr");
        assert!(run.stderr().len() > 1_000, "{name}: trace logging was on");
        for entry in walk(run.folder())
            .into_iter()
            .chain(walk(recordings.path()))
        {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            assert!(
                !text.contains(SENTINEL),
                "{name}: key in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_at_once_and_marks_the_run_interrupted() {
    let slow =
        ok(&reply("release-manager", "valid.txt")).set_delay(std::time::Duration::from_secs(30));
    let server = serve(vec![slow]).await;
    let out = tempfile::tempdir().expect("temp dir");
    let child = common::agent()
        .args(["run", "release-manager", "--inputs"])
        .arg(inputs("release-manager"))
        .args([
            "--base-url",
            &format!("{}/v1", server.uri()),
            "--model",
            "test-model",
            "--out",
        ])
        .arg(out.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    // Wait until the request is in flight, then interrupt.
    for _ in 0..100 {
        if !server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    common::interrupt(&child);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("exits"))
        .await
        .expect("joins");
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("run.json")).expect("run.json"),
    )
    .expect("json");
    assert_eq!(record["outcome"], "interrupted");
    assert!(
        out.path().join("prompt.md").is_file()
            && out.path().join("attempt-1/request.json").is_file()
    );
}
