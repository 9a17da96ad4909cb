//! The front matter a prompt brings from its own tool, read as its authors meant it.
//!
//! | tool | keys read |
//! |---|---|
//! | dotprompt (`.prompt`) | `input.schema` (Picoschema: the inputs), `input.default`, `config.temperature`, `config.maxOutputTokens`, `config.topP`, `output.schema`, `output.format`, `description` |
//! | Prompty (`.prompty`) | `inputs` (name: type, description, default, sample), `sample`, `model.parameters` (`temperature`, `max_tokens`, `top_p`, `seed`), `description` |
//! | VS Code (`.prompt.md`) | `description`; `mode`, `tools` and `model` concern the editor |
//! | Claude Code commands | `description`, `argument-hint`; `allowed-tools` and `model` concern the tool |
//! | Codex commands | `argument_hint` (read in [`super::argument_hint`]) |
//!
//! A model name a prompt suggests for its own tool (`openai/gpt-4o-mini`,
//! `azure_deployment: gpt-35-turbo`) is shown, not used: it names a model of that tool's
//! provider, not of the endpoint `agent` calls.

use std::collections::BTreeMap;

use serde_yaml_ng::Value as Yaml;

use super::definition::ModelDefaults;
use super::input_spec::InputSpec;
use super::picoschema;

/// Which tool's front matter a prompt brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// dotprompt / Genkit.
    Dotprompt,
    /// Prompty.
    Prompty,
    /// A VS Code prompt file.
    VscodePrompt,
    /// A Claude Code slash command.
    ClaudeCommand,
}

impl Origin {
    /// Guess the tool from the keys present.
    pub fn of(keys: &BTreeMap<String, Yaml>) -> Option<Origin> {
        let has = |key: &str| keys.contains_key(key);
        let nested = |key: &str, inner: &str| {
            keys.get(key)
                .and_then(Yaml::as_mapping)
                .is_some_and(|m| m.contains_key(inner))
        };
        if nested("input", "schema") || nested("output", "schema") || nested("output", "format") {
            Some(Origin::Dotprompt)
        } else if has("inputs") || (has("model") && nested("model", "api")) || has("sample") {
            Some(Origin::Prompty)
        } else if has("mode") || has("tools") {
            Some(Origin::VscodePrompt)
        } else if has("argument-hint") || has("allowed-tools") {
            Some(Origin::ClaudeCommand)
        } else {
            None
        }
    }
}

fn get<'a>(keys: &'a BTreeMap<String, Yaml>, path: &[&str]) -> Option<&'a Yaml> {
    let (first, rest) = path.split_first()?;
    let mut value = keys.get(*first)?;
    for key in rest {
        value = value.as_mapping()?.get(*key)?;
    }
    Some(value)
}

fn text_of(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Null => None,
        other => serde_json::to_string(&serde_json::to_value(other).ok()?).ok(),
    }
}

/// The inputs the front matter declares, in its order.
pub(crate) fn inputs(keys: &BTreeMap<String, Yaml>) -> Result<Vec<InputSpec>, String> {
    let mut inputs = Vec::new();
    if let Some(schema) = get(keys, &["input", "schema"]) {
        let defaults = get(keys, &["input", "default"]).and_then(Yaml::as_mapping);
        for field in picoschema::fields(schema).map_err(|e| format!("`input.schema`: {e}"))? {
            let mut spec = InputSpec::new(&field.name);
            spec.description = field.description;
            spec.required = field.required;
            spec.structured = matches!(field.kind.as_str(), "object" | "array");
            if let Some(default) = defaults.and_then(|d| d.get(field.name.as_str())) {
                spec.default = text_of(default);
                spec.required = false;
            }
            inputs.push(spec);
        }
    }
    if let Some(Yaml::Mapping(declared)) = keys.get("inputs") {
        for (name, decl) in declared {
            let Some(name) = name.as_str() else { continue };
            let mut spec = InputSpec::new(name);
            match decl {
                Yaml::Mapping(fields) => {
                    let field = |key: &str| fields.get(key);
                    spec.description = field("description").and_then(text_of);
                    spec.structured = field("type")
                        .and_then(Yaml::as_str)
                        .is_some_and(|t| matches!(t, "object" | "array" | "list"));
                    if let Some(default) = field("default") {
                        spec.default = text_of(default);
                        spec.required = false;
                    }
                    if let Some(Yaml::Bool(false)) = field("required") {
                        spec.required = false;
                    }
                    if let Some(sample) = field("sample") {
                        spec.sample = text_of(sample);
                    }
                }
                // The older form: `inputs: { question: "What is…" }`, a name and its sample.
                other => spec.sample = text_of(other),
            }
            inputs.push(spec);
        }
    }
    if let Some(Yaml::Mapping(samples)) = keys.get("sample") {
        for (name, sample) in samples {
            let Some(name) = name.as_str() else { continue };
            match inputs.iter_mut().find(|spec| spec.name == name) {
                Some(spec) => spec.sample = text_of(sample),
                None => {
                    let mut spec = InputSpec::new(name);
                    spec.sample = text_of(sample);
                    inputs.push(spec);
                }
            }
        }
    }
    Ok(inputs)
}

/// The model parameters the front matter suggests.
pub(crate) fn defaults(keys: &BTreeMap<String, Yaml>) -> ModelDefaults {
    let number = |path: &[&str]| get(keys, path).and_then(Yaml::as_f64);
    let first = |paths: &[&[&str]]| paths.iter().find_map(|path| number(path));
    ModelDefaults {
        model: None,
        temperature: first(&[
            &["config", "temperature"],
            &["model", "parameters", "temperature"],
        ])
        .map(|t| t as f32),
        max_tokens: first(&[
            &["config", "maxOutputTokens"],
            &["model", "parameters", "max_tokens"],
        ])
        .and_then(|n| u32::try_from(n as i64).ok()),
        top_p: first(&[&["config", "topP"], &["model", "parameters", "top_p"]]).map(|t| t as f32),
        seed: first(&[&["model", "parameters", "seed"]]).map(|s| s as i64),
    }
}

/// The model the front matter names for its own tool, to show.
pub(crate) fn suggested_model(keys: &BTreeMap<String, Yaml>) -> Option<String> {
    match keys.get("model")? {
        Yaml::String(name) => Some(name.clone()),
        Yaml::Mapping(_) => get(keys, &["model", "configuration", "azure_deployment"])
            .or_else(|| get(keys, &["model", "configuration", "name"]))
            .or_else(|| get(keys, &["model", "connection", "azure_deployment"]))
            .and_then(text_of),
        _ => None,
    }
}

/// The one-line description the front matter gives.
pub(crate) fn description(keys: &BTreeMap<String, Yaml>) -> Option<String> {
    keys.get("description")
        .and_then(text_of)
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// What a front-matter key means in its own tool, when `agent` does not act on it.
pub fn meaning_of_ignored(key: &str) -> Option<&'static str> {
    Some(match key {
        "mode" => {
            "VS Code: the chat mode (ask, edit, agent) the prompt runs in; agent runs every prompt as one chat exchange"
        }
        "tools" => "VS Code: the tools the editor's agent may call; agent calls no tools",
        "allowed-tools" => "Claude Code: the tools the command may use; agent calls no tools",
        "metadata" => "Prompty: authors and tags, for people",
        "authors" | "author" => "who wrote the prompt, for people",
        "tags" => "labels, for people",
        "version" | "prompt-version" => "the prompt's own version, for people",
        "persona" => "a persona label of the prompt collection, for people",
        "title" => "a title, for people",
        "outputs" => {
            "Prompty: outputs the runtime reads; agent's contract judges the reply instead"
        }
        "template" => "Prompty: the template engine; agent reads the `dialect` of its own block",
        _ => return None,
    })
}
