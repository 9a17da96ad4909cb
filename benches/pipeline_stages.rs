//! The offline stages on each agent's shipped example: render, extract, validate, and the
//! three together, per agent. Inputs are gathered once outside the timed loop.
//!
//! `cargo bench --bench pipeline_stages`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use agent::contract::judge;
use agent::extract::extract;
use agent::inputs::{Limits, Sources, gather};
use agent::project::Project;
use agent::render::render;
use criterion::{Criterion, criterion_group, criterion_main};

const AGENTS: [&str; 5] = [
    "deploy",
    "deployment-plan",
    "release-manager",
    "release-plan",
    "release-strategy",
];

fn valid_reply(root: &Path, agent: &str) -> String {
    let replies = root.join("fixtures").join(agent).join("replies");
    ["valid.md", "valid.txt"]
        .iter()
        .map(|name| replies.join(name))
        .find(|path| path.exists())
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_else(|| panic!("{agent} ships a valid reply"))
}

fn stages(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let project = Project::at(&root);
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
            .expect("inputs gather")
            .inputs;
        let reply = valid_reply(&root, name);
        let tags = &agent.prompt.reasoning_tags;
        let mut group = c.benchmark_group(name);
        group.bench_function("render", |b| {
            b.iter(|| render(&agent.prompt, black_box(&inputs)).expect("renders"))
        });
        group.bench_function("extract", |b| {
            b.iter(|| extract(black_box(&reply), None, tags))
        });
        let extracted = extract(&reply, None, tags);
        group.bench_function("validate", |b| {
            b.iter(|| judge(&agent.contract, &reply, black_box(&extracted), tags))
        });
        group.bench_function("render+extract+validate", |b| {
            b.iter(|| {
                let rendered = render(&agent.prompt, black_box(&inputs)).expect("renders");
                let extracted = extract(black_box(&reply), None, tags);
                let verdict = judge(&agent.contract, &reply, &extracted, tags);
                (rendered.text.len(), verdict.outcome)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
