//! A small project for driving the binary against fake endpoints: one JSON agent (`answer`,
//! input `QUESTION`, reply `{"answer": "..."}`), a pipeline of it, and an eval case of it.

#![allow(dead_code, reason = "each user of the project uses a different subset")]

/// The project, in a new temp dir.
pub(crate) fn answer_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |relative: &str, text: &str| {
        let path = dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("writes");
    };
    write(
        "prompts/answer.md",
        "---\nagent:\n  description: Answers one question\n  dialect: double-brace\n  inputs:\n    - name: QUESTION\n  contract: answer.schema.json\n---\nAnswer {{QUESTION}} with one JSON object: {\"answer\": \"...\"}.\n",
    );
    write(
        "schemas/answer.schema.json",
        r#"{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false}"#,
    );
    write(
        "pipelines/answer.yaml",
        "name: answer\ndescription: One question answered\noutput: ask\nsteps:\n  ask:\n    agent: answer\n    inputs:\n      QUESTION: what is the release status\n",
    );
    write(
        "fixtures/answer/one/case.yaml",
        "description: One question\nexpect: { outcome: valid }\n",
    );
    write(
        "fixtures/answer/one/inputs/question.md",
        "what is the release status\n",
    );
    dir
}

/// Write `text` to `relative` in the project at `dir`.
pub(crate) fn write(dir: &std::path::Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("writes");
}
