//! The runner's own cost per attempt against a zero-latency local server: render, request,
//! parse, extract, validate and write every artifact.
//!
//! `cargo bench --bench runner_overhead` prints, per agent, medians over 200 one-attempt runs
//! (after 20 warm-up runs) of: a whole run writing its folder with fsync (as `agent run` does),
//! the same without fsync, the same with no folder, and the bare HTTP round trip to the same
//! server; the runner's share is the no-fsync run minus the round trip.

#[path = "support/fake_server.rs"]
mod fake_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::artifacts::RunFolder;
use agent::inputs::{Inputs, Limits, Sources, gather};
use agent::model::{ChatRequest, Endpoint, Message, ModelClient, OpenAiClient, Pacer, RetryPolicy};
use agent::project::{Agent, Project};
use agent::runner::{Run, RunOptions, RunOutcome, run};
use tokio_util::sync::CancellationToken;

const AGENTS: [&str; 5] = [
    "deploy",
    "deployment-plan",
    "release-manager",
    "release-plan",
    "release-strategy",
];
const RUNS: usize = 200;
const WARM_UP: usize = 20;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[derive(Clone, Copy)]
enum Folder {
    Synced,
    Unsynced,
    None,
}

async fn timed_runs(
    client: &OpenAiClient,
    agent: &Agent,
    inputs: &Inputs,
    scratch: &std::path::Path,
    folder: Folder,
) -> f64 {
    let mut times = Vec::with_capacity(RUNS);
    for index in 0..WARM_UP + RUNS {
        let dir = scratch.join(format!(
            "{}-{index}-{}",
            agent.prompt.name,
            fastrand::u32(..)
        ));
        let folder = match folder {
            Folder::Synced => Some(RunFolder::claim(&dir).expect("folder")),
            Folder::Unsynced => Some(RunFolder::claim(&dir).expect("folder").without_sync()),
            Folder::None => None,
        };
        let started = Instant::now();
        let report = run(
            client,
            Run {
                agent,
                inputs,
                model: "bench".into(),
                temperature: None,
                max_tokens: None,
                seed: None,
                top_p: None,
                options: RunOptions::default(),
                folder,
                cancel: CancellationToken::new(),
            },
        )
        .await
        .expect("runs");
        assert_eq!(report.outcome, RunOutcome::Valid);
        if index >= WARM_UP {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants no work.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let project = Project::at(&root);
        let scratch = tempfile::tempdir().expect("temp dir");
        println!("medians of {RUNS} one-attempt runs, milliseconds");
        println!(
            "{:<18} {:>12} {:>12} {:>12} {:>12} {:>13}",
            "agent", "run+fsync", "run", "no folder", "HTTP only", "runner share"
        );
        for name in AGENTS {
            let agent = project.load(name).expect("agent loads");
            let sources = Sources {
                dir: Some(
                    root.join("fixtures")
                        .join(name)
                        .join("parcelpoint")
                        .join("inputs"),
                ),
                ..Sources::default()
            };
            let inputs = gather(&agent.prompt, &sources, &Limits::default())
                .expect("inputs")
                .inputs;
            let replies = root.join("fixtures").join(name).join("replies");
            let reply = std::fs::read_to_string(replies.join("valid.md"))
                .or_else(|_| std::fs::read_to_string(replies.join("valid.txt")))
                .expect("valid reply");
            let body = fake_server::completion(&reply);
            let server = fake_server::start(Duration::ZERO, Arc::new(move |_| body.clone())).await;
            let client = OpenAiClient::new(
                Endpoint {
                    base_url: server.base_url.clone(),
                    api_key: None,
                    timeout: Duration::from_secs(30),
                    retry: RetryPolicy::default(),
                    max_reply_bytes: agent::model::DEFAULT_MAX_REPLY_BYTES,
                    stream: false,
                    idle_timeout: agent::model::DEFAULT_IDLE_TIMEOUT,
                    server: None,
                },
                Arc::new(Pacer::new()),
            )
            .expect("client");
            let synced = timed_runs(&client, &agent, &inputs, scratch.path(), Folder::Synced).await;
            let unsynced =
                timed_runs(&client, &agent, &inputs, scratch.path(), Folder::Unsynced).await;
            let bare = timed_runs(&client, &agent, &inputs, scratch.path(), Folder::None).await;
            // The same request body size, sent straight through the client.
            let rendered = agent::render::render(&agent.prompt, &inputs)
                .expect("renders")
                .text;
            let request = ChatRequest {
                model: "bench".into(),
                messages: vec![Message::user(rendered)],
                temperature: None,
                top_p: None,
                max_tokens: None,
                seed: None,
                response_format: None,
                stream: false,
            };
            let mut http = Vec::new();
            for index in 0..WARM_UP + RUNS {
                let started = Instant::now();
                client.complete(&request).await.expect("answers");
                if index >= WARM_UP {
                    http.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            let http = median(http);
            let answered = server.requests.load(std::sync::atomic::Ordering::Relaxed) as usize;
            assert_eq!(
                answered,
                4 * (WARM_UP + RUNS),
                "every run made exactly one request"
            );
            println!(
                "{name:<18} {synced:>12.3} {unsynced:>12.3} {bare:>12.3} {http:>12.3} {:>13.3}",
                unsynced - http
            );
        }
    });
}
