//! `agent eval` throughput against a local fake OpenAI-compatible server.
//!
//! `cargo bench --bench eval_throughput` generates N release-manager cases (one dataset row
//! each), serves every request after a fixed latency from a server in this process, and runs
//! the `agent eval` binary against it as a child process, so the figures are the binary's
//! own: wall time, cases per second, CPU time (user + system, from `wait4`) and peak resident
//! memory. It prints, for 0 ms and 200 ms latency at concurrency 8 and 32, how close the wall
//! time comes to the ideal N × latency ÷ concurrency, the CPU time per case, and the memory
//! added per case between N = 250 and N = 1,000. Each 0 ms row is the median of 5 runs (the
//! machines are shared and noisy); each 200 ms row is one run, its time set by the server.
//!
//! Then peak resident memory at 10,000, 100,000 and 1,000,000 rows (0 ms, concurrency 32, one
//! run each), which must stay flat: results stream to `results.jsonl` and every report is
//! written from that stream. `AGENT_BENCH_MEMORY_ROWS=10000,100000` measures other sizes;
//! `AGENT_BENCH_MEMORY_ONLY=1` measures only these (no streaming comparison, no throughput
//! table).

#[path = "support/fake_server.rs"]
mod fake_server;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn copy_dir(from: &Path, to: &Path) {
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

/// A project with `cases` generated release-manager cases.
fn project(root: &Path, cases: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&root.join("prompts"), &dir.path().join("prompts"));
    copy_dir(&root.join("schemas"), &dir.path().join("schemas"));
    let case = dir.path().join("fixtures/release-manager/generated");
    std::fs::create_dir_all(&case).expect("mkdir");
    let inputs = root.join("fixtures/release-manager/parcelpoint/inputs");
    std::fs::write(
        case.join("case.yaml"),
        format!(
            "description: generated\ninputs: {}\ndataset: rows.jsonl\nexpect: {{ outcome: valid }}\nassert:\n  - {{ type: is-json }}\n  - {{ type: json-path, path: /deployment_plan/strategy, equals: canary }}\n",
            inputs.display()
        ),
    )
    .expect("case");
    // Written row by row: the bench's own memory must stay below the agent's, since a child's
    // peak RSS (`ru_maxrss`) counts its parent's resident memory at the fork.
    let mut rows =
        std::io::BufWriter::new(std::fs::File::create(case.join("rows.jsonl")).expect("rows"));
    for i in 0..cases {
        writeln!(
            rows,
            "{{\"id\": \"{i:05}\", \"VERSION\": \"2.{}.{}\", \"RISK_LEVEL\": \"medium\"}}",
            i / 100,
            i % 100
        )
        .expect("row");
    }
    rows.flush().expect("rows written");
    dir
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    system: Duration,
    peak_rss_kb: u64,
}

#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also returns its resource usage"
)]
fn run_eval(
    binary: &Path,
    project: &Path,
    base_url: &str,
    concurrency: usize,
    stream: bool,
) -> Measured {
    let out = project.join(format!("eval-{}", fastrand::u32(..)));
    let started = Instant::now();
    let child = std::process::Command::new(binary)
        .current_dir(project)
        .args([
            "eval",
            "release-manager",
            "--live",
            "--quiet",
            "--model",
            "bench",
            "--base-url",
            base_url,
        ])
        .args(if stream { None } else { Some("--no-stream") })
        .args(["--concurrency", &concurrency.to_string(), "--out"])
        .arg(&out)
        .env_remove("OPENAI_API_KEY")
        .env_remove("AGENT_MODEL")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("agent starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 reaps the child");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "every case passes (status {status})"
    );
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        system: seconds(usage.ru_stime),
        peak_rss_kb: usage.ru_maxrss as u64,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_agent"));
    let reply = std::fs::read_to_string(root.join("fixtures/release-manager/replies/valid.txt"))
        .expect("reply");
    let body = fake_server::completion(&reply);
    let events = fake_server::completion_stream(&reply);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let servers: Vec<(u64, fake_server::FakeServer)> = [0u64, 200]
        .into_iter()
        .map(|latency| {
            let body = body.clone();
            let events = events.clone();
            let server = runtime.block_on(fake_server::start(
                Duration::from_millis(latency),
                Arc::new(move |request| {
                    if fake_server::wants_stream(request) {
                        events.clone()
                    } else {
                        body.clone()
                    }
                }),
            ));
            (latency, server)
        })
        .collect();
    let zero_latency = &servers[0].1;
    let memory_only = std::env::var_os("AGENT_BENCH_MEMORY_ONLY").is_some();
    if memory_only {
        memory(&root, &binary, zero_latency);
        return;
    }
    streaming_cost(&root, &binary, zero_latency);
    if std::env::args().any(|a| a == "streaming") {
        return;
    }
    println!(
        "{:>6} {:>8} {:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>11} {:>11} {:>9}",
        "cases",
        "latency",
        "conc",
        "wall",
        "ideal",
        "ratio",
        "cases/s",
        "CPU",
        "CPU/case",
        "of it sys",
        "peak RSS"
    );
    let mut peaks = Vec::new();
    for (cases, latency, concurrency) in [
        (250, 0, 32),
        (1000, 0, 8),
        (1000, 0, 32),
        (1000, 200, 8),
        (1000, 200, 32),
    ] {
        let project = project(&root, cases);
        let server = &servers
            .iter()
            .find(|(l, _)| *l == latency)
            .expect("server")
            .1;
        let rounds = if latency == 0 { 5 } else { 1 };
        let mut runs = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let before = server.requests.load(std::sync::atomic::Ordering::Relaxed);
            runs.push(run_eval(
                &binary,
                project.path(),
                &server.base_url,
                concurrency,
                false,
            ));
            let answered = server.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
            assert_eq!(answered, cases as u64, "one request per case");
        }
        runs.sort_by_key(|m| m.cpu);
        let measured = runs.swap_remove(rounds / 2);
        let ideal = Duration::from_millis(latency * cases as u64 / concurrency as u64);
        let ratio = if ideal.is_zero() {
            f64::NAN
        } else {
            measured.wall.as_secs_f64() / ideal.as_secs_f64()
        };
        println!(
            "{cases:>6} {:>6}ms {concurrency:>5} {:>8.2}s {:>8.2}s {:>7.3} {:>9.0} {:>8.2}s {:>9.3}ms {:>9.3}ms {:>7.1}MB",
            latency,
            measured.wall.as_secs_f64(),
            ideal.as_secs_f64(),
            ratio,
            cases as f64 / measured.wall.as_secs_f64(),
            measured.cpu.as_secs_f64(),
            measured.cpu.as_secs_f64() * 1000.0 / cases as f64,
            measured.system.as_secs_f64() * 1000.0 / cases as f64,
            measured.peak_rss_kb as f64 / 1024.0,
        );
        if latency == 0 && concurrency == 32 {
            peaks.push((cases, measured.peak_rss_kb));
        }
    }
    if let [(small, small_kb), (large, large_kb)] = peaks[..] {
        let per_case = (large_kb as f64 - small_kb as f64) / (large - small) as f64;
        println!("memory growth: {per_case:.2} KB per case between {small} and {large} cases");
    }
    memory(&root, &binary, &servers[0].1);
}

/// Peak RSS at large row counts: one run each, against the 0 ms server.
fn memory(root: &Path, binary: &Path, server: &fake_server::FakeServer) {
    let sizes: Vec<usize> = std::env::var("AGENT_BENCH_MEMORY_ROWS")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    println!(
        "\n{:>9} {:>9} {:>9} {:>10} {:>10}",
        "rows", "wall", "CPU", "peak RSS", "bench RSS"
    );
    for rows in sizes {
        let project = project(root, rows);
        // The agent's peak RSS includes this process's resident memory at the fork; shown so
        // that a figure at or near it is read as the bench's, not the agent's.
        let own = own_rss_kb();
        // Whole replies: the rows' memory is the question here, and streaming's CPU per case
        // (measured by `streaming`) would stretch a million rows to an hour.
        let measured = run_eval(binary, project.path(), &server.base_url, 32, false);
        println!(
            "{rows:>9} {:>8.1}s {:>8.1}s {:>8.1}MB {:>8.1}MB",
            measured.wall.as_secs_f64(),
            measured.cpu.as_secs_f64(),
            measured.peak_rss_kb as f64 / 1024.0,
            own as f64 / 1024.0
        );
    }
}

/// This process's resident memory, from `/proc/self/status`.
fn own_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU cost of streaming: the same eval (1,000 cases, 0 ms latency, concurrency 8) with
/// every reply streamed as about one chunk per token, and with every reply whole
/// (`--no-stream`), alternating, 7 rounds each; the medians of CPU time per case and their
/// ratio. `cargo bench --bench eval_throughput -- streaming` runs this alone.
///
/// Only the agent's CPU is counted (`wait4` on the child; the fake server runs in this
/// process). What it measures is parsing, not reading: the fake server writes each reply in
/// one write, so the agent takes the 809 KB, 4,924-event stream in about 2 reads and 5 epoll
/// wakeups per case (`strace -c`), against 1 and 2 for a whole reply. A server sending one
/// event per token at a model's pace costs a read and a wakeup per event on top of this.
fn streaming_cost(root: &Path, binary: &Path, server: &fake_server::FakeServer) {
    const CASES: usize = 1000;
    const ROUNDS: usize = 7;
    let project = project(root, CASES);
    let mut per_case = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (slot, stream) in [(0, false), (1, true)] {
            let measured = run_eval(binary, project.path(), &server.base_url, 8, stream);
            per_case[slot].push(measured.cpu.as_secs_f64() * 1000.0 / CASES as f64);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let whole = median(&mut per_case[0]);
    let streamed = median(&mut per_case[1]);
    println!(
        "streaming CPU per case ({CASES} cases, 0 ms, concurrency 8, median of {ROUNDS}): whole {whole:.3} ms, streamed {streamed:.3} ms, ratio {:.3}",
        streamed / whole
    );
    println!("  whole:    {:?}", per_case[0]);
    println!("  streamed: {:?}", per_case[1]);
}
