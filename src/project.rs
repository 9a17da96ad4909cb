//! Finding a project's agents (`prompts/`) and contracts (`schemas/`) on disk.

use std::path::{Path, PathBuf};

use miette::Diagnostic;

use crate::contract::Contract;
use crate::error::Error;
use crate::prompt::Prompt;

/// A project: a directory holding `prompts/` and `schemas/`.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project directory.
    pub root: PathBuf,
}

/// An agent ready to run: its prompt and its contract.
#[derive(Debug)]
pub struct Agent {
    /// The loaded agent file.
    pub prompt: Prompt,
    /// The loaded contract.
    pub contract: Contract,
}

/// A project or agent that cannot be found.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ProjectError {
    /// No `prompts/` directory here or above.
    #[error("no agent project found in `{}` or its parents", start.display())]
    #[diagnostic(
        code(agent::project::not_found),
        help("run from a directory holding `prompts/` and `schemas/`, or pass --project DIR")
    )]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },

    /// The named agent has no file.
    #[error("no agent `{name}` in `{}`", prompts.display())]
    #[diagnostic(code(agent::project::unknown_agent))]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The prompts directory.
        prompts: PathBuf,
        /// The agents there.
        #[help]
        known: String,
    },

    /// The prompts directory cannot be listed.
    #[error("cannot list `{}`", path.display())]
    #[diagnostic(code(agent::project::list))]
    List {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Project {
    /// The project at `root`, unchecked.
    pub fn at(root: impl Into<PathBuf>) -> Project {
        Project { root: root.into() }
    }

    /// `explicit` if given, else the nearest directory from the current one upwards that
    /// holds `prompts/`.
    pub fn discover(explicit: Option<&Path>) -> Result<Project, ProjectError> {
        if let Some(root) = explicit {
            return if root.join("prompts").is_dir() {
                Ok(Project::at(root))
            } else {
                Err(ProjectError::NotFound {
                    start: root.to_owned(),
                })
            };
        }
        let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        start
            .ancestors()
            .find(|dir| dir.join("prompts").is_dir())
            .map(Project::at)
            .ok_or(ProjectError::NotFound { start })
    }

    /// The `prompts/` directory.
    pub fn prompts_dir(&self) -> PathBuf {
        self.root.join("prompts")
    }

    /// The `schemas/` directory.
    pub fn schemas_dir(&self) -> PathBuf {
        self.root.join("schemas")
    }

    /// The names of the agents, sorted.
    pub fn agent_names(&self) -> Result<Vec<String>, ProjectError> {
        let dir = self.prompts_dir();
        let entries = std::fs::read_dir(&dir).map_err(|source| ProjectError::List {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Load the agent `name`: its prompt and its contract.
    pub fn load(&self, name: &str) -> Result<Agent, Error> {
        let path = self.prompts_dir().join(format!("{name}.md"));
        if !path.is_file() {
            let known = self.agent_names().unwrap_or_default();
            return Err(ProjectError::UnknownAgent {
                name: name.to_owned(),
                prompts: self.prompts_dir(),
                known: if known.is_empty() {
                    "the prompts directory holds no agents".into()
                } else {
                    format!("the agents are: {}", known.join(", "))
                },
            }
            .into());
        }
        let prompt = Prompt::load(&path)?;
        let contract = Contract::load(&self.schemas_dir().join(&prompt.contract))?;
        Ok(Agent { prompt, contract })
    }
}
