//! [`AgentServer`]: the MCP server handler. `tools/list` lists one tool per agent,
//! `tools/call` runs one; everything else is rmcp's default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{QuitReason, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

use super::call::{Runs, ServedAgent};
use super::error::McpError;
use super::schema::{input_schema, output_schema};
use crate::inputs::Limits;
use crate::model::ModelClient;
use crate::runner::RunOptions;

const INSTRUCTIONS: &str = "Each tool runs one prompt-agent of this project: its arguments are the agent's inputs, \
and its result is the agent's deliverable, checked against the agent's output contract (re-asked with the \
violations when a reply breaks it). A result with isError lists what went wrong.";

/// Serves a project's agents as MCP tools.
pub struct AgentServer {
    /// In the order `tools/list` gives them.
    tools: Vec<Tool>,
    agents: HashMap<String, ServedAgent>,
    runs: Runs,
}

impl AgentServer {
    /// A server for `agents` of the project at `root`, calling `client`; each call runs with
    /// `options` and reads inputs within `limits`. A tree argument may name a path inside
    /// `root` or one of `allowed_roots`, and nowhere else.
    pub fn new(
        root: PathBuf,
        allowed_roots: &[PathBuf],
        agents: Vec<ServedAgent>,
        client: Arc<dyn ModelClient>,
        options: RunOptions,
        limits: Limits,
    ) -> Result<AgentServer, McpError> {
        if agents.is_empty() {
            return Err(McpError::NoAgents {
                prompts: root.join("prompts"),
            });
        }
        // Canonical now, so that each call compares real paths, links resolved.
        let roots = std::iter::once(&root)
            .chain(allowed_roots)
            .map(|path| {
                std::fs::canonicalize(path)
                    .and_then(|real| {
                        if real.is_dir() {
                            Ok(real)
                        } else {
                            Err(std::io::Error::other("not a directory"))
                        }
                    })
                    .map_err(|source| McpError::Root {
                        path: path.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tools = agents.iter().map(tool).collect();
        let agents = agents
            .into_iter()
            .map(|served| (served.agent().prompt.name.clone(), served))
            .collect();
        Ok(AgentServer {
            tools,
            agents,
            runs: Runs {
                root,
                roots,
                client,
                options,
                limits,
            },
        })
    }

    /// Serve over stdin and stdout until the client closes the connection or Ctrl-C; `true`
    /// when stopped by Ctrl-C. Stdout carries the protocol only: logging goes to stderr.
    pub async fn serve_stdio(self) -> Result<bool, McpError> {
        let running = self
            .serve(rmcp::transport::stdio_pipes())
            .await
            .map_err(|source| McpError::Handshake {
                source: Box::new(source),
            })?;
        let stop = running.cancellation_token();
        let waiting = running.waiting();
        tokio::pin!(waiting);
        let (quit, interrupted) = tokio::select! {
            quit = &mut waiting => (quit, false),
            Ok(()) = tokio::signal::ctrl_c() => {
                // Cancelling the service cancels every request in flight: no new model
                // request starts. A run's `run.json` is marked interrupted only if its task
                // gets to write it before the process exits.
                stop.cancel();
                ((&mut waiting).await, true)
            }
        };
        match quit.map_err(|source| McpError::Stopped { source })? {
            QuitReason::JoinError(source) => Err(McpError::Stopped { source }),
            // Closed by the client, cancelled by Ctrl-C, or a way to end rmcp adds later.
            _ => Ok(interrupted),
        }
    }
}

/// The tool of one agent.
fn tool(served: &ServedAgent) -> Tool {
    let agent = served.agent();
    let description = agent
        .prompt
        .description
        .clone()
        .unwrap_or_else(|| format!("Runs the `{}` agent", agent.prompt.name));
    let tool = Tool::new(
        agent.prompt.name.clone(),
        description,
        input_schema(&agent.prompt.inputs),
    );
    match agent.contract.json_schema().and_then(output_schema) {
        Some(schema) => tool.with_raw_output_schema(Arc::new(schema)),
        None => tool,
    }
}

impl ServerHandler for AgentServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
                    .with_description(env!("CARGO_PKG_DESCRIPTION")),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // An unknown tool is a protocol error (the request cannot be routed); everything that
        // goes wrong in a known tool is a tool result the caller can read.
        let Some(served) = self.agents.get(request.name.as_ref()) else {
            let known: Vec<&str> = self.tools.iter().map(|tool| tool.name.as_ref()).collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "no tool `{}`; the tools are {}",
                    request.name,
                    known.join(", ")
                ),
                None,
            ));
        };
        let result = self
            .runs
            .call(served, request.arguments.as_ref(), context.ct)
            .await;
        Ok(result.into())
    }
}
