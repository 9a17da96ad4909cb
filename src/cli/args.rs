//! Argument types. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::inputs::Sources;

/// Run LLM prompt-agents as dependable pipeline steps.
///
/// Exit codes: 0 valid, 1 contract violated, 2 usage or input error,
/// 3 model or transport failure, 4 the agent declined (insufficient context).
#[derive(Debug, Parser)]
#[command(name = "agent", version, about, long_about = None)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options for every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The project directory (holding `prompts/` and `schemas/`); found upwards from the current directory by default.
    #[arg(long, global = true, env = "AGENT_PROJECT", value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// More logging on stderr: `-v` debug, `-vv` trace. `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the agents of the project.
    List(ListArgs),
    /// Show an agent: its inputs, dialect, reasoning tags and contract.
    Show(ShowArgs),
    /// Render an agent's prompt with its inputs, to stdout. No model is called.
    Render(RenderArgs),
    /// Judge a reply against an agent's contract: split off the reasoning, validate the deliverable.
    Check(CheckArgs),
    /// Run an agent: render, call the model, judge, re-ask on violations; the deliverable to stdout.
    Run(super::RunArgs),
    /// Show the resolved model settings (the key redacted) and where each comes from.
    Config(super::ConfigArgs),
    /// Run agents over their fixture cases, check assertions, report for people and CI.
    Eval(super::EvalArgs),
    /// Run or check a pipeline of agents chained through their deliverables.
    Pipeline(super::PipelineArgs),
    /// Serve the agents as Model Context Protocol tools over stdio.
    Mcp(super::McpArgs),
    /// Make an agent of a prompt file as found: its front matter, a drafted contract and an eval case.
    Import(super::ImportArgs),
    /// Find what makes agents do other than their authors meant: unbound placeholders, mojibake, broken examples.
    Lint(super::LintArgs),
    /// Record a fixture case (or a pipeline run) from hand-written replies, with no model.
    Record(super::RecordCommandArgs),
}

/// `agent list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `agent show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The agent (a file stem in `prompts/`).
    pub agent: String,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where an agent's input values come from.
#[derive(Debug, Args, Default)]
pub struct InputArgs {
    /// A directory whose files bind to inputs by name (`project_request.md` → PROJECT_REQUEST),
    /// with an optional `vars.yaml`/`vars.json`/`vars.toml`; `-` reads one JSON object from stdin.
    #[arg(long, value_name = "DIR|-")]
    pub inputs: Option<String>,
    /// A variables file (YAML, JSON or TOML) of input names to values.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars_files: Vec<PathBuf>,
    /// One input: `NAME=VALUE`, or `NAME=@PATH` to read a file (or a directory, for a tree input).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// The largest file one input may be read from, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    pub max_input_bytes: u64,
}

/// How many times `--max-input-bytes` the JSON object on stdin may be.
const STDIN_INPUTS_FACTOR: u64 = 16;

impl InputArgs {
    /// The sources these flags name; `--inputs -` reads stdin now.
    pub fn sources(&self) -> Result<Sources, Error> {
        let mut sources = Sources {
            vars_files: self.vars_files.clone(),
            ..Sources::default()
        };
        match self.inputs.as_deref() {
            Some("-") => {
                // Each value is held to --max-input-bytes when it is bound; the whole object
                // to a bound that keeps a runaway producer from filling memory.
                let limit = self.max_input_bytes.saturating_mul(STDIN_INPUTS_FACTOR);
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut std::io::Read::take(std::io::stdin(), limit.saturating_add(1)),
                    &mut text,
                )
                .map_err(|source| Error::Io {
                    action: "read",
                    path: PathBuf::from("<stdin>"),
                    source,
                })?;
                if text.len() as u64 > limit {
                    return Err(Error::Usage {
                        message: format!(
                            "the inputs on stdin are over {}",
                            crate::text::bytes(limit)
                        ),
                        hint: Some(format!(
                            "stdin may hold {STDIN_INPUTS_FACTOR} times --max-input-bytes; give large inputs as files"
                        )),
                    });
                }
                sources.json = Some(text);
            }
            Some(dir) => sources.dir = Some(PathBuf::from(dir)),
            None => {}
        }
        for pair in &self.vars {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(Error::Usage {
                    message: format!("`--var {pair}` has no `=`"),
                    hint: Some("write --var NAME=VALUE, or --var NAME=@path/to/file".into()),
                });
            };
            sources
                .vars
                .push((name.trim().to_owned(), value.to_owned()));
        }
        Ok(sources)
    }

    /// The size limits these flags set.
    pub fn limits(&self) -> crate::inputs::Limits {
        crate::inputs::Limits {
            max_file_bytes: self.max_input_bytes,
            ..crate::inputs::Limits::default()
        }
    }
}

/// `agent render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The agent.
    pub agent: String,
    /// Input sources.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Refuse an agent whose template holds placeholder-looking text no input binds (by
    /// default a warning: the text is sent as written).
    #[arg(long)]
    pub strict: bool,
}

/// `agent check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The agent whose contract judges the reply.
    pub agent: String,
    /// The reply: a file holding the model's whole answer, or `-` for stdin.
    pub reply: PathBuf,
    /// One JSON object on stdout: outcome, violations, warnings, repairs, reasoning, deliverable, value (parsed).
    #[arg(long)]
    pub json: bool,
}
