//! `agent pipeline`: the shipped release pipeline offline, checking a bad file, reasoning never
//! passed on, independent steps at once, skipped dependents, and resume after a kill.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn reply(path: &str) -> String {
    std::fs::read_to_string(common::root().join(path)).expect("fixture reply")
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json")
}

/// The shipped release pipeline on its recording, with `--json`, writing to `out`.
fn replay_release(extra: &[&str], out: &Path) -> std::process::Output {
    common::agent()
        .args([
            "pipeline",
            "run",
            "pipelines/release.yaml",
            "--replay",
            "pipelines/release.recording.json",
            "--json",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .env_remove("AGENT_MODEL")
        .output()
        .expect("runs")
}

#[test]
fn the_release_pipeline_runs_offline_with_every_step_valid() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = replay_release(&[], out.path());
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one JSON envelope");
    let statuses: Vec<&str> = envelope["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["valid"; 5]);
    assert!(
        envelope["output"]
            .as_str()
            .expect("the deploy record")
            .starts_with("# Deployment for parcelpoint-api")
    );
    for step in ["strategy", "plan", "deployment_plan", "record", "deploy"] {
        assert!(
            out.path().join(step).join("run.json").is_file(),
            "{step} has its run folder"
        );
    }
    assert_eq!(
        json_file(&out.path().join("pipeline.json"))["partial"],
        false
    );
}

#[test]
fn a_bad_pipeline_file_names_every_problem_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        r#"name: bad
inputs:
  environment: { default: production }
steps:
  a:
    agent: release-manger
    inputs:
      VERSION: { step: f }
  b:
    agent: deployment-plan
    inputs:
      NOTES: { step: c }
      ENVIRONMENT: { input: region }
  c:
    agent: deployment-plan
    inputs:
      NOTES: { step: b }
      ENVIRONMENT: prod
      WINDOWS: tonight
  d:
    agent: deploy
    inputs:
      PROJECT_NAME: { step: c, pointer: /title }
      REPO_NAME: { step: e }
ouput: d
"#,
    )
    .expect("write");
    let output = common::agent()
        .args(["pipeline", "check"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = [
        ("bad.yaml:6:", "no agent `release-manger`"),
        // A step whose agent is unknown still has its bindings checked.
        ("bad.yaml:8:", "no step `f`"),
        ("bad.yaml:13:", "no input `region`"),
        ("bad.yaml:19:", "has no input `WINDOWS`"),
        (
            "bad.yaml:18:",
            "`prod` is not allowed; allowed: staging, production",
        ),
        (
            "bad.yaml:23:",
            "delivers markdown; a JSON pointer needs a JSON deliverable",
        ),
        ("bad.yaml:24:", "no step `e`"),
        ("bad.yaml:25:", "unknown key `ouput`"),
        (
            "bad.yaml:20:",
            "`deploy` needs `ENVIRONMENT`, `spec.md`, `architecture.md`, `runbook.md`, which nothing binds",
        ),
        ("bad.yaml:", "steps form a cycle: b → c → b"),
    ];
    for (line, message) in expected {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(line) && l.contains(message)),
            "missing `{line} … {message}` in:\n{stderr}"
        );
    }
}

/// A fake model that answers each agent's prompt with its fixture reply.
struct ByAgent {
    replies: Vec<(&'static str, String)>,
    delay: Duration,
    /// The agent whose request is never answered in time, so a run can be stopped there.
    stalled: Option<&'static str>,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Respond for ByAgent {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("json");
        let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
        let head: String = prompt.chars().take(400).collect();
        let (marker, content) = self
            .replies
            .iter()
            .find(|(marker, _)| head.contains(marker))
            .unwrap_or_else(|| panic!("no reply for a prompt starting {head:?}"));
        self.arrivals
            .lock()
            .expect("lock")
            .push(((*marker).to_owned(), Instant::now()));
        ResponseTemplate::new(200)
            .set_body_json(
                json!({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}),
            )
            .set_delay(if self.stalled == Some(*marker) {
                Duration::from_secs(30)
            } else {
                self.delay
            })
    }
}

const STRATEGY: &str = "dual-expertise release planning system";
const PLAN: &str = "Release & DevOps Engineer";
const DEPLOYMENT_PLAN: &str = "You are Codex coordinating a deployment";
const RECORD: &str = "You are a Release Manager Agent";
const DEPLOY: &str = "# Deployment for";

fn release_replies() -> Vec<(&'static str, String)> {
    vec![
        (
            STRATEGY,
            reply("fixtures/release-strategy/replies/valid.md"),
        ),
        (PLAN, reply("fixtures/release-plan/replies/valid.md")),
        (
            DEPLOYMENT_PLAN,
            reply("fixtures/deployment-plan/replies/valid.md"),
        ),
        (RECORD, reply("fixtures/release-manager/replies/valid.txt")),
        (DEPLOY, reply("fixtures/deploy/replies/valid.md")),
    ]
}

async fn fake_model(
    replies: Vec<(&'static str, String)>,
    delay: Duration,
) -> (MockServer, Arc<Mutex<Vec<(String, Instant)>>>) {
    fake_model_stalling(replies, delay, None).await
}

async fn fake_model_stalling(
    replies: Vec<(&'static str, String)>,
    delay: Duration,
    stalled: Option<&'static str>,
) -> (MockServer, Arc<Mutex<Vec<(String, Instant)>>>) {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(ByAgent {
            replies,
            delay,
            stalled,
            arrivals: arrivals.clone(),
        })
        .mount(&server)
        .await;
    (server, arrivals)
}

fn pipeline_command(file: &Path, server: &MockServer, extra: &[&str]) -> std::process::Command {
    let mut command = common::agent();
    command
        .args(["pipeline", "run"])
        .arg(file)
        .args([
            "--model",
            "test-model",
            "--base-url",
            &format!("{}/v1", server.uri()),
        ])
        .args(extra)
        .env("AGENT_TEST_NO_RETRY_DELAY", "1");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reasoning_block_never_reaches_a_later_step() {
    const MARKER: &str = "PRIVATE-REASONING-7f3a91";
    let plan_with_reasoning = format!(
        "<think>\n{MARKER}: weighing the window against the peak.\n</think>\n{}",
        reply("fixtures/deployment-plan/replies/valid.md")
    );
    let (server, _) = fake_model(
        vec![
            (DEPLOYMENT_PLAN, plan_with_reasoning),
            (RECORD, reply("fixtures/release-manager/replies/valid.txt")),
        ],
        Duration::ZERO,
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = common::root();
    let file = dir.path().join("two.yaml");
    std::fs::write(
        &file,
        format!(
            "steps:\n  plan:\n    agent: deployment-plan\n    inputs_dir: {}\n  record:\n    agent: release-manager\n    inputs_dir: {}\n    inputs:\n      DEPLOYMENT_STRATEGY: {{ step: plan }}\n",
            root.join("fixtures/deployment-plan/parcelpoint/inputs").display(),
            root.join("fixtures/release-manager/parcelpoint/inputs").display()
        ),
    )
    .expect("write");
    let out = dir.path().join("run");
    let mut command = pipeline_command(&file, &server, &["--out", out.to_str().expect("utf-8")]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 2);
    let later = String::from_utf8_lossy(&requests[1].body);
    assert!(
        later.contains("Go/No-Go Checklist"),
        "the plan's deliverable was passed on"
    );
    assert!(!later.contains(MARKER), "the plan's reasoning must not be");
    let saved =
        std::fs::read_to_string(out.join("plan/reasoning.md")).expect("reasoning saved apart");
    assert!(saved.contains(MARKER));
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_steps_run_at_once_and_a_failed_step_skips_its_dependents() {
    let broken = reply("fixtures/deployment-plan/replies/prose-only.md");
    let (server, arrivals) = fake_model(
        vec![
            (DEPLOYMENT_PLAN, broken),
            (RECORD, reply("fixtures/release-manager/replies/valid.txt")),
        ],
        Duration::from_millis(600),
    )
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let root = common::root();
    let file = dir.path().join("fork.yaml");
    std::fs::write(
        &file,
        format!(
            // The dependent is written before the step it needs: order in the file is not
            // order of running.
            "steps:\n  record_of_plan:\n    agent: release-manager\n    inputs_dir: {rm}\n    inputs:\n      DEPLOYMENT_STRATEGY: {{ step: plan }}\n  plan:\n    agent: deployment-plan\n    inputs_dir: {dp}\n    attempts: 1\n  record:\n    agent: release-manager\n    inputs_dir: {rm}\n",
            dp = root.join("fixtures/deployment-plan/parcelpoint/inputs").display(),
            rm = root.join("fixtures/release-manager/parcelpoint/inputs").display()
        ),
    )
    .expect("write");
    let mut command = pipeline_command(
        &file,
        &server,
        &[
            "--json",
            "--out",
            dir.path().join("run").to_str().expect("utf-8"),
        ],
    );
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(
        output.status.code(),
        Some(1),
        "a violated step gives the violated code"
    );
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("envelope");
    let status = |name: &str| {
        envelope["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].clone())
    };
    assert_eq!(status("plan"), Some(json!("violated")));
    assert_eq!(
        status("record"),
        Some(json!("valid")),
        "the independent branch finished"
    );
    assert_eq!(status("record_of_plan"), Some(json!("skipped")));
    assert_eq!(envelope["outcome"], "violated");
    assert_eq!(envelope["partial"], false);
    let reason = envelope["steps"][0]["reason"].as_str().unwrap_or_default();
    assert_eq!(reason, "needs `plan`, which ended violated");
    let arrivals = arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 2, "the skipped step made no request");
    let gap = if arrivals[0].1 > arrivals[1].1 {
        arrivals[0].1 - arrivals[1].1
    } else {
        arrivals[1].1 - arrivals[0].1
    };
    // Each answer takes 600 ms: one after the other, the second would arrive 600 ms later.
    assert!(
        gap < Duration::from_millis(400),
        "the two independent steps started together ({gap:?} apart)"
    );
}

/// The release pipeline started against `server`, writing to `out`, its output discarded.
fn spawn_release(server: &MockServer, out: &Path) -> std::process::Child {
    let file = common::root().join("pipelines/release.yaml");
    pipeline_command(&file, server, &["--out", out.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts")
}

/// How many steps `pipeline.json` in `out` records valid.
fn valid_steps(out: &Path) -> usize {
    std::fs::read_to_string(out.join("pipeline.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .map_or(0, |v| {
            v["steps"]
                .as_array()
                .map_or(0, |s| s.iter().filter(|s| s["status"] == "valid").count())
        })
}

/// Wait until `pipeline.json` in `out` records `count` valid steps, or about 30 s pass.
async fn wait_for_valid_steps(out: &Path, count: usize) {
    for _ in 0..3000 {
        if valid_steps(out) >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pipeline_resumes_without_repeating_completed_steps() {
    // The third step's request is never answered, so the kill lands after the second step
    // however slow the machine.
    let (stalling, _) =
        fake_model_stalling(release_replies(), Duration::ZERO, Some(DEPLOYMENT_PLAN)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let file = common::root().join("pipelines/release.yaml");
    let record = out.join("pipeline.json");
    let mut child = spawn_release(&stalling, &out);
    wait_for_valid_steps(&out, 2).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(valid_steps(&out), 2, "killed after the second step");

    let (server, _) = fake_model(release_replies(), Duration::ZERO).await;
    let mut resume = pipeline_command(&file, &server, &["--resume", out.to_str().expect("utf-8")]);
    let output = tokio::task::spawn_blocking(move || resume.output().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = server.received_requests().await.unwrap_or_default().len();
    assert_eq!(
        requests, 3,
        "only the three unfinished steps were asked for"
    );
    let report = json_file(&record);
    let reused: Vec<bool> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["reused"] == true)
        .collect();
    assert_eq!(reused, [true, true, false, false, false]);
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("# Deployment for parcelpoint-api")
    );
    // The resumed deployment plan was given the reused plan's deliverable, read back from disk.
    let requests = server.received_requests().await.unwrap_or_default();
    let plan_saved = std::fs::read_to_string(out.join("plan/deliverable.md")).expect("saved");
    let first_line = plan_saved.lines().next().expect("a heading");
    assert!(
        requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&json_text(first_line))),
        "the reused plan's deliverable reached the next step"
    );

    // A changed input re-runs the step that takes it; unchanged steps stay reused. Here the
    // record now breaks its contract: its old deliverable and its dependent's artifacts go.
    assert!(out.join("record/deliverable.json").is_file());
    let (broken, _) = fake_model(
        vec![(RECORD, "No record today.".to_owned())],
        Duration::ZERO,
    )
    .await;
    let mut changed = pipeline_command(
        &file,
        &broken,
        &[
            "--resume",
            out.to_str().expect("utf-8"),
            "--var",
            "version=2.4.1",
            "--attempts",
            "1",
        ],
    );
    let output = tokio::task::spawn_blocking(move || changed.output().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(output.status.code(), Some(1), "the record is violated");
    assert_eq!(
        broken.received_requests().await.unwrap_or_default().len(),
        1
    );
    let report = json_file(&record);
    let statuses: Vec<(&str, bool)> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["status"].as_str().unwrap_or(""), s["reused"] == true))
        .collect();
    assert_eq!(
        statuses,
        [
            ("valid", true),
            ("valid", true),
            ("valid", true),
            ("violated", false),
            ("skipped", false)
        ]
    );
    assert!(!out.join("record/deliverable.json").exists());
    assert!(out.join("record/attempt-1/reply.md").is_file());
    assert!(!out.join("deploy").exists());
}

/// `text` as it appears inside a JSON string.
fn json_text(text: &str) -> String {
    let quoted = serde_json::to_string(text).expect("json");
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_marks_the_running_step_interrupted_and_leaves_the_rest_pending() {
    let (server, _) = fake_model_stalling(release_replies(), Duration::ZERO, Some(PLAN)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let record = out.join("pipeline.json");
    let mut child = spawn_release(&server, &out);
    wait_for_valid_steps(&out, 1).await;
    // The second step is waiting on an answer that does not come.
    tokio::time::sleep(Duration::from_millis(100)).await;
    common::interrupt(&child);
    let code = tokio::task::spawn_blocking(move || child.wait().expect("waits"))
        .await
        .expect("joins")
        .code();
    assert_eq!(code, Some(130));
    let report = json_file(&record);
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["valid", "interrupted", "pending", "pending", "pending"]
    );
    assert_eq!(report["partial"], true);
}

#[test]
fn a_stale_recording_is_a_usage_error_named_in_the_envelope() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = replay_release(&["--var", "environment=staging"], out.path());
    assert_eq!(output.status.code(), Some(2));
    let envelope: Value = serde_json::from_slice(&output.stdout).expect("one JSON envelope");
    assert_eq!(envelope["outcome"], "input-error");
    assert_eq!(envelope["output"], Value::Null);
    let deployment_plan = &envelope["steps"][2];
    assert_eq!(deployment_plan["status"], "input-error");
    assert!(
        deployment_plan["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stale"),
        "{deployment_plan}"
    );
    assert_eq!(envelope["steps"][4]["status"], "skipped");
}

#[test]
fn a_pipeline_input_a_step_does_not_allow_is_refused_before_any_step_runs() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = replay_release(&["--var", "environment=qa"], &out.path().join("run"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stdout.is_empty(),
        "no envelope for a run that never started"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`environment` is `qa`, but step `deployment_plan` takes it as `ENVIRONMENT`, which allows only staging, production"),
        "{stderr}"
    );
    assert!(
        !out.path().join("run/strategy").exists(),
        "the steps before it did not run"
    );
}
