//! The command line: clap types and one thin function per command.

mod args;
mod check;
mod config;
mod eval;
mod import;
mod lint;
mod list;
mod mcp;
mod model_args;
mod output;
mod pipeline;
mod record;
mod render;
mod run;
mod show;

pub use args::{Cli, Command, GlobalArgs, InputArgs};
pub use config::ConfigArgs;
pub use eval::{EvalAction, EvalArgs, EvalRunArgs, MergeArgs};
pub use import::ImportArgs;
pub use lint::{LintArgs, LintFormat};
pub use mcp::McpArgs;
pub use model_args::{ModelArgs, RecordArgs};
pub use pipeline::{PipelineAction, PipelineArgs, PipelineCheckArgs, PipelineRunArgs};
pub use record::RecordCommandArgs;
pub use run::RunArgs;

use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

/// A cancellation token that the first Ctrl-C or SIGTERM cancels, while this value lives: a
/// job system stopping `agent` (CI cancelling a job, Kubernetes ending a pod) gets the same
/// partial report and interrupted records as a person pressing Ctrl-C.
pub(crate) struct Interrupt {
    token: tokio_util::sync::CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

impl Interrupt {
    /// Start watching for Ctrl-C and SIGTERM.
    pub(crate) fn watch() -> Interrupt {
        let token = tokio_util::sync::CancellationToken::new();
        let on_interrupt = token.clone();
        let watcher = tokio::spawn(async move {
            if stop_requested().await {
                on_interrupt.cancel();
            }
        });
        Interrupt { token, watcher }
    }

    /// The token to hand to the work Ctrl-C stops.
    pub(crate) fn token(&self) -> tokio_util::sync::CancellationToken {
        self.token.clone()
    }
}

/// Wait for Ctrl-C or SIGTERM; false if neither can be watched.
#[cfg(unix)]
async fn stop_requested() -> bool {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return tokio::signal::ctrl_c().await.is_ok();
    };
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.is_ok(),
        received = terminate.recv() => received.is_some(),
    }
}

#[cfg(not(unix))]
async fn stop_requested() -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> Result<Status, Error> {
    let project = || Project::discover(cli.global.project.as_deref());
    match cli.command {
        Command::List(args) => list::run(&project()?, &args),
        Command::Show(args) => show::run(&project()?, &args),
        Command::Render(args) => render::run(&project()?, &args),
        Command::Check(args) => check::run(&project()?, &args),
        Command::Run(args) => run::run(&project()?, &args, cli.global.quiet).await,
        Command::Config(args) => config::run(&project()?, &args),
        Command::Eval(args) => eval::run(&project()?, &args, cli.global.quiet).await,
        Command::Pipeline(args) => match &args.action {
            PipelineAction::Run(run_args) => {
                pipeline::run(&project()?, run_args, cli.global.quiet).await
            }
            PipelineAction::Check(check_args) => pipeline::check_only(&project()?, check_args),
        },
        Command::Mcp(args) => mcp::run(&project()?, &args).await,
        Command::Import(args) => import::run(cli.global.project.as_deref(), &args),
        Command::Lint(args) => lint::run(&project()?, &args),
        Command::Record(args) => record::run(&project()?, &args, cli.global.quiet).await,
    }
}
