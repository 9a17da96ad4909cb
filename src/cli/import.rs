//! `agent import`: a prompt file as found becomes an agent, its contract and an eval case.

use std::path::PathBuf;

use clap::Args;

use super::output;
use crate::error::Error;
use crate::exit::Status;

/// `agent import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The prompt file: a collection's page, a fabric `system.md`, a `.prompt`, `.prompty` or `.prompt.md` file, a command.
    pub file: PathBuf,
    /// The agent's name [default: the file's name, in kebab case].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Replace an agent, contract or case of that name.
    #[arg(long)]
    pub force: bool,
    /// Print what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object on stdout: what was found, with lines, and the drafted files.
    #[arg(long)]
    pub json: bool,
}

/// A name from a file: `create_summary/system.md` → `create-summary`, `Code Review.prompt.md` → `code-review`.
fn default_name(file: &std::path::Path) -> String {
    let stem = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or_default().to_owned();
    // A fabric pattern is named by its folder.
    let stem = if stem == "system" || stem == "prompt" || stem == "README" {
        file.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(stem)
    } else {
        stem
    };
    let mut name = String::new();
    for ch in stem.chars() {
        if ch.is_ascii_alphanumeric() {
            if ch.is_ascii_uppercase() && !name.is_empty() && !name.ends_with('-') {
                name.push('-');
            }
            name.push(ch.to_ascii_lowercase());
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() {
        "imported".into()
    } else {
        name
    }
}

pub(crate) fn run(
    project_dir: Option<&std::path::Path>,
    args: &ImportArgs,
) -> Result<Status, Error> {
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name(&args.file));
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(Error::Usage {
            message: format!("`{name}` is not an agent name"),
            hint: Some("use letters, digits, `-` and `_`".into()),
        });
    }
    // A project is where `prompts/` is; a first import starts one in the current directory.
    let root = match crate::project::Project::discover(project_dir) {
        Ok(project) => project.root,
        Err(_) => project_dir
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let draft = crate::import::draft(&args.file, &name)?;
    if !args.dry_run {
        draft.write(&root, args.force)?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&draft).unwrap_or_default() + "\n";
        output::print(text.as_bytes(), None)?;
    } else {
        output::print(draft.report().as_bytes(), None)?;
    }
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::default_name;
    use std::path::Path;

    #[test]
    fn names_come_from_files_and_fabric_folders() {
        assert_eq!(
            default_name(Path::new("patterns/create_summary/system.md")),
            "create-summary"
        );
        assert_eq!(default_name(Path::new("code-review.prompt")), "code-review");
        assert_eq!(
            default_name(Path::new("incidentPostmortem.md")),
            "incident-postmortem"
        );
    }
}
