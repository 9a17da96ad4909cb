//! Run, eval and pipeline folders under hostile use (issue 9): a reused `--out`, two processes
//! on one folder, duplicate dataset ids, a resume against another model, a killed `--record`,
//! torn results, SIGTERM, a pipeline killed in its first step, report paths checked first.

mod common;

use common::{copy_dir, json_file};

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A project with the shipped agents, and a release-manager case of six dataset rows
/// (`rows.jsonl` as given) over the parcelpoint inputs.
fn project_with_rows(rows: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for part in ["prompts", "schemas", "fixtures/release-manager/parcelpoint"] {
        copy_dir(&common::root().join(part), &dir.path().join(part));
    }
    let case = dir.path().join("fixtures/release-manager/rows");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::write(
        case.join("case.yaml"),
        "description: releases\ninputs: ../parcelpoint/inputs\ndataset: rows.jsonl\nexpect: { outcome: valid }\nassert:\n  - { type: is-json }\n",
    )
    .expect("case");
    std::fs::write(case.join("rows.jsonl"), rows).expect("rows");
    dir
}

fn six_rows() -> String {
    (1..=6)
        .map(|i| format!("{{\"id\": \"r{i}\", \"VERSION\": \"2.4.{i}\"}}\n"))
        .collect()
}

/// A model that answers every request with release-manager's valid reply after `delay`.
async fn model_server(delay: Duration) -> MockServer {
    let reply =
        std::fs::read_to_string(common::root().join("fixtures/release-manager/replies/valid.txt"))
            .expect("reply");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": [{"message": {"content": reply}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}))
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

fn eval_command(dir: &Path, server: &MockServer, args: &[&str]) -> std::process::Command {
    let mut command = common::agent_in(dir);
    command
        .args(["eval", "release-manager", "--filter", "rows"])
        .args(["--concurrency", "1", "--base-url"])
        .arg(format!("{}/v1", server.uri()))
        .args(args)
        .env_remove("AGENT_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    command
}

/// Cut the results at `path` to their first two lines, as if the eval was killed then.
fn keep_two_results(path: &Path) {
    let kept: String = std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, kept).expect("as if killed after two cases");
}

async fn eval_done(dir: &Path, server: &MockServer, args: &[&str]) -> Output {
    let mut command = eval_command(dir, server, args);
    tokio::task::spawn_blocking(move || command.output().expect("agent runs"))
        .await
        .expect("joins")
}

fn spawn_eval(dir: &Path, server: &MockServer, args: &[&str]) -> Child {
    eval_command(dir, server, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts")
}

async fn wait_for_lines(path: &Path, lines: usize) {
    for _ in 0..400 {
        let count = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if count >= lines {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never reached {lines} lines", path.display());
}

async fn wait_for_file(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}

async fn finish(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().expect("exits"))
        .await
        .expect("joins")
}

#[cfg(unix)]
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with a child's pid touches no memory of ours.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal delivered");
}

fn release_manager_run(out: &Path, recording: &str) -> Output {
    common::agent()
        .args([
            "run",
            "release-manager",
            "--inputs",
            "fixtures/release-manager/parcelpoint/inputs",
            "--replay",
            recording,
            "-q",
            "--out",
        ])
        .arg(out)
        .output()
        .expect("agent runs")
}

#[test]
fn a_reused_out_folder_holds_only_the_new_run() {
    let parent = tempfile::tempdir().expect("temp dir");
    let out = parent.path().join("run");
    let valid = release_manager_run(&out, "fixtures/release-manager/parcelpoint/recording.json");
    assert_eq!(valid.status.code(), Some(0), "{}", text(&valid.stderr));
    assert!(out.join("deliverable.json").is_file());

    // The same folder for a run that fails: another agent's recording is stale for this one.
    let stale = release_manager_run(&out, "fixtures/deployment-plan/parcelpoint/recording.json");
    assert_eq!(stale.status.code(), Some(2), "{}", text(&stale.stderr));
    assert!(
        !out.join("deliverable.json").exists(),
        "the first run's deliverable does not pass for the second's"
    );
    let record = json_file(&out.join("run.json"));
    assert_eq!(record["outcome"], "input-error", "{record}");
    assert!(!out.join("attempt-2").exists());
}

#[test]
fn a_folder_agent_did_not_make_is_refused_not_cleared() {
    let parent = tempfile::tempdir().expect("temp dir");
    let out = parent.path().join("mine");
    std::fs::create_dir(&out).expect("mkdir");
    std::fs::write(out.join("notes.txt"), "keep me").expect("writes");
    let refused = release_manager_run(&out, "fixtures/release-manager/parcelpoint/recording.json");
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("not made by agent"),
        "{}",
        text(&refused.stderr)
    );
    let names: Vec<_> = std::fs::read_dir(&out)
        .expect("lists")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["notes.txt"], "nothing added, nothing removed");
}

#[test]
fn a_folder_in_use_by_another_process_is_refused() {
    let parent = tempfile::tempdir().expect("temp dir");
    // A finished eval and a finished pipeline run.
    let eval = common::agent()
        .args(["eval", "deployment-plan", "--filter", "parcelpoint", "-q"])
        .arg("--out")
        .arg(parent.path().join("eval"))
        .output()
        .expect("runs");
    assert_eq!(eval.status.code(), Some(0), "{}", text(&eval.stderr));
    let pipeline = common::agent()
        .args([
            "pipeline",
            "run",
            "pipelines/release.yaml",
            "--replay",
            "pipelines/release.recording.json",
            "-q",
            "--out",
        ])
        .arg(parent.path().join("pipeline"))
        .output()
        .expect("runs");
    assert_eq!(
        pipeline.status.code(),
        Some(0),
        "{}",
        text(&pipeline.stderr)
    );

    // This process holds both, as a running eval and a running pipeline would.
    let _eval_lock =
        agent::artifacts::FolderLock::acquire(&parent.path().join("eval")).expect("locks");
    let _pipeline_lock =
        agent::artifacts::FolderLock::acquire(&parent.path().join("pipeline")).expect("locks");
    let resumed_eval = common::agent()
        .args(["eval", "--resume"])
        .arg(parent.path().join("eval"))
        .output()
        .expect("runs");
    let resumed_pipeline = common::agent()
        .args([
            "pipeline",
            "run",
            "pipelines/release.yaml",
            "--replay",
            "pipelines/release.recording.json",
            "--resume",
        ])
        .arg(parent.path().join("pipeline"))
        .output()
        .expect("runs");
    for (name, output) in [("eval", resumed_eval), ("pipeline", resumed_pipeline)] {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("in use by another agent process"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn eval_out_onto_a_finished_eval_is_refused() {
    let parent = tempfile::tempdir().expect("temp dir");
    let eval = |out: &str| {
        common::agent()
            .args(["eval", "deployment-plan", "--filter", "parcelpoint", "-q"])
            .arg("--out")
            .arg(parent.path().join(out))
            .output()
            .expect("runs")
    };
    assert_eq!(eval("e").status.code(), Some(0));
    let results = std::fs::read_to_string(parent.path().join("e/results.jsonl")).expect("results");
    let again = eval("e");
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("holds an eval already")
            && text(&again.stderr).contains("--resume"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(parent.path().join("e/results.jsonl")).expect("results"),
        results,
        "nothing appended"
    );
}

#[test]
fn duplicate_dataset_ids_are_refused_naming_both_rows() {
    let rows = "{\"id\": \"a\", \"VERSION\": \"1\"}\n{\"id\": \"dup\", \"VERSION\": \"2\"}\n{\"id\": \"dup\", \"VERSION\": \"3\"}\n";
    let dir = project_with_rows(rows);
    let output = common::agent_in(dir.path())
        .args(["eval", "release-manager"])
        .output()
        .expect("runs");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rows 2 and 3") && stderr.contains("`dup`"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "no table for an eval that never ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_against_another_model_or_parameters_is_refused() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::ZERO).await;
    let first = eval_done(
        dir.path(),
        &server,
        &["--live", "--model", "a", "--out", "e"],
    )
    .await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    keep_two_results(&dir.path().join("e/results.jsonl"));
    let before = server.received_requests().await.unwrap_or_default().len();

    for (changed, said) in [
        (vec!["--model", "b"], "release-manager: started with a at"),
        (
            vec!["--model", "a", "--temperature", "0.9"],
            "started with none, now --temperature 0.9",
        ),
    ] {
        let mut args = vec!["--resume", "e"];
        args.extend(changed.iter().copied());
        let refused = eval_done(dir.path(), &server, &args).await;
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{changed:?}: {stderr}");
        assert!(stderr.contains(said), "{changed:?}: {stderr}");
    }
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        before,
        "a refused resume sends nothing"
    );
    let same = eval_done(dir.path(), &server, &["--resume", "e", "--model", "a"]).await;
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len() - before,
        4
    );
}

/// A live eval resumed without its sampling flags samples as it started, not with the agent's
/// defaults (and is not refused for leaving them out).
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_takes_the_sampling_flags_the_eval_started_with() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::ZERO).await;
    let first = eval_done(
        dir.path(),
        &server,
        &[
            "--live",
            "--model",
            "a",
            "--temperature",
            "0.3",
            "--out",
            "t",
        ],
    )
    .await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    keep_two_results(&dir.path().join("t/results.jsonl"));
    let before = server.received_requests().await.unwrap_or_default().len();
    let resumed = eval_done(dir.path(), &server, &["--resume", "t"]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let sent = server.received_requests().await.unwrap_or_default();
    assert_eq!(sent.len() - before, 4);
    for request in &sent[before..] {
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        assert_eq!(
            body["temperature"].as_f64().map(|t| (t * 10.0).round()),
            Some(3.0),
            "{body}"
        );
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_record_leaves_the_old_recording_whole() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::ZERO).await;
    let recorded = eval_done(
        dir.path(),
        &server,
        &["--record", "--model", "m", "--out", "first"],
    )
    .await;
    assert_eq!(
        recorded.status.code(),
        Some(0),
        "{}",
        text(&recorded.stderr)
    );
    let recording = dir
        .path()
        .join("fixtures/release-manager/rows/recording.json");
    let whole = std::fs::read(&recording).expect("recording");
    assert_eq!(
        json_file(&recording)["exchanges"]
            .as_array()
            .expect("exchanges")
            .len(),
        6
    );

    // Record again, slowly, and kill it after two cases.
    let slow = model_server(Duration::from_millis(300)).await;
    let mut child = spawn_eval(
        dir.path(),
        &slow,
        &["--record", "--model", "m", "--out", "second"],
    );
    wait_for_lines(&dir.path().join("second/results.jsonl"), 2).await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert_eq!(
        std::fs::read(&recording).expect("recording"),
        whole,
        "the recording is as it was before the killed refresh"
    );

    // The resume finishes the refresh, and only then replaces the recording.
    let resumed = eval_done(dir.path(), &slow, &["--resume", "second", "--model", "m"]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(
        json_file(&recording)["exchanges"]
            .as_array()
            .expect("exchanges")
            .len(),
        6,
        "every row recorded once"
    );
    let replay = common::agent_in(dir.path())
        .args(["eval", "release-manager", "--filter", "rows", "-q"])
        .output()
        .expect("runs");
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_line_in_the_middle_of_the_results_is_removed_on_resume() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::ZERO).await;
    let first = eval_done(
        dir.path(),
        &server,
        &["--live", "--model", "m", "--artifacts", "--out", "e"],
    )
    .await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let results = dir.path().join("e/results.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&results)
        .expect("results")
        .lines()
        .map(str::to_owned)
        .collect();
    // Line 2 torn in the middle, as a crash between two appends can leave it, and a stale
    // attempt in the artifacts of the case it belonged to.
    let torn = &lines[1][..lines[1].len() / 2];
    std::fs::write(
        &results,
        format!("{}\n{torn}\n{}\n", lines[0], lines[2..].join("\n")),
    )
    .expect("tears");
    let torn_case: Value = serde_json::from_str(&lines[1]).expect("json");
    let case = torn_case["case"]
        .as_str()
        .expect("case")
        .replace("release-manager/", "");
    let case_folder = dir
        .path()
        .join("e/runs/release-manager")
        .join(format!("{}-1", case.replace('#', "_")));
    assert!(case_folder.is_dir(), "{}", case_folder.display());
    std::fs::create_dir_all(case_folder.join("attempt-2")).expect("stale attempt");
    let before = server.received_requests().await.unwrap_or_default().len();

    let resumed = eval_done(dir.path(), &server, &["--resume", "e", "--model", "m"]).await;
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len() - before,
        1,
        "only the torn case runs again"
    );
    let after = std::fs::read_to_string(&results).expect("results");
    assert_eq!(after.lines().count(), 6);
    assert!(
        after
            .lines()
            .all(|line| serde_json::from_str::<Value>(line).is_ok()),
        "{after}"
    );
    assert!(
        !case_folder.join("attempt-2").exists(),
        "the re-run case's folder holds only its new run"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_treated_like_ctrl_c() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::from_millis(300)).await;
    let child = spawn_eval(
        dir.path(),
        &server,
        &["--live", "--model", "m", "--out", "e"],
    );
    wait_for_lines(&dir.path().join("e/results.jsonl"), 2).await;
    signal(&child, libc::SIGTERM);
    let output = finish(child).await;
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    let report = json_file(&dir.path().join("e/report.json"));
    assert_eq!(report["partial"], true);

    let out = tempfile::tempdir().expect("temp dir");
    let run = common::agent_in(dir.path())
        .args([
            "run",
            "release-manager",
            "--inputs",
            "fixtures/release-manager/parcelpoint/inputs",
            "--model",
            "m",
            "--base-url",
        ])
        .arg(format!(
            "{}/v1",
            model_server(Duration::from_secs(30)).await.uri()
        ))
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    wait_for_file(&out.path().join("attempt-1/request.json")).await;
    signal(&run, libc::SIGTERM);
    let output = finish(run).await;
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert_eq!(
        json_file(&out.path().join("run.json"))["outcome"],
        "interrupted"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_killed_in_its_first_step_can_be_resumed() {
    let server = MockServer::start().await;
    // Never answered in time: the pipeline is killed during its first step.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&server)
        .await;
    let out = tempfile::tempdir().expect("temp dir");
    let mut child = common::agent()
        .args(["pipeline", "run", "pipelines/release.yaml", "--model", "m"])
        .arg("--base-url")
        .arg(format!("{}/v1", server.uri()))
        .arg("--out")
        .arg(out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    for _ in 0..400 {
        if !server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let record = json_file(&out.path().join("pipeline.json"));
    assert_eq!(record["partial"], true, "{record}");

    let resumed = common::agent()
        .args([
            "pipeline",
            "run",
            "pipelines/release.yaml",
            "--replay",
            "pipelines/release.recording.json",
            "-q",
            "--resume",
        ])
        .arg(out.path())
        .output()
        .expect("runs");
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn report_paths_are_checked_before_any_request() {
    let dir = project_with_rows(&six_rows());
    let server = model_server(Duration::ZERO).await;
    std::fs::write(dir.path().join("a-file"), "").expect("writes");
    for report in ["a-file/report.json", "report.html5", "."] {
        let output = eval_done(
            dir.path(),
            &server,
            &["--live", "--model", "m", "--report", report],
        )
        .await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{report}: {}",
            text(&output.stderr)
        );
    }
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "no request for an eval whose report cannot be written"
    );
}
