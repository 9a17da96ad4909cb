//! Regressions, each named after the defect it pins down (issue 12: what a real llama.cpp
//! server showed that no mock had).

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("lists") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A project in a temp dir holding the agents, contracts and the named fixture folders.
fn project(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    for fixture in fixtures {
        copy_dir(
            &common::root().join("fixtures").join(fixture),
            &dir.path().join("fixtures").join(fixture),
        );
    }
    dir
}

/// `agent ARGS` in `dir`, with no model configured by the environment, from a blocking task
/// so that a fake server keeps serving.
async fn agent_in(dir: &Path, args: Vec<String>, stdin: Option<String>) -> Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut command = common::agent_in(&dir);
        command
            .args(&args)
            .env_remove("AGENT_MODEL")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY");
        match stdin {
            None => command.output().expect("agent runs"),
            Some(text) => {
                use std::io::Write as _;
                let mut child = command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("agent starts");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(text.as_bytes())
                    .expect("stdin written");
                child.wait_with_output().expect("agent runs")
            }
        }
    })
    .await
    .expect("joins")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("written")).expect("json")
}

fn reply(name: &str) -> String {
    std::fs::read_to_string(common::root().join("fixtures").join(name)).expect("reply")
}

/// A fake server answering every request with `content`.
async fn answering(content: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        })))
        .mount(&server)
        .await;
    server
}

fn model_flags(server: &MockServer) -> Vec<String> {
    args(&[
        "--model",
        "m",
        "--base-url",
        &format!("{}/v1", server.uri()),
    ])
}

/// Every request the server received, as JSON.
async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON request"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_eval_replay_ignores_the_sampling_flags_that_record_used() {
    let dir = project(&["release-manager/parcelpoint"]);
    let case = dir.path().join("fixtures/release-manager/capped");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: recorded with sampling flags\ninputs: ../parcelpoint/inputs\nexpect: { outcome: valid }\n",
    )
    .expect("case");
    let server = answering(&reply("release-manager/replies/valid.txt")).await;
    let sampling = [
        "--max-tokens",
        "64",
        "--temperature",
        "0.5",
        "--seed",
        "7",
        "--top-p",
        "0.9",
    ];
    let eval = |mode: &[&str], out: &str, with_flags: bool| {
        let mut list = args(&[
            "eval",
            "release-manager",
            "--filter",
            "capped",
            "--out",
            out,
        ]);
        list.extend(args(mode));
        if with_flags {
            list.extend(args(&sampling));
        }
        list
    };

    let mut record = eval(&["--record"], "record", true);
    record.extend(model_flags(&server));
    let recorded = agent_in(dir.path(), record, None).await;
    assert_eq!(recorded.status.code(), Some(0), "{}", text(&recorded));
    let sent = &requests(&server).await[0];
    assert_eq!(sent["max_tokens"], 64, "{sent}");
    assert_eq!(sent["seed"], 7, "{sent}");

    let replayed = agent_in(dir.path(), eval(&["--replay"], "replay", true), None).await;
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "the flags it was recorded with replay it: {}",
        text(&replayed)
    );

    // Without them the recording is stale: said in plain numbers, and an input error as
    // `agent run` and `agent pipeline run` call it, not a model error.
    let stale = agent_in(dir.path(), eval(&["--replay"], "stale", false), None).await;
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    let table = text(&stale);
    assert!(table.contains("max_tokens: recorded 64, now "), "{table}");
    assert!(table.contains("seed: recorded 7, now none"), "{table}");
    assert!(!table.contains("Some("), "{table}");
    let report = json_file(&dir.path().join("stale/report.json"));
    assert_eq!(
        report["cases"][0]["runs"][0]["outcome"], "input-error",
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_a_failed_attempt_keeps_only_300_characters_of_the_server_error_double_escaped() {
    let server = MockServer::start().await;
    // A long message with a line break and quotes, as servers write them.
    let message = format!(
        "invalid request: \"response_format\" is not supported\ndetails: {}END",
        "x".repeat(2000)
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": message, "type": "invalid_request_error", "code": 400}}),
        ))
        .mount(&server)
        .await;
    let dir = project(&["release-manager/parcelpoint"]);
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "run",
        "--json",
    ]);
    list.extend(model_flags(&server));
    let output = agent_in(dir.path(), list, None).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let run = json_file(&dir.path().join("run/run.json"));
    // Kept whole (up to 4 KB) and escaped once: by the JSON, not before it as well.
    let error = run["error"].as_str().expect("an error");
    assert!(error.ends_with(&message), "{error}");
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("envelope");
    assert_eq!(envelope["error"], run["error"]);
    // The terminal shows it on one line, each line break escaped once.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"response_format\" is not supported\\ndetails: xxx"),
        "{stderr}"
    );
    assert!(!stderr.contains("\\\\n"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_minus_zero_becomes_minus_zero_point_zero_in_the_json_envelope() {
    let valid = reply("release-manager/replies/valid.txt");
    let written = valid.replace(
        "\"validation_duration_minutes\": 120",
        "\"validation_duration_minutes\": -0",
    );
    assert_ne!(written, valid);
    let server = answering(&written).await;
    let dir = project(&["release-manager/parcelpoint"]);
    let mut list = args(&[
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--out",
        "run",
        "--json",
    ]);
    list.extend(model_flags(&server));
    let output = agent_in(dir.path(), list, None).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("\"validation_duration_minutes\": -0,")
            || stdout.contains("\"validation_duration_minutes\": -0\n"),
        "the deliverable's numbers as written: {stdout}"
    );
    assert!(
        !stdout.contains("-0.0\n") && !stdout.contains("-0.0,"),
        "{stdout}"
    );
    let envelope: Value = serde_json::from_str(&stdout).expect("one JSON envelope");
    assert_eq!(envelope["outcome"], "valid");
    assert_eq!(
        envelope["deliverable"]["version"], "2.4.0",
        "still the parsed object"
    );
    // Every other field is where it was.
    let keys: Vec<&str> = envelope
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        keys.contains(&"run_folder") && keys.contains(&"usage"),
        "{keys:?}"
    );
}
