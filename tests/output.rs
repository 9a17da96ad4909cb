//! Stdout that cannot take the output: every command that prints data fails with its own exit
//! code (5) instead of passing a cut deliverable for a result (issue 9, item 1).

mod common;

use std::process::{Command, Stdio};

/// The exit code for output that could not be written.
const OUTPUT_FAILED: i32 = 5;

fn release_manager_run() -> Command {
    let mut command = common::agent();
    command.args([
        "run",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
        "--replay",
        "fixtures/release-manager/parcelpoint/recording.json",
        "-q",
    ]);
    command
}

/// Every command that prints data, run offline on what the repository ships.
fn data_commands(out: &std::path::Path) -> Vec<(&'static str, Command)> {
    let mut commands = Vec::new();
    let mut run = release_manager_run();
    run.arg("--out").arg(out.join("run"));
    commands.push(("run", run));
    let mut run_json = release_manager_run();
    run_json
        .arg("--json")
        .arg("--out")
        .arg(out.join("run-json"));
    commands.push(("run --json", run_json));
    let mut pipeline = common::agent();
    pipeline
        .args([
            "pipeline",
            "run",
            "pipelines/release.yaml",
            "--replay",
            "pipelines/release.recording.json",
            "-q",
            "--out",
        ])
        .arg(out.join("pipeline"));
    commands.push(("pipeline run", pipeline));
    let mut eval = common::agent();
    eval.args(["eval", "deployment-plan", "-q", "--out"])
        .arg(out.join("eval"));
    commands.push(("eval", eval));
    let mut check = common::agent();
    check.args([
        "check",
        "release-manager",
        "fixtures/release-manager/replies/enum-off-by-case.txt",
    ]);
    commands.push(("check", check));
    let mut list = common::agent();
    list.args(["list"]);
    commands.push(("list", list));
    let mut show = common::agent();
    show.args(["show", "release-plan"]);
    commands.push(("show", show));
    let mut render = common::agent();
    render.args([
        "render",
        "release-manager",
        "--inputs",
        "fixtures/release-manager/parcelpoint/inputs",
    ]);
    commands.push(("render", render));
    let mut pipeline_check = common::agent();
    pipeline_check.args(["pipeline", "check", "pipelines/release.yaml"]);
    commands.push(("pipeline check", pipeline_check));
    commands
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_to_stdout_is_not_success() {
    let out = tempfile::tempdir().expect("temp dir");
    for (name, mut command) in data_commands(out.path()) {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let output = command
            .stdout(Stdio::from(full))
            .output()
            .expect("agent runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(OUTPUT_FAILED),
            "{name} into a full device: {stderr}"
        );
        assert!(
            stderr.contains("cannot write the output to stdout")
                && stderr.contains("no space left"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_closed_pipe_is_not_reported_as_success() {
    let out = tempfile::tempdir().expect("temp dir");
    let mut command = release_manager_run();
    command.arg("--out").arg(out.path().join("run"));
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");
    // The reader goes away before a byte is written, as `| head -0` would.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("agent ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(OUTPUT_FAILED), "{stderr}");
    assert!(stderr.contains("the reader closed the pipe"), "{stderr}");
    assert!(
        stderr.contains(&out.path().join("run").display().to_string()),
        "the hint names the run folder that keeps the deliverable: {stderr}"
    );
}

/// A project with the shipped agents and one whose front matter is broken on a 400 KB line.
fn project_with_a_broken_agent() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for sub in ["prompts", "schemas"] {
        std::fs::create_dir(dir.path().join(sub)).expect("creates");
        for entry in std::fs::read_dir(common::root().join(sub)).expect("lists") {
            let path = entry.expect("entry").path();
            std::fs::copy(
                &path,
                dir.path().join(sub).join(path.file_name().expect("name")),
            )
            .expect("copies");
        }
    }
    let broken = format!(
        "---\nagent:\n  description: {}\n  dialect: no-such-dialect\n---\nbody\n",
        "x".repeat(400_000)
    );
    std::fs::write(dir.path().join("prompts/broken.md"), broken).expect("writes");
    dir
}

#[test]
fn list_shows_a_broken_agent_beside_the_good_ones() {
    let project = project_with_a_broken_agent();
    let output = common::agent_in(project.path())
        .args(["list", "--json"])
        .output()
        .expect("agent runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "a broken agent is a usage error"
    );
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let rows = rows.as_array().expect("a list");
    assert_eq!(rows.len(), 6, "five good agents and the broken one");
    let broken = rows.iter().find(|r| r["name"] == "broken").expect("listed");
    let error = broken["error"].as_str().expect("its error");
    assert!(error.contains("no-such-dialect"), "{error}");
    assert!(error.len() < 1000, "one short line: {} bytes", error.len());
    for name in common::AGENTS {
        let row = rows.iter().find(|r| r["name"] == name).expect("listed");
        assert!(row["description"].is_string(), "{row}");
    }
}

#[test]
fn an_error_never_prints_a_huge_line() {
    let project = project_with_a_broken_agent();
    let output = common::agent_in(project.path())
        .args(["show", "broken"])
        .output()
        .expect("agent runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-dialect"), "{stderr}");
    let longest = stderr.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2000, "longest stderr line: {longest} bytes");
}
