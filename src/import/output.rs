//! Drafting a contract from the prompt's own words: the output it shows or describes.
//!
//! - a dotprompt output schema (Picoschema) is converted: it *is* the contract;
//! - a JSON example or pseudo-schema becomes a JSON Schema (every key required, no extra
//!   keys, enums from `a|b|c`, formats and word limits from the words), two alternative
//!   objects a `oneOf`, a refusal object the `declined` branch;
//! - tagged fields the answer must be given in (`<S1>…</S1>`, "between category tags")
//!   become a tagged contract, typed from what the prompt says of them;
//! - an example document or an outline of headings becomes a markdown scaffold: title,
//!   sections in order, tables and their columns, code blocks, checklists, a front matter
//!   block; headings with fill-ins (`# [Incident Title]`) match any text there.
//!
//! Everything drafted is a draft: the report says where each part came from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use serde_json::{Value, json};

use super::pseudo_json::{self, Extras, Node};
use super::slots::Lines;

/// A drafted contract.
#[derive(Debug, Clone)]
pub(crate) struct Drafted {
    /// `schema.json`, `scaffold.yaml` or `tagged.yaml`.
    pub(crate) suffix: &'static str,
    /// The file's text.
    pub(crate) text: String,
    /// Where it came from.
    pub(crate) evidence: String,
    /// What a person should check.
    pub(crate) checks: Vec<String>,
}

/// The words that announce how the answer must look.
fn output_cue(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    [
        "output format",
        "mandatory format",
        "exact format",
        "use this format",
        "exactly this format",
        "in this format",
        "this exact format",
        "response format",
        "format your response",
        "format your answer",
        "output structure",
        "output sections",
        "structure your",
        "respond with",
        "respond in",
        "return your",
        "return exactly",
        "return only",
        "deliver your",
        "delivered as",
        "your response must",
        "your output must",
        "output the following",
        "following format",
        "following structure",
        "output:",
        "output instructions",
        "schemas:",
    ]
    .iter()
    .any(|cue| lower.contains(cue))
}

/// Draft the contract of a prompt whose template regions are `regions` of `body`.
pub(crate) fn draft(
    body: &str,
    regions: &[Range<usize>],
    keys: &BTreeMap<String, serde_yaml_ng::Value>,
    reasoning_tags: &[String],
    lines: &Lines<'_>,
) -> Option<Drafted> {
    if let Some(schema) = keys
        .get("output")
        .and_then(serde_yaml_ng::Value::as_mapping)
        .and_then(|output| output.get("schema"))
    {
        return match crate::prompt::picoschema::to_json_schema(schema) {
            Ok(schema) => {
                let mut checks = vec![
                    "the output schema is the contract as dotprompt has it: optional fields may be null, no other keys".into(),
                ];
                let x_agent = json_alone(body).then(|| {
                    checks.push(
                        "the prompt asks for the JSON object alone: prose around it is a violation"
                            .into(),
                    );
                    json!({ "prose": "hard" })
                });
                Some(Drafted {
                    suffix: "schema.json",
                    text: schema_file(
                        schema,
                        "the prompt's own `output.schema` (Picoschema)",
                        x_agent,
                    ),
                    evidence: "`output.schema` in the front matter, converted from Picoschema"
                        .into(),
                    checks,
                })
            }
            Err(error) => Some(Drafted {
                suffix: "schema.json",
                text: schema_file(json!({ "type": "object" }), "a placeholder", None),
                evidence: format!("`output.schema` could not be converted: {error}"),
                checks: vec![format!("write the schema by hand: {error}")],
            }),
        };
    }
    let markdown = markdown_template(body, regions, lines);
    let json = json_examples(body, lines);
    let tagged = tagged_fields(body, regions, reasoning_tags, lines);
    // A JSON block inside an example document is part of that document.
    let json_inside_markdown = match (&markdown, &json) {
        (Some(template), Some(examples)) => examples
            .iter()
            .all(|example| template.range.contains(&example.start)),
        _ => false,
    };
    if let Some(examples) = json.filter(|_| !json_inside_markdown) {
        return Some(draft_json(body, &examples, lines));
    }
    if let Some(draft) = described_json(body, regions, lines) {
        return Some(draft);
    }
    if let Some(fields) = tagged.filter(|fields| !fields.is_empty() && markdown.is_none()) {
        return Some(draft_tagged(body, &fields));
    }
    if let Some(template) = markdown {
        return Some(draft_scaffold(body, &template, lines));
    }
    if let Some(draft) = single_value(body, regions) {
        return Some(draft);
    }
    if let Some(draft) = named_sections(body, regions, lines) {
        return Some(draft);
    }
    if let Some(draft) = numbered_parts(body, regions, lines) {
        return Some(draft);
    }
    if let Some(draft) = body_outline(body, regions, lines) {
        return Some(draft);
    }
    prose_report(body, regions, lines)
}

/// Sections the prompt names in its instructions, one per line ("… into a section called MAIN
/// POINTS:", fabric's way), with the list each one holds when the line counts it ("Output the
/// 10 most important points … as a list").
fn named_sections(body: &str, regions: &[Range<usize>], lines: &Lines<'_>) -> Option<Drafted> {
    let named = regex::Regex::new(
        r"(?i)\b(?:in|into|under)\s+an?\s+section\s+(?:called|named|titled|labell?ed)\s+[`*_]*([^`*_]+?)[`*_]*\s*:?\s*\.?\s*$",
    )
    .ok()?;
    let counted = regex::Regex::new(r"(?i)\b(\d{1,3})\s+(?:[a-z-]+\s+){0,2}?([a-z]+s)\b").ok()?;
    let region_text: String = regions.iter().map(|r| &body[r.clone()]).collect();
    let lower = region_text.to_ascii_lowercase();
    let numbered = if lower.contains("numbered list") || lower.contains("not bullets") {
        Some(true)
    } else if lower.contains("bulleted list") || lower.contains("not numbered") {
        Some(false)
    } else {
        None
    };
    let mut sections = Vec::new();
    for region in regions {
        let mut offset = region.start;
        for line in body[region.clone()].split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let Some(found) = named.captures(line.trim_end()) else {
                continue;
            };
            let name = found[1].trim().trim_end_matches(':').trim().to_owned();
            if name.is_empty() || name.len() > 80 {
                continue;
            }
            let instruction = &line[..found.get(0).map_or(line.len(), |m| m.start())];
            let count = counted
                .captures_iter(instruction)
                .filter(|c| {
                    ![
                        "words",
                        "characters",
                        "chars",
                        "sentences",
                        "lines",
                        "seconds",
                        "minutes",
                    ]
                    .contains(&c[2].to_ascii_lowercase().as_str())
                })
                .find_map(|c| c[1].parse::<usize>().ok());
            let is_list = count.is_some() || instruction.to_ascii_lowercase().contains("list");
            sections.push((name, lines.of(start), count, is_list));
        }
    }
    if sections.len() < 2 {
        return None;
    }
    let mut out = format!(
        "# Drafted by `agent import` from the sections the prompt names (lines {}); check it.\n",
        sections
            .iter()
            .map(|(_, line, _, _)| line.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "description: The sections the prompt asks for, in its order"
    );
    let _ = writeln!(out, "sections:");
    let mut checks = Vec::new();
    for (name, _, count, is_list) in &sections {
        let _ = writeln!(out, "  - heading: {}", yaml_string(name));
        if *is_list {
            let mut keys = Vec::new();
            if let Some(count) = count {
                keys.push(format!("items: {count}"));
            }
            if let Some(numbered) = numbered {
                keys.push(format!("numbered: {numbered}"));
            }
            if keys.is_empty() {
                keys.push("min_items: 1".into());
            }
            let _ = writeln!(out, "    list: {{ {} }}", keys.join(", "));
            checks.push(format!(
                "`{name}` holds a {}list{}",
                match numbered {
                    Some(true) => "numbered ",
                    Some(false) => "bulleted ",
                    None => "",
                },
                count.map_or(String::new(), |c| format!(" of exactly {c} items"))
            ));
        }
    }
    let _ = writeln!(out, "extra_sections: hard");
    let _ = writeln!(out, "preamble: soft");
    let _ = writeln!(out, "trailing_text: soft");
    checks.insert(
        0,
        format!(
            "the answer has the {} sections the prompt names, in its order, as headings",
            sections.len()
        ),
    );
    Some(Drafted {
        suffix: "scaffold.yaml",
        text: out,
        evidence: format!(
            "a markdown answer with the {} sections the prompt names",
            sections.len()
        ),
        checks,
    })
}

/// The parts an answer must include, listed as a numbered list of bold labels after a line
/// that says so ("Summary Must Include:" then `1. **User Intent** – …`): each part starts a
/// line of the answer, the first one first; a part "included only if" something is optional.
fn numbered_parts(body: &str, regions: &[Range<usize>], lines: &Lines<'_>) -> Option<Drafted> {
    let item = regex::Regex::new(r"^\s*(\d{1,2})[.)]\s+\*\*([^*]+?)\*\*").ok()?;
    for region in regions {
        let text = &body[region.clone()];
        let all: Vec<&str> = text.lines().collect();
        for (index, line) in all.iter().enumerate() {
            let lower = line.to_ascii_lowercase();
            let announces = [
                "must include",
                "must contain",
                "include:",
                "must have",
                "must cover",
            ]
            .iter()
            .any(|cue| lower.contains(cue));
            if !announces {
                continue;
            }
            let mut parts = Vec::new();
            for next in &all[index + 1..] {
                if next.trim().is_empty() && parts.is_empty() {
                    continue;
                }
                let Some(found) = item.captures(next) else {
                    break;
                };
                let optional = {
                    let rest = next.to_ascii_lowercase();
                    ["only if", "if applicable", "optional", "if any"]
                        .iter()
                        .any(|cue| rest.contains(cue))
                };
                parts.push((found[1].to_owned(), found[2].trim().to_owned(), optional));
            }
            if parts.len() < 3 || parts[0].0 != "1" {
                continue;
            }
            let at =
                lines.of(region.start + all[..index].iter().map(|l| l.len() + 1).sum::<usize>());
            let required: Vec<String> = parts
                .iter()
                .filter(|(_, _, optional)| !optional)
                .map(|(_, label, _)| yaml_string(label))
                .collect();
            let mut out = format!(
                "# Drafted by `agent import` from the numbered parts the prompt lists (line {at}); check it.\n"
            );
            let _ = writeln!(
                out,
                "description: The {} numbered parts the prompt lists",
                parts.len()
            );
            let _ = writeln!(out, "sections: []");
            let _ = writeln!(out, "extra_sections: allowed");
            let _ = writeln!(out, "preamble: allowed");
            let _ = writeln!(out, "trailing_text: allowed");
            let _ = writeln!(out, "required_lines: [{}]", required.join(", "));
            let _ = writeln!(out, "lines:");
            let _ = writeln!(out, "  - {{ line: 1, pattern: '^(1[.)]|\\*\\*1|#+ *1)' }}");
            let optional: Vec<&str> = parts
                .iter()
                .filter(|(_, _, optional)| *optional)
                .map(|(_, label, _)| label.as_str())
                .collect();
            let mut checks = vec![format!(
                "the answer starts with part 1 and has a line starting with each required part's label ({} of {})",
                required.len(),
                parts.len()
            )];
            if !optional.is_empty() {
                checks.push(format!("optional: {}", optional.join(", ")));
            }
            return Some(Drafted {
                suffix: "scaffold.yaml",
                text: out,
                evidence: format!("the {} numbered parts listed at line {at}", parts.len()),
                checks,
            });
        }
    }
    None
}

/// A report described in one line of prose ("**Output**: Prioritized security report with
/// critical vulnerabilities, recommended actions, and compliance status."): each part it
/// names is a section, in that order, whatever its exact heading.
fn prose_report(body: &str, regions: &[Range<usize>], lines: &Lines<'_>) -> Option<Drafted> {
    let described = regex::Regex::new(
        r"(?i)^\W*output\W*:?\W*\s*(?:an?\s+)?[\w\s-]*?\b(?:report|summary|document|review|analysis)\s+(?:with|containing|covering|of)\s+(.+?)\.?\s*$",
    )
    .ok()?;
    for region in regions {
        let mut offset = region.start;
        for line in body[region.clone()].split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let Some(found) = described.captures(line.trim()) else {
                continue;
            };
            let parts: Vec<String> = found[1]
                .replace(", and ", ", ")
                .replace(" and ", ", ")
                .split(',')
                .map(|part| part.trim().to_owned())
                .filter(|part| !part.is_empty() && part.split_whitespace().count() <= 4)
                .collect();
            if parts.len() < 2 {
                continue;
            }
            let mut out = format!(
                "# Drafted by `agent import` from the report described at line {}; check it.\n",
                lines.of(start)
            );
            let _ = writeln!(out, "description: {}", yaml_string(line.trim()));
            let _ = writeln!(out, "sections:");
            for part in &parts {
                let words: Vec<String> = part
                    .split_whitespace()
                    .map(|w| regex::escape(&crate::text::fold(w)))
                    .collect();
                let _ = writeln!(
                    out,
                    "  - heading: {}",
                    yaml_string(&format!(".*{}.*", words.join(".*")))
                );
                let _ = writeln!(out, "    match: regex");
            }
            let _ = writeln!(out, "extra_sections: soft");
            let _ = writeln!(out, "preamble: soft");
            let _ = writeln!(out, "trailing_text: soft");
            return Some(Drafted {
                suffix: "scaffold.yaml",
                text: out,
                evidence: format!(
                    "a report described in prose at line {}: {}",
                    lines.of(start),
                    parts.join(", ")
                ),
                checks: vec![format!(
                    "the report has a section for each part the prompt names ({}), in that order; the headings' exact words are free",
                    parts.join(", ")
                )],
            });
        }
    }
    None
}

/// A body that is itself the outline of the answer: a runbook whose record follows its
/// headings (`# Deployment for {PROJECT_NAME}`), or a list of the sections to write
/// (`## 1. Pre-Deployment Checks`, each with the bullets it should cover).
fn body_outline(body: &str, regions: &[Range<usize>], lines: &Lines<'_>) -> Option<Drafted> {
    let region = regions.first()?.clone();
    let text = &body[region.clone()];
    let (mut roots, _) = outline(text);
    let headings = |nodes: &[Outline]| nodes.iter().map(|n| 1 + n.children.len()).sum::<usize>();
    if headings(&roots) < 3 {
        return None;
    }
    let title = (roots.len() == 1 && roots[0].level == 1).then(|| roots.remove(0));
    let sections = match &title {
        Some(title) => &title.children,
        None => &roots,
    };
    // A list of sections to write, each with a few bullets of what it covers (the last one
    // may run on into the prompt's closing words): every one is required.
    let mut sizes: Vec<usize> = sections.iter().map(|s| s.lines_of_content).collect();
    sizes.sort_unstable();
    let skeleton = sections.iter().all(|s| s.children.is_empty())
        && sizes
            .get(sizes.len() / 2)
            .is_some_and(|&median| median <= 8);
    // Headings are the answer's outline only when the prompt says so by its shape: a record
    // titled with a fill-in (`# Deployment for {PROJECT_NAME}`), or a list of numbered
    // sections to write. A prompt's own headings (`# IDENTITY and PURPOSE`, `## Safety`)
    // organise the instructions, not the answer.
    let titled_record = title
        .as_ref()
        .is_some_and(|t| t.text.contains(['{', '$', '[']));
    let steps = sections.iter().filter(|s| is_step(&s.text)).count();
    let numbered_skeleton = skeleton && steps * 2 >= sections.len();
    if !(titled_record || numbered_skeleton) {
        return None;
    }
    let mut out = format!(
        "# Drafted by `agent import` from the prompt's own headings (lines {}-{}), which the answer follows; check it.\n",
        lines.of(region.start),
        lines.of(region.end.saturating_sub(1))
    );
    let _ = writeln!(
        out,
        "description: Drafted from the outline the prompt itself follows"
    );
    if let Some(title) = &title {
        write_heading_key(&mut out, "title", &title.text);
    }
    let _ = writeln!(out, "sections:");
    let mut required = 0;
    for section in sections {
        // In a runbook, the sections the record must carry are its checklists and its
        // phased procedures; guidance sections (`Your Mission`) may be left out.
        let mut checklist = section.checklist;
        let mut tables = Vec::new();
        let mut code = Vec::new();
        collect(section, &mut tables, &mut code, &mut checklist);
        let phases: Vec<&Outline> = section
            .children
            .iter()
            .filter(|c| is_step(&c.text))
            .collect();
        let needed = skeleton || checklist || !phases.is_empty();
        write_outline_section(&mut out, section, needed, checklist, &phases);
        required += usize::from(needed);
    }
    let closing = closing_lines(text);
    if !closing.is_empty() {
        let quoted: Vec<String> = closing.iter().map(|l| yaml_string(l)).collect();
        let _ = writeln!(out, "required_lines: [{}]", quoted.join(", "));
    }
    let _ = writeln!(out, "extra_sections: soft");
    let _ = writeln!(
        out,
        "preamble: {}",
        if title.is_some() { "hard" } else { "soft" }
    );
    let _ = writeln!(out, "trailing_text: soft");
    let mut checks = vec![format!(
        "the answer follows the prompt's own headings: {required} of {} sections are required{}",
        sections.len(),
        if skeleton {
            ""
        } else {
            " (the checklists and phased procedures); the guidance sections are optional"
        }
    )];
    if title.is_some() {
        checks.push("the document starts with the title: text before it is a violation".into());
    }
    Some(Drafted {
        suffix: "scaffold.yaml",
        text: out,
        evidence: format!(
            "a markdown answer following the prompt's own {} headings",
            sections.len()
        ),
        checks,
    })
}

/// `Phase 2: Deployment Execution`, `Step 3`, `1. Pre-checks`: a step of a procedure.
fn is_step(heading: &str) -> bool {
    let lower = heading.to_ascii_lowercase();
    let first = lower.split_whitespace().next().unwrap_or_default();
    ["phase", "step", "stage"].contains(&first)
        || first
            .trim_end_matches(['.', ')', ':'])
            .parse::<u32>()
            .is_ok()
}

fn write_outline_section(
    out: &mut String,
    section: &Outline,
    needed: bool,
    checklist: bool,
    steps: &[&Outline],
) {
    match heading_pattern(&section.text) {
        Some(pattern) => {
            let _ = writeln!(out, "  - heading: {}", yaml_string(&pattern));
            let _ = writeln!(out, "    match: regex");
        }
        None => {
            let _ = writeln!(out, "  - heading: {}", yaml_string(&section.text));
        }
    }
    if !needed {
        let _ = writeln!(out, "    optional: true");
        return;
    }
    if checklist && steps.is_empty() {
        let _ = writeln!(out, "    checklist: true");
    }
    if !steps.is_empty() {
        let _ = writeln!(out, "    subsections:");
        for step in steps {
            let _ = writeln!(out, "      - heading: {}", yaml_string(&step.text));
            // A runbook's commands show how; the record need not repeat them as code.
            let mut step_checklist = step.checklist;
            collect(step, &mut Vec::new(), &mut Vec::new(), &mut step_checklist);
            if step_checklist {
                let _ = writeln!(out, "        checklist: true");
            }
        }
    }
}

/// `Environment: {ENVIRONMENT}` lines after the last rule: the lines a record ends with.
fn closing_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(rule) = lines.iter().rposition(|l| l.trim() == "---") else {
        return Vec::new();
    };
    let tail: Vec<&str> = lines[rule + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .copied()
        .collect();
    if tail.is_empty() || tail.len() > 6 {
        return Vec::new();
    }
    let labelled: Vec<String> = tail
        .iter()
        .filter_map(|line| {
            let (label, value) = line.split_once(':')?;
            let value = value.trim();
            let slot = value.starts_with(['{', '$', '[']);
            (slot && !label.trim().is_empty() && label.len() < 40)
                .then(|| format!("{}:", label.trim()))
        })
        .collect();
    if labelled.len() == tail.len() {
        labelled
    } else {
        Vec::new()
    }
}

/// A JSON example in the prompt: where it starts and its parsed form.
struct JsonExample {
    start: usize,
    node: Node,
}

/// The JSON examples that describe the answer: objects of two or more keys that follow a
/// mention of JSON or of the output, outside any other example.
fn json_examples(body: &str, _lines: &Lines<'_>) -> Option<Vec<JsonExample>> {
    let mentions_json = body.contains("JSON") || body.contains("json");
    if !mentions_json {
        return None;
    }
    let mut examples = Vec::new();
    let mut at = 0;
    while let Some(offset) = body[at..].find('{') {
        let start = at + offset;
        let line_start = body[..start].rfind('\n').map_or(0, |i| i + 1);
        // `{` that opens a line (or follows `:`/`=`/a fence) starts an example.
        let before = body[line_start..start].trim();
        let opens = before.is_empty() || before.ends_with(':') || before.ends_with('`');
        let window = &body[start.saturating_sub(600)..start];
        let cued = window.contains("JSON")
            || window.contains("json")
            || window.lines().any(output_cue)
            || window.to_ascii_lowercase().contains("schema");
        let alternative = !examples.is_empty()
            && window.lines().any(|l| {
                let lower = l.to_ascii_lowercase();
                lower.starts_with("2)")
                    || lower.starts_with("2.")
                    || lower.starts_with("or")
                    || lower.starts_with("if ")
            });
        // A Python format string writes its literal braces doubled (`{{ "title": … }}`).
        let parsed = if body[start..].starts_with("{{") {
            let (plain, origin) = unescape_braces(&body[start..]);
            pseudo_json::parse(&plain)
                .map(|(node, length)| (node, origin.get(length).copied().unwrap_or(length)))
        } else {
            pseudo_json::parse(&body[start..])
        };
        if opens
            && (cued || alternative)
            && let Some((node, length)) = parsed
        {
            if let Node::Object(fields) = &node
                && !fields.is_empty()
                && (fields.len() >= 2 || window.contains("JSON"))
            {
                examples.push(JsonExample { start, node });
            }
            at = start + length.max(1);
            continue;
        }
        at = start + 1;
    }
    // Alternatives are shown as separate objects; more than two are examples of one shape.
    examples.truncate(2);
    if let [first, second] = &examples[..]
        && same_keys(&first.node, &second.node)
    {
        examples.truncate(1);
    }
    (!examples.is_empty()).then_some(examples)
}

/// `text` with doubled braces made single, and for each byte of the result (and its end) the
/// offset in `text` it came from.
fn unescape_braces(text: &str) -> (String, Vec<usize>) {
    let mut plain = String::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len() + 1);
    let mut index = 0;
    let bytes = text.as_bytes();
    while index < text.len() {
        let doubled = matches!(&bytes[index..], [b'{', b'{', ..] | [b'}', b'}', ..]);
        let width = if doubled {
            2
        } else {
            text[index..].chars().next().map_or(1, char::len_utf8)
        };
        let piece = if doubled {
            &text[index..=index]
        } else {
            &text[index..index + width]
        };
        for _ in 0..piece.len() {
            origin.push(index);
        }
        plain.push_str(piece);
        index += width;
    }
    origin.push(index);
    (plain, origin)
}

/// What a prompt says of each key in a list of labelled lines (`- IMPORTANCE RATING: A float
/// score between 0-10`, `- DETAILED FINDINGS: A list of 5-10 key insights`): the number's
/// bounds and type, the list's length.
fn apply_labels(body: &str, schema: &mut Value, checks: &mut Vec<String>) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let labelled =
        regex::Regex::new(r"(?m)^\s*[-*]\s+\**([A-Za-z][A-Za-z ]{1,40}?)\**\s*:\s*(.+)$");
    let range = regex::Regex::new(r"(\d+(?:\.\d+)?)\s*(?:-|–|to)\s*(\d+(?:\.\d+)?)");
    let (Ok(labelled), Ok(range)) = (labelled, range) else {
        return;
    };
    let labels: Vec<(Vec<String>, String)> = labelled
        .captures_iter(body)
        .map(|c| {
            let words = c[1]
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect();
            (words, c[2].to_ascii_lowercase())
        })
        .collect();
    for (key, property) in properties.iter_mut() {
        let key_words: Vec<String> = key
            .split(['_', '-'])
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        let described = labels
            .iter()
            .find(|(words, _)| *words == key_words)
            .or_else(|| labels.iter().find(|(words, _)| words.ends_with(&key_words)));
        let Some((_, description)) = described else {
            continue;
        };
        let bounds = range
            .captures(description)
            .and_then(|c| Some((c[1].parse::<f64>().ok()?, c[2].parse::<f64>().ok()?)));
        let is_array = property.get("type") == Some(&json!("array"));
        if is_array {
            if let Some((low, high)) = bounds
                && description.contains("list of")
            {
                property["minItems"] = json!(low as u64);
                property["maxItems"] = json!(high as u64);
                checks.push(format!(
                    "`{key}` holds {low}-{high} items, as the prompt's description of it says"
                ));
            }
            continue;
        }
        let numeric = ["float", "number", "integer", "score", "rating"]
            .iter()
            .any(|w| description.contains(w));
        if numeric && let Some((low, high)) = bounds {
            let kind = if description.contains("integer") {
                "integer"
            } else {
                "number"
            };
            let mut typed = json!({ "type": kind, "minimum": low, "maximum": high });
            if let Some(Value::String(about)) = property.get("description") {
                typed["description"] = json!(about);
            }
            *property = typed;
            checks.push(format!(
                "`{key}` is a {kind} from {low} to {high}, as the prompt's description of it says"
            ));
        }
    }
}

fn keys_of(node: &Node) -> Vec<&str> {
    match node {
        Node::Object(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
        _ => Vec::new(),
    }
}

fn same_keys(a: &Node, b: &Node) -> bool {
    keys_of(a) == keys_of(b)
}

fn draft_json(body: &str, examples: &[JsonExample], lines: &Lines<'_>) -> Drafted {
    let mut extras = Extras::default();
    let mut checks = vec![
        "every key of the example is required and no other key is allowed; loosen what the prompt leaves open".into(),
        "a text, number or yes/no value may be null (an example cannot say a value is always known); drop `\"null\"` from the types the deliverable must always give".into(),
    ];
    let schema = if let [only] = examples {
        let mut schema = pseudo_json::schema(&only.node, "", &mut extras);
        apply_labels(body, &mut schema, &mut checks);
        schema
    } else {
        let variants: Vec<Value> = examples
            .iter()
            .map(|example| {
                let mut variant_extras = Extras::default();
                let schema = pseudo_json::schema(&example.node, "", &mut variant_extras);
                extras.max_words.extend(variant_extras.max_words);
                extras.constants.extend(variant_extras.constants);
                schema
            })
            .collect();
        checks.push("the two objects the prompt shows became the two branches of a `oneOf`".into());
        json!({ "oneOf": variants })
    };
    let mut x_agent = serde_json::Map::new();
    // A branch fixed by an `error` key is the prompt's way of declining.
    if examples.len() == 2
        && let Some((pointer, value)) = extras
            .constants
            .iter()
            .find(|(pointer, _)| pointer.matches('/').count() == 1)
    {
        x_agent.insert(
            "declined".into(),
            json!({ "pointer": pointer, "equals": value }),
        );
        checks.push(format!(
            "a reply with `{pointer}` = `{value}` is taken as the agent declining (exit 4)"
        ));
    }
    let mut named_checks: Vec<Value> = extras
        .max_words
        .iter()
        .map(|(pointer, max)| json!({ "rule": "max-words", "pointer": pointer, "max": max }))
        .collect();
    let lower = body.to_ascii_lowercase().replace('*', "");
    if json_alone(body) {
        x_agent.insert("prose".into(), json!("hard"));
        checks.push(
            "the prompt asks for the JSON object alone: prose around it is a violation".into(),
        );
    }
    if lower.contains("must not include deployment scripts")
        || lower.contains("must not include scripts")
    {
        named_checks.push(json!({ "rule": "no-deployment-scripts" }));
    }
    if !named_checks.is_empty() {
        x_agent.insert("checks".into(), Value::Array(named_checks));
    }
    let lines_of: Vec<String> = examples
        .iter()
        .map(|example| lines.of(example.start).to_string())
        .collect();
    let x_agent = (!x_agent.is_empty()).then_some(Value::Object(x_agent));
    Drafted {
        suffix: "schema.json",
        text: schema_file(
            schema,
            &format!(
                "the JSON the prompt shows at line {}",
                lines_of.join(" and ")
            ),
            x_agent,
        ),
        evidence: format!(
            "a JSON answer: the example object{} at line {}",
            if examples.len() > 1 { "s" } else { "" },
            lines_of.join(" and ")
        ),
        checks,
    }
}

/// "Return exactly one JSON object", "respond with ONLY a valid JSON object", "no text before
/// or after", "parseable data for machine consumption": prose around the object is a
/// violation, not a warning.
fn json_alone(body: &str) -> bool {
    let lower = body.to_ascii_lowercase().replace('*', "");
    [
        "exactly one json object",
        "only a valid json",
        "only the json",
        "only json",
        "only a json",
        "before or after the json",
        "no text before",
        "nothing else",
        "parseable",
        "machine consumption",
        "machine-readable",
        "strict schema adherence",
        "parsed by json.loads",
        "parsed as json",
    ]
    .iter()
    .any(|cue| lower.contains(cue))
}

/// "Return only a JSON object with one field, "summary", containing a nonempty string": the
/// object described in a sentence, every named field a string.
fn described_json(body: &str, regions: &[Range<usize>], lines: &Lines<'_>) -> Option<Drafted> {
    let described = regex::Regex::new(
        r#"(?i)\bjson object with (?:one|a single|two|three|four|five|\d+) (?:fields?|keys?|properties|property)\s*[,:]?\s*((?:[`"']\w+[`"'](?:\s*,\s*|\s+and\s+|,\s*and\s+)?)+)(.*)"#,
    )
    .ok()?;
    let name = regex::Regex::new(r#"[`"'](\w+)[`"']"#).ok()?;
    for region in regions {
        let text = &body[region.clone()];
        let Some(found) = described.captures(text) else {
            continue;
        };
        let fields: Vec<String> = name
            .captures_iter(&found[1])
            .map(|c| c[1].to_owned())
            .collect();
        if fields.is_empty() {
            continue;
        }
        let rest = found[2].to_ascii_lowercase();
        let sentence = rest.split(['.', '\n']).next().unwrap_or_default();
        let nonempty = ["nonempty", "non-empty", "not empty"]
            .iter()
            .any(|cue| sentence.contains(cue));
        let mut leaf = json!({ "type": "string" });
        if nonempty {
            leaf["minLength"] = json!(1);
        }
        let properties: serde_json::Map<String, Value> = fields
            .iter()
            .map(|field| (field.clone(), leaf.clone()))
            .collect();
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": fields,
            "properties": properties,
        });
        let at = lines.of(region.start + found.get(0).map_or(0, |m| m.start()));
        let mut checks = vec![format!(
            "the object has exactly the field(s) the prompt names ({}), each a {}string",
            fields.join(", "),
            if nonempty { "non-empty " } else { "" }
        )];
        let x_agent = json_alone(body).then(|| {
            checks.push(
                "the prompt asks for the JSON object alone: prose around it is a violation".into(),
            );
            json!({ "prose": "hard" })
        });
        return Some(Drafted {
            suffix: "schema.json",
            text: schema_file(
                schema,
                &format!("the JSON object described at line {at}"),
                x_agent,
            ),
            evidence: format!("a JSON answer: the object described at line {at}"),
            checks,
        });
    }
    None
}

fn schema_file(mut schema: Value, from: &str, x_agent: Option<Value>) -> String {
    if let Value::Object(map) = &mut schema {
        let mut ordered = serde_json::Map::new();
        ordered.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        ordered.insert(
            "description".into(),
            json!(format!(
                "Drafted by `agent import` from {from}; check it before relying on it."
            )),
        );
        ordered.extend(std::mem::take(map));
        if let Some(x_agent) = x_agent {
            ordered.insert("x-agent".into(), x_agent);
        }
        *map = ordered;
    }
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// A tagged field the answer must give.
#[derive(Debug, Clone)]
struct TaggedField {
    tag: String,
    /// What the prompt writes inside the tag or says about it.
    hint: String,
    values: Vec<String>,
}

/// Tags the answer is to be given in: pairs written on one line (`<S1>your explanation</S1>`)
/// that wrap no input, or named in prose ("between category tags", "inside <final> tags").
fn tagged_fields(
    body: &str,
    regions: &[Range<usize>],
    reasoning_tags: &[String],
    _lines: &Lines<'_>,
) -> Option<Vec<TaggedField>> {
    let mut fields: Vec<TaggedField> = Vec::new();
    let reasoning: Vec<String> = reasoning_tags
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let push = |tag: &str, hint: &str, fields: &mut Vec<TaggedField>| {
        let lower = tag.to_ascii_lowercase();
        if reasoning.contains(&lower) || fields.iter().any(|f| f.tag.eq_ignore_ascii_case(tag)) {
            return;
        }
        fields.push(TaggedField {
            tag: tag.to_owned(),
            hint: hint.to_owned(),
            values: Vec::new(),
        });
    };
    // A pair written out more than once (`<label>Billing</label>` per category) is data the
    // prompt lists, not a field of the answer.
    let inline_pairs = |tag: &str| body.matches(&format!("<{tag}>")).count();
    // "between the tags: <S0>…": words that come between a cue and `tags` but name none.
    const NOT_TAG_NAMES: [&str; 12] = [
        "the",
        "these",
        "those",
        "following",
        "xml",
        "html",
        "your",
        "its",
        "their",
        "appropriate",
        "separate",
        "matching",
    ];
    for region in regions {
        let text = &body[region.clone()];
        for line in text.lines() {
            let mut rest = line;
            while let Some(open) = rest.find('<') {
                let after = &rest[open + 1..];
                let Some(close) = after.find('>') else { break };
                let tag = &after[..close];
                let simple =
                    !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if simple && let Some(end) = after[close + 1..].find(&format!("</{tag}>")) {
                    let inner = &after[close + 1..close + 1 + end];
                    let wraps_input = ["{", "[", "$"].iter().any(|mark| inner.contains(mark));
                    if !wraps_input && !inner.contains('<') && inline_pairs(tag) == 1 {
                        push(tag, inner, &mut fields);
                    }
                    rest = &after[close + 1 + end..];
                    continue;
                }
                rest = &after[close + 1..];
            }
            // "between category tags", "in <category> tags", "inside <final></final> tags"
            let lower = line.to_ascii_lowercase();
            for cue in ["between ", "inside ", "within ", "in "] {
                for (at, _) in lower.match_indices(cue) {
                    let after = &line[at + cue.len()..];
                    let word: String = after
                        .trim_start_matches(['<', '`', '"'])
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let follows = after[after.find(&word).map_or(0, |i| i + word.len())..]
                        .trim_start_matches(['>', '`', '"', '<', '/'])
                        .trim_start_matches(word.as_str())
                        .trim_start_matches(['>', '`', '"'])
                        .trim_start();
                    if !word.is_empty()
                        && !NOT_TAG_NAMES.contains(&word.to_ascii_lowercase().as_str())
                        && (follows.starts_with("tags") || follows.starts_with("tag "))
                    {
                        push(&word, line, &mut fields);
                    }
                }
            }
        }
    }
    // Values a field takes: the `<label>`s listed inside blocks of its own tag name.
    for field in &mut fields {
        let open = format!("<{}>", field.tag);
        let mut values = Vec::new();
        for (at, _) in body.match_indices(&open) {
            let block = &body[at..];
            let end = block.find(&format!("</{}>", field.tag)).unwrap_or(0);
            let block = &block[..end];
            if let Some(label_at) = block.find("<label>")
                && let Some(label_end) = block[label_at..].find("</label>")
            {
                values.push(block[label_at + 7..label_at + label_end].trim().to_owned());
            }
        }
        field.values = values;
    }
    (!fields.is_empty()).then_some(fields)
}

fn draft_tagged(body: &str, fields: &[TaggedField]) -> Drafted {
    let mut text = String::from(
        "# Drafted by `agent import` from the tags the prompt asks the answer to be given in;\n# check each field's type and bounds.\n",
    );
    let _ = writeln!(text, "description: Answer in tagged fields");
    let _ = writeln!(text, "fields:");
    let mut checks = Vec::new();
    for field in fields {
        let _ = writeln!(text, "  - tag: {}", yaml_string(&field.tag));
        let hint = field.hint.to_ascii_lowercase();
        let range = score_range(body, &field.hint);
        if !field.values.is_empty() {
            let _ = writeln!(text, "    type: enum");
            let values: Vec<String> = field.values.iter().map(|v| yaml_string(v)).collect();
            let _ = writeln!(text, "    values: [{}]", values.join(", "));
        } else if hint.contains("score")
            || hint.contains("rating")
            || hint.contains("number")
            || range.is_some()
        {
            let _ = writeln!(text, "    type: integer");
            if let Some((min, max)) = range {
                let _ = writeln!(text, "    min: {min}");
                let _ = writeln!(text, "    max: {max}");
            } else {
                checks.push(format!(
                    "`<{}>` is drafted as an integer with no bounds",
                    field.tag
                ));
            }
        } else {
            let _ = writeln!(text, "    type: text");
        }
    }
    let _ = writeln!(text, "order: strict");
    let _ = writeln!(text, "outside: soft");
    let tags: Vec<String> = fields.iter().map(|f| format!("<{}>", f.tag)).collect();
    checks.push("text outside the tags only warns (`outside: soft`)".into());
    Drafted {
        suffix: "tagged.yaml",
        text,
        evidence: format!("a tagged answer: {}", tags.join(", ")),
        checks,
    }
}

/// The bounds of a score the prompt states: "from 1 to 5", "between 1 and 5", "1-5".
fn score_range(body: &str, hint: &str) -> Option<(i64, i64)> {
    let lower_hint = hint.to_ascii_lowercase();
    if !(lower_hint.contains("score") || lower_hint.contains("rating")) {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    for (at, _) in lower
        .match_indices("score")
        .chain(lower.match_indices("rating"))
    {
        let window = &lower[at..lower.len().min(at + 120)];
        let words: Vec<&str> = window
            .split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '(' || c == ')')
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(3) {
            if let [a, joiner, b] = pair
                && matches!(*joiner, "to" | "and" | "-" | "–")
                && let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>())
                && a < b
            {
                return Some((a, b));
            }
        }
        for word in &words {
            if let Some((a, b)) = word.split_once(['-', '–'])
                && let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>())
                && a < b
            {
                return Some((a, b));
            }
        }
    }
    None
}

/// An answer that is one value ("an integer between 1 and 5"): a scaffold with a first-line rule.
fn single_value(body: &str, regions: &[Range<usize>]) -> Option<Drafted> {
    let text: String = regions.iter().map(|r| &body[r.clone()]).collect();
    let lower = text.to_ascii_lowercase();
    let integer = lower.contains("an integer between")
        || lower.contains("a single integer")
        || lower.contains("formatted as an integer");
    if !integer {
        return None;
    }
    let (min, max) = score_range(&format!("score {lower}"), "score").unwrap_or((0, 9));
    let pattern = if min >= 0 && max <= 9 {
        format!("^[{min}-{max}]$")
    } else {
        "^-?[0-9]+$".into()
    };
    Some(Drafted {
        suffix: "scaffold.yaml",
        text: format!(
            "# Drafted by `agent import`: the prompt asks for a single integer.\ndescription: A single integer from {min} to {max}\nsections: []\nextra_sections: hard\npreamble: allowed\ntrailing_text: allowed\nlines:\n  - {{ line: 1, pattern: '{pattern}' }}\n"
        ),
        evidence: format!("a single integer from {min} to {max}"),
        checks: vec!["the whole answer is its first line; anything after it is not checked".into()],
    })
}

/// An example document or outline of headings, with where it is.
#[derive(Debug)]
struct Template {
    range: Range<usize>,
}

/// The output template: a fenced markdown block of headings, or the headings that follow a
/// line announcing the output's format.
fn markdown_template(body: &str, regions: &[Range<usize>], _lines: &Lines<'_>) -> Option<Template> {
    // A ```markdown block with headings.
    let mut offset = 0;
    let mut candidates = Vec::new();
    let all_lines: Vec<(usize, &str)> = body
        .split_inclusive('\n')
        .map(|line| {
            let at = offset;
            offset += line.len();
            (at, line)
        })
        .collect();
    for &(at, line) in &all_lines {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```")
            && matches!(info.trim(), "markdown" | "md")
            && let Ok((range, _)) = crate::prompt::layout::fence_at(body, at)
            && heading_count(&body[range.clone()]) >= 2
        {
            candidates.push(range);
        }
    }
    // The template itself may be a fenced page (` ```md `): its example is a block inside it.
    candidates.retain(|range| !regions.iter().any(|region| region == range));
    if let Some(range) = candidates.into_iter().max_by_key(|r| r.len()) {
        return Some(Template { range });
    }
    // Headings after a cue line.
    let in_regions = |at: usize| regions.iter().any(|r| r.contains(&at));
    for (index, &(at, line)) in all_lines.iter().enumerate() {
        if !in_regions(at) || !output_cue(line) {
            continue;
        }
        if is_heading(line) {
            // `## For each iteration, output EXACTLY this format:`: the headings under it,
            // up to the next one at its level or above.
            let level = heading_level(line);
            let under: Vec<&(usize, &str)> = all_lines[index + 1..]
                .iter()
                .take_while(|(_, l)| !is_heading(l) || heading_level(l) > level)
                .collect();
            let Some(first) = under.iter().find(|(_, l)| is_heading(l)) else {
                continue;
            };
            let end = all_lines
                .get(index + 1 + under.len())
                .map_or(body.len(), |(a, _)| *a);
            if under.iter().filter(|(_, l)| is_heading(l)).count() >= 2 {
                return Some(Template {
                    range: first.0..end,
                });
            }
            continue;
        }
        let Some(first) = all_lines[index + 1..]
            .iter()
            .take(12)
            .find(|(_, l)| is_heading(l))
        else {
            continue;
        };
        // A heading that is itself the cue is read when the loop reaches it.
        if output_cue(first.1) {
            continue;
        }
        let level = heading_level(first.1);
        // The outline ends at a heading above its first level, or at one of its level with no
        // deeper heading under the first (a flat list ends where the page goes on), at a
        // banner that opens the prompt's next part (`═════` / `SECTION 4: …`), and at the end
        // of the template region it is in.
        let region_end = regions
            .iter()
            .find(|r| r.contains(&first.0))
            .map_or(body.len(), |r| r.end);
        let mut end = region_end;
        let mut seen_deeper = false;
        let mut headings = 0;
        for &(line_at, text) in all_lines
            .iter()
            .filter(|(a, _)| *a > first.0 && *a < region_end)
        {
            if is_banner(text) {
                end = line_at;
                break;
            }
            if let Some(this) = is_heading(text).then(|| heading_level(text)) {
                if this < level {
                    end = line_at;
                    break;
                }
                if this > level {
                    seen_deeper = true;
                } else if seen_deeper && headings > 0 && this == level && !in_regions(line_at) {
                    end = line_at;
                    break;
                }
                headings += 1;
            }
        }
        if headings >= 1 {
            return Some(Template {
                range: first.0..end,
            });
        }
    }
    None
}

/// A line drawn across the page to open a part of the prompt (`═══════`, `==========`).
fn is_banner(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.chars().count() >= 10
        && trimmed
            .chars()
            .all(|c| matches!(c, '═' | '=' | '━' | '─' | '#' | '*'))
        && !trimmed.chars().all(|c| c == '#')
}

fn is_heading(line: &str) -> bool {
    let trimmed = line.trim_start();
    let level = heading_level(line);
    (1..=6).contains(&level) && trimmed[level..].starts_with([' ', '\t'])
}

fn heading_level(line: &str) -> usize {
    line.trim_start().bytes().take_while(|&b| b == b'#').count()
}

fn heading_count(text: &str) -> usize {
    text.lines().filter(|l| is_heading(l)).count()
}

/// A heading of the outline, with what its section must hold.
#[derive(Debug, Default)]
struct Outline {
    level: usize,
    text: String,
    tables: Vec<Vec<String>>,
    code: Vec<Option<String>>,
    checklist: bool,
    lines_of_content: usize,
    children: Vec<Outline>,
}

fn outline(text: &str) -> (Vec<Outline>, Option<Vec<String>>) {
    let mut headings: Vec<Outline> = Vec::new();
    let mut front_keys = None;
    let mut lines = text.lines().peekable();
    // A front matter block the document starts with.
    if text.trim_start().starts_with("---") {
        let mut keys = Vec::new();
        let _ = lines.next();
        for line in lines.by_ref() {
            if line.trim() == "---" {
                break;
            }
            if let Some((key, _)) = line.split_once(':')
                && !key.starts_with(' ')
                && !key.trim().is_empty()
            {
                keys.push(key.trim().to_owned());
            }
        }
        front_keys = Some(keys);
    }
    let mut in_fence: Option<String> = None;
    let mut previous: Option<String> = None;
    for line in lines {
        let trimmed = line.trim();
        if let Some(open) = &in_fence {
            if trimmed.starts_with(open.as_str()) && trimmed.trim_start_matches('`').is_empty() {
                in_fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            let info = trimmed.trim_start_matches('`').trim();
            in_fence = Some("```".into());
            if let Some(last) = headings.last_mut() {
                last.code.push(
                    (!info.is_empty())
                        .then(|| info.split_whitespace().next().unwrap_or(info).to_owned()),
                );
            }
            continue;
        }
        if is_heading(line) {
            headings.push(Outline {
                level: heading_level(line),
                text: trimmed.trim_start_matches('#').trim().to_owned(),
                ..Outline::default()
            });
            previous = None;
            continue;
        }
        let Some(last) = headings.last_mut() else {
            continue;
        };
        if !trimmed.is_empty() {
            last.lines_of_content += 1;
        }
        if trimmed.starts_with("- [ ]")
            || trimmed.starts_with("- [x]")
            || trimmed.starts_with("- [X]")
        {
            last.checklist = true;
        }
        if is_separator_row(trimmed)
            && let Some(header) = previous.as_deref().filter(|p| p.starts_with('|'))
        {
            last.tables.push(cells(header));
        }
        previous = Some(trimmed.to_owned());
    }
    (nest(headings), front_keys)
}

fn is_separator_row(line: &str) -> bool {
    line.starts_with('|')
        && line.contains('-')
        && line.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn cells(row: &str) -> Vec<String> {
    row.trim()
        .trim_matches('|')
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

/// Headings in order become a tree by level.
fn nest(flat: Vec<Outline>) -> Vec<Outline> {
    let mut roots: Vec<Outline> = Vec::new();
    for heading in flat {
        attach(&mut roots, heading);
    }
    roots
}

fn attach(siblings: &mut Vec<Outline>, heading: Outline) {
    if let Some(last) = siblings.last_mut()
        && heading.level > last.level
    {
        attach(&mut last.children, heading);
    } else {
        siblings.push(heading);
    }
}

/// A heading with fill-ins (`[Incident Title]`, `{name}`, `<Component Name>`) as a regex
/// over the folded heading; `None` when it has none.
fn heading_pattern(text: &str) -> Option<String> {
    let mut pattern = String::from("^");
    let mut any = false;
    let mut rest = text;
    while !rest.is_empty() {
        let next = rest.find(['[', '{', '<']);
        let Some(at) = next else {
            pattern.push_str(&regex::escape(&crate::text::fold(rest)));
            break;
        };
        let close = match rest.as_bytes()[at] {
            b'[' => ']',
            b'{' => '}',
            _ => '>',
        };
        let Some(end) = rest[at..].find(close).map(|i| at + i) else {
            pattern.push_str(&regex::escape(&crate::text::fold(rest)));
            break;
        };
        pattern.push_str(&regex::escape(&crate::text::fold(&rest[..at])));
        pattern.push_str(".+");
        any = true;
        rest = &rest[end + 1..];
    }
    pattern.push('$');
    any.then_some(pattern)
}

fn draft_scaffold(body: &str, template: &Template, lines: &Lines<'_>) -> Drafted {
    let text = &body[template.range.clone()];
    // "Use this EXACT format", "the exact scaffold below": nothing beside it.
    let mut lead_start = template.range.start.saturating_sub(400);
    while !body.is_char_boundary(lead_start) {
        lead_start -= 1;
    }
    let exact = body[lead_start..template.range.start]
        .to_ascii_lowercase()
        .contains("exact");
    let (mut roots, front_keys) = outline(text);
    let mut out = format!(
        "# Drafted by `agent import` from the output template at lines {}-{}; check it.\n",
        lines.of(template.range.start),
        lines.of(template.range.end.saturating_sub(1))
    );
    let _ = writeln!(
        out,
        "description: Drafted from the prompt's output template"
    );
    let mut checks = Vec::new();
    // One heading above all the others is the document's title.
    let title = (roots.len() == 1 && !roots[0].children.is_empty()).then(|| roots.remove(0));
    let has_title = title.is_some();
    let sections = match title {
        Some(title) => {
            write_heading_key(&mut out, "title", &title.text);
            title.children
        }
        None => roots,
    };
    if let Some(keys) = &front_keys {
        let quoted: Vec<String> = keys.iter().map(|k| yaml_string(k)).collect();
        let _ = writeln!(
            out,
            "front_matter: {{ required: true, keys: [{}] }}",
            quoted.join(", ")
        );
    }
    // A filled-in example's deeper headings are examples; a skeleton's are the shape.
    let skeleton = sections
        .iter()
        .all(|s| s.lines_of_content <= 6 && s.children.iter().all(|c| c.lines_of_content <= 6));
    let _ = writeln!(out, "sections:");
    for section in &sections {
        write_section(&mut out, section, 1, skeleton);
    }
    if !skeleton {
        checks.push(
            "the template is a filled-in example: its subsections were left to the model, its tables kept".into(),
        );
    }
    let strictness = if exact { "hard" } else { "soft" };
    let _ = writeln!(out, "extra_sections: {strictness}");
    let _ = writeln!(out, "preamble: {}", if has_title { "hard" } else { "soft" });
    let _ = writeln!(out, "trailing_text: {strictness}");
    if exact {
        checks.push("the prompt asks for its exact format: sections it does not list and text after the document are violations".into());
    }
    checks.push(if has_title {
        "sections not listed and text after a closing rule only warn; text before the title is a violation".into()
    } else {
        "sections not listed, text before the first section and after a closing rule only warn".into()
    });
    Drafted {
        suffix: "scaffold.yaml",
        text: out,
        evidence: format!(
            "a markdown answer: the template at lines {}-{} ({} sections)",
            lines.of(template.range.start),
            lines.of(template.range.end.saturating_sub(1)),
            sections.len()
        ),
        checks,
    }
}

fn write_heading_key(out: &mut String, key: &str, text: &str) {
    match heading_pattern(text) {
        Some(pattern) => {
            let _ = writeln!(
                out,
                "{key}: {{ text: {}, match: regex }}",
                yaml_string(&pattern)
            );
        }
        None => {
            let _ = writeln!(out, "{key}: {{ text: {} }}", yaml_string(text));
        }
    }
}

fn write_section(out: &mut String, section: &Outline, depth: usize, skeleton: bool) {
    let indent = "  ".repeat(depth);
    match heading_pattern(&section.text) {
        Some(pattern) => {
            let _ = writeln!(out, "{indent}- heading: {}", yaml_string(&pattern));
            let _ = writeln!(out, "{indent}  match: regex");
        }
        None => {
            let _ = writeln!(out, "{indent}- heading: {}", yaml_string(&section.text));
        }
    }
    // `### TOP FIX (if score < threshold)`: the heading says when the section is written.
    let lower = section.text.to_ascii_lowercase();
    if ["(if ", "(optional", "(when ", "if applicable", "(only if"]
        .iter()
        .any(|cue| lower.contains(cue))
    {
        let _ = writeln!(out, "{indent}  optional: true");
    }
    let mut tables = section.tables.clone();
    let mut code = section.code.clone();
    let mut checklist = section.checklist;
    if !skeleton {
        // Tables and code of the example's subsections belong to the section.
        collect(section, &mut tables, &mut code, &mut checklist);
    }
    if !tables.is_empty() {
        let _ = writeln!(out, "{indent}  tables:");
        for columns in &tables {
            let quoted: Vec<String> = columns.iter().map(|c| yaml_string(c)).collect();
            let _ = writeln!(out, "{indent}    - columns: [{}]", quoted.join(", "));
        }
    }
    let languages: Vec<&String> = code.iter().flatten().collect();
    if !languages.is_empty() {
        let _ = writeln!(out, "{indent}  code_blocks:");
        for language in languages {
            let _ = writeln!(out, "{indent}    - language: {}", yaml_string(language));
        }
    }
    if checklist {
        let _ = writeln!(out, "{indent}  checklist: true");
    }
    if skeleton && !section.children.is_empty() {
        let _ = writeln!(out, "{indent}  subsections:");
        for child in &section.children {
            write_section(out, child, depth + 2, skeleton);
        }
    }
}

fn collect(
    section: &Outline,
    tables: &mut Vec<Vec<String>>,
    code: &mut Vec<Option<String>>,
    checklist: &mut bool,
) {
    for child in &section.children {
        tables.extend(child.tables.iter().cloned());
        code.extend(child.code.iter().cloned());
        *checklist |= child.checklist;
        collect(child, tables, code, checklist);
    }
}

/// A YAML double-quoted string.
pub(crate) fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_ins_in_headings_match_any_text() {
        assert_eq!(heading_pattern("[Incident Title]").as_deref(), Some("^.+$"));
        assert_eq!(
            heading_pattern("[Date] | [Incident ID]").as_deref(),
            Some("^.+\\|.+$")
        );
        assert_eq!(heading_pattern("1. Overview"), None);
    }

    #[test]
    fn an_outline_nests_by_level_and_keeps_tables_and_checklists() {
        let (roots, front) = outline(
            "---\ntitle: x\ndate: y\n---\n# Doc\n## A\n| K | V |\n|---|---|\n## B\n- [ ] one\n### B1\n```bash\nls\n```\n",
        );
        assert_eq!(front, Some(vec!["title".to_owned(), "date".to_owned()]));
        assert_eq!(roots.len(), 1);
        let sections = &roots[0].children;
        assert_eq!(sections[0].tables, [vec!["K".to_owned(), "V".to_owned()]]);
        assert!(sections[1].checklist);
        assert_eq!(sections[1].children[0].code, [Some("bash".to_owned())]);
    }
}
