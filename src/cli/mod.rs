//! The command line: clap types and one thin function per command.

mod args;
mod check;
mod config;
mod eval;
mod list;
mod mcp;
mod model_args;
mod render;
mod run;
mod show;

pub use args::{Cli, Command, GlobalArgs, InputArgs};
pub use config::ConfigArgs;
pub use eval::{EvalAction, EvalArgs, EvalRunArgs, MergeArgs};
pub use mcp::McpArgs;
pub use model_args::{ModelArgs, RecordArgs};
pub use run::RunArgs;

use crate::error::Error;
use crate::exit::Status;
use crate::project::Project;

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
        Command::Mcp(args) => mcp::run(&project()?, &args).await,
    }
}
