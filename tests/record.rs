//! `agent record`: a fixture's recording made again from its hand-written replies is the
//! shipped recording byte for byte (re-asks and llm-rubric judge requests included), a case
//! that runs out of replies records nothing, and a pipeline routes replies to the steps that
//! run at once.

mod common;

use std::path::Path;

/// Copy `from` (a file or a directory) to `to`.
fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("create parent");
        std::fs::copy(from, to).expect("copy file");
    }
}

/// A project holding the agents, their contracts and the fixture folders named.
fn project_with(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = common::root();
    for part in ["prompts", "schemas"] {
        copy(&root.join(part), &dir.path().join(part));
    }
    for fixture in fixtures {
        copy(
            &root.join("fixtures").join(fixture),
            &dir.path().join("fixtures").join(fixture),
        );
    }
    dir
}

fn shipped(path: &str) -> Vec<u8> {
    std::fs::read(common::root().join(path)).expect("shipped recording")
}

fn record_case_again(case: &str, fixtures: &[&str]) {
    let project = project_with(fixtures);
    let recording = project
        .path()
        .join("fixtures")
        .join(case)
        .join("recording.json");
    std::fs::remove_file(&recording).expect("the copy's recording removed");
    let output = common::agent_in(project.path())
        .args(["record", case])
        .env("AGENT_MODEL", "some-live-model")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let made = std::fs::read(&recording).expect("a recording was made");
    assert!(
        made == shipped(&format!("fixtures/{case}/recording.json")),
        "{case}: the recording differs from the shipped one"
    );
    // And it replays: the eval of the case passes on it.
    let replay = common::agent_in(project.path())
        .args(["eval", "--filter", case, "--out"])
        .arg(project.path().join("eval"))
        .output()
        .expect("agent runs");
    assert_eq!(
        replay.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
}

#[test]
fn a_case_with_a_reask_is_recorded_again_byte_for_byte() {
    record_case_again(
        "release-plan/parcelpoint",
        &["release-plan/parcelpoint", "release-plan/replies"],
    );
}

#[test]
fn a_case_with_a_reask_and_a_judge_is_recorded_again_byte_for_byte() {
    record_case_again(
        "release-manager/regulated-bank",
        &["release-manager/regulated-bank"],
    );
}

#[test]
fn a_dataset_case_is_recorded_again_byte_for_byte() {
    record_case_again(
        "deployment-plan/notes-dataset",
        &["deployment-plan/notes-dataset"],
    );
}

#[test]
fn a_case_that_runs_out_of_replies_records_nothing() {
    let project = project_with(&["release-plan/parcelpoint", "release-plan/replies"]);
    let recording = project
        .path()
        .join("fixtures/release-plan/parcelpoint/recording.json");
    let before = std::fs::read(&recording).expect("recording");
    // The first reply misses a section, so the case needs a second reply for the re-ask.
    let output = common::agent_in(project.path())
        .args(["record", "release-plan/parcelpoint"])
        .arg(
            project
                .path()
                .join("fixtures/release-plan/replies/missing-section.md"),
        )
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("asked for more replies than the 1 given; nothing was recorded"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&recording).expect("recording"), before);
}

#[test]
fn a_case_refused_for_its_inputs_says_nothing_was_recorded() {
    let project = project_with(&["release-plan/parcelpoint", "release-plan/replies"]);
    let case = project.path().join("fixtures/release-plan/parcelpoint");
    let recording = case.join("recording.json");
    let before = std::fs::read(&recording).expect("recording");
    // The same input given twice: the case is refused before any model call.
    let inputs = case.join("inputs");
    let request = std::fs::read_dir(&inputs)
        .expect("inputs")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_file())
        .expect("an input file");
    std::fs::copy(&request, inputs.join(request.file_stem().expect("stem"))).expect("copy");
    let output = common::agent_in(project.path())
        .args(["record", "release-plan/parcelpoint"])
        .arg(
            project
                .path()
                .join("fixtures/release-plan/replies/missing-section.md"),
        )
        .output()
        .expect("agent runs");
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nothing recorded"), "{stderr}");
    assert!(!stderr.contains("recorded 0"), "{stderr}");
    assert_eq!(std::fs::read(&recording).expect("recording"), before);
}

#[test]
fn a_case_given_replies_records_them_instead_of_its_own() {
    let project = project_with(&["release-plan/parcelpoint", "release-plan/replies"]);
    let replies = project.path().join("fixtures/release-plan/replies");
    let output = common::agent_in(project.path())
        .args(["record", "release-plan/parcelpoint"])
        .arg(replies.join("valid.md"))
        .output()
        .expect("agent runs");
    // Valid at the first attempt, where the case expects two: recorded, and the case fails.
    assert_eq!(output.status.code(), Some(1));
    let recording: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            project
                .path()
                .join("fixtures/release-plan/parcelpoint/recording.json"),
        )
        .expect("recording"),
    )
    .expect("json");
    let exchanges = recording["exchanges"].as_array().expect("exchanges");
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0]["response"]["id"], "chatcmpl-fixture-1");
    assert_eq!(exchanges[0]["response"]["model"], "fixture-model");
}

#[test]
fn a_pipeline_is_recorded_again_with_replies_routed_to_steps_that_run_at_once() {
    let fixtures = [
        "pipelines/declined-record",
        "release-manager/insufficient-context",
        "deploy/parcelpoint",
        "deployment-plan/tiny-project",
    ];
    let project = project_with(&fixtures);
    let recording = project
        .path()
        .join("fixtures/pipelines/declined-record/recording.json");
    std::fs::remove_file(&recording).expect("removed");
    // The deployment plan's reply is given first, routed to its prompt: the record still
    // gets the release manager's.
    let output = common::agent_in(project.path())
        .args([
            "record",
            "--pipeline",
            "fixtures/pipelines/declined-record/pipeline.yaml",
            "--recording",
            "fixtures/pipelines/declined-record/recording.json",
            "You are Codex=fixtures/deployment-plan/tiny-project/replies/01-valid.md",
            "fixtures/release-manager/insufficient-context/replies/01-declined.txt",
        ])
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read(&recording).expect("recorded")
            == shipped("fixtures/pipelines/declined-record/recording.json"),
        "the pipeline recording differs from the shipped one"
    );
}

#[test]
fn a_pipeline_case_records_from_its_scripted_replies() {
    let fixtures = [
        "pipelines/declined-record",
        "release-manager/insufficient-context",
        "deploy/parcelpoint",
        "deployment-plan/tiny-project",
    ];
    let project = project_with(&fixtures);
    let recording = project
        .path()
        .join("fixtures/pipelines/declined-record/recording.json");
    std::fs::remove_file(&recording).expect("removed");
    let output = common::agent_in(project.path())
        .args(["record", "pipelines/declined-record"])
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read(&recording).expect("recorded")
            == shipped("fixtures/pipelines/declined-record/recording.json")
    );
}
