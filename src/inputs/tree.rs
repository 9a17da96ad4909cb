//! A source tree as one input: every text file headed by its relative path, within a budget.
//!
//! The walk honours `.gitignore` (also outside a git checkout), skips `.git`, binaries and
//! files that may hold secrets, and never follows links. Files are taken shallowest first,
//! then by path, so top-level build and deployment files (`Dockerfile`, `package.json`)
//! make it in before deep sources when the budget runs short. What is left out is listed at
//! the end of the text and returned, so nobody mistakes a partial tree for the whole.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::InputProblem;
use super::read;

/// A walked tree.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The text that enters the prompt.
    pub text: String,
    /// Files included.
    pub files: usize,
    /// Bytes of file content included.
    pub bytes: u64,
    /// Files left out, and why.
    pub omitted: Vec<Omission>,
}

/// A file the walk left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Omission {
    /// Path relative to the tree root, with `/` separators.
    pub path: String,
    /// Why.
    pub reason: OmitReason,
}

/// Why a file was left out of a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OmitReason {
    /// Binary content.
    Binary,
    /// Not UTF-8.
    NotUtf8,
    /// Larger than one tree file may be (its size).
    TooLarge(u64),
    /// Would overrun the tree's budget (its size).
    OverBudget(u64),
    /// Named like a file that holds secrets (`.env`, `*.pem`).
    MayHoldSecrets,
    /// A link inside the tree; its target is walked in its own place.
    Link,
    /// Could not be read.
    Unreadable,
}

impl OmitReason {
    /// Is this content the model will miss (not a file nobody would want in a prompt)?
    pub fn is_notable(&self) -> bool {
        matches!(
            self,
            OmitReason::TooLarge(_)
                | OmitReason::OverBudget(_)
                | OmitReason::NotUtf8
                | OmitReason::Unreadable
        )
    }

    /// The reason, for people.
    pub fn describe(&self) -> String {
        match self {
            OmitReason::Binary => "binary".into(),
            OmitReason::NotUtf8 => "not UTF-8".into(),
            OmitReason::TooLarge(size) => {
                format!("{}, over the per-file limit", crate::text::bytes(*size))
            }
            OmitReason::OverBudget(size) => {
                format!("{}, over the budget", crate::text::bytes(*size))
            }
            OmitReason::MayHoldSecrets => "may hold secrets".into(),
            OmitReason::Link => "a link".into(),
            OmitReason::Unreadable => "unreadable".into(),
        }
    }
}

/// Walk `root`, keeping at most `budget` bytes of content and `max_file` bytes per file.
/// A link that points outside `root` is an error; everything else left out is an [`Omission`].
pub fn walk_tree(root: &Path, budget: u64, max_file: u64) -> Result<Tree, Vec<InputProblem>> {
    let canonical_root = std::fs::canonicalize(root).map_err(|error| {
        vec![InputProblem::Unreadable {
            path: root.to_owned(),
            message: error.to_string(),
        }]
    })?;
    let mut entries: Vec<(usize, String, PathBuf, bool)> = Vec::new();
    let mut problems = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(InputProblem::Unreadable {
                    path: root.to_owned(),
                    message: error.to_string(),
                });
                continue;
            }
        };
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        // Directories are walked; pipes, sockets and devices are no source (and a pipe would
        // block the read).
        if file_type.is_dir() || !(file_type.is_file() || file_type.is_symlink()) {
            continue;
        }
        let relative = relative_path(root, entry.path());
        entries.push((
            entry.depth(),
            relative,
            entry.path().to_owned(),
            file_type.is_symlink(),
        ));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

    let mut body = String::new();
    let mut tree = Tree {
        text: String::new(),
        files: 0,
        bytes: 0,
        omitted: Vec::new(),
    };
    for (_, relative, path, is_link) in entries {
        let omit = |tree: &mut Tree, reason| {
            tree.omitted.push(Omission {
                path: relative.clone(),
                reason,
            });
        };
        if is_link {
            match read::link_escaping(&path, &canonical_root) {
                Ok(Some(target)) => problems.push(InputProblem::LinkEscapes { path, target }),
                Ok(None) => omit(&mut tree, OmitReason::Link),
                Err(problem) => problems.push(problem),
            }
            continue;
        }
        if may_hold_secrets(&relative) {
            omit(&mut tree, OmitReason::MayHoldSecrets);
            continue;
        }
        let size = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
        if size > max_file {
            omit(&mut tree, OmitReason::TooLarge(size));
            continue;
        }
        if tree.bytes + size > budget {
            omit(&mut tree, OmitReason::OverBudget(size));
            continue;
        }
        let content = match read::read_text(&path, max_file) {
            Ok(content) => content,
            Err(InputProblem::Binary { .. }) => {
                omit(&mut tree, OmitReason::Binary);
                continue;
            }
            Err(InputProblem::NotUtf8 { .. }) => {
                omit(&mut tree, OmitReason::NotUtf8);
                continue;
            }
            Err(_) => {
                omit(&mut tree, OmitReason::Unreadable);
                continue;
            }
        };
        tree.files += 1;
        tree.bytes += content.len() as u64;
        push_file(&mut body, &relative, &content);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    tree.text = summary(&tree, budget) + &body + &omissions(&tree.omitted);
    Ok(tree)
}

fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn summary(tree: &Tree, budget: u64) -> String {
    let mut line = format!(
        "{} file{}, {} of source",
        tree.files,
        if tree.files == 1 { "" } else { "s" },
        crate::text::bytes(tree.bytes)
    );
    if !tree.omitted.is_empty() {
        let _ = write!(
            line,
            "; {} left out (budget {}), listed at the end",
            tree.omitted.len(),
            crate::text::bytes(budget)
        );
    }
    line.push('\n');
    line
}

fn push_file(body: &mut String, relative: &str, content: &str) {
    let fence = "`".repeat(longest_backtick_run(content).max(2) + 1);
    let _ = write!(body, "\n### `{relative}`\n{fence}{}\n", language(relative));
    body.push_str(content);
    if !content.ends_with('\n') {
        body.push('\n');
    }
    let _ = writeln!(body, "{fence}");
}

fn omissions(omitted: &[Omission]) -> String {
    if omitted.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nLeft out of this tree:\n");
    for omission in omitted {
        let _ = writeln!(
            text,
            "- `{}`: {}",
            omission.path,
            omission.reason.describe()
        );
    }
    text
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// A fence language for a file name, so the model reads each file as what it is.
fn language(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name == "Dockerfile" || name.starts_with("Dockerfile.") {
        return "dockerfile";
    }
    if name == "Makefile" {
        return "make";
    }
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "rs" => "rust",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "tsx",
        "js" | "mjs" | "cjs" => "javascript",
        "jsx" => "jsx",
        "py" => "python",
        "go" => "go",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "swift" => "swift",
        "rb" => "ruby",
        "php" => "php",
        "cs" => "csharp",
        "yml" | "yaml" => "yaml",
        "json" => "json",
        "toml" => "toml",
        "md" => "markdown",
        "sh" | "bash" => "bash",
        "tf" | "hcl" => "hcl",
        "sql" => "sql",
        "html" => "html",
        "css" => "css",
        "xml" => "xml",
        "gradle" => "groovy",
        _ => "",
    }
}

/// File names that conventionally hold credentials; a release plan never needs their values.
fn may_hold_secrets(relative: &str) -> bool {
    let name = relative
        .rsplit('/')
        .next()
        .unwrap_or(relative)
        .to_ascii_lowercase();
    let example = [".example", ".sample", ".template", ".dist"]
        .iter()
        .any(|suffix| name.ends_with(suffix));
    (name == ".env" || name.starts_with(".env.")) && !example
        || name.starts_with("id_rsa")
        || name.starts_with("id_ed25519")
        || [".pem", ".key", ".p12", ".pfx", ".jks", ".keystore"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        || matches!(
            name.as_str(),
            ".npmrc" | ".pypirc" | ".netrc" | "credentials.json"
        )
        // Kamal's `.kamal/secrets`, Rails' `secrets.yml`, and their kin.
        || ((name == "secrets" || name.starts_with("secrets.")) && !example)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, relative: &str, content: &[u8]) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    #[test]
    fn honours_gitignore_skips_binaries_and_secrets_and_orders_shallow_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write(root, ".gitignore", b"dist/\n");
        write(root, "dist/bundle.js", b"ignored");
        write(root, "src/app.ts", b"export const a = 1;\n");
        write(root, "Dockerfile", b"FROM node:20\n");
        write(root, "logo.png", b"\x89PNG\0\0");
        write(root, ".env", b"SECRET=1");
        write(root, ".env.example", b"SECRET=");
        write(root, ".kamal/secrets", b"KAMAL_REGISTRY_PASSWORD=x");
        let tree = walk_tree(root, 10_000, 10_000).expect("walks");
        let headed: Vec<_> = tree
            .text
            .lines()
            .filter_map(|line| line.strip_prefix("### "))
            .collect();
        assert_eq!(
            headed,
            [
                "`.env.example`",
                "`.gitignore`",
                "`Dockerfile`",
                "`src/app.ts`"
            ]
        );
        assert!(
            tree.text
                .contains("```typescript\nexport const a = 1;\n```")
        );
        assert!(!tree.text.contains("ignored"));
        assert!(!tree.text.contains("SECRET=1"));
        let omitted: Vec<_> = tree
            .omitted
            .iter()
            .map(|o| (o.path.as_str(), &o.reason))
            .collect();
        assert_eq!(
            omitted,
            [
                (".env", &OmitReason::MayHoldSecrets),
                ("logo.png", &OmitReason::Binary),
                (".kamal/secrets", &OmitReason::MayHoldSecrets)
            ]
        );
    }

    #[test]
    fn keeps_within_the_budget_and_says_what_it_left_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        write(root, "a.txt", &[b'a'; 60]);
        write(root, "b.txt", &[b'b'; 60]);
        write(root, "c.txt", &[b'c'; 30]);
        let tree = walk_tree(root, 100, 1_000).expect("walks");
        assert_eq!(tree.files, 2);
        assert_eq!(tree.bytes, 90);
        assert_eq!(
            tree.omitted,
            [Omission {
                path: "b.txt".into(),
                reason: OmitReason::OverBudget(60)
            }]
        );
        assert!(tree.text.contains("- `b.txt`: 60 B, over the budget"));
    }

    #[test]
    fn a_fence_outlasts_the_backticks_inside_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "README.md", b"```sh\nmake\n```\n");
        let tree = walk_tree(dir.path(), 1_000, 1_000).expect("walks");
        assert!(
            tree.text.contains("````markdown\n```sh\nmake\n```\n````\n"),
            "{}",
            tree.text
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_tree_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = tempfile::tempdir().expect("temp dir");
        write(outside.path(), "passwd", b"root:x:0:0");
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("passwd"))
            .expect("symlink");
        let problems = walk_tree(dir.path(), 1_000, 1_000).expect_err("refused");
        assert!(matches!(problems[0], InputProblem::LinkEscapes { .. }));
    }
}
