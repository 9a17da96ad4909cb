//! `agent mcp`: the project's agents as Model Context Protocol tools over stdio. Each agent is
//! one tool whose input schema comes from its declared inputs and, for a JSON contract, whose
//! output schema is that contract; each call is one run through the runner, as `agent run`
//! makes it.

mod call;
mod error;
mod schema;
mod server;

pub use call::ServedAgent;
pub use error::McpError;
pub use server::AgentServer;
