//! Checks a JSON Schema cannot say, named in the schema's `x-agent` block.
//!
//! ```json
//! "x-agent": {
//!   "prose": "hard",
//!   "declined": { "pointer": "/error", "equals": "insufficient_context" },
//!   "checks": [
//!     { "rule": "max-words", "pointer": "/summary", "max": 200 },
//!     { "rule": "no-deployment-scripts" }
//!   ]
//! }
//! ```

use serde::Deserialize;
use serde_json::Value;

use super::scaffold::Strictness;
use super::verdict::{Location, Violation};
use crate::text;

/// Our extension block of a JSON Schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Extension {
    /// Prose around the one JSON object: the object is taken out of it either way, and this
    /// says whether that is a violation, a warning (the default) or nothing.
    #[serde(default = "soft")]
    pub(crate) prose: Strictness,
    /// When the deliverable is a refusal.
    pub(crate) declined: Option<Declined>,
    /// The named checks.
    #[serde(default)]
    pub(crate) checks: Vec<NamedCheck>,
}

impl Default for Extension {
    fn default() -> Extension {
        Extension {
            prose: soft(),
            declined: None,
            checks: Vec::new(),
        }
    }
}

fn soft() -> Strictness {
    Strictness::Soft
}

/// A deliverable is a refusal when the value at `pointer` equals `equals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Declined {
    pub(crate) pointer: String,
    pub(crate) equals: Value,
}

impl Declined {
    pub(crate) fn matches(&self, value: &Value) -> bool {
        value.pointer(&self.pointer) == Some(&self.equals)
    }
}

/// One named check.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum NamedCheck {
    /// The string at `pointer` has at most `max` words.
    MaxWords { pointer: String, max: usize },
    /// No string anywhere holds a shell or deployment script.
    NoDeploymentScripts,
}

impl NamedCheck {
    pub(crate) fn run(&self, value: &Value, findings: &mut Vec<Violation>) {
        match self {
            NamedCheck::MaxWords { pointer, max } => {
                if let Some(Value::String(text)) = value.pointer(pointer) {
                    let words = text::word_count(text);
                    if words > *max {
                        findings.push(Violation::hard(
                            "check.max-words",
                            Location::pointer(pointer.clone()),
                            format!("{words} words; at most {max} allowed"),
                        ));
                    }
                }
            }
            NamedCheck::NoDeploymentScripts => {
                let mut path = Vec::new();
                scripts(value, &mut path, findings);
            }
        }
    }
}

/// One step of the path to a value: an object key or an array index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Walk every string; the path is a stack of steps, turned into a pointer only on a finding,
/// since most strings of a release record are not scripts.
fn scripts<'a>(value: &'a Value, path: &mut Vec<Step<'a>>, findings: &mut Vec<Violation>) {
    match value {
        Value::String(text) => {
            if let Some(why) = looks_like_script(text) {
                let pointer: String = path
                    .iter()
                    .map(|step| match step {
                        Step::Key(key) => format!("/{}", key.replace('~', "~0").replace('/', "~1")),
                        Step::Index(index) => format!("/{index}"),
                    })
                    .collect();
                findings.push(Violation::hard(
                    "check.no-deployment-scripts",
                    Location::pointer(pointer),
                    format!("holds a deployment script ({why}); describe the step instead of scripting it"),
                ));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Step::Index(index));
                scripts(item, path, findings);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push(Step::Key(key));
                scripts(item, path, findings);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Tools whose invocation, chained or on several lines, makes a script.
const COMMANDS: &[&str] = &[
    "kubectl",
    "helm",
    "terraform",
    "terragrunt",
    "docker",
    "docker-compose",
    "aws",
    "gcloud",
    "az",
    "ssh",
    "scp",
    "rsync",
    "curl",
    "wget",
    "ansible-playbook",
    "npm",
    "yarn",
    "pnpm",
    "make",
    "git",
    "systemctl",
    "psql",
    "mysql",
    "flyway",
    "liquibase",
    "sudo",
    "sh",
    "bash",
    "export",
    "cd",
    "cp",
    "mv",
    "rm",
    "chmod",
    "argocd",
    "flux",
    "vercel",
    "fly",
    "heroku",
    "ecs-deploy",
    "pulumi",
];

/// Why `text` reads as a script, if it does: a code fence, a shebang, a heredoc, or two or
/// more shell commands (on separate lines or chained with `&&`, `;` or `|`). One command
/// named in a sentence is a description, not a script.
pub(crate) fn looks_like_script(text: &str) -> Option<String> {
    // Two commands need a separator between them, and the other signs are rarer still: most
    // strings are one line of prose and leave here.
    if !text
        .bytes()
        .any(|b| matches!(b, b'\n' | b';' | b'|' | b'&' | b'`' | b'#' | b'<'))
    {
        return None;
    }
    if text.contains("```") {
        return Some("a fenced code block".into());
    }
    if text.contains("#!") && text.lines().any(|line| line.trim_start().starts_with("#!")) {
        return Some("a shebang line".into());
    }
    if let Some(at) = text.find("<<") {
        let after = text[at + 2..]
            .trim_start()
            .trim_start_matches(['\'', '"', '-']);
        if after.starts_with("EOF") {
            return Some("a heredoc".into());
        }
    }
    // `&&` splits into an empty part between its two `&`, which is no command.
    let commands: Vec<&str> = text
        .split(['\n', ';', '|', '&'])
        .map(|part| part.trim().trim_start_matches("$ ").trim())
        .filter(|part| is_command(part))
        .collect();
    (commands.len() >= 2).then(|| {
        format!(
            "{} shell commands, starting `{}`",
            commands.len(),
            text::clip(commands[0], 40)
        )
    })
}

fn is_command(part: &str) -> bool {
    let mut words = part.split_whitespace();
    let first = words.next().unwrap_or("");
    if first.starts_with("./") {
        return true;
    }
    COMMANDS.contains(&first) && words.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scripts_are_told_from_descriptions() {
        assert!(
            looks_like_script("kubectl apply -f k8s/ && kubectl rollout status deploy/api")
                .is_some()
        );
        assert!(looks_like_script("#!/bin/sh\necho hi").is_some());
        assert!(looks_like_script("```bash\nmake deploy\n```").is_some());
        assert!(looks_like_script("$ helm upgrade api ./chart\n$ kubectl get pods").is_some());
        assert!(looks_like_script("Run kubectl rollout undo on the api deployment").is_none());
        assert!(looks_like_script("kubectl rollout undo deployment/api").is_none());
        assert!(looks_like_script("Error rate > 2% | latency p95 > 300ms").is_none());
    }

    #[test]
    fn script_findings_point_at_the_string() {
        let value =
            json!({"next_actions": [{"action": "ok"}, {"action": "git pull; make deploy"}]});
        let mut findings = Vec::new();
        NamedCheck::NoDeploymentScripts.run(&value, &mut findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(
            findings[0].location,
            Location::pointer("/next_actions/1/action")
        );
    }

    #[test]
    fn word_limits_count_words() {
        let check = NamedCheck::MaxWords {
            pointer: "/summary".into(),
            max: 3,
        };
        let mut findings = Vec::new();
        check.run(&json!({"summary": "one two three"}), &mut findings);
        assert!(findings.is_empty());
        check.run(&json!({"summary": "one two three four"}), &mut findings);
        assert_eq!(findings[0].message, "4 words; at most 3 allowed");
    }
}
