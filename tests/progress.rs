//! The live progress line of a streamed reply, seen as a user sees it: `agent run` with its
//! stderr on a pseudo-terminal. The fake server sends the first token of a 12,000-token
//! reply, then waits for the test to see the progress line before it sends the rest, so the
//! line is shown to appear from the first token, before the stream ends, with no clock.

#![cfg(unix)]

mod common;
#[path = "support/project.rs"]
mod project;
#[path = "support/sse.rs"]
mod sse;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use sse::{Reply, SseServer};

/// A pseudo-terminal: (the side the test reads, the side the child writes).
fn pty() -> (std::fs::File, OwnedFd) {
    let mut leader: libc::c_int = -1;
    let mut follower: libc::c_int = -1;
    // SAFETY: openpty writes two descriptors into the locals; the other arguments may be null.
    let made = unsafe {
        libc::openpty(
            &mut leader,
            &mut follower,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(made, 0, "openpty");
    // SAFETY: both descriptors are new and owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(leader),
            OwnedFd::from_raw_fd(follower),
        )
    }
}

/// Read everything the terminal shows into `seen` until it closes.
fn collect(mut terminal: std::fs::File, seen: Arc<Mutex<Vec<u8>>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        // EIO once the child, the last writer, has exited.
        while let Ok(n) = terminal.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&buffer[..n]);
        }
    })
}

fn shown(seen: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&seen.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// The events of a reply of `tokens` content deltas that add up to `{"answer": "x…x"}`.
fn long_reply(tokens: usize) -> Vec<String> {
    let mut pieces = vec!["{\"answer\": \""];
    pieces.extend(std::iter::repeat_n("x", tokens - 2));
    pieces.push("\"}");
    sse::chunks(&pieces, "stop", None)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_12000_token_streamed_reply_shows_progress_from_its_first_token() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut reply = Reply::events(long_reply(12_000));
    // Events 0 (the role) and 1 (the first token) go out; the rest waits for the gate.
    reply.gate = Some((2, gate.clone()));
    let server = SseServer::always(reply).await;
    let dir = project::answer_project();
    let (terminal, follower) = pty();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = collect(terminal, seen.clone());
    let mut command = common::agent_in(dir.path());
    command
        .args([
            "run",
            "answer",
            "--var",
            "QUESTION=what is the release status",
            "--base-url",
            &server.base_url,
            "--model",
            "m",
        ])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AGENT_MODEL")
        .env_remove("AGENT_PROFILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(follower));
    let child = command.spawn().expect("agent starts");
    // Drop the parent's copy of the follower side with the command.
    drop(command);

    // The first token's line, while the other 11,999 are still held back by the server.
    let first = "answer attempt 1: 1 token, ";
    let mut polls = 0u64;
    while !shown(&seen).contains(first) {
        polls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            server.bodies().len() <= 1,
            "one request so far: {}",
            shown(&seen)
        );
    }
    assert!(polls < u64::MAX);
    gate.add_permits(1);

    let output = tokio::task::spawn_blocking(move || child.wait_with_output().expect("waits"))
        .await
        .expect("joins");
    // Everything the child wrote has been read once the terminal closes.
    reader.join().expect("the reader ends");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{:?}: {}",
        output.status,
        shown(&seen)
    );
    let deliverable = String::from_utf8(output.stdout).expect("utf-8");
    assert_eq!(deliverable.len(), "{\"answer\": \"\"}\n".len() + 11_998);
    let screen = shown(&seen);
    assert!(screen.contains("tokens/s"), "{screen}");
    assert!(screen.contains("valid after 1 attempt"), "{screen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_progress_line_is_drawn_when_stderr_is_not_a_terminal_or_with_quiet() {
    let server = SseServer::always(Reply::events(long_reply(50))).await;
    let dir = project::answer_project();
    let base_args = [
        "run",
        "answer",
        "--var",
        "QUESTION=what is the release status",
        "--base-url",
        &server.base_url,
        "--model",
        "m",
    ];
    let mut piped = common::agent_in(dir.path());
    piped.args(base_args).env_remove("OPENAI_API_KEY");
    let output = tokio::task::spawn_blocking(move || piped.output().expect("runs"))
        .await
        .expect("joins");
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("tokens/s"), "{text}");

    let (terminal, follower) = pty();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reader = collect(terminal, seen.clone());
    let mut quiet = common::agent_in(dir.path());
    quiet
        .args(base_args)
        .arg("-q")
        .env_remove("OPENAI_API_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(follower));
    let status = tokio::task::spawn_blocking(move || quiet.status().expect("runs"))
        .await
        .expect("joins");
    assert_eq!(status.code(), Some(0));
    // Everything the child wrote has been read once the terminal closes.
    reader.join().expect("the reader ends");
    assert!(!shown(&seen).contains("tokens/s"), "{}", shown(&seen));
}
