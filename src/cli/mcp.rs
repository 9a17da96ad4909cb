//! `agent mcp`: serve the agents as Model Context Protocol tools over stdio.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::model_args::{ModelArgs, RecordArgs, RunOptionArgs};
use crate::error::Error;
use crate::exit::Status;
use crate::inputs::Limits;
use crate::mcp::{AgentServer, McpError, ServedAgent};
use crate::model::{ModelClient, OpenAiClient, Pacer, Recorder, Replayer};
use crate::project::Project;

/// `agent mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The agents to serve [default: all of the project's].
    pub agents: Vec<String>,
    /// Model choice and parameters, for every call.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Recording.
    #[command(flatten)]
    pub recording: RecordArgs,
    /// Attempts, token budget, response format, for each call.
    #[command(flatten)]
    pub run: RunOptionArgs,
    /// The largest file one input may be read from, and the largest text argument, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    pub max_input_bytes: u64,
    /// A directory a tree argument may also name (the project directory always may); repeat
    /// for more. Paths are compared with every link resolved.
    #[arg(long = "allow-root", value_name = "DIR")]
    pub allow_roots: Vec<PathBuf>,
}

pub(crate) async fn run(project: &Project, args: &McpArgs) -> Result<Status, Error> {
    let names = if args.agents.is_empty() {
        project.agent_names()?
    } else {
        args.agents.clone()
    };
    let replayer = match &args.recording.replay {
        Some(path) => Some(Replayer::load(path)?),
        None => None,
    };
    let recording_model = replayer.as_ref().and_then(|r| r.recording().model());
    // Every agent is loaded and its settings resolved now, so a broken agent file or a
    // missing model stops the server before a client ever sees it.
    let mut loaded = Vec::with_capacity(names.len());
    for name in &names {
        let agent = project.load(name)?;
        let settings = args
            .model
            .settings(project, &agent.prompt.defaults, recording_model)?;
        loaded.push((agent, settings));
    }
    let Some((_, first)) = loaded.first() else {
        return Err(McpError::NoAgents {
            prompts: project.prompts_dir(),
        }
        .into());
    };
    let client: Arc<dyn ModelClient> = match (replayer, &args.recording.record) {
        (Some(replayer), _) => Arc::new(replayer),
        (None, record) => {
            // The endpoint (base URL, key, timeout, retries) is the same for every agent: an
            // agent's defaults only choose the model and its sampling.
            let live = OpenAiClient::new(first.endpoint(), Arc::new(Pacer::new()))?;
            match record {
                Some(path) => Arc::new(Recorder::new(live, path)?),
                None => Arc::new(live),
            }
        }
    };
    let agents = loaded
        .into_iter()
        .map(|(agent, settings)| ServedAgent::new(agent, settings))
        .collect::<Result<Vec<_>, _>>()?;
    let server = AgentServer::new(
        project.root.clone(),
        &args.allow_roots,
        agents,
        client,
        crate::runner::RunOptions {
            context_window: args.model.tuning.context_window,
            ..args.run.options()
        },
        Limits {
            max_file_bytes: args.max_input_bytes,
            ..Limits::default()
        },
    )?;
    tracing::info!(agents = %names.join(", "), "serving MCP on stdio");
    Ok(if server.serve_stdio().await? {
        Status::Interrupted
    } else {
        Status::Ok
    })
}
