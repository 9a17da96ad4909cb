//! A source tree as one input: every text file headed by its relative path, within a budget.
//!
//! The walk honours `.gitignore` (also outside a git checkout) and, inside a git checkout,
//! the checkout's own ignore rules above the tree and `.git/info/exclude`; it skips `.git`,
//! binaries, pipes, sockets and devices, and credentials, and never follows links.
//! Credentials are known by name (`.env`, `id_ed25519`, `.aws/credentials`, `*.tfvars`, …)
//! and by content (a private-key header, an AWS key, a cloud service-account key, an API
//! token). Files are taken shallowest first, then by path, so top-level build and deployment
//! files (`Dockerfile`, `package.json`) make it in before deep sources when the budget runs
//! short. What is left out is listed at the end of the text with the reason, and returned,
//! so nobody mistakes a partial tree for the whole. A path is written into the text on one
//! line whatever its name holds: control characters and line separators are escaped.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

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
    /// Binary content, or a NUL byte anywhere.
    Binary,
    /// Not UTF-8.
    NotUtf8,
    /// Larger than one tree file may be (its size).
    TooLarge(u64),
    /// Would overrun the tree's budget (its size).
    OverBudget(u64),
    /// Named like a file that holds credentials (`.env`, `*.pem`, `.aws/credentials`).
    MayHoldSecrets,
    /// Holds a credential, found by its content.
    HoldsSecret(SecretKind),
    /// A link inside the tree; its target is walked in its own place.
    Link,
    /// A pipe, socket or device: no source, and a pipe would block the read.
    NotAFile,
    /// Could not be read.
    Unreadable,
}

/// A credential found in a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// A PEM, OpenSSH, PuTTY or PGP private key.
    PrivateKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKeyId,
    /// An AWS secret access key.
    AwsSecretKey,
    /// A cloud service-account key file (GCP's `"type": "service_account"`).
    ServiceAccountKey,
    /// An Azure storage account key.
    AzureAccountKey,
    /// A token of a known service (GitHub, GitLab, Slack, Stripe, Google API).
    ApiToken,
}

impl SecretKind {
    fn describe(self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "a private key",
            SecretKind::AwsAccessKeyId => "an AWS access key id",
            SecretKind::AwsSecretKey => "an AWS secret access key",
            SecretKind::ServiceAccountKey => "a cloud service-account key",
            SecretKind::AzureAccountKey => "an Azure account key",
            SecretKind::ApiToken => "an API token",
        }
    }
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
            OmitReason::HoldsSecret(kind) => format!("holds {}", kind.describe()),
            OmitReason::Link => "a link".into(),
            OmitReason::NotAFile => "not a regular file (a pipe, socket or device)".into(),
            OmitReason::Unreadable => "unreadable".into(),
        }
    }
}

/// What kind of entry a walk met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File,
    Link,
    Special,
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
    // Inside a git checkout, the checkout's ignore rules apply as git applies them: the
    // `.gitignore` files from its top down to the tree, and `.git/info/exclude`. Outside
    // one, only the `.gitignore` files within the tree, so that no stray file above it
    // (in a home or temporary directory) decides what the model sees.
    let in_checkout = canonical_root
        .ancestors()
        .any(|dir| dir.join(".git").exists());
    let mut entries: Vec<(usize, String, PathBuf, Entry)> = Vec::new();
    let mut problems = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(in_checkout)
        .parents(in_checkout)
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
        let kind = if file_type.is_dir() {
            continue;
        } else if file_type.is_file() {
            Entry::File
        } else if file_type.is_symlink() {
            Entry::Link
        } else {
            Entry::Special
        };
        let relative = relative_path(root, entry.path());
        entries.push((entry.depth(), relative, entry.path().to_owned(), kind));
    }
    entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

    let mut body = String::new();
    let mut tree = Tree {
        text: String::new(),
        files: 0,
        bytes: 0,
        omitted: Vec::new(),
    };
    for (_, relative, path, kind) in entries {
        let omit = |tree: &mut Tree, reason| {
            tree.omitted.push(Omission {
                path: relative.clone(),
                reason,
            });
        };
        match kind {
            Entry::Link => {
                match read::link_escaping(&path, &canonical_root) {
                    Ok(Some(target)) => problems.push(InputProblem::LinkEscapes { path, target }),
                    Ok(None) => omit(&mut tree, OmitReason::Link),
                    Err(problem) => problems.push(problem),
                }
                continue;
            }
            // Pipes, sockets and devices are no source, and a pipe would block the read.
            Entry::Special => {
                omit(&mut tree, OmitReason::NotAFile);
                continue;
            }
            Entry::File => {}
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
            Err(InputProblem::Binary { .. } | InputProblem::Nul { .. }) => {
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
        if let Some(kind) = secret_in(&content) {
            omit(&mut tree, OmitReason::HoldsSecret(kind));
            continue;
        }
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
    let _ = write!(
        body,
        "\n### {}\n{fence}{}\n",
        code_span(relative),
        language(relative)
    );
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
            "- {}: {}",
            code_span(&omission.path),
            omission.reason.describe()
        );
    }
    text
}

/// `path` as an inline code span on one line: escaped by [`one_line`], between backtick runs
/// longer than any inside it.
fn code_span(path: &str) -> String {
    let line = one_line(path);
    let ticks = "`".repeat(longest_backtick_run(&line) + 1);
    let pad = if line.starts_with('`') || line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{line}{pad}{ticks}")
}

/// `text` on one line: control characters (`\n`, `\r`, `\t`, U+0085 …) and the line and
/// paragraph separators written as escapes, so a file name cannot start a line of its own
/// in a prompt (a heading at column 0) or in a terminal.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    let breaks = |ch: char| ch.is_control() || matches!(ch, '\u{2028}' | '\u{2029}');
    if !text.chars().any(breaks) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if breaks(ch) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    Cow::Owned(out)
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

/// Files named as credentials are conventionally named; a release plan never needs their
/// values. `relative` is the path in the tree, with `/` separators.
fn may_hold_secrets(relative: &str) -> bool {
    let lower = relative.to_ascii_lowercase();
    let mut parts = lower.rsplit('/');
    let name = parts.next().unwrap_or_default();
    let parent = parts.next().unwrap_or_default();
    // A template of a credentials file holds names, not values.
    if [".example", ".sample", ".template", ".dist"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    {
        return false;
    }
    let stem_is = |stem: &str| name == stem || name.starts_with(&format!("{stem}."));
    // SSH keys under their default names, whatever the algorithm (`id_ed25519_sk`), except
    // the public half.
    let ssh_key = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_xmss"]
        .iter()
        .any(|key| name.starts_with(key))
        && !name.ends_with(".pub");
    ssh_key
        || stem_is(".env")
        || stem_is("secrets")
        || stem_is("credentials")
        || stem_is("service-account")
        || stem_is("service_account")
        || [
            ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk", ".tfvars", ".tfvars.json",
            ".tfstate", ".tfstate.backup", ".kdbx", ".ovpn",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
        || matches!(
            name,
            ".npmrc"
                | ".pypirc"
                | ".netrc"
                | "_netrc"
                | ".git-credentials"
                | ".pgpass"
                | ".vault-token"
                | ".htpasswd"
                | ".my.cnf"
                | ".s3cfg"
                | ".boto"
                | ".dockercfg"
                | "credentials.json"
                | "client_secret.json"
        )
        || name.starts_with("client_secret") && name.ends_with(".json")
        || name.ends_with("-service-account.json")
        || name.ends_with("_service_account.json")
        // Directories whose files are credentials by convention.
        || (parent == ".docker" && name == "config.json")
        || (parent == ".kube" && name == "config")
        || (parent == ".aws" && name == "config")
        || (parent == ".ssh" && name != "config" && !name.ends_with(".pub"))
        || (parent == ".gnupg")
}

/// The credential `content` holds, if any: files named otherwise (a `deploy_key`, a key in a
/// settings file) are known by what is in them.
fn secret_in(content: &str) -> Option<SecretKind> {
    static PATTERNS: LazyLock<(regex::RegexSet, Vec<SecretKind>)> = LazyLock::new(|| {
        let patterns = [
            (
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-",
                SecretKind::PrivateKey,
            ),
            (
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
                SecretKind::AwsAccessKeyId,
            ),
            (
                r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}\b"#,
                SecretKind::AwsSecretKey,
            ),
            (
                r#""type"\s*:\s*"service_account"|"private_key"\s*:\s*""#,
                SecretKind::ServiceAccountKey,
            ),
            (
                r"AccountKey=[A-Za-z0-9+/]{40,}={0,2}",
                SecretKind::AzureAccountKey,
            ),
            (
                r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20}|xox[abposr]-[A-Za-z0-9-]{10,}|[sr]k_live_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35})",
                SecretKind::ApiToken,
            ),
        ];
        let set = regex::RegexSet::new(patterns.iter().map(|(pattern, _)| pattern))
            .expect("the credential patterns are valid regular expressions");
        (set, patterns.iter().map(|(_, kind)| *kind).collect())
    });
    let (set, kinds) = &*PATTERNS;
    set.matches(content)
        .iter()
        .next()
        .and_then(|index| kinds.get(index).copied())
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
    fn fifos_sockets_and_devices_skipped_in_a_tree_are_listed_as_left_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "main.rs", b"fn main() {}\n");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("queue"))
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock"))
            .expect("binds a socket");
        let tree = walk_tree(dir.path(), 10_000, 10_000).expect("walks");
        assert_eq!(tree.files, 1);
        let omitted: Vec<_> = tree
            .omitted
            .iter()
            .map(|o| (o.path.as_str(), &o.reason))
            .collect();
        assert_eq!(
            omitted,
            [
                ("agent.sock", &OmitReason::NotAFile),
                ("queue", &OmitReason::NotAFile)
            ]
        );
        assert!(
            tree.text
                .contains("- `queue`: not a regular file (a pipe, socket or device)\n"),
            "{}",
            tree.text
        );
    }

    #[test]
    fn credential_files_are_known_by_name() {
        for path in [
            ".env",
            ".env.production",
            "id_rsa",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            "id_ed25519_sk",
            "home/.ssh/deploy",
            ".aws/credentials",
            ".aws/config",
            "credentials",
            ".gem/credentials",
            ".cargo/credentials.toml",
            ".git-credentials",
            ".docker/config.json",
            ".kube/config",
            ".pgpass",
            ".vault-token",
            "infra/terraform.tfstate",
            "infra/terraform.tfstate.backup",
            "infra/prod.tfvars",
            "infra/prod.auto.tfvars.json",
            "service-account.json",
            "keys/ci-service-account.json",
            "client_secret_123.apps.googleusercontent.com.json",
            ".htpasswd",
            ".netrc",
            "tls/server.KEY",
            ".kamal/secrets",
        ] {
            assert!(may_hold_secrets(path), "{path} is a credentials file");
        }
        for path in [
            ".env.example",
            "secrets.yml.sample",
            "infra/prod.tfvars.example",
            "id_rsa.pub",
            ".ssh/id_ed25519.pub",
            ".ssh/config",
            "config",
            "config/deploy.yml",
            "kube/config",
            "src/config.json",
            "docs/credentials-rotation.md",
            "README.md",
        ] {
            assert!(!may_hold_secrets(path), "{path} is no credentials file");
        }
    }

    #[test]
    fn credentials_are_known_by_content() {
        for (content, kind) in [
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
                SecretKind::PrivateKey,
            ),
            ("-----BEGIN RSA PRIVATE KEY-----", SecretKind::PrivateKey),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                SecretKind::PrivateKey,
            ),
            (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                SecretKind::PrivateKey,
            ),
            ("PuTTY-User-Key-File-3: ssh-ed25519", SecretKind::PrivateKey),
            ("key = \"AKIAIOSFODNN7EXAMPLE\"", SecretKind::AwsAccessKeyId),
            (
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                SecretKind::AwsSecretKey,
            ),
            (
                "{\n  \"type\": \"service_account\",\n  \"project_id\": \"p\"\n}",
                SecretKind::ServiceAccountKey,
            ),
            (
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4==",
                SecretKind::AzureAccountKey,
            ),
            (
                "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                SecretKind::ApiToken,
            ),
            ("STRIPE=sk_live_abcdefghijklmnop1234", SecretKind::ApiToken),
        ] {
            assert_eq!(secret_in(content), Some(kind), "{content}");
        }
        for content in [
            "data \"aws_secretsmanager_secret\" \"database_url\" {}",
            "service_account = google_service_account.api.email",
            "-----BEGIN PUBLIC KEY-----\n-----BEGIN CERTIFICATE-----",
            "AKIA is the prefix of an AWS access key id",
            "fn main() { println!(\"hello\"); }",
        ] {
            assert_eq!(secret_in(content), None, "{content}");
        }
    }

    #[test]
    fn a_nul_byte_after_the_sniffed_start_leaves_a_file_out_as_binary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut content = vec![b'x'; 9_000];
        content.push(0);
        write(dir.path(), "data.txt", &content);
        let tree = walk_tree(dir.path(), 100_000, 100_000).expect("walks");
        assert_eq!(tree.files, 0);
        assert_eq!(tree.omitted[0].reason, OmitReason::Binary);
    }

    #[test]
    fn files_excluded_by_git_info_exclude_are_left_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), ".git/info/exclude", b"notes/\n*.local\n");
        write(dir.path(), "notes/private.md", b"mine");
        write(dir.path(), "settings.local", b"mine");
        write(dir.path(), "main.rs", b"fn main() {}\n");
        let tree = walk_tree(dir.path(), 10_000, 10_000).expect("walks");
        assert_eq!(tree.files, 1, "{}", tree.text);
        assert!(!tree.text.contains("mine"), "{}", tree.text);
    }

    #[test]
    fn a_path_is_written_on_one_line() {
        assert_eq!(
            one_line("a\n\n# X\r\t\u{b}\u{85}\u{2028}\u{2029}.md"),
            "a\\n\\n# X\\r\\t\\u{b}\\u{85}\\u{2028}\\u{2029}.md"
        );
        assert!(matches!(one_line("src/main.rs"), Cow::Borrowed(_)));
        assert_eq!(code_span("src/main.rs"), "`src/main.rs`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a"), "`` `a ``");
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
