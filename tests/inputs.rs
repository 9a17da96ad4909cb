//! Bad input is refused before any model call: a clear error naming every problem, the usage
//! exit code, and nothing on stdout.

mod common;

use std::path::Path;
use std::process::Output;

const USAGE: i32 = 2;

fn render(agent: &str, inputs: &Path, extra: &[&str]) -> Output {
    common::agent()
        .args(["render", agent, "--inputs"])
        .arg(inputs)
        .args(extra)
        .output()
        .expect("agent runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, needles: &[&str]) {
    assert_eq!(
        output.status.code(),
        Some(USAGE),
        "stderr: {}",
        stderr(output)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout, got {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    let text = stderr(output);
    for needle in needles {
        assert!(
            text.contains(needle),
            "stderr should name {needle:?}:\n{text}"
        );
    }
}

fn deployment_plan_inputs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.md"), "- Reservation holds\n").expect("write");
    std::fs::write(dir.path().join("vars.yaml"), "ENVIRONMENT: staging\n").expect("write");
    dir
}

#[test]
fn good_inputs_render_to_stdout() {
    let dir = deployment_plan_inputs();
    let output = render("deployment-plan", dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("**Release notes:** - Reservation holds\n"));
    assert!(text.contains("**Target environment:** staging\n"));
    assert!(
        text.contains("feature flags `none` prepared"),
        "optional FLAG takes its default"
    );
}

#[test]
fn every_missing_required_input_is_named_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("project_request.md"), "Build it.\n").expect("write");
    let output = render("release-plan", dir.path(), &[]);
    assert_refused(
        &output,
        &[
            "4 problems",
            "PROJECT_RULES",
            "TECHNICAL_SPECIFICATION",
            "IMPLEMENTATION_PLAN",
            "EXISTING_CODE",
            "existing_code/",
        ],
    );
}

#[test]
fn an_empty_inputs_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_refused(&render("deployment-plan", dir.path(), &[]), &["is empty"]);
}

#[test]
fn a_missing_inputs_directory_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_refused(
        &render("deployment-plan", &dir.path().join("nope"), &[]),
        &["is not a directory"],
    );
}

#[test]
fn a_binary_file_is_refused_with_its_path() {
    let dir = deployment_plan_inputs();
    std::fs::write(
        dir.path().join("notes.md"),
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
    )
    .expect("write");
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["notes.md", "binary"],
    );
}

#[test]
fn invalid_utf8_is_refused_with_its_path_and_offset() {
    let dir = deployment_plan_inputs();
    std::fs::write(dir.path().join("notes.md"), b"Caf\xe9 menu rollout").expect("write");
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["notes.md", "not UTF-8", "offset 3"],
    );
}

#[test]
fn a_fifty_megabyte_file_is_refused_without_reading_it() {
    let dir = deployment_plan_inputs();
    let file = std::fs::File::create(dir.path().join("notes.md")).expect("create");
    file.set_len(50 * 1024 * 1024).expect("sparse file");
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["notes.md", "52.4 MB", "1.0 MB limit"],
    );
}

#[cfg(unix)]
#[test]
fn a_link_escaping_the_inputs_directory_is_refused() {
    let dir = deployment_plan_inputs();
    let outside = tempfile::tempdir().expect("temp dir");
    std::fs::write(outside.path().join("secrets.md"), "token").expect("write");
    std::fs::remove_file(dir.path().join("notes.md")).expect("remove");
    std::os::unix::fs::symlink(
        outside.path().join("secrets.md"),
        dir.path().join("notes.md"),
    )
    .expect("link");
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["notes.md", "outside the inputs directory"],
    );
}

#[cfg(unix)]
#[test]
fn a_link_escaping_a_source_tree_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [
        "project_request",
        "project_rules",
        "technical_specification",
        "implementation_plan",
    ] {
        std::fs::write(dir.path().join(format!("{name}.md")), "text\n").expect("write");
    }
    let tree = dir.path().join("existing_code");
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::write(tree.join("main.ts"), "export {};\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", tree.join("passwd")).expect("link");
    assert_refused(
        &render("release-plan", dir.path(), &[]),
        &["passwd", "outside the inputs directory"],
    );
}

#[test]
fn a_value_outside_the_allowed_ones_is_refused() {
    let dir = deployment_plan_inputs();
    std::fs::write(dir.path().join("vars.yaml"), "ENVIRONMENT: prod\n").expect("write");
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["ENVIRONMENT", "`prod`", "`staging`, `production`"],
    );
}

#[test]
fn an_unknown_var_flag_is_refused_but_an_unknown_file_only_warned() {
    let dir = deployment_plan_inputs();
    assert_refused(
        &render(
            "deployment-plan",
            dir.path(),
            &["--var", "ENVIRONMNET=staging"],
        ),
        &["ENVIRONMNET", "NOTES"],
    );

    std::fs::write(dir.path().join("changelog.md"), "x").expect("write");
    let output = render("deployment-plan", dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("changelog.md"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn var_flags_override_files_and_read_files_with_at() {
    let dir = deployment_plan_inputs();
    let notes = dir.path().join("other-notes.txt");
    std::fs::write(&notes, "- Courier QR codes\n").expect("write");
    let output = render(
        "deployment-plan",
        dir.path(),
        &[
            "--var",
            "ENVIRONMENT=production",
            "--var",
            &format!("NOTES=@{}", notes.display()),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("**Target environment:** production\n"));
    assert!(text.contains("**Release notes:** - Courier QR codes\n"));
}

#[test]
fn stdin_json_supplies_the_inputs() {
    let mut child = common::agent()
        .args(["render", "deployment-plan", "--inputs", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agent runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            br#"{"NOTES": "Hotfix 2.4.1", "environment": "staging", "FLAG": "reservation-holds"}"#,
        )
        .expect("write");
    let output = child.wait_with_output().expect("finishes");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("feature flags `reservation-holds` prepared"));

    let output = common::agent()
        .args(["render", "deployment-plan", "--inputs", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("agent runs");
    assert_refused(&output, &["stdin"]);
}

#[test]
fn a_file_binds_by_its_name_without_the_last_extension_and_backups_are_ignored() {
    let dir = deployment_plan_inputs();
    std::fs::write(dir.path().join("notes.md~"), "- an editor's backup\n").expect("write");
    std::fs::write(dir.path().join("notes.old.md"), "- last release's notes\n").expect("write");
    let output = render("deployment-plan", dir.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warnings = stderr(&output);
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(text.contains("**Release notes:** - Reservation holds\n"));
    assert!(
        warnings.contains("notes.md~` is an editor's backup"),
        "{warnings}"
    );
    assert!(
        warnings.contains("notes.old.md` binds no input"),
        "{warnings}"
    );
}

#[cfg(unix)]
#[test]
fn a_pipe_in_the_inputs_directory_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("vars.yaml"), "ENVIRONMENT: staging\n").expect("write");
    let fifo = dir.path().join("notes.md");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Were the pipe opened, the read would block until the test harness gave up.
    assert_refused(
        &render("deployment-plan", dir.path(), &[]),
        &["notes.md", "not a regular file"],
    );
}

/// `agent render deployment-plan --inputs -` given `json` on stdin, written from a thread so
/// that a reader that stops early cannot block the test.
fn render_stdin(json: Vec<u8>, extra: &[&str]) -> Output {
    let mut child = common::agent()
        .args(["render", "deployment-plan", "--inputs", "-"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agent runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        // The reader may stop before the end: a broken pipe is its answer, not a failure.
        let _ = stdin.write_all(&json);
    });
    let output = child.wait_with_output().expect("finishes");
    writer.join().expect("writer");
    output
}

#[test]
fn stdin_values_are_held_to_the_input_size_limit() {
    let notes = "x".repeat(300_000);
    let json = format!(r#"{{"NOTES": "{notes}", "ENVIRONMENT": "staging"}}"#).into_bytes();
    assert_refused(
        &render_stdin(json.clone(), &["--max-input-bytes", "100000"]),
        &["`NOTES` in `stdin JSON`", "over the 100.0 kB limit"],
    );
    // The whole object is bounded too, at 16 times the limit, without reading all of it.
    assert_refused(
        &render_stdin(json.clone(), &["--max-input-bytes", "10000"]),
        &["the inputs on stdin are over 160.0 kB"],
    );
    let output = render_stdin(json, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
