//! Shared helpers for the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, where `prompts/`, `schemas/` and `fixtures/` live.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copy the directory tree `from` to `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
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

/// The JSON file at `path`, which must exist.
pub(crate) fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is written: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is JSON: {e}", path.display()))
}

/// The project of the repository.
pub(crate) fn project() -> agent::project::Project {
    agent::project::Project::at(root())
}

/// The `agent` binary, run in `dir`, with logging quiet unless the test asks for it.
pub(crate) fn agent_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent"));
    command
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("AGENT_PROJECT")
        .env("NO_COLOR", "1");
    command
}

/// The `agent` binary, run at the repository root.
pub(crate) fn agent() -> Command {
    agent_in(&root())
}

/// The five agents the repository ships.
pub(crate) const AGENTS: [&str; 5] = [
    "deploy",
    "deployment-plan",
    "release-manager",
    "release-plan",
    "release-strategy",
];

/// Send Ctrl-C's signal to `child`, as a terminal would (no `kill` binary needed).
#[cfg(unix)]
pub(crate) fn interrupt(child: &std::process::Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) with a child's pid and SIGINT touches no memory of ours.
    let sent = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(sent, 0, "SIGINT delivered");
}
